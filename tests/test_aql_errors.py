"""AQL errors and edge cases (issue 11): every failure is an amberlite error that names the
user's operand, never a raw DuckDB message or another exception type."""

from __future__ import annotations

import re

import pytest
from test_query_support import make_store

from amberlite.errors import AqlError, AqlSyntaxError, AqlTypeError
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


@pytest.mark.parametrize(
    ("text", "error", "fragment"),
    [
        ("SELECT id FROM shots ORDER BY 1", AqlError, "ORDER BY 1 is a constant"),
        ("SELECT asset FROM shots GROUP BY 1", AqlError, "GROUP BY 1 is a constant"),
        ("SELECT asset FROM shots GROUP BY asset HAVING 1", AqlTypeError, "HAVING must be bool"),
        ("SELECT asset, index FROM shots GROUP BY asset", AqlError, "index in the select list"),
        ("SELECT asset, brightness FROM shots GROUP BY asset", AqlError, "brightness in the"),
        ("SELECT asset, index + 1 AS i FROM shots GROUP BY asset", AqlError, "index in the"),
        ("SELECT count(*) AS n FROM shots ORDER BY index", AqlError, "index in ORDER BY"),
        ("SELECT asset FROM shots GROUP BY asset HAVING index > 1", AqlError, "index in HAVING"),
    ],
)
def test_grouping_and_constant_keys_are_checked_when_planning(store, text, error, fragment):
    with pytest.raises(error, match=re.escape(fragment)):
        run_query(store, text)


def test_grouped_expressions_of_keys_and_aggregates_run(store):
    got = run_query(
        store,
        "SELECT s.asset, max(start_s) - min(start_s) AS spread, count(*) AS n FROM shots s "
        "GROUP BY asset HAVING count(*) > 1 ORDER BY n, s.asset",
    )
    assert got.columns == ["asset", "spread", "n"] and got.height == 2


GENERATED = re.compile(r"\$p\d+|\b[pvcstf]\d+\b|\bt\d+\.|Error:")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("SELECT 1 % 0 AS x FROM shots", "division by zero in (1 % 0)"),
        ("SELECT brightness / -0 AS x FROM shots", "division by zero in (brightness / 0)"),
        ("SELECT round(start_s, 99999999999) AS x FROM shots", "decimals 99999999999"),
        ("SELECT round(start_s, 0.5) AS x FROM shots", "decimals 0.5"),
    ],
)
def test_constant_operands_are_checked_when_planning(store, text, fragment):
    with pytest.raises(AqlError, match=re.escape(fragment)):
        run_query(store, text)


def test_run_time_zero_divisors_and_odd_decimals_are_null(store):
    got = run_query(
        store,
        "SELECT index % (index - index) AS m, start_s / (index - index) AS d, "
        "round(end_s, index * 99999999999) AS r FROM shots",
    )
    assert got.height > 0
    assert got["m"].null_count() == got["d"].null_count() == got.height


def test_run_time_errors_name_the_users_operands(store):
    text = "SELECT index * 9223372036854775807 * 9223372036854775807 AS x FROM shots"
    with pytest.raises(AqlError, match="could not be evaluated") as info:
        run_query(store, text)
    assert not GENERATED.search(str(info.value)), str(info.value)
    assert "9223372036854775807" in str(info.value)


def test_frame_like_aliases_qualify_names_and_spans(store):
    got = run_query(
        store,
        "SELECT f0.n, s.index FROM shots s JOIN frames f0 ON f0 DURING s "
        "WHERE f0.n < f3 AND s.asset = 'film1'",
    )
    want = run_query(
        store,
        "SELECT fr.n, s.index FROM shots s JOIN frames fr ON fr DURING s "
        "WHERE fr.n < f3 AND s.asset = 'film1'",
    )
    assert got.rows() == want.rows() and got.height > 0
    assert run_query(store, "SELECT f1.* FROM frames f1 WHERE f1.n < 2").height == 4


def test_frame_like_alias_round_trips_through_the_printer():
    from amberlite.syntax import parse
    from amberlite.syntax.printer import to_aql

    script = parse("SELECT f0.n, f0.* FROM frames f0 JOIN shots s ON f0 DURING s WHERE f0.n < f3")
    assert parse(to_aql(script)) == script


def test_count_distinct(store):
    got = run_query(
        store,
        "SELECT count(DISTINCT asset) AS assets, count(distinct s.index) AS positions, "
        "count(*) AS n FROM shots s",
    ).rows()[0]
    every = run_query(store, "SELECT asset, index FROM shots").rows()
    assert got == (len({a for a, _ in every}), len({i for _, i in every}), len(every))


def test_distinct_outside_an_aggregate_is_refused(store):
    with pytest.raises(AqlError, match=r"DISTINCT is only allowed in an aggregate"):
        run_query(store, "SELECT abs(DISTINCT index) AS x FROM shots")
