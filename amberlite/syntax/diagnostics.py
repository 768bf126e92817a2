"""Turn lark's parse failures into ``AqlSyntaxError`` with friendly wording.

Three layers, tried in order:

1. lexer failures: an unterminated string or quoted identifier, or an illegal character;
2. known mistakes, recognised by the LALR state the parser was in (learned once, lazily, by
   parsing the ``_EXAMPLES`` below -- the technique of lark's ``match_examples``, cached): an
   empty select list, a trailing comma, nothing after FROM / WHERE / LIMIT, ...;
3. general rules on the unexpected token and the expected set: missing FROM, unclosed
   parenthesis, a keyword used as a name, a missing expression.

Expected terminals are reported by friendly names: ``FROM`` (keywords), ``identifier``,
``string``, ``(`` ...
"""

from __future__ import annotations

import threading

from lark import Lark
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from amberlite.errors import AqlSyntaxError

_VALUE_TERMINALS = {
    "NAME": "identifier",
    "QUOTED_NAME": "identifier",
    "PARAM_NAME": "parameter (name=value)",
    "STRING": "string",
    "NUMBER": "number",
    "INT": "integer",
    "TIME": "timecode",
    "FRAME": "frame number (f123)",
    "COMP_OP": "comparison operator",
    "PLACEHOLDER": "$parameter",
    "$END": "end of input",
}

# Clause keywords that may follow a select list; seeing one where FROM was expected means the
# FROM clause is missing.
_AFTER_FROM = {"WHERE", "GROUP", "HAVING", "ORDER", "LIMIT", "JOIN", "NEAREST", "OFFSET"}

# Tokens that can start a list item: after a comma they mean a bad item, not a trailing comma.
_ITEM_START = {"NAME", "STRING", "NUMBER", "INT", "TIME", "FRAME", "PARAM_NAME", "LPAR", "LSQB"}
_ITEM_START |= {"MINUS", "STAR", "NOT", "TRUE", "FALSE", "NULL"}

_EXAMPLES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "empty select list: name at least one column, feature or expression after SELECT",
        ("SELECT FROM shots", "SELECT", "SELECT WHERE", "SELECT ;"),
    ),
    (
        "trailing comma: expected another item after ','",
        (
            "SELECT a, FROM shots",
            "SELECT a, b, FROM shots",
            "SELECT a,",
            "SELECT a, WHERE",
            "SELECT a, ;",
            "SELECT a FROM s GROUP BY a,",
            "SELECT a FROM s GROUP BY a, b,",
            "SELECT a FROM s GROUP BY a, ORDER BY a",
            "SELECT a FROM s ORDER BY a,",
            "SELECT a FROM s ORDER BY a, b,",
            "SELECT a FROM s ORDER BY a, LIMIT 1",
            "SELECT a FROM s WHERE a IN (1, )",
            "SELECT a FROM s WHERE a IN (1, 2, )",
            "SELECT f(a, ) FROM s",
            "SELECT f(a, b, ) FROM s",
            "SELECT f(k=1, ) FROM s",
            "SELECT f(k=1, j=2, ) FROM s",
            "SELECT a FROM s OF ('x', )",
            "SELECT a FROM s OF ('x', 'y', )",
            "MATCH s BY f TOP 3 WITH (ef=1, )",
            "MATCH s BY f TOP 3 WITH (ef=1, m=2, )",
        ),
    ),
    (
        "expected an entity set (assets, shots, frames, ...) after FROM",
        ("SELECT a FROM", "SELECT a FROM WHERE", "SELECT a FROM ;", "SELECT a FROM 'x'"),
    ),
    (
        "expected an entity set after JOIN",
        ("SELECT a FROM s JOIN", "SELECT a FROM s JOIN ON", "SELECT a FROM s JOIN 'x'"),
    ),
    (
        "JOIN needs an ON condition",
        ("SELECT a FROM s JOIN f", "SELECT a FROM s JOIN f WHERE", "SELECT a FROM s JOIN f f"),
    ),
    (
        "OF needs an asset alias or id in quotes: OF 'film1' or OF ('film1', 'film2')",
        ("SELECT a FROM s OF", "SELECT a FROM s OF film1", "SELECT a FROM s OF WHERE"),
    ),
    (
        "LIMIT needs a non-negative integer",
        ("SELECT a FROM s LIMIT", "SELECT a FROM s LIMIT x", "SELECT a FROM s LIMIT -1"),
    ),
    ("OFFSET needs a non-negative integer", ("SELECT a FROM s LIMIT 1 OFFSET",)),
    (
        "NEAREST needs a count: NEAREST 10 TO <entity type> '<id>' BY <feature>",
        ("SELECT a FROM s NEAREST", "SELECT a FROM s NEAREST TO"),
    ),
    (
        "TOP needs a positive integer",
        ("MATCH s BY f TOP", "MATCH s BY f TOP x", "MATCH s BY f TOP ;"),
    ),
    (
        "NEAREST needs a target entity: TO <entity type> '<id>' "
        "or TO <feature> OF <entity type> '<id>'",
        ("SELECT a FROM s NEAREST 3 TO", "SELECT a FROM s NEAREST 3 TO shot"),
    ),
    (
        "TO <feature> OF needs an entity: TO <feature> OF <entity type> '<id>'",
        (
            "SELECT a FROM s NEAREST 3 TO f OF",
            "SELECT a FROM s NEAREST 3 TO f OF shot",
            "SELECT a FROM s NEAREST 3 TO f OF 'x'",
        ),
    ),
    ("expected SHOW ASSETS, SHOW FEATURES or SHOW ENTITIES", ("SHOW", "SHOW x")),
)

_example_lock = threading.Lock()
# LALR state numbers differ between parser instances, so examples are learned per parser.
_example_states: dict[int, dict[int, str]] = {}


def _learn_examples(parser: Lark) -> dict[int, str]:
    states: dict[int, str] = {}
    for message, examples in _EXAMPLES:
        for example in examples:
            try:
                parser.parse(example)
            except UnexpectedInput as exc:
                key = _state_key(exc.state)
                if key is not None:
                    states.setdefault(key, message)
            else:  # pragma: no cover - guards the table itself
                raise AssertionError(f"diagnostic example parses: {example!r}")
    return states


def _state_key(state: object) -> int | None:
    """The LALR state number of lark's ``exc.state`` (a ParserState, or an int)."""
    key = getattr(state, "position", state)
    return key if isinstance(key, int) else None


def _state_message(state: object, parser: Lark | None) -> str | None:
    key = _state_key(state)
    if key is None:
        return None
    if parser is None:
        from amberlite.syntax.parse_tree import get_parser

        parser = get_parser()
    states = _example_states.get(id(parser))
    if states is None:
        with _example_lock:
            states = _example_states.get(id(parser))
            if states is None:
                states = _example_states[id(parser)] = _learn_examples(parser)
    return states.get(key)


def _keywords() -> frozenset[str]:
    from amberlite.syntax.printer import KEYWORDS

    return frozenset(k.upper() for k in KEYWORDS)


def friendly_name(terminal: str) -> str:
    """How a terminal is named in messages: ``FROM``, ``identifier``, ``(``, ..."""
    if terminal in _VALUE_TERMINALS:
        return _VALUE_TERMINALS[terminal]
    from amberlite.syntax.parse_tree import get_parser

    term = get_parser().get_terminal(terminal) if terminal else None
    if term is not None and term.pattern.type == "str":
        value = term.pattern.value
        return value.upper() if value.isalpha() else f"'{value}'"
    return terminal


def _expected_names(terminals: object) -> tuple[str, ...]:
    names = {friendly_name(t) for t in (terminals or ()) if t not in ("WS", "COMMENT")}

    def key(name: str) -> tuple[int, str]:
        if not name[:1].isalpha():
            return (0, name)  # punctuation first
        if name.isupper():
            return (2, name)  # keywords last
        return (1, name)  # kinds of value

    return tuple(sorted(names, key=key))


def _describe(token: object) -> str:
    ttype = getattr(token, "type", "")
    value = str(token)
    if ttype == "$END":
        return "end of input"
    if ttype in ("NAME", "QUOTED_NAME"):
        return f"identifier {value}"
    if ttype == "STRING":
        return f"string {value}"
    if ttype in ("NUMBER", "INT"):
        return f"number {value}"
    if ttype == "TIME":
        return f"timecode {value}"
    if ttype == "FRAME":
        return f"frame {value}"
    if ttype == "PARAM_NAME":
        return f"parameter {value.rstrip('= ')!r}"
    if ttype.isalpha() and ttype.isupper() and value.isalpha():
        return f"keyword {value.upper()}"
    return repr(value)


def _end_position(text: str) -> tuple[int, int]:
    line = text.count("\n") + 1
    column = len(text) - (text.rfind("\n") + 1) + 1
    return line, column


def syntax_error_from_lark(
    text: str, exc: UnexpectedInput, parser: Lark | None = None
) -> AqlSyntaxError:
    """The ``AqlSyntaxError`` for lark's ``exc``, raised by ``parser`` while parsing ``text``.

    ``parser`` defaults to the shared tree parser (``parse_tree.get_parser()``).
    """
    if isinstance(exc, UnexpectedCharacters):
        return _from_characters(text, exc, parser)
    if isinstance(exc, UnexpectedToken):
        return _from_token(text, exc, parser)
    line = getattr(exc, "line", None) or 1
    column = getattr(exc, "column", None) or 1
    return AqlSyntaxError("syntax error", line, column, text, ())


def _from_characters(text: str, exc: UnexpectedCharacters, parser: Lark | None) -> AqlSyntaxError:
    pos = exc.pos_in_stream
    char = text[pos] if 0 <= pos < len(text) else ""
    expected = _expected_names(exc.allowed)
    if char == "'":
        message = "unterminated string literal (strings are 'quoted'; write '' for a quote)"
        expected = ()
    elif char == '"':
        message = 'unterminated or empty quoted identifier ("name")'
        expected = ()
    else:
        message = f"unexpected character {char!r}"
        state_message = _state_message(exc.state, parser)
        if state_message:
            message = f"{state_message} (found {char!r})"
    return AqlSyntaxError(message, exc.line, exc.column, text, expected)


def _from_token(text: str, exc: UnexpectedToken, parser: Lark | None) -> AqlSyntaxError:
    token = exc.token
    ttype = token.type
    accepts = exc.accepts or exc.expected or set()
    expected = _expected_names(accepts)
    if ttype == "$END":
        if getattr(token, "end_line", None) is not None and token.end_line is not None:
            line, column = token.end_line, token.end_column
        else:
            line, column = _end_position(text)
    else:
        line, column = token.line, token.column
    found = _describe(token)

    message = _state_message(exc.state, parser)
    if message is not None and message.startswith("trailing comma") and ttype in _ITEM_START:
        message = None  # a comma followed by a bad item, not a trailing comma
    start = getattr(token, "start_pos", None)
    if message is not None:
        message = f"{message} (found {found})"
    elif ttype == "EQ" and start and text[start - 1 : start] == "=":
        message = "unexpected '=': compare with a single '=' (not '==')"
    elif "FROM" in accepts and (ttype in _AFTER_FROM or ttype in ("$END", "SEMICOLON")):
        message = f"missing FROM clause before {found}: a SELECT needs FROM <entity set>"
    elif ttype == "$END" and "RPAR" in accepts:
        message = "unexpected end of input: missing ')'"
    elif ttype == "$END" and "RSQB" in accepts:
        message = "unexpected end of input: missing ']' to close the span"
    elif ttype in _keywords() and "NAME" in accepts:
        word = str(token)
        message = f'{word} is a keyword; write "{word}" to use it as a name'
    elif accepts == {"PARAM_NAME"}:
        message = f"expected name=value, found {found} (parameters and options are all named)"
    elif "NUMBER" in accepts and "STRING" in accepts:
        message = f"expected an expression, found {found}"
    else:
        message = f"unexpected {found}"
    return AqlSyntaxError(message, line, column, text, expected)
