"""Several processes share one materialization; forked workers that die fail their batch only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pytest

import amberlite
from amberlite.define.decorators import FeatureSpec
from amberlite.run.resolve import CLAIM_BATCHES, CLAIM_SHARE, claim_size

# 100 frames, batches of 2: a claim takes CLAIM_BATCHES x 2 workers x 2 = 8 frames, so two
# processes alternate over a dozen claims. Sleeping (not burning CPU) makes the test's
# timing independent of the machine's load: 2.5 s for one process alone.
SHARED = """
import time
import pyarrow as pa
from amberlite import feature

@feature(entity="frame", output=pa.int64(), batch=2, parallel="serial")
def shared_index(frames):
    time.sleep(0.05)
    return [f.n for f in frames]
"""

CHILD = """
import json, sys, time
from pathlib import Path
import amberlite
from amberlite.run.executor import LocalExecutor
root, me = Path(sys.argv[1]), sys.argv[2]
store = amberlite.open(root / "store")
store.feature("shared_index")
(root / f"ready-{me}").touch()
deadline = time.monotonic() + 60
while not (root / "go").exists() and time.monotonic() < deadline:
    time.sleep(0.01)
s = store.materialize("shared_index", executor=LocalExecutor(2), progress=False)
print(json.dumps({"requested": s.requested, "stored": s.stored, "computed": s.computed,
                  "failed": s.failed}))
"""


def test_claim_size_is_a_few_batches_per_worker():
    spec = FeatureSpec("f", len, "frame", 1, pa.int64(), batch=2)
    chunk = CLAIM_BATCHES * 2 * 2  # batches of 2, two workers
    assert claim_size(spec, 2, 40) == chunk
    assert claim_size(spec, 2, 10**6) == 10**6 // CLAIM_SHARE  # large scopes: fewer claims
    assert claim_size(spec, 2, 2 * chunk - 2) == chunk - 1  # the end: half of what is left
    assert claim_size(spec, 2, 3) == 4  # one batch per worker at least
    # One process claiming a scope to its end: a few claims, every entity once.
    left, sizes = 1000, []
    while left:
        sizes.append(min(left, claim_size(spec, 2, left)))
        left -= sizes[-1]
    assert sum(sizes) == 1000 and len(sizes) == 30 and sizes[0] == 125


def test_two_processes_share_the_work(store, media_dir, defs, tmp_path):
    store.ingest([media_dir / "clip_a.mp4", media_dir / "clip_b.mp4"])  # 60 + 40 frames
    store.apply(defs(SHARED))
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(tmp_path), str(i)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    deadline = time.monotonic() + 60
    while not all((tmp_path / f"ready-{i}").exists() for i in range(2)):
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs)
        time.sleep(0.01)
    (tmp_path / "go").touch()
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    stats = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    # Both did a substantial share, nobody computed a value twice, nothing is missing.
    assert all(s["computed"] >= 25 for s in stats), stats
    assert sum(s["computed"] for s in stats) == 100, stats
    assert all(s["requested"] == 100 and s["failed"] == 0 for s in stats), stats
    values = amberlite.open(store.root).get("shared_index", compute=False)
    assert values.height == 100 == values["id"].n_unique()
    runs = store.catalog.query(
        "SELECT count(*), sum(computed) FROM runs WHERE feature = 'shared_index'"
    )
    assert runs == [(2, 100)]
    assert store.catalog.query("SELECT count(*) FROM claims") == [(0,)]


def test_retry_failed_tries_each_failure_once(store, media_dir, defs):
    store.ingest([media_dir / "clip_a.mp4"])
    store.apply(
        defs("""
import pyarrow as pa
from amberlite import feature

@feature(entity="frame", output=pa.int64())
def every_tenth_fails(frame):
    if frame.n % 10 == 0:
        raise RuntimeError("still broken")
    return frame.n
""")
    )
    first = store.materialize("every_tenth_fails", progress=False)
    assert (first.computed, first.failed) == (54, 6)
    # A failure that persists is tried once per run, not again and again.
    again = store.materialize("every_tenth_fails", retry_failed=True, progress=False)
    assert (again.stored, again.computed, again.failed) == (54, 0, 6)
    attempts = store.catalog.query("SELECT DISTINCT attempts FROM failures")
    assert attempts == [(2,)]


# -- forked workers that die --------------------------------------------------------------------

DIES = """
import os
import pyarrow as pa
from amberlite import feature

@feature(entity="frame", output=pa.int64(), batch=4, parallel="process")
def dies_on_seven(frames):
    for f in frames:
        if f.n == 7:
            os._exit(3)
    return [f.n for f in frames]
"""


def test_worker_death_fails_its_batch_and_the_run_goes_on(store, media_dir, defs):
    store.ingest([media_dir / "clip_a.mp4"])  # 60 frames, 15 batches of 4
    store.apply(defs(DIES))
    stats = store.materialize("dies_on_seven", progress=False)
    # The batch of frame 7 (up to 4 frames: the last claims are smaller) failed after a
    # second try in a fresh worker, and only it; every other batch is stored.
    failed_ids = [e for (e,) in store.catalog.query("SELECT entity_id FROM failures")]
    assert 1 <= stats.failed == len(failed_ids) <= 4 and stats.computed == 60 - stats.failed
    assert any(e.endswith("/f7") for e in failed_ids)
    fails = store.failures("dies_on_seven")
    assert all(
        "worker process died (exit code 3) while computing this batch" in e for e in fails["error"]
    )
    assert store.get("dies_on_seven", compute=False).height == stats.computed
    runs = store.catalog.query("SELECT computed, failed FROM runs WHERE feature = 'dies_on_seven'")
    assert runs == [(stats.computed, stats.failed)]
    assert store.catalog.query("SELECT count(*) FROM claims") == [(0,)]
    # A rerun skips the recorded failures and computes nothing twice.
    rerun = store.materialize("dies_on_seven", progress=False)
    assert (rerun.stored, rerun.computed, rerun.failed) == (stats.computed, 0, 0)
    assert rerun.skipped_failed == stats.failed


def test_a_transient_worker_death_recovers(store, media_dir, defs, tmp_path):
    marker = tmp_path / "died-once"
    store.ingest([media_dir / "clip_a.mp4"])
    store.apply(
        defs(f"""
import os
import pathlib
import pyarrow as pa
from amberlite import feature

@feature(entity="frame", output=pa.int64(), batch=4, parallel="process")
def dies_once(frames):
    marker = pathlib.Path({str(marker)!r})
    if any(f.n == 7 for f in frames) and not marker.exists():
        marker.touch()
        os._exit(9)
    return [f.n for f in frames]
""")
    )
    stats = store.materialize("dies_once", progress=False)
    assert marker.exists()
    assert (stats.computed, stats.failed) == (60, 0)
    values = store.get("dies_once", compute=False)
    assert values.height == 60 == values["id"].n_unique()
    assert store.failures("dies_once").height == 0


def test_a_killed_worker_reports_its_signal(store, media_dir, defs):
    store.ingest([media_dir / "clip_b.mp4"])
    store.apply(
        defs("""
import os
import signal
import pyarrow as pa
from amberlite import feature

@feature(entity="asset", output=pa.int64(), parallel="process")
def killed(asset):
    os.kill(os.getpid(), signal.SIGKILL)
""")
    )
    stats = store.materialize("killed", progress=False)
    assert (stats.computed, stats.failed) == (0, 1)
    (error,) = store.failures("killed")["error"].to_list()
    assert error.startswith("worker process died (exit code -9, SIGKILL)"), error


@pytest.mark.parametrize("workers", [1, 3])
def test_forked_workers_compute_everything_once(store, media_dir, defs, workers):
    from amberlite.run.executor import LocalExecutor

    store.ingest([media_dir / "clip_a.mp4", media_dir / "clip_b.mp4"])
    store.apply(
        defs("""
import os
import pyarrow as pa
from amberlite import feature

@feature(entity="frame", output=pa.int64(), batch=3, parallel="process")
def pid_of(frames):
    return [os.getpid()] * len(frames)
""")
    )
    stats = store.materialize("pid_of", executor=LocalExecutor(workers), progress=False)
    assert (stats.computed, stats.failed) == (100, 0)
    values = store.get("pid_of", compute=False)
    assert values.height == 100 == values["id"].n_unique()
    assert os.getpid() not in set(values["pid_of"])  # computed in forked workers only
    assert Path(store.root).exists()
