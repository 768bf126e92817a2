"""How threads and processes share one catalog file.

DuckDB lets one process at a time open a database file for writing, and refuses, within one
process, a read-write connection while a read-only one is open (and the reverse). So:

- **Across processes**: an ``fcntl`` lock on ``catalog.lock``, shared for readers, exclusive
  for writers. A writer first takes ``catalog.intent`` exclusively; readers pass through
  ``catalog.intent`` (shared) before taking ``catalog.lock``, and a process whose readers are
  reading stops admitting new ones while another process holds ``catalog.intent``: readers
  never starve a writer.
- **Within a process**: a readers-writer lock per catalog file (writers first). Concurrent
  readers share one *session*: one shared ``fcntl`` lock and one read-only DuckDB database,
  opened by the first reader and closed by the last; each read is a cursor of it (a cursor
  costs about a millisecond, opening the database tens). A writer waits for the session to
  end and holds the file alone.

A forked child closes its copies of the lock descriptors (the parent keeps its locks) and
starts with no session.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from pathlib import Path

import duckdb

from amberlite.errors import StoreError

LOCK_TIMEOUT_S = 120.0
_POLL_S = 0.005


def flock(path: Path, exclusive: bool, what: str, timeout: float | None = None) -> int:
    """An open descriptor of ``path`` holding an ``fcntl`` lock (closing it releases the
    lock); waits at most ``timeout`` seconds (``LOCK_TIMEOUT_S``)."""
    timeout = LOCK_TIMEOUT_S if timeout is None else timeout
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise StoreError(
                        f"{what}: catalog locked by another process for more than {timeout:.0f} s"
                    ) from None
                time.sleep(_POLL_S)
    except BaseException:
        os.close(fd)
        raise


def writer_waiting(intent_path: Path) -> bool:
    """True while a process holds (or waits for) the write lock: its intent is taken."""
    fd = os.open(intent_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


class Session:
    """What concurrent readers of one process share: the shared file lock and one read-only
    database connection (each read takes a cursor of it)."""

    def __init__(self, fd: int, con: duckdb.DuckDBPyConnection) -> None:
        self.fd, self.con = fd, con

    def close(self) -> None:
        try:
            self.con.close()
        finally:
            os.close(self.fd)


class FileLock:
    """The readers-writer lock of one catalog file within this process (writers first), with
    the cross-process protocol of the module docstring. Get it with :func:`file_lock`."""

    def __init__(self, db_path: Path, lock_path: Path, intent_path: Path) -> None:
        self.db_path, self.lock_path, self.intent_path = db_path, lock_path, intent_path
        self._reset()

    def _reset(self) -> None:
        self.cond = threading.Condition(threading.Lock())
        self.readers = 0  # threads reading (each counted once, however nested)
        self.writing = False
        self.writers_waiting = 0
        self.opening = False  # a reader is opening the session
        self.session: Session | None = None
        self.local = threading.local()  # depth: this thread's nested reads; writing: bool

    # -- readers ------------------------------------------------------------------------------
    def acquire_read(self) -> Session:
        """Join (or open) the process's read session; pair with :meth:`release_read`."""
        local = self.local
        if getattr(local, "writing", False):
            raise StoreError(
                f"{self.db_path}: a catalog read inside a write transaction of the same "
                "thread (read through the write's connection)"
            )
        depth = getattr(local, "depth", 0)
        if depth:  # a nested read of a thread already reading: never waits (no deadlock)
            local.depth = depth + 1
            assert self.session is not None
            return self.session
        with self.cond:
            while True:
                if self.writing or self.writers_waiting or self.opening:
                    self.cond.wait()
                elif self.session is not None:
                    if not writer_waiting(self.intent_path):
                        break
                    self.cond.wait(_POLL_S)  # another process writes next: let it drain
                else:
                    self.opening = True
                    break
            if not self.opening:
                self.readers += 1
                local.depth = 1
                return self.session
        try:
            session = self._open_session()
        except BaseException:
            with self.cond:
                self.opening = False
                self.cond.notify_all()
            raise
        with self.cond:
            self.session, self.opening = session, False
            self.readers += 1
            local.depth = 1
            self.cond.notify_all()
            return session

    def _open_session(self) -> Session:
        what = str(self.db_path)
        intent = flock(self.intent_path, False, what)  # waits while a writer intends
        try:
            fd = flock(self.lock_path, False, what)
        finally:
            os.close(intent)
        try:
            return Session(fd, duckdb.connect(str(self.db_path), read_only=True))
        except BaseException:
            os.close(fd)
            raise

    def release_read(self) -> None:
        local = self.local
        local.depth -= 1
        if local.depth:
            return
        with self.cond:
            self.readers -= 1
            if self.readers == 0 and self.session is not None:
                session, self.session = self.session, None
                try:
                    session.close()
                finally:
                    self.cond.notify_all()

    # -- writers ------------------------------------------------------------------------------
    def acquire_write(self) -> tuple[int, int]:
        """Hold the file alone (in this process, then across processes); returns the two
        descriptors to pass to :meth:`release_write`."""
        local = self.local
        if getattr(local, "depth", 0) or getattr(local, "writing", False):
            raise StoreError(
                f"{self.db_path}: a catalog write inside a read or write transaction of the "
                "same thread"
            )
        with self.cond:
            self.writers_waiting += 1
            try:
                while self.writing or self.readers or self.opening:
                    self.cond.wait()
            finally:
                self.writers_waiting -= 1
            self.writing = True
        try:
            what = str(self.db_path)
            intent = flock(self.intent_path, True, what)
            try:
                fd = flock(self.lock_path, True, what)
            except BaseException:
                os.close(intent)
                raise
        except BaseException:
            self._end_write()
            raise
        local.writing = True
        return intent, fd

    def release_write(self, fds: tuple[int, int]) -> None:
        intent, fd = fds
        try:
            os.close(fd)
        finally:
            os.close(intent)
            self.local.writing = False
            self._end_write()

    def _end_write(self) -> None:
        with self.cond:
            self.writing = False
            self.cond.notify_all()

    def _after_fork_in_child(self) -> None:
        """The child keeps no lock of its parent: close its copies of the descriptors (the
        parent's locks stay held by the parent's) and start with no session or waiters."""
        session = self.session
        if session is not None:
            try:
                os.close(session.fd)
            except OSError:
                pass
        self._reset()


_LOCKS: dict[str, FileLock] = {}
_LOCKS_GUARD = threading.Lock()


def file_lock(db_path: Path, lock_path: Path, intent_path: Path) -> FileLock:
    """The one :class:`FileLock` of a catalog file in this process (every ``Catalog`` of the
    same file shares it: DuckDB's own limits are per file and process)."""
    key = os.path.realpath(db_path)
    with _LOCKS_GUARD:
        found = _LOCKS.get(key)
        if found is None:
            found = _LOCKS[key] = FileLock(db_path, lock_path, intent_path)
        return found


def _after_fork_in_child() -> None:
    global _LOCKS_GUARD
    _LOCKS_GUARD = threading.Lock()
    for lock in _LOCKS.values():
        lock._after_fork_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)
