"""Logical plan nodes: frozen dataclasses, built from the AST by :mod:`amberlite.plan.build`.

A SELECT becomes a tree read bottom-up::

    Limit -> Sort -> Project -> Aggregate -> Filter (residual WHERE)
        -> FeatureJoin* -> Filter (entity filters, pushed down) -> [Nearest] -> EntityScan

``Nearest`` (SELECT ... NEAREST k TO ...) keeps the k entities of its scan closest to the
target (:class:`NearestSearch`) and adds their ``score``; every filter sits above it, so WHERE
filters the k nearest (it does not pick k among the entities that pass it).

Expressions stay AST nodes (:mod:`amberlite.syntax.ast`) except that names are resolved:
every entity column becomes a :class:`ColumnValue`, every feature a :class:`FeatureValue` and
every reference to a select-list alias an :class:`AliasValue`. Each resolved node carries its
static type (``num``, ``str``, ``bool``, ``vec``, ``other``, ``null``), so later stages never
look names up again. ``show_plan`` prints a plan deterministically (EXPLAIN and goldens).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from amberlite.syntax import ast as A
from amberlite.syntax.printer import format_seconds, quote_string

# ---------------------------------------------------------------- resolved expressions


@dataclass(frozen=True, slots=True)
class ColumnValue(A.Expr):
    """An entity column of source ``source`` (an index into ``SelectPlan.sources``)."""

    source: int
    name: str
    type: str
    label: str  # how the user named it (``s.start_s``)


@dataclass(frozen=True, slots=True)
class FeatureValue(A.Expr):
    """The value of feature use ``slot`` (an index into ``SelectPlan.features``)."""

    slot: int
    type: str
    label: str


@dataclass(frozen=True, slots=True)
class AliasValue(A.Expr):
    """A reference to select-list item ``index`` by its alias (ORDER BY, HAVING)."""

    index: int
    label: str
    type: str


# ---------------------------------------------------------------- sources and feature uses


@dataclass(frozen=True, slots=True)
class Source:
    """One entity set of FROM / JOIN: its type, alias and asset scope (None: every asset)."""

    index: int
    alias: str
    entity_type: str
    asset_ids: tuple[str, ...] | None
    asset_labels: tuple[str, ...] | None
    annotation: str | None = None  # the type of an ``annotations('...')`` set
    # USING: (segmenter, version or None, parameters sorted by name); None: the store's own
    using: tuple[str, int | None, tuple[tuple[str, Any], ...]] | None = None

    def describe(self) -> str:
        scope = "all assets" if self.asset_labels is None else ", ".join(self.asset_labels)
        what = self.entity_type
        if self.annotation is not None:
            what = f"annotations({quote_string(self.annotation)})"
        if self.using is not None:
            name, version, params = self.using
            what += f" USING {name}" + (f"@{version}" if version is not None else "")
            what += f"({', '.join(f'{k}={v!r}' for k, v in params)})" if params else ""
        return f"{what} AS {self.alias} OF [{scope}]"


@dataclass(frozen=True, slots=True)
class FeatureUse:
    """A feature the query reads, joined to ``source`` by entity id (same entity type) or by
    asset id (an asset feature broadcast over the source's entities)."""

    slot: int
    source: int
    name: str
    version: int
    params: tuple[tuple[str, Any], ...]  # resolved, sorted by name
    entity: str
    output: str
    type: str
    by_asset: bool

    @property
    def label(self) -> str:
        ps = ", ".join(f"{k}={_py_text(v)}" for k, v in self.params)
        return f"{self.name}@{self.version}" + (f"({ps})" if ps else "")


# ---------------------------------------------------------------- plan nodes


class PlanNode:
    """Base of logical plan nodes."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class EntityScan(PlanNode):
    source: int


@dataclass(frozen=True, slots=True)
class Nearest(PlanNode):
    """The k entities of the scan below nearest to the target (``SelectPlan.nearest``)."""

    child: PlanNode


@dataclass(frozen=True, slots=True)
class Filter(PlanNode):
    child: PlanNode
    predicate: A.Expr
    pushed: bool = False  # an entity-column filter applied before any feature is computed


@dataclass(frozen=True, slots=True)
class FeatureJoin(PlanNode):
    child: PlanNode
    slot: int


@dataclass(frozen=True, slots=True)
class SpanJoin(PlanNode):
    """An inner join of two sources on a condition (usually a span predicate)."""

    left: PlanNode
    right: PlanNode
    on: A.Expr


@dataclass(frozen=True, slots=True)
class Aggregate(PlanNode):
    child: PlanNode
    group_by: tuple[A.Expr, ...]


@dataclass(frozen=True, slots=True)
class Project(PlanNode):
    child: PlanNode
    items: tuple[A.Expr, ...]
    names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Having(PlanNode):
    child: PlanNode
    predicate: A.Expr


@dataclass(frozen=True, slots=True)
class Sort(PlanNode):
    child: PlanNode
    keys: tuple[tuple[A.Expr, bool], ...]  # (expr, descending)


@dataclass(frozen=True, slots=True)
class Limit(PlanNode):
    child: PlanNode
    limit: int
    offset: int = 0


@dataclass(frozen=True, slots=True)
class NearestSearch:
    """NEAREST: the ``k`` entities of source ``source`` whose ``feature`` value is closest to
    the query vector: ``target_feature``'s value at the target entity (the ``feature``'s own
    value when None). The target is kept as written (``'film1/42'``) and resolved when the
    query runs; it is never in its own result. ``ef`` is the per-query index setting."""

    source: int
    k: int
    target_type: str
    target_id: str
    feature: FeatureUse
    target_feature: FeatureUse | None = None
    ef: int | None = None

    def describe(self) -> str:
        if self.target_type == "annotation":
            return f"{self.k} TO annotation {quote_string(self.target_id)} BY vector (exact cosine)"
        target = f"{self.target_type} {quote_string(self.target_id)}"
        if self.target_feature is not None:
            target = f"{self.target_feature.label} OF {target}"
        ef = f" WITH (ef={self.ef})" if self.ef is not None else ""
        return f"{self.k} TO {target} BY {self.feature.label}{ef}"


@dataclass(frozen=True, slots=True)
class TextSearch:
    """``<source>.<column> MATCHES 'words'``: the annotations of ``source`` whose ``column``
    holds every word, ranked (BM25; the source's ``relevance`` column)."""

    source: int
    column: str
    query: str

    def describe(self, alias: str) -> str:
        return f"{alias}.{self.column} MATCHES {quote_string(self.query)} (tantivy, BM25)"


@dataclass(frozen=True, slots=True)
class RegionPredicate(A.Expr):
    """``left INSIDE|OVERLAPS|CONTAINS right`` on two resolved box expressions."""

    op: str
    left: A.Expr
    right: A.Expr


@dataclass(frozen=True, slots=True)
class MatchesValue(A.Expr):
    """A resolved MATCHES predicate: true for the rows text search ``index`` found."""

    index: int  # into SelectPlan.searches
    label: str


@dataclass(frozen=True, slots=True)
class SelectPlan:
    """A planned SELECT: the node tree plus the sources and features it refers to."""

    root: PlanNode
    sources: tuple[Source, ...]
    features: tuple[FeatureUse, ...]
    nearest: NearestSearch | None = None
    searches: tuple[TextSearch, ...] = ()
    # (source, width) of each ``bucket(<alias>, width)``: that source has one row per entity
    # and bucket it spans (column ``_bucket``)
    buckets: tuple[tuple[int, float], ...] = ()


@dataclass(frozen=True, slots=True)
class ShowPlan:
    what: str


@dataclass(frozen=True, slots=True)
class DescribePlan:
    name: str


@dataclass(frozen=True, slots=True)
class MatchPlan:
    """MATCH: the best match-cut pairs by ``match_type`` (embedded by ``feature``)."""

    source: Source
    match_type: str
    feature: FeatureUse
    top: int
    across_assets: bool
    options: tuple[tuple[str, Any], ...]


Plan = SelectPlan | ShowPlan | DescribePlan | MatchPlan


def scan_source(node: PlanNode) -> int | None:
    """The source of an entity scan (bare, or under its Nearest), else None."""
    if isinstance(node, Nearest):
        node = node.child
    return node.source if isinstance(node, EntityScan) else None


# ---------------------------------------------------------------- printing


def _py_text(value: Any) -> str:
    if isinstance(value, str):
        return quote_string(value)
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    return repr(value)


def show_expr(e: A.Expr | A.Star) -> str:  # noqa: C901 - one branch per node type
    """A deterministic, fully parenthesised text of a (resolved) expression."""
    if isinstance(e, (ColumnValue, FeatureValue, AliasValue, MatchesValue)):
        return e.label
    if isinstance(e, A.Star):
        return "*" if e.qualifier is None else f"{e.qualifier}.*"
    if isinstance(e, A.String):
        return quote_string(e.value)
    if isinstance(e, A.Number):
        return repr(e.value)
    if isinstance(e, A.Bool):
        return "TRUE" if e.value else "FALSE"
    if isinstance(e, A.Null):
        return "NULL"
    if isinstance(e, A.TimeLit):
        return format_seconds(e.seconds)
    if isinstance(e, A.FrameLit):
        return f"f{e.n}"
    if isinstance(e, (A.BinaryOp, A.Compare)):
        return f"({show_expr(e.left)} {e.op} {show_expr(e.right)})"
    if isinstance(e, A.UnaryOp):
        return f"({e.op} {show_expr(e.operand)})" if e.op == "NOT" else f"(-{show_expr(e.operand)})"
    if isinstance(e, A.InList):
        items = ", ".join(show_expr(i) for i in e.items)
        return f"({show_expr(e.expr)} {'NOT IN' if e.negated else 'IN'} ({items}))"
    if isinstance(e, A.Like):
        op = "NOT LIKE" if e.negated else "LIKE"
        return f"({show_expr(e.expr)} {op} {show_expr(e.pattern)})"
    if isinstance(e, A.IsNull):
        return f"({show_expr(e.expr)} IS {'NOT ' if e.negated else ''}NULL)"
    if isinstance(e, A.Between):
        op = "NOT BETWEEN" if e.negated else "BETWEEN"
        return f"({show_expr(e.expr)} {op} {show_expr(e.low)} AND {show_expr(e.high)})"
    if isinstance(e, A.Call):
        distinct = "DISTINCT " if e.distinct else ""
        return f"{e.name}({distinct}{', '.join(show_expr(a) for a in e.args)})"
    if isinstance(e, A.SpanPredicate):
        return f"({_span_text(e.left)} {e.op} {_span_text(e.right)})"
    if isinstance(e, A.Matches):
        return f"({show_expr(e.expr)} MATCHES {quote_string(e.query)})"
    if isinstance(e, RegionPredicate):
        return f"({show_expr(e.left)} {e.op} {show_expr(e.right)})"
    return type(e).__name__


def _span_text(node: A.SpanRef | A.SpanLit | A.Expr) -> str:
    if isinstance(node, A.SpanRef):
        return node.name
    if isinstance(node, A.SpanLit):
        return f"[{show_expr(node.start)}, {show_expr(node.end)}]"
    return show_expr(node)


def show_plan(plan: Plan) -> str:
    """The plan as an indented tree, one node a line (deterministic: goldens compare it)."""
    if isinstance(plan, ShowPlan):
        return f"Show {plan.what}"
    if isinstance(plan, DescribePlan):
        return f"Describe {plan.name}"
    if isinstance(plan, MatchPlan):
        across = " ACROSS ASSETS" if plan.across_assets else ""
        opts = ", ".join(f"{k}={_py_text(v)}" for k, v in plan.options)
        return (
            f"Match {plan.source.describe()} BY {plan.match_type} ({plan.feature.label}) "
            f"TOP {plan.top}{across}" + (f" WITH ({opts})" if opts else "")
        )
    lines: list[str] = []
    _show_node(plan, plan.root, 0, lines)
    for t in plan.searches:
        lines.append(f"TextSearch {t.describe(plan.sources[t.source].alias)}")
    return "\n".join(lines)


def _show_node(plan: SelectPlan, node: PlanNode, depth: int, lines: list[str]) -> None:
    pad = "  " * depth
    children: list[PlanNode] = []
    if isinstance(node, EntityScan):
        lines.append(f"{pad}EntityScan {plan.sources[node.source].describe()}")
    elif isinstance(node, Nearest):
        lines.append(f"{pad}Nearest {plan.nearest.describe() if plan.nearest else '?'}")
        children = [node.child]
    elif isinstance(node, Filter):
        kind = "Filter[pushed]" if node.pushed else "Filter"
        lines.append(f"{pad}{kind} {show_expr(node.predicate)}")
        children = [node.child]
    elif isinstance(node, FeatureJoin):
        use = plan.features[node.slot]
        how = "asset_id" if use.by_asset else "entity_id"
        alias = plan.sources[use.source].alias
        lines.append(f"{pad}FeatureJoin {use.label} ON {alias}.{how} -> {use.type}")
        children = [node.child]
    elif isinstance(node, SpanJoin):
        lines.append(f"{pad}Join ON {show_expr(node.on)}")
        children = [node.left, node.right]
    elif isinstance(node, Aggregate):
        keys = ", ".join(show_expr(g) for g in node.group_by) or "()"
        lines.append(f"{pad}Aggregate GROUP BY {keys}")
        children = [node.child]
    elif isinstance(node, Having):
        lines.append(f"{pad}Having {show_expr(node.predicate)}")
        children = [node.child]
    elif isinstance(node, Project):
        cols = ", ".join(
            f"{show_expr(e)} AS {n}" if show_expr(e) != n else n
            for e, n in zip(node.items, node.names)
        )
        lines.append(f"{pad}Project {cols}")
        children = [node.child]
    elif isinstance(node, Sort):
        keys = ", ".join(f"{show_expr(e)}{' DESC' if d else ''}" for e, d in node.keys)
        lines.append(f"{pad}Sort {keys}")
        children = [node.child]
    elif isinstance(node, Limit):
        off = f" OFFSET {node.offset}" if node.offset else ""
        lines.append(f"{pad}Limit {node.limit}{off}")
        children = [node.child]
    for c in children:
        _show_node(plan, c, depth + 1, lines)


def pushed_filters(node: PlanNode, out: dict[int, A.Expr] | None = None) -> dict[int, A.Expr]:
    """Source index -> its pushed entity filter."""
    out = {} if out is None else out
    if isinstance(node, Filter) and node.pushed and scan_source(node.child) is not None:
        out[scan_source(node.child)] = node.predicate
    for attr in ("child", "left", "right"):
        c = getattr(node, attr, None)
        if c is not None:
            pushed_filters(c, out)
    return out
