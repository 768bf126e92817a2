"""How threads and processes share one catalog file.

DuckDB lets one process at a time open a database file for writing, and refuses, within one
process, a read-write connection while a read-only one is open (and the reverse). So:

- **Across processes**: an ``fcntl`` lock on ``catalog.lock``, shared for readers, exclusive
  for writers. A writer first takes ``catalog.intent`` exclusively; readers pass through
  ``catalog.intent`` (shared) before taking ``catalog.lock``, and a process whose readers are
  reading stops admitting new ones while another process holds ``catalog.intent``: readers
  never starve a writer. A reader kept waiting at ``catalog.intent`` holds ``catalog.readers``
  (shared) and writers about to take their intent let it go first (for up to a second):
  writers never starve a reader either.
- **Within a process**: a phase-fair readers-writer lock per catalog file: a waiting writer
  goes before readers that arrive after it, and the readers waiting when a write ends go
  before the next writer. Concurrent readers share one *session*: one shared ``fcntl`` lock
  and one read-only DuckDB database, opened by the first reader and closed by the last; each
  read is a cursor of it (a cursor costs about a millisecond, opening the database tens). A
  writer waits for the session to end and holds the file alone.

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
READER_TURN_S = 0.02  # a reader kept waiting this long by writers asks for its turn
READER_TURN_MAX_S = 1.0  # how long a writer lets waiting readers of other processes go first
_POLL_S = 0.005


def try_flock(path: Path, exclusive: bool) -> int | None:
    """An open descriptor of ``path`` holding an ``fcntl`` lock, or None when it is taken."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        return fd
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise


def flock(path: Path, exclusive: bool, what: str, timeout: float | None = None) -> int:
    """An open descriptor of ``path`` holding an ``fcntl`` lock (closing it releases the
    lock); waits at most ``timeout`` seconds (``LOCK_TIMEOUT_S``)."""
    timeout = LOCK_TIMEOUT_S if timeout is None else timeout
    deadline = time.monotonic() + timeout
    while True:
        fd = try_flock(path, exclusive)
        if fd is not None:
            return fd
        if time.monotonic() > deadline:
            raise StoreError(
                f"{what}: catalog locked by another process for more than {timeout:.0f} s"
            )
        time.sleep(_POLL_S)


def taken(path: Path, exclusive: bool) -> bool:
    """True when ``path``'s lock is held so that this mode cannot take it now."""
    fd = try_flock(path, exclusive)
    if fd is None:
        return True
    os.close(fd)
    return False


def writer_waiting(intent_path: Path) -> bool:
    """True while a process holds (or waits for) the write lock: its intent is taken."""
    return taken(intent_path, exclusive=False)


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
        self.readers_path = intent_path.with_name("catalog.readers")
        self._reset()

    def _reset(self) -> None:
        self.cond = threading.Condition(threading.Lock())
        self.readers = 0  # threads reading (each counted once, however nested)
        self.writing = False
        self.writers_waiting = 0
        self.readers_waiting = 0
        self.turn_left = 0  # readers that were waiting when the last write ended go first
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
            self.readers_waiting += 1
            try:
                while True:
                    writers_first = self.writers_waiting and not self.turn_left
                    if self.writing or writers_first or self.opening:
                        self.cond.wait()
                    elif self.session is not None:
                        if not writer_waiting(self.intent_path):
                            break
                        self.cond.wait(_POLL_S)  # another process writes next: let it drain
                    else:
                        self.opening = True
                        break
            finally:
                self.readers_waiting -= 1
                if self.turn_left:
                    self.turn_left -= 1
                    if not self.turn_left:
                        self.cond.notify_all()
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
        """Take the shared lock: through ``catalog.intent`` (held by a writer that goes
        next); kept waiting there past ``READER_TURN_S``, hold ``catalog.readers`` (shared)
        meanwhile, so that the writers of other processes let this reader go first."""
        what = str(self.db_path)
        start = time.monotonic()
        turn = None
        try:
            while True:
                intent = try_flock(self.intent_path, exclusive=False)
                if intent is not None:
                    break
                waited = time.monotonic() - start
                if turn is None and waited > READER_TURN_S:
                    turn = try_flock(self.readers_path, exclusive=False)
                if waited > LOCK_TIMEOUT_S:
                    raise StoreError(
                        f"{what}: catalog locked by another process for more than "
                        f"{LOCK_TIMEOUT_S:.0f} s"
                    )
                time.sleep(_POLL_S)
            try:
                fd = flock(self.lock_path, False, what)
            finally:
                os.close(intent)
        finally:
            if turn is not None:
                os.close(turn)
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
                while self.writing or self.readers or self.opening or self.turn_left:
                    self.cond.wait()
            finally:
                self.writers_waiting -= 1
            self.writing = True
        try:
            what = str(self.db_path)
            patience = time.monotonic() + READER_TURN_MAX_S
            while time.monotonic() < patience and taken(self.readers_path, exclusive=True):
                time.sleep(_POLL_S)  # readers of other processes waited long: they go first
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
            self.turn_left = self.readers_waiting  # phase-fair: they read before the next write
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
