"""AQL queries: the whole path of a statement, on one screen.

parse -> build (resolve names against a :class:`~amberlite.plan.schema.PlanSchema`, check
types) -> optimize (rewrite rules) -> execute (compute what is missing, then one DuckDB
statement) | explain (counts, nothing computed). See docs/aql.md for the language.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from amberlite.context import StoreContext, context_of
from amberlite.errors import AqlError
from amberlite.exec.explain import explain_plan, plan_steps
from amberlite.exec.scope import FeatureStep, plan_schema
from amberlite.exec.select import QueryResult, execute
from amberlite.plan import logical as L
from amberlite.plan.build import build
from amberlite.plan.rules import optimize
from amberlite.syntax import ast as A
from amberlite.syntax import bind, parse_one

if TYPE_CHECKING:
    import polars as pl

log = logging.getLogger(__name__)


def plan(
    store: Any, text: str, params: Mapping[str, Any] | None = None, limit: int | None = None
) -> tuple[L.Plan, bool]:
    """The optimized logical plan of one statement, and whether it was an EXPLAIN.
    ``params`` fill the statement's ``$name`` placeholders (see :func:`amberlite.syntax.bind`);
    ``limit`` caps a SELECT's LIMIT (an application's page size)."""
    if not isinstance(text, str):
        raise AqlError(f"a query is text, not {type(text).__name__}")
    ctx = context_of(store)
    stmt = bind(parse_one(text), params)
    log.debug("parsed: %s", stmt)
    explained = isinstance(stmt, A.Explain)
    if explained:
        stmt = stmt.statement
    if limit is not None and isinstance(stmt, A.Select):
        stmt = replace(stmt, limit=limit if stmt.limit is None else min(stmt.limit, limit))
    logical = build(plan_schema(ctx), stmt)
    log.debug("logical plan:\n%s", L.show_plan(logical))
    optimized = optimize(logical)
    log.debug("optimized plan:\n%s", L.show_plan(optimized))
    return optimized, explained


def run(
    store: Any,
    text: str,
    rows: bool = False,
    params: Mapping[str, Any] | None = None,
    limit: int | None = None,
) -> QueryResult:
    """Run one AQL statement: its result table and, for NEAREST / MATCH, which search ran.
    An EXPLAIN returns one ``plan`` column. ``rows``: a SELECT's result as Python rows (no
    polars; see :class:`~amberlite.exec.select.QueryResult`)."""
    return statement(store, text, params, limit).run(rows)


@dataclass(frozen=True)
class Statement:
    """One planned statement: what running it would compute, its result, and what its answer
    depends on (a server asks all three of one plan)."""

    ctx: StoreContext
    plan: L.Plan
    explained: bool

    def work(self) -> list[FeatureStep]:
        """What running it would read or compute, per feature (nothing is computed)."""
        return [] if self.explained else plan_steps(self.ctx, self.plan)

    def run(self, rows: bool = False) -> QueryResult:
        if self.explained:
            lines = explain_plan(self.ctx, self.plan).splitlines()
            return QueryResult(None, None, ("plan",), [(ln,) for ln in lines])
        result = execute(self.ctx, self.plan, rows=rows)
        log.debug("result: %s", "rows" if result.rows is not None else result.table.shape)
        return result

    def depends(self) -> frozenset[str]:
        """The catalog change keys its answer depends on (:mod:`amberlite.plan.depends`)."""
        from amberlite.plan.depends import depends_on

        return frozenset({"*"}) if self.explained else depends_on(self.plan)


def statement(
    store: Any, text: str, params: Mapping[str, Any] | None = None, limit: int | None = None
) -> Statement:
    """One statement, planned (see :func:`plan`)."""
    ctx: StoreContext = context_of(store)
    optimized, explained = plan(ctx, text, params, limit)
    return Statement(ctx, optimized, explained)


def run_query(store: Any, text: str, params: Mapping[str, Any] | None = None) -> pl.DataFrame:
    """Run one AQL statement and return its result table."""
    return run(store, text, params=params).table


def work(store: Any, text: str, params: Mapping[str, Any] | None = None) -> list[FeatureStep]:
    """What running a statement would read or compute, per feature (nothing is computed; an
    EXPLAIN, SHOW or DESCRIBE has no steps)."""
    return statement(store, text, params).work()


def depends(store: Any, text: str, params: Mapping[str, Any] | None = None) -> frozenset[str]:
    """The catalog change keys a statement's answer depends on (see
    :mod:`amberlite.plan.depends`): the answer stays valid until a commit touches one."""
    return statement(store, text, params).depends()


def explain(store: Any, text: str, params: Mapping[str, Any] | None = None) -> str:
    """The plan and per-feature stored / missing / failed counts; computes nothing."""
    ctx = context_of(store)
    optimized, _ = plan(ctx, text, params)
    return explain_plan(ctx, optimized)
