"""The result of a search: the table, which method ran, and why (EXPLAIN's text)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import polars as pl


@dataclass(frozen=True)
class SearchResult:
    """A NEAREST / MATCH / match-cut result.

    ``table`` is a polars DataFrame in the shared vocabulary (see :mod:`amberlite.search`);
    ``method`` is ``"hnsw"`` or ``"exact"``; ``explain`` is one line saying why that method
    ran. ``len(result)`` is the number of rows.
    """

    table: pl.DataFrame
    method: str
    explain: str

    def __len__(self) -> int:
        return self.table.height

    def with_table(self, table: pl.DataFrame) -> SearchResult:
        return replace(self, table=table)
