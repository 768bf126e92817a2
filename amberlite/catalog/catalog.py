"""The catalog file and how processes share it.

DuckDB lets one process at a time open a database file for writing, so the catalog is never
held open: every access is a short transaction, serialized across processes by an ``fcntl``
lock on ``catalog.lock`` (shared for readers, exclusive for writers) and within a process by a
thread lock. Long work (decoding, computing, writing Parquet) happens outside any transaction.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.resources
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb

from amberlite.errors import StoreError

SCHEMA_VERSION = 1
LOCK_TIMEOUT_S = 120.0
_process_lock = threading.RLock()


class Catalog:
    """A DuckDB catalog at ``<store>/catalog.duckdb``.

    Example:
        >>> import tempfile; cat = Catalog(tempfile.mkdtemp())
        >>> with cat.read() as con:
        ...     con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
        '1'
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.path = self.root / "catalog.duckdb"
        self.lock_path = self.root / "catalog.lock"
        self.root.mkdir(parents=True, exist_ok=True)
        self.lock_path.touch(exist_ok=True)
        self._init_schema()

    def _init_schema(self) -> None:
        schema = (importlib.resources.files("amberlite.catalog") / "schema.sql").read_text()
        with self.write() as con:
            con.execute(schema)
            row = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if row is None:
                con.execute("INSERT INTO meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])
            elif int(row[0]) != SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path}: catalog schema version {row[0]}, this amberlite reads "
                    f"version {SCHEMA_VERSION}"
                )
            for name, parent, kind in (
                ("asset", None, "base"),
                ("shot", "asset", "derived"),
                ("frame", "asset", "implicit"),
            ):
                con.execute(
                    "INSERT INTO entity_types VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                    [name, parent, kind],
                )

    @contextlib.contextmanager
    def _locked(self, exclusive: bool) -> Iterator[None]:
        with _process_lock:
            fd = os.open(self.lock_path, os.O_RDWR)
            try:
                mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
                deadline = time.monotonic() + LOCK_TIMEOUT_S
                while True:
                    try:
                        fcntl.flock(fd, mode | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if time.monotonic() > deadline:
                            raise StoreError(
                                f"{self.path}: catalog locked by another process for more "
                                f"than {LOCK_TIMEOUT_S:.0f} s"
                            ) from None
                        time.sleep(0.005)
                yield
            finally:
                os.close(fd)  # closing the descriptor releases the lock

    @contextlib.contextmanager
    def write(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """One write transaction: committed on normal exit, rolled back on an exception."""
        with self._locked(exclusive=True):
            con = duckdb.connect(str(self.path))
            try:
                con.execute("BEGIN TRANSACTION")
                try:
                    yield con
                except BaseException:
                    con.execute("ROLLBACK")
                    raise
                con.execute("COMMIT")
            finally:
                con.close()

    @contextlib.contextmanager
    def read(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-only connection that sees committed state only."""
        with self._locked(exclusive=False):
            con = duckdb.connect(str(self.path), read_only=True)
            try:
                yield con
            finally:
                con.close()

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
