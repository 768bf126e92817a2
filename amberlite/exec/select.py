"""Execute a plan: compute what is missing, then one DuckDB statement per SELECT.

:func:`execute` returns a :class:`QueryResult`: the result table and, for NEAREST and MATCH,
the :class:`~amberlite.search.result.SearchResult` that says which search ran and why.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from amberlite.context import StoreContext
from amberlite.errors import AqlError, ResolveError
from amberlite.exec.scope import Prepared, Reader, duck_errors, feature_files, plan_schema, prepare
from amberlite.exec.sql import Sql
from amberlite.plan import logical as L
from amberlite.plan.build import columns_of

if TYPE_CHECKING:  # a plain SELECT needs none of these: reading stays light
    import polars as pl

    from amberlite.search.result import SearchResult

log = logging.getLogger(__name__)


def compile_select(ctx: StoreContext, prep: Prepared, con, catalog: bool = True) -> tuple[Sql, str]:
    """The DuckDB statement of a prepared SELECT (with its NEAREST result, if any), over the
    memo files committed as of ``con``'s transaction (``catalog``: ``con`` is a catalog
    connection; else the in-process engine of :func:`annotations_only` statements)."""
    sql = Sql(ctx, prep.plan, prep.nearest)
    sql.con = con
    sql.con_catalog = con if catalog else None
    text = sql.select(feature_files(ctx, prep.plan, con))
    log.debug("SQL %s", text)
    return sql, text


def annotations_only(plan: L.SelectPlan) -> bool:
    """A SELECT that reads annotation sets alone (no feature, no other entity set): it runs on
    the process's in-memory engine over the annotation views (cached until the catalog
    changes) and the runs' Parquet files, without opening the catalog when nothing changed."""
    return not plan.features and all(s.annotation is not None for s in plan.sources)


def run_select(ctx: StoreContext, prep: Prepared, con, catalog: bool = True) -> pl.DataFrame:
    """The result table of a prepared SELECT (its features are stored or failed by now), read
    on ``con``, an open catalog connection (or the engine: ``catalog`` False)."""
    sql, text = compile_select(ctx, prep, con, catalog)
    sql.register(con)
    with duck_errors(sql):
        df = con.sql(text, params=sql.params).pl()
    sql.unregister(con)
    df.columns = list(sql.names)
    return df


def select_rows(
    ctx: StoreContext, prep: Prepared, con, catalog: bool = True
) -> tuple[tuple[str, ...], list[tuple]]:
    """The result of a prepared SELECT as column names and Python rows: no Arrow, no polars
    (the command line prints a warm query's table this way, see :func:`execute`)."""
    sql, text = compile_select(ctx, prep, con, catalog)
    sql.register(con)
    with duck_errors(sql):
        rows = con.execute(text, sql.params).fetchall()
    sql.unregister(con)
    return tuple(sql.names), rows


@dataclass(frozen=True)
class QueryResult:
    """A statement's result, and the search that ran for NEAREST / MATCH (else None).

    ``table`` is a polars DataFrame; a SELECT run with ``rows=True`` has ``columns`` and
    ``rows`` (Python values) instead, and makes the table only when asked for it."""

    data: Any  # a polars DataFrame, or None when ``rows`` holds the result
    search: SearchResult | None = None
    columns: tuple[str, ...] = ()
    rows: list[tuple] | None = None

    @property
    def table(self) -> pl.DataFrame:
        if self.data is not None:
            return self.data
        import polars as pl

        return pl.DataFrame(self.rows, schema=list(self.columns), orient="row")


def execute(ctx: StoreContext, plan: L.Plan, rows: bool = False) -> QueryResult:
    """Run any plan to a result (``rows``: a SELECT's result as Python rows, see
    :class:`QueryResult`)."""
    if isinstance(plan, L.SelectPlan):
        with Reader(ctx) as reader, contextlib.ExitStack() as stack:
            prep = prepare(ctx, plan, compute=True, reader=reader)
            on_catalog = not annotations_only(prep.plan)
            if on_catalog:
                con = reader.get()
            else:
                from amberlite.annotations.read import engine

                con = engine()
                stack.callback(con.close)
            if rows:
                names, values = select_rows(ctx, prep, con, on_catalog)
                return QueryResult(None, prep.nearest, names, values)
            df = run_select(ctx, prep, con, on_catalog)
        return QueryResult(df, prep.nearest)
    if isinstance(plan, L.ShowPlan):
        return QueryResult(show(ctx, plan.what))
    if isinstance(plan, L.DescribePlan):
        return QueryResult(describe(ctx, plan.name))
    if isinstance(plan, L.MatchPlan):
        found = match(ctx, plan)
        return QueryResult(found.table, found)
    raise AqlError(f"cannot run a {type(plan).__name__}")


def show(ctx: StoreContext, what: str) -> pl.DataFrame:
    import polars as pl

    from amberlite.catalog.tables import assets_table, features_table

    if what == "ASSETS":
        return assets_table(ctx.catalog).select(
            "alias", "asset_id", "width", "height", "frame_count", "duration_s", "path"
        )
    if what == "FEATURES":
        return features_table(ctx.catalog).select(
            "name",
            "version",
            "entity",
            "produces",
            "output_type",
            "builtin",
            "rows_stored",
            "description",
        )
    rows = []
    kinds = dict(ctx.catalog.query("SELECT name, kind FROM entity_types"))
    for t in ctx.entity_types():
        producer = None
        if t == "asset":
            n = ctx.catalog.query("SELECT count(*) FROM assets")[0][0]
        elif t == "frame":
            n = ctx.catalog.query("SELECT coalesce(sum(frame_count), 0) FROM assets")[0][0]
        else:  # the entities of the store's segmentation (USING names the others)
            seg = ctx.segmentation(t)
            producer = seg.describe()
            n = ctx.catalog.query(
                "SELECT count(*) FROM entities WHERE entity_type = ? AND producer = ?",
                [t, seg.label],
            )[0][0]
        rows.append((t, t + "s", kinds.get(t, "derived"), producer, int(n)))
    return pl.DataFrame(
        rows, schema=["entity_type", "entity_set", "kind", "producer", "count"], orient="row"
    )


def describe(ctx: StoreContext, name: str) -> pl.DataFrame:
    """A feature's versions (entity, output, params, inputs, rows stored), or an entity set's
    columns."""
    import polars as pl

    from amberlite.catalog.tables import features_table

    if name in ctx.registry.names():
        feats = features_table(ctx.catalog).filter(pl.col("name") == name)
        params = {
            v: str(dict(ctx.registry.get(name, v).params)) for v in ctx.registry.versions(name)
        }
        inputs = {
            v: ", ".join(i.name for i in ctx.registry.get(name, v).inputs)
            for v in ctx.registry.versions(name)
        }
        return feats.select(
            "name", "version", "entity", "output_type", "rows_stored", "description"
        ).with_columns(
            pl.col("version").replace_strict(params, default="{}").alias("params"),
            pl.col("version").replace_strict(inputs, default="").alias("inputs"),
        )
    try:
        etype = plan_schema(ctx).entity_type_of(name)
    except ResolveError:
        raise ResolveError(
            f"unknown feature or entity set {name!r}",
            name=name,
            candidates=ctx.registry.names() + [t + "s" for t in ctx.entity_types()],
        ) from None
    cols = columns_of(etype)
    return pl.DataFrame({"column": list(cols), "type": list(cols.values())})


def match(ctx: StoreContext, plan: L.MatchPlan) -> SearchResult:
    """MATCH through :func:`amberlite.search.match.top_pairs` (computes what is missing first;
    the match feature's replica index is used when one can serve the match type)."""
    from amberlite.search.match import MIN_SHOT, top_pairs

    assets = list(plan.source.asset_ids) if plan.source.asset_ids is not None else None
    options = dict(plan.options)
    return top_pairs(
        ctx,
        assets,
        plan.match_type,
        plan.top,
        across_only=plan.across_assets,
        progress=False,
        ef=options.get("ef"),
        min_shot=options.get("min_shot", MIN_SHOT),
    )
