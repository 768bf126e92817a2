"""Bind ``$name`` placeholders to values: an AST with placeholders -> an AST of literals.

Applications pass user input as ``params`` next to fixed query text, so nothing a user types
is ever parsed as AQL. A bound value becomes an ordinary literal node (a string, number,
boolean or NULL), which the executor sends to DuckDB as a parameter like every literal.

Example:
    >>> from amberlite.syntax import parse_one, to_aql
    >>> stmt = parse_one("SELECT id FROM shots WHERE asset = $film AND index < $n")
    >>> to_aql(bind(stmt, {"film": "it's", "n": 3}))
    "SELECT id FROM shots WHERE asset = 'it''s' AND index < 3"
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import fields, replace
from typing import Any

from amberlite.errors import AqlError
from amberlite.syntax import ast as A

MAX_STRING = 100_000  # characters in one bound string


def placeholders(node: Any) -> set[str]:
    """The names of the placeholders in a node (a statement, an expression...)."""
    found: set[str] = set()
    _walk(node, lambda p: found.add(p.name) or p)
    return found


def bind(node: A.Node, params: Mapping[str, Any] | None) -> A.Node:
    """``node`` with each ``$name`` replaced by the literal of ``params[name]``.

    Raises :class:`AqlError` for a placeholder with no value, a value with no placeholder,
    or a value that is not a string, number, boolean or None."""
    params = dict(params or {})
    wanted = placeholders(node)
    missing = sorted(wanted - params.keys())
    if missing:
        raise AqlError(f"no value for {', '.join('$' + m for m in missing)}: pass it in params")
    extra = sorted(params.keys() - wanted)
    if extra:
        raise AqlError(f"params {', '.join(map(repr, extra))} name no placeholder in the query")
    if not wanted:
        return node
    literals = {name: literal(name, params[name]) for name in wanted}
    return _walk(node, lambda p: literals[p.name])


def literal(name: str, value: Any) -> A.Literal:
    """The literal node of a parameter value."""
    if value is None:
        return A.Null()
    if isinstance(value, bool):
        return A.Bool(value)
    if isinstance(value, int):
        return A.Number(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise AqlError(f"${name}: a number must be finite, not {value!r}")
        return A.Number(value)
    if isinstance(value, str):
        if len(value) > MAX_STRING:
            raise AqlError(f"${name}: a string of {len(value)} characters is too long")
        return A.String(value)
    raise AqlError(
        f"${name}: a parameter is a string, number, boolean or null, not {type(value).__name__}"
    )


def _walk(value: Any, visit: Any) -> Any:
    if isinstance(value, A.Placeholder):
        return visit(value)
    if isinstance(value, tuple):
        out = tuple(_walk(v, visit) for v in value)
        return value if all(a is b for a, b in zip(out, value)) else out
    if isinstance(value, A.Node):
        changes = {}
        for f in fields(value):  # type: ignore[arg-type]
            old = getattr(value, f.name)
            new = _walk(old, visit)
            if new is not old:
                changes[f.name] = new
        return replace(value, **changes) if changes else value
    return value
