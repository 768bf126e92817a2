"""Turn an AQL parse tree into AST nodes.

``AstBuilder`` is a lark ``Transformer`` whose method names are the grammar's rule names (and
``-> alias`` names), so rule ``feature_ref`` is built by ``AstBuilder.feature_ref`` into a
``FeatureRef``.  Keyword tokens are kept in the tree; methods pick the children they need.

Semantic mistakes that the grammar cannot see (``00:75`` minutes, a span that ends before it
starts, a parameter given twice, a number too large) raise ``SemanticError``, which ``to_ast``
turns into ``AqlSyntaxError`` at the offending token or rule.
"""

from __future__ import annotations

import threading
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple

from lark import Lark, Token, Transformer, Tree
from lark.exceptions import UnexpectedInput, VisitError

from amberlite.errors import AqlSyntaxError
from amberlite.syntax import ast as A
from amberlite.syntax.diagnostics import syntax_error_from_lark
from amberlite.syntax.parse_tree import build_parser, get_parser

_NAME_TYPES = ("NAME",)


class SemanticError(Exception):
    """A well-formed but invalid construct; ``token`` (if any) locates it."""

    def __init__(self, message: str, token: Token | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.token = token


class _Clause(NamedTuple):
    """A SELECT clause on its way to the ``Select`` constructor (field name, value)."""

    field: str
    value: Any


class _TargetValue(NamedTuple):
    """``<feature> OF <entity_ref>``: the query vector of NEAREST (a feature's value)."""

    feature: A.FeatureRef
    entity: A.EntityRef


def _names(children: list[Any]) -> list[Token]:
    return [c for c in children if isinstance(c, Token) and c.type in _NAME_TYPES]


def _has(children: list[Any], token_type: str) -> bool:
    return any(isinstance(c, Token) and c.type == token_type for c in children)


def _int(token: Token) -> int:
    return int(str(token))


# The largest LIMIT / OFFSET (DuckDB's BIGINT) and the largest NEAREST k / MATCH TOP n.
MAX_LIMIT = 2**63 - 1
MAX_SEARCH_COUNT = 2**31 - 1


def _count(token: Token, what: str, low: int, high: int) -> int:
    """The integer of ``token``, refused (naming ``what``) outside ``[low, high]``."""
    n = _int(token)
    if n < low:
        raise SemanticError(f"{what} needs a count of at least {low}", token)
    if n > high:
        raise SemanticError(f"{what} {n} is too large (at most {high})", token)
    return n


def _unquote_string(token: Token) -> str:
    return str(token)[1:-1].replace("''", "'")


def _number(text: str, token: Token | None = None) -> A.Number:
    if any(c in text for c in ".eE"):
        value = float(text)
        if value in (float("inf"), float("-inf")):
            raise SemanticError(f"number {text} is too large", token)
        return A.Number(value)
    return A.Number(int(text))


def _time_seconds(token: Token) -> float:
    text = str(token)
    parts = text.split(":")
    try:
        if len(parts) == 3:
            hours, minutes, secs = Decimal(parts[0]), Decimal(parts[1]), Decimal(parts[2])
            if minutes >= 60:
                raise SemanticError(f"timecode {text}: minutes must be below 60", token)
        else:
            hours, minutes, secs = Decimal(0), Decimal(parts[0]), Decimal(parts[1])
        if secs >= 60:
            raise SemanticError(f"timecode {text}: seconds must be below 60", token)
        seconds = float(hours * 3600 + minutes * 60 + secs)
    except InvalidOperation:  # pragma: no cover - the regex admits only digits
        raise SemanticError(f"bad timecode {text}", token) from None
    if seconds >= A.MAX_SECONDS:
        raise SemanticError(f"timecode {text} is too large", token)
    return seconds


def _pairs(children: list[Any], what: str) -> tuple[tuple[str, A.Literal], ...]:
    pairs: list[tuple[str, A.Literal]] = []
    seen: set[str] = set()
    for child in children:
        if isinstance(child, _Param):
            if child.name in seen:
                raise SemanticError(f"{what} {child.name!r} is given twice", child.token)
            seen.add(child.name)
            pairs.append((child.name, child.value))
    return tuple(pairs)


class _Param(NamedTuple):
    name: str
    value: A.Literal
    token: Token


class AstBuilder(Transformer):
    """Parse tree -> AST; one method per grammar rule or alias."""

    def __init__(self) -> None:
        super().__init__(visit_tokens=False)

    # ------------------------------------------------------------ script and statements

    def start(self, children: list[Any]) -> A.Script:
        return A.Script(tuple(c for c in children if isinstance(c, A.Statement)))

    def select(self, children: list[Any]) -> A.Select:
        kwargs: dict[str, Any] = {}
        joins: list[A.Join] = []
        for child in children:
            if isinstance(child, _Clause):
                kwargs[child.field] = child.value
            elif isinstance(child, A.Join):
                joins.append(child)
            elif isinstance(child, A.Nearest):
                kwargs["nearest"] = child
        if "limit" in kwargs:
            kwargs["limit"], kwargs["offset"] = kwargs["limit"]
        return A.Select(joins=tuple(joins), **kwargs)

    def select_items(self, children: list[Any]) -> _Clause:
        return _Clause("items", tuple(children))

    def select_item(self, children: list[Any]) -> A.SelectItem:
        names = _names(children[1:])
        return A.SelectItem(children[0], str(names[0]) if names else None)

    def star(self, children: list[Any]) -> A.SelectItem:
        names = [c for c in children if isinstance(c, Token) and c.type != "STAR"]
        return A.SelectItem(A.Star(str(names[0]) if names else None))

    def from_clause(self, children: list[Any]) -> _Clause:
        return _Clause("source", children[-1])

    def entity_set(self, children: list[Any]) -> A.EntitySet:
        names = _names(children)
        alias = str(names[1]) if len(names) > 1 else None
        of = next((c for c in children if isinstance(c, tuple)), ())
        arg = next((c for c in children if isinstance(c, Token) and c.type == "STRING"), None)
        using = next((c for c in children if isinstance(c, A.Using)), None)
        return A.EntitySet(
            str(names[0]), alias, of, _unquote_string(arg) if arg is not None else None, using
        )

    def using(self, children: list[Any]) -> A.Using:
        # children: USING, NAME, INT | None, then the params (or one None)
        name, version_token = children[1], children[2]
        params = _pairs(children[3:], "parameter") if children[3] is not None else ()
        version = _int(version_token) if version_token is not None else None
        return A.Using(str(name.value), version, params)

    def of_target(self, children: list[Any]) -> tuple[str, ...]:
        return tuple(_unquote_string(c) for c in children if isinstance(c, Token))

    def join(self, children: list[Any]) -> A.Join:
        entity_set = next(c for c in children if isinstance(c, A.EntitySet))
        return A.Join(entity_set, children[-1])

    def nearest(self, children: list[Any]) -> A.Nearest:
        k_token = next(c for c in children if isinstance(c, Token) and c.type == "INT")
        k = _count(k_token, "NEAREST", 1, MAX_SEARCH_COUNT)
        value = next((c for c in children if isinstance(c, _TargetValue)), None)
        if value is not None:
            target, feature = value.entity, value.feature
        else:
            target, feature = next(c for c in children if isinstance(c, A.EntityRef)), None
        by = self._by_feature(children)
        options = next(
            (c for c in children if isinstance(c, tuple) and not isinstance(c, _TargetValue)), ()
        )
        return A.Nearest(k, target, by, options, feature)

    def target_value(self, children: list[Any]) -> _TargetValue:
        feature = next(c for c in children if isinstance(c, (A.FeatureRef, A.Column)))
        if isinstance(feature, A.Column):
            of_token = next(c for c in children if isinstance(c, Token) and c.type == "OF")
            raise SemanticError(
                f"TO ... OF needs a feature, not the entity column {feature.name!r}", of_token
            )
        return _TargetValue(feature, next(c for c in children if isinstance(c, A.EntityRef)))

    @staticmethod
    def _by_feature(children: list[Any]) -> A.FeatureRef:
        by = next(c for c in children if isinstance(c, (A.FeatureRef, A.Column)))
        if isinstance(by, A.Column):
            by_token = next(c for c in children if isinstance(c, Token) and c.type == "BY")
            raise SemanticError(f"BY needs a feature, not the entity column {by.name!r}", by_token)
        return by

    def entity_ref(self, children: list[Any]) -> A.EntityRef:
        name, string = children
        return A.EntityRef(str(name), _unquote_string(string))

    def options(self, children: list[Any]) -> tuple[tuple[str, A.Literal], ...]:
        return _pairs(children, "option")

    def option(self, children: list[Any]) -> _Param:
        return self.param(children)

    def where(self, children: list[Any]) -> _Clause:
        return _Clause("where", children[-1])

    def group_by(self, children: list[Any]) -> _Clause:
        return _Clause("group_by", tuple(c for c in children if isinstance(c, A.Expr)))

    def having(self, children: list[Any]) -> _Clause:
        return _Clause("having", children[-1])

    def order_by(self, children: list[Any]) -> _Clause:
        return _Clause("order_by", tuple(c for c in children if isinstance(c, A.OrderItem)))

    def order_item(self, children: list[Any]) -> A.OrderItem:
        return A.OrderItem(children[0], _has(children, "DESC"))

    def limit(self, children: list[Any]) -> _Clause:
        tokens = [c for c in children if isinstance(c, Token) and c.type == "INT"]
        ints = [_count(t, w, 0, MAX_LIMIT) for t, w in zip(tokens, ("LIMIT", "OFFSET"))]
        return _Clause("limit", (ints[0], ints[1] if len(ints) > 1 else None))

    def match(self, children: list[Any]) -> A.Match:
        entity_set = next(c for c in children if isinstance(c, A.EntitySet))
        by = self._by_feature(children)
        top_token = next(c for c in children if isinstance(c, Token) and c.type == "INT")
        top = _count(top_token, "TOP", 1, MAX_SEARCH_COUNT)
        options = next((c for c in children if isinstance(c, tuple)), ())
        return A.Match(entity_set, by, top, _has(children, "ACROSS"), options)

    def show(self, children: list[Any]) -> A.Show:
        return A.Show(children[-1].type)

    def describe(self, children: list[Any]) -> A.Describe:
        return A.Describe(str(children[-1]))

    def explain(self, children: list[Any]) -> A.Explain:
        return A.Explain(children[-1])

    # ------------------------------------------------------------ expressions

    def binary_op(self, children: list[Any]) -> A.BinaryOp:
        left, op, right = children
        return A.BinaryOp(op.type if op.type in ("AND", "OR") else str(op), left, right)

    def unary_op(self, children: list[Any]) -> A.UnaryOp:
        return A.UnaryOp("NOT", children[-1])

    def neg(self, children: list[Any]) -> A.Expr:
        operand = children[-1]
        if isinstance(operand, A.Number):
            return A.Number(-operand.value)
        return A.UnaryOp("-", operand)

    def compare(self, children: list[Any]) -> A.Compare:
        left, op, right = children
        return A.Compare("!=" if str(op) == "<>" else str(op), left, right)

    def in_list(self, children: list[Any]) -> A.InList:
        items = tuple(c for c in children[1:] if isinstance(c, A.Expr))
        return A.InList(children[0], items, _has(children, "NOT"))

    def like(self, children: list[Any]) -> A.Like:
        return A.Like(children[0], children[-1], _has(children, "NOT"))

    def is_null(self, children: list[Any]) -> A.IsNull:
        return A.IsNull(children[0], _has(children, "NOT"))

    def between(self, children: list[Any]) -> A.Between:
        exprs = [c for c in children if isinstance(c, A.Expr)]
        return A.Between(exprs[0], exprs[1], exprs[2], _has(children, "NOT"))

    def span_predicate(self, children: list[Any]) -> A.SpanPredicate:
        left, op, right = children
        try:
            return A.SpanPredicate(op, left, right)
        except (TypeError, ValueError):
            raise SemanticError(
                f"{op} compares two spans (aliases, [start, end]) or two regions (a.box, "
                "box(x0, y0, x1, y1)); INSIDE is for regions"
            ) from None

    def span_op(self, children: list[Any]) -> str:
        return children[0].type

    def span_column(self, children: list[Any]) -> A.FeatureRef | A.Column:
        qualifier, name = str(children[0]), str(children[1])
        if name in A.ENTITY_COLUMNS:
            return A.Column(name, qualifier)
        return A.FeatureRef(name, None, (), qualifier)

    def matches(self, children: list[Any]) -> A.Matches:
        words = children[-1]
        if getattr(words, "type", None) == "PLACEHOLDER":
            return A.Matches(children[0], A.Placeholder(str(words)[1:]))
        return A.Matches(children[0], _unquote_string(words))

    def feature_ref(self, children: list[Any]) -> A.FeatureRef | A.Column:
        # children: NAME, NAME | None, INT | None, then the params (or one None)
        first, second, version_token = children[0], children[1], children[2]
        name, qualifier = (second.value, first.value) if second is not None else (first.value, None)
        params = _pairs(children[3:], "parameter") if children[3] is not None else ()
        if version_token is None and not params:
            if name in A.ENTITY_COLUMNS:
                return A.Column(name, qualifier)
            return A.FeatureRef(name, None, (), qualifier)
        version = _int(version_token) if version_token is not None else None
        return A.FeatureRef(name, version, params, qualifier)

    def param(self, children: list[Any]) -> _Param:
        token, value = children
        return _Param(str(token).rstrip("=").rstrip(), value, token)

    def call(self, children: list[Any]) -> A.Call:
        name = children[0]
        return A.Call(str(name).lower(), tuple(c for c in children[1:] if c is not None))

    def call_distinct(self, children: list[Any]) -> A.Call:
        return A.Call(str(children[0]).lower(), (children[-1],), True)

    def call_star(self, children: list[Any]) -> A.Call:
        return A.Call(str(children[0]).lower(), (A.Star(),))

    def span_ref(self, children: list[Any]) -> A.SpanRef:
        return A.SpanRef(str(children[0]))

    def span_lit(self, children: list[Any]) -> A.SpanLit:
        start, end = children
        try:
            return A.SpanLit(start, end)
        except ValueError:
            raise SemanticError("span start is after its end") from None

    # ------------------------------------------------------------ literals and names

    def string(self, children: list[Any]) -> A.String:
        return A.String(_unquote_string(children[0]))

    def number(self, children: list[Any]) -> A.Number:
        return _number(str(children[0]), children[0])

    def neg_number(self, children: list[Any]) -> A.Number:
        number = _number(str(children[-1]), children[-1])
        return A.Number(-number.value)

    def true(self, children: list[Any]) -> A.Bool:
        return A.Bool(True)

    def false(self, children: list[Any]) -> A.Bool:
        return A.Bool(False)

    def null(self, children: list[Any]) -> A.Null:
        return A.Null()

    def time_lit(self, children: list[Any]) -> A.TimeLit:
        return A.TimeLit(_time_seconds(children[0]))

    def frame_lit(self, children: list[Any]) -> A.FrameLit:
        return A.FrameLit(int(str(children[0])[1:]))

    def placeholder(self, children: list[Any]) -> A.Placeholder:
        return A.Placeholder(str(children[0])[1:])


_builder = AstBuilder()
_fast_lock = threading.Lock()
_fast_parser: Lark | None = None


def ast_parser() -> Lark:
    """A second AQL parser that runs ``AstBuilder`` while parsing (no tree, no positions).

    About 1.5x faster than ``parse_tree`` + ``to_ast``; ``parse_text`` falls back to the
    positioned path only to locate a semantic error.
    """
    global _fast_parser
    if _fast_parser is None:
        with _fast_lock:
            if _fast_parser is None:
                _fast_parser = build_parser(propagate_positions=False, transformer=_builder)
    return _fast_parser


# Nodes nested deeper than this are refused so that printers, planners and dataclass equality,
# which recurse, stay far from Python's recursion limit.  Text shorter than the check length
# cannot nest that deep.
# A flat chain `a OR b OR c ...` (or AND) is not nesting: its links cost half a level, so
# that chains of up to 2 * MAX_DEPTH terms pass while the recursion they cause stays bounded.
MAX_DEPTH = 200
_DEPTH_CHECK_LENGTH = MAX_DEPTH
_CHAIN_LINK = 0.5


def _check_depth(script: A.Script, text: str) -> None:
    stack: list[tuple[Any, float]] = [(script, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise AqlSyntaxError(
                f"query is nested too deeply (more than {MAX_DEPTH} levels, or an AND/OR chain "
                f"of about {int(MAX_DEPTH / _CHAIN_LINK)} terms)",
                1,
                1,
                text,
                (),
            )
        if isinstance(node, tuple):
            stack.extend((item, depth) for item in node)
        elif isinstance(node, A.Node):
            chain = isinstance(node, A.BinaryOp) and node.op in ("AND", "OR")
            for slot in type(node).__slots__:
                value = getattr(node, slot)
                if isinstance(value, (A.Node, tuple)):
                    link = (
                        chain and isinstance(value, A.BinaryOp) and value.op == node.op  # type: ignore[attr-defined]
                    )
                    stack.append((value, depth + (_CHAIN_LINK if link else 1)))


def parse_text(text: str) -> A.Script:
    """Text -> ``Script`` on the fast path; errors are ``AqlSyntaxError`` as in ``to_ast``."""
    if not isinstance(text, str):
        raise TypeError(f"AQL text must be a str, not {type(text).__name__}")
    parser = ast_parser()
    try:
        script = parser.parse(text)
        if len(text) > _DEPTH_CHECK_LENGTH:
            _check_depth(script, text)
        return script
    except RecursionError:
        raise AqlSyntaxError("query is nested too deeply", 1, 1, text, ()) from None
    except UnexpectedInput as exc:
        raise syntax_error_from_lark(text, exc, parser) from None
    except SemanticError as exc:
        if exc.token is not None and exc.token.line is not None:
            raise AqlSyntaxError(exc.message, exc.token.line, exc.token.column, text, ()) from None
    except (ValueError, TypeError):
        pass
    # Locate the semantic error with the positioned parser (raises AqlSyntaxError).
    try:
        return to_ast(parse_tree(text), text)
    except RecursionError:
        raise AqlSyntaxError("query is nested too deeply", 1, 1, text, ()) from None


def _position(exc: VisitError, semantic: SemanticError | None, text: str) -> tuple[int, int]:
    token = semantic.token if semantic is not None else None
    if token is not None and getattr(token, "line", None) is not None:
        return token.line, token.column
    obj = exc.obj
    meta = getattr(obj, "meta", None)
    if meta is not None and not getattr(meta, "empty", True):
        return meta.line, meta.column
    if isinstance(obj, Token) and obj.line is not None:
        return obj.line, obj.column
    return 1, 1


def to_ast(tree: Tree, text: str = "") -> A.Script:
    """The ``Script`` for a parse tree from ``parse_tree`` (``text`` is used in error reports)."""
    try:
        return _builder.transform(tree)
    except VisitError as exc:
        orig = exc.orig_exc
        if isinstance(orig, SemanticError):
            line, column = _position(exc, orig, text)
            raise AqlSyntaxError(orig.message, line, column, text, ()) from None
        if isinstance(orig, (ValueError, TypeError)):
            line, column = _position(exc, None, text)
            raise AqlSyntaxError(str(orig), line, column, text, ()) from None
        raise


def parse_tree(text: str) -> Tree:
    """Parse ``text`` (one or more ``;``-separated statements) into a lark tree rooted at ``start``.

    Raises ``AqlSyntaxError`` (never a lark exception) for malformed text.
    """
    if not isinstance(text, str):
        raise TypeError(f"AQL text must be a str, not {type(text).__name__}")
    try:
        return get_parser().parse(text)
    except UnexpectedInput as exc:
        raise syntax_error_from_lark(text, exc) from None
