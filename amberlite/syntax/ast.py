"""The AQL abstract syntax tree: immutable, hashable nodes that check their own invariants.

Every node is a ``@dataclass(frozen=True, slots=True)`` whose sequence fields are tuples, so
nodes compare by value and can be dict keys or set members.  Constructing a node that the parser
could never produce raises ``TypeError`` (wrong kind of value) or ``ValueError`` (a value out of
range), so a planner that builds or rewrites ASTs cannot create one that prints as invalid AQL.

Canonical forms (what the parser produces and what ``to_aql`` round-trips):

* operators are upper-case words or symbols: ``Compare.op`` in ``COMPARE_OPS`` (``<>`` is
  normalised to ``!=``), ``BinaryOp.op`` in ``BINARY_OPS``, ``UnaryOp.op`` in ``UNARY_OPS``,
  ``SpanPredicate.op`` in ``SPAN_OPS``, ``Show.what`` in ``SHOW_TARGETS``;
* a minus sign directly before a number literal is folded into the literal: ``-1`` is
  ``Number(-1)``, never ``UnaryOp("-", Number(1))`` (that node is refused);
* a bare entity column name (``ENTITY_COLUMNS``) is a ``Column``; every other name is a
  ``FeatureRef`` (the planner resolves features, select-list aliases and entity aliases);
* function names are case-insensitive and stored in lower case (``Call("count", ...)``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

ENTITY_COLUMNS = frozenset({"id", "asset", "start_s", "end_s", "start_frame", "end_frame", "index"})
COMPARE_OPS = frozenset({"=", "!=", "<", "<=", ">", ">="})
BINARY_OPS = frozenset({"+", "-", "*", "/", "%", "AND", "OR"})
UNARY_OPS = frozenset({"-", "NOT"})
SPAN_OPS = frozenset({"DURING", "OVERLAPS", "CONTAINS", "BEFORE", "AFTER"})
REGION_OPS = frozenset({"INSIDE", "OVERLAPS", "CONTAINS"})  # on boxes: a.box INSIDE box(...)
MAX_SECONDS = 1e12  # timecodes beyond ~31,700 years are refused
SHOW_TARGETS = frozenset({"ASSETS", "FEATURES", "ENTITIES"})

# A parameter or option name is a plain identifier (it is lexed together with its `=`).
PARAM_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class Node:
    """Base of every AST node."""

    __slots__ = ()


class Expr(Node):
    """Base of nodes that may appear where an expression is expected."""

    __slots__ = ()


class Literal(Expr):
    """Base of literal values."""

    __slots__ = ()


class Statement(Node):
    """Base of top-level statements."""

    __slots__ = ()


# ---------------------------------------------------------------- validation helpers


def _fail(node: object, message: str, exc: type[Exception] = ValueError) -> None:
    raise exc(f"{type(node).__name__}: {message}")


def _check_name(node: object, field: str, value: object, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str):
        _fail(node, f"{field} must be a str, not {type(value).__name__}", TypeError)
    if not value or "\n" in value or "\r" in value:
        _fail(node, f"{field} must be a non-empty single-line name, not {value!r}")


def _check_type(node: object, field: str, value: object, types: type | tuple[type, ...]) -> None:
    if not isinstance(value, types):
        names = (
            " | ".join(t.__name__ for t in types) if isinstance(types, tuple) else types.__name__
        )
        _fail(node, f"{field} must be {names}, not {type(value).__name__}", TypeError)


def _check_tuple(
    node: object, field: str, value: object, types: type | tuple[type, ...], *, nonempty: bool
) -> None:
    if not isinstance(value, tuple):
        _fail(node, f"{field} must be a tuple, not {type(value).__name__}", TypeError)
    if nonempty and not value:
        _fail(node, f"{field} must not be empty")
    for item in value:  # type: ignore[union-attr]
        _check_type(node, f"{field} item", item, types)


def _check_int(node: object, field: str, value: object, *, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        _fail(node, f"{field} must be an int, not {type(value).__name__}", TypeError)
    if value < minimum:  # type: ignore[operator]
        _fail(node, f"{field} must be >= {minimum}, not {value}")


def _check_params(node: object, field: str, value: object) -> None:
    """`(name, literal)` pairs with distinct identifier names (feature params, WITH options)."""
    if not isinstance(value, tuple):
        _fail(node, f"{field} must be a tuple of (name, Literal) pairs", TypeError)
    seen: set[str] = set()
    for pair in value:  # type: ignore[union-attr]
        if not (isinstance(pair, tuple) and len(pair) == 2):
            _fail(node, f"{field} must be a tuple of (name, Literal) pairs", TypeError)
        key, lit = pair
        if not isinstance(key, str) or not PARAM_NAME_RE.fullmatch(key):
            _fail(node, f"{field} name must be an identifier, not {key!r}")
        if not isinstance(lit, Literal):
            _fail(node, f"{field} value of {key!r} must be a scalar Literal", TypeError)
        if key in seen:
            _fail(node, f"{field} name {key!r} is given twice")
        seen.add(key)


def _check_op(node: object, value: object, allowed: frozenset[str]) -> None:
    if value not in allowed:
        _fail(node, f"op must be one of {sorted(allowed)}, not {value!r}")


# ---------------------------------------------------------------- literals


@dataclass(frozen=True, slots=True)
class Placeholder(Literal):
    """``$name``: a value supplied with the query (see :func:`amberlite.syntax.bind`)."""

    name: str

    def __post_init__(self) -> None:
        _check_type(self, "name", self.name, str)
        if not PARAM_NAME_RE.fullmatch(self.name):
            _fail(self, f"name must be an identifier, not {self.name!r}")


@dataclass(frozen=True, slots=True)
class String(Literal):
    value: str

    def __post_init__(self) -> None:
        _check_type(self, "value", self.value, str)


@dataclass(frozen=True, slots=True)
class Number(Literal):
    """An int or finite float; may be negative (``-1`` folds into ``Number(-1)``)."""

    value: int | float

    def __post_init__(self) -> None:
        if isinstance(self.value, bool) or not isinstance(self.value, (int, float)):
            _fail(self, f"value must be int or float, not {type(self.value).__name__}", TypeError)
        if isinstance(self.value, float) and not math.isfinite(self.value):
            _fail(self, f"value must be finite, not {self.value!r}")


@dataclass(frozen=True, slots=True)
class Bool(Literal):
    value: bool

    def __post_init__(self) -> None:
        _check_type(self, "value", self.value, bool)


@dataclass(frozen=True, slots=True)
class Null(Literal):
    pass


@dataclass(frozen=True, slots=True)
class TimeLit(Literal):
    """A timecode (``00:01:02.500``, ``01:02``) in seconds; always stored as a float."""

    seconds: float

    def __post_init__(self) -> None:
        if isinstance(self.seconds, bool) or not isinstance(self.seconds, (int, float)):
            _fail(self, "seconds must be a number", TypeError)
        if not math.isfinite(self.seconds) or not 0 <= self.seconds < MAX_SECONDS:
            _fail(self, f"seconds must be >= 0 and < {MAX_SECONDS:g}, not {self.seconds!r}")
        object.__setattr__(self, "seconds", float(self.seconds))


@dataclass(frozen=True, slots=True)
class FrameLit(Literal):
    """A frame number literal: ``f1234`` is ``FrameLit(1234)``."""

    n: int

    def __post_init__(self) -> None:
        _check_int(self, "n", self.n, minimum=0)


SpanEndpoint = TimeLit | Number | FrameLit


@dataclass(frozen=True, slots=True)
class SpanLit(Node):
    """A literal span ``[start, end]``; endpoints of the same kind must satisfy start <= end.

    Like ``SpanRef`` it is only an operand of a ``SpanPredicate``, not a value expression.
    """

    start: SpanEndpoint
    end: SpanEndpoint

    def __post_init__(self) -> None:
        for field in ("start", "end"):
            value = getattr(self, field)
            _check_type(self, field, value, (TimeLit, Number, FrameLit))
            if isinstance(value, Number) and math.copysign(1, value.value) < 0:
                _fail(self, f"{field} must not be negative")
        if type(self.start) is type(self.end) and _endpoint(self.start) > _endpoint(self.end):
            _fail(self, "span start is after its end")


def _endpoint(lit: SpanEndpoint) -> float:
    if isinstance(lit, TimeLit):
        return lit.seconds
    if isinstance(lit, FrameLit):
        return lit.n
    return lit.value


# ---------------------------------------------------------------- references


@dataclass(frozen=True, slots=True)
class Column(Expr):
    """An entity column (``start_s``, ``s.asset``, ...)."""

    name: str
    qualifier: str | None = None

    def __post_init__(self) -> None:
        _check_name(self, "name", self.name)
        if self.name not in ENTITY_COLUMNS:
            _fail(self, f"{self.name!r} is not an entity column ({sorted(ENTITY_COLUMNS)})")
        _check_name(self, "qualifier", self.qualifier, optional=True)


@dataclass(frozen=True, slots=True)
class FeatureRef(Expr):
    """A feature: ``mean_color``, ``s.mean_color``, ``embedding@2``, ``shots(threshold=0.4)``."""

    name: str
    version: int | None = None
    params: tuple[tuple[str, Literal], ...] = ()
    qualifier: str | None = None

    def __post_init__(self) -> None:
        _check_name(self, "name", self.name)
        if self.version is not None:
            _check_int(self, "version", self.version, minimum=0)
        _check_params(self, "params", self.params)
        _check_name(self, "qualifier", self.qualifier, optional=True)
        if self.name in ENTITY_COLUMNS and self.version is None and not self.params:
            _fail(self, f"{self.name!r} is an entity column: use Column")


@dataclass(frozen=True, slots=True)
class Star(Node):
    """``*`` or ``s.*`` in a select list, and the argument of ``count(*)``."""

    qualifier: str | None = None

    def __post_init__(self) -> None:
        _check_name(self, "qualifier", self.qualifier, optional=True)


@dataclass(frozen=True, slots=True)
class SpanRef(Node):
    """The span of an entity named by its alias or entity-set name (``f`` in ``f DURING s``)."""

    name: str

    def __post_init__(self) -> None:
        _check_name(self, "name", self.name)


@dataclass(frozen=True, slots=True)
class EntityRef(Node):
    """One entity by type and id, the target of NEAREST: ``shot 'film1/42'``."""

    entity_type: str
    id: str

    def __post_init__(self) -> None:
        _check_name(self, "entity_type", self.entity_type)
        _check_type(self, "id", self.id, str)


# ---------------------------------------------------------------- expressions


@dataclass(frozen=True, slots=True)
class BinaryOp(Expr):
    """Arithmetic (``+ - * / %``) and boolean (``AND``, ``OR``) operators."""

    op: str
    left: Expr
    right: Expr

    def __post_init__(self) -> None:
        _check_op(self, self.op, BINARY_OPS)
        _check_type(self, "left", self.left, Expr)
        _check_type(self, "right", self.right, Expr)


@dataclass(frozen=True, slots=True)
class UnaryOp(Expr):
    op: str
    operand: Expr

    def __post_init__(self) -> None:
        _check_op(self, self.op, UNARY_OPS)
        _check_type(self, "operand", self.operand, Expr)
        if self.op == "-" and isinstance(self.operand, Number):
            _fail(self, "negate a number literal by negating its value: Number(-x)")


@dataclass(frozen=True, slots=True)
class Compare(Expr):
    op: str
    left: Expr
    right: Expr

    def __post_init__(self) -> None:
        _check_op(self, self.op, COMPARE_OPS)
        _check_type(self, "left", self.left, Expr)
        _check_type(self, "right", self.right, Expr)


@dataclass(frozen=True, slots=True)
class InList(Expr):
    """``expr [NOT] IN (item, ...)``."""

    expr: Expr
    items: tuple[Expr, ...]
    negated: bool = False

    def __post_init__(self) -> None:
        _check_type(self, "expr", self.expr, Expr)
        _check_tuple(self, "items", self.items, Expr, nonempty=True)
        _check_type(self, "negated", self.negated, bool)


@dataclass(frozen=True, slots=True)
class Like(Expr):
    expr: Expr
    pattern: Expr
    negated: bool = False

    def __post_init__(self) -> None:
        _check_type(self, "expr", self.expr, Expr)
        _check_type(self, "pattern", self.pattern, Expr)
        _check_type(self, "negated", self.negated, bool)


@dataclass(frozen=True, slots=True)
class IsNull(Expr):
    expr: Expr
    negated: bool = False

    def __post_init__(self) -> None:
        _check_type(self, "expr", self.expr, Expr)
        _check_type(self, "negated", self.negated, bool)


@dataclass(frozen=True, slots=True)
class Between(Expr):
    expr: Expr
    low: Expr
    high: Expr
    negated: bool = False

    def __post_init__(self) -> None:
        _check_type(self, "expr", self.expr, Expr)
        _check_type(self, "low", self.low, Expr)
        _check_type(self, "high", self.high, Expr)
        _check_type(self, "negated", self.negated, bool)


@dataclass(frozen=True, slots=True)
class Call(Expr):
    """A function or aggregate call; ``count(*)`` is ``Call("count", (Star(),))``;
    ``count(DISTINCT x)`` has ``distinct``."""

    name: str
    args: tuple[Expr | Star, ...] = ()
    distinct: bool = False

    def __post_init__(self) -> None:
        _check_name(self, "name", self.name)
        if self.name != self.name.lower():
            _fail(self, f"function names are stored in lower case, not {self.name!r}")
        _check_tuple(self, "args", self.args, (Expr, Star), nonempty=False)
        stars = [a for a in self.args if isinstance(a, Star)]
        if stars and (len(self.args) != 1 or stars[0].qualifier is not None):
            _fail(self, "`*` must be the only argument and unqualified, as in count(*)")
        if self.distinct and (len(self.args) != 1 or stars):
            _fail(self, "DISTINCT takes one argument, as in count(DISTINCT x)")


@dataclass(frozen=True, slots=True)
class SpanPredicate(Expr):
    """``left DURING|OVERLAPS|CONTAINS|BEFORE|AFTER right`` on entity spans or literal spans."""

    op: str
    left: SpanRef | SpanLit | Expr
    right: SpanRef | SpanLit | Expr

    def __post_init__(self) -> None:
        spans = [isinstance(x, (SpanRef, SpanLit)) for x in (self.left, self.right)]
        if all(spans):  # spans in time
            _check_op(self, self.op, SPAN_OPS)
            return
        # regions: a qualified column (``a.box``) or a call (``box(0, 0, 0.5, 1)``) each side
        _check_op(self, self.op, REGION_OPS)
        for field in ("left", "right"):
            value = getattr(self, field)
            _check_type(self, field, value, (Column, FeatureRef, Call))
            if isinstance(value, (Column, FeatureRef)) and value.qualifier is None:
                _fail(self, f"a region operand is qualified (a.box), not {value.name!r}")


@dataclass(frozen=True, slots=True)
class Matches(Expr):
    """``expr MATCHES 'words'``: ranked full-text search (every word must occur). ``query``
    is the words, or a ``$name`` placeholder (a literal once bound; the planner wants text)."""

    expr: Expr
    query: str | Literal

    def __post_init__(self) -> None:
        _check_type(self, "expr", self.expr, Expr)
        _check_type(self, "query", self.query, (str, Literal))


# ---------------------------------------------------------------- clauses


@dataclass(frozen=True, slots=True)
class SelectItem(Node):
    """One select-list entry; ``expr`` is a ``Star`` for ``*`` / ``s.*`` (which take no alias)."""

    expr: Expr | Star
    alias: str | None = None

    def __post_init__(self) -> None:
        _check_type(self, "expr", self.expr, (Expr, Star))
        _check_name(self, "alias", self.alias, optional=True)
        if isinstance(self.expr, Star) and self.alias is not None:
            _fail(self, "`*` cannot have an alias")


@dataclass(frozen=True, slots=True)
class EntitySet(Node):
    """``shots``, ``shots s``, ``frames AS f OF ('film1', 'film2')``,
    ``annotations('comment') a``."""

    name: str
    alias: str | None = None
    of: tuple[str, ...] = ()
    arg: str | None = None  # ``annotations('comment')``: the annotation type
    using: Using | None = None

    def __post_init__(self) -> None:
        _check_name(self, "name", self.name)
        _check_name(self, "alias", self.alias, optional=True)
        _check_tuple(self, "of", self.of, str, nonempty=False)
        if self.arg is not None:
            _check_type(self, "arg", self.arg, str)
        if self.using is not None:
            _check_type(self, "using", self.using, Using)


@dataclass(frozen=True, slots=True)
class Using(Node):
    """The segmentation of a span entity set: ``USING transnetv2``, ``USING shots@2``,
    ``USING transnetv2(threshold=0.3)`` (a segmenter of the set's type, its parameters)."""

    name: str
    version: int | None = None
    params: tuple[tuple[str, Literal], ...] = ()

    def __post_init__(self) -> None:
        _check_name(self, "name", self.name)
        if self.version is not None:
            _check_int(self, "version", self.version, minimum=0)
        _check_params(self, "params", self.params)


@dataclass(frozen=True, slots=True)
class Join(Node):
    entity_set: EntitySet
    on: Expr

    def __post_init__(self) -> None:
        _check_type(self, "entity_set", self.entity_set, EntitySet)
        _check_type(self, "on", self.on, Expr)


@dataclass(frozen=True, slots=True)
class Nearest(Node):
    """``NEAREST k TO [<feature> OF] <entity_ref> BY <feature> [WITH (opt=lit, ...)]``.

    ``target_feature`` (when given) is the feature whose value at ``target`` is the query
    vector; otherwise the query vector is the ``by`` feature's value at ``target``."""

    k: int
    target: EntityRef
    by: FeatureRef
    options: tuple[tuple[str, Literal], ...] = ()
    target_feature: FeatureRef | None = None

    def __post_init__(self) -> None:
        _check_int(self, "k", self.k, minimum=1)
        _check_type(self, "target", self.target, EntityRef)
        _check_type(self, "by", self.by, FeatureRef)
        _check_params(self, "options", self.options)
        if self.target_feature is not None:
            _check_type(self, "target_feature", self.target_feature, FeatureRef)


@dataclass(frozen=True, slots=True)
class OrderItem(Node):
    expr: Expr
    descending: bool = False

    def __post_init__(self) -> None:
        _check_type(self, "expr", self.expr, Expr)
        _check_type(self, "descending", self.descending, bool)


# ---------------------------------------------------------------- statements


@dataclass(frozen=True, slots=True)
class Select(Statement):
    items: tuple[SelectItem, ...]
    source: EntitySet
    joins: tuple[Join, ...] = ()
    nearest: Nearest | None = None
    where: Expr | None = None
    group_by: tuple[Expr, ...] = ()
    having: Expr | None = None
    order_by: tuple[OrderItem, ...] = ()
    limit: int | None = None
    offset: int | None = None

    def __post_init__(self) -> None:
        _check_tuple(self, "items", self.items, SelectItem, nonempty=True)
        _check_type(self, "source", self.source, EntitySet)
        _check_tuple(self, "joins", self.joins, Join, nonempty=False)
        if self.nearest is not None:
            _check_type(self, "nearest", self.nearest, Nearest)
        if self.where is not None:
            _check_type(self, "where", self.where, Expr)
        _check_tuple(self, "group_by", self.group_by, Expr, nonempty=False)
        if self.having is not None:
            _check_type(self, "having", self.having, Expr)
        _check_tuple(self, "order_by", self.order_by, OrderItem, nonempty=False)
        if self.limit is not None:
            _check_int(self, "limit", self.limit, minimum=0)
        if self.offset is not None:
            _check_int(self, "offset", self.offset, minimum=0)
            if self.limit is None:
                _fail(self, "OFFSET needs a LIMIT")


@dataclass(frozen=True, slots=True)
class Match(Statement):
    """``MATCH <entity_set> BY <feature> TOP n [ACROSS ASSETS] [WITH (opt=lit, ...)]``."""

    entity_set: EntitySet
    by: FeatureRef
    top: int
    across_assets: bool = False
    options: tuple[tuple[str, Literal], ...] = ()

    def __post_init__(self) -> None:
        _check_type(self, "entity_set", self.entity_set, EntitySet)
        _check_type(self, "by", self.by, FeatureRef)
        _check_int(self, "top", self.top, minimum=1)
        _check_type(self, "across_assets", self.across_assets, bool)
        _check_params(self, "options", self.options)


@dataclass(frozen=True, slots=True)
class Show(Statement):
    """``SHOW ASSETS | FEATURES | ENTITIES``; ``what`` is upper case."""

    what: str

    def __post_init__(self) -> None:
        if self.what not in SHOW_TARGETS:
            _fail(self, f"what must be one of {sorted(SHOW_TARGETS)}, not {self.what!r}")


@dataclass(frozen=True, slots=True)
class Describe(Statement):
    name: str

    def __post_init__(self) -> None:
        _check_name(self, "name", self.name)


@dataclass(frozen=True, slots=True)
class Explain(Statement):
    statement: Select | Match | Show | Describe

    def __post_init__(self) -> None:
        _check_type(self, "statement", self.statement, (Select, Match, Show, Describe))


@dataclass(frozen=True, slots=True)
class Script(Node):
    """The statements of a query text, in order (empty statements between `;` are dropped)."""

    statements: tuple[Statement, ...]

    def __post_init__(self) -> None:
        _check_tuple(self, "statements", self.statements, Statement, nonempty=False)


__all__ = [
    "BINARY_OPS",
    "COMPARE_OPS",
    "ENTITY_COLUMNS",
    "SHOW_TARGETS",
    "SPAN_OPS",
    "UNARY_OPS",
    "Between",
    "Bool",
    "Call",
    "Column",
    "Compare",
    "Describe",
    "EntityRef",
    "EntitySet",
    "Explain",
    "Expr",
    "FeatureRef",
    "FrameLit",
    "InList",
    "IsNull",
    "Join",
    "Like",
    "Literal",
    "Match",
    "Nearest",
    "Node",
    "Null",
    "Number",
    "OrderItem",
    "Placeholder",
    "Script",
    "Select",
    "SelectItem",
    "Show",
    "SpanLit",
    "SpanPredicate",
    "Matches",
    "REGION_OPS",
    "SpanRef",
    "Star",
    "Statement",
    "String",
    "BinaryOp",
    "UnaryOp",
    "TimeLit",
]
