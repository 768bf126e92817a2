"""Replica management: copies of a feature's committed values kept in another system.

A *replica* follows one dataset (feature@version@params, a :class:`MemoKey`) into one *target*
(``"hnsw"``: an approximate nearest-neighbour index). The store's commit log is the source of
truth: every committed Parquet file has a ``file_id`` (the commit sequence number), and a
replica remembers the last one it applied. :class:`ReplicaManager` (``store.replicas``) keeps
replicas in step:

* after each commit (a ``MemoStore`` listener) it applies the dataset's live files with
  ``file_id > last_file_id``: new entities are inserted, changed values updated, values equal
  to the indexed ones skipped (compaction rewrites the same rows), and when a commit retired
  files, entities no longer stored anywhere are deleted;
* when a replica is opened (a search, ``sync()``, ``status``) it first catches up the same way,
  so a process killed between the Parquet commit and the replica write loses nothing;
* a connector saves its state together with the commit id it reflects (atomically), and only
  then is ``last_file_id`` recorded in the catalog; on load the connector's own id wins;
* saving is deferred: a commit is applied in memory at once (searches see it), and the state
  is written when the changes since the last save reach ``SAVE_FRACTION`` of the index (at
  least ``SAVE_ROWS``), when ``SAVE_INTERVAL_S`` has passed, on ``sync()``/``add``/``rebuild``/
  ``status``, and at interpreter exit. A save rewrites the whole index (about 2 GB at 10^6 x
  512), so saving per commit would make adding a row cost a rewrite; deferring bounds the work
  a crash can lose to replaying those rows from the commit log, which the next open does.

Integrity: a replica is *damaged* when its saved files fail the connector's checks (checked
before the target's loader reads them), when its commit id is ahead of the newest commit of
its dataset in the catalog, or when what it holds after loading and catching up differs from
the stored values (ids and vectors, compared once per load). A damaged replica raises
:class:`~amberlite.connectors.base.ReplicaDamaged` when opened (searches fall back to the exact
kernel), is skipped with a warning by the commit listener (the commit itself stands), shows in
``status`` and ``sync``, and is repaired by ``rebuild``.

A new target is a subclass of :class:`~amberlite.connectors.base.Connector` registered with
:func:`~amberlite.connectors.base.register` and imported here.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import logging
import os
import threading
import time
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from amberlite import faults
from amberlite.connectors import hnsw  # noqa: F401 - registers the "hnsw" target
from amberlite.connectors.base import TARGETS, Connector, ReplicaDamaged, replica_dir
from amberlite.core.vectors import as_matrix, vector_dim
from amberlite.errors import AmberliteError, ReplicaError, ResolveError
from amberlite.memo.key import MemoKey
from amberlite.memo.store import ENTITY_ID, VALUE, now

if TYPE_CHECKING:
    from amberlite.context import StoreContext

log = logging.getLogger(__name__)


def target_class(name: str) -> type[Connector]:
    if name not in TARGETS:
        raise ResolveError(f"unknown replica target {name!r}", name=name, candidates=TARGETS)
    return TARGETS[name]


# -- the manager ---------------------------------------------------------------------------------
@dataclass
class ReplicaInfo:
    key: MemoKey
    target: str
    options: dict
    last_file_id: int


class ReplicaManager:
    """``store.replicas``: declares replicas, keeps them in step with commits, serves search.

    Connectors are opened lazily (first search, commit or ``sync``) and cached per process;
    each apply runs under a per-replica file lock and reloads the saved state first when
    another process saved a newer one, so several writers never lose each other's updates.
    Saves are deferred (see the module docstring); ``flush()`` writes what is pending.
    """

    SAVE_ROWS = 10_000  # rows applied since the last save that always trigger one
    SAVE_FRACTION = 0.05  # ... or this fraction of the index, when larger
    SAVE_INTERVAL_S = 300.0  # ... or pending changes this old

    def __init__(self, ctx: StoreContext) -> None:
        self.ctx = ctx
        self._open: dict[tuple[MemoKey, str], Connector] = {}
        # damaged replicas: (reason, the state of their files when found damaged)
        self._damaged: dict[tuple[MemoKey, str], tuple[str, tuple]] = {}
        self._unverified: set[tuple[MemoKey, str]] = set()  # loaded, not yet compared
        self._lock = threading.RLock()
        _MANAGERS.add(self)

    # -- declarations -------------------------------------------------------------------------
    def _key(self, feature: str, params: dict | None = None) -> tuple[Any, MemoKey]:
        from amberlite.memo.key import memo_key

        spec = self.ctx.feature(feature)
        return spec, memo_key(spec, params)

    def add(
        self, feature: str, target: str = "hnsw", params: dict | None = None, **options: Any
    ) -> ReplicaInfo:
        """Declare a replica of ``feature`` (``name`` or ``name@version``) and build it from the
        values stored now. Declaring an existing replica again changes nothing."""
        spec, key = self._key(feature, params)
        vector_dim(spec.output)
        cls = target_class(target)
        opts = cls.check_options(options)
        with self.ctx.catalog.write() as con:
            con.execute(
                """INSERT INTO replicas VALUES (?, ?, ?, ?, ?, 0, ?) ON CONFLICT DO NOTHING""",
                [*key.sql_args(), target, json.dumps(opts, sort_keys=True), now()],
            )
        self.sync_one(key, target, save=True)
        return self.info(key, target)

    def list(self) -> list[ReplicaInfo]:
        rows = self.ctx.catalog.query(
            """SELECT r.feature, r.version, r.params_key, coalesce(m.params, '{}'), r.target,
                      r.options, r.last_file_id FROM replicas r
               LEFT JOIN (SELECT DISTINCT feature, version, params_key, params FROM memo_files) m
                 USING (feature, version, params_key)
               ORDER BY r.feature, r.version, r.params_key, r.target"""
        )
        return [
            ReplicaInfo(MemoKey(f, v, pk, pj), t, json.loads(o), last)
            for f, v, pk, pj, t, o, last in rows
        ]

    def info(self, key: MemoKey, target: str) -> ReplicaInfo:
        for r in self.list():
            if r.key.sql_args() == key.sql_args() and r.target == target:
                return r
        raise ReplicaError(f"no {target} replica of {key.label}/{key.params_key}")

    def find(self, key: MemoKey) -> ReplicaInfo | None:
        """The replica of a dataset, if one is declared (the first target by name)."""
        rows = self.ctx.catalog.query(
            """SELECT target, options, last_file_id FROM replicas WHERE feature = ?
               AND version = ? AND params_key = ? ORDER BY target LIMIT 1""",
            key.sql_args(),
        )
        if not rows:
            return None
        return ReplicaInfo(key, rows[0][0], json.loads(rows[0][1]), rows[0][2])

    # -- following commits --------------------------------------------------------------------
    def on_commit(self, key: MemoKey, file_id: int) -> None:
        """Bring this dataset's replicas up to ``file_id`` (see :meth:`on_commits`)."""
        self.on_commits([(key, file_id)])

    def on_commits(self, commits: Sequence[tuple[MemoKey, int]]) -> None:
        """MemoStore listener: bring each committed dataset's replicas up to its file id
        (one catalog read for all of a transaction's datasets; most have no replica).

        A dataset of a replicated feature with no replica yet (a new version or parameter
        assignment) gets one with the same target and options."""
        if not commits:
            return
        rows = self.ctx.catalog.query(
            """SELECT feature, version, params_key, target, options, last_file_id FROM replicas
               WHERE feature IN (SELECT unnest(?::TEXT[]))""",
            [sorted({key.feature for key, _ in commits})],
        )
        for key, file_id in commits:
            mine = [r[1:] for r in rows if r[0] == key.feature]
            if not mine:
                continue
            try:
                self._follow(key, file_id, mine)
            except Exception:  # noqa: BLE001 - one replica's failure never stops the others'
                log.exception("replica of %s did not follow commit %d", key.label, file_id)

    def _follow(self, key: MemoKey, file_id: int, rows: list[tuple]) -> None:
        """:meth:`on_commits` for one dataset, given its feature's replica rows."""
        mine = {t: last for v, pk, t, _, last in rows if (v, pk) == (key.version, key.params_key)}
        follow = {t: o for _, _, t, o, _ in rows if t not in mine}
        if follow:
            with self.ctx.catalog.write() as con:
                for target, options in sorted(follow.items()):
                    con.execute(
                        "INSERT INTO replicas VALUES (?, ?, ?, ?, ?, 0, ?) ON CONFLICT DO NOTHING",
                        [*key.sql_args(), target, options, now()],
                    )
            mine.update(dict.fromkeys(follow, 0))
        for target, last in sorted(mine.items()):
            if last < file_id:
                try:
                    self.sync_one(key, target)
                except ReplicaDamaged as e:
                    log.warning("%s; commit %d is stored, the replica skips it", e, file_id)

    def sync(self) -> dict[str, int | ReplicaDamaged]:
        """Catch every declared replica up with the commit log and save it; returns rows
        applied per replica, or the :class:`ReplicaDamaged` error of a damaged one."""
        out: dict[str, int | ReplicaDamaged] = {}
        for r in self.list():
            name = f"{r.key.label}/{r.key.params_key}:{r.target}"
            try:
                out[name] = self.sync_one(r.key, r.target, True)
            except ReplicaDamaged as e:
                out[name] = e
        return out

    def sync_one(self, key: MemoKey, target: str, save: bool = False) -> int:
        """Apply every commit after the replica's last applied one; returns rows changed.
        The state is saved when ``save`` or when the save policy says it is due. Raises
        ReplicaDamaged for a damaged replica (a state freshly loaded is compared with the
        stored values after catching up, before anything is saved)."""
        with self._lock, self._file_lock(key, target):
            conn = self._connector(key, target)
            if (key, target) not in self._unverified:
                return self._catch_up(conn, save)
            changed = self._catch_up(conn, save=False, may_save=False)
            reason = self._content_damage(conn)
            if reason is not None:
                self._mark_damaged(key, target, reason)
                raise ReplicaDamaged(key, target, reason)
            self._unverified.discard((key, target))
            if (save and conn.applied_file_id > conn.last_file_id) or self._save_due(conn):
                self._save(conn)
            return changed

    # -- integrity ----------------------------------------------------------------------------
    def damage(self, key: MemoKey, target: str) -> str | None:
        """Why a replica cannot serve searches, or None; loads nothing (for EXPLAIN)."""
        k = (key, target)
        conn = self._open.get(k)
        if conn is not None and conn.damage:
            return conn.damage
        if k in self._damaged and self._damaged[k][1] == self._stamp(key):
            return self._damaged[k][0]
        if conn is not None and conn.saved_file_id() <= conn.applied_file_id:
            return None  # this process loaded and checked it
        probe = self._new_connector(key, target)
        return probe.check_saved() or self._ahead(probe.saved_file_id(), key)

    def _mark_damaged(self, key: MemoKey, target: str, reason: str) -> None:
        self._open.pop((key, target), None)
        self._unverified.discard((key, target))
        self._damaged[(key, target)] = (reason, self._stamp(key))

    def _stamp(self, key: MemoKey) -> tuple:
        """The state of a replica's files (name, size, mtime): a damage found stays known
        until they change (a rebuild, or another process saving a new state)."""
        d = replica_dir(self.ctx.root, key)
        if not d.is_dir():
            return ()
        stats = ((p.name, p.stat()) for p in d.iterdir() if p.suffix != ".lock")
        return tuple(sorted((n, st.st_size, st.st_mtime_ns) for n, st in stats))

    def _head(self, key: MemoKey) -> int:
        """The newest commit id of a dataset in the catalog (0 when none)."""
        rows = self.ctx.catalog.query(
            """SELECT coalesce(max(file_id), 0) FROM memo_files WHERE feature = ?
               AND version = ? AND params_key = ?""",
            key.sql_args(),
        )
        return int(rows[0][0])

    def _ahead(self, file_id: int, key: MemoKey) -> str | None:
        head = self._head(key)
        if file_id > head:
            return f"its commit id {file_id} is ahead of the catalog's newest, {head}"
        return None

    def _stored(self, key: MemoKey) -> pa.Table:
        """(entity_id, value) of every stored entity, the latest value of each."""
        with self.ctx.catalog.read() as con:
            files = con.execute(
                """SELECT path FROM memo_files WHERE feature = ? AND version = ?
                   AND params_key = ? AND file_id NOT IN (SELECT file_id FROM retired_files)
                   ORDER BY file_id""",
                key.sql_args(),
            ).fetchall()
        spec = self.ctx.registry.get(key.feature, key.version)
        if not files:
            return pa.table(
                {ENTITY_ID: pa.array([], pa.string()), VALUE: pa.array([], spec.output)}
            )
        return _latest_per_entity(
            _read_in_order([self.ctx.root / p for (p,) in files], spec.output)
        )

    def _content_damage(self, conn: Connector, block: int = 65_536) -> str | None:
        """How the replica's live ids or vectors differ from the stored values, or None."""
        table = self._stored(conn.key)
        ids = table.column(ENTITY_ID).to_pylist()
        have, want = conn.entity_ids(), set(ids)
        if have != want:
            return (
                f"index holds {len(have)} live rows, {len(want)} stored "
                f"({len(have - want)} not stored, {len(want - have)} missing)"
            )
        values = table.column(VALUE)
        for s in range(0, len(ids), block):
            got = conn.vectors(ids[s : s + block])
            kept = conn.kept(as_matrix(values.slice(s, block), conn.dim))
            if not np.allclose(got, kept, rtol=1e-5, atol=1e-5):
                return "index vectors differ from the stored values"
        return None

    def flush(self) -> int:
        """Save every replica this process has changed since its last save; returns how many
        were saved. Runs at interpreter exit too."""
        saved = 0
        for (key, target), conn in list(self._open.items()):
            if conn.damage or conn.applied_file_id <= conn.last_file_id:  # never save damage
                continue
            with self._lock, self._file_lock(key, target):
                if conn.saved_file_id() < conn.applied_file_id:  # else another saved newer
                    self._save(conn)
                    saved += 1
        return saved

    def _save_due(self, conn: Connector) -> bool:
        if conn.applied_file_id <= conn.last_file_id:
            return False
        rows = max(self.SAVE_ROWS, int(self.SAVE_FRACTION * conn.count()))
        return conn.unsaved_rows >= rows or time.monotonic() - conn.saved_at >= self.SAVE_INTERVAL_S

    def _save(self, conn: Connector) -> None:
        _fault("replica_before_save")
        conn.save(conn.applied_file_id)
        conn.unsaved_rows = 0
        conn.saved_at = time.monotonic()
        _fault("replica_before_record")
        self._record(conn, conn.last_file_id)

    def connector(self, key: MemoKey, target: str) -> Connector:
        """The open connector of a replica, caught up with the commit log."""
        self.sync_one(key, target)
        return self._open[(key, target)]

    def _new_connector(self, key: MemoKey, target: str) -> Connector:
        """A connector of a declared replica with nothing loaded."""
        info = self.info(key, target)
        spec = self.ctx.registry.get(key.feature, key.version)
        cls = target_class(target)
        return cls(self.ctx.root, self.ctx.catalog, key, vector_dim(spec.output), info.options)

    def _connector(self, key: MemoKey, target: str) -> Connector:
        """The open connector (loaded and checked when not open yet, or when another process
        saved a newer state); raises ReplicaDamaged."""
        k = (key, target)
        conn = self._open.get(k)
        if conn is not None and conn.damage:  # a search found it disagreeing with the values
            self._mark_damaged(key, target, conn.damage)
            conn = None
        if k in self._damaged:
            reason, stamp = self._damaged[k]
            if stamp == self._stamp(key):
                raise ReplicaDamaged(key, target, reason)
            del self._damaged[k]  # its files changed since: check them again
        if conn is None or conn.saved_file_id() > conn.applied_file_id:
            conn = conn or self._new_connector(key, target)
            try:
                if conn.load():
                    reason = self._ahead(conn.applied_file_id, key)
                    if reason is not None:
                        raise ReplicaDamaged(key, target, reason)
                    self._unverified.add(k)
            except ReplicaDamaged as e:
                self._mark_damaged(key, target, e.reason)
                raise
            self._open[k] = conn
        return conn

    def _catch_up(self, conn: Connector, save: bool = False, may_save: bool = True) -> int:
        key = conn.key
        start = conn.applied_file_id
        with self.ctx.catalog.read() as con:
            files = con.execute(
                """SELECT file_id, path FROM memo_files WHERE feature = ? AND version = ?
                   AND params_key = ? AND file_id > ?
                   AND file_id NOT IN (SELECT file_id FROM retired_files) ORDER BY file_id""",
                [*key.sql_args(), start],
            ).fetchall()
            head = con.execute(
                """SELECT coalesce(max(file_id), 0) FROM memo_files WHERE feature = ?
                   AND version = ? AND params_key = ?""",
                key.sql_args(),
            ).fetchone()[0]
            retired = con.execute(
                """SELECT count(*) FROM retired_files r JOIN memo_files m USING (file_id)
                   WHERE m.feature = ? AND m.version = ? AND m.params_key = ?
                   AND r.replaced_by > ?""",
                [*key.sql_args(), start],
            ).fetchone()[0]
        changed = 0
        if head > start:
            if files:
                spec = self.ctx.registry.get(key.feature, key.version)
                table = _read_in_order([self.ctx.root / p for _, p in files], spec.output)
                changed += conn.apply(_latest_per_entity(table))
                conn.unsaved_rows += table.num_rows
            if retired:
                stored = self.ctx.memo.stored_ids(key)
                deleted = conn.delete(sorted(conn.entity_ids() - stored))
                changed += deleted
                conn.unsaved_rows += deleted
            if conn.applied_file_id <= conn.last_file_id:
                conn.saved_at = time.monotonic()  # pending changes start now
            conn.applied_file_id = head
            _fault("replica_after_apply")
        if not may_save:
            pass
        elif (save and conn.applied_file_id > conn.last_file_id) or self._save_due(conn):
            self._save(conn)
        elif head <= start:
            self._record(conn, conn.saved_file_id())
        return changed

    def _record(self, conn: Connector, file_id: int) -> None:
        """Record in the catalog the commit id of the saved state (a write transaction, so
        only when it changed since this process last recorded it)."""
        if conn.recorded_file_id == file_id:
            return
        conn.recorded_file_id = file_id
        with self.ctx.catalog.write() as con:
            con.execute(
                """UPDATE replicas SET last_file_id = ? WHERE feature = ? AND version = ?
                   AND params_key = ? AND target = ? AND last_file_id <> ?""",
                [file_id, *conn.key.sql_args(), conn.name, file_id],
            )

    @contextlib.contextmanager
    def _file_lock(self, key: MemoKey, target: str) -> Iterator[None]:
        d = replica_dir(self.ctx.root, key)
        d.mkdir(parents=True, exist_ok=True)
        fd = os.open(d / f"{target}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    # -- maintenance --------------------------------------------------------------------------
    def rebuild(self, feature: str, target: str | None = None, params: dict | None = None) -> int:
        """Drop and rebuild a feature's replicas from the stored values; returns rows indexed."""
        _, key = self._key(feature, params)
        infos = [r for r in self.list() if r.key.sql_args() == key.sql_args()]
        if target is not None:
            infos = [r for r in infos if r.target == target]
        if not infos:
            raise ReplicaError(f"no replica of {key.label} (add one with `replicate add`)")
        total = 0
        for r in infos:
            with self._lock, self._file_lock(key, r.target):
                # not loaded first: a rebuild is also the way out of a damaged saved state
                conn = self._open.pop((key, r.target), None) or self._new_connector(key, r.target)
                self._damaged.pop((key, r.target), None)
                self._unverified.discard((key, r.target))
                conn.drop()
                conn.damage = None
                with self.ctx.catalog.write() as con:
                    con.execute(
                        """DELETE FROM replica_labels WHERE feature = ? AND version = ?
                           AND params_key = ? AND target = ?""",
                        [*key.sql_args(), r.target],
                    )
                    con.execute(
                        """UPDATE replicas SET last_file_id = 0 WHERE feature = ? AND version = ?
                           AND params_key = ? AND target = ?""",
                        [*key.sql_args(), r.target],
                    )
                conn = self._connector(key, r.target)
                self._catch_up(conn, save=True)
                total += conn.count()
        return total

    def remove(self, feature: str, target: str | None = None, params: dict | None = None) -> int:
        """Stop replicating ``feature`` (to ``target``, or to every target): its declaration
        and saved index are deleted; the stored values stay. Returns replicas removed."""
        _, key = self._key(feature, params)
        infos = [r for r in self.list() if r.key.sql_args() == key.sql_args()]
        if target is not None:
            infos = [r for r in infos if r.target == target]
        if not infos:
            raise ReplicaError(f"no replica of {key.label}" + (f" to {target}" if target else ""))
        for r in infos:
            with self._lock, self._file_lock(key, r.target):
                conn = self._open.pop((key, r.target), None) or self._new_connector(key, r.target)
                self._damaged.pop((key, r.target), None)
                self._unverified.discard((key, r.target))
                with self.ctx.catalog.write() as con:
                    for table in ("replica_labels", "replicas"):
                        con.execute(
                            f"""DELETE FROM {table} WHERE feature = ? AND version = ?
                                AND params_key = ? AND target = ?""",
                            [*key.sql_args(), r.target],
                        )
                conn.drop()  # after the commit: a crash between leaves files, never a record
        return len(infos)

    def status(self) -> list[dict[str, Any]]:
        """Per replica: rows indexed vs rows stored, lag (commits not yet applied), and health
        (``"ok"`` or ``"damaged"``, with ``reason``).

        Saves what this process has pending first, then loads each saved index afresh (it does
        not catch up): it checks the files as a load does, the commit id against the catalog
        and, when nothing is pending, the live ids and vectors against the stored values. A
        replica found damaged is treated as such by this process until it is rebuilt."""
        self.flush()
        out = []
        for r in self.list():
            indexed, applied, reason = self._inspect(r)
            with self.ctx.catalog.read() as con:
                stored, behind = con.execute(
                    """SELECT coalesce(sum(rows) FILTER (WHERE file_id NOT IN
                                 (SELECT file_id FROM retired_files)), 0)::BIGINT,
                              count(*) FILTER (WHERE file_id > ?)
                       FROM memo_files WHERE feature = ? AND version = ? AND params_key = ?""",
                    [applied, *r.key.sql_args()],
                ).fetchone()
            out.append(
                {
                    "feature": r.key.label,
                    "params_key": r.key.params_key,
                    "target": r.target,
                    "options": r.options,
                    "rows_indexed": indexed,
                    "rows_stored": int(stored),
                    "last_file_id": applied,
                    "lag_commits": int(behind),
                    "health": "damaged" if reason else "ok",
                    "reason": reason,
                }
            )
        return out

    def _inspect(self, r: ReplicaInfo) -> tuple[int, int, str | None]:
        """(live rows, commit id, damage or None) of a replica's saved state. The state is
        caught up in memory (nothing saved) before its ids and vectors are compared with the
        stored values, so that a replica behind the commit log is checked too."""
        try:
            probe = self._new_connector(r.key, r.target)
        except AmberliteError as e:  # its feature is no longer declared
            return 0, r.last_file_id, str(e)
        indexed, applied = 0, r.last_file_id
        try:
            with self._lock, self._file_lock(r.key, r.target):
                loaded = probe.load()
                indexed, applied = probe.count(), probe.applied_file_id
                reason = self._ahead(applied, r.key) if loaded else None
                if reason is None and loaded:
                    self._catch_up(probe, may_save=False)
                    reason = self._content_damage(probe)
        except ReplicaDamaged as e:
            reason = e.reason
        if reason is not None:
            self._mark_damaged(r.key, r.target, reason)
        return indexed, applied, reason


def _read_in_order(paths: Sequence[Path], output: pa.DataType) -> pa.Table:
    """(entity_id, value) of committed files, concatenated in commit order."""
    parts = []
    for p in paths:
        t = pq.read_table(p, columns=[ENTITY_ID, VALUE])
        if t.schema.field(VALUE).type != output:
            t = t.set_column(1, VALUE, t.column(VALUE).cast(output))
        parts.append(t)
    return pa.concat_tables(parts)


def _latest_per_entity(table: pa.Table) -> pa.Table:
    """(entity_id, value) rows with one row per entity: the last row (latest commit) wins."""
    ids = table.column(ENTITY_ID).to_numpy(zero_copy_only=False)
    if len(ids) == 0:
        return table.select([ENTITY_ID, VALUE])
    _, first_from_end = np.unique(ids[::-1], return_index=True)
    keep = np.sort(len(ids) - 1 - first_from_end)
    if len(keep) == len(ids):
        return table.select([ENTITY_ID, VALUE])
    return table.take(pa.array(keep)).select([ENTITY_ID, VALUE])


def _fault(point: str) -> None:
    faults.point(point)


_MANAGERS: weakref.WeakSet[ReplicaManager] = weakref.WeakSet()


@atexit.register
def _flush_at_exit() -> None:
    for manager in list(_MANAGERS):
        try:
            manager.flush()
        except Exception:  # noqa: BLE001 - the next open replays from the commit log
            log.warning(
                "could not save a replica at exit; it will catch up on next use", exc_info=True
            )
