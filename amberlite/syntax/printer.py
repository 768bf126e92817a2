"""Print AQL ASTs: ``pretty`` (an indented tree for goldens and debugging) and ``to_aql`` (query
text that parses back to an equal AST).

Both are deterministic: the output depends only on the node's value.
"""

from __future__ import annotations

import re
from dataclasses import fields
from decimal import Decimal

from amberlite.syntax import ast as A

KEYWORDS = frozenset(
    """
    select from as of join on where group by having order asc desc limit offset and or not in
    like is null between true false nearest to with match top across assets features entities
    show describe explain during overlaps contains before after distinct using
    """.split()
)

_PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_FRAME_LIKE = re.compile(r"f\d+")
_PARAM_PREFIX = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\s*=(?!=)")


# ---------------------------------------------------------------- pretty


def pretty(node: A.Node) -> str:
    """An indented, deterministic printout of ``node`` (one node per line, fields labelled)."""
    lines: list[str] = []
    _pretty(node, 0, "", lines)
    return "\n".join(lines)


def _pretty(node: A.Node, depth: int, label: str, lines: list[str]) -> None:
    pad = "  " * depth
    if isinstance(node, A.Literal):
        lines.append(f"{pad}{label}{type(node).__name__} {_literal_text(node)}")
        return
    scalars: list[str] = []
    children: list[tuple[str, object]] = []
    for f in fields(node):  # type: ignore[arg-type]
        value = getattr(node, f.name)
        if value is None or value == () or value is False:
            continue
        if isinstance(value, A.Node):
            children.append((f.name, value))
        elif isinstance(value, tuple) and all(isinstance(v, A.Node) for v in value):
            children.append((f.name, value))
        elif f.name in ("params", "options"):
            inner = ", ".join(f"{k}={_literal_text(v)}" for k, v in value)
            scalars.append(f"{f.name}=({inner})")
        elif isinstance(value, tuple):
            scalars.append(f"{f.name}=({', '.join(repr(v) for v in value)})")
        elif value is True:
            scalars.append(f.name)
        else:
            scalars.append(f"{f.name}={value!r}")
    lines.append(f"{pad}{label}{' '.join([type(node).__name__, *scalars])}")
    for name, value in children:
        if isinstance(value, A.Node):
            _pretty(value, depth + 1, f"{name}: ", lines)
        else:
            lines.append(f"{pad}  {name}:")
            for item in value:  # type: ignore[union-attr]
                _pretty(item, depth + 2, "- ", lines)


# ---------------------------------------------------------------- to_aql

# Binding strength of each expression form; an operand weaker than its slot needs parentheses.
_OR, _AND, _NOT, _PREDICATE, _SUM, _PRODUCT, _UNARY, _PRIMARY = range(1, 9)
_BINARY_LEVEL = {"OR": _OR, "AND": _AND, "+": _SUM, "-": _SUM, "*": _PRODUCT, "/": _PRODUCT}
_BINARY_LEVEL["%"] = _PRODUCT


def quote_name(name: str) -> str:
    """``name`` as AQL source: bare when it lexes as an identifier, else ``"double-quoted"``."""
    if (
        _PLAIN_NAME.fullmatch(name)
        and name.lower() not in KEYWORDS
        and not _FRAME_LIKE.fullmatch(name)
    ):
        return name
    return '"' + name.replace('"', '""') + '"'


def quote_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def format_seconds(seconds: float) -> str:
    """A timecode ``HH:MM:SS[.fff]`` that parses back to exactly ``seconds``."""
    exact = Decimal(repr(float(seconds)))
    hours, rest = divmod(exact, 3600)
    minutes, secs = divmod(rest, 60)
    whole = int(secs)
    frac = format(secs - whole, "f")  # "0" or "0.xxx"
    frac = frac[1:] if frac.startswith("0.") else ""
    frac = frac.rstrip("0")
    if frac == ".":
        frac = ""
    return f"{int(hours):02d}:{int(minutes):02d}:{whole:02d}{frac}"


def _literal_text(lit: A.Literal) -> str:
    if isinstance(lit, A.String):
        return quote_string(lit.value)
    if isinstance(lit, A.Number):
        return repr(lit.value)
    if isinstance(lit, A.Bool):
        return "TRUE" if lit.value else "FALSE"
    if isinstance(lit, A.Null):
        return "NULL"
    if isinstance(lit, A.TimeLit):
        return format_seconds(lit.seconds)
    if isinstance(lit, A.FrameLit):
        return f"f{lit.n}"
    if isinstance(lit, A.Placeholder):
        return f"${lit.name}"
    raise TypeError(f"not a literal: {lit!r}")


def _params(pairs: tuple[tuple[str, A.Literal], ...]) -> str:
    return ", ".join(f"{k}={_literal_text(v)}" for k, v in pairs)


def _level(expr: A.Expr) -> int:
    if isinstance(expr, A.BinaryOp):
        return _BINARY_LEVEL[expr.op]
    if isinstance(expr, A.UnaryOp):
        return _NOT if expr.op == "NOT" else _UNARY
    if isinstance(
        expr, (A.Compare, A.InList, A.Like, A.IsNull, A.Between, A.SpanPredicate, A.Matches)
    ):
        return _PREDICATE
    if isinstance(expr, A.Number) and expr.value < 0:
        return _UNARY
    if isinstance(expr, A.Number) and str(expr.value).startswith("-"):  # -0.0
        return _UNARY
    return _PRIMARY


def _expr(expr: A.Expr | A.Star, minimum: int = _OR) -> str:
    text = _expr_text(expr)
    if isinstance(expr, A.Expr) and _level(expr) < minimum:
        return f"({text})"
    return text


def _call_arg(arg: A.Expr | A.Star) -> str:
    text = _expr(arg)
    # `f(x = 1)` would read as the parameter list of a feature; keep it a comparison.
    return f"({text})" if _PARAM_PREFIX.match(text) else text


def _span_operand(node: A.SpanRef | A.SpanLit | A.Expr) -> str:
    if isinstance(node, A.SpanRef):
        return quote_name(node.name)
    if isinstance(node, A.SpanLit):
        return f"[{_literal_text(node.start)}, {_literal_text(node.end)}]"
    return _expr_text(node)


def _expr_text(expr: A.Expr | A.Star) -> str:  # noqa: C901 - one branch per node type
    if isinstance(expr, A.Literal):
        return _literal_text(expr)
    if isinstance(expr, A.Star):
        return f"{quote_name(expr.qualifier)}.*" if expr.qualifier else "*"
    if isinstance(expr, A.Column):
        prefix = f"{quote_name(expr.qualifier)}." if expr.qualifier else ""
        return prefix + quote_name(expr.name)
    if isinstance(expr, A.FeatureRef):
        text = f"{quote_name(expr.qualifier)}." if expr.qualifier else ""
        text += quote_name(expr.name)
        if expr.version is not None:
            text += f"@{expr.version}"
        if expr.params:
            text += f"({_params(expr.params)})"
        return text
    if isinstance(expr, A.Call):
        distinct = "DISTINCT " if expr.distinct else ""
        args = ", ".join(_call_arg(a) for a in expr.args)
        return f"{quote_name(expr.name)}({distinct}{args})"
    if isinstance(expr, A.BinaryOp):
        level = _BINARY_LEVEL[expr.op]
        return f"{_expr(expr.left, level)} {expr.op} {_expr(expr.right, level + 1)}"
    if isinstance(expr, A.UnaryOp):
        if expr.op == "NOT":
            return f"NOT {_expr(expr.operand, _NOT)}"
        operand = _expr(expr.operand, _UNARY)
        return f"-({operand})" if operand.startswith("-") else f"-{operand}"
    if isinstance(expr, A.Compare):
        return f"{_expr(expr.left, _SUM)} {expr.op} {_expr(expr.right, _SUM)}"
    if isinstance(expr, A.InList):
        items = ", ".join(_expr(i) for i in expr.items)
        neg = "NOT " if expr.negated else ""
        return f"{_expr(expr.expr, _SUM)} {neg}IN ({items})"
    if isinstance(expr, A.Like):
        neg = "NOT " if expr.negated else ""
        return f"{_expr(expr.expr, _SUM)} {neg}LIKE {_expr(expr.pattern, _SUM)}"
    if isinstance(expr, A.IsNull):
        neg = "NOT " if expr.negated else ""
        return f"{_expr(expr.expr, _SUM)} IS {neg}NULL"
    if isinstance(expr, A.Between):
        neg = "NOT " if expr.negated else ""
        low, high = _expr(expr.low, _SUM), _expr(expr.high, _SUM)
        return f"{_expr(expr.expr, _SUM)} {neg}BETWEEN {low} AND {high}"
    if isinstance(expr, A.SpanPredicate):
        return f"{_span_operand(expr.left)} {expr.op} {_span_operand(expr.right)}"
    if isinstance(expr, A.Matches):
        words = expr.query
        return f"{_expr(expr.expr, _SUM)} MATCHES " + (
            quote_string(words) if isinstance(words, str) else _literal_text(words)
        )
    raise TypeError(f"not an expression: {expr!r}")


def _entity_set(es: A.EntitySet) -> str:
    text = quote_name(es.name)
    if es.arg is not None:
        text += f"({quote_string(es.arg)})"
    if es.using is not None:
        u = es.using
        text += f" USING {quote_name(u.name)}"
        text += f"@{u.version}" if u.version is not None else ""
        text += f"({_params(u.params)})" if u.params else ""
    if es.alias is not None:
        text += f" AS {quote_name(es.alias)}"
    if len(es.of) == 1:
        text += f" OF {quote_string(es.of[0])}"
    elif es.of:
        text += f" OF ({', '.join(quote_string(o) for o in es.of)})"
    return text


def _with(options: tuple[tuple[str, A.Literal], ...]) -> str:
    return f" WITH ({_params(options)})" if options else ""


def _select(sel: A.Select) -> str:
    items = []
    for item in sel.items:
        text = _expr(item.expr)
        if item.alias is not None:
            text += f" AS {quote_name(item.alias)}"
        items.append(text)
    parts = [f"SELECT {', '.join(items)}", f"FROM {_entity_set(sel.source)}"]
    for join in sel.joins:
        parts.append(f"JOIN {_entity_set(join.entity_set)} ON {_expr(join.on)}")
    if sel.nearest is not None:
        n = sel.nearest
        target = f"{quote_name(n.target.entity_type)} {quote_string(n.target.id)}"
        if n.target_feature is not None:
            target = f"{_expr(n.target_feature)} OF {target}"
        parts.append(f"NEAREST {n.k} TO {target} BY {_expr(n.by)}{_with(n.options)}")
    if sel.where is not None:
        parts.append(f"WHERE {_expr(sel.where)}")
    if sel.group_by:
        parts.append(f"GROUP BY {', '.join(_expr(e) for e in sel.group_by)}")
    if sel.having is not None:
        parts.append(f"HAVING {_expr(sel.having)}")
    if sel.order_by:
        order = ", ".join(_expr(o.expr) + (" DESC" if o.descending else "") for o in sel.order_by)
        parts.append(f"ORDER BY {order}")
    if sel.limit is not None:
        parts.append(
            f"LIMIT {sel.limit}" + (f" OFFSET {sel.offset}" if sel.offset is not None else "")
        )
    return "\n".join(parts)


def _statement(stmt: A.Statement) -> str:
    if isinstance(stmt, A.Select):
        return _select(stmt)
    if isinstance(stmt, A.Match):
        text = f"MATCH {_entity_set(stmt.entity_set)} BY {_expr(stmt.by)} TOP {stmt.top}"
        if stmt.across_assets:
            text += " ACROSS ASSETS"
        return text + _with(stmt.options)
    if isinstance(stmt, A.Show):
        return f"SHOW {stmt.what}"
    if isinstance(stmt, A.Describe):
        return f"DESCRIBE {quote_name(stmt.name)}"
    if isinstance(stmt, A.Explain):
        return f"EXPLAIN {_statement(stmt.statement)}"
    raise TypeError(f"not a statement: {stmt!r}")


def to_aql(node: A.Node) -> str:
    """AQL text for ``node`` (a Script, statement, expression, ...).

    For a Script or statement, ``parse(to_aql(node))`` gives back an equal AST.  Clauses of a
    SELECT go on separate lines; statements of a Script end with ``;`` on separate lines.
    """
    if isinstance(node, A.Script):
        return "\n".join(_statement(s) + ";" for s in node.statements)
    if isinstance(node, A.Statement):
        return _statement(node)
    if isinstance(node, A.SelectItem):
        text = _expr(node.expr)
        return text + (f" AS {quote_name(node.alias)}" if node.alias is not None else "")
    if isinstance(node, A.EntitySet):
        return _entity_set(node)
    if isinstance(node, (A.SpanRef, A.SpanLit)):
        return _span_operand(node)
    if isinstance(node, A.OrderItem):
        return _expr(node.expr) + (" DESC" if node.descending else "")
    if isinstance(node, A.EntityRef):
        return f"{quote_name(node.entity_type)} {quote_string(node.id)}"
    return _expr(node)  # type: ignore[arg-type]
