"""Model runs: an annotator@version over a set of assets, committed as one atomic set.

A run validates every annotation against its type (and its entity's time range), writes them
to one zstd Parquet file aside (fsynced), then renames it under
``annotations/<type>/<annotator>@<version>/`` and records it in ``annotation_runs`` in one
catalog transaction. Readers see, per annotator and asset, the newest committed run of the
newest version: until the new run commits they see the previous one, whole; a killed run
leaves an unregistered file that ``gc`` removes. Older runs stay readable by version or by
run id (``store.annotations.list(type, version=1)`` / ``run=7``). Annotation ids are
``r<run_id>-<row>``.

Example:
    >>> from amberlite.define.annotation import SUBJECTS
    >>> t = pa.table({"asset_id": ["a"], "start_s": [0.0], "end_s": [5.0]})
    >>> check_table(t, SUBJECTS, {"a": 4.0})
    Traceback (most recent call last):
    ...
    amberlite.errors.AnnotationError: row 0: time range [0.0, 5.0] is outside the asset (...)
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from amberlite import faults
from amberlite.annotations.read import asset_id_of
from amberlite.catalog.changes import annotations_key
from amberlite.define.annotation import AnnotationType, AnnotatorSpec, check_annotation
from amberlite.define.info import check_name
from amberlite.errors import AnnotationError
from amberlite.memo.store import fsync_path, now, write_aside_to

EPS = 1e-6


@dataclass(frozen=True)
class RunInfo:
    """A committed run: its id, annotator@version, type, rows and assets."""

    run_id: int
    annotator: str
    version: int
    type: str
    rows: int
    assets: tuple[str, ...]
    seconds: float


def _fail(row: int, message: str) -> AnnotationError:
    return AnnotationError(f"row {row}: {message}")


def check_table(table: pa.Table, atype: AnnotationType, durations: Mapping[str, float]) -> pa.Table:
    """``table`` (asset_id, start_s, end_s and any standard or user columns) checked against
    ``atype`` and the assets' durations, vectorized, and cast to its storage schema (without
    ``id``); raises :class:`AnnotationError` naming the first bad row."""
    schema = atype.storage_schema()
    for name in ("asset_id", "start_s", "end_s"):
        if name not in table.column_names:
            raise AnnotationError(f"annotations need a {name!r} column")
    extra = [c for c in table.column_names if c not in schema.names or c == "id"]
    if extra:
        raise AnnotationError(f"unknown column {extra[0]!r} for annotation type {atype.name}")
    n = table.num_rows
    cols = {}
    for f in schema:
        if f.name == "id":
            continue
        if f.name in table.column_names:
            try:
                cols[f.name] = table.column(f.name).cast(f.type, safe=True)
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as e:
                raise AnnotationError(f"column {f.name!r} must be of type {f.type}: {e}") from None
        else:
            cols[f.name] = pa.nulls(n, f.type)
    out = pa.table(cols)
    known = pa.array(list(durations), pa.string())
    where = pc.index_in(out["asset_id"], known)
    if n and where.null_count:
        row = pc.index(pc.is_null(where), True).as_py()
        raise _fail(row, f"unknown asset {out['asset_id'][row].as_py()!r}")
    dur = pc.take(pa.array(list(durations.values()), pa.float64()), where)
    start, end = out["start_s"], out["end_s"]

    def first(mask: Any, message: Any) -> None:
        mask = pc.fill_null(mask, True)
        if n and pc.any(mask).as_py():
            row = pc.index(mask, True).as_py()
            raise _fail(row, message(row))

    first(_any(pc.is_null(start), pc.is_null(end)), lambda r: "start_s and end_s are required")
    first(
        _any(pc.invert(pc.is_finite(start)), pc.invert(pc.is_finite(end))),
        lambda r: "start_s and end_s must be finite",
    )
    first(
        _any(pc.less(start, 0), pc.less(end, start)),
        lambda r: f"time range [{start[r]}, {end[r]}] must satisfy 0 <= start_s <= end_s",
    )
    first(
        pc.greater(end, pc.add(dur, EPS)),
        lambda r: (
            f"time range [{start[r]}, {end[r]}] is outside the asset "
            f"(it lasts {dur[r].as_py():.3f} s)"
        ),
    )
    box = out["box"]
    if box.null_count < n:
        x0, y0, x1, y1 = (pc.list_element(box, i) for i in range(4))
        bad = _any(
            pc.less(x0, 0), pc.less(y0, 0), pc.greater(x1, 1), pc.greater(y1, 1),
            pc.greater(x0, x1), pc.greater(y0, y1),
        )  # fmt: skip
        first(pc.and_(pc.is_valid(box), bad), lambda r: f"box {box[r]} is outside the frame")
    conf = out["confidence"]
    if conf.null_count < n:
        first(
            pc.and_(pc.is_valid(conf), _any(pc.less(conf, 0), pc.greater(conf, 1))),
            lambda r: f"confidence must be within 0-1, not {conf[r]}",
        )
    poly = out["polygon"]
    if poly.null_count < n:
        coords = pc.list_flatten(pc.list_flatten(poly))
        if pc.any(_any(pc.less(coords, 0), pc.greater(coords, 1))).as_py():
            raise AnnotationError("a polygon point is outside the frame (0-1)")
    return out


def _any(*masks: Any) -> Any:
    out = masks[0]
    for m in masks[1:]:
        out = pc.or_(out, m)
    return out


def write_run(
    ann: Any,  # the store's Annotations (amberlite.annotations.api)
    annotator: str,
    version: int,
    type_name: str,
    rows: pa.Table | Iterable[Mapping[str, Any]],
    assets: Sequence[str] | None = None,
    started: float | None = None,
) -> RunInfo:
    """Commit ``rows`` (an Arrow table, or annotation dicts with ``asset``/``asset_id``) as
    one run of ``annotator@version`` over ``assets`` (the rows' assets when None): the
    assets' annotations from older runs of this version leave every read at once."""
    t0 = started if started is not None else time.monotonic()
    check_name(annotator, "annotator name")
    atype = ann.type(type_name)
    with ann.ctx.catalog.read() as con:
        by_alias, info = ann._assets(con)
    durations = {i: d for i, (_, d) in info.items()}
    if not isinstance(rows, pa.Table):
        rows = _records_table(rows, atype, by_alias, info)
    table = check_table(rows, atype, durations)
    if assets is None:
        scope = sorted(set(table["asset_id"].to_pylist()))
    else:
        scope = sorted({ann._asset_id(a, by_alias, info) for a in assets})
        outside = pc.invert(pc.is_in(table["asset_id"], pa.array(scope, pa.string())))
        if table.num_rows and pc.any(outside).as_py():
            raise AnnotationError("annotations on assets outside the run's scope")
    if not scope:
        raise AnnotationError("a run covers at least one asset")
    with ann.ctx.catalog.write(touches=()) as con:  # reserve the run id (ids embed it)
        run_id = con.execute("SELECT nextval('commit_seq')").fetchone()[0]
    ids = pc.binary_join_element_wise(
        f"r{run_id}-", pc.cast(pa.array(range(table.num_rows), pa.int64()), pa.string()), ""
    )
    table = table.add_column(0, "id", ids)
    rel_dir = os.path.join("annotations", atype.name, f"{annotator}@{version}")
    final_dir = ann.ctx.root / rel_dir
    final_dir.mkdir(parents=True, exist_ok=True)
    aside = write_aside_to(ann.ctx.memo.tmp, table) if table.num_rows else None
    rel = os.path.join(rel_dir, f"{run_id:012d}.parquet") if aside is not None else None
    with ann.ctx.catalog.write(touches=annotations_key(atype.name)) as con:
        if aside is not None:
            faults.point("annotation_run_before_rename")
            os.replace(aside, ann.ctx.root / rel)
            fsync_path(final_dir)
        try:
            con.execute(
                "INSERT INTO annotation_runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [run_id, annotator, version, atype.name, atype.version, rel, table.num_rows,
                 scope, now(), now()],
            )  # fmt: skip
            faults.point("annotation_run_before_commit")
        except BaseException:
            if rel is not None:
                (ann.ctx.root / rel).unlink(missing_ok=True)
            raise
    return RunInfo(
        run_id, annotator, version, atype.name, table.num_rows, tuple(scope),
        time.monotonic() - t0,
    )  # fmt: skip


def _records_table(
    records: Iterable[Mapping[str, Any]],
    atype: AnnotationType,
    by_alias: Mapping[str, str],
    info: Mapping[str, tuple],
) -> pa.Table:
    out = []
    for n, rec in enumerate(records):
        try:
            asset_id = asset_id_of(rec.get("asset_id", rec.get("asset")), by_alias, info)
            row = check_annotation(rec, atype, info[asset_id][1])
        except AnnotationError as e:
            raise _fail(n, str(e)) from None
        row["asset_id"] = asset_id
        out.append(row)
    schema = pa.schema([f for f in atype.storage_schema() if f.name != "id"])
    return pa.Table.from_pylist(out, schema=schema)


def run_annotator(
    ann: Any,  # the store's Annotations (amberlite.annotations.api)
    spec: AnnotatorSpec,
    asset_ids: Sequence[str] | None,
    progress: bool | None = None,
) -> RunInfo:
    """Run ``spec`` over its entities in the assets (every asset when None) and commit the
    annotations as one run. An entity's annotations must lie within its time range; an error
    in the function fails the whole run (nothing is committed)."""
    t0 = time.monotonic()
    ctx = ann.ctx
    ids = asset_ids if asset_ids is not None else [r[0] for r in ctx.catalog.query(
        "SELECT asset_id FROM assets ORDER BY asset_id")]  # fmt: skip
    if not ids:
        raise AnnotationError("no assets to annotate (ingest media first)")
    views = list(_entity_views(ctx, spec, ids))
    show = progress if progress is not None else True
    last = time.monotonic()
    records = []
    for n, (view, lo, hi, asset) in enumerate(views, 1):
        try:
            out = spec.fn(view, **dict(spec.params)) or []
            out = list(out)
        except Exception as e:  # noqa: BLE001 - any failure of user code fails the run
            raise AnnotationError(
                f"annotator {spec.key} failed on {getattr(view, 'id', view)}: "
                f"{type(e).__name__}: {e}"
            ) from e
        for rec in out:
            if not isinstance(rec, Mapping):
                raise AnnotationError(f"annotator {spec.key} returned {type(rec).__name__}, "
                                      "not an annotation dict")  # fmt: skip
            s, e = rec.get("start_s"), rec.get("end_s")
            if isinstance(s, (int, float)) and isinstance(e, (int, float)):
                if s < lo - EPS or e > hi + EPS:
                    raise AnnotationError(
                        f"annotator {spec.key}: annotation [{s}, {e}] is outside its entity "
                        f"{view.id} [{lo}, {hi}]"
                    )
            records.append({**rec, "asset_id": asset})
        if show and time.monotonic() - last >= 1.0:
            print(f"annotate {spec.key}: {n}/{len(views)} entities", file=sys.stderr, flush=True)
            last = time.monotonic()
    return write_run(ann, spec.name, spec.version, spec.type, records, ids, started=t0)


def _entity_views(ctx: Any, spec: AnnotatorSpec, asset_ids: Sequence[str]):
    """(view, start_s, end_s, asset_id) of each entity the annotator runs over."""
    from amberlite.core.entities import FrameView, SpanView
    from amberlite.core.ids import frame_id

    assets = {v.record.asset_id: v for v in ctx.asset_views(asset_ids, spec.decode)}
    if spec.entity == "asset":
        for a in assets.values():
            yield a, 0.0, a.record.duration_s, a.id
        return
    if spec.entity == "frame":
        for a in assets.values():
            count = a.record.frame_count
            for n in range(count):
                t, t1 = a.time_of(n), a.time_of(n + 1) if n + 1 < count else a.record.duration_s
                yield FrameView(frame_id(a.id, n), a, n), t, t1, a.id
        return
    producer = ctx.registry.producer_of(spec.entity)
    ctx.resolver.materialize(producer, None, list(asset_ids), progress=False)
    table = ctx.resolver.entity_table(spec.entity, list(asset_ids))
    for r in table.iter_rows(named=True):
        view = SpanView(spec.entity, r["entity_id"], assets[r["asset_id"]], r["idx"],
                        r["start_frame"], r["end_frame"], r["start_s"], r["end_s"])  # fmt: skip
        yield view, r["start_s"], r["end_s"], r["asset_id"]
