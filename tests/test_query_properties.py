"""Property: any text, random or a mutation of a valid query, run through ``run_query``
either returns a table or raises an AmberliteError subclass, never anything else."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_query_support import make_store

from amberlite.errors import AmberliteError
from amberlite.query import run_query

PLANS = Path(__file__).parent / "plans"
SEEDS = sorted((p / "query.aql").read_text().strip() for p in PLANS.iterdir() if p.is_dir())
TOKENS = [
    "SELECT",
    "FROM",
    "WHERE",
    "AND",
    "OR",
    "NOT",
    "GROUP BY",
    "ORDER BY",
    "LIMIT",
    "HAVING",
    "JOIN",
    "ON",
    "OF",
    "AS",
    "IN",
    "LIKE",
    "IS NULL",
    "BETWEEN",
    "DURING",
    "OVERLAPS",
    "CONTAINS",
    "BEFORE",
    "AFTER",
    "EXPLAIN",
    "SHOW",
    "DESCRIBE",
    "count(*)",
    "sum(",
    "avg(",
    "round(",
    "lower(",
    "abs(",
    "*",
    "/",
    "%",
    "+",
    "-",
    "(",
    ")",
    ",",
    ".",
    ";",
    "=",
    "<>",
    "<",
    ">=",
    "'x'",
    "''",
    "'film1'",
    "0",
    "-1",
    "1e308",
    "99999999999999999999999",
    "0.5",
    "00:01",
    "f30",
    "[f1, f2]",
    "[00:01, 00:02]",
    "NULL",
    "TRUE",
    "id",
    "asset",
    "start_s",
    "end_s",
    "index",
    "n",
    "t",
    "alias",
    "brightness",
    "color",
    "scaled",
    "scaled(scale=3)",
    "scaled(scale='a')",
    "parity",
    "brightness@1",
    "brightness@9",
    "shots",
    "frames",
    "assets",
    "s",
    "f",
    "s.id",
    "f.t",
    '"x; DROP TABLE assets; --"',
    "'; DROP TABLE assets; --'",
]


@pytest.fixture(scope="module")
def store(tmp_path_factory, media_dir):
    s = make_store(tmp_path_factory.mktemp("props"), media_dir)
    run_query(s, "SELECT brightness, color, scaled FROM shots")
    return s


@st.composite
def mutated(draw) -> str:
    words = draw(st.sampled_from(SEEDS)).split(" ")
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(words)))
        op = draw(st.sampled_from(["insert", "delete", "replace"]))
        if op == "insert" or not words:
            words.insert(i, draw(st.sampled_from(TOKENS)))
        elif op == "delete":
            del words[min(i, len(words) - 1)]
        else:
            words[min(i, len(words) - 1)] = draw(st.sampled_from(TOKENS))
    return " ".join(words)


def _check(store, text: str) -> None:
    try:
        out = run_query(store, text)
    except AmberliteError:
        return
    assert isinstance(out, pl.DataFrame)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=mutated())
def test_mutated_queries_raise_only_amberlite_errors(store, text):
    _check(store, text)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=st.one_of(st.text(max_size=60), st.lists(st.sampled_from(TOKENS)).map(" ".join)))
def test_random_text_raises_only_amberlite_errors(store, text):
    _check(store, text)
