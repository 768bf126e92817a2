"""Triggers: compute on new media (``watch``) and over a new feature version (``backfill``).

Every trigger that does work is a catalog record (table ``triggers``): what started it, when,
why, its state (``running`` / ``done`` / ``failed`` / ``interrupted``) and what it computed.
The runs it causes carry ``trigger = '<kind>#<trigger_id>'``, so ``Store.status()`` shows
what ran, when and why.

``watch`` polls a folder. A file is handled once its size and modification time are the same
on two consecutive polls (a copy in progress is left alone). Identity is the content hash, so
a file that is renamed, moved or touched without its bytes changing only updates the asset's
path: nothing is computed and no trigger is recorded. A file whose bytes change is a new
asset: it is ingested and the newest version of every ``on_ingest`` feature is computed for it.

``backfill("framing@2")`` computes a feature version over the assets that have values of an
older version, in chunks of assets. Values commit as batches finish, so an interrupted
backfill loses at most the batches in flight: a rerun computes only what is missing (the
memo guarantees it) and marks the dead run's record ``interrupted``.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import logging
import os
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
from tqdm import tqdm

from amberlite.context import context_of
from amberlite.errors import MediaError, ResolveError
from amberlite.ingest import compute_on_ingest, ingest
from amberlite.memo.store import now
from amberlite.run.resolve import RunStats, pid_alive

log = logging.getLogger(__name__)
HOST = socket.gethostname()
MEDIA_PATTERNS = ("*.mp4", "*.mov", "*.mkv", "*.webm", "*.avi", "*.m4v", "*.mxf", "*.ts")


def recent(ctx: Any, limit: int = 10) -> pl.DataFrame:
    """The newest trigger records, for ``Store.status``."""
    with ctx.catalog.read() as con:
        return con.sql(
            """SELECT trigger_id, kind, target, state, reason, started_at, finished_at,
                      assets, computed, failed FROM triggers
               ORDER BY trigger_id DESC LIMIT $n""",
            params={"n": limit},
        ).pl()


def _start(ctx: Any, kind: str, target: str, reason: str, assets: int, started) -> int:
    with ctx.catalog.write() as con:
        tid = con.execute("SELECT nextval('trigger_seq')").fetchone()[0]
        con.execute(
            """INSERT INTO triggers VALUES (?, ?, ?, ?, 'running', ?, ?, ?, NULL, ?, 0, 0)""",
            [tid, kind, target, reason, HOST, os.getpid(), started, assets],
        )
    return tid


def _update(ctx: Any, tid: int, computed: int, failed: int, state: str | None = None) -> None:
    with ctx.catalog.write() as con:
        con.execute(
            """UPDATE triggers SET computed = ?, failed = ?, state = coalesce(?, state),
                 finished_at = CASE WHEN ? IS NULL THEN finished_at ELSE ? END
               WHERE trigger_id = ?""",
            [computed, failed, state, state, now(), tid],
        )


def _mark_dead(ctx: Any, kind: str, target: str) -> list[int]:
    """Records of this kind and target left 'running' by a dead process: 'interrupted'."""
    with ctx.catalog.write() as con:
        rows = con.execute(
            """SELECT trigger_id, host, pid FROM triggers WHERE kind = ? AND target = ?
               AND state = 'running'""",
            [kind, target],
        ).fetchall()
        dead = [t for t, host, pid in rows if host == HOST and not pid_alive(pid)]
        if dead:
            con.execute(
                """UPDATE triggers SET state = 'interrupted'
                   WHERE trigger_id IN (SELECT unnest(?::BIGINT[]))""",
                [dead],
            )
    return dead


def _flatten(stats: RunStats) -> list[RunStats]:
    return [s for i in stats.inputs for s in _flatten(i)] + [stats]


# -- on new media -----------------------------------------------------------------------------
@dataclass
class WatchCycle:
    """What one poll did. ``trigger_id`` is None when nothing new arrived."""

    trigger_id: int | None = None
    new_assets: list[str] = field(default_factory=list)
    moved: list[str] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    runs: list[RunStats] = field(default_factory=list)

    @property
    def active(self) -> bool:
        return bool(self.new_assets or self.moved or self.failures)

    def summary(self) -> str:
        parts = [f"{len(self.new_assets)} new asset(s)"]
        if self.moved:
            parts.append(f"{len(self.moved)} known file(s) re-pathed")
        if self.failures:
            parts.append(f"{len(self.failures)} unreadable")
        head = f"trigger #{self.trigger_id}: " if self.trigger_id else ""
        lines = [head + ", ".join(parts)]
        lines += ["  " + s.summary() for r in self.runs for s in _flatten(r)]
        lines += [f"  failed {p}: {why}" for p, why in self.failures]
        return "\n".join(lines)


Signature = tuple[int, int]  # (size, mtime_ns)


class Watcher:
    """Polls one folder (recursively) and ingests new or changed media files."""

    def __init__(
        self,
        ctx: Any,
        folder: str | os.PathLike[str],
        *,
        patterns: Sequence[str] = MEDIA_PATTERNS,
        executor: Any = None,
        progress: bool | None = None,
    ) -> None:
        self.ctx = context_of(ctx)
        self.folder = Path(folder).absolute()
        if not self.folder.is_dir():
            raise MediaError(self.folder, "not a folder (watch needs a folder to poll)")
        self.patterns = tuple(patterns)
        self.executor = executor
        self.progress = progress
        self.handled: dict[str, Signature] = self._known_files()
        self.pending: dict[str, Signature] = {}

    def _scan(self) -> dict[str, Signature]:
        out = {}
        for root, _dirs, files in os.walk(self.folder):
            for name in files:
                if any(fnmatch.fnmatch(name.lower(), p) for p in self.patterns):
                    path = os.path.join(root, name)
                    try:
                        st = os.stat(path)
                    except OSError:
                        continue  # gone between listing and stat
                    out[path] = (st.st_size, st.st_mtime_ns)
        return out

    def _known_files(self) -> dict[str, Signature]:
        """Files the catalog already has at this path with this size, unmodified since their
        ingest: not re-hashed when the watcher starts."""
        rows = self.ctx.catalog.query("SELECT path, size_bytes, ingested_at FROM assets")
        known = {p: (size, ts) for p, size, ts in rows}
        out = {}
        for path, sig in self._scan().items():
            if path in known and known[path][0] == sig[0]:
                at = known[path][1]  # ingested_at is naive UTC
                ingested = at.replace(tzinfo=dt.timezone.utc).timestamp() if at else 0.0
                if sig[1] / 1e9 <= ingested + 1.0:
                    out[path] = sig
        return out

    def poll(self, settle: bool = True) -> WatchCycle:
        """One scan: handle files whose signature changed and (with ``settle``) held still
        since the previous poll."""
        started = now()
        files = self._scan()
        ready = []
        for path, sig in sorted(files.items()):
            if self.handled.get(path) == sig:
                continue
            if settle and self.pending.get(path) != sig:
                self.pending[path] = sig
                continue
            ready.append(path)
        self.pending = {p: s for p, s in self.pending.items() if p in files and p not in ready}
        cycle = self._handle(ready, started) if ready else WatchCycle()
        for path in ready:
            self.handled[path] = files[path]
        return cycle

    def _handle(self, paths: list[str], started) -> WatchCycle:
        before = dict(self.ctx.catalog.query("SELECT asset_id, path FROM assets"))
        report = ingest(self.ctx, paths, progress=False, compute=False)
        cycle = WatchCycle(failures=list(report.failures))
        new_ids: list[str] = []
        for row in report.assets:
            if row["asset_id"] in before or row["asset_id"] in new_ids:
                if before.get(row["asset_id"]) != row["path"]:
                    cycle.moved.append(row["path"])  # same bytes elsewhere: path updated
            else:
                new_ids.append(row["asset_id"])
                cycle.new_assets.append(row["alias"])
        if not new_ids and not cycle.failures:
            return cycle  # renamed or touched: same bytes, nothing to do
        names = [os.path.relpath(r["path"], self.folder) for r in report.assets]
        names = [n for n, r in zip(names, report.assets) if r["asset_id"] in new_ids]
        names += [f"{os.path.relpath(p, self.folder)} (unreadable)" for p, _ in cycle.failures]
        reason = "new media: " + ", ".join(names)
        tid = _start(self.ctx, "watch", str(self.folder), reason[:2000], len(new_ids), started)
        cycle.trigger_id = tid
        try:
            label = f"watch#{tid}"
            cycle.runs = on_ingest(self.ctx, new_ids, label, self.executor, self.progress)
        except BaseException:
            _update(self.ctx, tid, *_totals(cycle.runs), state="failed")
            raise
        computed, failed = _totals(cycle.runs)
        _update(self.ctx, tid, computed, failed + len(cycle.failures), state="done")
        return cycle


def _totals(runs: Sequence[RunStats]) -> tuple[int, int]:
    flat = [s for r in runs for s in _flatten(r)]
    return sum(s.computed for s in flat), sum(s.failed for s in flat)


def on_ingest(
    ctx: Any, asset_ids: Sequence[str], trigger: str, executor: Any, progress: bool | None
) -> list[RunStats]:
    """Compute the newest version of every ``on_ingest`` feature over these assets."""
    if not asset_ids:
        return []
    return compute_on_ingest(context_of(ctx), asset_ids, trigger, executor, progress)


def watch(
    ctx: Any,
    folder: str | os.PathLike[str],
    interval: float = 2.0,
    *,
    once: bool = False,
    max_cycles: int | None = None,
    patterns: Sequence[str] = MEDIA_PATTERNS,
    executor: Any = None,
    progress: bool | None = None,
    on_cycle: Callable[[WatchCycle], None] | None = None,
) -> list[WatchCycle]:
    """Poll ``folder`` every ``interval`` seconds until interrupted (Ctrl-C), ``max_cycles``
    polls, or one immediate scan with ``once``; returns the cycles that did something."""
    if interval <= 0:
        raise ResolveError(f"watch interval must be positive, got {interval}")
    watcher = Watcher(ctx, folder, patterns=patterns, executor=executor, progress=progress)
    done: list[WatchCycle] = []
    cycles = 0
    try:
        while True:
            cycle = watcher.poll(settle=not once)
            cycles += 1
            if cycle.active:
                done.append(cycle)
                if on_cycle is not None:
                    on_cycle(cycle)
            if once or (max_cycles is not None and cycles >= max_cycles):
                break
            time.sleep(interval)
    except KeyboardInterrupt:
        log.info("watch stopped")
    return done


# -- new feature versions ---------------------------------------------------------------------
@dataclass
class BackfillReport:
    """What a backfill did (``trigger_id`` None: nothing had an older version)."""

    feature: str
    trigger_id: int | None = None
    from_versions: list[int] = field(default_factory=list)
    assets: int = 0
    requested: int = 0
    already_stored: int = 0
    computed: int = 0
    failed: int = 0
    seconds: float = 0.0
    resumed: list[int] = field(default_factory=list)

    def summary(self) -> str:
        if self.trigger_id is None:
            return f"{self.feature}: no asset has values of an older version; nothing to do"
        again = f" (resuming interrupted #{', #'.join(map(str, self.resumed))})"
        return (
            f"backfill #{self.trigger_id} {self.feature} over {self.assets} assets that had "
            f"v{', v'.join(map(str, self.from_versions))}"
            + (again if self.resumed else "")
            + f": {self.requested} requested, {self.already_stored} already stored, "
            f"{self.computed} computed, {self.failed} failed in {self.seconds:.2f} s"
        )


def assets_with_versions(ctx: Any, name: str, versions: Sequence[int]) -> list[str]:
    """Asset ids having any committed value of ``name`` at one of ``versions`` (any params)."""
    rows = ctx.catalog.query(
        """SELECT path FROM memo_files WHERE feature = ?
           AND version IN (SELECT unnest(?::INTEGER[]))
           AND file_id NOT IN (SELECT file_id FROM retired_files)""",
        [name, list(versions)],
    )
    if not rows:
        return []
    import duckdb

    con = duckdb.connect()
    try:
        files = [str(ctx.root / r[0]) for r in rows]
        got = con.execute(
            "SELECT DISTINCT asset_id FROM read_parquet($f) ORDER BY 1", {"f": files}
        ).fetchall()
    finally:
        con.close()
    return [r[0] for r in got]


def backfill(
    ctx: Any,
    feature: str,
    *,
    from_version: int | None = None,
    params: Mapping[str, Any] | None = None,
    executor: Any = None,
    progress: bool | None = None,
    chunk: int = 8,
) -> BackfillReport:
    """Compute ``feature`` (``name@version``; unpinned: the newest) over the assets that have
    values of an older version (``from_version``; default every older one), ``chunk`` assets
    at a time, with progress. Rerunning after an interruption computes only what is missing.
    """
    spec = ctx.feature(feature)
    older = [v for v in ctx.registry.versions(spec.name) if v < spec.version]
    if from_version is not None:
        if from_version not in older:
            raise ResolveError(
                f"{spec.name} has no version {from_version} older than {spec.version} "
                f"(older versions: {', '.join(map(str, older)) or 'none'})"
            )
        older = [from_version]
    if chunk < 1:
        raise ResolveError(f"backfill chunk must be at least 1 asset, got {chunk}")
    report = BackfillReport(spec.key, from_versions=older)
    asset_ids = assets_with_versions(ctx, spec.name, older) if older else []
    if not asset_ids:
        return report
    report.assets = len(asset_ids)
    report.resumed = _mark_dead(ctx, "backfill", spec.key)
    reason = f"new version replacing v{', v'.join(map(str, older))}"
    if report.resumed:
        reason += f"; resumes #{', #'.join(map(str, report.resumed))}"
    t0 = time.perf_counter()
    report.trigger_id = tid = _start(ctx, "backfill", spec.key, reason, len(asset_ids), now())
    bar = tqdm(
        total=len(asset_ids),
        desc=f"backfill {spec.key}",
        unit="asset",
        disable=(not progress) if progress is not None else None,
    )
    state = "failed"
    try:
        for i in range(0, len(asset_ids), chunk):
            part = asset_ids[i : i + chunk]
            stats = ctx.resolver.materialize(
                spec, params, part, trigger=f"backfill#{tid}", executor=executor, progress=False
            )
            report.requested += stats.requested
            report.already_stored += stats.stored
            report.computed += stats.computed
            report.failed += stats.failed
            _update(ctx, tid, report.computed, report.failed)
            bar.update(len(part))
        state = "done"
    except KeyboardInterrupt:
        state = "interrupted"
        raise
    finally:
        bar.close()
        report.seconds = time.perf_counter() - t0
        _update(ctx, tid, report.computed, report.failed, state=state)
    return report
