"""The one exact similarity kernel on torch: k nearest rows, and the global top-k pairs.

Scores are higher-is-better, per ``space``:

* ``cosine``: rows are L2-normalized first, the score is the dot product;
* ``ip``: the inner product as given (rows already unit length, or a true inner product);
* ``l2``: the negated squared Euclidean distance;
* ``iou``: rows are binary masks; ``|A∩B| = A·Bᵀ``, ``|A∪B| = |A| + |B| - |A∩B|``, 0 when
  both are empty.

:func:`exact_knn` scores query blocks against every row and keeps ``torch.topk`` per query.
:func:`exact_pairs` scores every unordered pair ``i < j`` once: a block of rows against the
rows from the block's first on (the upper triangle), ``torch.topk`` per row then over the
block's winners, merged into a global top k. Memory stays at ``block_elems`` scores and there
is no Python loop over pairs. Pairs can be excluded (adjacent shots), restricted to different
groups (``across``), or to those with an end in ``rows_subset``. Results are sorted by score
(descending), ties by ``(i, j)``. NEAREST, MATCH and match cutting all use these two.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

SPACES = ("cosine", "ip", "l2", "iou")
BLOCK_ELEMS = 1 << 23  # scores per block (32 MiB of float32)


def _prepare(x: np.ndarray | torch.Tensor, space: str) -> torch.Tensor:
    import torch

    if space not in SPACES:
        raise ValueError(f"space must be one of {SPACES}, got {space!r}")
    if isinstance(x, np.ndarray):
        x = np.require(x, np.float32, ["C", "W"])  # torch wants a writable array
    t = torch.as_tensor(x)
    t = t.float() if t.dtype != torch.float32 else t
    if space == "cosine":
        t = torch.nn.functional.normalize(t, dim=1)
    return t


def _norms(x: torch.Tensor, space: str) -> torch.Tensor | None:
    """Per-row terms the score needs besides the dot product (squared norm, mask area)."""
    if space == "l2":
        return (x * x).sum(1)
    if space == "iou":
        return x.sum(1)
    return None


def _scores(
    q: torch.Tensor, x: torch.Tensor, space: str, qn: torch.Tensor | None, xn: torch.Tensor | None
) -> torch.Tensor:
    """Scores of query rows ``q`` against rows ``x`` (``qn``/``xn``: their :func:`_norms`)."""
    s = q @ x.T
    if space == "l2":
        return s.mul_(2).sub_(qn[:, None]).sub_(xn[None, :])
    if space == "iou":
        union = qn[:, None] + xn[None, :]
        return s.div_(union.sub_(s).clamp_min_(1.0))  # an empty union has s == 0
    return s


def exact_knn(
    data: np.ndarray | torch.Tensor,
    queries: np.ndarray | torch.Tensor,
    k: int,
    space: str = "cosine",
    block_elems: int = BLOCK_ELEMS,
) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (q, k) of the k best data rows per query and their scores, best first.

    Contract: exact (up to float32 rounding); ``k`` is clipped to the number of rows; queries
    are processed in blocks so that at most ``block_elems`` scores exist at once."""
    import torch

    x = _prepare(data, space)
    q = _prepare(queries, space)
    k = min(k, x.shape[0])
    xn, qn = _norms(x, space), _norms(q, space)
    rows = max(1, block_elems // max(1, x.shape[0]))
    idx_out, sc_out = [], []
    with torch.inference_mode():
        for s in range(0, q.shape[0], rows):
            qs = None if qn is None else qn[s : s + rows]
            sc, ix = torch.topk(_scores(q[s : s + rows], x, space, qs, xn), k, dim=1)
            idx_out.append(ix)
            sc_out.append(sc)
    if not idx_out:
        return np.zeros((0, k), np.int64), np.zeros((0, k), np.float32)
    return torch.cat(idx_out).numpy(), torch.cat(sc_out).numpy()


def adjacent_pairs(groups: np.ndarray, order: np.ndarray) -> np.ndarray:
    """(2, m) row-index pairs ``i < j`` of adjacent rows: same group, order differing by 1."""
    groups, order = np.asarray(groups), np.asarray(order)
    idx = np.lexsort((order, groups))
    g, o = groups[idx], order[idx]
    nxt = (g[1:] == g[:-1]) & (o[1:] - o[:-1] == 1)
    a, b = idx[:-1][nxt], idx[1:][nxt]
    return np.stack([np.minimum(a, b), np.maximum(a, b)]).astype(np.int64)


def exact_pairs(
    data: np.ndarray | torch.Tensor,
    k: int,
    groups: np.ndarray | None = None,
    across: bool = False,
    space: str = "cosine",
    block_elems: int = BLOCK_ELEMS,
    rows_subset: np.ndarray | None = None,
    exclude: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The global top-k unordered pairs ``(a, b)``, ``a < b``, and their scores, best first.

    With ``across`` pairs within one group are excluded. With ``rows_subset`` only pairs with
    at least one end in the subset are scored. ``exclude`` is a (2, m) array of row pairs that
    never pair (e.g. :func:`adjacent_pairs`). Ties are broken by ``(a, b)``."""
    import torch

    x = _prepare(data, space)
    n = x.shape[0]
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32))
    if n < 2 or k < 1:
        return empty
    norms = _norms(x, space)
    g = torch.as_tensor(np.asarray(groups, np.int64)) if groups is not None and across else None
    ex = None
    if exclude is not None and len(exclude[0]):
        ex = torch.as_tensor(np.asarray(exclude, np.int64))
        ex = torch.stack([torch.minimum(ex[0], ex[1]), torch.maximum(ex[0], ex[1])])
    best = ([], [], [])
    with torch.inference_mode():
        if rows_subset is None:
            blocks = _triangle_blocks(x, norms, space, g, ex, k, block_elems)
        else:
            blocks = _subset_blocks(x, norms, space, g, ex, k, block_elems, rows_subset)
        for s, a, b in blocks:
            best[0].append(s)
            best[1].append(a)
            best[2].append(b)
            if sum(len(v) for v in best[0]) > 4 * k:  # keep the merge small
                best = tuple([v] for v in _merge(best, k))
    s, a, b = _merge(best, k) if best[0] else (torch.empty(0), torch.empty(0), torch.empty(0))
    lo = torch.minimum(a, b).numpy().astype(np.int64)
    hi = torch.maximum(a, b).numpy().astype(np.int64)
    return rank_pairs(lo, hi, s.numpy().astype(np.float32), k)


def _merge(best, k: int):
    import torch

    s, a, b = (torch.cat(v) for v in best)
    ok = torch.isfinite(s)
    s, a, b = s[ok], a[ok], b[ok]
    if s.numel() > k:
        s, keep = torch.topk(s, k)
        a, b = a[keep], b[keep]
    return s, a, b


def _block_topk(sc: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Two-stage top k of a score block: per row (contiguous), then over the rows' winners."""
    import torch

    kk = min(k, sc.shape[1])
    row_vals, row_cols = torch.topk(sc, kk, dim=1)
    vals, pos = torch.topk(row_vals.reshape(-1), min(k, row_vals.numel()))
    return vals, pos // kk, row_cols.reshape(-1)[pos]


def _triangle_blocks(x, norms, space, g, ex, k, block_elems):
    """Every pair once: rows ``[r0, r1)`` against the rows from ``r0`` on."""
    import torch

    n = x.shape[0]
    neg = float("-inf")
    rows = max(1, min(n, block_elems // n))
    for r0 in range(0, n - 1, rows):
        r1 = min(n, r0 + rows)
        nb = None if norms is None else norms[r0:r1]
        nr = None if norms is None else norms[r0:]
        sc = _scores(x[r0:r1], x[r0:], space, nb, nr)
        sc[:, : r1 - r0].masked_fill_(torch.ones(r1 - r0, r1 - r0, dtype=torch.bool).tril(), neg)
        if ex is not None:
            sel = (ex[0] >= r0) & (ex[0] < r1)
            sc[ex[0, sel] - r0, ex[1, sel] - r0] = neg
        if g is not None:
            sc.masked_fill_(g[r0:r1, None] == g[None, r0:], neg)
        vals, bi, bj = _block_topk(sc, k)
        yield vals, bi + r0, bj + r0


def _subset_blocks(x, norms, space, g, ex, k, block_elems, rows_subset):
    """Pairs with an end in the subset: subset rows against every row; a pair of two subset
    rows is scored from its lower end only."""
    import torch

    n = x.shape[0]
    rows = torch.as_tensor(np.asarray(rows_subset, np.int64))
    in_subset = torch.zeros(n, dtype=torch.bool)
    in_subset[rows] = True
    cols = torch.arange(n)
    step = max(1, block_elems // n)
    for s0 in range(0, len(rows), step):
        ri = rows[s0 : s0 + step]
        nb = None if norms is None else norms[ri]
        sc = _scores(x[ri], x, space, nb, norms)
        keep = (cols[None, :] > ri[:, None]) | ~in_subset[None, :]
        keep &= cols[None, :] != ri[:, None]
        if g is not None:
            keep &= g[None, :] != g[ri][:, None]
        if ex is not None:
            where = torch.full((n,), -1, dtype=torch.int64)
            where[ri] = torch.arange(len(ri))
            for a, b in ((ex[0], ex[1]), (ex[1], ex[0])):
                sel = where[a] >= 0
                keep[where[a[sel]], b[sel]] = False
        sc = sc.masked_fill(~keep, float("-inf"))
        vals, bi, bj = _block_topk(sc, k)
        yield vals, ri[bi], bj


def pairs_above(
    data: np.ndarray | torch.Tensor,
    threshold: float,
    groups: np.ndarray | None = None,
    space: str = "ip",
    block_elems: int = BLOCK_ELEMS,
) -> tuple[np.ndarray, np.ndarray]:
    """Every unordered pair ``(a, b)``, ``a < b``, scoring ``>= threshold``, sorted by
    ``(a, b)``; with ``groups`` only pairs of different groups. Blocked over the upper
    triangle like :func:`exact_pairs` (``block_elems`` scores at once); the output is as
    large as the number of such pairs (near-duplicates: few)."""
    import torch

    x = _prepare(data, space)
    n = x.shape[0]
    norms = _norms(x, space)
    g = torch.as_tensor(np.asarray(groups, np.int64)) if groups is not None else None
    rows = max(1, min(n, block_elems // max(1, n)))
    out_a, out_b = [], []
    with torch.inference_mode():
        for r0 in range(0, max(0, n - 1), rows):
            r1 = min(n, r0 + rows)
            nb = None if norms is None else norms[r0:r1]
            nr = None if norms is None else norms[r0:]
            hit = _scores(x[r0:r1], x[r0:], space, nb, nr) >= threshold
            hit[:, : r1 - r0] &= torch.ones(r1 - r0, r1 - r0, dtype=torch.bool).triu(1)
            if g is not None:
                hit &= g[r0:r1, None] != g[None, r0:]
            i, j = torch.nonzero(hit, as_tuple=True)
            out_a.append(i + r0)
            out_b.append(j + r0)
    if not out_a:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    a = torch.cat(out_a).numpy().astype(np.int64)
    b = torch.cat(out_b).numpy().astype(np.int64)
    order = np.lexsort((b, a))
    return a[order], b[order]


def keep_first_of_pairs(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Greedy near-duplicate grouping in row order from the duplicate pairs ``a < b``: a row
    is kept unless it is paired with an earlier kept row (:func:`pairs_above` gives the
    pairs; the same rule as ``dedup`` within an asset)."""
    keep = np.ones(n, dtype=bool)
    if len(a) == 0:
        return keep
    by_b = np.argsort(b, kind="stable")
    a, b = np.asarray(a)[by_b], np.asarray(b)[by_b]
    starts = np.searchsorted(b, np.arange(n + 1))
    for row in np.unique(b):
        if keep[a[starts[row] : starts[row + 1]]].any():
            keep[row] = False
    return keep


def pair_keys(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    """One int64 per unordered pair of row indices (``min * n + max``)."""
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    return np.minimum(a, b) * n + np.maximum(a, b)


def rank_pairs(a: np.ndarray, b: np.ndarray, s: np.ndarray, k: int):
    """Deduplicate (a, b) pairs (a < b) and keep the k best by (-score, a, b)."""
    if len(a) == 0:
        return a.astype(np.int64), b.astype(np.int64), s.astype(np.float32)
    order = np.lexsort((b, a, -s))
    a, b, s = a[order], b[order], s[order]
    key = a.astype(np.int64) * (int(max(a.max(), b.max())) + 1) + b
    _, first = np.unique(key, return_index=True)
    first = np.sort(first)[:k]
    return a[first].astype(np.int64), b[first].astype(np.int64), s[first].astype(np.float32)


def exact_pairs_numpy(
    x: np.ndarray,
    k: int,
    groups: np.ndarray | None = None,
    across: bool = False,
    space: str = "ip",
    exclude: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Reference implementation for tests and benchmarks: the whole score matrix in numpy,
    then ``argpartition`` (n x n memory). Spaces ``ip``, ``cosine`` and ``iou``."""
    x = np.asarray(x, dtype=np.float32)
    if space == "cosine":
        norm = np.linalg.norm(x, axis=1, keepdims=True)
        x = np.where(norm > 0, x / np.maximum(norm, 1e-12), 0.0).astype(np.float32)
    n = len(x)
    s = x @ x.T
    if space == "iou":
        area = x.sum(axis=1)
        union = area[:, None] + area[None, :] - s
        s = np.where(union > 0, s / np.maximum(union, 1e-9), 0.0).astype(np.float32)
    valid = np.triu(np.ones((n, n), dtype=bool), 1)
    if groups is not None and across:
        groups = np.asarray(groups)
        valid &= groups[:, None] != groups[None, :]
    if exclude is not None and len(exclude[0]):
        a, b = np.asarray(exclude[0]), np.asarray(exclude[1])
        valid[np.minimum(a, b), np.maximum(a, b)] = False
    i, j = np.nonzero(valid)
    scores = s[i, j]
    if len(scores) > k:
        part = np.argpartition(-scores, k - 1)[:k]
        i, j, scores = i[part], j[part], scores[part]
    rank = np.lexsort((j, i, -scores))
    return i[rank].astype(np.int64), j[rank].astype(np.int64), scores[rank].astype(np.float32)
