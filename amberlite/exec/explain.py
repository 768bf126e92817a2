"""EXPLAIN: the logical plan tree, then what each feature would do, counted without computing.

The printout is deterministic for a given store state (goldens compare it)::

    plan:
      Project id, brightness
        FeatureJoin brightness@1 ON shots.entity_id -> num
          Filter[pushed] (start_s < 60)
            EntityScan shot AS shots OF [film1]
    features:
      shots@1: stored 1, missing 0, failed 0 -> read
      brightness@1: stored 0, missing 12, failed 0 -> compute

Entities of a derived type that are not segmented yet are not counted under their features
(the segmenter's line shows the assets still to segment). NEAREST and MATCH add a ``search:``
line: the replica index or the exact torch search, and why
(:func:`amberlite.search.similarity.explain_path`).
"""

from __future__ import annotations

from amberlite.context import StoreContext
from amberlite.exec.scope import FeatureStep, Reader, feature_step, prepare
from amberlite.plan import logical as L


def explain_plan(ctx: StoreContext, plan: L.Plan) -> str:
    """Plan tree and per-feature stored / missing / failed counts (nothing is computed)."""
    lines = ["plan:"] + ["  " + ln for ln in L.show_plan(plan).splitlines()]
    steps = plan_steps(ctx, plan, lines)
    if steps:
        lines.append("features:")
        lines += ["  " + s.line() for s in steps]
    return "\n".join(lines)


def plan_steps(
    ctx: StoreContext, plan: L.Plan, lines: list[str] | None = None
) -> list[FeatureStep]:
    """What each feature of a plan would read or compute, counted (nothing is computed);
    appends the ``search:`` line of NEAREST / MATCH to ``lines``."""
    lines = [] if lines is None else lines
    steps: list[FeatureStep] = []
    if isinstance(plan, L.SelectPlan):
        if plan.nearest is not None and plan.sources[plan.nearest.source].annotation is not None:
            lines.append("search: exact cosine similarity of the vectors, in the query's SQL")
        elif plan.nearest is not None:
            from amberlite.search.nearest import search_line

            lines.append(f"search: {search_line(ctx, plan)}")
        with Reader(ctx) as reader:
            steps = prepare(ctx, plan, compute=False, reader=reader).steps
            if any(s.annotation is not None for s in plan.sources):
                lines += ["annotations:"] + ["  " + x for x in _annotation_lines(ctx, plan, reader)]
    elif isinstance(plan, L.MatchPlan):
        from amberlite.search.match import search_path

        assets = list(plan.source.asset_ids) if plan.source.asset_ids is not None else None
        ef = dict(plan.options).get("ef")
        lines.append(f"search: {search_path(ctx, plan.match_type, assets, ef)}")
        src, use = plan.source, plan.feature
        schema = ctx.schema()
        spec = schema.get(use.name, use.version)
        sg = ctx.segmentation(src.entity_type)
        with Reader(ctx) as reader:
            seg = feature_step(ctx, sg.describe(), sg.spec, dict(sg.params), assets, None, reader)
            step = feature_step(ctx, use.label, spec, dict(use.params), assets, None, reader)
        if seg.action == "compute":
            step.note = f" (+ {src.entity_type}s of assets not segmented yet)"
            step.action = "compute"
        steps = [seg, step]
    return steps


def _annotation_lines(ctx: StoreContext, plan: L.SelectPlan, reader: Reader) -> list[str]:
    """Where each annotation set's rows come from and how its text search runs (nothing is
    built or searched)."""
    from amberlite.exec.sql import Sql

    sql = Sql(ctx, plan)
    sql.con, sql.dry = reader.get(), True
    sql.con_catalog = sql.con
    for src in plan.sources:
        if src.annotation is not None:
            sql.source_cte(src, None)
    return sql.explain
