"""Media entities as feature functions see them: assets, spans (shots, ...) and frames.

An asset's id is the content hash of its file. A span entity (a shot, or any type a user's
segmenter produces) has the id ``<asset_id>/<start_frame>-<end_frame>``: identity is content,
so two segmenter versions that agree on a span share its feature values. A frame's id is
``<asset_id>/f<n>`` with ``n`` its exact presentation index.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from amberlite.errors import StoreFull, out_of_space
from amberlite.media.decode import Decode, read_batch, read_luma
from amberlite.media.frame_index import FrameIndex, frame_index

_index_lock = threading.Lock()


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
