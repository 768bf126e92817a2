"""Media entities as feature functions see them: assets, spans (shots, ...) and frames.

An asset's id is the content hash of its file. A span entity (a shot, or any type a user's
segmenter produces) has the id ``<asset_id>/<start_frame>-<end_frame>``: identity is content,
so two segmenter versions that agree on a span share its feature values. A frame's id is
``<asset_id>/f<n>`` with ``n`` its exact presentation index.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from amberlite.errors import MediaError, StoreFull, out_of_space
from amberlite.media.decode import Decode, read_batch, read_luma, read_spans_multi
from amberlite.media.frame_index import FrameIndex, frame_index

_index_lock = threading.Lock()
PREFETCH_BYTES = 192 << 20  # decoded frames one prefetch may hold
_batch = threading.local()  # the span views of the batch this thread computes


@dataclass(frozen=True)
class AssetRecord:
    """An ingested asset, as the catalog knows it."""

    asset_id: str
    alias: str
    path: str
    width: int
    height: int
    frame_rate: Fraction
    duration_s: float
    frame_count: int
    variable_frame_rate: bool

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> AssetRecord:
        return cls(
            asset_id=row["asset_id"],
            alias=row["alias"],
            path=row["path"],
            width=row["width"],
            height=row["height"],
            frame_rate=Fraction(row["fps_num"], row["fps_den"]),
            duration_s=row["duration_s"],
            frame_count=row["frame_count"],
            variable_frame_rate=row["variable_frame_rate"],
        )


def cached_frame_index(cache_dir: Path, asset: AssetRecord) -> FrameIndex:
    """The asset's frame index, demuxed once and kept in the store."""
    path = cache_dir / f"{asset.asset_id}.frames.npz"
    with _index_lock:
        if path.exists():
            return FrameIndex.load(path)
        idx = frame_index(asset.path)
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        try:
            idx.save(tmp)
            tmp.replace(path)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            if out_of_space(e):
                raise StoreFull(cache_dir, "caching the frame index") from e
            raise
        return idx


@dataclass
class AssetView:
    """What a feature over assets receives. ``frames()`` decodes with the feature's settings."""

    record: AssetRecord
    decode: Decode
    cache_dir: Path
    _index: FrameIndex | None = field(default=None, repr=False)

    @property
    def id(self) -> str:
        return self.record.asset_id

    @property
    def alias(self) -> str:
        return self.record.alias

    @property
    def path(self) -> str:
        return self.record.path

    @property
    def index(self) -> FrameIndex:
        if self._index is None:
            self._index = cached_frame_index(self.cache_dir, self.record)
        return self._index

    def readable(self, n: int) -> AssetView:
        """This asset cut to its first ``n`` frames: what a segmenter sees of a file whose
        decoding fails at frame ``n`` (garbage mid-stream)."""
        index = self.index.head(n)
        record = dataclasses.replace(self.record, frame_count=n, duration_s=index.duration_s)
        return AssetView(record, self.decode, self.cache_dir, index)

    def frames(self, start: int = 0, end: int | None = None) -> np.ndarray:
        """Decoded frames ``[start, end)`` as one uint8 array (N, H, W[, C])."""
        return self.frames_with_numbers(start, end)[1]

    def frames_with_numbers(self, start: int = 0, end: int | None = None):
        cached = _prefetched(self, start, end)
        if cached is not None:
            return cached
        return read_batch(self.path, start, end, decode=self.decode, index=self.index)

    def frames_between(self, start_s: float, end_s: float):
        """(frame numbers, frames) shown in ``[start_s, end_s)`` seconds, exact on VFR files."""
        first = self.index.frame_at(start_s)
        if self.index.time_of(first) < start_s:
            first += 1
        last = self.index.frame_at(end_s) if end_s < self.record.duration_s else len(self.index)
        if last < len(self.index) and self.index.time_of(last) < end_s:
            last += 1
        return self.frames_with_numbers(first, max(first, last))

    def luma(self, start: int = 0, end: int | None = None, size=(64, 36)):
        """(frame numbers, Y planes) without colour conversion: the fast path for cuts."""
        return read_luma(self.path, size=size, index=self.index, start_frame=start, end_frame=end)

    def time_of(self, frame: int) -> float:
        return self.index.time_of(frame)


@dataclass
class SpanView:
    """A time span of an asset (a shot, a scene, ...): frames ``[start_frame, end_frame)``."""

    entity_type: str
    id: str
    asset: AssetView
    index: int
    start_frame: int
    end_frame: int
    start_s: float
    end_s: float

    @property
    def frame_count(self) -> int:
        return self.end_frame - self.start_frame

    def frames(self) -> np.ndarray:
        return self.asset.frames(self.start_frame, self.end_frame)

    def frames_with_numbers(self):
        return self.asset.frames_with_numbers(self.start_frame, self.end_frame)


@dataclass
class FrameView:
    """One frame of an asset."""

    id: str
    asset: AssetView
    n: int

    @property
    def t(self) -> float:
        return self.asset.time_of(self.n)

    def image(self) -> np.ndarray:
        return self.asset.frames(self.n, self.n + 1)[0]


def asset_id_of(view: Any) -> str:
    """The asset id of an entity view (an asset view is its own asset)."""
    asset = getattr(view, "asset", None)
    return asset.id if asset is not None else view.id


@contextmanager
def prefetch(views: Sequence[Any]) -> Iterator[None]:
    """While open, a span view of ``views`` asking for its frames gets them from one pass
    over the file for the spans of its batch (:func:`amberlite.media.decode.read_spans_multi`)
    instead of a seek and a decode of its own: the same frames, decoded once. Nothing is
    decoded until a view asks (features that read no frames pay nothing); at most
    :data:`PREFETCH_BYTES` of frames are held at once. Per thread (executors run batches in
    threads).

    ``views`` may hold views of several features over the same spans, each asset view with
    its feature's decode settings (:func:`amberlite.run.compute.compute_group`): the first
    view that asks decodes the frames of every setting of its group of spans in one pass, and
    each view takes its own (once: what was taken is dropped)."""
    spans = [v for v in views if isinstance(v, SpanView)]
    wants: dict[tuple, int] = {}
    for v in spans:
        key = _key(v.asset, v.start_frame, v.end_frame)
        wants[key] = wants.get(key, 0) + 1
    _batch.spans, _batch.cache, _batch.wants = spans, {}, wants
    try:
        yield
    finally:
        _batch.spans, _batch.cache, _batch.wants = [], {}, {}


def _key(asset: AssetView, start: int, end: int) -> tuple:
    return (asset.record.asset_id, asset.decode, start, end)


def _prefetched(asset: AssetView, start: int, end: int | None):
    """(numbers, frames) of ``[start, end)`` of ``asset`` from the current batch's prefetch,
    or None when it is not a span of the batch (or was taken as often as the batch holds it)."""
    spans = getattr(_batch, "spans", None)
    if not spans or end is None:
        return None
    key = _key(asset, start, end)
    cache, wants = _batch.cache, _batch.wants
    if wants.get(key, 0) <= 0:
        return None
    wants[key] -= 1
    if key not in cache:
        same = [v for v in spans if v.asset.record.asset_id == asset.record.asset_id]
        group = _group_of(asset, same, start, end, cache, wants)
        requests: dict[Decode, list[tuple[int, int]]] = {}
        for dec, s, e in group:
            requests.setdefault(dec, []).append((s, e))
        try:
            got = read_spans_multi(asset.path, list(requests.items()), asset.index)
        except MediaError:  # a damaged file: each span reads its own frames and fails alone
            return None
        for (dec, ranges), results in zip(requests.items(), got):
            for (s, e), res in zip(ranges, results):
                cache[(asset.record.asset_id, dec, s, e)] = res
    if wants[key] > 0:  # another view of the batch takes these too: each gets its own arrays
        numbers, frames = cache[key]
        return numbers.copy(), frames.copy()
    return cache.pop(key)


def _group_of(
    asset: AssetView, spans: list[SpanView], start: int, end: int, cache: dict, wants: dict
) -> list[tuple[Decode, int, int]]:
    """The (decode, start, end) decoded together with ``[start, end)`` at ``asset``'s
    settings: the spans of the batch from it on in time order, at every decode setting the
    batch's views of the asset ask for (those not decoded yet, still wanted), up to
    :data:`PREFETCH_BYTES` of decoded frames."""
    rec = asset.record
    by_span: dict[tuple[int, int], set[Decode]] = {}
    for v in spans:
        k = _key(v.asset, v.start_frame, v.end_frame)
        if k == _key(asset, start, end) or (k not in cache and wants.get(k, 0) > 0):
            by_span.setdefault((v.start_frame, v.end_frame), set()).add(v.asset.decode)
    first = (asset.decode, start, end)  # the one asked for comes first, whatever its size
    group, total = [first], _bytes(rec, *first)
    for s, e in sorted(s for s in by_span if s >= (start, end)):
        for dec in sorted(by_span[(s, e)], key=Decode.key):
            if (dec, s, e) == first:
                continue
            total += _bytes(rec, dec, s, e)
            if total > PREFETCH_BYTES:
                return group
            group.append((dec, s, e))
    return group


def _bytes(rec: AssetRecord, dec: Decode, start: int, end: int) -> float:
    """About how many bytes the frames ``[start, end)`` of ``rec`` take at ``dec``."""
    w, h = dec.size or (rec.width, rec.height)
    per_frame = w * h * (1 if dec.format == "gray" else 3)
    rate = float(rec.frame_rate) or 25.0
    keep = 1.0 if dec.fps is None else min(1.0, float(dec.fps) / rate)
    return (end - start) * keep * per_frame
