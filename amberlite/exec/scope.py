"""The executor's scope: memo read | compute per feature, counted on the catalog.

The one decision (:func:`decide`): a feature is *computed* when some entity of its scope has
neither a stored value nor a recorded failure; otherwise it is *read*. The scope is the
entities of its source after the pushed-down entity filters (an asset feature broadcast over
spans: the assets of those entities). Counting never computes; :func:`prepare` computes only
when asked to (``compute=True``), through ``ctx.resolver.materialize``, which computes only
what is missing.

:func:`plan_schema` makes the :class:`~amberlite.plan.schema.PlanSchema` the planner resolves
names against from an open store.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import duckdb

from amberlite.errors import AqlError
from amberlite.exec.sql import Sql, source_segmentation
from amberlite.memo.key import memo_key
from amberlite.plan import logical as L
from amberlite.plan.schema import PlanSchema
from amberlite.syntax import ast as A

if TYPE_CHECKING:
    from amberlite.context import StoreContext

log = logging.getLogger(__name__)


def decide(counts: dict[str, int]) -> str:
    """THE memo decision: ``compute`` when an entity has no value and no failure, else ``read``."""
    missing = counts["requested"] - counts["stored"] - counts["failed"]
    return "compute" if missing > 0 else "read"


@dataclass
class FeatureStep:
    """What the physical plan does for one feature (or a segmenter making a source's spans)."""

    label: str
    spec: Any
    params: dict[str, Any] | None
    asset_ids: list[str] | None
    entity_ids: list[str] | None
    counts: dict[str, int]
    action: str  # read | compute
    note: str = ""
    seg: Any = None  # the Segmentation of a span source's entities (None: the store's)

    def line(self) -> str:
        c = self.counts
        missing = c["requested"] - c["stored"] - c["failed"]
        return (
            f"{self.label}: stored {c['stored']}, missing {missing}, failed {c['failed']}"
            f" -> {self.action}{self.note}"
        )


@dataclass
class Prepared:
    """The steps of a SELECT, in the order they run."""

    plan: L.SelectPlan
    steps: list[FeatureStep] = field(default_factory=list)
    nearest: Any = None  # the NEAREST search result (polars, see plan.nearest.run_search)


# ---------------------------------------------------------------- phase 1: scope and decide


@contextlib.contextmanager
def duck_errors(sql: Sql | None = None) -> Iterator[None]:
    """DuckDB's run-time errors (integer overflow, a bad cast) as an AqlError, in the query's
    terms when the statement's ``sql`` is given."""
    try:
        yield
    except (duckdb.Error, OverflowError) as e:
        text = sql.user_message(str(e)) if sql is not None else str(e)
        raise AqlError(f"the query could not be evaluated: {text}") from None


class Reader:
    """One catalog read connection, opened when first needed and closed before a compute
    (which takes the write lock), so that a warm query opens the catalog once."""

    def __init__(self, ctx: StoreContext) -> None:
        self.ctx = ctx
        self._cm: Any = None
        self.con: duckdb.DuckDBPyConnection | None = None

    def get(self) -> duckdb.DuckDBPyConnection:
        if self.con is None:
            self._cm = self.ctx.catalog.read()
            self.con = self._cm.__enter__()
        return self.con

    def close(self) -> None:
        if self._cm is not None:
            cm, self._cm, self.con = self._cm, None, None
            cm.__exit__(None, None, None)

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def prepare(ctx: StoreContext, plan: L.SelectPlan, compute: bool, reader: Reader) -> Prepared:
    """Count each feature's scope and decide read | compute (:func:`decide`); with
    ``compute`` (the executor), compute what is missing, step by step, before the next step is
    scoped (a source's spans are segmented before its entity filters select from them).

    With NEAREST, ``compute`` first runs the search (computing the searched feature over the
    FROM set's assets when missing); the other features of that source are then scoped to the
    k entities found. Without ``compute`` (EXPLAIN) they are counted over the whole set and
    nothing is computed."""
    prep = Prepared(plan)
    schema = ctx.schema()  # what counting needs, without the features' code
    pushed = L.pushed_filters(plan.root)
    near = plan.nearest
    if near is not None and compute and plan.sources[near.source].annotation is None:
        from amberlite.search.nearest import run_search

        reader.close()  # the search may compute (write lock)
        prep.nearest = run_search(ctx, plan)

    def step(label, spec, params, assets, ids, sg=None) -> FeatureStep:
        st = feature_step(ctx, label, spec, params, assets, ids, reader, sg)
        if compute and st.action == "compute":
            compute_step(ctx, st, reader)
        return st

    for src in plan.sources:
        assets = list(src.asset_ids) if src.asset_ids is not None else None
        note = ""
        if src.annotation is not None:  # stored rows: nothing to segment or to scope
            for use in plan.features:  # asset features broadcast over the annotations
                if use.source == src.index:
                    spec = schema.get(use.name, use.version)
                    prep.steps.append(step(use.label, spec, dict(use.params), assets, None))
            continue
        sg = None
        if src.entity_type not in ("asset", "frame"):
            sg = source_segmentation(ctx, src)
            seg = step(sg.describe(), sg.spec, dict(sg.params), assets, None)
            prep.steps.append(seg)
            if seg.action == "compute" and not compute:
                note = f" (+ {src.entity_type}s of assets not segmented yet)"
        ids: list[str] | None = None
        id_assets = assets
        searched = near is not None and near.source == src.index
        seg_text = f", {note[2:-1]}" if note else ""  # "+ shots of assets not segmented yet"
        near_note = ""
        if searched and not compute:
            spec = schema.get(near.feature.name, near.feature.version)
            params = dict(near.feature.params)
            label = near.feature.label
            searched_step = feature_step(ctx, label, spec, params, assets, None, reader, sg)
            searched_step.note = f" (searched{seg_text})"
            if note:
                searched_step.action = "compute"
            prep.steps.append(searched_step)
            near_note = f" (only the k nearest{seg_text})"
        elif src.index in pushed or searched:
            ids, id_assets = _scoped_ids(
                ctx, plan, src, pushed.get(src.index), reader.get(), prep.nearest
            )
        together: list[FeatureStep] = []  # the source's own features: computed together
        for use in plan.features:
            if use.source != src.index:
                continue
            spec = schema.get(use.name, use.version)
            params = dict(use.params)
            if use.by_asset:
                st = step(use.label, spec, params, id_assets, None)
            else:
                st = feature_step(ctx, use.label, spec, params, assets, ids, reader, sg)
                together.append(st)
                if note:  # spans still to segment will need values too
                    st.note, st.action = note, "compute"
            if near_note:
                st.note = near_note
            prep.steps.append(st)
        if compute:
            compute_steps(ctx, [st for st in together if st.action == "compute"], reader)
    return prep


def feature_step(
    ctx: StoreContext, label, spec, params, assets, ids, reader: Reader | None = None, seg=None
) -> FeatureStep:
    """What one feature (or segmenter) does over a scope: counted, decided, not computed.
    ``seg``: the segmentation of a span scope (None: the store's)."""
    counts = _cached_counts(ctx, spec, params, assets, ids, reader, seg)
    return FeatureStep(label, spec, params, assets, ids, counts, decide(counts), seg=seg)


def compute_step(ctx: StoreContext, step: FeatureStep, reader: Reader | None = None) -> None:
    """Compute what a step lacks (only the missing entities are computed)."""
    log.debug("computing %s over %s entities", step.label, step.counts["requested"])
    if reader is not None:
        reader.close()  # materialize takes the write lock
    spec = ctx.registry.get(step.spec.name, step.spec.version)  # the code, to compute
    seg = step.seg
    if seg is not None:  # with the segmenter's code
        seg = type(seg)(ctx.registry.get(seg.spec.name, seg.spec.version), seg.params)
    stats = ctx.resolver.materialize(
        spec, step.params, step.asset_ids, entity_ids=step.entity_ids, seg=seg
    )
    _warn_failed(step, spec, stats)


def compute_steps(ctx: StoreContext, steps: list[FeatureStep], reader: Reader | None) -> None:
    """Compute what several steps over one scope lack, together: span features that can
    share a decode are computed over one decode of each batch of spans
    (:meth:`~amberlite.run.resolve.Resolver.materialize_many`)."""
    if len(steps) < 2:
        for st in steps:
            compute_step(ctx, st, reader)
        return
    if reader is not None:
        reader.close()  # materialize takes the write lock
    first = steps[0]
    seg = first.seg
    if seg is not None:  # with the segmenter's code
        seg = type(seg)(ctx.registry.get(seg.spec.name, seg.spec.version), seg.params)
    log.debug("computing %s together", ", ".join(st.label for st in steps))
    specs = [(ctx.registry.get(st.spec.name, st.spec.version), st.params) for st in steps]
    stats = ctx.resolver.materialize_many(
        specs, first.asset_ids, entity_ids=first.entity_ids, seg=seg
    )
    for st, (spec, _), got in zip(steps, specs, stats):
        _warn_failed(st, spec, got)


def _warn_failed(step: FeatureStep, spec, stats) -> None:
    if getattr(stats, "failed", 0):  # never a silently short or NULL answer
        what = "their spans are missing" if spec.produces else "they read as NULL"
        log.warning(
            "%s: %d failed while computing for this query (%s); `amberlite status` shows why",
            step.label,
            stats.failed,
            what,
        )


_COUNTS: OrderedDict[tuple, dict[str, int]] = OrderedDict()
_COUNTS_MAX = 256


def _cached_counts(
    ctx, spec, params, assets, ids, reader: Reader | None, seg=None
) -> dict[str, int]:
    """``resolver.counts``, remembered until the catalog changes: every input of the count
    (entities, memo files, failures, claims) lives in the catalog, so an unchanged catalog file
    (same mtime, size and inode, :meth:`amberlite.catalog.Catalog.stamp`) gives the same counts.
    A repeated (warm) query therefore skips the count queries."""
    key = memo_key(spec, params)
    scope = (
        str(ctx.root),
        ctx.catalog.stamp(),
        key.label,
        key.params_key,
        None if assets is None else tuple(assets),
        None if ids is None else hashlib.sha1("\0".join(ids).encode()).hexdigest(),
        None if seg is None else seg.label,
    )
    hit = _COUNTS.get(scope)
    if hit is not None:
        _COUNTS.move_to_end(scope)
        return dict(hit)
    con = reader.get() if reader is not None else None
    counts = ctx.resolver.counts(spec, params, assets, ids, con=con, seg=seg)
    _COUNTS[scope] = dict(counts)
    while len(_COUNTS) > _COUNTS_MAX:
        _COUNTS.popitem(last=False)
    return counts


def _scoped_ids(
    ctx: StoreContext, plan: L.SelectPlan, src: L.Source, pred: A.Expr | None, con, nearest=None
) -> tuple[list[str], list[str]]:
    """Entity ids (and their assets) of a source that pass its pushed filter (and, with
    NEAREST, are among the k found)."""
    sql = Sql(ctx, plan, nearest)
    cte = sql.source_cte(src, pred)
    sql.register(con)
    with duck_errors(sql):
        rows = con.execute(
            f"WITH s{src.index} AS ({cte}) SELECT DISTINCT id, asset_id FROM s{src.index}",
            sql.params,
        ).fetchall()
    sql.unregister(con)
    return [r[0] for r in rows], sorted({r[1] for r in rows})


def feature_files(ctx: StoreContext, plan: L.SelectPlan, con) -> dict[int, list[str]]:
    """The committed memo files of every feature use, listed in the reading transaction."""
    out = {}
    for use in plan.features:
        spec = ctx.schema().get(use.name, use.version)
        out[use.slot] = ctx.memo.files(memo_key(spec, dict(use.params)), con)
    return out


def plan_schema(ctx: StoreContext) -> PlanSchema:
    """The planner's view of an open store (its names are cached until the catalog changes)."""
    names = ctx.names()

    def annotation_types() -> dict:  # read only by a query that names annotations
        from amberlite.annotations.read import type_columns

        stamp = ctx.catalog.stamp()  # kept until the catalog changes
        hit = getattr(ctx, "_annotation_types", None)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        with ctx.catalog.read() as con:
            types = type_columns(con)
        ctx._annotation_types = (stamp, types)  # type: ignore[attr-defined]
        return types

    return PlanSchema(ctx.schema(), names.by_alias, names.ids, names.entity_types, annotation_types)
