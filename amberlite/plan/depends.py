"""What a planned statement's answer depends on, as change keys of the catalog journal
(:mod:`amberlite.catalog.changes`): an answer stays valid until a commit touches one of them.

A SELECT depends on the store's names and schema (``assets``, ``schema``: planning resolves
against them, and asset and frame sets are read from the assets table), on the spans of each
span set it reads (``entities:TYPE``), on each annotation type it reads
(``annotations:TYPE``) and on each feature it reads (``feature:NAME``). Whatever the plan
cannot name depends on everything (``*``): NEAREST (a replica's index), MATCHES (a text
index), MATCH, SHOW and DESCRIBE.
"""

from __future__ import annotations

from amberlite.catalog.changes import (
    ASSETS,
    EVERYTHING,
    SCHEMA,
    annotations_key,
    entities_key,
    feature_key,
)
from amberlite.plan import logical as L


def depends_on(plan: L.Plan) -> frozenset[str]:
    """The change keys a plan's answer depends on.

    Example:
        >>> depends_on(L.ShowPlan("features"))
        frozenset({'*'})
    """
    if not isinstance(plan, L.SelectPlan) or plan.nearest is not None or plan.searches:
        return frozenset({EVERYTHING})
    keys = {ASSETS, SCHEMA}
    for src in plan.sources:
        if src.annotation is not None:
            keys.add(annotations_key(src.annotation))
        elif src.entity_type not in ("asset", "frame"):
            keys.add(entities_key(src.entity_type))
    keys.update(feature_key(use.name) for use in plan.features)
    return frozenset(keys)
