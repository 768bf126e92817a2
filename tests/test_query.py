"""AQL execution: SELECT over entities and features, pushdown, EXPLAIN, errors, injection,
SHOW/DESCRIBE, GROUP BY, temporal joins, the CLI commands and the examples of docs/aql.md."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from test_query_support import make_store

from amberlite.errors import AmberliteError, AqlError, AqlSyntaxError, AqlTypeError, ResolveError
from amberlite.query import explain, run_query

DOC = Path(__file__).parent.parent / "docs" / "aql.md"


@pytest.fixture
def fresh(tmp_path, media_dir):
    return make_store(tmp_path, media_dir)


@pytest.fixture(scope="module")
def full(tmp_path_factory, media_dir):
    store = make_store(tmp_path_factory.mktemp("full"), media_dir)
    run_query(store, "SELECT brightness, color, scaled FROM shots")
    return store


def rows_stored(store, name: str) -> int:
    df = store.features().filter(pl.col("name") == name)
    return int(df["rows_stored"].sum())


def test_select_shots_with_feature(full):
    df = run_query(
        full,
        "SELECT id, asset, start_s, end_s, brightness FROM shots OF 'film1' "
        "WHERE end_s - start_s > 0.2 ORDER BY start_s LIMIT 20",
    )
    assert df.columns == ["id", "asset", "start_s", "end_s", "brightness"]
    assert df.height == 3 and set(df["asset"]) == {"film1"}
    assert df["start_s"].to_list() == sorted(df["start_s"].to_list())
    assert df["brightness"].null_count() == 0
    direct = full.get("brightness", "film1").sort("id")
    got = df.sort("id")
    assert got["id"].to_list() == direct["id"].to_list()
    assert got["brightness"].to_list() == direct["brightness"].to_list()


def test_pushdown_computes_only_filtered_entities(fresh):
    shots = fresh.entities("shot", "film1")  # segments film1 only
    first_start = shots["start_s"].min()
    text = f"SELECT id, brightness FROM shots OF 'film1' WHERE start_s <= {first_start}"
    before = explain(fresh, text)
    assert "Filter[pushed]" in before
    assert "brightness@1: stored 0, missing 1, failed 0 -> compute" in before
    df = run_query(fresh, text)
    assert df.height == 1 and df["brightness"].null_count() == 0
    assert rows_stored(fresh, "brightness") == 1  # not the other 2 shots of film1
    after = explain(fresh, text)
    assert "brightness@1: stored 1, missing 0, failed 0 -> read" in after


def test_feature_filter_is_not_pushed(fresh):
    text = "SELECT id FROM shots WHERE brightness > 0.3 AND index = 0"
    plan = explain(fresh, text)
    pushed = [ln for ln in plan.splitlines() if "Filter[pushed]" in ln]
    assert len(pushed) == 1 and "index" in pushed[0] and "brightness" not in pushed[0]
    run_query(fresh, text)
    assert rows_stored(fresh, "brightness") == 2  # the first shot of each film


def test_explain_computes_nothing(fresh):
    text = "EXPLAIN SELECT id, brightness, color FROM shots"
    out = run_query(fresh, text)
    assert out.columns == ["plan"]
    lines = out["plan"].to_list()
    shots = fresh.feature("shots").key
    assert f"{shots}: stored 0, missing 2, failed 0 -> compute" in "\n".join(lines)
    assert rows_stored(fresh, "shots") == 0 and rows_stored(fresh, "brightness") == 0


def test_failures_count_and_read_as_null(full):
    df = run_query(full, "SELECT asset, index, scaled FROM shots ORDER BY asset, index")
    assert df.filter(pl.col("index") == 1)["scaled"].null_count() == 2
    assert df.filter(pl.col("index") != 1)["scaled"].null_count() == 0
    text = explain(full, "SELECT scaled FROM shots")
    assert "scaled@1: stored 3, missing 0, failed 2 -> read" in text


def test_params_make_a_separate_dataset(full):
    df = run_query(full, "SELECT index, scaled(scale=2) AS s2, scaled FROM shots OF 'film1'")
    ok = df.filter(pl.col("index") != 1)
    assert (ok["s2"] == ok["scaled"] * 2).all()


def test_asset_feature_broadcast_over_shots(full):
    df = run_query(full, "SELECT asset, color FROM shots ORDER BY asset")
    per_asset = run_query(full, "SELECT alias, color FROM assets ORDER BY alias")
    assert df.height == 5
    want = dict(zip(per_asset["alias"], per_asset["color"].to_list()))
    for a, c in zip(df["asset"], df["color"].to_list()):
        assert c == want[a]


def test_group_by_having_and_aggregates(full):
    df = run_query(
        full,
        "SELECT asset, count(*) AS n, min(start_s) AS first, max(end_s) AS last, "
        "avg(brightness) AS b FROM shots GROUP BY asset HAVING n > 1 ORDER BY asset",
    )
    assert df["asset"].to_list() == ["film1", "film2"]
    assert df["n"].to_list() == [3, 2]
    assert df["first"].to_list() == [0.0, 0.0]
    assert df["last"].to_list() == pytest.approx([2.4, 1.6])


def test_group_by_an_expression_however_its_names_are_spelled(full):
    want = {0: 3, 1: 2}  # film1 has shots 0, 1, 2 and film2 shots 0, 1
    for select, group in [
        ("s.index % 2", "s.index % 2"),
        ("index % 2", "index % 2"),
        ("s.index % 2", "index % 2"),
        ("index % 2", "s.index % 2"),
    ]:
        df = run_query(
            full, f"SELECT {select} AS p, count(*) AS n FROM shots s GROUP BY {group} ORDER BY p"
        )
        assert dict(zip(df["p"].to_list(), df["n"].to_list())) == want, (select, group)
    df = run_query(
        full, "SELECT (index % 2) * 10 AS p, count(*) AS n FROM shots s GROUP BY s.index % 2"
    )
    assert dict(zip(df["p"].to_list(), df["n"].to_list())) == {0: 3, 10: 2}
    with pytest.raises(AqlError, match="index in the select list is neither grouped"):
        run_query(full, "SELECT index % 3 AS p, count(*) AS n FROM shots GROUP BY index % 2")


def test_temporal_join_frames_during_shots(full):
    df = run_query(
        full,
        "SELECT s.asset, s.index, count(*) AS frames FROM shots s JOIN frames f ON f DURING s "
        "WHERE f.parity = 0 GROUP BY s.asset, s.index ORDER BY s.asset, s.index",
    )
    assert df["frames"].to_list() == [10] * 5
    overlap = run_query(
        full,
        "SELECT a.index, b.index FROM shots a JOIN shots b ON a BEFORE b WHERE a.asset = 'film1'",
    )
    assert overlap.height == 3  # (0,1) (0,2) (1,2)


def test_frames_time_and_frame_literals(full):
    df = run_query(full, "SELECT n, t FROM frames OF 'film2' WHERE t >= 00:01 AND n < f30")
    assert df["n"].to_list() == list(range(25, 30))
    assert df["t"].to_list() == pytest.approx([n / 25 for n in range(25, 30)])
    # a frame literal against a time column converts at the asset's frame rate
    by_time = run_query(full, "SELECT n FROM frames OF 'film2' WHERE t < f3")
    assert by_time["n"].to_list() == [0, 1, 2]
    spans = run_query(full, "SELECT index FROM shots OF 'film1' WHERE shots DURING [f20, f40]")
    assert spans["index"].to_list() == [1]


def test_show_and_describe(full):
    assert set(run_query(full, "SHOW ASSETS")["alias"]) == {"film1", "film2"}
    feats = run_query(full, "SHOW FEATURES")
    assert {"brightness", "color", "scaled", "parity", "shots"} <= set(feats["name"])
    ents = run_query(full, "SHOW ENTITIES")
    assert dict(zip(ents["entity_set"], ents["count"])) == {
        "assets": 2,
        "frames": 100,
        "shots": 5,
    }
    d = run_query(full, "DESCRIBE scaled")
    assert d["params"].to_list() == ["{'scale': 1.0}"]
    cols = run_query(full, "DESCRIBE frames")
    assert {"n", "t", "id", "start_s"} <= set(cols["column"])


@pytest.mark.parametrize(
    ("text", "error", "fragment"),
    [
        ("SELECT brightnes FROM shots", ResolveError, "did you mean 'brightness'"),
        ("SELECT id FROM shotz", ResolveError, "did you mean 'shots'"),
        ("SELECT id FROM shots OF 'flim1'", ResolveError, "did you mean 'film1'"),
        ("SELECT id FROM shots WHERE color > 1", AqlTypeError, "color"),
        ("SELECT id FROM shots WHERE brightness = 'x'", AqlTypeError, "brightness"),
        ("SELECT sum(asset) FROM shots", AqlTypeError, "asset"),
        ("SELECT parity FROM shots", AqlTypeError, "frame"),
        ("SELECT id FROM shots WHERE count(*) > 1", AqlError, "aggregate"),
        ("SELECT scaled(scael=2) FROM shots", ResolveError, "did you mean 'scale'"),
        ("SELECT id FROM shots s JOIN frames f ON f DURING s WHERE id = 'x'", AqlError, "ambig"),
        ("SELECT id FROM", AqlSyntaxError, "line 1"),
        ("SELECT nosuchfn(id) FROM shots", ResolveError, "unknown function"),
    ],
)
def test_errors(fresh, text, error, fragment):
    with pytest.raises(error) as info:
        run_query(fresh, text)
    assert fragment in str(info.value)


INJECTION = "'; DROP TABLE assets; --"


def test_injection_as_literal_and_names(full):
    quoted = INJECTION.replace("'", "''")
    assert run_query(full, f"SELECT id FROM shots WHERE asset = '{quoted}'").height == 0
    assert run_query(full, f"SELECT id FROM assets WHERE alias LIKE '%{quoted}%'").height == 0
    ident = '"' + INJECTION + '"'
    for text in (
        f"SELECT {ident} FROM shots",
        f"SELECT id FROM {ident}",
        f"SELECT {ident}.id FROM shots",
        f"SELECT id FROM shots OF '{quoted}'",
        f"DESCRIBE {ident}",
        f"SELECT scaled({ident[1:-1].replace(' ', '_').replace(';', '')}=1) FROM shots",
    ):
        with pytest.raises(AmberliteError):
            run_query(full, text)
    df = run_query(full, f'SELECT id AS {ident}, asset FROM shots AS {ident[:-1]}x"')
    assert df.columns == [INJECTION, "asset"]
    assert run_query(full, "SELECT count(*) AS n FROM assets")["n"].to_list() == [2]


def test_cli_query_explain_and_errors(full, tmp_path):
    base = [sys.executable, "-m", "amberlite.cli", "--store", str(full.root)]
    out = subprocess.run(
        [
            *base,
            "query",
            "SELECT asset, count(*) AS n FROM shots GROUP BY asset",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert json.loads(out) == [{"asset": "film1", "n": 3}, {"asset": "film2", "n": 2}]
    dest = tmp_path / "out.csv"
    subprocess.run(
        [
            *base,
            "query",
            "SELECT index, color FROM shots OF 'film2'",
            "--format",
            "csv",
            "-o",
            str(dest),
        ],
        check=True,
    )
    assert dest.read_text().splitlines()[0] == "index,color"
    plan = subprocess.run(
        [*base, "explain", "SELECT brightness FROM shots"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "brightness@1: stored 5, missing 0, failed 0 -> read" in plan
    bad = subprocess.run(
        [*base, "query", "SELECT brightnes FROM shots"], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "did you mean 'brightness'" in bad.stderr


def doc_examples() -> list[str]:
    """Every ```aql block of docs/aql.md (one statement each)."""
    return [b.strip() for b in re.findall(r"```aql\n(.*?)```", DOC.read_text(), re.S)]


def test_doc_examples_run(full):
    examples = doc_examples()
    assert len(examples) >= 12
    for text in examples:
        run_query(full, text)


def test_match_pairs_shots_across_assets(full):
    df = run_query(full, "MATCH shots BY color TOP 3 ACROSS ASSETS")
    assert df.height == 3 and (df["asset_a"] != df["asset_b"]).all()
    assert df["score"].to_list() == sorted(df["score"].to_list(), reverse=True)
    with pytest.raises(AqlError, match="NEAREST"):
        run_query(full, "SELECT id FROM shots NEAREST 3 TO shot 'film1/1' BY brightness")
    with pytest.raises(AqlError, match="pairs shots"):
        run_query(full, "MATCH frames BY color TOP 3")


def test_store_methods(full):
    assert full.query("SELECT count(*) AS n FROM shots")["n"].to_list() == [5]
    assert full.explain("SELECT id FROM shots").startswith("plan:")
