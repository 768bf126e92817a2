"""AQL similarity search: SELECT ... NEAREST and MATCH through the replica index or exactly.

The store is the two small clips of the query tests (film1: 3 shots, 60 frames; film2: 2
shots, 40 frames) with two tiny clustered vector features computed without decoding: ``femb``
per frame and ``semb`` per shot (8 floats each, so a frame's value can search shots).
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import polars as pl
import pytest
from test_query_support import copy_store, make_store

from amberlite.connectors.hnsw import HnswConnector
from amberlite.errors import AqlError, AqlSyntaxError, AqlTypeError, ResolveError
from amberlite.matchcut import top_pairs
from amberlite.query import explain, run, run_query
from amberlite.search import similarity
from amberlite.search.kernel import adjacent_pairs, exact_knn, exact_pairs, exact_pairs_numpy

VECTOR_DEFS = '''
import numpy as np
import pyarrow as pa
from amberlite import feature

CENTERS = np.random.default_rng(99).standard_normal((4, 8))


def _vec(seed, cluster):
    noise = np.random.default_rng(seed).standard_normal(8) * 0.05
    return (CENTERS[cluster] + noise).astype(np.float32)


@feature(entity="frame", output=pa.list_(pa.float32(), 8))
def femb(frame):
    """A clustered frame vector (cluster n % 4), without decoding."""
    return _vec(frame.n + 1000 * (frame.asset.alias == "film2"), frame.n % 4)


@feature(entity="shot", output=pa.list_(pa.float32(), 8))
def semb(shot):
    """A clustered shot vector (cluster index % 4), without decoding."""
    return _vec(5000 + shot.index + 1000 * (shot.asset.alias == "film2"), shot.index % 4)
'''


@pytest.fixture(scope="module")
def base(tmp_path_factory, media_dir):
    root = tmp_path_factory.mktemp("nearest")
    store = make_store(root, media_dir)
    defs = root / "vector_defs.py"
    defs.write_text(VECTOR_DEFS)
    store.apply(defs)
    for name in ("femb", "semb", "shot_embedding"):
        store.materialize(name, progress=False)
    return store


@pytest.fixture
def store(base, tmp_path):
    """A private copy (tests add replicas)."""
    return copy_store(base, tmp_path / "copy")


def frame_id(store, alias: str, n: int) -> str:
    return f"{store.resolve_assets([alias])[0]}/f{n}"


def test_nearest_equals_exact_search(store):
    result = run(
        store, "SELECT id, asset, n, score FROM frames NEAREST 12 TO frame 'film1/f5' BY femb"
    )
    df = result.table
    assert result.search.method == "exact" and "no replica index" in result.search.explain
    want = similarity.nearest(store, "femb", frame_id(store, "film1", 5), 12, exact=True)
    assert df["id"].to_list() == want.table["id"].to_list()
    np.testing.assert_allclose(df["score"].to_numpy(), want.table["score"].to_numpy(), rtol=1e-6)
    assert frame_id(store, "film1", 5) not in df["id"].to_list()  # the target is excluded
    assert df["score"].to_list() == sorted(df["score"].to_list(), reverse=True)
    assert set((df["n"] % 4).to_list()) == {1}  # its own cluster
    # the raw id names the same target
    raw = run_query(
        store,
        f"SELECT id, score FROM frames NEAREST 12 TO frame '{frame_id(store, 'film1', 5)}' BY femb",
    )
    assert raw["id"].to_list() == df["id"].to_list()


def test_where_filters_the_k_nearest(store):
    k = "SELECT id, asset, score FROM frames NEAREST 10 TO frame 'film1/f5' BY femb"
    top = run_query(store, k)
    filtered = run_query(store, k + " WHERE asset = 'film2' AND score > 0")
    assert filtered["id"].to_list() == top.filter(pl.col("asset") == "film2")["id"].to_list()
    assert filtered.height < 10  # post-filter: not 10 film2 frames
    ordered = run_query(store, k + " ORDER BY id LIMIT 3")
    assert ordered["id"].to_list() == sorted(top["id"].to_list())[:3]
    scoped = run_query(
        store, "SELECT asset FROM frames OF 'film2' NEAREST 4 TO frame 'film1/f5' BY femb"
    )
    assert scoped["asset"].to_list() == ["film2"] * 4


def test_nearest_with_index_overlaps_exact_and_explain_says_which(store):
    q = "SELECT id, score FROM frames NEAREST 10 TO frame 'film2/f7' BY femb"
    assert "search: exact torch search over femb@1 (no replica index)" in explain(store, q)
    exact = run_query(store, q)
    store.replicas.add("femb", "hnsw", M=16, ef=64, space="cosine")
    text = explain(store, q + " WITH (ef=200)")
    assert "search: hnsw index over femb@1 (space=cosine, M=16, ef=200 per query)" in text
    assert "Nearest 10 TO frame 'film2/f7' BY femb@1 WITH (ef=200)" in text
    fast_result = run(store, q + " WITH (ef=200)")
    assert fast_result.search.method == "hnsw"
    fast = fast_result.table
    overlap = len(set(fast["id"].to_list()) & set(exact["id"].to_list())) / 10
    assert overlap >= 0.9
    if fast["id"].to_list() == exact["id"].to_list():
        np.testing.assert_allclose(fast["score"].to_numpy(), exact["score"].to_numpy(), atol=1e-5)


def test_ef_is_passed_to_the_index(store, monkeypatch):
    store.replicas.add("femb", "hnsw", M=16, ef=64)
    seen = []
    search = HnswConnector.search

    def spy(self, vectors, k, ef=None, allowed=None):
        seen.append(ef)
        return search(self, vectors, k, ef=ef, allowed=allowed)

    monkeypatch.setattr(HnswConnector, "search", spy)
    q = "SELECT id FROM frames NEAREST 3 TO frame 'film1/f2' BY femb"
    run_query(store, q + " WITH (ef=77)")
    run_query(store, q)
    assert seen == [77, None]


def test_nearest_to_another_features_value(store):
    df = run_query(
        store, "SELECT asset, index, score FROM shots NEAREST 2 TO femb OF frame 'film1/f2' BY semb"
    )
    vec = np.asarray(
        store.get("femb", "film1").filter(pl.col("id") == frame_id(store, "film1", 2))["femb"][0]
    )
    want = similarity.nearest(store, "semb", vec, 2, exact=True)
    got = run_query(store, "SELECT id FROM shots NEAREST 2 TO femb OF frame 'film1/f2' BY semb")
    assert got["id"].to_list() == want.table["id"].to_list()
    assert df["index"].to_list()[0] == 2  # the frame's cluster


def test_match_across_assets_through_the_index_equals_exact(store):
    exact = {
        across: top_pairs(store, None, "shot_embedding", 6, across_only=across, exact=True)
        for across in (False, True)
    }
    assert exact[False].method == "exact"
    exact = {across: found.table for across, found in exact.items()}
    plan = explain(store, "MATCH shots BY shot_embedding TOP 6 ACROSS ASSETS")
    assert "search: exact torch search over shot_embedding@1 (no replica index)" in plan
    store.replicas.add("shot_embedding", "hnsw", M=16, ef=64)
    plan = explain(store, "MATCH shots BY shot_embedding TOP 6 ACROSS ASSETS WITH (ef=100)")
    assert "search: hnsw index over shot_embedding@1 (space=cosine, M=16, ef=100 per query)" in plan
    for across in (False, True):
        text = "MATCH shots BY shot_embedding TOP 6" + (" ACROSS ASSETS" if across else "")
        got_result = run(store, text + " WITH (ef=100)")
        assert got_result.search.method == "hnsw"
        got = got_result.table
        cols = ["asset_a", "shot_a", "asset_b", "shot_b"]
        assert got.select(cols).rows() == exact[across].select(cols).rows()
        np.testing.assert_allclose(got["score"], exact[across]["score"], atol=1e-5)
        if not across:  # adjacent shots of one asset never pair
            same = got.filter(pl.col("asset_a") == pl.col("asset_b"))
            assert ((same["shot_a"] - same["shot_b"]).abs() != 1).all()


def test_match_by_an_iou_metric_stays_exact(store):
    store.replicas.add("match_framing", "hnsw", M=8)
    text = explain(store, "MATCH shots BY framing TOP 3")
    assert "search: exact torch search over match_framing@3 (metric iou" in text
    assert run(store, "MATCH shots BY framing TOP 3").search.method == "exact"


class ExactConnector:
    """A stand-in index that answers exactly (tests the widening and exclusions alone)."""

    space = "cosine"

    def __init__(self, ids, mat):
        self.ids, self.mat = np.array(ids, dtype=object), mat

    def search(self, vectors, k, ef=None, allowed=None):
        keep = np.array([allowed is None or e in allowed for e in self.ids])
        idx, sc = exact_knn(self.mat[keep], vectors, k)
        return self.ids[keep][idx], sc


@pytest.mark.parametrize("across", [False, True])
def test_index_pairs_honour_exclusions(across):
    rng = np.random.default_rng(1)
    n = 300
    mat = (rng.standard_normal((n, 6)) + np.repeat(rng.standard_normal((3, 6)) * 3, 100, 0)).astype(
        np.float32
    )
    groups = np.arange(n) % 5
    order = np.arange(n) // 5
    ex = adjacent_pairs(groups, order)
    want_i, want_j, _ = exact_pairs_numpy(
        mat, 40, groups=groups, across=across, space="cosine", exclude=ex
    )
    ids = np.array([f"e{i}" for i in range(n)], dtype=object)
    a, b, s, _ = similarity.index_pairs(
        ExactConnector(ids, mat), ids, groups, mat, 40, across, None, None, ex
    )
    assert list(zip(a, b)) == list(zip(want_i, want_j))
    ea, eb, _ = exact_pairs(mat, 40, groups, across, exclude=ex)
    assert list(zip(ea, eb)) == list(zip(want_i, want_j))


def test_errors_are_clear(store):
    cases = [
        ("SELECT id FROM shots NEAREST 3 TO shot 'film1/9' BY semb", ResolveError, "'film1/9'"),
        ("SELECT id FROM shots NEAREST 3 TO shot 'nope/1' BY semb", ResolveError, "'nope/1'"),
        ("SELECT id FROM shots NEAREST 3 TO shot 'film1/1' BY brightness", AqlTypeError, "vector"),
        (
            "SELECT id FROM shots NEAREST 3 TO shot 'film1/1' BY semb WITH (metric=1)",
            AqlError,
            "metric",
        ),
        ("SELECT id FROM shots NEAREST 3 TO shot 'film1/1' BY semb WITH (ef=0)", AqlError, "ef"),
        ("SELECT id FROM shots NEAREST 0 TO shot 'film1/1' BY semb", AqlSyntaxError, "at least 1"),
        ("SELECT id FROM shots NEAREST 3 TO frame 'film1/f1' BY semb", AqlTypeError, "OF frame"),
        (
            "SELECT id FROM shots NEAREST 3 TO color OF asset 'film1' BY semb",
            AqlTypeError,
            "3 values",
        ),
        ("SELECT id FROM shots NEAREST 3 TO shot 'film1/1' BY femb", AqlTypeError, "'frame'"),
        ("MATCH shots BY color TOP 3 WITH (probe=2)", AqlError, "options are ef and min_shot"),
    ]
    for text, error, fragment in cases:
        with pytest.raises(error, match=fragment):
            run_query(store, text)


def test_cli_example(base):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "amberlite.cli",
            "--store",
            str(base.root),
            "query",
            "SELECT id, asset, score FROM shots NEAREST 3 TO shot 'film1/0' BY shot_embedding",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = json.loads(out)
    want = similarity.nearest(
        base,
        "shot_embedding",
        run_query(base, "SELECT id FROM shots OF 'film1' WHERE index = 0")["id"][0],
        3,
        exact=True,
    )
    assert [r["id"] for r in rows] == want.table["id"].to_list()
    assert {r["asset"] for r in rows} <= {"film1", "film2"}


def test_a_dataset_over_a_nearest_query_streams_the_search_result(store):
    text = "SELECT id, ref, score FROM shots NEAREST 3 TO shot 'film1/0' BY shot_embedding"
    want = run_query(store, text)
    rows = [r for batch in store.dataset(text, batch_size=2) for r in zip(*batch.values())]
    assert len(rows) == 3 == want.height
    got = {r[0]: (r[1], float(r[2])) for r in rows}
    assert set(got) == set(want["id"].to_list())
    for i, ref, score in want.iter_rows():
        assert got[i][0] == ref and got[i][1] == pytest.approx(score)
    found = similarity.nearest(store, "shot_embedding", "film1/0", 3, exact=True)
    assert found.table["id"].to_list() == want["id"].to_list()  # references work in Python too
