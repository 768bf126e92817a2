"""Match cutting: find pairs of shots that cut well into each other, by colour, framing or
motion, within and across videos.

Every stage is a memoized feature of the store: ``shots`` (segmenter) -> ``shot_embedding``
-> ``dedup``, and one embedding per match type (``match_color``, ``match_framing``,
``match_motion``; see :mod:`amberlite.library.matchcut`). Asking for a second match type, or
adding a video, computes only what is not stored yet. Pairs are scored on torch with blocked
matrix products and a global top k (:mod:`amberlite.library.pairs`).

Example:
    >>> import amberlite
    >>> from amberlite.matchcut import top_pairs
    >>> store = amberlite.open("store")                             # doctest: +SKIP
    >>> top_pairs(store, ["film1", "film2"], "framing", top=10)     # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

from amberlite.errors import AmberliteError, ResolveError
from amberlite.library.pairs import TopPairs, _excluded_pairs, top_k_pairs
from amberlite.run.resolve import RunStats, memo_key

# match type -> (feature, metric)
MATCH_TYPES: dict[str, tuple[str, str]] = {
    "color": ("match_color", "cosine"),
    "framing": ("match_framing", "iou"),
    "motion": ("match_motion", "cosine"),
}
DEDUP = "dedup"
PAIR_COLUMNS = [
    "asset_a",
    "shot_a",
    "start_a",
    "end_a",
    "asset_b",
    "shot_b",
    "start_b",
    "end_b",
    "score",
]


@dataclass(frozen=True)
class MatchSpec:
    """A resolved match type: the shot feature that embeds it and how pairs are scored."""

    match_type: str
    feature: str
    metric: str


def resolve_match_type(store, match_type: str) -> MatchSpec:
    """``color``/``framing``/``motion``, or the name of any shot feature whose value is a
    fixed-size float vector (scored by cosine, e.g. a learned embedding)."""
    if match_type in MATCH_TYPES:
        feat, metric = MATCH_TYPES[match_type]
        return MatchSpec(match_type, feat, metric)
    names = list(MATCH_TYPES) + store.registry.names()
    if match_type not in store.registry.names():
        raise ResolveError(f"unknown match type {match_type!r}", name=match_type, candidates=names)
    spec = store.feature(match_type)
    out = spec.output
    if spec.entity != "shot" or not (
        pa.types.is_fixed_size_list(out) and pa.types.is_floating(out.value_type)
    ):
        raise AmberliteError(
            f"{match_type!r} cannot be a match type: it must be a shot feature whose value is "
            f"a fixed-size float vector (it is over {spec.entity!r}, of type {out})"
        )
    return MatchSpec(match_type, match_type, "cosine")


def computed_by_feature(stats: Sequence[RunStats]) -> dict[str, int]:
    """Entities computed per feature@version over run stats and their inputs."""
    out: dict[str, int] = {}

    def walk(s: RunStats) -> None:
        out[s.feature] = out.get(s.feature, 0) + s.computed
        for child in s.inputs:
            walk(child)

    for s in stats:
        walk(s)
    return out


def prepare(
    store, assets: Sequence[str] | str | None, match_type: str, progress: bool | None = None
) -> list[RunStats]:
    """Compute whatever is missing for a match type over the assets (shots, dedup, the match
    embedding); returns the resolver's run stats (nothing stored is computed again)."""
    match = resolve_match_type(store, match_type)
    return [
        store.materialize(DEDUP, assets, progress=progress),
        store.materialize(match.feature, assets, progress=progress),
    ]


def _vectors(table: pa.Table, dim: int) -> np.ndarray:
    col = table.column(2).combine_chunks()
    return col.flatten().to_numpy(zero_copy_only=False).reshape(len(col), dim).astype(np.float32)


def candidate_shots(store, asset_ids: Sequence[str] | None, match: MatchSpec):
    """(shots DataFrame, vectors) of the kept (dedup True) shots that have a match value,
    sorted by asset and shot index. Shots whose values failed are left out."""
    shots = store.entities("shot", asset_ids, compute=False)
    spec = store.feature(match.feature)
    table = store.read_values(spec, None, asset_ids)
    dedup = store.read_values(store.feature(DEDUP), None, asset_ids)
    kept = pl.from_arrow(dedup.select([0, 2]).rename_columns(["entity_id", "kept"]))
    ids = pl.DataFrame(
        {"entity_id": table.column(0).to_pylist(), "row": range(table.num_rows)},
        schema={"entity_id": pl.String, "row": pl.Int64},
    )
    frame = (
        shots.join(kept.filter(pl.col("kept")), on="entity_id")
        .join(ids, on="entity_id")
        .join(store.assets().select("asset_id", "alias"), on="asset_id")
        .sort("asset_id", "idx")
    )
    vectors = _vectors(table, spec.output.list_size)[frame["row"].to_numpy()]
    return frame, vectors


def _unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero): cosine is then the dot product."""
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return np.where(norm > 1e-12, x / np.maximum(norm, 1e-12), 0.0).astype(np.float32)


def _index_of(store, match: MatchSpec):
    """The open connector of the match feature's replica index when it can serve the match
    type (a cosine metric and a cosine index), else None."""
    from amberlite.similarity import _replica

    if match.metric != "cosine":
        return None
    rep = _replica(store, memo_key(store.feature(match.feature), None))
    if rep is None or rep[0].space != "cosine":
        return None
    return rep[0]


def search_path(store, match_type: str, assets=None, ef: int | None = None) -> str:
    """One line (for EXPLAIN): which pair search a MATCH by ``match_type`` runs and why."""
    from amberlite.similarity import explain_path

    match = resolve_match_type(store, match_type)
    key = store.feature(match.feature).key
    if match.metric != "cosine":
        return (
            f"exact torch search over {key} (metric {match.metric}: a vector index cannot serve it)"
        )
    info = store.replicas.find(memo_key(store.feature(match.feature), None))
    if info is not None and info.options.get("space") != "cosine":
        return (
            f"exact torch search over {key} (its {info.target} index has space="
            f"{info.options.get('space')}; the match metric is cosine)"
        )
    return explain_path(store, match.feature, assets, None, ef)


def _index_pairs(conn, frame: pl.DataFrame, vectors, groups, order, top, across_only, ef):
    """The top pairs through the replica index, with the exact path's exclusions (adjacent
    shots, pairs within an asset with ``across_only``; only the candidate shots are
    searched), rescored exactly so that the scores are those of the exact path."""
    from amberlite.similarity import _index_pairs as index_pairs

    ids = np.array(frame["entity_id"].to_list(), dtype=object)
    allowed = set(ids.tolist())
    if allowed == conn.entity_ids():
        allowed = None
    exclude = _excluded_pairs(groups, order)
    a, b, _, why = index_pairs(conn, ids, groups, vectors, top, across_only, ef, allowed, exclude)
    score = (vectors[a] * vectors[b]).sum(axis=1, dtype=np.float32)
    rank = np.lexsort((b, a, -score))
    return TopPairs(a[rank], b[rank], score[rank]), why


def scored_pairs(
    store,
    assets: Sequence[str] | str | None,
    match_type: str,
    top: int = 10,
    across_only: bool = False,
    ef: int | None = None,
    exact: bool = False,
) -> pl.DataFrame:
    """The top pairs with every column the report needs (ids, frame spans, aliases); values
    must be stored (see :func:`prepare`).

    A cosine match type whose feature has a cosine replica index (``store.replicas``) is
    searched through the index (``ef`` per query) unless ``exact``; with an asset scope of at
    most ``similarity.EXACT_SCOPE`` shots, or a metric an index cannot serve (IoU), the search
    is exact. The result carries ``.method`` (``"hnsw"`` / ``"exact"``) and ``.explain``."""
    from amberlite.similarity import EXACT_SCOPE

    if not isinstance(top, int) or isinstance(top, bool) or top < 1:
        raise AmberliteError(f"top must be a positive integer, got {top!r}")
    match = resolve_match_type(store, match_type)
    asset_ids = store.resolve_assets(assets)
    frame, vectors = candidate_shots(store, asset_ids, match)
    codes = frame["asset_id"].rank("dense").to_numpy().astype(np.int64)
    order = frame["idx"].to_numpy().astype(np.int64)
    if match.metric == "cosine":
        vectors = _unit_rows(vectors)
    conn = None if exact else _index_of(store, match)
    if conn is not None and (assets is None or len(frame) > EXACT_SCOPE):
        found, why = _index_pairs(conn, frame, vectors, codes, order, top, across_only, ef)
        method = conn.name
    else:
        found = top_k_pairs(
            vectors, top, metric=match.metric, groups=codes, order=order, across_only=across_only
        )
        method, why = "exact", "exact torch search"
    cols = ["alias", "idx", "start_s", "end_s", "asset_id", "entity_id", "start_frame", "end_frame"]
    a = frame.select(cols)[found.i]
    b = frame.select(cols)[found.j]
    renames = {"alias": "asset", "idx": "shot", "start_s": "start", "end_s": "end"}
    out = pl.concat(
        [
            a.rename({c: f"{renames.get(c, c)}_a" for c in cols}),
            b.rename({c: f"{renames.get(c, c)}_b" for c in cols}),
            pl.DataFrame({"score": found.score.astype(np.float64)}),
        ],
        how="horizontal",
    )
    return _tagged(out, method, why)


def _tagged(df: pl.DataFrame, method: str, why: str) -> pl.DataFrame:
    df.method = method  # type: ignore[attr-defined]
    df.explain = why  # type: ignore[attr-defined]
    return df


def top_pairs(
    store,
    assets: Sequence[str] | str | None = None,
    match_type: str = "color",
    top: int = 10,
    across_only: bool = False,
    progress: bool | None = None,
    ef: int | None = None,
    exact: bool = False,
) -> pl.DataFrame:
    """The ``top`` best match-cut pairs of shots over ``assets`` (aliases or ids; None = all).

    Computes what is missing first. Columns: asset_a, shot_a, start_a, end_a, asset_b, shot_b,
    start_b, end_b, score (aliases, shot indices, seconds; best first). Adjacent shots and
    near-duplicates (``dedup`` False) never pair; ``across_only`` keeps pairs of different
    assets. The search uses the match feature's replica index when one can serve it (see
    :func:`scored_pairs`; ``.method`` / ``.explain`` say which ran). Raises ResolveError for an
    unknown asset or match type.
    """
    prepare(store, assets, match_type, progress=progress)
    pairs = scored_pairs(store, assets, match_type, top, across_only, ef=ef, exact=exact)
    return _tagged(pairs.select(PAIR_COLUMNS), pairs.method, pairs.explain)


def match_cut(
    store,
    assets: Sequence[str] | str | None,
    match_type: str = "color",
    top: int = 10,
    across_only: bool = False,
    report_dir: str | os.PathLike[str] | None = None,
    progress: bool | None = None,
) -> pl.DataFrame:
    """:func:`top_pairs`, plus ``report.html`` and ``contact_sheet.png`` in ``report_dir``
    when given (last frame of shot A beside the first frame of shot B, with scores and
    timecodes)."""
    prepare(store, assets, match_type, progress=progress)
    pairs = scored_pairs(store, assets, match_type, top, across_only)
    if report_dir is not None:
        from amberlite.report.matchcut import write_report

        write_report(store, pairs, Path(report_dir), title=f"match cuts by {match_type}")
    return pairs.select(PAIR_COLUMNS)


def timecode(seconds: float) -> str:
    """``MM:SS.mmm``, or ``H:MM:SS.mmm`` from an hour on."""
    ms = int(round(seconds * 1000))
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    return (f"{h}:" if h else "") + f"{m:02d}:{rest / 1000:06.3f}"


def display_table(pairs: pl.DataFrame) -> pl.DataFrame:
    """Pairs as a person reads them: rank, aliases, shot indices, timecodes, score."""

    def span(side: str) -> list[str]:
        starts, ends = pairs[f"start_{side}"].to_list(), pairs[f"end_{side}"].to_list()
        return [f"{timecode(s)}-{timecode(e)}" for s, e in zip(starts, ends)]

    return pl.DataFrame(
        {
            "rank": list(range(1, pairs.height + 1)),
            "asset_a": pairs["asset_a"],
            "shot_a": pairs["shot_a"],
            "timecode_a": span("a"),
            "asset_b": pairs["asset_b"],
            "shot_b": pairs["shot_b"],
            "timecode_b": span("b"),
            "score": pairs["score"].round(3),
        }
    )
