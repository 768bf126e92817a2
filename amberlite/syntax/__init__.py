"""The AQL syntax layer: text -> parse tree -> immutable AST -> text.

Public API::

    parse(text) -> Script            # all `;`-separated statements (possibly none)
    parse_one(text) -> Statement     # exactly one statement (a trailing `;` is fine)
    parse_expr(text) -> Expr         # one expression, as in a WHERE clause
    pretty(node) -> str              # indented printout (corpus goldens, debugging)
    to_aql(node) -> str              # query text; parse(to_aql(s)) == s

Malformed text raises ``amberlite.errors.AqlSyntaxError`` with line, column and the expected
tokens; nothing else escapes ``parse``/``parse_one``/``parse_expr`` for any ``str`` input.
"""

from __future__ import annotations

import functools

from amberlite.errors import AqlSyntaxError
from amberlite.syntax import ast
from amberlite.syntax.ast import (
    Between,
    BinaryOp,
    Bool,
    Call,
    Column,
    Compare,
    Describe,
    EntityRef,
    EntitySet,
    Explain,
    Expr,
    FeatureRef,
    FrameLit,
    InList,
    IsNull,
    Join,
    Like,
    Literal,
    Match,
    Matches,
    Nearest,
    Node,
    Null,
    Number,
    OrderItem,
    Script,
    Select,
    SelectItem,
    Show,
    SpanLit,
    SpanPredicate,
    SpanRef,
    Star,
    Statement,
    String,
    TimeLit,
    UnaryOp,
)
from amberlite.syntax.bind import bind
from amberlite.syntax.parse_tree import get_parser
from amberlite.syntax.printer import pretty, to_aql
from amberlite.syntax.to_ast import parse_text, parse_tree, to_ast


@functools.lru_cache(maxsize=512)
def _parse_cached(text: str) -> Script:
    return parse_text(text)


def parse(text: str) -> Script:
    """Parse AQL text into a ``Script`` of its statements (empty statements are dropped).

    ASTs are immutable, so results are memoised by text (the last 512 distinct texts).
    """
    if not isinstance(text, str):
        raise TypeError(f"AQL text must be a str, not {type(text).__name__}")
    return _parse_cached(text)


def parse_one(text: str) -> Statement:
    """Parse text that holds exactly one statement (a trailing ``;`` is fine)."""
    script = parse(text)
    if len(script.statements) == 1:
        return script.statements[0]
    if not script.statements:
        line = text.count("\n") + 1
        column = len(text) - (text.rfind("\n") + 1) + 1
        raise AqlSyntaxError("empty query: expected a statement", line, column, text, ())
    second = [c for c in parse_tree(text).children if c is not None][1]
    raise AqlSyntaxError(
        f"expected one statement, found {len(script.statements)}",
        second.meta.line,
        second.meta.column,
        text,
        (),
    )


def parse_expr(text: str) -> Expr:
    """Parse a single expression (as written after WHERE), e.g. ``"mean_color > 0.5"``."""
    if not isinstance(text, str):
        raise TypeError(f"AQL text must be a str, not {type(text).__name__}")
    prefix = "SELECT 1 FROM _ WHERE "
    try:
        stmt = parse_one(prefix + text)
    except AqlSyntaxError as exc:
        column = exc.column - len(prefix) if exc.line == 1 else exc.column
        raise AqlSyntaxError(exc.message, exc.line, max(column, 1), text, exc.expected) from None
    assert isinstance(stmt, Select) and stmt.where is not None
    if stmt != Select(stmt.items, stmt.source, where=stmt.where):
        # `a LIMIT 3` parses as a WHERE clause followed by more clauses: point after `a`.
        where = next(t for t in parse_tree(prefix + text).children[0].children if _is_where(t))
        line, column = where.meta.end_line, where.meta.end_column
        column = column - len(prefix) if line == 1 else column
        raise AqlSyntaxError("unexpected text after the expression", line, column, text, ())
    return stmt.where


def _is_where(node: object) -> bool:
    return getattr(node, "data", None) == "where"


__all__ = [
    "bind",
    "AqlSyntaxError",
    "Between",
    "BinaryOp",
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
    "Script",
    "Select",
    "SelectItem",
    "Show",
    "SpanLit",
    "Matches",
    "SpanPredicate",
    "SpanRef",
    "Star",
    "Statement",
    "String",
    "TimeLit",
    "UnaryOp",
    "ast",
    "get_parser",
    "parse",
    "parse_expr",
    "parse_one",
    "parse_tree",
    "pretty",
    "to_aql",
    "to_ast",
]
