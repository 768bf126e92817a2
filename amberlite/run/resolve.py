"""The resolver: which entities lack a value, compute only those, commit, report.

``materialize`` walks a feature's inputs first (in dependency order), then, in one short
catalog transaction, finds the entities of its scope that have no stored value, no recorded
failure (unless retrying) and no live claim by another writer, and claims them. It computes
the claimed entities in batches through an executor and commits each batch as it arrives
(values, failures, and for a segmenter the entities it produces) in one transaction each.
Entities claimed by another live process are waited for, so that on return every entity of
the scope has a value or a failure. A claim whose owner died is taken over.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import time
import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from amberlite.core.ids import frame_id_sql, frame_number, span_id
from amberlite.errors import ResolveError
from amberlite.memo.key import MemoKey, memo_key
from amberlite.memo.store import ASSET_ID, ENTITY_ID, VALUE, now

if TYPE_CHECKING:  # counting (a query's scope) needs none of these; computing imports them
    import pyarrow as pa

    from amberlite.define.decorators import FeatureSpec
    from amberlite.run.compute import BatchResult, Executor, Task

if TYPE_CHECKING:
    from amberlite.context import StoreContext

log = logging.getLogger(__name__)
HOST = socket.gethostname()
CLAIM_TTL = dt.timedelta(hours=6)
DEFAULT_BATCH = 32


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

    def summary(self) -> str:
        return (
            f"{self.feature}: {self.requested} requested, {self.stored} already stored, "
            f"{self.computed} computed, {self.failed} failed"
            + (f", {self.skipped_failed} skipped (failed before)" if self.skipped_failed else "")
            + f" in {self.seconds:.2f} s"
        )


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
    ) -> tuple[str, dict[str, Any]]:
        """SQL of the scope's entities with is_stored / is_failed / is_held flags."""
        ents_sql, params = self.entity_sql(spec.entity, asset_ids, entity_ids=entity_ids)
        files = self.ctx.memo.files(key, con)
        params.update(feature=key.feature, version=key.version, pkey=key.params_key)
        stored_sql = "SELECT NULL::TEXT AS entity_id WHERE false"
        if files:
            stored_sql = "SELECT entity_id FROM read_parquet($files)"
            params["files"] = files
        return (
            f"""
            WITH ents AS ({ents_sql}),
            stored AS ({stored_sql}),
            fails AS (SELECT entity_id FROM failures WHERE feature = $feature
                      AND version = $version AND params_key = $pkey),
            held AS (SELECT entity_id, owner FROM claims WHERE feature = $feature
                     AND version = $version AND params_key = $pkey)
            SELECT e.entity_id, e.asset_id,
                   e.entity_id IN (SELECT entity_id FROM stored) AS is_stored,
                   e.entity_id IN (SELECT entity_id FROM fails) AS is_failed,
                   e.entity_id IN (SELECT entity_id FROM held) AS is_held
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
        return {"requested": row[0], "stored": row[1], "failed": row[2], "held": row[3]}

    def _claim(
        self,
        key: MemoKey,
        spec: FeatureSpec,
        asset_ids: Sequence[str] | None,
        retry_failed: bool,
        entity_ids: Sequence[str] | None = None,
    ) -> tuple[list[tuple[str, str]], dict[str, int]]:
        """In one write transaction: count the scope, claim what nobody has or holds."""
        with self.ctx.catalog.write() as con:
            self._drop_stale_claims(con, key)
            base, params = self._scope(con, key, spec, asset_ids, entity_ids)
            counts = self._counts(con, base, params)
            cond = "NOT is_stored AND NOT is_held" + ("" if retry_failed else " AND NOT is_failed")
            todo = con.execute(
                f"SELECT entity_id, asset_id FROM ({base}) WHERE {cond} "
                "ORDER BY asset_id, entity_id",
                params,
            ).fetchall()
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
    ) -> dict[str, int]:
        """Requested / stored / failed / held counts of one feature over a scope, in one
        shared-lock read (or on ``con``, an open catalog connection); computes and claims
        nothing."""
        if con is None:
            with self.ctx.catalog.read() as con:
                return self.counts(spec, params, asset_ids, entity_ids, con)
        base, qparams = self._scope(con, memo_key(spec, params), spec, asset_ids, entity_ids)
        return {k: int(v or 0) for k, v in self._counts(con, base, qparams).items()}

    def is_complete(
        self, spec: FeatureSpec, params: Mapping[str, Any] | None, asset_ids: Sequence[str] | None
    ) -> bool:
        """True when the feature and everything it depends on has a value or a recorded
        failure for every entity of the scope: one shared-lock read, no claims. A positive
        answer is remembered until the catalog changes."""
        key = memo_key(spec, params)
        cache_key = (key, None if asset_ids is None else tuple(asset_ids))
        stamp = self.ctx.catalog.stamp()
        if self._complete_cache.get(cache_key) == stamp:
            return True
        with self.ctx.catalog.read() as con:
            for dep, dep_params in self._closure(spec, params):
                base, qparams = self._scope(con, memo_key(dep, dep_params), dep, asset_ids)
                c = self._counts(con, base, qparams)
                if c["requested"] != c["stored"] + c["failed"]:
                    return False
        self._complete_cache[cache_key] = stamp  # taken before the read: never too new
        return True

    def _closure(self, spec: FeatureSpec, params: Mapping[str, Any] | None):
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
                prod = self.ctx.registry.producer_of(s.entity)
                if prod is not None:
                    visit(prod, None)
            out.append((s, p))

        visit(spec, params)
        return out

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

    def _release(self, key: MemoKey) -> None:
        with self.ctx.catalog.write() as con:
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
        _done: set[tuple[str, str]] | None = None,
    ) -> RunStats:
        """Make every entity of ``spec.entity`` in the asset scope have a value or a failure.

        ``entity_ids`` narrows the scope to those entities of ``spec.entity`` (and of inputs
        over the same entity type); inputs over assets keep the asset scope."""
        from tqdm import tqdm

        from amberlite.run.executor import make_executor

        key = memo_key(spec, params)
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
                        _done=done,
                    )
                )
        if spec.entity not in ("asset", "frame"):
            prod = self.ctx.registry.producer_of(spec.entity)
            if prod is None:
                raise ResolveError(f"no segmenter produces entity type {spec.entity!r}")
            pk = memo_key(prod, None)
            if (pk.label, pk.params_key) not in done:
                stats.inputs.append(
                    self.materialize(
                        prod,
                        None,
                        asset_ids,
                        retry_failed=retry_failed,
                        executor=exe,
                        trigger=trigger,
                        progress=progress,
                        _done=done,
                    )
                )
        done.add((key.label, key.params_key))

        first = True
        bar = None
        try:
            while True:
                todo, counts = self._claim(key, spec, asset_ids, retry_failed, entity_ids)
                if first:
                    stats.requested, stats.stored = counts["requested"], counts["stored"]
                    stats.skipped_failed = 0 if retry_failed else counts["failed"]
                    pending = len(todo) + counts["held"]
                    if pending:
                        bar = tqdm(
                            total=pending,
                            desc=spec.key,
                            unit="entity",
                            disable=(not progress) if progress is not None else None,
                            leave=False,
                        )
                    first = False
                if todo:
                    self._compute(spec, key, todo, exe, stats, bar)
                if not todo and counts["held"] == 0:
                    break
                if not todo:  # others are computing part of our scope: wait for them
                    time.sleep(0.2)
        finally:
            if bar is not None:
                bar.close()
            if not first and (stats.computed or stats.failed or bar is not None):
                self._release(key)
        stats.seconds = time.perf_counter() - started
        if stats.computed or stats.failed:
            self._record_run(key, exe.name, trigger, started_at, stats)
        log.debug("materialized %s", stats.summary())
        return stats

    def _compute(
        self,
        spec: FeatureSpec,
        key: MemoKey,
        todo: list[tuple[str, str]],
        exe: Executor,
        stats: RunStats,
        bar,
    ) -> None:
        params = spec.resolve_params(json_params(key))
        views = self._views(spec, todo)
        inputs = self._inputs(spec, views)
        tasks = self._tasks(spec, views, inputs, getattr(exe, "workers", 2))

        def on_done(task: Task, result: BatchResult) -> None:
            self._commit(spec, key, task, result)
            stats.computed += len(result.ok_ids)
            stats.failed += len(result.failures)
            if bar is not None:
                bar.update(len(task))

        exe.map(spec, params, tasks, on_done)

    # -- building batches ---------------------------------------------------------------------
    def _views(self, spec: FeatureSpec, todo: list[tuple[str, str]]) -> list[Any]:
        from amberlite.core.entities import FrameView, SpanView

        assets = {
            a.record.asset_id: a
            for a in self.ctx.asset_views(sorted({t[1] for t in todo}), spec.decode)
        }
        if spec.entity == "asset":
            return [assets[eid] for eid, _ in todo]
        if spec.entity == "frame":
            return [FrameView(eid, assets[aid], frame_number(eid)) for eid, aid in todo]
        producer = self.producer_label(spec.entity)
        rows = self.ctx.catalog.query(
            """SELECT entity_id, asset_id, idx, start_frame, end_frame, start_s, end_s
               FROM entities WHERE entity_type = ? AND producer = ?
               AND entity_id IN (SELECT unnest(?::TEXT[]))""",
            [spec.entity, producer, [t[0] for t in todo]],
        )
        by_id = {r[0]: r for r in rows}
        return [SpanView(spec.entity, eid, assets[aid], *by_id[eid][2:]) for eid, aid in todo]

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
        import numpy as np

        from amberlite.core.entities import asset_id_of
        from amberlite.run.compute import Task

        if spec.batch == "asset":
            groups: dict[str, list[int]] = defaultdict(list)
            for i, v in enumerate(views):
                groups[asset_id_of(v)].append(i)
            chunks = list(groups.values())
        else:
            size = spec.batch or max(1, min(DEFAULT_BATCH, len(views) // (workers * 4) or 1))
            chunks = [list(range(i, min(i + size, len(views)))) for i in range(0, len(views), size)]
        tasks = []
        for idx in chunks:
            task_inputs = {}
            for name, vals in inputs.items():
                picked = [vals[i] for i in idx]
                if (
                    spec.batch is not None
                    and picked
                    and all(isinstance(p, np.ndarray) for p in picked)
                ):
                    task_inputs[name] = np.stack(picked)
                else:
                    task_inputs[name] = picked
            tasks.append(Task([views[i] for i in idx], task_inputs))
        return tasks

    # -- committing ---------------------------------------------------------------------------
    def _commit(self, spec: FeatureSpec, key: MemoKey, task: Task, result: BatchResult) -> None:
        import pyarrow as pa

        hook = None
        failures = list(result.failures)
        ok_ids, ok_assets, values = result.ok_ids, result.ok_assets, result.values
        if spec.produces is not None and ok_ids:
            rows, bad = self._span_rows(spec, key, task, ok_ids, values)
            if bad:
                keep = [i for i, eid in enumerate(ok_ids) if eid not in bad]
                failures += [(eid, eid, msg) for eid, msg in bad.items()]
                ok_ids = [ok_ids[i] for i in keep]
                ok_assets = [ok_assets[i] for i in keep]
                values = values.take(pa.array(keep, type=pa.int64()))
            hook = _insert_entities(rows)
        aside = getattr(result, "aside", None)  # a Ray worker already wrote the batch aside
        if ok_ids and aside is None:
            table = pa.table(
                {
                    ENTITY_ID: pa.array(ok_ids, pa.string()),
                    ASSET_ID: pa.array(ok_assets, pa.string()),
                    VALUE: values,
                }
            )
            aside = self.ctx.memo.write_aside(table)
        self.ctx.memo.commit(
            key,
            aside,
            len(ok_ids),
            owner=self.owner,
            committed_ids=ok_ids,
            failures=failures,
            hook=hook,
        )

    def _span_rows(self, spec, key, task, ok_ids, values) -> tuple[pa.Table, dict[str, str]]:
        import pyarrow as pa

        views = {v.id: v for v in task.views}
        producer = f"{key.label}/{key.params_key}"
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
                cols["entity_id"].append(span_id(eid, a, b))
                cols["asset_id"].append(eid)
                cols["producer"].append(producer)
                cols["idx"].append(i)
                cols["start_frame"].append(a)
                cols["end_frame"].append(b)
                cols["start_s"].append(asset.time_of(a))
                cols["end_s"].append(asset.time_of(b) if b < n else asset.record.duration_s)
        return pa.table(cols) if cols else pa.table({}), bad

    def _record_run(self, key: MemoKey, executor: str, trigger: str, started_at, stats) -> None:
        with self.ctx.catalog.write() as con:
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
