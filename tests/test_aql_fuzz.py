"""AQL fuzzing (issue 11): mutated corpus queries, run against a small real store, end in a
result or an amberlite error whose message is in the query's terms -- never another exception,
never a raw DuckDB message with the generated SQL names."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_query_support import make_store

from amberlite.errors import AmberliteError
from amberlite.query import run_query

CORPUS = Path(__file__).parent.parent / "grammar" / "corpus" / "valid.aql"
TOKEN = re.compile(
    r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|\d+:\d\d(?::\d\d)?(?:\.\d+)?|[A-Za-z_]\w*"
    r"|\d+\.?\d*(?:[eE][+-]?\d+)?|<>|!=|<=|>=|\S"
)
# What the compiled SQL names (amberlite/exec/sql.py) and DuckDB's error kinds.
LEAK = re.compile(
    r"\$?\bp\d+\b|\bt\d+\.|\b[vc]\d+\b"
    r"|Binder Error|Conversion Error|Parser Error|Invalid Input Error"
    r"|Out of Range Error|Catalog Error"
)
NAMES = [
    "brightness",
    "color",
    "scaled",
    "parity",
    "id",
    "asset",
    "index",
    "n",
    "t",
    "start_s",
    "end_s",
    "start_frame",
    "end_frame",
    "shots",
    "frames",
    "assets",
    "f0",
    "s",
    "score",
]
NUMBERS = ["0", "-1", "99999999999999999999", "9223372036854775808", "1e308", "0.0", "f99999"]
OPERATORS = ["+", "-", "*", "/", "%", "AND", "OR", "NOT", "=", "<", "DURING", "BEFORE", ",", "("]


def corpus_queries() -> list[str]:
    text = CORPUS.read_text().split("\n====\n", 1)[1]
    out = []
    for case in text.split("\n====\n"):
        query = case.split("\n----\n", 1)[0]
        lines = [ln for ln in query.splitlines() if not ln.lstrip().startswith("--")]
        q = " ".join(lines).strip()
        if q:
            out.append(q)
    return out


# Queries that run on the test store, so that most mutants get past name resolution.
STORE_QUERIES = [
    "SELECT id, start_s, end_s, brightness FROM shots OF 'film1' WHERE end_s - start_s > 0.5 "
    "ORDER BY start_s LIMIT 20 OFFSET 1",
    "SELECT asset, index, color, scaled(scale=2) AS doubled FROM shots ORDER BY asset, index",
    "SELECT alias, round(duration_s, 1) AS seconds FROM assets WHERE alias LIKE 'film%' "
    "AND width IN (160, 320)",
    "SELECT n, t FROM frames OF 'film2' WHERE t >= 00:01 AND n < f30",
    "SELECT index, start_s FROM shots OF 'film1' WHERE shots DURING [f20, f40]",
    "SELECT index FROM shots WHERE shots BEFORE [1, 2] OR shots AFTER [f1, f2]",
    "SELECT s.asset, s.index, count(*) AS even FROM shots s JOIN frames f ON f DURING s "
    "WHERE f.parity = 0 GROUP BY s.asset, s.index",
    "SELECT asset, count(*) AS n, avg(brightness) AS mean FROM shots GROUP BY asset "
    "HAVING n > 1 ORDER BY n DESC",
    "SELECT asset, count(DISTINCT index) AS k, max(start_s) - min(start_s) AS d FROM shots "
    "GROUP BY asset",
    "SELECT id, index % 2 AS odd, abs(brightness - 0.5) * 10 / 3 AS x FROM shots "
    "WHERE scaled IS NULL OR brightness BETWEEN 0.1 AND 0.9",
    "SELECT id, coalesce(scaled, -1) AS s, least(index, 2) AS l, upper(asset) AS u FROM shots",
    "MATCH shots OF ('film1', 'film2') BY color TOP 10 ACROSS ASSETS",
]
QUERIES = corpus_queries()
SEEDS = QUERIES + STORE_QUERIES * 4


@st.composite
def mutated(draw: st.DrawFn) -> str:
    tokens = TOKEN.findall(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 3))):
        if not tokens:
            break
        i = draw(st.integers(0, len(tokens) - 1))
        op = draw(st.sampled_from(["delete", "duplicate", "swap", "number", "name", "operator"]))
        if op == "delete":
            del tokens[i]
        elif op == "duplicate":
            tokens.insert(i, tokens[i])
        elif op == "swap" and i + 1 < len(tokens):
            tokens[i], tokens[i + 1] = tokens[i + 1], tokens[i]
        elif op == "number":
            nums = [k for k, t in enumerate(tokens) if t[:1].isdigit()] or [i]
            tokens[draw(st.sampled_from(nums))] = draw(st.sampled_from(NUMBERS))
        elif op == "name":
            names = [k for k, t in enumerate(tokens) if t[:1].isalpha()] or [i]
            tokens[draw(st.sampled_from(names))] = draw(st.sampled_from(NAMES))
        else:
            tokens.insert(i, draw(st.sampled_from(OPERATORS)))
    return " ".join(tokens)


@pytest.fixture(scope="module")
def store(tmp_path_factory, media_dir):
    store = make_store(tmp_path_factory.mktemp("aql_fuzz"), media_dir)
    run_query(store, "SELECT brightness, color, scaled FROM shots")
    return store


def test_corpus_tokenizer_keeps_the_queries():
    assert len(QUERIES) > 30
    for q in QUERIES:
        assert "".join(TOKEN.findall(q)).replace(" ", "") == re.sub(r"\s+", "", q), q


@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(text=mutated())
def test_fuzzed_queries_end_in_a_result_or_a_clean_amberlite_error(store, text):
    try:
        run_query(store, text)
    except AmberliteError as e:
        assert not LEAK.search(str(e)), f"{text!r} -> {e}"
