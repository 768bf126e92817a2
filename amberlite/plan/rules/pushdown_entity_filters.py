"""Push WHERE conjuncts that read only one source's entity columns down to its scan.

``... OF 'film1' WHERE start_s < 60 AND brightness > 0.5`` becomes a pushed
``Filter[pushed] start_s < 60`` right above the scan of shots, below the feature joins, so
the resolver computes ``brightness`` only for the shots that pass it. Over a NEAREST scan
the filter goes above the ``Nearest`` node (it filters the k nearest, ``score`` included).
A conjunct that reads a feature, two sources, an alias or a span of another source stays
where it is.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from amberlite.plan import logical as L
from amberlite.plan.build import _children, conjuncts
from amberlite.syntax import ast as A


def _sources(e: Any) -> set[int] | None:
    """The sources an expression reads if it reads only entity columns, else None."""
    if isinstance(e, L.ColumnValue):
        return {e.source}
    if isinstance(e, (L.FeatureValue, L.AliasValue, A.SpanPredicate, A.Star)):
        return None
    if isinstance(e, A.Call) and e.name in ("count", "min", "max", "avg", "sum"):
        return None
    out: set[int] = set()
    for c in _children(e):
        s = _sources(c)
        if s is None:
            return None
        out |= s
    return out


def _and(parts: list[A.Expr]) -> A.Expr:
    out = parts[0]
    for p in parts[1:]:
        out = A.BinaryOp("AND", out, p)
    return out


def _insert(node: L.PlanNode, source: int, pred: A.Expr) -> L.PlanNode:
    """Put ``pred`` directly above the scan of ``source`` (merging with a pushed filter); a
    NEAREST scan keeps the filter above it (WHERE filters the k nearest)."""
    if isinstance(node, (L.EntityScan, L.Nearest)):
        return L.Filter(node, pred, pushed=True) if L.scan_source(node) == source else node
    if isinstance(node, L.Filter) and node.pushed and L.scan_source(node.child) is not None:
        if L.scan_source(node.child) == source:
            return L.Filter(node.child, _and([node.predicate, pred]), pushed=True)
        return node
    if isinstance(node, L.SpanJoin):
        return replace(
            node, left=_insert(node.left, source, pred), right=_insert(node.right, source, pred)
        )
    if hasattr(node, "child"):
        return replace(node, child=_insert(node.child, source, pred))  # type: ignore[arg-type]
    return node


def _rewrite(node: L.PlanNode) -> L.PlanNode:
    if isinstance(node, L.Filter) and not node.pushed:
        child = _rewrite(node.child)
        keep: list[A.Expr] = []
        for part in conjuncts(node.predicate):
            srcs = _sources(part)
            if srcs is not None and len(srcs) == 1:
                child = _insert(child, next(iter(srcs)), part)
            else:
                keep.append(part)
        return L.Filter(child, _and(keep)) if keep else child
    if isinstance(node, L.SpanJoin):
        return replace(node, left=_rewrite(node.left), right=_rewrite(node.right))
    if hasattr(node, "child"):
        return replace(node, child=_rewrite(node.child))  # type: ignore[arg-type]
    return node


def pushdown_entity_filters(plan: L.SelectPlan) -> L.SelectPlan:
    return replace(plan, root=_rewrite(plan.root))
