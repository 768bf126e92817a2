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


def test_group_commit_batches_waiting_callers_and_isolates_a_bad_one():
    import threading

    from amberlite.serve.app import GroupCommit

    calls: list[list[int]] = []
    gate = threading.Event()

    def commit(items: list[int]) -> list[int]:
        calls.append(list(items))
        if len(calls) == 1:
            gate.wait(30)  # the first batch commits slowly: the others queue meanwhile
        if any(i < 0 for i in items):
            raise ValueError(f"bad {min(items)}")
        return [10 * i for i in items]

    group = GroupCommit(commit)
    results: dict[int, object] = {}

    def call(i: int) -> None:
        try:
            results[i] = group.submit(i)
        except ValueError as e:
            results[i] = str(e)

    first = threading.Thread(target=call, args=(0,))
    first.start()
    while not calls:
        threading.Event().wait(0.01)
    others = [threading.Thread(target=call, args=(i,)) for i in (1, 2, -3, 4)]
    for t in others:
        t.start()
    while len(group.pending) < 4:
        threading.Event().wait(0.01)
    gate.set()
    for t in [first, *others]:
        t.join(timeout=30)
    assert results == {0: 0, 1: 10, 2: 20, -3: "bad -3", 4: 40}
    assert calls[0] == [0] and sorted(calls[1]) == [-3, 1, 2, 4]  # one batch, then one each
    assert sorted(map(tuple, calls[2:])) == [(-3,), (1,), (2,), (4,)]


def test_concurrent_annotation_posts_are_each_stored_once(server, served_store):
    import json
    import threading

    import amberlite

    answers: list[tuple[int, dict]] = []

    def post(i: int) -> None:
        asset = "film2" if i else "no-such-film"
        note = {"asset": asset, "start_s": 0.1, "end_s": 0.2, "text": f"group-{i}", "author": "g"}
        status, _, data = server.request("POST", "/v1/annotations", note)
        answers.append((status, json.loads(data)))

    threads = [threading.Thread(target=post, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    good = sorted(a["text"] for s, a in answers if s == 201)
    assert good == [f"group-{i}" for i in range(1, 8)]
    assert [s for s, a in answers if s != 201] and all(
        400 <= s < 500 and "no-such-film" in a["error"] for s, a in answers if s != 201
    )
    stored = [
        a["text"]
        for a in amberlite.open(served_store).annotations.list("comment")
        if (a["text"] or "").startswith("group-")
    ]
    assert sorted(stored) == good
