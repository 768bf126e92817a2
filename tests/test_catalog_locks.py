"""Threads of one process read the catalog concurrently; writers (of this process or another)
still get the file alone, are never starved by readers, and a forked child holds none of its
parent's locks."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

from amberlite.catalog import Catalog, locks
from amberlite.errors import StoreError


def value(cat: Catalog) -> str | None:
    with cat.read() as con:
        row = con.execute("SELECT value FROM meta WHERE key = 'k'").fetchone()
    return row[0] if row else None


def test_threads_read_at_once_and_a_writer_goes_before_later_readers(tmp_path):
    cat = Catalog(tmp_path)
    inside = threading.Barrier(4, timeout=30)  # all four inside a read at the same time
    seen: list = []

    def reader() -> None:
        with cat.read() as con:
            inside.wait()
            seen.append(con.execute("SELECT count(*) FROM meta").fetchone()[0])

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert seen == [1, 1, 1, 1]

    # A writer waits for the read in progress; a read that starts after it sees its write.
    holding, wrote, late = threading.Event(), [], []
    release = threading.Event()

    def long_read() -> None:
        with cat.read():
            holding.set()
            release.wait(30)

    def writer() -> None:
        with cat.write() as con:
            con.execute("INSERT INTO meta VALUES ('k', 'v1')")
        wrote.append(True)

    first = threading.Thread(target=long_read)
    first.start()
    holding.wait(30)
    w = threading.Thread(target=writer)
    w.start()
    while not locks.file_lock(cat.path, cat.lock_path, cat.intent_path).writers_waiting:
        threading.Event().wait(0.01)
    r = threading.Thread(target=lambda: late.append(value(cat)))
    r.start()
    r.join(timeout=0.3)
    assert r.is_alive() and not wrote  # the late reader queues behind the waiting writer
    release.set()
    for t in (first, w, r):
        t.join(timeout=60)
    assert wrote == [True] and late == ["v1"]


def test_nested_write_in_a_read_is_an_error_not_a_deadlock(tmp_path):
    cat = Catalog(tmp_path)
    with cat.read(), pytest.raises(StoreError, match="inside a read"):
        with cat.write():
            pass
    with cat.write() as con, pytest.raises(StoreError, match="inside a write"):
        with cat.read():
            pass
        con.execute("SELECT 1")


WRITER = """
import sys
from amberlite.catalog import Catalog, locks
locks.LOCK_TIMEOUT_S = 30  # starved past this: an error, exit status 1
cat = Catalog(sys.argv[1])
for i in range(3):
    with cat.write() as con:
        con.execute("INSERT OR REPLACE INTO meta VALUES ('k', ?)", [f"w{i}"])
"""


def test_readers_reading_without_pause_do_not_starve_another_process_writer(tmp_path):
    cat = Catalog(tmp_path)
    stop = threading.Event()
    seen: set = set()

    def reader() -> None:  # overlapping reads: the process's read session never drains alone
        while not stop.is_set():
            seen.add(value(cat))

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        child = subprocess.run(
            [sys.executable, "-c", WRITER, str(tmp_path)], capture_output=True, timeout=120
        )
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert child.returncode == 0, child.stderr.decode()[-2000:]
    assert value(cat) == "w2" and None in seen


def test_a_forked_child_holds_none_of_its_parents_locks(tmp_path, monkeypatch):
    cat = Catalog(tmp_path)
    monkeypatch.setattr(locks, "LOCK_TIMEOUT_S", 10)
    go_read, go = os.pipe()
    with cat.read():
        pid = os.fork()
        if pid == 0:  # the child waits for the parent's write, then exits
            os.close(go)
            os.read(go_read, 1)
            os._exit(0)
    try:
        with cat.write() as con:  # needs the child to hold no copy of the shared lock
            con.execute("INSERT INTO meta VALUES ('k', 'v')")
    finally:
        os.write(go, b"x")
        os.waitpid(pid, 0)
    assert value(cat) == "v"


STREAM = """
import sys
from pathlib import Path
from amberlite.catalog import Catalog
cat = Catalog(sys.argv[1])
for i in range(1, 21):  # back-to-back writes: the catalog is free only between two of them
    with cat.write() as con:
        con.execute("INSERT OR REPLACE INTO meta VALUES ('k', ?)", [str(i)])
    if i == 1:
        Path(sys.argv[2]).touch()
"""


def test_writes_back_to_back_do_not_starve_readers(tmp_path):
    """A reader gets in between two writes of a stream, in this process and from another."""
    cat = Catalog(tmp_path)
    first = threading.Event()

    def stream() -> None:  # this process: two threads queue 10 writes each
        for _ in range(10):
            with cat.write() as con:
                con.execute(
                    "INSERT OR REPLACE INTO meta SELECT 'k', (coalesce(max(value::INT), 0) + 1)"
                    "::TEXT FROM meta WHERE key = 'k'"
                )
            first.set()

    writers = [threading.Thread(target=stream) for _ in range(2)]
    for t in writers:
        t.start()
    first.wait(60)
    seen = value(cat)  # waits for one write at most, not for the stream to end
    for t in writers:
        t.join(timeout=120)
    assert value(cat) == "20" and seen is not None and int(seen) < 20

    started = tmp_path / "started"
    child = subprocess.Popen([sys.executable, "-c", STREAM, str(tmp_path), str(started)])
    try:
        while not started.exists() and child.poll() is None:
            threading.Event().wait(0.01)
        seen = value(cat)  # read while the other process writes back to back
    finally:
        child.wait(timeout=120)
    assert child.returncode == 0
    assert seen is not None and int(seen) < 20  # in the middle of the stream
