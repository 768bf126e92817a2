"""Scoring every pair of shots on torch and keeping the global top k.

Contract of :func:`top_k_pairs`: rows of ``x`` are shots; every unordered pair ``i < j`` is
scored by cosine (rows are expected L2-normalized; the score is the dot product) or by IoU
of binary masks (``|A∩B| = A·Bᵀ``, ``|A∪B| = |A| + |B| - |A∩B|``, 0 when both are empty).
Pairs of adjacent shots (same group, order differing by 1) are excluded, and with
``across_only`` every pair within a group. The work is blocked matrix products (a block of
rows against every later row), ``torch.topk`` per block (per row, then over the rows'
winners), and a merge of the block winners into a global top k: memory stays at
``block_elems`` scores, and there is no Python loop over pairs. Results are sorted by score
(descending), ties by ``(i, j)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

METRICS = ("cosine", "iou")


@dataclass(frozen=True)
class TopPairs:
    """Row indices ``i < j`` and scores of the best pairs, best first."""

    i: np.ndarray
    j: np.ndarray
    score: np.ndarray

    def __len__(self) -> int:
        return len(self.score)


def _as_tensor(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    t = torch.as_tensor(x)
    return t.float() if t.dtype != torch.float32 else t


def _block_scores(
    xb: torch.Tensor, rest: torch.Tensor, metric: str, area_b: torch.Tensor, area_r: torch.Tensor
) -> torch.Tensor:
    """Scores of a block of rows against ``rest`` (the rows from the block's first on)."""
    dots = xb @ rest.T
    if metric == "cosine":
        return dots
    # binary masks: areas and intersections are whole counts; an empty union has dots == 0
    union = area_b[:, None] + area_r[None, :]
    return dots.div_(union.sub_(dots).clamp_min_(1.0))


def _excluded_pairs(groups: np.ndarray, order: np.ndarray) -> np.ndarray:
    """(2, m) row-index pairs ``i < j`` of adjacent shots: same group, order differing by 1."""
    idx = np.lexsort((order, groups))
    g, o = groups[idx], order[idx]
    nxt = (g[1:] == g[:-1]) & (o[1:] - o[:-1] == 1)
    a, b = idx[:-1][nxt], idx[1:][nxt]
    return np.stack([np.minimum(a, b), np.maximum(a, b)])


def top_k_pairs(
    x: np.ndarray | torch.Tensor,
    k: int,
    *,
    metric: str = "cosine",
    groups: np.ndarray | None = None,
    order: np.ndarray | None = None,
    across_only: bool = False,
    block_elems: int = 1 << 23,
) -> TopPairs:
    """The ``k`` best-scoring pairs of rows of ``x`` (see the module contract).

    ``groups`` (int per row, e.g. asset) and ``order`` (int per row, e.g. shot index) define
    adjacency; without them no pair is adjacent and ``across_only`` has no effect.
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    x = _as_tensor(x)
    n = x.shape[0]
    empty = TopPairs(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32))
    if n < 2 or k < 1:
        return empty
    g = torch.as_tensor(np.asarray(groups, dtype=np.int64)) if groups is not None else None
    adj = None
    if groups is not None and order is not None:
        adj = torch.as_tensor(_excluded_pairs(np.asarray(groups), np.asarray(order)))
    area = x.sum(dim=1) if metric == "iou" else x.new_zeros(n)
    rows = max(1, min(n, block_elems // n))
    best_s = torch.empty(0)
    best_i = torch.empty(0, dtype=torch.int64)
    best_j = torch.empty(0, dtype=torch.int64)
    neg = float("-inf")
    with torch.inference_mode():
        for r0 in range(0, n - 1, rows):
            r1 = min(n, r0 + rows)
            s = _block_scores(x[r0:r1], x[r0:], metric, area[r0:r1], area[r0:])
            # only pairs i < j: mask the block's lower triangle and diagonal
            s[:, : r1 - r0].masked_fill_(torch.ones(r1 - r0, r1 - r0, dtype=torch.bool).tril(), neg)
            if adj is not None:
                sel = (adj[0] >= r0) & (adj[0] < r1)
                s[adj[0, sel] - r0, adj[1, sel] - r0] = neg
            if across_only and g is not None:
                s.masked_fill_(g[r0:r1, None] == g[None, r0:], neg)
            # two-stage top k: per row (fast along contiguous rows), then over the winners
            kk = min(k, s.shape[1])
            row_vals, row_cols = torch.topk(s, kk, dim=1)
            vals, pos = torch.topk(row_vals.reshape(-1), min(k, row_vals.numel()))
            best_s = torch.cat([best_s, vals])
            best_i = torch.cat([best_i, pos // kk + r0])
            best_j = torch.cat([best_j, row_cols.reshape(-1)[pos] + r0])
            if best_s.numel() > k:
                best_s, keep = torch.topk(best_s, k)
                best_i, best_j = best_i[keep], best_j[keep]
    ok = torch.isfinite(best_s)
    s_np = best_s[ok].numpy()
    i_np, j_np = best_i[ok].numpy(), best_j[ok].numpy()
    rank = np.lexsort((j_np, i_np, -s_np))[:k]
    return TopPairs(i_np[rank], j_np[rank], s_np[rank])


def top_k_pairs_numpy(
    x: np.ndarray,
    k: int,
    *,
    metric: str = "cosine",
    groups: np.ndarray | None = None,
    order: np.ndarray | None = None,
    across_only: bool = False,
) -> TopPairs:
    """Reference implementation: the whole score matrix in numpy, then ``argpartition``.

    Same contract as :func:`top_k_pairs`; n x n memory. For tests and benchmarks.
    """
    x = np.asarray(x, dtype=np.float32)
    n = len(x)
    s = x @ x.T
    if metric == "iou":
        area = x.sum(axis=1)
        union = area[:, None] + area[None, :] - s
        s = np.where(union > 0, s / np.maximum(union, 1e-9), 0.0).astype(np.float32)
    valid = np.triu(np.ones((n, n), dtype=bool), 1)
    if groups is not None:
        groups = np.asarray(groups)
        same = groups[:, None] == groups[None, :]
        if order is not None:
            order = np.asarray(order)
            valid &= ~(same & (np.abs(order[:, None] - order[None, :]) == 1))
        if across_only:
            valid &= ~same
    i, j = np.nonzero(valid)
    scores = s[i, j]
    if len(scores) > k:
        part = np.argpartition(-scores, k - 1)[:k]
        i, j, scores = i[part], j[part], scores[part]
    rank = np.lexsort((j, i, -scores))
    return TopPairs(i[rank], j[rank], scores[rank].astype(np.float32))
