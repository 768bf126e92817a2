"""AQL queries: ``run_query(store, text)`` and ``explain(store, text)``.

The pipeline is parse -> build (resolve names, check types) -> optimize (rewrite rules) ->
physical (memo read | compute per feature) -> execute (one DuckDB statement); see
docs/aql.md for the language.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import polars as pl

from amberlite.errors import AqlError
from amberlite.plan import logical as L
from amberlite.plan.build import build
from amberlite.plan.explain import explain_plan
from amberlite.plan.rules import optimize
from amberlite.plan.run import execute
from amberlite.syntax import ast as A
from amberlite.syntax import parse_one

if TYPE_CHECKING:
    from amberlite.api import Store

log = logging.getLogger(__name__)


def plan(store: Store, text: str) -> tuple[L.Plan, bool]:
    """The optimized logical plan of one statement, and whether it was an EXPLAIN."""
    if not isinstance(text, str):
        raise AqlError(f"a query is text, not {type(text).__name__}")
    stmt = parse_one(text)
    log.debug("parsed: %s", stmt)
    explained = isinstance(stmt, A.Explain)
    if explained:
        stmt = stmt.statement
    logical = build(store, stmt)
    log.debug("logical plan:\n%s", L.show_plan(logical))
    optimized = optimize(logical)
    log.debug("optimized plan:\n%s", L.show_plan(optimized))
    return optimized, explained


def run_query(store: Store, text: str) -> pl.DataFrame:
    """Run one AQL statement and return its result table (EXPLAIN returns one `plan` column)."""
    optimized, explained = plan(store, text)
    if explained:
        return pl.DataFrame({"plan": explain_plan(store, optimized).splitlines()})
    result = execute(store, optimized)
    log.debug("result: %d rows x %d columns", result.height, result.width)
    return result


def explain(store: Store, text: str) -> str:
    """The plan and per-feature stored / missing / failed counts; computes nothing."""
    optimized, _ = plan(store, text)
    return explain_plan(store, optimized)
