"""The catalog file and how processes share it.

DuckDB lets one process at a time open a database file for writing, so the catalog is never
held open for long: every access is a short transaction. Writers hold the file alone (an
exclusive ``fcntl`` lock across processes, a readers-writer lock within one); concurrent
readers of a process share one read session (one shared lock, one read-only database, a
cursor each). :mod:`amberlite.catalog.locks` has the protocol. Long work (decoding,
computing, writing Parquet) happens outside any transaction.

Each write transaction declares what it changes (``write(touches=...)``, keys of
:mod:`amberlite.catalog.changes`: ``feature:NAME``, ``annotations:TYPE``, ``entities:TYPE``,
``assets``, ``schema``...; ``*``, everything, by default) and the keys are appended to the
change journal ``catalog.changes`` under the exclusive lock, before the commit. A cache of
answers (the server's, :class:`amberlite.serve.app.AnswerCache`) keeps each answer with the
keys it depends on and the journal position it was read at, and learns from the journal's
tail alone (no DuckDB) whether a commit of any process touched one of them since: an answer
survives the commits that cannot change it and never outlives one that could. A crash after
the journal line and before the commit costs one extra invalidation. (A process of an older
amberlite, which keeps no journal, must not write a store whose answers are cached.)

Every catalog table and sequence is declared in ``schema.sql`` (schema version
``SCHEMA_VERSION``, recorded in ``meta``). A new catalog gets the whole file; an older one is
upgraded in place when opened, by the steps of ``MIGRATIONS`` in order, inside the same write
transaction that opens it (so a failed step leaves the catalog at its old version). A catalog
newer than this code is refused.
"""

from __future__ import annotations

import contextlib
import importlib.resources
import logging
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import duckdb

from amberlite import faults
from amberlite.catalog import changes, locks
from amberlite.catalog.changes import EVERYTHING
from amberlite.errors import StoreError, StoreFull, out_of_space

SCHEMA_VERSION = 3
LOCK_TIMEOUT_S = locks.LOCK_TIMEOUT_S
log = logging.getLogger(__name__)
_CREATE = re.compile(r"CREATE\s+(TABLE|SEQUENCE)\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)", re.IGNORECASE)


def schema_sql() -> str:
    """The text of ``schema.sql``: every table and sequence of the current schema version."""
    return (importlib.resources.files("amberlite.catalog") / "schema.sql").read_text()


def schema_statements() -> dict[str, tuple[str, str]]:
    """``{name: (kind, statement)}`` for each ``CREATE TABLE``/``CREATE SEQUENCE`` of
    ``schema.sql`` (kind ``"table"`` or ``"sequence"``), in file order."""
    text = "\n".join(line.split("--", 1)[0] for line in schema_sql().splitlines())
    out: dict[str, tuple[str, str]] = {}
    for stmt in (s.strip() for s in text.split(";")):
        m = _CREATE.match(stmt)
        if m:
            out[m.group(2)] = (m.group(1).lower(), stmt + ";")
    return out


def _create(con: duckdb.DuckDBPyConnection, *names: str) -> None:
    """Create the named objects as ``schema.sql`` declares them, when missing."""
    stmts = schema_statements()
    for name in names:
        con.execute(stmts[name][1])


def migrate_1_to_2(con: duckdb.DuckDBPyConnection) -> None:
    """Version 2 declares in ``schema.sql`` what version 1 created lazily elsewhere: the
    ``triggers`` table and ``trigger_seq`` (amberlite.triggers), the ``replicas`` and
    ``replica_labels`` tables (amberlite.connectors). Their definitions did not change, so a
    catalog that already has them keeps them (and their rows) as they are."""
    _create(con, "trigger_seq", "triggers", "replicas", "replica_labels")


def migrate_2_to_3(con: duckdb.DuckDBPyConnection) -> None:
    """Version 3 adds the annotation tables (amberlite.annotations)."""
    _create(
        con,
        "annotation_types",
        "annotators",
        "annotations",
        "annotation_history",
        "annotation_runs",
    )


# (from_version, step): step upgrades a catalog of from_version to from_version + 1, given the
# connection of the write transaction that opens it. A later version that alters one of the
# tables created above adds its own step (idempotent DDL: ``ADD COLUMN IF NOT EXISTS``...).
MIGRATIONS: tuple[tuple[int, Callable[[duckdb.DuckDBPyConnection], None]], ...] = (
    (1, migrate_1_to_2),
    (2, migrate_2_to_3),
)


class Catalog:
    """A DuckDB catalog at ``<store>/catalog.duckdb``.

    Example:
        >>> import tempfile; cat = Catalog(tempfile.mkdtemp())
        >>> with cat.read() as con:
        ...     con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
        '3'
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.path = self.root / "catalog.duckdb"
        self.lock_path = self.root / "catalog.lock"
        self.changes_path = self.root / "catalog.changes"
        self.root.mkdir(parents=True, exist_ok=True)
        self.lock_path.touch(exist_ok=True)
        changes.create(self.changes_path)
        self.intent_path = self.root / "catalog.intent"
        self._lock = locks.file_lock(self.path, self.lock_path, self.intent_path)
        self._local = threading.local()  # this thread's pin: depth and cursor
        self.changes = changes.Journal(self.changes_path)
        self._tx = threading.local()  # the keys of this thread's write transaction
        self._init_schema()

    def _init_schema(self) -> None:
        if self.path.exists() and self._current():
            return  # the common open: one shared-lock read, no write transaction
        with self.write() as con:
            con.execute(schema_statements()["meta"][1])
            row = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if row is None:
                con.execute(schema_sql())
                con.execute("INSERT INTO meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])
            elif int(row[0]) > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path}: catalog schema version {row[0]}, this amberlite reads "
                    f"version {SCHEMA_VERSION} and older: upgrade amberlite to open it"
                )
            elif int(row[0]) < SCHEMA_VERSION:
                self._migrate(con, int(row[0]))
            for name, parent, kind in (
                ("asset", None, "base"),
                ("shot", "asset", "derived"),
                ("frame", "asset", "implicit"),
            ):
                con.execute(
                    "INSERT INTO entity_types VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                    [name, parent, kind],
                )

    def _current(self) -> bool:
        """True when the catalog exists at this code's schema version (nothing to create or
        migrate)."""
        try:
            with self.read() as con:
                row = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        except duckdb.Error:
            return False  # no meta table yet: the write path creates it
        return row is not None and row[0] == str(SCHEMA_VERSION)

    def _migrate(self, con: duckdb.DuckDBPyConnection, version: int) -> None:
        """Upgrade a catalog of ``version`` to ``SCHEMA_VERSION`` (inside ``con``'s
        transaction: all steps commit together or none does)."""
        steps = dict(MIGRATIONS)
        log.info(
            "%s: migrating catalog from schema version %d to %d",
            self.path,
            version,
            SCHEMA_VERSION,
        )
        while version < SCHEMA_VERSION:
            if version not in steps:
                raise StoreError(
                    f"{self.path}: catalog schema version {version}, no migration from it "
                    f"to version {SCHEMA_VERSION}"
                )
            log.debug("%s: schema version %d -> %d", self.path, version, version + 1)
            steps[version](con)
            version += 1
        con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", [str(SCHEMA_VERSION)])

    @contextlib.contextmanager
    def pinned(self) -> Iterator[None]:
        """Serve this thread's reads inside the block from one cursor (a short command reads
        the catalog on one connection). A write inside the block closes it first (the
        exclusive lock needs the read session to end); the next read opens a fresh one, which
        sees the write. While it is open, writers (of this and other processes) wait for it,
        as for any read; other threads of the process read concurrently."""
        local = self._local
        local.pin_depth = getattr(local, "pin_depth", 0) + 1
        try:
            yield
        finally:
            local.pin_depth -= 1
            if local.pin_depth == 0:
                self._unpin()

    def _unpin(self) -> None:
        cursor = getattr(self._local, "pinned", None)
        if cursor is not None:
            self._local.pinned = None
            try:
                cursor.close()
            finally:
                self._lock.release_read()

    @contextlib.contextmanager
    def write(
        self, touches: Iterable[str] | str = (EVERYTHING,)
    ) -> Iterator[duckdb.DuckDBPyConnection]:
        """One write transaction: committed on normal exit, rolled back on an exception.
        ``touches``: what it changes, as keys of :mod:`amberlite.catalog.changes` (the default,
        ``*``, invalidates every cached answer; ``()`` declares a write no answer reads; more
        keys can be added inside with :meth:`touch`). The keys are journaled under the
        exclusive lock, before the commit."""
        keys = list(changes.normalize(touches))
        self._unpin()  # a pinned read of this thread would hold the write lock off
        fds = self._lock.acquire_write()
        try:
            con = duckdb.connect(str(self.path))
            try:
                con.execute("BEGIN TRANSACTION")
                outer, self._tx.keys = getattr(self._tx, "keys", None), keys
                try:
                    yield con
                except BaseException:
                    con.execute("ROLLBACK")
                    raise
                finally:
                    self._tx.keys = outer
                if keys:
                    changes.append(self.changes_path, tuple(dict.fromkeys(keys)))
                faults.point("catalog_before_commit")
                con.execute("COMMIT")
            finally:
                con.close()
        except (duckdb.Error, OSError) as e:
            # A full disk fails the commit (or the write-ahead log) and nothing of the
            # transaction is kept: say so plainly instead of DuckDB's message.
            if out_of_space(e) and not isinstance(e, StoreFull):
                raise StoreFull(self.root, "catalog commit") from e
            raise
        finally:
            self._lock.release_write(fds)

    def touch(self, *keys: str) -> None:
        """Add change keys to this thread's write transaction (what it changes may be known
        only inside it, e.g. the type of the annotation it edits)."""
        current = getattr(self._tx, "keys", None)
        if current is None:
            raise StoreError("catalog.touch outside a write transaction")
        current.extend(changes.normalize(keys))

    @contextlib.contextmanager
    def read(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-only connection that sees committed state only (a cursor of the process's
        read session: threads read concurrently)."""
        local = self._local
        if getattr(local, "pin_depth", 0):
            if getattr(local, "pinned", None) is None:
                session = self._lock.acquire_read()
                try:
                    local.pinned = session.con.cursor()
                except BaseException:
                    self._lock.release_read()
                    raise
            yield local.pinned
            return
        session = self._lock.acquire_read()
        try:
            cursor = session.con.cursor()
            try:
                yield cursor
            finally:
                cursor.close()
        finally:
            self._lock.release_read()

    def stamp(self) -> tuple:
        """Changes whenever the catalog file or its write-ahead log is written (mtime, size,
        inode of both): answers computed from an unchanged catalog can be reused without
        opening it."""
        out = []
        for p in (self.path, Path(str(self.path) + ".wal")):
            try:
                st = p.stat()
                out.append((st.st_mtime_ns, st.st_size, st.st_ino))
            except FileNotFoundError:
                out.append(None)
        return tuple(out)

    def query(self, sql: str, params: list[Any] | dict[str, Any] | None = None) -> list[tuple]:
        with self.read() as con:
            return con.execute(sql, params or []).fetchall()
