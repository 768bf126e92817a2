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
line: the replica index or the exact torch search, and why (:func:`similarity.explain_path`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from amberlite.plan import logical as L
from amberlite.plan.physical import FeatureStep, Reader, _step, prepare

if TYPE_CHECKING:
    from amberlite.api import Store


def explain_plan(store: Store, plan: L.Plan) -> str:
    """Plan tree and per-feature stored / missing / failed counts (nothing is computed)."""
    lines = ["plan:"] + ["  " + ln for ln in L.show_plan(plan).splitlines()]
    steps: list[FeatureStep] = []
    if isinstance(plan, L.SelectPlan):
        if plan.nearest is not None:
            from amberlite.plan.nearest import search_line

            lines.append(f"search: {search_line(store, plan)}")
        with Reader(store) as reader:
            steps = prepare(store, plan, compute=False, reader=reader).steps
    elif isinstance(plan, L.MatchPlan):
        from amberlite.matchcut import search_path

        assets = list(plan.source.asset_ids) if plan.source.asset_ids is not None else None
        ef = dict(plan.options).get("ef")
        lines.append(f"search: {search_path(store, plan.match_type, assets, ef)}")
        src, use = plan.source, plan.feature
        spec = store.registry.get(use.name, use.version)
        prod = store.registry.producer_of(src.entity_type)
        seg = _step(store, prod.key, prod, None, assets, None, False)
        step = _step(store, use.label, spec, dict(use.params), assets, None, False)
        if seg.action == "compute":
            step.note = f" (+ {src.entity_type}s of assets not segmented yet)"
            step.action = "compute"
        steps = [seg, step]
    if steps:
        lines.append("features:")
        lines += ["  " + s.line() for s in steps]
    return "\n".join(lines)
