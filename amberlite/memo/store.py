"""Parquet files under ``<store>/values``, registered in the catalog.

A write is atomic: the batch is written to ``<store>/tmp`` and fsynced, then renamed into its
dataset folder and registered in one catalog transaction. Readers list files from the catalog,
so a file that was never registered (a writer killed before its commit) is invisible; ``gc``
removes such orphans. Values are immutable once committed; compaction rewrites many small
files into one and retires the old ones in the same transaction.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from amberlite import faults
from amberlite.catalog import Catalog
from amberlite.catalog.changes import feature_key
from amberlite.core.types import duck_array_type
from amberlite.errors import StoreFull, out_of_space
from amberlite.memo.key import MemoKey

if TYPE_CHECKING:
    import pyarrow as pa

ENTITY_ID = "entity_id"
ASSET_ID = "asset_id"
VALUE = "value"

CommitHook = Callable[[duckdb.DuckDBPyConnection, int], None]
Listener = Callable[[list[tuple[MemoKey, int]]], None]  # (key, file id) of one transaction


def value_schema(output: pa.DataType) -> pa.Schema:
    import pyarrow as pa

    return pa.schema([(ENTITY_ID, pa.string()), (ASSET_ID, pa.string()), (VALUE, output)])


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def fsync_path(path: str | os.PathLike[str]) -> None:
    """Flush a file's (or a directory's entries') data to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_aside_to(directory: str | os.PathLike[str], table: pa.Table) -> Path:
    """Write ``table`` to a new uniquely named zstd Parquet file in ``directory``, fsynced:
    the first half of an atomic commit (workers that write their own batches use it too)."""
    import pyarrow.parquet as pq

    path = Path(directory) / f"{uuid.uuid4().hex}.parquet"
    try:
        pq.write_table(table, path, compression="zstd")
        fsync_path(path)
    except BaseException as e:
        path.unlink(missing_ok=True)  # a half-written batch is nobody's
        if out_of_space(e):
            raise StoreFull(directory, "writing values") from e
        raise
    return path


@dataclass
class Commit:
    """One dataset's part of a commit (see :meth:`MemoStore.commit`)."""

    key: MemoKey
    aside: Path | None
    rows: int
    owner: str | None = None
    committed_ids: Sequence[str] = ()
    failures: Iterable[tuple[str, str, str]] = ()
    hook: CommitHook | None = None
    kind: str = "compute"
    retire: Sequence[int] = ()
    touches: Iterable[str] = ()  # change keys besides the feature's own (catalog.changes)


class MemoStore:
    """Committed values of every feature@version@params in one store."""

    def __init__(self, root: str | Path, catalog: Catalog) -> None:
        self.root = Path(root)
        self.catalog = catalog
        self.tmp = self.root / "tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)
        # Called after each commit, outside the transaction, with the (key, file_id) of its
        # datasets. A listener that fails does not undo the commit: replicas catch up from
        # the commit log.
        self.listeners: list[Listener] = []
        self._files_cache: dict[MemoKey, tuple[tuple, list[str]]] = {}

    # -- writing ------------------------------------------------------------------------------
    def write_aside(self, table: pa.Table) -> Path:
        """Write a batch to a private temporary file (fsynced); nothing is visible yet."""
        return write_aside_to(self.tmp, table)

    def commit(
        self,
        key: MemoKey,
        aside: Path | None,
        rows: int,
        *,
        owner: str | None = None,
        committed_ids: Sequence[str] = (),
        failures: Iterable[tuple[str, str, str]] = (),
        hook: CommitHook | None = None,
        kind: str = "compute",
        retire: Sequence[int] = (),
        touches: Iterable[str] = (),
    ) -> int | None:
        """Register a written batch in one transaction and release the owner's claims.
        The transaction touches the feature's change key and ``touches``.

        ``failures`` are ``(entity_id, asset_id, message)``. Returns the new file id (the
        commit sequence number), or None when no file was written.
        """
        item = Commit(
            key, aside, rows, owner, committed_ids, failures, hook, kind, retire, tuple(touches)
        )
        return self.commit_many([item])[0]

    def commit_many(self, items: Sequence[Commit]) -> list[int | None]:
        """:meth:`commit` of several datasets' batches in ONE catalog transaction (the
        features computed together over one decode): all or none become visible. Returns
        the file ids, in order."""
        ids: list[int | None] = []
        renamed: list[Path] = []
        touches = {k for it in items for k in (feature_key(it.key.feature), *it.touches)}
        with self.catalog.write(touches=tuple(sorted(touches))) as con:
            try:
                for it in items:
                    ids.append(self._commit_in(con, it, renamed))
            except BaseException:  # rolled back: the renamed files are nobody's
                for final in renamed:
                    final.unlink(missing_ok=True)
                raise
        commits = [(it.key, file_id) for it, file_id in zip(items, ids) if file_id is not None]
        for listener in list(self.listeners) if commits else []:
            try:
                listener(commits)
            except Exception:  # noqa: BLE001 - a replica's failure never loses a value
                import logging

                logging.getLogger(__name__).exception("commit listener failed")
        return ids

    def _commit_in(self, con: duckdb.DuckDBPyConnection, it: Commit, renamed: list[Path]):
        """One batch's part of a commit transaction; its renamed file is added to
        ``renamed`` (removed by the caller when the transaction fails)."""
        key = it.key
        file_id: int | None = None
        if it.aside is not None:
            file_id = con.execute("SELECT nextval('commit_seq')").fetchone()[0]
            final_dir = self.root / key.relative_dir()
            final_dir.mkdir(parents=True, exist_ok=True)
            final = final_dir / f"{file_id:012d}.parquet"
            faults.point("before_rename")
            os.replace(it.aside, final)
            renamed.append(final)
            con.execute(
                "INSERT INTO memo_files VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    file_id,
                    *key.sql_args(),
                    key.params_json,
                    str(final.relative_to(self.root)),
                    it.rows,
                    final.stat().st_size,
                    it.kind,
                    now(),
                ],
            )
            for old in it.retire:
                con.execute("INSERT INTO retired_files VALUES (?, ?, ?)", [old, file_id, now()])
            if it.committed_ids:
                self._forget(con, key, it.committed_ids, "failures")
            if it.hook is not None:
                it.hook(con, file_id)
            faults.point("before_commit")
        fails = list(it.failures)
        for entity_id, asset_id, message in fails:
            con.execute(
                """INSERT INTO failures VALUES (?, ?, ?, ?, ?, ?, 1, ?)
                   ON CONFLICT DO UPDATE SET error = excluded.error,
                     attempts = failures.attempts + 1, failed_at = excluded.failed_at""",
                [*key.sql_args(), entity_id, asset_id, message[:4000], now()],
            )
        if it.owner is not None:
            done = list(it.committed_ids) + [f[0] for f in fails]
            if done:
                con.execute(
                    """DELETE FROM claims WHERE feature = ? AND version = ?
                       AND params_key = ? AND owner = ?
                       AND entity_id IN (SELECT unnest(?::TEXT[]))""",
                    [*key.sql_args(), it.owner, done],
                )
        return file_id

    @staticmethod
    def _forget(con: duckdb.DuckDBPyConnection, key: MemoKey, ids: Sequence[str], table: str):
        assert table in ("failures", "claims")
        con.execute(
            f"""DELETE FROM {table} WHERE feature = ? AND version = ? AND params_key = ?
                AND entity_id IN (SELECT unnest(?::TEXT[]))""",
            [*key.sql_args(), list(ids)],
        )

    # -- reading ------------------------------------------------------------------------------
    def files(self, key: MemoKey, con: duckdb.DuckDBPyConnection | None = None) -> list[str]:
        """Absolute paths of the committed, live files of a dataset, in commit order."""
        sql = """SELECT path FROM memo_files WHERE feature = ? AND version = ? AND params_key = ?
                 AND file_id NOT IN (SELECT file_id FROM retired_files) ORDER BY file_id"""
        if con is not None:
            return [str(self.root / r[0]) for r in con.execute(sql, key.sql_args()).fetchall()]
        stamp = self.catalog.stamp()
        hit = self._files_cache.get(key)
        if hit is not None and hit[0] == stamp:
            return list(hit[1])
        files = [str(self.root / r[0]) for r in self.catalog.query(sql, key.sql_args())]
        self._files_cache[key] = (stamp, files)
        return list(files)

    def read(
        self,
        key: MemoKey,
        output: pa.DataType,
        *,
        columns: str = "*",
        asset_ids: Sequence[str] | None = None,
        entity_ids: Sequence[str] | None = None,
    ) -> pa.Table:
        """Committed values as an Arrow table (entity_id, asset_id, value), read by DuckDB."""
        for attempt in range(3):
            files = self.files(key)
            if not files:
                import pyarrow as pa

                schema = value_schema(output)
                if columns != "*":
                    schema = pa.schema([schema.field(c.strip()) for c in columns.split(",")])
                return schema.empty_table()
            try:
                return self._read_files(files, output, columns, asset_ids, entity_ids)
            except (duckdb.IOException, FileNotFoundError):
                if attempt == 2:  # files retired by a concurrent compaction: list again
                    raise
        raise AssertionError("unreachable")

    @staticmethod
    def _read_files(files, output, columns, asset_ids, entity_ids) -> pa.Table:
        where, params = [], {"files": files}
        if asset_ids is not None:
            where.append(f"{ASSET_ID} IN (SELECT unnest($assets::TEXT[]))")
            params["assets"] = list(asset_ids)
        if entity_ids is not None:
            where.append(f"{ENTITY_ID} IN (SELECT unnest($ids::TEXT[]))")
            params["ids"] = list(entity_ids)
        cast = duck_array_type(str(output))
        if columns == "*" and cast:
            # DuckDB reads fixed-size lists back as lists; casting in SQL is the cheapest way
            # back to the declared type (cheaper than an Arrow cast afterwards).
            columns = f"{ENTITY_ID}, {ASSET_ID}, {VALUE}::{cast} AS {VALUE}"
        sql = f"SELECT {columns} FROM read_parquet($files)"
        if where:
            sql += " WHERE " + " AND ".join(where)
        con = duckdb.connect()
        try:
            table = con.sql(sql, params=params).to_arrow_table()
        finally:
            con.close()
        if VALUE in table.column_names and table.schema.field(VALUE).type != output:
            idx = table.column_names.index(VALUE)
            table = table.set_column(idx, VALUE, table.column(VALUE).cast(output))
        return table

    def stored_ids(self, key: MemoKey, asset_ids: Sequence[str] | None = None) -> set[str]:
        import pyarrow as pa

        table = self.read(key, pa.null(), columns=ENTITY_ID, asset_ids=asset_ids)
        return set(table.column(ENTITY_ID).to_pylist())

    # -- maintenance --------------------------------------------------------------------------
    def compact(self, key: MemoKey, output: pa.DataType, min_files: int = 2) -> int:
        """Rewrite a dataset's live files as one; returns how many files were merged."""
        with self.catalog.read() as con:
            rows = con.execute(
                """SELECT file_id, path FROM memo_files WHERE feature = ? AND version = ?
                   AND params_key = ? AND file_id NOT IN (SELECT file_id FROM retired_files)
                   ORDER BY file_id""",
                key.sql_args(),
            ).fetchall()
        if len(rows) < min_files:
            return 0
        paths = [str(self.root / r[1]) for r in rows]
        table = self._read_files(paths, output, "*", None, None).sort_by(
            [(ASSET_ID, "ascending"), (ENTITY_ID, "ascending")]
        )
        aside = self.write_aside(table)
        self.commit(key, aside, table.num_rows, kind="compact", retire=[r[0] for r in rows])
        for p in paths:
            Path(p).unlink(missing_ok=True)
        return len(rows)

    def gc(self) -> int:
        """Remove files no catalog row points at (left by killed writers); returns the count."""
        live = {r[0] for r in self.catalog.query("SELECT path FROM memo_files")}
        retired = {
            r[0]
            for r in self.catalog.query(
                "SELECT path FROM memo_files WHERE file_id IN (SELECT file_id FROM retired_files)"
            )
        }
        removed = 0
        for p in (self.root / "values").rglob("*.parquet"):
            rel = str(p.relative_to(self.root))
            if rel not in live or rel in retired:
                p.unlink(missing_ok=True)
                removed += 1
        cutoff = now().timestamp() - 3600  # a writer may still be filling a younger file
        for p in self.tmp.glob("*.parquet"):
            if p.stat().st_mtime < cutoff:
                p.unlink(missing_ok=True)
                removed += 1
        return removed
