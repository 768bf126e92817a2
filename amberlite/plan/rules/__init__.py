"""Logical rewrites, one per module, applied in ``RULES`` order by :func:`optimize`.

A rule is a function ``SelectPlan -> SelectPlan`` that returns an equivalent plan (same result
table); rules never read values or compute.
"""

from __future__ import annotations

from collections.abc import Callable

from amberlite.plan import logical as L
from amberlite.plan.rules.pushdown_entity_filters import pushdown_entity_filters

Rule = Callable[[L.SelectPlan], L.SelectPlan]
RULES: tuple[Rule, ...] = (pushdown_entity_filters,)


def optimize(plan: L.Plan) -> L.Plan:
    """Apply every rule in order (only SELECT plans have anything to rewrite)."""
    if not isinstance(plan, L.SelectPlan):
        return plan
    for rule in RULES:
        plan = rule(plan)
    return plan
