"""Similarity search over a vector feature: nearest neighbours and best-matching pairs.

Both entry points use the feature's replica index when one is declared (``store.replicas``,
target ``hnsw``; it is caught up with the commit log first) and otherwise search exactly on
torch: blocked matrix products and ``torch.topk``, memory bounded by ``BLOCK_ELEMS`` scores.
The returned DataFrame carries ``.method`` (``"hnsw"`` or ``"exact"``) and ``.explain`` (one
line saying why), and :func:`explain_path` says which path a query would take without running
it. Scores are higher-is-better: cosine similarity, inner product, or the negated squared L2
distance, per the index's space (cosine when there is no index). Index results equal the exact
ones up to the index's recall (raise ``ef`` to trade speed for recall, per query).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl
import pyarrow as pa
import torch

from amberlite.connectors.base import ReplicaError, as_matrix, vector_dim
from amberlite.errors import ResolveError
from amberlite.memo.store import ASSET_ID, ENTITY_ID, VALUE

if TYPE_CHECKING:
    from amberlite.api import Store

BLOCK_ELEMS = 1 << 25  # scores per block of the exact search (128 MiB of float32)
EXACT_SCOPE = 20_000  # a filtered scope this small is searched exactly, even with an index
MATCH_PROBE = (16, 64, 256)  # neighbours asked per row in successive HNSW match rounds


# -- exact search on torch ------------------------------------------------------------------------
def _prepare(x: np.ndarray | torch.Tensor, space: str) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = np.require(x, np.float32, ["C", "W"])  # torch wants a writable array
    t = torch.as_tensor(x).float()
    if space == "cosine":
        t = torch.nn.functional.normalize(t, dim=1)
    return t


def _scores(q: torch.Tensor, x: torch.Tensor, space: str, xsq: torch.Tensor | None) -> torch.Tensor:
    s = q @ x.T
    if space == "l2":
        s = 2 * s - (q * q).sum(1, keepdim=True) - xsq[None, :]
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
    x = _prepare(data, space)
    q = _prepare(queries, space)
    k = min(k, x.shape[0])
    xsq = (x * x).sum(1) if space == "l2" else None
    rows = max(1, block_elems // max(1, x.shape[0]))
    idx_out, sc_out = [], []
    with torch.inference_mode():
        for s in range(0, q.shape[0], rows):
            sc, ix = torch.topk(_scores(q[s : s + rows], x, space, xsq), k, dim=1)
            idx_out.append(ix)
            sc_out.append(sc)
    if not idx_out:
        return np.zeros((0, k), np.int64), np.zeros((0, k), np.float32)
    return torch.cat(idx_out).numpy(), torch.cat(sc_out).numpy()


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
    """The global top-k unordered pairs ``i < j`` (``i != j``) and their scores, best first.

    With ``across`` pairs within one group are excluded. With ``rows_subset`` only pairs with
    at least one end in the subset are scored. ``exclude`` is a (2, m) array of row pairs that
    never pair (e.g. adjacent shots). Ties are broken by ``(i, j)``."""
    x = _prepare(data, space)
    n = x.shape[0]
    ex = None if exclude is None or len(exclude[0]) == 0 else torch.as_tensor(exclude)
    xsq = (x * x).sum(1) if space == "l2" else None
    g = torch.as_tensor(groups) if groups is not None else None
    rows = np.arange(n) if rows_subset is None else np.asarray(rows_subset)
    in_subset = torch.zeros(n, dtype=torch.bool)
    in_subset[torch.as_tensor(rows)] = True
    step = max(1, block_elems // max(1, n))
    best_s = torch.empty(0)
    best_i = torch.empty(0, dtype=torch.int64)
    best_j = torch.empty(0, dtype=torch.int64)
    cols = torch.arange(n)
    with torch.inference_mode():
        for s in range(0, len(rows), step):
            ri = torch.as_tensor(rows[s : s + step])
            sc = _scores(x[ri], x, space, xsq)
            # each unordered pair once: keep j > i, or j in no-subset (scored from this side)
            keep = (cols[None, :] > ri[:, None]) | ~in_subset[None, :]
            keep &= cols[None, :] != ri[:, None]
            if across and g is not None:
                keep &= g[None, :] != g[ri][:, None]
            if ex is not None:
                _mask_pairs(keep, ri, ex, n)
            sc = sc.masked_fill(~keep, float("-inf"))
            kk = min(k, sc.numel())
            vals, flat = torch.topk(sc.reshape(-1), kk)
            ok = torch.isfinite(vals)
            vals, flat = vals[ok], flat[ok]
            best_s = torch.cat([best_s, vals])
            best_i = torch.cat([best_i, ri[flat // n]])
            best_j = torch.cat([best_j, flat % n])
            if len(best_s) > k:
                best_s, top = torch.topk(best_s, k)
                best_i, best_j = best_i[top], best_j[top]
    a = torch.minimum(best_i, best_j).numpy()
    b = torch.maximum(best_i, best_j).numpy()
    return _rank_pairs(a, b, best_s.numpy(), k)


def _mask_pairs(keep: torch.Tensor, ri: torch.Tensor, ex: torch.Tensor, n: int) -> None:
    """Clear ``keep[r, c]`` for the excluded pairs (either orientation) of block rows ``ri``."""
    where = torch.full((n,), -1, dtype=torch.int64)
    where[ri] = torch.arange(len(ri))
    for a, b in ((ex[0], ex[1]), (ex[1], ex[0])):
        sel = where[a] >= 0
        keep[where[a[sel]], b[sel]] = False


def pair_keys(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    """One int64 per unordered pair of row indices (``min * n + max``)."""
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    return np.minimum(a, b) * n + np.maximum(a, b)


def _rank_pairs(a: np.ndarray, b: np.ndarray, s: np.ndarray, k: int):
    """Deduplicate (a, b) pairs (a < b) and keep the k best by (-score, a, b)."""
    if len(a) == 0:
        return a.astype(np.int64), b.astype(np.int64), s.astype(np.float32)
    order = np.lexsort((b, a, -s))
    a, b, s = a[order], b[order], s[order]
    key = a.astype(np.int64) * (int(max(a.max(), b.max())) + 1) + b
    _, first = np.unique(key, return_index=True)
    first = np.sort(first)[:k]
    return a[first].astype(np.int64), b[first].astype(np.int64), s[first].astype(np.float32)


# -- resolving a query --------------------------------------------------------------------------
def _scope(
    store: Store, feature: str, assets: Sequence[str] | str | None, params, compute: bool
) -> tuple[Any, Any, pa.Table]:
    from amberlite.run.resolve import memo_key

    spec = store.feature(feature)
    vector_dim(spec.output)
    asset_ids = store.resolve_assets(assets)
    if compute and not store.resolver.is_complete(spec, params, asset_ids):
        store.resolver.materialize(spec, params, asset_ids)
    key = memo_key(spec, params)
    table = store.memo.read(key, spec.output, asset_ids=asset_ids)
    return spec, key, table


def _replica(store: Store, key) -> tuple[Any, str] | None:
    info = store.replicas.find(key)
    if info is None:
        return None
    return store.replicas.connector(key, info.target), info.target


def explain_path(
    store: Store,
    feature: str,
    assets: Sequence[str] | str | None = None,
    params=None,
    ef: int | None = None,
) -> str:
    """One line: which search path a NEAREST / MATCH on ``feature`` takes and why (``ef``: the
    per-query value, shown instead of the index's default)."""
    from amberlite.run.resolve import memo_key

    spec = store.feature(feature)
    info = store.replicas.find(memo_key(spec, params))
    if info is None:
        ignored = f"; ef={ef} ignored" if ef is not None else ""
        return f"exact torch search over {spec.key} (no replica index{ignored})"
    o = info.options
    scoped = f" (exact when the asset scope has at most {EXACT_SCOPE} rows)" if assets else ""
    ef_text = f"ef={ef} per query" if ef is not None else f"ef={o.get('ef')}"
    return (
        f"{info.target} index over {spec.key} (space={o.get('space')}, M={o.get('M')}, "
        f"{ef_text}){scoped}"
    )


def _frame(cols: dict[str, Any], method: str, explain: str) -> pl.DataFrame:
    df = pl.DataFrame(cols)
    df.method = method  # type: ignore[attr-defined]
    df.explain = explain  # type: ignore[attr-defined]
    return df


def nearest(
    store: Store,
    feature: str,
    target: str | Sequence[float] | np.ndarray,
    k: int,
    ef: int | None = None,
    assets: Sequence[str] | str | None = None,
    *,
    params: Mapping[str, Any] | None = None,
    compute: bool = True,
    exact: bool = False,
) -> pl.DataFrame:
    """The k entities whose ``feature`` value is closest to ``target`` (entity_id, asset_id,
    score), best first; ``.method`` / ``.explain`` say which path ran.

    ``target`` is an entity id (excluded from its own result) or a vector. ``assets`` limits
    the candidates to those assets. ``exact=True`` forces the exact path."""
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ReplicaError(f"k must be a positive integer, not {k!r}")
    spec, key, table = _scope(store, feature, assets, params, compute)
    dim = vector_dim(spec.output)
    rep = None if exact else _replica(store, key)
    space = rep[0].space if rep else "cosine"
    self_id, qvec = _target_vector(store, spec, key, table, target, dim, rep)
    kk = k + (self_id is not None)
    ids = table.column(ENTITY_ID).to_numpy(zero_copy_only=False)
    if rep is not None and (assets is None or len(ids) > EXACT_SCOPE):
        conn, name = rep
        allowed = None if assets is None else set(ids.tolist())
        found, scores = conn.search(qvec[None, :], kk, ef=ef, allowed=allowed)
        got = [(e, float(s)) for e, s in zip(found[0], scores[0]) if e is not None]
        method = name
        why = f"{name} index (space={space}, ef={ef or conn.options.get('ef')})"
    else:
        idx, scores = exact_knn(as_matrix(table.column(VALUE), dim), qvec[None, :], kk, space)
        got = [(ids[i], float(s)) for i, s in zip(idx[0], scores[0])]
        method = "exact"
        why = (
            "exact torch search (forced)"
            if exact
            else "exact torch search (small asset scope)"
            if rep
            else "exact torch search (no replica index)"
        )
    got = [(e, s) for e, s in got if e != self_id][:k]
    asset_of = _assets_of(table)
    return _frame(
        {
            "entity_id": pl.Series([e for e, _ in got], dtype=pl.Utf8),
            "asset_id": pl.Series([asset_of.get(e) for e, _ in got], dtype=pl.Utf8),
            "score": pl.Series([s for _, s in got], dtype=pl.Float32),
        },
        method,
        why,
    )


def _assets_of(table: pa.Table) -> dict[str, str]:
    return dict(
        zip(table.column(ENTITY_ID).to_pylist(), table.column(ASSET_ID).to_pylist(), strict=True)
    )


def _target_vector(store, spec, key, table, target, dim, rep) -> tuple[str | None, np.ndarray]:
    if isinstance(target, str):
        found = store.memo.read(key, spec.output, entity_ids=[target])
        if found.num_rows == 0:
            raise ResolveError(f"no stored {spec.key} value for entity {target!r}", name=target)
        return target, as_matrix(found.column(VALUE), dim)[-1]
    vec = np.asarray(target, dtype=np.float32).reshape(-1)
    if vec.shape[0] != dim:
        raise ReplicaError(f"query vector has {vec.shape[0]} values, {spec.key} has {dim}")
    return None, vec


def match(
    store: Store,
    feature: str,
    k: int,
    across_assets: bool = False,
    assets: Sequence[str] | str | None = None,
    ef: int | None = None,
    *,
    params: Mapping[str, Any] | None = None,
    compute: bool = True,
    exact: bool = False,
) -> pl.DataFrame:
    """The k best pairs of entities by ``feature`` (entity_a, asset_a, entity_b, asset_b,
    score), best first, each unordered pair once; ``across_assets`` keeps pairs of two
    different assets. ``.method`` / ``.explain`` say which path ran.

    With an index every row asks the index for its nearest neighbours; rows whose neighbour
    list could still hide a pair better than the current k-th best are asked again with a
    wider list (``MATCH_PROBE``) and, past the widest, scored exactly."""
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ReplicaError(f"k must be a positive integer, not {k!r}")
    spec, key, table = _scope(store, feature, assets, params, compute)
    dim = vector_dim(spec.output)
    ids = np.array(table.column(ENTITY_ID).to_pylist(), dtype=object)
    asset_col = table.column(ASSET_ID).to_pylist()
    _, groups = np.unique(np.array(asset_col, dtype=object), return_inverse=True)
    mat = as_matrix(table.column(VALUE), dim)
    rep = None if exact else _replica(store, key)
    space = rep[0].space if rep else "cosine"
    if rep is not None and (assets is None or len(ids) > EXACT_SCOPE):
        allowed = None if assets is None else set(ids.tolist())
        a, b, s, why = _index_pairs(rep[0], ids, groups, mat, k, across_assets, ef, allowed)
        method = rep[1]
    else:
        a, b, s = exact_pairs(mat, k, groups, across_assets, space)
        method = "exact"
        why = "exact torch search" + (" (forced)" if exact else "")
    return _frame(
        {
            "entity_a": pl.Series(ids[a].tolist(), dtype=pl.Utf8),
            "asset_a": pl.Series([asset_col[i] for i in a], dtype=pl.Utf8),
            "entity_b": pl.Series(ids[b].tolist(), dtype=pl.Utf8),
            "asset_b": pl.Series([asset_col[i] for i in b], dtype=pl.Utf8),
            "score": pl.Series(s, dtype=pl.Float32),
        },
        method,
        why,
    )


def _index_pairs(conn, ids, groups, mat, k, across, ef, allowed, exclude=None):
    """Top-k pairs from per-row index searches, widening where a better pair may hide.

    ``allowed`` (a set of ids, or None: every indexed entity) restricts the candidates;
    ``exclude`` is a (2, m) array of row pairs that never pair (as in :func:`exact_pairs`)."""
    n = len(ids)
    pos = {e: i for i, e in enumerate(ids.tolist())}
    ex_keys = None
    if exclude is not None and len(exclude[0]):
        ex_keys = np.unique(pair_keys(exclude[0], exclude[1], n))
    to_pos = np.vectorize(lambda e: pos.get(e, -1), otypes=[np.int64])
    cand_a, cand_b, cand_s = [], [], []
    pending = np.arange(n)
    rounds = 0
    for probe in MATCH_PROBE:
        if len(pending) == 0:
            break
        kq = min(n, probe)
        found, scores = conn.search(mat[pending], kq, ef=max(ef or 0, 2 * kq), allowed=allowed)
        nb = to_pos(np.where(found == None, "", found))  # noqa: E711 - elementwise
        rounds += 1
        rows = np.repeat(pending, kq)
        cols, sc = nb.reshape(-1), scores.reshape(-1)
        ok = (cols >= 0) & (cols != rows) & np.isfinite(sc)
        if across:
            ok &= groups[rows] != groups[np.maximum(cols, 0)]
        if ex_keys is not None:
            ok &= ~np.isin(pair_keys(rows, np.maximum(cols, 0), n), ex_keys)
        cand_a.append(np.minimum(rows, cols)[ok])
        cand_b.append(np.maximum(rows, cols)[ok])
        cand_s.append(sc[ok])
        mine = ok.reshape(len(pending), kq).sum(1)
        a, b, s = _merge(cand_a, cand_b, cand_s, k)
        tau = s[-1] if len(s) >= k else -np.inf
        last = np.nan_to_num(scores[:, -1], nan=-np.inf)
        # a row may hide a better pair only if its list is full of rows scoring >= tau
        pending = pending[(last >= tau) & (mine < k) & (kq < n)]
    why = f"hnsw index, {rounds} probe round(s)"
    if len(pending):
        # rows whose widest list still reaches the threshold: score them exactly
        ea, eb, es = exact_pairs(
            mat, k, groups, across, conn.space, rows_subset=pending, exclude=exclude
        )
        cand_a.append(ea)
        cand_b.append(eb)
        cand_s.append(es)
        why += f", {len(pending)} row(s) scored exactly"
    a, b, s = _merge(cand_a, cand_b, cand_s, k)
    return a, b, s, why


def _merge(cand_a: list, cand_b: list, cand_s: list, k: int):
    return _rank_pairs(np.concatenate(cand_a), np.concatenate(cand_b), np.concatenate(cand_s), k)
