"""Match cutting: find pairs of shots that cut well into each other, by colour, framing or
motion, within and across videos, and show them to an editor.

The search itself is AQL's MATCH (:mod:`amberlite.search.match`): every stage is a memoized
feature (``shots`` -> ``shot_embedding`` -> ``dedup``, one embedding per match type), pairs
are scored by the one exact kernel or a replica index. This app adds the report
(``report.html`` and a contact sheet) and the table a person reads.

Example:
    >>> import amberlite
    >>> from amberlite.matchcut import top_pairs
    >>> store = amberlite.open("store")                                 # doctest: +SKIP
    >>> top_pairs(store, ["film1", "film2"], "framing", top=10).table   # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl

from amberlite.core.timecode import timecode
from amberlite.library.match_types import MATCH_TYPES
from amberlite.run.resolve import RunStats
from amberlite.search.match import MIN_SHOT, PAIR_COLUMNS, prepare, scored_pairs, top_pairs
from amberlite.search.result import SearchResult

__all__ = [
    "MATCH_TYPES",
    "MIN_SHOT",
    "PAIR_COLUMNS",
    "computed_by_feature",
    "display_table",
    "match_cut",
    "prepare",
    "scored_pairs",
    "timecode",
    "top_pairs",
]


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


def match_cut(
    store: Any,
    assets: Sequence[str] | str | None,
    match_type: str = "color",
    top: int = 10,
    across_only: bool = False,
    report_dir: str | os.PathLike[str] | None = None,
    progress: bool | None = None,
    min_shot: float = MIN_SHOT,
) -> pl.DataFrame:
    """The ``top`` pairs (:data:`PAIR_COLUMNS`), plus ``report.html`` and
    ``contact_sheet.png`` in ``report_dir`` when given (the last representative frame of
    shot A beside the first of shot B, with scores and timecodes). Shots shorter than
    ``min_shot`` seconds never pair."""
    prepare(store, assets, match_type, progress=progress)
    pairs = scored_pairs(store, assets, match_type, top, across_only, min_shot=min_shot).table
    if report_dir is not None:
        from amberlite.matchcut.report import write_report

        write_report(store, pairs, Path(report_dir), title=f"match cuts by {match_type}")
    return pairs.select(PAIR_COLUMNS)


def display_table(pairs: pl.DataFrame | SearchResult) -> pl.DataFrame:
    """Pairs as a person reads them: rank, refs (``film1/12``), timecodes, score."""
    if isinstance(pairs, SearchResult):
        pairs = pairs.table

    def span(side: str) -> list[str]:
        starts, ends = pairs[f"start_{side}"].to_list(), pairs[f"end_{side}"].to_list()
        return [f"{timecode(s)}-{timecode(e)}" for s, e in zip(starts, ends)]

    return pl.DataFrame(
        {
            "rank": list(range(1, pairs.height + 1)),
            "ref_a": pairs["ref_a"],
            "timecode_a": span("a"),
            "ref_b": pairs["ref_b"],
            "timecode_b": span("b"),
            "score": pairs["score"].round(3),
        }
    )
