"""Computing one batch of a feature: the unit every executor runs.

``compute_batch`` is pure: views and input values in, an Arrow array of values and a list of
failures out. A value that raises (or does not fit the declared type) fails that entity alone
when the feature is called per entity; a batch-mode feature that raises fails its batch.
"""

from __future__ import annotations

import logging
import traceback
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

from amberlite.core.entities import asset_id_of, prefetch
from amberlite.define.decorators import FeatureSpec
from amberlite.errors import MediaError

log = logging.getLogger(__name__)

NONE_MESSAGE = "returned None; declare nullable=True to store a NULL"


@dataclass
class BatchResult:
    """Values for ``ok_ids`` (same order) and ``(entity_id, message)`` failures."""

    ok_ids: list[str]
    ok_assets: list[str]
    values: pa.Array
    failures: list[tuple[str, str, str]]


@dataclass
class Task:
    """One batch: entity views plus the input values each of them receives."""

    views: list[Any]
    inputs: dict[str, list[Any]]

    def __len__(self) -> int:
        return len(self.views)


OnDone = Callable[[Task, BatchResult], None]


class Executor(Protocol):
    name: str

    def map(
        self, spec: FeatureSpec, params: Mapping[str, Any], tasks: Sequence[Task], on_done: OnDone
    ) -> None: ...


def _describe(exc: BaseException) -> str:
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" (at {tb[-1].filename}:{tb[-1].lineno})" if tb else ""
    return f"{type(exc).__name__}: {exc}{where}"


def to_arrow(values: Sequence[Any] | np.ndarray, output: pa.DataType) -> pa.Array:
    """Convert feature results to the declared Arrow type (fast path for 2-D float arrays)."""
    if isinstance(values, np.ndarray) and values.ndim == 2 and pa.types.is_fixed_size_list(output):
        if values.shape[1] != output.list_size:
            raise ValueError(f"expected vectors of {output.list_size}, got {values.shape[1]}")
        flat = pa.array(values.reshape(-1).astype(output.value_type.to_pandas_dtype()))
        return pa.FixedSizeListArray.from_arrays(flat, output.list_size)
    items = [v.tolist() if isinstance(v, np.ndarray) else _scalar(v) for v in values]
    return pa.array(items, type=output)


def _scalar(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _models(spec: FeatureSpec) -> dict[str, Any]:
    """The feature's declared models, loaded once per process (amberlite.run.models)."""
    if not spec.models:
        return {}
    from amberlite.run.models import loaded

    return {m.name: loaded(m) for m in spec.models}


def _segment_readable(
    spec: FeatureSpec, view: Any, kwargs: Mapping[str, Any], params: Mapping[str, Any], error
) -> Any:
    """A segmenter over a file damaged mid-stream (decoding fails at frame ``n > 0``):
    segment the frames before the damage, and give the unreadable rest one span of its own,
    so that features over the shots before the damage succeed and those over the rest fail
    naming the real frame. Any other error (or damage at frame 0) fails the asset."""
    n = getattr(error, "frame", None)
    total = getattr(getattr(view, "record", None), "frame_count", None)
    if spec.produces is None or not n or total is None or not 0 < n < total:
        raise error
    spans = [tuple(s) for s in spec.fn(view.readable(n), **kwargs, **params)]
    log.warning(
        "%s: frames %d-%d of %d cannot be decoded (%s): %s segmented the readable frames, "
        "the rest is one span",
        view.alias,
        n,
        total - 1,
        total,
        error.reason,
        spec.name,
    )
    return [*spans, (n, total)]


def compute_batch(
    spec: FeatureSpec,
    params: Mapping[str, Any],
    views: Sequence[Any],
    inputs: Mapping[str, Sequence[Any]],
) -> BatchResult:
    """Run ``spec`` over ``views``; ``inputs`` maps input names to per-view values. Span
    views (shots) read their frames from one decode of the batch's spans
    (:func:`amberlite.core.entities.prefetch`)."""
    with prefetch(views):
        return _compute_batch(spec, params, views, inputs)


def _compute_batch(
    spec: FeatureSpec,
    params: Mapping[str, Any],
    views: Sequence[Any],
    inputs: Mapping[str, Sequence[Any]],
) -> BatchResult:
    ids = [v.id for v in views]
    assets = [asset_id_of(v) for v in views]
    try:
        models = _models(spec)
    except Exception as e:  # noqa: BLE001 - a model that cannot load fails the batch, recorded
        msg = _describe(e)
        return BatchResult(
            [], [], pa.array([], type=spec.output), [(i, a, msg) for i, a in zip(ids, assets)]
        )
    if spec.batch is not None:
        try:
            out = spec.fn(list(views), **inputs, **params, **models)
            if len(out) != len(views):
                raise ValueError(f"returned {len(out)} values for {len(views)} entities")
            if not spec.nullable and not isinstance(out, np.ndarray):
                out = list(out)
                nones = [i for i, v in enumerate(out) if v is None]
                if nones:
                    keep = [i for i in range(len(out)) if out[i] is not None]
                    return BatchResult(
                        [ids[i] for i in keep],
                        [assets[i] for i in keep],
                        to_arrow([out[i] for i in keep], spec.output),
                        [(ids[i], assets[i], NONE_MESSAGE) for i in nones],
                    )
            return BatchResult(ids, assets, to_arrow(out, spec.output), [])
        except Exception as e:  # noqa: BLE001 - any user error fails the batch, recorded
            msg = _describe(e)
            return BatchResult(
                [], [], pa.array([], type=spec.output), [(i, a, msg) for i, a in zip(ids, assets)]
            )
    ok_ids, ok_assets, ok_values, failures = [], [], [], []
    for i, view in enumerate(views):
        kwargs = {name: vals[i] for name, vals in inputs.items()}
        ok, got = _compute_one(spec, params, view, kwargs, models)
        if ok:
            ok_ids.append(ids[i])
            ok_assets.append(assets[i])
            ok_values.append(got)
        else:
            failures.append((ids[i], assets[i], got))
    return BatchResult(ok_ids, ok_assets, to_arrow(ok_values, spec.output), failures)


def _compute_one(
    spec: FeatureSpec,
    params: Mapping[str, Any],
    view: Any,
    kwargs: Mapping[str, Any],
    models: Mapping[str, Any],
) -> tuple[bool, Any]:
    """``(True, value)`` of a per-entity feature over one view, or ``(False, message)``."""
    try:
        try:
            value = spec.fn(view, **kwargs, **params, **models)
        except MediaError as e:
            value = _segment_readable(spec, view, {**kwargs, **models}, params, e)
        if value is None and not spec.nullable:
            return False, NONE_MESSAGE
        to_arrow([value], spec.output)  # validate against the declared type
    except Exception as e:  # noqa: BLE001
        return False, _describe(e)
    return True, value


Member = tuple[FeatureSpec, Mapping[str, Any]]


def compute_group(members: Sequence[Member], tasks: Sequence[Task | None]) -> list[BatchResult]:
    """Several features over the same spans, from one decode: ``tasks[i]`` is member i's
    batch (its views carry member i's decode settings; None: nothing for it in this batch).

    Every view's frames come from one :func:`prefetch` over all members' views, so each
    frame is decoded once and converted once per decode setting that samples it. Features
    called per entity run entity by entity in time order (the frames of a group of spans are
    taken soon after they are decoded, and dropped); batch features run on their whole list
    afterwards. The result of member i equals ``compute_batch(*members[i], ...)`` of its task
    (an empty result where its task is None)."""
    views = [v for t in tasks if t is not None for v in t.views]
    with prefetch(views):
        out: list[BatchResult | None] = [None] * len(members)
        per_entity: list[tuple[int, int, int]] = []  # (start frame, member, position)
        models: dict[int, dict[str, Any]] = {}
        for m, ((spec, params), task) in enumerate(zip(members, tasks)):
            if task is None or not task.views:
                out[m] = BatchResult([], [], pa.array([], type=spec.output), [])
            elif spec.batch is not None:
                continue
            else:
                try:
                    models[m] = _models(spec)
                except Exception:  # noqa: BLE001 - recorded for the batch by compute_batch
                    out[m] = _compute_batch(spec, params, task.views, task.inputs)
                    continue
                per_entity += [(_start(v), m, i) for i, v in enumerate(task.views)]
        got: dict[int, list[tuple[int, bool, Any]]] = defaultdict(list)
        for _, m, i in sorted(per_entity):
            spec, params = members[m]
            task = tasks[m]
            kwargs = {name: vals[i] for name, vals in task.inputs.items()}
            got[m].append((i, *_compute_one(spec, params, task.views[i], kwargs, models[m])))
        for m, rows in got.items():
            spec, task = members[m][0], tasks[m]
            rows.sort(key=lambda r: r[0])
            ok = [(i, v) for i, good, v in rows if good]
            views_m = task.views
            out[m] = BatchResult(
                [views_m[i].id for i, _ in ok],
                [asset_id_of(views_m[i]) for i, _ in ok],
                to_arrow([v for _, v in ok], spec.output),
                [(views_m[i].id, asset_id_of(views_m[i]), v) for i, good, v in rows if not good],
            )
        for m, ((spec, params), task) in enumerate(zip(members, tasks)):
            if out[m] is None:  # batch features
                out[m] = _compute_batch(spec, params, task.views, task.inputs)
    return out  # type: ignore[return-value]


def _start(view: Any) -> int:
    return int(getattr(view, "start_frame", getattr(view, "n", 0)))
