"""Execute a physical plan: compute what is missing, then one DuckDB statement per SELECT."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import polars as pl

from amberlite.errors import AqlError, ResolveError
from amberlite.plan import logical as L
from amberlite.plan.build import columns_of, entity_type_of
from amberlite.plan.physical import (
    Prepared,
    Reader,
    Sql,
    duck_errors,
    feature_files,
    prepare,
)

if TYPE_CHECKING:
    from amberlite.api import Store

log = logging.getLogger(__name__)


def run_select(store: Store, prep: Prepared, con) -> pl.DataFrame:
    """The result table of a prepared SELECT (its features are stored or failed by now), read
    on ``con``, an open catalog connection."""
    sql = Sql(store, prep.plan, prep.nearest)
    text = sql.select(feature_files(store, prep.plan, con))
    log.debug("SQL %s", text)
    sql.register(con)
    with duck_errors():
        df = con.sql(text, params=sql.params).pl()
    sql.unregister(con)
    df.columns = list(sql.names)
    return df


def execute(store: Store, plan: L.Plan) -> pl.DataFrame:
    """Run any plan to a result table."""
    if isinstance(plan, L.SelectPlan):
        with Reader(store) as reader:
            prep = prepare(store, plan, compute=True, reader=reader)
            df = run_select(store, prep, reader.get())
        if prep.nearest is not None:  # which search ran (hnsw / exact) and why
            df.method = prep.nearest.method  # type: ignore[attr-defined]
            df.explain = prep.nearest.explain  # type: ignore[attr-defined]
        return df
    if isinstance(plan, L.ShowPlan):
        return show(store, plan.what)
    if isinstance(plan, L.DescribePlan):
        return describe(store, plan.name)
    if isinstance(plan, L.MatchPlan):
        return match(store, plan)
    raise AqlError(f"cannot run a {type(plan).__name__}")


def show(store: Store, what: str) -> pl.DataFrame:
    if what == "ASSETS":
        return store.assets().select(
            "alias", "asset_id", "width", "height", "frame_count", "duration_s", "path"
        )
    if what == "FEATURES":
        return store.features().select(
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
    kinds = dict(store.catalog.query("SELECT name, kind FROM entity_types"))
    for t in store.entity_types():
        prod = store.registry.producer_of(t)
        if t == "asset":
            n = store.catalog.query("SELECT count(*) FROM assets")[0][0]
        elif t == "frame":
            n = store.catalog.query("SELECT coalesce(sum(frame_count), 0) FROM assets")[0][0]
        else:
            n = store.catalog.query("SELECT count(*) FROM entities WHERE entity_type = ?", [t])[0][
                0
            ]
        rows.append((t, t + "s", kinds.get(t, "derived"), prod.key if prod else None, int(n)))
    return pl.DataFrame(
        rows, schema=["entity_type", "entity_set", "kind", "producer", "count"], orient="row"
    )


def describe(store: Store, name: str) -> pl.DataFrame:
    """A feature's versions (entity, output, params, inputs, rows stored), or an entity set's
    columns."""
    if name in store.registry.names():
        feats = store.features().filter(pl.col("name") == name)
        params = {
            v: str(dict(store.registry.get(name, v).params)) for v in store.registry.versions(name)
        }
        inputs = {
            v: ", ".join(i.name for i in store.registry.get(name, v).inputs)
            for v in store.registry.versions(name)
        }
        return feats.select(
            "name", "version", "entity", "output_type", "rows_stored", "description"
        ).with_columns(
            pl.col("version").replace_strict(params, default="{}").alias("params"),
            pl.col("version").replace_strict(inputs, default="").alias("inputs"),
        )
    try:
        etype = entity_type_of(store, name)
    except ResolveError:
        raise ResolveError(
            f"unknown feature or entity set {name!r}",
            name=name,
            candidates=store.registry.names() + [t + "s" for t in store.entity_types()],
        ) from None
    cols = columns_of(etype)
    return pl.DataFrame({"column": list(cols), "type": list(cols.values())})


def match(store: Store, plan: L.MatchPlan) -> pl.DataFrame:
    """MATCH through :func:`amberlite.matchcut.top_pairs` (computes what is missing first; the
    match feature's replica index is used when one can serve the match type)."""
    from amberlite.matchcut import top_pairs

    assets = list(plan.source.asset_ids) if plan.source.asset_ids is not None else None
    return top_pairs(
        store,
        assets,
        plan.match_type,
        plan.top,
        across_only=plan.across_assets,
        progress=False,
        ef=dict(plan.options).get("ef"),
    )
