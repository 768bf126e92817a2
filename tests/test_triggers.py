"""Triggers: watch ingests new media and runs on_ingest features (renames and touches do
nothing); backfill computes a new version over the assets of the old one, resumably."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import small_clip

from amberlite.errors import MediaError, ResolveError
from amberlite.triggers import Watcher

ON_INGEST = """
import pyarrow as pa
from amberlite import feature

@feature(entity="asset", output=pa.int64(), on_ingest=True)
def n_frames(asset):
    return asset.record.frame_count

@feature(entity="asset", output=pa.int64())
def not_on_ingest(asset):
    return 1
"""


def _trigger_rows(store):
    return store.catalog.query(
        "SELECT trigger_id, kind, state, assets, computed, failed, reason FROM triggers "
        "ORDER BY trigger_id"
    )


def test_watch_new_renamed_touched_changed(store, media_dir, defs, tmp_path):
    store.apply(defs(ON_INGEST))
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    shutil.copy(media_dir / "clip_a.mp4", inbox / "a.mp4")
    (inbox / "readme.txt").write_text("not media, not matched")
    cycles = store.watch(inbox, once=True)
    assert len(cycles) == 1 and cycles[0].trigger_id == 1
    assert cycles[0].new_assets == ["a"]
    assert store.get("n_frames", compute=False)["n_frames"].to_list() == [60]
    assert store.get("not_on_ingest", compute=False).height == 0
    runs = store.status()["runs"]
    assert runs.filter(runs["feature"] == "n_frames@1")["trigger"].to_list() == ["watch#1"]
    (row,) = _trigger_rows(store)
    assert row[1:6] == ("watch", "done", 1, 1, 0) and "a.mp4" in row[6]
    assert store.status()["triggers"]["trigger_id"].to_list() == [1]

    # Renamed, then touched without changing bytes: the path follows, nothing is computed.
    (inbox / "a.mp4").rename(inbox / "renamed.mp4")
    (cycle,) = store.watch(inbox, once=True)
    assert cycle.trigger_id is None and cycle.moved == [str(inbox / "renamed.mp4")]
    assert store.assets()["path"].to_list() == [str(inbox / "renamed.mp4")]
    future = time.time() + 100
    os.utime(inbox / "renamed.mp4", (future, future))
    assert store.watch(inbox, once=True) == []
    assert len(_trigger_rows(store)) == 1 and store.status()["runs"].height == 1

    # New bytes under the old name are a new asset; an unreadable file fails alone.
    small_clip(inbox / "renamed.mp4", seed=3, scenes=1, frames=12)
    (inbox / "junk.mp4").write_text("not a video")
    (cycle,) = store.watch(inbox, once=True)
    assert cycle.trigger_id == 2 and len(cycle.new_assets) == 1
    assert [Path(p).name for p, _ in cycle.failures] == ["junk.mp4"]
    assert sorted(store.get("n_frames", compute=False)["n_frames"].to_list()) == [12, 60]
    assert _trigger_rows(store)[1][1:6] == ("watch", "done", 1, 1, 1)


def test_watcher_waits_for_a_file_to_settle(store, media_dir, defs, tmp_path):
    store.apply(defs(ON_INGEST))
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    watcher = Watcher(store, inbox)
    shutil.copy(media_dir / "clip_b.mp4", inbox / "b.mp4")
    assert not watcher.poll().active  # seen once: may still be copying
    cycle = watcher.poll()
    assert cycle.new_assets == ["b"] and cycle.trigger_id == 1
    assert not watcher.poll().active  # handled: nothing more
    # A restarted watcher does not re-hash files the catalog already has at that path.
    assert str(inbox / "b.mp4") in Watcher(store, inbox).handled


def test_watch_bad_input(store, tmp_path):
    with pytest.raises(MediaError, match="not a folder"):
        store.watch(tmp_path / "missing", once=True)
    with pytest.raises(ResolveError, match="interval"):
        store.watch(tmp_path, interval=0)


FRAMING_V1 = """
import pyarrow as pa
from amberlite import feature

@feature(entity="frame", version=1, output=pa.int64())
def framing(frame):
    return frame.n
"""

FRAMING_V2 = """
import time
import pyarrow as pa
from amberlite import feature

@feature(entity="frame", version=2, output=pa.int64())
def framing(frame):
    time.sleep(0.04)
    return frame.n * 2
"""


def _rows(store, version: int) -> int:
    got = store.catalog.query(
        """SELECT coalesce(sum(rows), 0) FROM memo_files WHERE feature = 'framing'
           AND version = ?""",
        [version],
    )
    return int(got[0][0])


def test_backfill_resumes_after_kill(store, media_dir, defs, tmp_path):
    store.ingest([media_dir / "clip_a.mp4", media_dir / "clip_b.mp4"])
    store.apply(defs(FRAMING_V1, "v1.py"))
    store.materialize("framing")
    other = small_clip(tmp_path / "late.mp4", seed=4, scenes=1, frames=10)
    store.ingest([other])  # never had v1: the backfill leaves it alone
    store.apply(defs(FRAMING_V2, "v2.py"))

    code = (
        "import amberlite; "
        f"amberlite.open({str(store.root)!r}).backfill('framing@2', chunk=1, progress=False)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.monotonic() + 60
        while _rows(store, 2) < 20 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert proc.poll() is None, "backfill finished before it could be interrupted"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    done_before = _rows(store, 2)
    assert 20 <= done_before < 100
    assert _trigger_rows(store)[0][1:3] == ("backfill", "running")

    report = store.backfill("framing@2", chunk=1, progress=False)
    assert report.resumed == [1] and report.from_versions == [1] and report.assets == 2
    assert (report.requested, report.already_stored) == (100, done_before)
    assert report.computed == 100 - done_before and report.failed == 0
    values = store.get("framing", version=2, compute=False)
    assert values.height == 100 and values["id"].n_unique() == 100
    assert (values["framing"] == values["id"].str.extract(r"/f(\d+)$").cast(int) * 2).all()
    states = [r[2] for r in _trigger_rows(store)]
    assert states == ["interrupted", "done"]
    assert "resumes #1" in _trigger_rows(store)[1][6]
    # Nothing left: a third run records nothing new to compute.
    again = store.backfill("framing@2", progress=False)
    assert again.computed == 0 and again.already_stored == 100


def test_backfill_bad_input(store, media_dir, defs):
    store.ingest([media_dir / "clip_b.mp4"])
    store.apply(defs(FRAMING_V1, "v1.py"))
    assert store.backfill("framing", progress=False).trigger_id is None  # no older version
    store.apply(defs(FRAMING_V2, "v2.py"))
    with pytest.raises(ResolveError, match="no version 3"):
        store.backfill("framing@2", from_version=3)
    with pytest.raises(ResolveError, match="unknown feature"):
        store.backfill("framin@2")
    assert store.backfill("framing@2", progress=False).trigger_id is None  # v1 never computed
