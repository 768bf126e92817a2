"""AQL errors and edge cases (issue 11): every failure is an amberlite error that names the
user's operand, never a raw DuckDB message or another exception type."""

from __future__ import annotations

import pytest
from test_query_support import make_store

from amberlite.errors import AqlSyntaxError
from amberlite.query import run_query

SPAN_OPS = {
    "DURING": lambda s, e, a, b: s >= a and e <= b,
    "CONTAINS": lambda s, e, a, b: s <= a and e >= b,
    "OVERLAPS": lambda s, e, a, b: s < b and a < e,
    "BEFORE": lambda s, e, a, b: e <= a,
    "AFTER": lambda s, e, a, b: s >= b,
}


@pytest.fixture(scope="module")
def store(tmp_path_factory, media_dir):
    return make_store(tmp_path_factory.mktemp("aql_errors"), media_dir)


@pytest.mark.parametrize("op", sorted(SPAN_OPS))
@pytest.mark.parametrize(
    ("lit", "cols", "bounds"),
    [
        ("[00:00.5, 00:01]", ("start_s", "end_s"), (0.5, 1.0)),
        ("[0.2, 0.6]", ("start_s", "end_s"), (0.2, 0.6)),
        ("[f10, f20]", ("start_frame", "end_frame"), (10, 20)),
        ("[f5, f7]", ("start_frame", "end_frame"), (5, 7)),
    ],
)
def test_span_literal_predicates_match_direct_computation(store, op, lit, cols, bounds):
    s, e = cols
    every = run_query(store, f"SELECT id, {s}, {e} FROM shots").rows()
    want = sorted(i for i, x, y in every if SPAN_OPS[op](x, y, *bounds))
    got = run_query(store, f"SELECT id FROM shots WHERE shots {op} {lit}")["id"].to_list()
    assert sorted(got) == want


@pytest.mark.parametrize("op", ["OR", "AND"])
def test_long_flat_and_or_chains_are_accepted(store, op):
    terms = [f"index <> {i + 1000}" if op == "AND" else f"index = {i}" for i in range(250)]
    got = run_query(store, f"SELECT id FROM shots WHERE {f' {op} '.join(terms)}")
    assert sorted(got["id"].to_list()) == sorted(run_query(store, "SELECT id FROM shots")["id"])


def test_overlong_chain_is_refused_as_a_syntax_error(store):
    text = "SELECT id FROM shots WHERE " + " OR ".join(f"index = {i}" for i in range(2000))
    with pytest.raises(AqlSyntaxError, match="AND/OR chain"):
        run_query(store, text)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("SELECT id FROM shots LIMIT 9223372036854775808", "LIMIT 9223372036854775808 is too"),
        ("SELECT id FROM shots LIMIT 1 OFFSET 99999999999999999999", "OFFSET 9999"),
        (
            "SELECT id FROM shots NEAREST 99999999999999999999 TO shot 'film1/0' BY brightness",
            "NEAREST 9999",
        ),
        ("MATCH shots BY color TOP 99999999999999999999", "TOP 9999"),
    ],
)
def test_huge_counts_are_refused_naming_the_clause(store, text, fragment):
    with pytest.raises(AqlSyntaxError, match=fragment):
        run_query(store, text)


def test_largest_limit_runs(store):
    assert run_query(store, "SELECT id FROM shots LIMIT 9223372036854775807").height > 0
