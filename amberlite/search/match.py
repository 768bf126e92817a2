"""MATCH: the best pairs of shots for a match type (the core of match cutting).

Every stage is a memoized feature: ``shots`` (segmenter) -> ``shot_embedding`` -> ``dedup``,
and one embedding per match type (``match_color``, ``match_framing``, ``match_motion``; see
:mod:`amberlite.library.match_types`). :func:`prepare` computes what is missing;
:func:`scored_pairs` scores the kept shots with the one exact kernel
(:func:`amberlite.search.kernel.exact_pairs`) or, for a cosine match type whose feature has a
cosine replica index, through the index. Adjacent shots, near-duplicates (within an asset
and across the assets of a scope) and shots shorter than ``min_shot`` never pair.

Pair columns (the vocabulary of every pair result): ``asset_a``, ``ref_a`` (``film1/12``),
``shot_a`` (index), ``start_a``, ``end_a`` (seconds), then the same for ``b``, then ``score``;
the full table adds ``asset_id_a``, ``id_a`` (the stable entity id), ``start_frame_a``,
``end_frame_a`` and the same for ``b``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from amberlite.context import StoreContext, context_of
from amberlite.core.vectors import as_matrix, unit_rows
from amberlite.errors import AmberliteError
from amberlite.library.match_types import DEDUP, MatchSpec, resolve_match_type
from amberlite.memo.key import memo_key
from amberlite.run.resolve import RunStats
from amberlite.search.kernel import (
    adjacent_pairs,
    exact_pairs,
    keep_first_of_pairs,
    pairs_above,
)
from amberlite.search.result import SearchResult
from amberlite.search.similarity import EXACT_SCOPE, explain_path, index_pairs, replica_of

MIN_SHOT = 0.5  # seconds: shorter shots never pair (they are still shots)
PAIR_COLUMNS = [
    "asset_a",
    "ref_a",
    "shot_a",
    "start_a",
    "end_a",
    "asset_b",
    "ref_b",
    "shot_b",
    "start_b",
    "end_b",
    "score",
]


def prepare(
    store: Any,
    assets: Sequence[str] | str | None,
    match_type: str | Sequence[str],
    progress: bool | None = None,
) -> list[RunStats]:
    """Compute whatever is missing for one match type, or several (a list), over the assets
    (shots, dedup, the match embeddings); returns the resolver's run stats (nothing stored is
    computed again). The shot features are computed together over one decode of each batch
    of shots (:meth:`~amberlite.run.resolve.Resolver.materialize_many`): ``shot_embedding``
    and every match type's embedding."""
    ctx = context_of(store)
    types = [match_type] if isinstance(match_type, str) else list(match_type)
    features = [resolve_match_type(ctx.registry, t).feature for t in types]
    asset_ids = ctx.resolve_assets(assets)
    names = list(dict.fromkeys([DEDUP, *features]))
    return ctx.resolver.materialize_many(
        [(ctx.feature(name), None) for name in names], asset_ids, progress=progress
    )


def candidate_shots(
    ctx: StoreContext,
    asset_ids: Sequence[str] | None,
    match: MatchSpec,
    min_shot: float = MIN_SHOT,
):
    """(shots DataFrame, vectors) of the shots that may pair, sorted by asset and shot index:
    at least ``min_shot`` seconds long, kept by ``dedup`` within their asset and by the same
    rule across the assets of the scope (:func:`cross_duplicates`), with a match value.
    Shots whose values failed are left out. The frame's ``order`` column numbers the shots
    of each asset that are long enough: two shots are adjacent when no shot of at least
    ``min_shot`` lies between them (a shot split around a very short piece stays adjacent)."""
    if isinstance(min_shot, bool) or not isinstance(min_shot, int | float) or not min_shot >= 0:
        raise AmberliteError(f"min_shot must be a number of seconds >= 0, got {min_shot!r}")
    shots = ctx.resolver.entity_table("shot", asset_ids)
    shots = shots.filter((pl.col("end_s") - pl.col("start_s")) >= float(min_shot) - 1e-9)
    shots = shots.with_columns(pl.col("idx").rank("ordinal").over("asset_id").alias("order"))
    spec = ctx.feature(match.feature)
    table = ctx.memo.read(memo_key(spec, None), spec.output, asset_ids=asset_ids)
    dedup_spec = ctx.feature(DEDUP)
    dedup = ctx.memo.read(memo_key(dedup_spec, None), dedup_spec.output, asset_ids=asset_ids)
    kept = pl.from_arrow(dedup.select([0, 2]).rename_columns(["entity_id", "kept"]))
    ids = pl.DataFrame(
        {"entity_id": table.column(0).to_pylist(), "row": range(table.num_rows)},
        schema={"entity_id": pl.String, "row": pl.Int64},
    )
    aliases = ctx.names().alias_of
    frame = (
        shots.join(kept.filter(pl.col("kept")), on="entity_id")
        .join(ids, on="entity_id")
        .with_columns(
            pl.col("asset_id").replace_strict(aliases, return_dtype=pl.String).alias("alias")
        )
        .sort("asset_id", "idx")
    )
    vectors = as_matrix(table.column(2), spec.output.list_size)[frame["row"].to_numpy()]
    if frame["asset_id"].n_unique() > 1:
        keep = ~cross_duplicates(ctx, frame)
        frame, vectors = frame.filter(pl.Series(keep)), vectors[keep]
    return frame, vectors


def cross_duplicates(ctx: StoreContext, frame: pl.DataFrame) -> np.ndarray:
    """Which rows of ``frame`` (shots of several assets) are near-duplicates of a shot of
    another asset that comes first: the ``dedup`` rule (cosine of ``shot_embedding`` >= its
    ``threshold``, greedy, the first of each group kept) applied across assets, assets in
    alias order and shots in time order. The shots of one asset are already apart. Every
    pair of assets is compared (the blocked kernel, :func:`pairs_above`): the cost grows
    with the pairs, like exact pair scoring."""
    dedup_spec = ctx.feature(DEDUP)
    threshold = float(dedup_spec.resolve_params(None)["threshold"])
    emb_ref = dedup_spec.inputs[0]
    emb_spec = ctx.registry.resolve_input(emb_ref)
    table = ctx.memo.read(
        memo_key(emb_spec, dict(emb_ref.params)),
        emb_spec.output,
        entity_ids=frame["entity_id"].to_list(),
    )
    pos = {e: i for i, e in enumerate(table.column(0).to_pylist())}
    emb = as_matrix(table.column(2), emb_spec.output.list_size)
    rows = np.array([pos.get(e, -1) for e in frame["entity_id"].to_list()], dtype=np.int64)
    x = np.zeros((len(frame), emb.shape[1]), np.float32)
    x[rows >= 0] = emb[rows[rows >= 0]]
    x = unit_rows(x)
    rank = np.lexsort((frame["idx"].to_numpy(), frame["alias"].to_numpy()))
    groups = frame["asset_id"].rank("dense").to_numpy().astype(np.int64)
    a, b = pairs_above(x[rank], threshold, groups=groups[rank], space="ip")
    keep = keep_first_of_pairs(len(frame), a, b)
    dropped = np.zeros(len(frame), dtype=bool)
    dropped[rank] = ~keep
    return dropped


def _index_of(ctx: StoreContext, match: MatchSpec):
    """The open connector of the match feature's replica index when it can serve the match
    type (a cosine metric and a cosine index), else None."""
    if match.metric != "cosine":
        return None
    rep = replica_of(ctx, memo_key(ctx.feature(match.feature), None))
    if rep is None or rep[0].space != "cosine":
        return None
    return rep[0]


def search_path(store: Any, match_type: str, assets=None, ef: int | None = None) -> str:
    """One line (for EXPLAIN): which pair search a MATCH by ``match_type`` runs and why."""
    ctx = context_of(store)
    match = resolve_match_type(ctx.registry, match_type)
    spec = ctx.feature(match.feature)
    if match.metric != "cosine":
        return (
            f"exact torch search over {spec.key} (metric {match.metric}: a vector index cannot "
            "serve it)"
        )
    info = ctx.replicas.find(memo_key(spec, None))
    if info is not None and info.options.get("space") != "cosine":
        return (
            f"exact torch search over {spec.key} (its {info.target} index has space="
            f"{info.options.get('space')}; the match metric is cosine)"
        )
    return explain_path(ctx, match.feature, assets, None, ef)


def _index_pairs(conn, frame: pl.DataFrame, vectors, groups, order, top, across_only, ef):
    """The top pairs through the replica index, with the exact path's exclusions (adjacent
    shots, pairs within an asset with ``across_only``; only the candidate shots are
    searched), rescored exactly so that the scores are those of the exact path."""
    ids = np.array(frame["entity_id"].to_list(), dtype=object)
    allowed = set(ids.tolist())
    if allowed == conn.entity_ids():
        allowed = None
    exclude = adjacent_pairs(groups, order)
    a, b, _, why = index_pairs(conn, ids, groups, vectors, top, across_only, ef, allowed, exclude)
    score = (vectors[a] * vectors[b]).sum(axis=1, dtype=np.float32)
    rank = np.lexsort((b, a, -score))
    return a[rank], b[rank], score[rank], why


def scored_pairs(
    store: Any,
    assets: Sequence[str] | str | None,
    match_type: str,
    top: int = 10,
    across_only: bool = False,
    ef: int | None = None,
    exact: bool = False,
    min_shot: float = MIN_SHOT,
) -> SearchResult:
    """The top pairs with every column the report needs (stable ids, frame spans, aliases,
    readable refs); values must be stored (see :func:`prepare`).

    A cosine match type whose feature has a cosine replica index is searched through the index
    (``ef`` per query) unless ``exact``; with an asset scope of at most ``EXACT_SCOPE`` shots,
    or a metric an index cannot serve (IoU), the search is exact."""
    if not isinstance(top, int) or isinstance(top, bool) or top < 1:
        raise AmberliteError(f"top must be a positive integer, got {top!r}")
    ctx = context_of(store)
    match = resolve_match_type(ctx.registry, match_type)
    asset_ids = ctx.resolve_assets(assets)
    frame, vectors = candidate_shots(ctx, asset_ids, match, min_shot)
    codes = frame["asset_id"].rank("dense").to_numpy().astype(np.int64)
    order = frame["order"].to_numpy().astype(np.int64)
    if match.metric == "cosine":
        vectors = unit_rows(vectors)
    conn = None if exact else _index_of(ctx, match)
    if conn is not None and (assets is None or len(frame) > EXACT_SCOPE):
        i, j, score, why = _index_pairs(conn, frame, vectors, codes, order, top, across_only, ef)
        method = "exact" if conn.damage else conn.name  # a damaged index: exact pairs
    else:
        exclude = adjacent_pairs(codes, order)
        metric = "ip" if match.metric == "cosine" else match.metric  # rows are unit already
        i, j, score = exact_pairs(
            vectors, top, groups=codes, across=across_only, space=metric, exclude=exclude
        )
        method, why = "exact", "exact torch search"
    return SearchResult(pair_table(frame, i, j, score), method, why)


def pair_table(frame: pl.DataFrame, i: np.ndarray, j: np.ndarray, score: np.ndarray):
    """Rows ``i`` and ``j`` of the candidate shots side by side, in the pair vocabulary."""
    shots = frame.select(
        pl.col("alias").alias("asset"),
        (pl.col("alias") + "/" + pl.col("idx").cast(pl.String)).alias("ref"),
        pl.col("idx").alias("shot"),
        pl.col("start_s").alias("start"),
        pl.col("end_s").alias("end"),
        "asset_id",
        pl.col("entity_id").alias("id"),
        "start_frame",
        "end_frame",
    )
    a = shots[pa.array(i, pa.int64()).to_numpy()]
    b = shots[pa.array(j, pa.int64()).to_numpy()]
    return pl.concat(
        [
            a.rename({c: f"{c}_a" for c in shots.columns}),
            b.rename({c: f"{c}_b" for c in shots.columns}),
            pl.DataFrame({"score": np.asarray(score, np.float64)}),
        ],
        how="horizontal",
    )


def top_pairs(
    store: Any,
    assets: Sequence[str] | str | None = None,
    match_type: str = "color",
    top: int = 10,
    across_only: bool = False,
    progress: bool | None = None,
    ef: int | None = None,
    exact: bool = False,
    min_shot: float = MIN_SHOT,
) -> SearchResult:
    """The ``top`` best match-cut pairs of shots over ``assets`` (aliases or ids; None = all).

    Computes what is missing first. The result's ``table`` has :data:`PAIR_COLUMNS`, best
    first; ``method`` / ``explain`` say which search ran. Adjacent shots, near-duplicates
    (``dedup`` False within an asset, the same rule across the assets of the scope) and shots
    shorter than ``min_shot`` seconds never pair (see :func:`candidate_shots`);
    ``across_only`` keeps pairs of different assets. Raises ResolveError for an unknown
    asset or match type."""
    prepare(store, assets, match_type, progress=progress)
    found = scored_pairs(
        store, assets, match_type, top, across_only, ef=ef, exact=exact, min_shot=min_shot
    )
    return found.with_table(found.table.select(PAIR_COLUMNS))
