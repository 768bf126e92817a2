"""Atomic writes and several writers: real processes, real SIGKILL, real DuckDB and Parquet."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

import amberlite

SLOW = """
import time
import pyarrow as pa
from amberlite import feature

@feature(entity="frame", output=pa.int64(), batch=5, parallel="serial")
def slow_index(frames):
    time.sleep(0.05)
    return [f.n for f in frames]
"""


def _cli(store: Path, *args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "amberlite.cli", "--store", str(store), *args],
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _values(store_path: Path) -> list[tuple[str, int]]:
    st = amberlite.open(store_path)
    return sorted(st.get("slow_index", compute=False).select("id", "slow_index").rows())


@pytest.fixture
def slow_store(store, media_dir, defs):
    store.ingest([media_dir / "clip_a.mp4", media_dir / "clip_b.mp4"])  # 60 + 40 frames
    store.apply(defs(SLOW))
    return store


@pytest.mark.parametrize("point", ["before_rename", "before_commit"])
def test_killed_writer_leaves_nothing_visible(slow_store, point):
    proc = _cli(slow_store.root, "materialize", "slow_index", env={"AMBERLITE_FAULT": point})
    proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL
    reopened = amberlite.open(slow_store.root)
    assert reopened.value_files("slow_index") == []
    assert reopened.get("slow_index", compute=False).height == 0
    # The dead writer's claims are taken over and everything is computed once.
    stats = reopened.materialize("slow_index", progress=False)
    assert stats.computed == 100
    rows = _values(slow_store.root)
    assert len(rows) == 100 == len({r[0] for r in rows})
    reopened.memo.gc()
    on_disk = sorted(Path(slow_store.root, "values").rglob("*.parquet"))
    assert [str(p) for p in on_disk] == sorted(reopened.value_files("slow_index"))


def test_sigkill_at_a_random_moment(slow_store):
    proc = _cli(slow_store.root, "materialize", "slow_index")
    try:
        proc.wait(timeout=2.5)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
    reopened = amberlite.open(slow_store.root)
    partial = reopened.get("slow_index", compute=False)
    assert partial.height == partial["id"].n_unique()
    # Every committed file is whole: row counts in the catalog match the files.
    for path, rows in reopened.catalog.query("SELECT path, rows FROM memo_files"):
        n = (
            duckdb.connect()
            .execute("SELECT count(*) FROM read_parquet(?)", [str(reopened.root / path)])
            .fetchone()[0]
        )
        assert n == rows
    reopened.materialize("slow_index", progress=False)
    assert len(_values(slow_store.root)) == 100


def test_two_processes_materialize_the_same_feature(slow_store):
    procs = [_cli(slow_store.root, "materialize", "slow_index") for _ in range(2)]
    outs = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    rows = _values(slow_store.root)
    assert len(rows) == 100 == len({r[0] for r in rows})
    assert all(eid.endswith(f"/f{n}") for eid, n in rows)
    # Nobody computed a value twice: the runs add up to exactly one computation per entity.
    computed = slow_store.catalog.query(
        "SELECT sum(computed) FROM runs WHERE feature = 'slow_index'"
    )[0][0]
    assert computed == 100
