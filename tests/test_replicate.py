"""Replication connectors: HNSW replicas follow commits, survive crashes, answer like exact search.

Values are written through the store's real commit path (``write_aside`` + ``commit``, the
path the resolver uses) for a small vector feature declared in a definition file; crashes are
real subprocesses killed with SIGKILL at ``amberlite.faults`` points between the Parquet
commit and the index write.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

import amberlite
from amberlite.connectors.base import replica_dir
from amberlite.errors import ReplicaError, ResolveError
from amberlite.memo.key import MemoKey, memo_key
from amberlite.search import similarity
from amberlite.search.kernel import exact_knn

DIM = 4
REPO = Path(__file__).resolve().parents[1]

DEFS = """
import pyarrow as pa
from amberlite import feature

@feature(entity="asset", version={version}, output=pa.list_(pa.float32(), {dim}))
def emb(asset):
    \"\"\"A tiny embedding (tests write its values directly).\"\"\"
    return [0.0] * {dim}{tag}
"""


def define(store, tmp: Path, version: int = 1):
    path = tmp / f"defs_v{version}.py"
    path.write_text(DEFS.format(version=version, dim=DIM, tag=f"  # v{version}"))
    store.apply(path)
    return store.feature("emb", version)


def key_of(store, version: int = 1) -> MemoKey:
    return memo_key(store.feature("emb", version), None)


def commit(store, key: MemoKey, rows: dict[str, np.ndarray], asset_of=None, retire=()):
    """Commit rows (entity -> vector) as one Parquet file, the way the resolver does."""
    ids = sorted(rows)
    mat = np.stack([rows[e] for e in ids]).astype(np.float32) if ids else np.zeros((0, DIM))
    table = pa.table(
        {
            "entity_id": pa.array(ids, pa.string()),
            "asset_id": pa.array([(asset_of or _asset)(e) for e in ids], pa.string()),
            "value": pa.FixedSizeListArray.from_arrays(
                pa.array(mat.reshape(-1), pa.float32()), DIM
            ),
        }
    )
    aside = store.memo.write_aside(table)
    return store.memo.commit(key, aside, len(ids), retire=list(retire), kind="compute")


ASSETS: list[str] = []  # ids of the three ingested clips (filled by the store fixture)


def _asset(entity: str) -> str:
    i = int(entity[1:]) % 3
    return ASSETS[i] if ASSETS else f"asset{i}"


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> list[Path]:
    from amberlite.media.synth import Scene, render

    d = tmp_path_factory.mktemp("clips")
    out = []
    for i in range(3):
        path = d / f"asset{i}.mp4"
        render(path, [Scene(4, (40 * i, 80, 120))], width=32, height=18, seed=i)
        out.append(path)
    return out


def stored(store, key: MemoKey) -> dict[str, np.ndarray]:
    t = store.memo.read(key, pa.list_(pa.float32(), DIM))
    vals = np.array(t.column("value").to_pylist(), dtype=np.float32).reshape(-1, DIM)
    return dict(zip(t.column("entity_id").to_pylist(), vals))


def unit(v: np.ndarray) -> np.ndarray:
    return v / (np.linalg.norm(v, axis=-1, keepdims=True) + 1e-30)


def assert_replica_matches(store, key: MemoKey, catch_up: bool = True) -> None:
    """The index holds exactly the stored values: same ids, same (normalized) vectors."""
    if catch_up:
        conn = store.replicas.connector(key, "hnsw")
    else:
        conn = store.replicas._open[(key, "hnsw")]
    want = stored(store, key)
    assert conn.entity_ids() == set(want)
    assert conn.count() == len(want)
    ids = sorted(want)
    if ids:
        got = conn.vectors(ids)
        np.testing.assert_allclose(got, unit(np.stack([want[e] for e in ids])), atol=1e-5)


def rng_rows(seed: int, ids: list[str]) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {e: (rng.standard_normal(DIM) + 0.01).astype(np.float32) for e in ids}


@pytest.fixture()
def store(tmp_path, clips):
    s = amberlite.open(tmp_path / "store")
    report = s.ingest(clips, aliases=["asset0", "asset1", "asset2"], compute=False)
    ASSETS[:] = [a["asset_id"] for a in report.assets]
    define(s, tmp_path)
    yield s
    ASSETS.clear()


# -- basics ---------------------------------------------------------------------------------------
def test_add_follow_status_rebuild(store, tmp_path):
    key = key_of(store)
    commit(store, key, rng_rows(1, [f"e{i}" for i in range(20)]))
    info = store.replicas.add("emb", "hnsw", M=8, ef_construction=50, ef=32)
    assert info.last_file_id > 0
    path = replica_dir(store.root, key) / "hnsw.json"
    assert path.is_file() and len(list(path.parent.glob("hnsw-*.bin"))) == 1
    assert_replica_matches(store, key)

    # a commit is applied by the listener, with no explicit sync
    commit(store, key, rng_rows(2, [f"e{i}" for i in range(20, 25)]))
    assert_replica_matches(store, key, catch_up=False)
    (row,) = store.replicas.status()
    assert (row["rows_indexed"], row["rows_stored"], row["lag_commits"]) == (25, 25, 0)
    assert row["options"]["M"] == 8

    # compaction rewrites the same rows: nothing is re-inserted
    store.compact("emb")
    conn = store.replicas._open[(key, "hnsw")]
    assert conn.apply(_table(stored(store, key))) == 0
    assert_replica_matches(store, key, catch_up=False)

    assert store.replicas.rebuild("emb") == 25
    assert_replica_matches(store, key)
    with pytest.raises(ReplicaError):
        store.replicas.add("emb", "hnsw", space="hamming")
    with pytest.raises(ResolveError):
        store.replicas.add("emb", "faiss")


def _table(rows: dict[str, np.ndarray]) -> pa.Table:
    ids = sorted(rows)
    mat = np.stack([rows[e] for e in ids]).astype(np.float32)
    return pa.table(
        {
            "entity_id": pa.array(ids),
            "value": pa.FixedSizeListArray.from_arrays(pa.array(mat.reshape(-1)), DIM),
        }
    )


def test_nearest_and_match_equal_exact(store):
    key = key_of(store)
    rows = rng_rows(3, [f"e{i}" for i in range(120)])
    commit(store, key, rows)
    found = similarity.nearest(store, "emb", "e7", 5, compute=False)
    assert found.method == "exact" and "no replica" in found.explain
    exact = found.table
    assert "e7" not in exact["id"].to_list()
    store.replicas.add("emb", "hnsw", M=16, ef_construction=200)
    found = similarity.nearest(store, "emb", "e7", 5, ef=200, compute=False)
    assert found.method == "hnsw"
    fast = found.table
    assert fast["id"].to_list() == exact["id"].to_list()
    np.testing.assert_allclose(fast["score"].to_numpy(), exact["score"].to_numpy(), atol=1e-5)
    assert fast["asset_id"].to_list() == [_asset(e) for e in fast["id"].to_list()]

    vec = similarity.nearest(store, "emb", rows["e9"], 3, compute=False).table
    assert vec["id"][0] == "e9"
    scoped = similarity.nearest(store, "emb", "e7", 4, assets=["asset1"], compute=False)
    assert len(scoped) == 4 and set(scoped.table["asset_id"].to_list()) == {ASSETS[1]}
    assert scoped.method == "exact" and "small asset scope" in scoped.explain
    assert "hnsw" in similarity.explain_path(store, "emb")

    for across in (False, True):
        m_exact = similarity.match(store, "emb", 10, across, compute=False, exact=True)
        m_fast = similarity.match(store, "emb", 10, across, compute=False)
        assert m_fast.method == "hnsw" and m_exact.method == "exact"
        fast_t, exact_t = m_fast.table, m_exact.table
        pairs = list(zip(fast_t["id_a"].to_list(), fast_t["id_b"].to_list()))
        assert pairs == list(zip(exact_t["id_a"].to_list(), exact_t["id_b"].to_list()))
        if across:
            assert (fast_t["asset_id_a"] != fast_t["asset_id_b"]).all()

    with pytest.raises(ResolveError):
        similarity.nearest(store, "emb", "nope", 3, compute=False)
    with pytest.raises(ReplicaError):
        similarity.nearest(store, "emb", [1.0, 2.0], 3, compute=False)


def test_exact_knn_against_numpy():
    rng = np.random.default_rng(0)
    x, q = rng.standard_normal((300, 16)), rng.standard_normal((7, 16))
    for space in ("cosine", "ip", "l2"):
        idx, sc = exact_knn(x, q, 5, space, block_elems=600)
        if space == "cosine":
            s = unit(q) @ unit(x).T
        elif space == "ip":
            s = q @ x.T
        else:
            s = -((q[:, None, :] - x[None]) ** 2).sum(-1)
        want = np.argsort(-s, axis=1)[:, :5]
        np.testing.assert_array_equal(idx, want)
        np.testing.assert_allclose(sc, np.take_along_axis(s, want, 1), rtol=1e-4, atol=1e-4)


def test_cli(store, tmp_path):
    from amberlite.cli import main
    from amberlite.cli.replicate import replicate

    if "replicate" not in main.commands:
        main.add_command(replicate)
    commit(store, key_of(store), rng_rows(4, [f"e{i}" for i in range(10)]))
    run = CliRunner().invoke
    args = ["--store", str(store.root), "replicate"]
    r = run(main, [*args, "add", "emb", "--to", "hnsw", "--M", "8", "--ef", "20"])
    assert r.exit_code == 0, r.output
    assert "10 rows indexed of 10 stored" in r.output
    r = run(main, [*args, "status"])
    assert r.exit_code == 0 and "emb@1" in r.output and "M=8" in r.output
    r = run(main, [*args, "rebuild", "emb"])
    assert r.exit_code == 0 and "10 rows indexed" in r.output
    r = run(main, [*args, "add", "nosuch", "--to", "hnsw"])
    assert r.exit_code == 2 and "error:" in r.output and "Traceback" not in r.output


# -- correctness under change ---------------------------------------------------------------------
CRASH_CHILD = textwrap.dedent(
    """
    import sys, numpy as np, pyarrow as pa, amberlite
    from amberlite.memo.key import memo_key
    store = amberlite.open(sys.argv[1])
    key = memo_key(store.feature("emb", int(sys.argv[2])), None)
    ids = sys.argv[4].split(",")
    rng = np.random.default_rng(int(sys.argv[3]))
    mat = (rng.standard_normal((len(ids), 4)) + 0.01).astype(np.float32)
    table = pa.table({"entity_id": ids, "asset_id": ["a"] * len(ids),
        "value": pa.FixedSizeListArray.from_arrays(pa.array(mat.reshape(-1)), 4)})
    store.memo.commit(key, store.memo.write_aside(table), len(ids))
    print("survived")
    """
)


class ReplicaMachine(RuleBasedStateMachine):
    """Interleave inserts, deletes, compactions, new versions, crashes and restarts; after
    each step every replica holds exactly the stored values."""

    def __init__(self) -> None:
        super().__init__()
        import tempfile

        self.tmp = Path(tempfile.mkdtemp(prefix="amberlite-replica-"))
        self.versions = [1]

    @initialize(seed=st.integers(0, 1000))
    def setup(self, seed: int) -> None:
        self.store = amberlite.open(self.tmp / "store")
        define(self.store, self.tmp)
        commit(self.store, key_of(self.store), rng_rows(seed, ["e0", "e1", "e2"]))
        self.store.replicas.add("emb", "hnsw", M=8, ef_construction=40)

    def _pool(self, version: int, n: int, seed: int) -> list[str]:
        have = set(stored(self.store, key_of(self.store, version)))
        free = [f"e{i}" for i in range(24) if f"e{i}" not in have]
        rng = np.random.default_rng(seed)
        return sorted(rng.choice(free, size=min(n, len(free)), replace=False).tolist())

    @rule(n=st.integers(1, 4), seed=st.integers(0, 10_000), pick=st.integers(0, 1))
    def insert(self, n: int, seed: int, pick: int) -> None:
        v = self.versions[pick % len(self.versions)]
        ids = self._pool(v, n, seed)
        if ids:
            commit(self.store, key_of(self.store, v), rng_rows(seed, ids))
            self._listener_applied(v)

    def _listener_applied(self, v: int) -> None:
        """An in-process commit is applied by the listener itself: no lag, no catch-up."""
        key = key_of(self.store, v)
        for row in self.store.replicas.status():
            if (row["feature"], row["params_key"]) == (key.label, key.params_key):
                assert row["lag_commits"] == 0
                assert row["rows_indexed"] == row["rows_stored"]

    @rule(seed=st.integers(0, 10_000), pick=st.integers(0, 1))
    def delete(self, seed: int, pick: int) -> None:
        """Rewrite the live files without some entities, retiring the old ones."""
        key = key_of(self.store, self.versions[pick % len(self.versions)])
        rows = stored(self.store, key)
        if not rows:
            return
        rng = np.random.default_rng(seed)
        drop = set(rng.choice(sorted(rows), size=rng.integers(1, len(rows) + 1), replace=False))
        live = self.store.catalog.query(
            """SELECT file_id FROM memo_files WHERE feature = ? AND version = ?
               AND params_key = ? AND file_id NOT IN (SELECT file_id FROM retired_files)""",
            key.sql_args(),
        )
        keep = {e: v for e, v in rows.items() if e not in drop}
        if keep:
            commit(self.store, key, keep, retire=[r[0] for r in live])
            self._listener_applied(key.version)

    @rule()
    def compact(self) -> None:
        self.store.compact("emb")

    @rule()
    def new_version(self) -> None:
        if len(self.versions) == 1:
            define(self.store, self.tmp, 2)
            self.versions.append(2)

    @rule(
        point=st.sampled_from(
            ["replica_after_apply", "replica_before_save", "replica_before_record", "none"]
        ),
        seed=st.integers(0, 10_000),
    )
    def crash(self, point: str, seed: int) -> None:
        """Another process commits and is SIGKILLed before its replica write (or not)."""
        v = self.versions[-1]
        ids = self._pool(v, 2, seed)
        if not ids:
            return
        env = {**os.environ, "AMBERLITE_FAULT": point}
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                CRASH_CHILD,
                str(self.store.root),
                str(v),
                str(seed),
                ",".join(ids),
            ],
            env=env,
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=120,
        )
        if point == "none":
            assert out.returncode == 0 and "survived" in out.stdout, out.stderr
        else:
            assert out.returncode == -9, out.stderr
        assert set(ids) <= set(stored(self.store, key_of(self.store, v)))  # the commit held

    @rule()
    def restart(self) -> None:
        self.store = amberlite.open(self.tmp / "store")

    @invariant()
    def replicas_match(self) -> None:
        if not hasattr(self, "store"):
            return
        for v in self.versions:
            key = key_of(self.store, v)
            if (key, "hnsw") in self.store.replicas._open or self.store.replicas.find(key):
                assert_replica_matches(self.store, key)

    def teardown(self) -> None:
        import shutil

        shutil.rmtree(self.tmp, ignore_errors=True)


ReplicaMachine.TestCase.settings = settings(
    max_examples=6,
    stateful_step_count=8,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestReplicaMachine = ReplicaMachine.TestCase


def test_saves_are_deferred_and_flushed(store, tmp_path, monkeypatch):
    """A commit is searchable at once but the index file is rewritten only when the save
    policy says so; ``status`` and interpreter exit write what is pending."""
    key = key_of(store)
    commit(store, key, rng_rows(1, [f"e{i}" for i in range(10)]))
    store.replicas.add("emb", "hnsw", M=8, ef_construction=40)
    conn = store.replicas._open[(key, "hnsw")]
    saved = conn.saved_file_id()
    assert saved == conn.last_file_id == conn.applied_file_id > 0

    head = commit(store, key, rng_rows(2, ["e10", "e11"]))
    assert conn.applied_file_id > saved and conn.saved_file_id() == saved  # not rewritten
    assert conn.unsaved_rows == 2
    found, _ = conn.search(unit(stored(store, key)["e11"])[None, :], 1, ef=50)
    assert found[0, 0] == "e11"
    (row,) = store.replicas.status()  # flushes first
    assert conn.saved_file_id() == conn.applied_file_id and row["lag_commits"] == 0
    assert row["rows_indexed"] == 12 and head is not None

    # past the row threshold the commit itself saves
    monkeypatch.setattr(type(store.replicas), "SAVE_ROWS", 3)
    commit(store, key, rng_rows(3, ["e12", "e13"]))
    assert conn.saved_file_id() < conn.applied_file_id
    commit(store, key, rng_rows(4, ["e14"]))
    assert conn.saved_file_id() == conn.applied_file_id and conn.unsaved_rows == 0
    # ... and so does an old pending change
    monkeypatch.setattr(type(store.replicas), "SAVE_ROWS", 10_000)
    monkeypatch.setattr(type(store.replicas), "SAVE_INTERVAL_S", 0.0)
    commit(store, key, rng_rows(5, ["e15"]))
    assert conn.saved_file_id() == conn.applied_file_id
    assert len(list(replica_dir(store.root, key).glob("hnsw-*.bin"))) == 1


def test_exit_flushes_pending_saves(store, tmp_path):
    """A process that commits and exits normally leaves the index saved at its commit."""
    key = key_of(store)
    commit(store, key, rng_rows(1, ["e0", "e1"]))
    store.replicas.add("emb", "hnsw", M=8, ef_construction=40)
    out = subprocess.run(
        [sys.executable, "-c", CRASH_CHILD, str(store.root), "1", "3", "e5,e6"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert out.returncode == 0 and "survived" in out.stdout, out.stderr
    (row,) = amberlite.open(store.root).replicas.status()
    assert (row["rows_indexed"], row["rows_stored"], row["lag_commits"]) == (4, 4, 0)


def test_scripted_sequence():
    """A fixed interleaving that covers every kind of step at least once."""
    m = ReplicaMachine()
    try:
        m.setup(seed=1)
        steps = [
            lambda: m.insert(n=3, seed=2, pick=0),
            lambda: m.new_version(),
            lambda: m.insert(n=4, seed=3, pick=1),
            lambda: m.delete(seed=4, pick=0),
            lambda: m.crash(point="replica_before_save", seed=5),
            lambda: m.insert(n=2, seed=6, pick=1),
            lambda: m.compact(),
            lambda: m.crash(point="replica_before_record", seed=7),
            lambda: m.crash(point="replica_after_apply", seed=10),
            lambda: m.restart(),
            lambda: m.delete(seed=8, pick=1),
            lambda: m.insert(n=3, seed=9, pick=0),
        ]
        for step in steps:
            step()
            m.replicas_match()
        keys = {(r["feature"], r["lag_commits"]) for r in m.store.replicas.status()}
        assert keys == {("emb@1", 0), ("emb@2", 0)}
    finally:
        m.teardown()


def test_damaged_index_files_give_a_clear_error(store):
    """A manifest naming a file outside the replica folder, or a missing index file, is
    refused with a ReplicaError that says to rebuild; a rebuild restores the replica."""
    import json

    key = key_of(store)
    commit(store, key, rng_rows(1, [f"e{i}" for i in range(6)]))
    store.replicas.add("emb", "hnsw", M=8, ef_construction=40)
    manifest = replica_dir(store.root, key) / "hnsw.json"
    good = json.loads(manifest.read_text())
    for name in ("../../catalog.duckdb", "hnsw-1-1.bin"):
        manifest.write_text(json.dumps({**good, "index": name}))
        fresh = amberlite.open(store.root)
        with pytest.raises(ReplicaError, match="rebuild"):
            fresh.replicas.connector(key, "hnsw")
    assert amberlite.open(store.root).replicas.rebuild("emb") == 6
    assert_replica_matches(amberlite.open(store.root), key)


# -- integrity ------------------------------------------------------------------------------------
SEARCH_CHILD = textwrap.dedent(
    """
    import json, sys, numpy as np, pyarrow as pa, amberlite
    from amberlite.errors import AmberliteError
    from amberlite.memo.key import memo_key
    from amberlite.search import similarity
    store = amberlite.open(sys.argv[1])
    key = memo_key(store.feature("emb", 1), None)
    # a commit of the replicated feature goes through the replica listener first
    mat = np.full((1, 4), 0.5, np.float32)
    table = pa.table({"entity_id": ["e999"], "asset_id": ["a"],
        "value": pa.FixedSizeListArray.from_arrays(pa.array(mat.reshape(-1)), 4)})
    store.memo.commit(key, store.memo.write_aside(table), 1)
    out = {"explain": similarity.explain_path(store, "emb")}
    try:
        for t in ("e1", "e7", "e20"):
            r = similarity.nearest(store, "emb", t, 5, ef=200, compute=False)
            out[t] = [r.table["id"].to_list(), r.table["score"].to_list(), r.method, r.explain]
        r = similarity.match(store, "emb", 8, compute=False)
        out["match"] = [r.table["id_a"].to_list(), r.table["id_b"].to_list(),
                        r.table["score"].to_list(), r.method, r.explain]
    except AmberliteError as e:
        out["error"] = str(e)
    out["claims"] = store.catalog.query("SELECT count(*) FROM claims")[0][0]
    print(json.dumps(out))
    """
)


def _exact_answers(store) -> dict:
    out = {}
    for t in ("e1", "e7", "e20"):
        r = similarity.nearest(store, "emb", t, 5, compute=False, exact=True)
        out[t] = [r.table["id"].to_list(), r.table["score"].to_list()]
    r = similarity.match(store, "emb", 8, compute=False, exact=True)
    out["match"] = [
        r.table["id_a"].to_list(),
        r.table["id_b"].to_list(),
        r.table["score"].to_list(),
    ]
    return out


def _rewrite_index(store, key, change) -> None:
    """Load the saved index with hnswlib, let ``change(index, labels)`` alter it, save it back
    and record a *valid* size and checksum: only a comparison with the values can tell."""
    import json

    import hnswlib

    from amberlite.connectors.base import file_digest

    d = replica_dir(store.root, key)
    head = json.loads((d / "hnsw.json").read_text())
    index = hnswlib.Index(space="cosine", dim=DIM)
    index.load_index(str(d / head["index"]), max_elements=0)
    change(index, np.array(sorted(index.get_ids_list()), dtype=np.int64))
    index.save_index(str(d / head["index"]))
    head["size"] = (d / head["index"]).stat().st_size
    head["checksum"] = file_digest(d / head["index"])
    (d / "hnsw.json").write_text(json.dumps(head))


def _damage(store, key, kind: str, seed: int) -> None:
    import json

    rng = np.random.default_rng(seed)
    d = replica_dir(store.root, key)
    manifest = d / "hnsw.json"
    head = json.loads(manifest.read_text())
    index_file = d / head["index"]
    data = bytearray(index_file.read_bytes())
    if kind == "flip":
        for off in rng.choice(len(data), size=int(rng.integers(1, 8)), replace=False):
            data[off] ^= int(rng.integers(1, 256))
        index_file.write_bytes(bytes(data))
    elif kind == "truncate":
        index_file.write_bytes(bytes(data[: int(rng.integers(0, len(data)))]))
    elif kind == "delete":
        index_file.unlink()
    elif kind == "manifest":
        manifest.write_text(manifest.read_text()[: int(rng.integers(0, 40))])
    elif kind == "ahead":
        manifest.write_text(json.dumps({**head, "last_file_id": head["last_file_id"] + 5}))
    elif kind == "permute":  # stored vectors moved to other labels (a label swap)

        def permute(index, labels):
            pick = rng.choice(labels, size=int(rng.integers(2, 12)), replace=False)
            index.add_items(index.get_items(pick)[np.roll(np.arange(len(pick)), 1)], pick)

        _rewrite_index(store, key, permute)
    elif kind == "noise":  # wrong vectors under the right labels

        def noise(index, labels):
            pick = rng.choice(labels, size=int(rng.integers(1, 5)), replace=False)
            index.add_items(rng.standard_normal((len(pick), DIM)).astype(np.float32), pick)

        _rewrite_index(store, key, noise)
    else:
        raise AssertionError(kind)


KINDS = ["flip", "truncate", "delete", "manifest", "ahead", "permute", "noise"]


@pytest.mark.parametrize(
    ("kind", "seed"), [(k, s) for k in KINDS for s in range(3 if k in ("flip", "permute") else 1)]
)
def test_a_damaged_replica_never_crashes_nor_answers_differently(store, kind, seed):
    """Flipped bytes, a short or missing file, a broken manifest, a commit id ahead of the
    catalog, vectors moved or replaced inside the index (saved with a valid checksum): a
    process that commits and searches exits cleanly, leaves no claims, and answers exactly
    as the exact search does (or with an error that says to rebuild)."""
    key = key_of(store)
    commit(store, key, rng_rows(seed, [f"e{i}" for i in range(60)]))
    store.replicas.add("emb", "hnsw", M=16, ef_construction=200)
    _damage(store, key, kind, seed)
    out = subprocess.run(
        [sys.executable, "-c", SEARCH_CHILD, str(store.root)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert out.returncode == 0, out.stderr  # a segfault is -11
    import json

    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["claims"] == 0
    assert "damaged" in got["explain"] and "replicate rebuild emb@1" in got["explain"]
    if "error" in got:
        assert "rebuild" in got["error"]
        return
    fresh = amberlite.open(store.root)
    want = _exact_answers(fresh)
    for t in ("e1", "e7", "e20"):
        assert got[t][0] == want[t][0], (t, got[t])
        np.testing.assert_allclose(got[t][1], want[t][1], atol=1e-5)
        assert got[t][2] == "exact" and "damaged" in got[t][3]
    assert got["match"][:2] == want["match"][:2]
    np.testing.assert_allclose(got["match"][2], want["match"][2], atol=1e-5)
    (row,) = fresh.replicas.status()
    assert row["health"] == "damaged" and row["reason"]
    assert not isinstance(next(iter(fresh.replicas.sync().values())), int)
    assert fresh.replicas.rebuild("emb") == 61
    (row,) = amberlite.open(store.root).replicas.status()
    assert (row["health"], row["rows_indexed"], row["lag_commits"]) == ("ok", 61, 0)
    assert_replica_matches(amberlite.open(store.root), key)


def test_damage_found_while_searching_falls_back_and_is_rescored(store):
    """An index that loaded cleanly but disagrees with the stored values (changed in memory
    here) is caught by re-scoring the hits: NEAREST and MATCH answer exactly, say why, and the
    replica stays damaged until rebuilt; healthy hits are re-scored to the exact scores."""
    key = key_of(store)
    commit(store, key, rng_rows(5, [f"e{i}" for i in range(80)]))
    store.replicas.add("emb", "hnsw", M=16, ef_construction=200)
    want = _exact_answers(store)
    healthy = similarity.nearest(store, "emb", "e7", 5, ef=200, compute=False)
    assert healthy.method == "hnsw" and "rescored" in healthy.explain
    assert healthy.table["score"].to_list() == pytest.approx(want["e7"][1], abs=1e-6)

    conn = store.replicas.connector(key, "hnsw")
    near = want["e7"][0][:3]
    conn.index.add_items(conn.vectors(near)[::-1].copy(), [conn.label_of[e] for e in near])
    found = similarity.nearest(store, "emb", "e7", 5, ef=200, compute=False)
    assert found.method == "exact" and "damaged (index vectors differ" in found.explain
    assert found.table["id"].to_list() == want["e7"][0]
    assert "damaged" in similarity.explain_path(store, "emb")
    m = similarity.match(store, "emb", 8, compute=False)
    assert m.method == "exact" and "damaged" in m.explain
    assert m.table["id_a"].to_list() == want["match"][0]
    assert store.replicas.rebuild("emb") == 80
    assert similarity.nearest(store, "emb", "e7", 5, ef=200, compute=False).method == "hnsw"


def test_commits_skip_a_damaged_replica_with_a_warning(store, caplog):
    """The listener skips a damaged replica (a warning), the commit stands; status and sync
    show the damage, the CLI too, and rebuild repairs it."""
    from amberlite.cli import main
    from amberlite.cli.replicate import replicate

    key = key_of(store)
    commit(store, key, rng_rows(6, [f"e{i}" for i in range(30)]))
    store.replicas.add("emb", "hnsw", M=8, ef_construction=40)
    _damage(store, key, "flip", 0)
    fresh = amberlite.open(store.root)
    with caplog.at_level("WARNING", logger="amberlite.connectors.manager"):
        assert commit(fresh, key, rng_rows(7, ["e30"])) is not None
    assert "checksum mismatch" in caplog.text and "e30" in stored(fresh, key)
    (row,) = fresh.replicas.status()
    assert (row["health"], row["reason"]) == ("damaged", "checksum mismatch")
    if "replicate" not in main.commands:
        main.add_command(replicate)
    args = ["--store", str(store.root), "replicate"]
    r = CliRunner().invoke(main, [*args, "status"])
    assert r.exit_code == 0 and "damaged (checksum mismatch)" in r.output
    r = CliRunner().invoke(main, [*args, "sync"])
    assert r.exit_code == 1 and "damaged (checksum mismatch)" in r.output
    assert "rows applied" not in r.output and "replicate rebuild emb@1" in r.output
    r = CliRunner().invoke(main, [*args, "rebuild", "emb"])
    assert r.exit_code == 0 and "31 rows indexed" in r.output
    r = CliRunner().invoke(main, [*args, "sync"])
    assert r.exit_code == 0 and "0 rows applied" in r.output
