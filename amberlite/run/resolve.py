"""The resolver: which entities lack a value, compute only those, commit, report.

``materialize`` walks a feature's inputs first (in dependency order), then, in one short
catalog transaction, finds the entities of its scope that have no stored value, no recorded
failure (unless retrying) and no live claim by another writer, and claims them. It computes
the claimed entities in batches through an executor and commits finished batches as they
arrive (values, failures, and for a segmenter the entities it produces), grouping those that
finish within ``COMMIT_EVERY_S`` into one transaction.

A claim takes at most one chunk of the scope (:func:`claim_size`: a few batches per worker),
so that several processes, on one host or on several sharing the store, split the work: each
computes and commits its chunk, then claims the next. Entities claimed by another live
process are waited for, so that on return every entity of the scope has a value or a
failure. A claim whose owner died is taken over.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import sys
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from amberlite.catalog.changes import CLAIMS, RUNS, entities_key
from amberlite.core.ids import frame_id_sql, frame_number, span_id
from amberlite.memo.key import MemoKey, memo_key
from amberlite.memo.store import ASSET_ID, ENTITY_ID, VALUE, now

if TYPE_CHECKING:  # counting (a query's scope) needs none of these; computing imports them
    import pyarrow as pa

    from amberlite.define.decorators import FeatureSpec
    from amberlite.define.info import Segmentation
    from amberlite.run.compute import BatchResult, Executor, Task

if TYPE_CHECKING:
    from amberlite.context import StoreContext

log = logging.getLogger(__name__)
HOST = socket.gethostname()
CLAIM_TTL = dt.timedelta(hours=6)
DEFAULT_BATCH = 32
# A claim holds CLAIM_BATCHES batches per worker, or 1/CLAIM_SHARE of what is left to claim
# when that is more: few claim transactions on a large scope, fine-grained sharing at its end.
CLAIM_BATCHES = 2
CLAIM_SHARE = 8
COMMIT_EVERY_S = 2.0  # finished batches wait at most this long to be committed together
WAIT_RECHECK_S = 2.0  # a process waiting for others' claims claims again at least this often
PLAIN_EVERY_S = 2.0  # progress on a stderr that is not a terminal: at most a line this often


def claim_size(spec: FeatureSpec, workers: int, claimable: int) -> int:
    """How many of ``claimable`` entities one claim takes: ``CLAIM_BATCHES`` batches for
    each worker, or ``claimable / CLAIM_SHARE`` when that is more (the number of claims over
    a large scope grows with its logarithm); and once less than two such chunks are left,
    half of what is left (one batch per worker at least), so that processes sharing the
    scope finish together.

    Example:
        >>> import pyarrow as pa
        >>> from amberlite.define.decorators import FeatureSpec
        >>> spec = FeatureSpec("f", len, "frame", 1, pa.int64())  # batches of 32
        >>> [claim_size(spec, 2, n) for n in (10_000, 600, 216, 100, 20)]
        [1250, 128, 108, 64, 64]
    """
    batch = spec.batch if isinstance(spec.batch, int) else DEFAULT_BATCH
    workers = max(1, workers)
    size = max(CLAIM_BATCHES * workers * batch, claimable // CLAIM_SHARE)
    if claimable < 2 * size:
        size = max(workers * batch, -(-claimable // 2))
    return size


@dataclass
class RunStats:
    """What one materialization did, for one feature@version."""

    feature: str
    requested: int = 0
    stored: int = 0
    computed: int = 0
    failed: int = 0
    skipped_failed: int = 0
    seconds: float = 0.0
    inputs: list[RunStats] = field(default_factory=list)
    interrupted: bool = False

    def summary(self) -> str:
        return (
            f"{self.feature}: {self.requested} requested, {self.stored} already stored, "
            f"{self.computed} computed, {self.failed} failed"
            + (f", {self.skipped_failed} skipped (failed before)" if self.skipped_failed else "")
            + f" in {self.seconds:.2f} s"
            + (" (interrupted)" if self.interrupted else "")
        )


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Progress:
    """Progress of one materialization: a tqdm bar when stderr is a terminal; otherwise plain
    lines on stderr (``shots@2: 120/400 entities, 30 s``), at most one every
    ``PLAIN_EVERY_S`` and a last one at the end when any was printed, never tqdm's control
    characters. ``progress=False`` shows nothing."""

    def __init__(self, label: str, total: int, unit: str, progress: bool | None) -> None:
        self.label, self.total, self.unit, self.n = label, total, unit, 0
        self._lock = threading.Lock()
        self._live: dict[str, int] = {}  # frames decoded, not yet committed, by asset
        self.bar = None
        self.plain = False
        self.printed = False
        self.started = self.last = time.monotonic()
        if progress is False:
            return
        if sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=label, unit=unit.rstrip("s"), leave=False)
        else:
            self.plain = True

    def update(self, k: int) -> None:
        if k <= 0:
            return
        self.n += k
        if self.bar is not None:
            self.bar.update(k)
        elif self.plain and time.monotonic() - self.last >= PLAIN_EVERY_S:
            self._line()

    def live(self, asset_id: str, k: int, cap: int) -> None:
        """``k`` more frames of ``asset_id`` decoded (from any thread): shown before the
        asset's value commits, never more than its ``cap`` frames."""
        with self._lock:
            had = self._live.get(asset_id, 0)
            now_ = min(cap, had + k)
            self._live[asset_id] = now_
            self.update(now_ - had)

    def settle(self, asset_ids: Iterable[str], k: int) -> None:
        """A commit of ``k`` units for ``asset_ids``: what was shown live counts towards it."""
        with self._lock:
            shown = sum(self._live.pop(a, 0) for a in asset_ids)
            self.update(k - shown)

    def _line(self) -> None:
        self.last = time.monotonic()
        self.printed = True
        print(
            f"{self.label}: {self.n}/{self.total} {self.unit}, {self.last - self.started:.0f} s",
            file=sys.stderr,
            flush=True,
        )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.plain and self.printed:
            self._line()


class Resolver:
    """Drives materialization for one store."""

    def __init__(self, ctx: StoreContext) -> None:
        self.ctx = ctx
        self.owner = f"{HOST}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._complete_cache: dict[tuple, tuple] = {}

    # -- entity sets --------------------------------------------------------------------------
    def producer_label(self, entity_type: str, params: Mapping[str, Any] | None = None) -> str:
        return self.ctx.producer_label(entity_type, params)

    def entity_sql(
        self,
        entity_type: str,
        asset_ids: Sequence[str] | None,
        producer: str | None = None,
        entity_ids: Sequence[str] | None = None,
    ) -> tuple[str, dict[str, Any]]:
        """SQL selecting (entity_id, asset_id) of a scope (None: every asset; ``entity_ids``
        narrows it to those entities), and its parameters."""
        sql, params = self._entity_sql(entity_type, asset_ids, producer)
        if entity_ids is None:
            return sql, params
        params["eids"] = list(entity_ids)
        return f"SELECT * FROM ({sql}) WHERE entity_id IN (SELECT unnest($eids::TEXT[]))", params

    def entity_table(self, entity_type: str, asset_ids: Sequence[str] | None) -> Any:
        """The entities of a type in an asset scope as a polars DataFrame (entity_id, asset_id
        and, for spans, idx, start_frame, end_frame, start_s, end_s), by asset and position."""
        sql, params = self._entity_sql(entity_type, asset_ids, None)
        if entity_type not in ("asset", "frame"):
            sql = (
                "SELECT entity_id, asset_id, idx, start_frame, end_frame, start_s, end_s FROM "
                "entities WHERE entity_type = $etype AND producer = $producer AND entity_id IN "
                f"(SELECT entity_id FROM ({sql})) ORDER BY asset_id, idx"
            )
        with self.ctx.catalog.read() as con:
            return con.sql(sql, params=params).pl()

    def _entity_sql(
        self, entity_type: str, asset_ids: Sequence[str] | None, producer: str | None
    ) -> tuple[str, dict[str, Any]]:
        params: dict[str, Any] = {}
        scope = "TRUE"
        if asset_ids is not None:
            params["assets"] = list(asset_ids)
            scope = "asset_id IN (SELECT unnest($assets::TEXT[]))"
        if entity_type == "asset":
            return f"SELECT asset_id AS entity_id, asset_id FROM assets WHERE {scope}", params
        if entity_type == "frame":
            return (
                f"SELECT {frame_id_sql('asset_id', 'n')} AS entity_id, asset_id FROM "
                f"(SELECT asset_id, unnest(range(frame_count)) AS n FROM assets WHERE {scope})",
                params,
            )
        params["producer"] = producer or self.producer_label(entity_type)
        params["etype"] = entity_type
        return (
            "SELECT entity_id, asset_id FROM entities WHERE entity_type = $etype "
            f"AND producer = $producer AND {scope}",
            params,
        )

    # -- claims -------------------------------------------------------------------------------
    def _scope(
        self,
        con,
        key: MemoKey,
        spec: FeatureSpec,
        asset_ids: Sequence[str] | None,
        entity_ids: Sequence[str] | None = None,
        since: dt.datetime | None = None,
        seg: Segmentation | None = None,
    ) -> tuple[str, dict[str, Any]]:
        """SQL of the scope's entities with is_stored / is_failed / is_held flags (and, with
        ``since``, failed_since: a failure recorded at or after ``since``). ``seg``: the
        segmentation of a span type (None: the store's)."""
        producer = seg.label if seg is not None else None
        ents_sql, params = self.entity_sql(spec.entity, asset_ids, producer, entity_ids)
        files = self.ctx.memo.files(key, con)
        params.update(feature=key.feature, version=key.version, pkey=key.params_key)
        stored_sql = "SELECT NULL::TEXT AS entity_id WHERE false"
        if files:
            stored_sql = "SELECT entity_id FROM read_parquet($files)"
            params["files"] = files
        failed_since = ""
        if since is not None:
            params["since"] = since
            failed_since = (
                ", e.entity_id IN (SELECT entity_id FROM fails WHERE failed_at >= $since) "
                "AS failed_since"
            )
        return (
            f"""
            WITH ents AS ({ents_sql}),
            stored AS ({stored_sql}),
            fails AS (SELECT entity_id, failed_at FROM failures WHERE feature = $feature
                      AND version = $version AND params_key = $pkey),
            held AS (SELECT entity_id, owner FROM claims WHERE feature = $feature
                     AND version = $version AND params_key = $pkey)
            SELECT e.entity_id, e.asset_id,
                   e.entity_id IN (SELECT entity_id FROM stored) AS is_stored,
                   e.entity_id IN (SELECT entity_id FROM fails) AS is_failed,
                   e.entity_id IN (SELECT entity_id FROM held) AS is_held{failed_since}
            FROM ents e""",
            params,
        )

    @staticmethod
    def _counts(con, base: str, params: dict[str, Any]) -> dict[str, int]:
        row = con.execute(
            f"""SELECT count(*), count_if(is_stored), count_if(NOT is_stored AND is_failed),
                       count_if(NOT is_stored AND is_held) FROM ({base})""",
            params,
        ).fetchall()[0]
        # count_if over no rows is NULL: an empty scope (a store with no videos) counts 0
        return {k: int(v or 0) for k, v in zip(("requested", "stored", "failed", "held"), row)}

    def _claim(
        self,
        key: MemoKey,
        spec: FeatureSpec,
        asset_ids: Sequence[str] | None,
        retry_since: dt.datetime | None,
        workers: int,
        entity_ids: Sequence[str] | None = None,
        seg: Segmentation | None = None,
    ) -> tuple[list[tuple], dict[str, int]]:
        """In one write transaction: count the scope, claim one chunk (:func:`claim_size`)
        of what nobody stored, holds or failed (with ``retry_since``: failed since then).

        Returns the claimed ``(entity_id, asset_id)`` in (asset, entity) order (for spans,
        followed by idx, start_frame, end_frame, start_s, end_s) and the counts,
        ``claimable`` (before this claim) among them. A feature batched by asset claims whole
        assets."""
        with self.ctx.catalog.write(touches=(CLAIMS,)) as con:  # no answer reads claims
            self._drop_stale_claims(con, key)
            base, params = self._scope(con, key, spec, asset_ids, entity_ids, retry_since, seg)
            con.execute(f"CREATE TEMP TABLE scope AS {base}", params)
            counts = self._counts(con, "SELECT * FROM scope", {})
            failed = "failed_since" if retry_since is not None else "is_failed"
            cond = f"NOT is_stored AND NOT is_held AND NOT {failed}"
            claimable = con.execute(f"SELECT count_if({cond}) FROM scope").fetchone()[0] or 0
            counts["claimable"] = claimable
            if spec.entity == "asset":  # progress in frames: those of the assets left
                counts["left_frames"] = con.execute(
                    f"""SELECT coalesce(sum(a.frame_count), 0) FROM scope s JOIN assets a
                        ON a.asset_id = s.entity_id
                        WHERE NOT s.is_stored AND NOT s.{failed}"""
                ).fetchone()[0]
            limit = claim_size(spec, workers, claimable)
            select, qargs = "SELECT s.entity_id, s.asset_id FROM scope s", []
            order, rest = "s.asset_id, s.entity_id", "s.entity_id > ?"
            if spec.entity not in ("asset", "frame"):  # spans: their frames come along
                select = (
                    "SELECT s.entity_id, s.asset_id, e.idx, e.start_frame, e.end_frame, "
                    "e.start_s, e.end_s FROM scope s JOIN entities e ON e.entity_id = "
                    "s.entity_id AND e.entity_type = ? AND e.producer = ?"
                )
                label = seg.label if seg is not None else self.producer_label(spec.entity)
                qargs = [spec.entity, label]
                # in time order: a batch is a run of neighbouring spans, decoded in one pass
                order, rest = "s.asset_id, e.idx, s.entity_id", "(e.idx, s.entity_id) > (?, ?)"
            todo = con.execute(
                f"{select} WHERE {cond} ORDER BY {order} LIMIT ?", [*qargs, limit]
            ).fetchall()
            if spec.batch == "asset" and len(todo) == limit:  # the rest of the last asset
                last = todo[-1]
                after = [last[2], last[0]] if spec.entity not in ("asset", "frame") else [last[0]]
                todo += con.execute(
                    f"{select} WHERE {cond} AND s.asset_id = ? AND {rest} ORDER BY {order}",
                    [*qargs, last[1], *after],
                ).fetchall()
            con.execute("DROP TABLE scope")
            if todo:
                con.execute(
                    """INSERT INTO claims SELECT ?, ?, ?, entity_id, ?, ?, ?, ?
                       FROM (SELECT unnest(?::TEXT[]) AS entity_id)""",
                    [*key.sql_args(), self.owner, HOST, os.getpid(), now(), [t[0] for t in todo]],
                )
        return todo, counts

    def counts(
        self,
        spec: FeatureSpec,
        params: Mapping[str, Any] | None,
        asset_ids: Sequence[str] | None,
        entity_ids: Sequence[str] | None = None,
        con=None,
        seg: Segmentation | None = None,
    ) -> dict[str, int]:
        """Requested / stored / failed / held counts of one feature over a scope, in one
        shared-lock read (or on ``con``, an open catalog connection); computes and claims
        nothing."""
        if con is None:
            with self.ctx.catalog.read() as con:
                return self.counts(spec, params, asset_ids, entity_ids, con, seg)
        key = memo_key(spec, params)
        base, qparams = self._scope(con, key, spec, asset_ids, entity_ids, None, seg)
        return {k: int(v or 0) for k, v in self._counts(con, base, qparams).items()}

    def is_complete(
        self,
        spec: FeatureSpec,
        params: Mapping[str, Any] | None,
        asset_ids: Sequence[str] | None,
        seg: Segmentation | None = None,
    ) -> bool:
        """True when the feature and everything it depends on has a value or a recorded
        failure for every entity of the scope: one shared-lock read, no claims. A positive
        answer is remembered until the catalog changes."""
        key = memo_key(spec, params)
        cache_key = (key, None if asset_ids is None else tuple(asset_ids), seg and seg.label)
        stamp = self.ctx.catalog.stamp()
        if self._complete_cache.get(cache_key) == stamp:
            return True
        with self.ctx.catalog.read() as con:
            for dep, dep_params in self._closure(spec, params, seg):
                dk = memo_key(dep, dep_params)
                base, qparams = self._scope(con, dk, dep, asset_ids, None, None, seg)
                c = self._counts(con, base, qparams)
                if c["requested"] != c["stored"] + c["failed"]:
                    return False
        self._complete_cache[cache_key] = stamp  # taken before the read: never too new
        return True

    def _closure(
        self, spec: FeatureSpec, params: Mapping[str, Any] | None, seg: Segmentation | None
    ):
        """The feature, its inputs and the segmenters of their entity types, deepest first."""
        out: list[tuple[FeatureSpec, Mapping[str, Any] | None]] = []
        seen: set[tuple[str, str]] = set()

        def visit(s: FeatureSpec, p: Mapping[str, Any] | None) -> None:
            k = memo_key(s, p)
            if (k.label, k.params_key) in seen:
                return
            seen.add((k.label, k.params_key))
            for ref in s.inputs:
                visit(self.ctx.registry.resolve_input(ref), dict(ref.params))
            if s.entity not in ("asset", "frame"):
                sg = seg if seg is not None else self.ctx.segmentation(s.entity, code=True)
                visit(self.ctx.registry.get(sg.spec.name, sg.spec.version), dict(sg.params))
            out.append((s, p))

        visit(spec, params)
        return out

    def check_models(self, spec: FeatureSpec) -> None:
        """Refuse to compute with a model file that differs from the one the feature was
        applied with (its values would silently mix with the stored ones)."""
        import json

        from amberlite.errors import DefinitionError

        rows = self.ctx.catalog.query(
            "SELECT declaration FROM features WHERE name = ? AND version = ?",
            [spec.name, spec.version],
        )
        if not rows:
            return
        applied = json.loads(rows[0][0] or "{}").get("models") or {}
        for m in spec.models:
            was = (applied.get(m.name) or {}).get("sha256")
            now_sha = m.sha256()
            if was is not None and was != now_sha:
                raise DefinitionError(
                    f"{spec.key}: model {m.key} file {m.file} changed since it was applied "
                    f"(sha256 {now_sha[:12]}, applied {was[:12]}): bump the model's and the "
                    "feature's versions and apply again"
                )

    def _drop_stale_claims(self, con, key: MemoKey) -> None:
        holders = con.execute(
            """SELECT DISTINCT host, pid, owner FROM claims
               WHERE feature = ? AND version = ? AND params_key = ?""",
            key.sql_args(),
        ).fetchall()
        for host, pid, owner in holders:
            if owner != self.owner and host == HOST and not pid_alive(pid):
                con.execute("DELETE FROM claims WHERE owner = ?", [owner])
        con.execute("DELETE FROM claims WHERE claimed_at < ?", [now() - CLAIM_TTL])

    def _wait_for_change(self, stamp: tuple) -> None:
        """Sleep until the catalog changes (another writer committed or released), or at most
        ``WAIT_RECHECK_S`` (a holder may have died): cheaper than claiming again and again."""
        deadline = time.monotonic() + WAIT_RECHECK_S
        while time.monotonic() < deadline and self.ctx.catalog.stamp() == stamp:
            time.sleep(0.05)

    def _release(self, key: MemoKey) -> None:
        with self.ctx.catalog.write(touches=(CLAIMS,)) as con:
            con.execute(
                """DELETE FROM claims WHERE feature = ? AND version = ? AND params_key = ?
                   AND owner = ?""",
                [*key.sql_args(), self.owner],
            )

    # -- materialize --------------------------------------------------------------------------
    def materialize(
        self,
        spec: FeatureSpec,
        params: Mapping[str, Any] | None,
        asset_ids: Sequence[str] | None,
        *,
        retry_failed: bool = False,
        executor: str | Executor | None = None,
        trigger: str = "request",
        progress: bool | None = None,
        entity_ids: Sequence[str] | None = None,
        seg: Segmentation | None = None,
        _done: set[tuple[str, str]] | None = None,
    ) -> RunStats:
        """Make every entity of ``spec.entity`` in the asset scope have a value or a failure.

        ``entity_ids`` narrows the scope to those entities of ``spec.entity`` (and of inputs
        over the same entity type); inputs over assets keep the asset scope. ``seg``: the
        segmentation of ``spec.entity`` when it is a span type (None: the store's)."""
        from amberlite.run.executor import make_executor

        key = memo_key(spec, params)
        if spec.models:
            self.check_models(spec)
        done = _done if _done is not None else set()
        stats = RunStats(spec.key)
        started = time.perf_counter()
        started_at = now()
        exe = make_executor(executor)
        # Inputs first, in dependency order; then the segmenter that makes our entities.
        for ref in spec.inputs:
            dep = self.ctx.registry.resolve_input(ref)
            dep_key = memo_key(dep, dict(ref.params))
            if (dep_key.label, dep_key.params_key) not in done:
                stats.inputs.append(
                    self.materialize(
                        dep,
                        dict(ref.params),
                        asset_ids,
                        retry_failed=retry_failed,
                        executor=exe,
                        trigger=trigger,
                        progress=progress,
                        entity_ids=entity_ids if dep.entity == spec.entity else None,
                        seg=seg if dep.entity == spec.entity else None,
                        _done=done,
                    )
                )
        if spec.entity not in ("asset", "frame"):
            if seg is None:
                seg = self.ctx.segmentation(spec.entity, code=True)
            prod = self.ctx.registry.get(seg.spec.name, seg.spec.version)
            pk = memo_key(prod, seg.params)
            if (pk.label, pk.params_key) not in done:
                stats.inputs.append(
                    self.materialize(
                        prod,
                        dict(seg.params),
                        asset_ids,
                        retry_failed=retry_failed,
                        executor=exe,
                        trigger=trigger,
                        progress=progress,
                        _done=done,
                    )
                )
        done.add((key.label, key.params_key))

        # Claim a chunk, compute and commit it, claim the next; wait while live others hold
        # the rest. With retry_failed, each failure recorded before now is tried once more.
        if not retry_failed:  # a complete dataset needs no write transaction
            c = self.counts(spec, params, asset_ids, entity_ids, seg=seg)
            if c["requested"] == c["stored"] + c["failed"]:
                stats.requested, stats.stored, stats.skipped_failed = (
                    c["requested"],
                    c["stored"],
                    c["failed"],
                )
                stats.seconds = time.perf_counter() - started
                return stats
        retry_since = now() if retry_failed else None
        workers = getattr(exe, "workers", 2)
        first, claimed, finished, bar, total = True, False, False, None, 0
        assets: dict[str, Any] = {}  # asset views, read once per materialization
        try:
            while True:
                todo, counts = self._claim(
                    key, spec, asset_ids, retry_since, workers, entity_ids, seg
                )
                stamp = self.ctx.catalog.stamp()
                # An asset-level feature (a segmenter) counts frames, not whole videos.
                left = counts.get("left_frames", counts["claimable"] + counts["held"])
                if first:
                    stats.requested, stats.stored = counts["requested"], counts["stored"]
                    stats.skipped_failed = 0 if retry_failed else counts["failed"]
                    total = left
                    if total:
                        unit = "frames" if "left_frames" in counts else "entities"
                        bar = Progress(spec.key, total, unit, progress)
                    first = False
                elif bar is not None and total - left > bar.n:  # others' commits count too
                    bar.update(total - left - bar.n)
                if todo:
                    claimed = True
                    self._compute(spec, key, todo, exe, stats, bar, assets)
                elif counts["held"] == 0:  # nobody holds a claim, we neither
                    finished = True
                    break
                else:  # live others hold the rest of our scope: wait for their commits
                    self._wait_for_change(stamp)
        except KeyboardInterrupt as e:
            # Ctrl-C: what was committed stays (``_compute`` flushes finished batches), the
            # claims are given back below, and the run is recorded with trigger
            # '<trigger> (interrupted)'. The stats ride on the exception for the front end.
            stats.interrupted = True
            stats.seconds = time.perf_counter() - started
            runs = e.__dict__.setdefault("runs", [])
            runs.append(stats)
            if stats.computed or stats.failed:
                self._record_run(key, exe.name, f"{trigger} (interrupted)", started_at, stats)
            raise
        finally:
            if bar is not None:
                bar.close()
            if claimed and not finished:  # an error: give back what we still hold
                self._release(key)
        stats.seconds = time.perf_counter() - started
        if stats.computed or stats.failed:
            self._record_run(key, exe.name, trigger, started_at, stats)
        log.debug("materialized %s", stats.summary())
        return stats

    # -- several features, one decode ---------------------------------------------------------
    def materialize_many(
        self,
        requests: Sequence[tuple[FeatureSpec, Mapping[str, Any] | None]],
        asset_ids: Sequence[str] | None,
        *,
        retry_failed: bool = False,
        executor: str | Executor | None = None,
        trigger: str = "request",
        progress: bool | None = None,
        entity_ids: Sequence[str] | None = None,
        seg: Segmentation | None = None,
    ) -> list[RunStats]:
        """:meth:`materialize` of several features, sharing the decode: the requested span
        features (and their span-feature inputs) that can share one (:func:`shares_decode`)
        are computed together, batch by batch, each batch of spans decoded once for all of
        them (:func:`amberlite.run.compute.compute_group`). Memoization, claims, commits and
        failures stay per feature, exactly as :meth:`materialize` does them; the values are
        the same. The rest (other entity types, the Ray executor, process-parallel features)
        is materialized one feature after the other. Returns one :class:`RunStats` per
        request, in order (a span-feature input computed with the group is among the inputs
        of the first request that needs it)."""
        from amberlite.run.executor import make_executor

        exe = make_executor(executor)
        opts = dict(retry_failed=retry_failed, executor=exe, trigger=trigger, progress=progress)
        done: set[tuple[str, str]] = set()
        nodes = self._group_closure(requests, exe)  # (spec, params, level)
        by_key: dict[tuple[str, str], RunStats] = {}
        for level in sorted({lv for _, _, lv in nodes}):
            here = [(sp, p) for sp, p, lv in nodes if lv == level]
            group_keys: set[tuple[str, str]] = set()
            for entity in dict.fromkeys(sp.entity for sp, _ in here):  # a group per span type
                group = [(sp, p) for sp, p in here if sp.entity == entity]
                group = [(sp, p) for sp, p in group if shares_decode(sp, exe)]
                if len(group) < 2:
                    continue
                got = self._materialize_group(group, asset_ids, entity_ids, seg, done, **opts)
                for (sp, p), st in zip(group, got):
                    by_key[_label(sp, p)] = st
                    group_keys.add(_label(sp, p))
            for sp, p in here:
                k = _label(sp, p)
                if k in group_keys:
                    continue
                if k in done:  # an input of an earlier one, materialized with it
                    by_key.setdefault(k, RunStats(sp.key))
                    continue
                by_key[k] = self.materialize(
                    sp,
                    p,
                    asset_ids,
                    entity_ids=entity_ids if sp.entity != "asset" else None,
                    seg=seg if sp.entity not in ("asset", "frame") else None,
                    _done=done,
                    **opts,
                )
        # span-feature inputs computed in the group: among the stats of the first that needs them
        out, shown = [], set()
        requested = {_label(sp, p) for sp, p in requests}
        for sp, p in requests:
            st = by_key[_label(sp, p)]
            for dep in self._group_inputs(sp, exe):
                k = _label(*dep)
                if k not in requested and k not in shown and k in by_key:
                    shown.add(k)
                    st.inputs.insert(0, by_key[k])
            out.append(st)
        return out

    def _group_inputs(self, spec: FeatureSpec, exe) -> list[tuple[FeatureSpec, dict]]:
        """The inputs of ``spec`` that are span features over its entity type sharing a
        decode with it (computed in its group, or in the group before)."""
        out = []
        for ref in spec.inputs:
            dep = self.ctx.registry.resolve_input(ref)
            if dep.entity == spec.entity and shares_decode(dep, exe):
                out.append((dep, dict(ref.params)))
        return out

    def _group_closure(self, requests, exe) -> list[tuple[FeatureSpec, Any, int]]:
        """The requests and, recursively, their span-feature inputs of the same entity type
        that can share a decode (:meth:`_group_inputs`), each with its level: 0 for one
        without such inputs, one more than its deepest such input otherwise."""
        levels: dict[tuple[str, str], int] = {}
        nodes: dict[tuple[str, str], tuple[FeatureSpec, Any]] = {}

        def visit(sp: FeatureSpec, p) -> int:
            k = _label(sp, p)
            if k not in levels:
                deps = self._group_inputs(sp, exe)
                levels[k] = 1 + max((visit(*d) for d in deps), default=-1)
                nodes[k] = (sp, p)
            return levels[k]

        for sp, p in requests:
            visit(sp, p)
        return [(*nodes[k], levels[k]) for k in nodes]

    def _materialize_group(
        self,
        members: list[tuple[FeatureSpec, Any]],
        asset_ids: Sequence[str] | None,
        entity_ids: Sequence[str] | None,
        seg: Segmentation | None,
        done: set[tuple[str, str]],
        *,
        retry_failed: bool,
        executor: Executor,
        trigger: str,
        progress: bool | None,
    ) -> list[RunStats]:
        """Features over one span type, computed together: their other inputs and the
        segmenter first (:meth:`materialize`), then, chunk by chunk, a claim per feature
        (:meth:`_claim`), the union of the claimed spans in time order split into batches
        that the executor computes with one decode each (``map_group``), and each feature's
        finished batches committed as :meth:`_compute` commits them."""
        exe = executor
        opts = dict(retry_failed=retry_failed, executor=exe, trigger=trigger, progress=progress)
        entity = members[0][0].entity
        keys = [memo_key(sp, p) for sp, p in members]
        stats = [RunStats(sp.key) for sp, _ in members]
        started, started_at = time.perf_counter(), now()
        for sp, _ in members:
            if sp.models:
                self.check_models(sp)
        if seg is None:
            seg = self.ctx.segmentation(entity, code=True)
        prod = self.ctx.registry.get(seg.spec.name, seg.spec.version)
        pk = memo_key(prod, seg.params)
        if (pk.label, pk.params_key) not in done:
            stats[0].inputs.append(
                self.materialize(prod, dict(seg.params), asset_ids, _done=done, **opts)
            )
        group_keys = {(k.label, k.params_key) for k in keys}
        for (sp, _), st in zip(members, stats):
            for ref in sp.inputs:
                dep = self.ctx.registry.resolve_input(ref)
                dk = memo_key(dep, dict(ref.params))
                if (dk.label, dk.params_key) in done or (dk.label, dk.params_key) in group_keys:
                    continue
                st.inputs.append(
                    self.materialize(
                        dep,
                        dict(ref.params),
                        asset_ids,
                        entity_ids=entity_ids if dep.entity == entity else None,
                        seg=seg if dep.entity == entity else None,
                        _done=done,
                        **opts,
                    )
                )
        done.update(group_keys)

        active = []
        for m, (sp, p) in enumerate(members):
            if not retry_failed:  # a complete dataset needs no write transaction
                c = self.counts(sp, p, asset_ids, entity_ids, seg=seg)
                if c["requested"] == c["stored"] + c["failed"]:
                    st = stats[m]
                    st.requested, st.stored, st.skipped_failed = (
                        c["requested"],
                        c["stored"],
                        c["failed"],
                    )
                    continue
            active.append(m)
        if active:
            self._run_group(members, keys, stats, active, asset_ids, entity_ids, seg, **opts)
        seconds = time.perf_counter() - started
        for m in active:
            stats[m].seconds = seconds
            if stats[m].computed or stats[m].failed:
                self._record_run(keys[m], exe.name, trigger, started_at, stats[m])
            log.debug(
                "materialized %s (with %d others, one decode)", stats[m].summary(), len(active) - 1
            )
        return stats

    def _run_group(
        self,
        members,
        keys,
        stats,
        active,
        asset_ids,
        entity_ids,
        seg,
        *,
        retry_failed: bool,
        executor: Executor,
        trigger: str,
        progress: bool | None,
    ) -> None:
        """The claim / compute / commit loop of :meth:`_materialize_group` over the
        members ``active`` (those with something missing)."""
        exe = executor
        retry_since = now() if retry_failed else None
        workers = getattr(exe, "workers", 2)
        finished = {m: False for m in active}
        claimed = {m: False for m in active}
        left = {m: 0 for m in active}
        assets: dict[int, dict[str, Any]] = {m: {} for m in active}
        first, bar, total = True, None, 0
        started, started_at = time.perf_counter(), now()
        try:
            while True:
                stamp = self.ctx.catalog.stamp()
                todo_by: dict[int, list[tuple]] = {}
                for m in active:
                    if finished[m]:
                        continue
                    sp = members[m][0]
                    todo, counts = self._claim(
                        keys[m], sp, asset_ids, retry_since, workers, entity_ids, seg
                    )
                    left[m] = counts["claimable"] + counts["held"]
                    if first:
                        st = stats[m]
                        st.requested, st.stored = counts["requested"], counts["stored"]
                        st.skipped_failed = 0 if retry_failed else counts["failed"]
                    if todo:
                        claimed[m] = True
                        todo_by[m] = todo
                    elif counts["held"] == 0:
                        finished[m] = True
                if first:
                    total = sum(left.values())
                    if total:
                        label = " + ".join(members[m][0].key for m in active)
                        bar = Progress(f"{label} (one decode)", total, "entities", progress)
                    first = False
                elif bar is not None and total - sum(left.values()) > bar.n:
                    bar.update(total - sum(left.values()) - bar.n)  # others' commits count too
                if todo_by:
                    self._compute_group(members, keys, todo_by, exe, stats, bar, assets)
                elif all(finished.values()):
                    break
                else:  # live others hold the rest of our scope: wait for their commits
                    self._wait_for_change(stamp)
        except KeyboardInterrupt as e:
            runs = e.__dict__.setdefault("runs", [])
            for m in active:
                st = stats[m]
                st.interrupted = True
                st.seconds = time.perf_counter() - started
                runs.append(st)
                if st.computed or st.failed:
                    self._record_run(keys[m], exe.name, f"{trigger} (interrupted)", started_at, st)
            raise
        finally:
            if bar is not None:
                bar.close()
            for m in active:
                if claimed[m] and not finished[m]:  # an error: give back what we still hold
                    self._release(keys[m])

    def _compute_group(self, members, keys, todo_by, exe, stats, bar, assets) -> None:
        """Compute the members' claimed spans (``todo_by[m]``, rows as :meth:`_claim`
        returns them) in batches of neighbouring spans, each batch with one decode for all
        members; commit as :meth:`_compute` does."""
        views, inputs, params, where = {}, {}, {}, {}
        spans: set[tuple[str, int, str]] = set()
        for m, todo in todo_by.items():
            sp = members[m][0]
            params[m] = sp.resolve_params(json_params(keys[m]))
            views[m] = self._views(sp, todo, assets[m])
            inputs[m] = self._inputs(sp, views[m])
            where[m] = {t[0]: i for i, t in enumerate(todo)}
            spans.update((t[1], t[2], t[0]) for t in todo)
        order = sorted(spans)  # (asset, idx, entity): time order
        workers = getattr(exe, "workers", 2)
        size = max(1, min(DEFAULT_BATCH, len(order) // (workers * 4) or 1))
        for m in todo_by:
            if isinstance(members[m][0].batch, int):
                size = min(size, members[m][0].batch)
        ms = sorted(todo_by)
        group = [(members[m][0], params[m]) for m in ms]
        batches = []
        for lo in range(0, len(order), size):
            chunk = [eid for _, _, eid in order[lo : lo + size]]
            tasks = []
            for m in ms:
                idx = [where[m][e] for e in chunk if e in where[m]]
                tasks.append(self._task(members[m][0], views[m], inputs[m], idx) if idx else None)
            batches.append(tasks)
        done: dict[int, list] = {m: [] for m in ms}
        last = time.monotonic()

        def flush() -> None:  # every member's finished batches in one transaction
            nonlocal last
            with _interrupt_deferred():  # a commit and its count go together
                todo = [m for m in ms if done[m]]
                made = [self._commit_item(members[m][0], keys[m], done[m]) for m in todo]
                if made:
                    self.ctx.memo.commit_many([item for item, _ in made])
                for m, (_, (ok, failed)) in zip(todo, made):
                    stats[m].computed += ok
                    stats[m].failed += failed
                    if bar is not None:
                        bar.update(sum(len(t) for t, _ in done[m]))
                    done[m].clear()
            last = time.monotonic()

        def on_done(j: int, results) -> None:
            for pos, (task, result) in enumerate(zip(batches[j], results)):
                if task is not None:
                    done[ms[pos]].append((task, result))
            if time.monotonic() >= last + COMMIT_EVERY_S:
                flush()

        try:
            exe.map_group(group, batches, on_done)
        finally:
            flush()  # what finished before an error is kept

    def _compute(
        self,
        spec: FeatureSpec,
        key: MemoKey,
        todo: list[tuple],
        exe: Executor,
        stats: RunStats,
        bar,
        assets: dict[str, Any],
    ) -> None:
        """Compute the claimed entities in batches. Finished batches are committed together
        once ``COMMIT_EVERY_S`` has passed since the last commit (a slower batch commits on
        its own), and the rest when the executor is done: a commit costs a catalog
        transaction or two, whatever its size."""
        params = spec.resolve_params(json_params(key))
        views = self._views(spec, todo, assets)
        inputs = self._inputs(spec, views)
        tasks = self._tasks(spec, views, inputs, getattr(exe, "workers", 2))
        done: list[tuple[Task, BatchResult]] = []
        last = time.monotonic()

        def flush() -> None:
            nonlocal last
            if done:
                with _interrupt_deferred():  # a commit and its count go together
                    ok, failed = self._commit(spec, key, done)
                    stats.computed += ok
                    stats.failed += failed
                    if bar is not None:
                        bar.settle(
                            [v.id for t, _ in done for v in t.views if spec.entity == "asset"],
                            sum(_weight(spec, t) for t, _ in done),
                        )
                    done.clear()
            last = time.monotonic()

        def on_done(task: Task, result: BatchResult) -> None:
            if getattr(result, "aside", None) is not None:  # a Ray worker wrote its own file
                flush()
            done.append((task, result))
            if getattr(result, "aside", None) is not None or time.monotonic() >= last + (
                COMMIT_EVERY_S
            ):
                flush()

        from amberlite.media.decode import watching

        watch: dict[str, Any] = {}
        if bar is not None and spec.entity == "asset":  # frames as this process decodes them
            for v in views:
                cap = int(v.record.frame_count or 0)
                watch[v.path] = lambda k, a=v.id, cap=cap: bar.live(a, k, cap)
        try:
            with watching(watch):
                exe.map(spec, params, tasks, on_done)
        finally:
            flush()  # what finished before an error is kept

    # -- building batches ---------------------------------------------------------------------
    def _views(self, spec: FeatureSpec, todo: list[tuple], assets: dict[str, Any]) -> list[Any]:
        """Views of claimed rows (see ``_claim``); ``assets`` caches asset views by id."""
        from amberlite.core.entities import FrameView, SpanView

        missing = sorted({t[1] for t in todo} - assets.keys())
        if missing:
            for view in self.ctx.asset_views(missing, spec.decode):
                assets[view.record.asset_id] = view
        if spec.entity == "asset":
            return [assets[t[0]] for t in todo]
        if spec.entity == "frame":
            return [FrameView(t[0], assets[t[1]], frame_number(t[0])) for t in todo]
        return [SpanView(spec.entity, t[0], assets[t[1]], *t[2:]) for t in todo]

    def _inputs(self, spec: FeatureSpec, views: list[Any]) -> dict[str, list[Any]]:
        from amberlite.core.entities import asset_id_of

        out: dict[str, list[Any]] = {}
        for ref in spec.inputs:
            dep = self.ctx.registry.resolve_input(ref)
            dep_key = memo_key(dep, dict(ref.params))
            same = dep.entity == spec.entity
            wanted = [v.id for v in views] if same else [asset_id_of(v) for v in views]
            table = self.ctx.memo.read(dep_key, dep.output, entity_ids=sorted(set(wanted)))
            values = column_values(table.column(VALUE), dep.output)
            pos = {eid: i for i, eid in enumerate(table.column(ENTITY_ID).to_pylist())}
            out[ref.name] = [values[pos[w]] if w in pos else None for w in wanted]
        return out

    @staticmethod
    def _tasks(
        spec: FeatureSpec, views: list[Any], inputs: dict[str, list[Any]], workers: int
    ) -> list[Task]:
        from amberlite.core.entities import asset_id_of

        if spec.batch == "asset":
            groups: dict[str, list[int]] = defaultdict(list)
            for i, v in enumerate(views):
                groups[asset_id_of(v)].append(i)
            chunks = list(groups.values())
        else:
            size = spec.batch or max(1, min(DEFAULT_BATCH, len(views) // (workers * 4) or 1))
            chunks = [list(range(i, min(i + size, len(views)))) for i in range(0, len(views), size)]
        return [Resolver._task(spec, views, inputs, idx) for idx in chunks]

    @staticmethod
    def _task(spec: FeatureSpec, views: list[Any], inputs: dict[str, list[Any]], idx) -> Task:
        """The batch of ``views[i] for i in idx`` with their inputs (stacked into one array
        for a batch feature whose input values are arrays)."""
        import numpy as np

        from amberlite.run.compute import Task

        task_inputs = {}
        for name, vals in inputs.items():
            picked = [vals[i] for i in idx]
            if spec.batch is not None and picked and all(isinstance(p, np.ndarray) for p in picked):
                task_inputs[name] = np.stack(picked)
            else:
                task_inputs[name] = picked
        return Task([views[i] for i in idx], task_inputs)

    # -- committing ---------------------------------------------------------------------------
    def _commit(
        self, spec: FeatureSpec, key: MemoKey, done: list[tuple[Task, BatchResult]]
    ) -> tuple[int, int]:
        """Commit finished batches in one catalog transaction: their values in one Parquet
        file (or the one file a Ray worker wrote aside), their failures and, for a
        segmenter, the entities it produced. Returns (values, failures) committed."""
        item, counts = self._commit_item(spec, key, done)
        self.ctx.memo.commit_many([item])
        return counts

    def _commit_item(
        self, spec: FeatureSpec, key: MemoKey, done: list[tuple[Task, BatchResult]]
    ) -> tuple[Any, tuple[int, int]]:
        """What :meth:`_commit` commits (a ``memo.store.Commit``, its Parquet file written
        aside), and its (values, failures) counts."""
        import pyarrow as pa

        from amberlite.memo.store import Commit

        failures: list[tuple[str, str, str]] = []
        ok_ids: list[str] = []
        ok_assets: list[str] = []
        values: list[pa.Array] = []
        rows: list[pa.Table] = []
        aside = None
        for task, result in done:
            failures += result.failures
            ids, assets, vals = result.ok_ids, result.ok_assets, result.values
            if spec.produces is not None and ids:
                spans, bad = self._span_rows(spec, key, task, ids, vals)
                if bad:
                    keep = [i for i, eid in enumerate(ids) if eid not in bad]
                    failures += [(eid, eid, msg) for eid, msg in bad.items()]
                    ids = [ids[i] for i in keep]
                    assets = [assets[i] for i in keep]
                    vals = vals.take(pa.array(keep, type=pa.int64()))
                if spans.num_rows:
                    rows.append(spans)
            aside = aside or getattr(result, "aside", None)  # then ``done`` is this one batch
            ok_ids += ids
            ok_assets += assets
            values.append(vals)
        if ok_ids and aside is None:
            table = pa.table(
                {
                    ENTITY_ID: pa.array(ok_ids, pa.string()),
                    ASSET_ID: pa.array(ok_assets, pa.string()),
                    VALUE: pa.concat_arrays([v for v in values if len(v)]),
                }
            )
            aside = self.ctx.memo.write_aside(table)
        item = Commit(
            key,
            aside,
            len(ok_ids),
            owner=self.owner,
            committed_ids=ok_ids,
            failures=failures,
            hook=_insert_entities(pa.concat_tables(rows)) if rows else None,
            touches=(entities_key(spec.produces),) if spec.produces else (),
        )
        return item, (len(ok_ids), len(failures))

    def _span_rows(self, spec, key, task, ok_ids, values) -> tuple[pa.Table, dict[str, str]]:
        import pyarrow as pa

        from amberlite.define.info import Segmentation

        views = {v.id: v for v in task.views}
        made = Segmentation.of(spec, json_params(key))
        producer, tag = made.label, made.tag
        assert producer == f"{key.label}/{key.params_key}"
        cols: dict[str, list[Any]] = defaultdict(list)
        bad: dict[str, str] = {}
        for eid, spans in zip(ok_ids, values.to_pylist()):
            asset = views[eid]
            n = asset.record.frame_count
            prev_end = 0
            try:
                for i, s in enumerate(spans):
                    a, b = s["start_frame"], s["end_frame"]
                    if not (0 <= a < b <= n) or a < prev_end:
                        raise ValueError(
                            f"span {i} [{a}, {b}) is out of order or outside [0, {n}) frames"
                        )
                    prev_end = b if spec.params.get("disjoint", True) else 0
            except ValueError as e:
                bad[eid] = f"{spec.key} produced invalid spans: {e}"
                continue
            for i, s in enumerate(spans):
                a, b = s["start_frame"], s["end_frame"]
                cols["entity_type"].append(spec.produces)
                cols["entity_id"].append(span_id(eid, a, b, tag))
                cols["asset_id"].append(eid)
                cols["producer"].append(producer)
                cols["idx"].append(i)
                cols["start_frame"].append(a)
                cols["end_frame"].append(b)
                cols["start_s"].append(asset.time_of(a))
                cols["end_s"].append(asset.time_of(b) if b < n else asset.record.duration_s)
        return pa.table(cols) if cols else pa.table({}), bad

    def _record_run(self, key: MemoKey, executor: str, trigger: str, started_at, stats) -> None:
        with self.ctx.catalog.write(touches=(RUNS,)) as con:
            con.execute(
                """INSERT INTO runs VALUES (nextval('run_seq'), ?, ?, ?, ?, ?, ?, ?,
                   ?, ?, ?, ?, ?)""",
                [
                    *key.sql_args(),
                    executor,
                    trigger,
                    started_at,
                    now(),
                    stats.requested,
                    stats.stored,
                    stats.computed,
                    stats.failed,
                    stats.seconds,
                ],
            )


@contextmanager
def _interrupt_deferred():
    """Hold Ctrl-C (SIGINT) until the block ends, then raise KeyboardInterrupt: a commit
    interrupted half-way would be committed but not counted, or committed twice by the
    flush that follows. Only in the main thread, and only over Python's default handler."""
    import signal
    import threading

    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield
        return
    got: list[int] = []
    signal.signal(signal.SIGINT, lambda signum, frame: got.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if got:
        raise KeyboardInterrupt


def shares_decode(spec: FeatureSpec, exe: Any) -> bool:
    """Whether ``spec`` may be computed with other features over one decode: a feature over
    a span type (not a segmenter, not batched by asset), thread-parallel, on an executor that
    computes groups (the local one)."""
    return (
        hasattr(exe, "map_group")
        and spec.entity not in ("asset", "frame")
        and spec.produces is None
        and spec.batch != "asset"
        and spec.parallel == "thread"
    )


def _label(spec: FeatureSpec, params: Mapping[str, Any] | None) -> tuple[str, str]:
    key = memo_key(spec, params)
    return key.label, key.params_key


def _weight(spec: FeatureSpec, task: Task) -> int:
    """What a finished batch adds to the progress: its frames for an asset-level feature,
    its entities otherwise."""
    if spec.entity == "asset":
        return sum(int(v.record.frame_count or 0) for v in task.views)
    return len(task)


def _insert_entities(rows: pa.Table):
    def hook(con, file_id: int) -> None:
        if rows.num_rows:
            con.register("new_entities", rows)
            con.execute(
                """INSERT INTO entities SELECT entity_type, entity_id, asset_id, producer, idx,
                   start_frame, end_frame, start_s, end_s FROM new_entities
                   ON CONFLICT DO NOTHING"""
            )
            con.unregister("new_entities")

    return hook


def json_params(key: MemoKey) -> dict[str, Any]:
    import json

    return json.loads(key.params_json)


def column_values(column: pa.ChunkedArray, output: pa.DataType) -> list[Any]:
    """Values as a feature function receives them: fixed-size float lists become numpy rows."""
    import pyarrow as pa

    if pa.types.is_fixed_size_list(output) and (
        pa.types.is_floating(output.value_type) or pa.types.is_integer(output.value_type)
    ):
        arr = column.combine_chunks()
        flat = arr.flatten().to_numpy(zero_copy_only=False)
        return list(flat.reshape(len(arr), output.list_size))
    return column.to_pylist()
