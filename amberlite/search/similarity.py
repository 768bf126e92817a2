"""Similarity search over a vector feature: nearest neighbours and best-matching pairs.

Both entry points use the feature's replica index when one is declared (``ctx.replicas``,
target ``hnsw``; it is caught up with the commit log first) and otherwise search exactly on
torch (the one kernel, :mod:`amberlite.search.kernel`). Both return a
:class:`~amberlite.search.result.SearchResult`: the table, ``method`` (``"hnsw"`` or
``"exact"``) and ``explain`` (one line saying why); :func:`explain_path` says which path a
query would take without running it. Scores are higher-is-better: cosine similarity, inner
product, or the negated squared L2 distance, per the index's space (cosine when there is no
index). Index results equal the exact ones up to the index's recall (raise ``ef`` to trade
speed for recall, per query).

Index hits are never trusted as they come: the hits' stored values are read back, compared
with the vectors the index holds (a difference marks the replica damaged) and scored again by
the exact kernel, hits no longer stored are dropped. A damaged replica (see
:mod:`amberlite.connectors.manager`) is not searched: the exact kernel answers and ``explain``
says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from amberlite.connectors.base import ReplicaDamaged
from amberlite.context import StoreContext, context_of
from amberlite.core.vectors import as_matrix, vector_dim
from amberlite.errors import ReplicaError, ResolveError
from amberlite.memo.key import memo_key
from amberlite.memo.store import ASSET_ID, ENTITY_ID, VALUE
from amberlite.search.kernel import exact_knn, exact_pairs, pair_keys, rank_pairs
from amberlite.search.result import SearchResult
from amberlite.search.targets import entity_refs, resolve_target

EXACT_SCOPE = 20_000  # a filtered scope this small is searched exactly, even with an index
MATCH_PROBE = (16, 64, 256)  # neighbours asked per row in successive HNSW match rounds


# -- resolving a query --------------------------------------------------------------------------
def _scope(
    ctx: StoreContext, feature: str, assets: Sequence[str] | str | None, params, compute: bool
) -> tuple[Any, Any, pa.Table]:
    spec = ctx.feature(feature)
    vector_dim(spec.output)
    asset_ids = ctx.resolve_assets(assets)
    if compute and not ctx.resolver.is_complete(spec, params, asset_ids):
        ctx.resolver.materialize(spec, params, asset_ids)
    key = memo_key(spec, params)
    table = ctx.memo.read(key, spec.output, asset_ids=asset_ids)
    return spec, key, table


def replica_of(ctx: StoreContext, key) -> tuple[Any, str] | None:
    """(open connector, target) of a dataset's replica, caught up; None when there is none
    or it is damaged."""
    return _open_replica(ctx, key)[0]


def _open_replica(ctx: StoreContext, key) -> tuple[tuple[Any, str] | None, str | None, str]:
    """(replica or None, why it is damaged or None, the space to search in)."""
    info = ctx.replicas.find(key)
    if info is None:
        return None, None, "cosine"
    space = str(info.options.get("space", "cosine"))
    try:
        return (ctx.replicas.connector(key, info.target), info.target), None, space
    except ReplicaDamaged as e:
        return None, damaged_text(e.target, e.reason, key), space


def damaged_text(target: str, reason: str, key) -> str:
    return (
        f"{target} index damaged ({reason}): exact search; "
        f"run `amberlite replicate rebuild {key.label}`"
    )


def explain_path(
    store: Any,
    feature: str,
    assets: Sequence[str] | str | None = None,
    params=None,
    ef: int | None = None,
) -> str:
    """One line: which search path a NEAREST / MATCH on ``feature`` takes and why (``ef``: the
    per-query value, shown instead of the index's default)."""
    ctx = context_of(store)
    spec = ctx.feature(feature)
    key = memo_key(spec, params)
    info = ctx.replicas.find(key)
    if info is None:
        ignored = f"; ef={ef} ignored" if ef is not None else ""
        return f"exact torch search over {spec.key} (no replica index{ignored})"
    damage = ctx.replicas.damage(key, info.target)
    if damage is not None:
        return f"{damaged_text(info.target, damage, key)} (over {spec.key})"
    o = info.options
    scoped = f" (exact when the asset scope has at most {EXACT_SCOPE} rows)" if assets else ""
    ef_text = f"ef={ef} per query" if ef is not None else f"ef={o.get('ef')}"
    return (
        f"{info.target} index over {spec.key} (space={o.get('space')}, M={o.get('M')}, "
        f"{ef_text}){scoped}"
    )


def _entity_columns(
    ctx: StoreContext, etype: str, ids: Sequence[str], assets: dict[str, str], suffix: str = ""
):
    """``id``, ``ref``, ``asset``, ``asset_id`` columns (the shared vocabulary) of entities
    (``assets``: entity id -> asset id, as stored with the values)."""
    refs = entity_refs(ctx, etype, ids)
    return {
        f"id{suffix}": pl.Series(list(ids), dtype=pl.Utf8),
        f"ref{suffix}": pl.Series([refs.get(e, (None,))[0] for e in ids], dtype=pl.Utf8),
        f"asset{suffix}": pl.Series(
            [refs[e][1] if e in refs else None for e in ids], dtype=pl.Utf8
        ),
        f"asset_id{suffix}": pl.Series([assets.get(e) for e in ids], dtype=pl.Utf8),
    }


def nearest(
    store: Any,
    feature: str,
    target: str | Sequence[float] | np.ndarray,
    k: int,
    ef: int | None = None,
    assets: Sequence[str] | str | None = None,
    *,
    params: Mapping[str, Any] | None = None,
    compute: bool = True,
    exact: bool = False,
) -> SearchResult:
    """The k entities whose ``feature`` value is closest to ``target``, best first: a table
    of ``id, ref, asset, asset_id, score``; ``method`` / ``explain`` say which path ran.

    ``target`` is an entity reference as AQL reads it (``'film1/12'``, an entity id; excluded
    from its own result) or a vector. ``assets`` limits the candidates to those assets.
    ``exact=True`` forces the exact path."""
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ReplicaError(f"k must be a positive integer, not {k!r}")
    ctx = context_of(store)
    spec, key, table = _scope(ctx, feature, assets, params, compute)
    dim = vector_dim(spec.output)
    rep, damaged, space = (None, None, "cosine") if exact else _open_replica(ctx, key)
    self_id, qvec = _target_vector(ctx, spec, key, params, target, dim, compute)
    kk = k + (self_id is not None)
    ids = table.column(ENTITY_ID).to_numpy(zero_copy_only=False)
    got = None
    if rep is not None and (assets is None or len(ids) > EXACT_SCOPE):
        conn, name = rep
        allowed = None if assets is None else set(ids.tolist())
        found, _ = conn.search(qvec[None, :], kk, ef=ef, allowed=allowed)
        got, bad = _rescored(conn, table, found[0], qvec, min(kk, len(ids)), dim)
        method = name
        why = f"{name} index (space={space}, ef={ef or conn.options.get('ef')}), rescored"
        if conn.damage:
            damaged = damaged_text(name, conn.damage, key)
        elif bad:
            damaged = f"exact torch search ({name} index: {bad})"
    if got is None:
        idx, scores = exact_knn(as_matrix(table.column(VALUE), dim), qvec[None, :], kk, space)
        got = [(ids[i], float(s)) for i, s in zip(idx[0], scores[0])]
        method = "exact"
        why = (
            "exact torch search (forced)"
            if exact
            else damaged
            if damaged
            else "exact torch search (small asset scope)"
            if rep
            else "exact torch search (no replica index)"
        )
    got = [(e, s) for e, s in got if e != self_id][:k]
    cols = _entity_columns(ctx, spec.entity, [e for e, _ in got], _assets_of(table))
    cols["score"] = pl.Series([s for _, s in got], dtype=pl.Float32)
    return SearchResult(pl.DataFrame(cols), method, why)


def _rescored(conn, table: pa.Table, hits, qvec: np.ndarray, want: int, dim: int):
    """(id, score) of index hits scored again from their stored values, best first, and
    None; or (None, why) when the hits cannot be trusted: a hit's vector in the index differs
    from its stored value (the connector is marked damaged), or dropping the hits no longer
    stored leaves fewer than ``want``."""
    hit_ids = [e for e in hits if e is not None]
    pos = pc.index_in(pa.array(hit_ids, pa.string()), value_set=table.column(ENTITY_ID))
    keep = [(e, p) for e, p in zip(hit_ids, pos.to_pylist()) if p is not None]
    if len(keep) < want:
        return None, "hits that are not stored"
    if not keep:
        return [], None
    kept_ids = [e for e, _ in keep]
    values = as_matrix(table.column(VALUE).take(pa.array([p for _, p in keep])), dim)
    if _differs(conn, kept_ids, values):
        conn.damage = "index vectors differ from the stored values"
        return None, conn.damage
    idx, scores = exact_knn(values, qvec[None, :], len(keep), conn.space)
    return [(kept_ids[i], float(s)) for i, s in zip(idx[0], scores[0])], None


def _differs(conn, entity_ids: list, values: np.ndarray) -> bool:
    """Whether the index holds other vectors than ``values`` (stored) for these entities.
    A stand-in index without ``vectors`` (tests' exact one) is not checked."""
    if not hasattr(conn, "vectors") or not entity_ids:
        return False
    got = conn.vectors(entity_ids)
    return not np.allclose(got, conn.kept(values), rtol=1e-5, atol=1e-5)


def _pair_scores(mat: np.ndarray, a: np.ndarray, b: np.ndarray, space: str) -> np.ndarray:
    """The exact kernel's score of row pairs ``(a[i], b[i])``."""
    x, y = np.asarray(mat[a], np.float32), np.asarray(mat[b], np.float32)
    if space == "cosine":
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        y = y / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12)
    if space == "l2":
        return -((x - y) ** 2).sum(axis=1, dtype=np.float32)
    return (x * y).sum(axis=1, dtype=np.float32)


def _assets_of(table: pa.Table) -> dict[str, str]:
    return dict(
        zip(table.column(ENTITY_ID).to_pylist(), table.column(ASSET_ID).to_pylist(), strict=True)
    )


def _target_vector(ctx, spec, key, params, target, dim, compute) -> tuple[str | None, np.ndarray]:
    """(entity id or None, query vector) of an entity id, a reference, or a vector."""
    if isinstance(target, str):
        entity_id = target
        found = ctx.memo.read(key, spec.output, entity_ids=[entity_id])
        if found.num_rows == 0:  # not a stored id: a reference as AQL reads it
            entity_id, asset_id = resolve_target(ctx, spec.entity, target, compute)
            found = ctx.memo.read(key, spec.output, entity_ids=[entity_id])
        if found.num_rows == 0 and compute:
            ctx.resolver.materialize(spec, params, [asset_id], entity_ids=[entity_id])
            found = ctx.memo.read(key, spec.output, entity_ids=[entity_id])
        if found.num_rows == 0:
            raise ResolveError(
                f"{spec.key} has no value for {spec.entity} {target!r} (not computed, or its "
                "computation failed: see `amberlite status`)",
                name=target,
            )
        return entity_id, as_matrix(found.column(VALUE), dim)[-1]
    vec = np.asarray(target, dtype=np.float32).reshape(-1)
    if vec.shape[0] != dim:
        raise ReplicaError(f"query vector has {vec.shape[0]} values, {spec.key} has {dim}")
    return None, vec


def match(
    store: Any,
    feature: str,
    k: int,
    across_assets: bool = False,
    assets: Sequence[str] | str | None = None,
    ef: int | None = None,
    *,
    params: Mapping[str, Any] | None = None,
    compute: bool = True,
    exact: bool = False,
) -> SearchResult:
    """The k best pairs of entities by ``feature``, best first, each unordered pair once: a
    table of ``id_a, ref_a, asset_a, asset_id_a``, the same for ``b``, and ``score``;
    ``across_assets`` keeps pairs of two different assets. ``method`` / ``explain`` say which
    path ran.

    With an index every row asks the index for its nearest neighbours; rows whose neighbour
    list could still hide a pair better than the current k-th best are asked again with a
    wider list (``MATCH_PROBE``) and, past the widest, scored exactly."""
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ReplicaError(f"k must be a positive integer, not {k!r}")
    ctx = context_of(store)
    spec, key, table = _scope(ctx, feature, assets, params, compute)
    dim = vector_dim(spec.output)
    ids = np.array(table.column(ENTITY_ID).to_pylist(), dtype=object)
    asset_col = table.column(ASSET_ID).to_pylist()
    _, groups = np.unique(np.array(asset_col, dtype=object), return_inverse=True)
    mat = as_matrix(table.column(VALUE), dim)
    rep, damaged, space = (None, None, "cosine") if exact else _open_replica(ctx, key)
    if rep is not None and (assets is None or len(ids) > EXACT_SCOPE):
        allowed = None if assets is None else set(ids.tolist())
        a, b, s, why = index_pairs(rep[0], ids, groups, mat, k, across_assets, ef, allowed)
        method = "exact" if rep[0].damage else rep[1]
    else:
        a, b, s = exact_pairs(mat, k, groups, across_assets, space)
        method = "exact"
        why = damaged or "exact torch search" + (" (forced)" if exact else "")
    cols = {
        **_entity_columns(ctx, spec.entity, ids[a].tolist(), _assets_of(table), "_a"),
        **_entity_columns(ctx, spec.entity, ids[b].tolist(), _assets_of(table), "_b"),
        "score": pl.Series(s, dtype=pl.Float32),
    }
    return SearchResult(pl.DataFrame(cols), method, why)


def index_pairs(conn, ids, groups, mat, k, across, ef, allowed, exclude=None):
    """Top-k pairs from per-row index searches, widening where a better pair may hide.

    ``allowed`` (a set of ids, or None: every indexed entity) restricts the candidates;
    ``exclude`` is a (2, m) array of row pairs that never pair (as in :func:`exact_pairs`).
    Neighbours' vectors in the index are compared with ``mat`` (the stored values) and every
    candidate pair is scored from ``mat``; a difference marks the connector damaged and the
    pairs are found by the exact kernel instead (``why`` says so)."""
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
        seen = np.unique(cols[cols >= 0])
        if _differs(conn, ids[seen].tolist(), mat[seen]):
            conn.damage = "index vectors differ from the stored values"
            a, b, s = exact_pairs(mat, k, groups, across, conn.space, exclude=exclude)
            return a, b, s, damaged_text(conn.name, conn.damage, conn.key)
        sc = np.where(cols >= 0, sc, np.nan).astype(np.float32)
        sc[cols >= 0] = _pair_scores(mat, rows[cols >= 0], cols[cols >= 0], conn.space)
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
    return rank_pairs(np.concatenate(cand_a), np.concatenate(cand_b), np.concatenate(cand_s), k)
