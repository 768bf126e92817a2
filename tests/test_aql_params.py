"""`$name` placeholders: values passed next to the query text, bound as literals, never parsed."""

from __future__ import annotations

import pytest

from amberlite.errors import AqlError
from amberlite.syntax import bind, parse_one, to_aql
from amberlite.syntax.bind import placeholders
from tests.conftest import small_clip


def test_bind_replaces_each_placeholder_with_a_literal() -> None:
    stmt = parse_one("SELECT id FROM shots WHERE asset = $a AND index IN ($n, 2) AND ok = $b")
    assert placeholders(stmt) == {"a", "n", "b"}
    bound = bind(stmt, {"a": "x' OR 1=1 --", "n": 1.5, "b": None})
    assert placeholders(bound) == set()
    # the hostile text is one string literal, not query text
    assert to_aql(bound).splitlines()[-1] == (
        "WHERE asset = 'x'' OR 1=1 --' AND index IN (1.5, 2) AND ok = NULL"
    )


@pytest.mark.parametrize(
    "params, message",
    [
        ({}, "no value for $a"),
        ({"a": 1, "zz": 2}, "'zz' name no placeholder"),
        ({"a": [1, 2]}, "not list"),
        ({"a": float("nan")}, "finite"),
    ],
)
def test_bind_refuses_missing_extra_and_odd_values(params, message) -> None:
    with pytest.raises(AqlError, match=message.replace("$", r"\$").replace("(", r"\(")):
        bind(parse_one("SELECT id FROM shots WHERE index = $a"), params)


def test_query_with_params_on_a_store(tmp_path) -> None:
    import amberlite

    store = amberlite.open(tmp_path / "store")
    store.ingest([small_clip(tmp_path / "a.mp4", 0, scenes=1, frames=4)], aliases=["film1"])
    q = "SELECT alias, width FROM assets WHERE alias = $name"
    assert store.query(q, {"name": "film1"}).rows() == [("film1", 160)]
    assert store.query(q, {"name": "film1' OR 'a' = 'a"}).height == 0
    with pytest.raises(AqlError, match=r"no value for \$name"):
        store.query(q)
    assert "$name" not in store.explain(q, {"name": "film1"})
