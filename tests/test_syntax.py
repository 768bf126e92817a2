"""AQL syntax layer: grammar, AST, printers and errors.

Corpus files live in grammar/corpus/ (shipped as amberlite.grammar/corpus); their formats are
described at the top of each file.  Run with ``--update-goldens`` (or AQL_UPDATE_GOLDENS=1) to
rewrite the expected printouts of valid.aql from the current parser (then review the diff); a
case without an expected printout fails.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from importlib.resources import files
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from amberlite.errors import AqlSyntaxError
from amberlite.syntax import (
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
    FeatureRef,
    FrameLit,
    InList,
    IsNull,
    Join,
    Like,
    Match,
    Nearest,
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
    String,
    TimeLit,
    UnaryOp,
    parse,
    parse_expr,
    parse_one,
    parse_tree,
    pretty,
    to_aql,
)
from amberlite.syntax.parse_tree import build_parser
from amberlite.syntax.printer import format_seconds, quote_name

CORPUS = files("amberlite.grammar") / "corpus"
SEPARATOR = "===="
SPLIT = "----"


# ---------------------------------------------------------------- corpus reading


def _split_cases(text: str) -> tuple[str, list[str]]:
    """(header, [case text, ...]) split on lines that are exactly '===='."""
    blocks = re.split(rf"(?m)^{SEPARATOR}[ \t]*\n?", text)
    return blocks[0], [b for b in blocks[1:] if b.strip()]


def _title(block: str) -> tuple[str, str]:
    first, _, rest = block.strip("\n").partition("\n")
    match = re.fullmatch(r"--\s*title:\s*(.+)", first.strip())
    assert match, f"case must start with '-- title:': {first!r}"
    return match.group(1).strip(), rest


def _valid_cases() -> list[tuple[str, str, str]]:
    """[(title, query, expected printout)] from valid.aql."""
    _, blocks = _split_cases((CORPUS / "valid.aql").read_text(encoding="utf-8"))
    cases = []
    for block in blocks:
        title, rest = _title(block)
        query, sep, expected = rest.partition(f"\n{SPLIT}\n")
        if not sep:  # "----" as the very last line (no expected printout yet)
            query, sep, expected = rest.partition(f"\n{SPLIT}")
        assert sep, f"case {title!r} lacks a '----' line"
        cases.append((title, query.strip("\n"), expected.strip("\n")))
    return cases


def _invalid_cases() -> list[tuple[str, str, int, int, str]]:
    """[(title, query, line, column, message fragment)] from invalid.aql."""
    _, blocks = _split_cases((CORPUS / "invalid.aql").read_text(encoding="utf-8"))
    cases = []
    for block in blocks:
        title, rest = _title(block)
        error_line, _, query = rest.partition("\n")
        match = re.fullmatch(r"--\s*error:\s*(\d+):(\d+)\s+(.+)", error_line.strip())
        assert match, f"case {title!r}: second line must be '-- error: L:C fragment'"
        line, column, fragment = int(match.group(1)), int(match.group(2)), match.group(3)
        cases.append((title, query.rstrip("\n"), line, column, fragment.strip()))
    return cases


def _identity_cases() -> list[tuple[str, str]]:
    _, blocks = _split_cases((CORPUS / "identity.aql").read_text(encoding="utf-8"))
    return [_title(block) for block in blocks]


def _rewrite_goldens() -> None:
    path = Path(str(CORPUS / "valid.aql"))
    header, _ = _split_cases(path.read_text(encoding="utf-8"))
    parts = [header.rstrip("\n") + "\n"]
    for title, query, _ in _valid_cases():
        parts.append(f"{SEPARATOR}\n-- title: {title}\n{query}\n{SPLIT}\n{pretty(parse(query))}\n")
    path.write_text("".join(parts), encoding="utf-8")


if os.environ.get("AQL_UPDATE_GOLDENS") == "1":
    _rewrite_goldens()

VALID = _valid_cases()
INVALID = _invalid_cases()
IDENTITY = _identity_cases()


# ---------------------------------------------------------------- grammar


def test_grammar_has_no_conflicts() -> None:
    """LALR table construction reports no shift/reduce or reduce/reduce conflicts."""
    try:
        import interegular  # noqa: F401
    except ImportError:
        # strict=True needs interegular (regex collisions); without it, lark's debug log
        # still reports parser conflicts, which are what matter.
        records: list[str] = []

        class _Collect(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                records.append(record.getMessage())

        lark_logger = logging.getLogger("lark")
        handler = _Collect()
        old_level = lark_logger.level
        lark_logger.addHandler(handler)
        lark_logger.setLevel(logging.DEBUG)
        try:
            build_parser(debug=True)
        finally:
            lark_logger.removeHandler(handler)
            lark_logger.setLevel(old_level)
        assert not [r for r in records if "conflict" in r.lower()], records
    else:
        build_parser(strict=True)


def test_corpus_sizes() -> None:
    assert len(VALID) >= 40
    assert len(INVALID) >= 15
    assert len({title for title, *_ in VALID}) == len(VALID), "duplicate titles"
    assert len({title for title, *_ in INVALID}) == len(INVALID), "duplicate titles"


def test_parse_tree_keeps_positions() -> None:
    tree = parse_tree("SELECT a\nFROM shots")
    select = tree.children[0]
    assert select.data == "select"
    assert (select.meta.line, select.meta.column) == (1, 1)
    assert (select.meta.end_line, select.meta.end_column) == (2, 11)


# ---------------------------------------------------------------- corpora


@pytest.mark.parametrize(("title", "query", "expected"), VALID, ids=[c[0] for c in VALID])
def test_valid_corpus(title: str, query: str, expected: str) -> None:
    script = parse(query)
    assert pretty(script) == expected, f"{title}: printout differs (--update-goldens?)"
    # Every valid query also round-trips through the printer.
    assert parse(to_aql(script)) == script


@pytest.mark.parametrize(
    ("title", "query", "line", "column", "fragment"), INVALID, ids=[c[0] for c in INVALID]
)
def test_invalid_corpus(title: str, query: str, line: int, column: int, fragment: str) -> None:
    with pytest.raises(AqlSyntaxError) as info:
        parse_one(query)
    err = info.value
    assert (err.line, err.column) == (line, column), f"{title}: {err}"
    assert fragment in err.message, f"{title}: {err}"
    assert err.query_text == query
    assert str(err).startswith(f"line {line}, column {column}: ")


@pytest.mark.parametrize(("title", "query"), IDENTITY, ids=[c[0] for c in IDENTITY])
def test_identity_corpus(title: str, query: str) -> None:
    script = parse(query)
    assert script.statements, title
    text = to_aql(script)
    assert parse(text) == script
    assert to_aql(parse(text)) == text  # the printer is a fixed point
    assert hash(parse(text)) == hash(script)


# ---------------------------------------------------------------- API details


def test_parse_one_and_parse_expr() -> None:
    assert parse_one("SHOW assets;") == Show("ASSETS")
    with pytest.raises(AqlSyntaxError, match="expected one statement, found 2") as info:
        parse_one("SHOW assets;\n  SHOW features")
    assert (info.value.line, info.value.column) == (2, 3)
    with pytest.raises(AqlSyntaxError, match="empty query"):
        parse_one("  -- nothing\n")
    assert parse("") == Script(())
    assert parse_expr("a > 1") == Compare(">", FeatureRef("a"), Number(1))
    with pytest.raises(AqlSyntaxError) as info:
        parse_expr("a > ")
    assert info.value.column == 4 and info.value.query_text == "a > "


def test_non_string_input_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        parse(b"SELECT a FROM s")  # type: ignore[arg-type]


def test_literal_values() -> None:
    where = parse_one("SELECT a FROM s WHERE x IN (00:01:02.500, 01:02, 1:00:00, f7, -3, -x)")
    assert where.where.items == (  # type: ignore[union-attr]
        TimeLit(62.5),
        TimeLit(62.0),
        TimeLit(3600.0),
        FrameLit(7),
        Number(-3),
        UnaryOp("-", FeatureRef("x")),
    )
    assert parse_expr("a = 'it''s'").right == String("it's")  # type: ignore[attr-defined]
    assert parse_expr("a = 1.0").right == Number(1.0)  # type: ignore[attr-defined]
    assert isinstance(parse_expr("a = 10").right.value, int)  # type: ignore[attr-defined]
    assert parse_expr("a <> b").op == "!="  # type: ignore[attr-defined]


def test_format_seconds_round_trips() -> None:
    for seconds in (0.0, 0.5, 59.999, 62.5, 3600.0, 3661.25, 0.1 + 0.2, 86399.000001, 1e9):
        text = format_seconds(seconds)
        assert parse_expr(f"t = {text}").right == TimeLit(seconds), text  # type: ignore


def test_quote_name() -> None:
    assert quote_name("mean_color") == "mean_color"
    assert quote_name("select") == '"select"'
    assert quote_name("Top") == '"Top"'
    assert quote_name("f12") == '"f12"'
    assert quote_name('a"b') == '"a""b"'
    assert quote_name("two words") == '"two words"'


def test_nodes_are_hashable_and_frozen() -> None:
    node = parse_one("SELECT a FROM shots s WHERE s DURING [00:01, 00:02]")
    assert {node: 1}[parse_one("select a from shots s where s during [00:01, 00:02]")] == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        node.limit = 3  # type: ignore[misc]


# ---------------------------------------------------------------- invariants


@pytest.mark.parametrize(
    "build",
    [
        lambda: Number(True),
        lambda: Number(float("nan")),
        lambda: Number("1"),
        lambda: String(1),
        lambda: Bool(1),
        lambda: TimeLit(-1.0),
        lambda: TimeLit(float("inf")),
        lambda: FrameLit(-1),
        lambda: FrameLit(1.5),
        lambda: SpanLit(TimeLit(2.0), TimeLit(1.0)),
        lambda: SpanLit(Number(-1), Number(1)),
        lambda: SpanLit(String("a"), Number(1)),
        lambda: Column("mean_color"),
        lambda: Column("id", qualifier=""),
        lambda: FeatureRef(""),
        lambda: FeatureRef("id"),
        lambda: FeatureRef("a", version=-1),
        lambda: FeatureRef("a", version=True),
        lambda: FeatureRef("a", params=[("k", Number(1))]),
        lambda: FeatureRef("a", params=(("k", Number(1)), ("k", Number(2)))),
        lambda: FeatureRef("a", params=(("not a name", Number(1)),)),
        lambda: FeatureRef("a", params=(("k", 1),)),
        lambda: FeatureRef("a\nb"),
        lambda: BinaryOp("^", Number(1), Number(2)),
        lambda: BinaryOp("+", Number(1), Star()),
        lambda: UnaryOp("-", Number(1)),
        lambda: UnaryOp("!", FeatureRef("a")),
        lambda: Compare("==", Number(1), Number(2)),
        lambda: InList(FeatureRef("a"), ()),
        lambda: InList(FeatureRef("a"), [Number(1)]),
        lambda: Like(FeatureRef("a"), String("x"), negated=None),
        lambda: IsNull("a"),
        lambda: Between(FeatureRef("a"), Number(1), SpanRef("s")),
        lambda: Call("Count", ()),
        lambda: Call("count", (Star(), Number(1))),
        lambda: Call("count", (Star("s"),)),
        lambda: SpanPredicate("INSIDE", SpanRef("a"), SpanRef("b")),
        lambda: SpanPredicate("DURING", FeatureRef("a"), SpanRef("b")),
        lambda: SelectItem(Star(), alias="x"),
        lambda: SelectItem(SpanRef("s")),
        lambda: EntitySet("shots", of=["a"]),
        lambda: EntitySet("shots", of=(1,)),
        lambda: Join(EntitySet("f"), SpanRef("f")),
        lambda: EntityRef("shot", 42),
        lambda: Nearest(0, EntityRef("shot", "x"), FeatureRef("e")),
        lambda: Nearest(3, EntityRef("shot", "x"), Column("id")),
        lambda: OrderItem(FeatureRef("a"), descending="yes"),
        lambda: Select((), EntitySet("shots")),
        lambda: Select((SelectItem(Star()),), EntitySet("shots"), limit=-1),
        lambda: Select((SelectItem(Star()),), EntitySet("shots"), offset=3),
        lambda: Select((SelectItem(Star()),), "shots"),
        lambda: Match(EntitySet("shots"), FeatureRef("f"), 0),
        lambda: Show("TABLES"),
        lambda: Describe(""),
        lambda: Explain(Explain(Show("ASSETS"))),
        lambda: Script([Show("ASSETS")]),
        lambda: Script((FeatureRef("a"),)),
    ],
)
def test_nodes_refuse_invalid_construction(build) -> None:
    with pytest.raises((TypeError, ValueError)):
        build()


# ---------------------------------------------------------------- errors are always AqlSyntaxError


def _corpus_queries() -> list[str]:
    return [q for _, q, _ in VALID if q.strip()] + [q for _, q in IDENTITY]


_TOKENS = (
    "SELECT FROM WHERE JOIN ON AND OR NOT IN LIKE IS NULL BETWEEN GROUP BY ORDER LIMIT OFFSET "
    "NEAREST TO MATCH TOP ACROSS ASSETS WITH SHOW DESCRIBE EXPLAIN DURING OVERLAPS CONTAINS "
    "BEFORE AFTER AS OF * , ( ) [ ] . @ = < > <= >= != - + / % ; ' '' \" -- 00:01 f12 1.5 42 "
    "a s.x count(*) x=1"
).split()


def _check_parse(text: str) -> None:
    try:
        parse(text)
    except AqlSyntaxError as err:
        assert err.line >= 1 and err.column >= 1
        assert str(err).startswith(f"line {err.line}, column {err.column}: {err.message}")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_random_text_raises_only_syntax_errors(text: str) -> None:
    _check_parse(text)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_TOKENS), max_size=25))
def test_random_token_soup_raises_only_syntax_errors(tokens: list[str]) -> None:
    _check_parse(" ".join(tokens))


@st.composite
def _mutated_query(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(_corpus_queries()))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["insert", "delete", "replace", "token", "drop_token"]))
        pos = draw(st.integers(0, len(text)))
        if kind == "insert":
            text = text[:pos] + draw(st.characters()) + text[pos:]
        elif kind == "delete":
            text = text[:pos] + text[pos + 1 :]
        elif kind == "replace":
            text = text[:pos] + draw(st.sampled_from("'\"()[],;.*-=<>@%f0:")) + text[pos + 1 :]
        elif kind == "token":
            text = text[:pos] + " " + draw(st.sampled_from(_TOKENS)) + " " + text[pos:]
        else:
            words = text.split(" ")
            if len(words) > 1:
                del words[draw(st.integers(0, len(words) - 1))]
            text = " ".join(words)
    return text


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_mutated_query())
def test_mutated_corpus_queries_raise_only_syntax_errors(text: str) -> None:
    _check_parse(text)


# ---------------------------------------------------------------- generated ASTs round-trip

_names = st.one_of(
    st.sampled_from(["mean_color", "brightness", "label", "emb", "x", "y", "top", "assets"]),
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,6}", fullmatch=True),
    st.sampled_from(["select", "From", "f12", "two words", 'q"uote', "é"]),
)
_columns = st.builds(
    Column,
    st.sampled_from(sorted(["id", "asset", "start_s", "end_s", "start_frame", "index"])),
    st.none() | _names,
)
_param_names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,5}", fullmatch=True)
_numbers = st.builds(
    Number,
    st.integers(-(10**12), 10**12) | st.floats(allow_nan=False, allow_infinity=False, width=64),
)
_times = st.builds(TimeLit, st.floats(0, 1e7, allow_nan=False))
_frames = st.builds(FrameLit, st.integers(0, 10**7))
_scalars = st.one_of(
    _numbers,
    st.builds(String, st.text(max_size=8)),
    st.builds(Bool, st.booleans()),
    st.just(Null()),
    _times,
    _frames,
)


@st.composite
def _features(draw: st.DrawFn) -> FeatureRef:
    name = draw(_names.filter(lambda n: n not in {"id", "asset", "index"}))
    keys = draw(st.lists(_param_names, max_size=3, unique=True))
    params = tuple((k, draw(_scalars)) for k in keys)
    version = draw(st.none() | st.integers(0, 99))
    return FeatureRef(name, version, params, draw(st.none() | _names))


@st.composite
def _spans(draw: st.DrawFn) -> SpanLit:
    kind = draw(st.sampled_from(["time", "frame", "number"]))
    if kind == "time":
        a, b = sorted(draw(st.lists(st.floats(0, 1e5, allow_nan=False), min_size=2, max_size=2)))
        return SpanLit(TimeLit(a), TimeLit(b))
    if kind == "frame":
        a, b = sorted(draw(st.lists(st.integers(0, 10**6), min_size=2, max_size=2)))
        return SpanLit(FrameLit(a), FrameLit(b))
    a, b = sorted(draw(st.lists(st.integers(0, 10**6), min_size=2, max_size=2)))
    return SpanLit(Number(a), Number(b))


_leaves = st.one_of(_scalars, _columns, _features())


def _extend(children: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(
        st.builds(
            BinaryOp, st.sampled_from(["+", "-", "*", "/", "%", "AND", "OR"]), children, children
        ),
        st.builds(UnaryOp, st.just("NOT"), children),
        st.builds(UnaryOp, st.just("-"), children.filter(lambda e: not isinstance(e, Number))),
        st.builds(Compare, st.sampled_from(["=", "!=", "<", "<=", ">", ">="]), children, children),
        st.builds(
            InList, children, st.lists(children, min_size=1, max_size=3).map(tuple), st.booleans()
        ),
        st.builds(Like, children, children, st.booleans()),
        st.builds(IsNull, children, st.booleans()),
        st.builds(Between, children, children, children, st.booleans()),
        st.builds(
            Call,
            st.sampled_from(["abs", "round", "min", "max", "in", "coalesce"]),
            st.lists(children, max_size=3).map(tuple),
        ),
        st.builds(
            SpanPredicate,
            st.sampled_from(["DURING", "OVERLAPS", "CONTAINS", "BEFORE", "AFTER"]),
            st.builds(SpanRef, _names) | _spans(),
            st.builds(SpanRef, _names) | _spans(),
        ),
    )


_exprs = st.recursive(_leaves, _extend, max_leaves=8)
_entity_sets = st.builds(
    EntitySet,
    _names,
    st.none() | _names,
    st.lists(st.text(max_size=6), max_size=3).map(tuple),
)
_options = st.lists(_param_names, max_size=2, unique=True).flatmap(
    lambda keys: st.tuples(*[st.tuples(st.just(k), _scalars) for k in keys])
)


@st.composite
def _selects(draw: st.DrawFn) -> Select:
    items = draw(
        st.lists(
            st.builds(SelectItem, _exprs, st.none() | _names)
            | st.builds(SelectItem, st.builds(Star, st.none() | _names)),
            min_size=1,
            max_size=4,
        )
    )
    nearest = draw(
        st.none()
        | st.builds(
            Nearest,
            st.integers(1, 1000),
            st.builds(EntityRef, _names, st.text(max_size=8)),
            _features(),
            _options,
            st.none() | _features(),
        )
    )
    limit = draw(st.none() | st.integers(0, 10**6))
    offset = draw(st.none() | st.integers(0, 10**6)) if limit is not None else None
    return Select(
        items=tuple(items),
        source=draw(_entity_sets),
        joins=tuple(draw(st.lists(st.builds(Join, _entity_sets, _exprs), max_size=2))),
        nearest=nearest,
        where=draw(st.none() | _exprs),
        group_by=tuple(draw(st.lists(_exprs, max_size=2))),
        having=draw(st.none() | _exprs),
        order_by=tuple(draw(st.lists(st.builds(OrderItem, _exprs, st.booleans()), max_size=2))),
        limit=limit,
        offset=offset,
    )


_matches = st.builds(Match, _entity_sets, _features(), st.integers(1, 500), st.booleans(), _options)
_statements = st.one_of(
    _selects(),
    _matches,
    st.builds(Show, st.sampled_from(["ASSETS", "FEATURES", "ENTITIES"])),
    st.builds(Describe, _names),
)
_scripts = st.lists(_statements | st.builds(Explain, _statements), max_size=3).map(
    lambda s: Script(tuple(s))
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_scripts)
def test_generated_asts_round_trip(script: Script) -> None:
    text = to_aql(script)
    assert parse(text) == script, text
    pretty(script)  # never fails


@settings(max_examples=300, deadline=None)
@given(_exprs)
def test_generated_expressions_round_trip(expr) -> None:
    assert parse_expr(to_aql(expr)) == expr


# ---------------------------------------------------------------- speed

TWENTY_LINES = """SELECT s.id, s.asset, s.start_s, s.end_s,
       s.mean_color AS color,
       shots(threshold=0.4) AS cuts,
       avg(f.brightness) AS bright,
       count(*) AS n
FROM shots s OF ('film1', 'film2')
JOIN frames f ON f DURING s
WHERE s.duration > 2.5
  AND s.mean_color IS NOT NULL
  AND [00:01:00, 00:02:00] CONTAINS s
  AND s.label IN ('wide', 'close', 'medium')
  AND s.title LIKE 'Act%'
  AND f.motion BETWEEN 0.1 AND 0.9
  AND NOT s.flagged = TRUE
GROUP BY s.id, s.asset, s.start_s, s.end_s, s.mean_color
HAVING count(*) > 10 AND avg(f.brightness) >= 0.25
ORDER BY bright DESC, s.start_s
LIMIT 100 OFFSET 20
-- twenty
-- lines"""


def test_twenty_line_query_parses() -> None:
    """The 20-line query (its parse time is measured by ``python -m benchmarks.query``) parses
    uncached and round-trips through the printer."""
    from amberlite.syntax.to_ast import parse_text

    assert TWENTY_LINES.count("\n") == 19
    script = parse_text(TWENTY_LINES)
    (select,) = script.statements
    assert isinstance(select, Select)
    assert parse(to_aql(script)) == script


def test_parse_expr_rejects_trailing_clauses() -> None:
    with pytest.raises(AqlSyntaxError, match="unexpected text after the expression") as info:
        parse_expr("a LIMIT 3")
    assert (info.value.line, info.value.column) == (1, 2)


def test_deep_nesting_is_a_syntax_error() -> None:
    with pytest.raises(AqlSyntaxError, match="nested too deeply"):
        parse("SELECT " + "NOT " * 1000 + "a FROM s")
    with pytest.raises(AqlSyntaxError, match="nested too deeply"):
        parse("SELECT " + " + ".join(["a"] * 1000) + " FROM s")
    # parentheses don't nest: 500 of them are the bare expression
    assert parse("SELECT " + "(" * 500 + "a" + ")" * 500 + " FROM s") == parse("SELECT a FROM s")


def test_named_argument_lexing() -> None:
    assert parse_expr("f(k\n= 1) = 2").left == FeatureRef("f", params=(("k", Number(1)),))  # type: ignore[attr-defined]
    with pytest.raises(AqlSyntaxError, match="single '='"):
        parse_expr("f(k == 1)")
