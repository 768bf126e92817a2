"""The server's answer cache across processes: a cached answer survives commits (by another
process) that cannot change it, is recomputed on the very next request after one that can,
and a writer killed between journaling and committing only costs a recomputation."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from amberlite.catalog.changes import annotations_key
from tests.serve_support import Server, served_store, server  # noqa: F401

TICK = '''
import pyarrow as pa
from amberlite import feature


@feature(entity="frame", output=pa.int64(), batch=64)
def tick(frames):
    """n: a cheap frame feature that commits values no test query reads."""
    return [f.n for f in frames]
'''
SHOTS = {"aql": "SELECT ref, start_s FROM shots WHERE asset = $film ORDER BY index",
         "params": {"film": "film1"}}  # fmt: skip
NOTES = {"aql": "SELECT a.text FROM annotations('comment') a OF 'film1' ORDER BY a.text"}


def cache_of(server: Server, body: dict) -> tuple[str, list]:
    """(hit | miss, rows) of one request."""
    import json

    status, headers, data = server.request("POST", "/v1/query", body)
    assert status == 200, data
    return headers["x-amberlite-cache"], json.loads(data)["rows"]


def test_cached_answers_follow_only_the_commits_they_depend_on(server, served_store, tmp_path):
    import amberlite

    store = amberlite.open(served_store)  # this test process writes; the server reads
    (tmp_path / "tick.py").write_text(TICK)
    store.apply(tmp_path / "tick.py")  # an undeclared change: drops every cached answer
    shots = cache_of(server, SHOTS)[1]
    notes = cache_of(server, NOTES)[1]
    assert cache_of(server, SHOTS) == ("hit", shots)
    assert cache_of(server, NOTES) == ("hit", notes)

    # another feature's values, another annotation type: neither answer is recomputed
    store.materialize("tick", assets=["film1"], progress=False)
    store.annotations.add("subtitles", "film1", 0.0, 0.5, text="cache-other", author="t")
    assert cache_of(server, SHOTS) == ("hit", shots)
    assert cache_of(server, NOTES) == ("hit", notes)

    # a comment on film1 changes NOTES: the very next request sees it; SHOTS is kept
    store.annotations.add("comment", "film1", 0.0, 0.5, text="cache-fresh", author="t")
    state, rows = cache_of(server, NOTES)
    assert state == "miss" and ["cache-fresh"] in rows and len(rows) == len(notes) + 1
    assert cache_of(server, NOTES) == ("hit", rows)
    assert cache_of(server, SHOTS) == ("hit", shots)

    # a write that fails in its body is rolled back before journaling: nothing to recompute
    with pytest.raises(RuntimeError), store.catalog.write(touches=annotations_key("comment")):
        raise RuntimeError("abandoned")
    assert cache_of(server, NOTES) == ("hit", rows)

    # a writer killed after journaling, before its commit: one extra recomputation, the same
    # answer (nothing was committed), and the store takes writes as before
    crash = (
        "import amberlite, sys; s = amberlite.open(sys.argv[1]); "
        "s.annotations.add('comment', 'film1', 0.0, 0.5, text='cache-ghost', author='t')"
    )
    env = {**Server.env(), "AMBERLITE_FAULT": "catalog_before_commit"}
    died = subprocess.run([sys.executable, "-c", crash, str(served_store)], env=env, timeout=120)
    assert died.returncode == -9
    assert cache_of(server, NOTES) == ("miss", rows)
    assert cache_of(server, NOTES) == ("hit", rows)
    store.annotations.add("comment", "film1", 0.0, 0.5, text="cache-after", author="t")
    assert ["cache-after"] in cache_of(server, NOTES)[1]


def test_a_journal_replaced_by_compaction_drops_every_answer(tmp_path, monkeypatch):
    from amberlite.catalog import Catalog, changes

    cat = Catalog(tmp_path)
    journal = changes.Journal(cat.changes_path)
    at = journal.position()
    with cat.write(touches=("feature:a",)):
        pass
    assert journal.changed_since(at, {"feature:a"}) and not journal.changed_since(at, {"x"})
    at = journal.position()
    monkeypatch.setattr(changes, "COMPACT_BYTES", 0)  # the next write starts a new epoch
    with cat.write(touches=("feature:a",)):
        pass
    assert os.path.getsize(cat.changes_path) < 100
    assert journal.changed_since(at, {"x"})  # unknown: everything changed
    monkeypatch.undo()
    at = journal.position()
    assert not journal.changed_since(at, {"x"})
    with cat.write(touches=()):  # a write no answer reads
        pass
    with cat.write():  # undeclared: everything
        pass
    assert journal.changed_since(at, {"x"})
