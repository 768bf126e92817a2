"""Load the AQL grammar and parse query text into a lark parse tree.

The grammar ships as ``amberlite.grammar/aql.lark`` (the repository's ``grammar/`` folder).  The
LALR parser is built once, on first use, and kept at module level.
"""

from __future__ import annotations

import threading
from importlib.resources import files

from lark import Lark, Token

GRAMMAR_PACKAGE = "amberlite.grammar"
GRAMMAR_FILE = "aql.lark"

# Reserved words can never be identifiers (unless double-quoted).  The other keywords -- ASSETS,
# FEATURES, ENTITIES, NEAREST, TO, WITH, TOP, ACROSS, MATCH, SHOW, DESCRIBE, EXPLAIN, OFFSET and
# the span operators -- are keywords only where the grammar expects them (lark's contextual
# lexer), so `FROM assets` or a feature called `top` still work.
RESERVED = frozenset(
    """
    SELECT FROM WHERE GROUP ORDER BY HAVING LIMIT JOIN ON AS OF AND OR NOT IN LIKE IS NULL
    BETWEEN TRUE FALSE ASC DESC
    """.split()
)


def _name_token(token: Token) -> Token:
    """Lexer callback for NAME: unquote ``"quoted"`` names; a bare reserved word is a keyword."""
    value = token.value
    if value[0] == '"':
        return token.update(value=value[1:-1].replace('""', '"'))
    word = value.upper()
    if word in RESERVED:
        token.type = word
    return token


# Options every AQL parser is built with; tests build a strict=True copy to prove the grammar has
# no shift/reduce or reduce/reduce conflicts.
PARSER_OPTIONS: dict[str, object] = {
    "parser": "lalr",
    "lexer": "contextual",
    "propagate_positions": True,
    "maybe_placeholders": True,
    "lexer_callbacks": {"NAME": _name_token},
    # the LALR tables are cached on disk (lark's cache, keyed by grammar and options), so a
    # new process builds the parser in milliseconds instead of a third of a second
    "cache": True,
}

_lock = threading.Lock()
_grammar: str | None = None
_parser: Lark | None = None


def grammar_text() -> str:
    """The text of ``aql.lark``."""
    global _grammar
    if _grammar is None:
        _grammar = (files(GRAMMAR_PACKAGE) / GRAMMAR_FILE).read_text(encoding="utf-8")
    return _grammar


def build_parser(**overrides: object) -> Lark:
    """A new lark parser for AQL (``overrides`` replace entries of ``PARSER_OPTIONS``)."""
    return Lark(grammar_text(), **{**PARSER_OPTIONS, **overrides})


def get_parser() -> Lark:
    """The shared AQL parser, built on first use."""
    global _parser
    if _parser is None:
        with _lock:
            if _parser is None:
                _parser = build_parser()
    return _parser
