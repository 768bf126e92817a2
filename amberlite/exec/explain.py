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
    steps: list[FeatureStep] = []
    if isinstance(plan, L.SelectPlan):
        if plan.nearest is not None:
            from amberlite.search.nearest import search_line

            lines.append(f"search: {search_line(ctx, plan)}")
        with Reader(ctx) as reader:
            steps = prepare(ctx, plan, compute=False, reader=reader).steps
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
    if steps:
        lines.append("features:")
        lines += ["  " + s.line() for s in steps]
    return "\n".join(lines)
