"""Basic facts about a video file, exact where it matters (frame count, frame rate)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from amberlite.media._av import PathLike
from amberlite.media.frame_index import FrameIndex, StreamMeta, scan

_RATE_SNAP = Fraction(1, 100)  # header rates within 1% of the measured one are preferred


@dataclass(frozen=True)
class MediaInfo:
    """Facts about the first video stream of a file.

    ``container``: short format name (``"mp4"``, ``"matroska"``, ``"avi"``...); ``codec``:
    FFmpeg decoder name (``"h264"``...); ``frame_rate``: exact rate; the nominal one (e.g.
    ``Fraction(30000, 1001)``) for constant-rate files, ``frame_count / duration_s`` as an
    exact fraction for variable-rate ones; ``duration_s``: first frame's presentation to the
    end of the last one's; ``frame_count``: exact number of decodable frames;
    ``variable_frame_rate``: frame intervals differ by more than timestamp rounding.
    """

    path: str
    container: str
    codec: str
    width: int
    height: int
    frame_rate: Fraction
    duration_s: float
    frame_count: int
    variable_frame_rate: bool


def probe(path: PathLike) -> MediaInfo:
    """Describe ``path``'s first video stream.

    Contract: demuxes the whole file (no decoding; fast) so ``frame_count`` and
    ``variable_frame_rate`` are exact. Raises :class:`~amberlite.errors.MediaError` naming
    the file if it is missing, truncated, not media, or has no video stream.
    """
    index, meta = scan(path)
    return info_from_index(os.fspath(path), index, meta)


def info_from_index(path: str, index: FrameIndex, meta: StreamMeta) -> MediaInfo:
    """Build :class:`MediaInfo` from a demux scan's index and stream metadata."""
    vfr = is_variable_rate(index)
    return MediaInfo(
        path=path,
        container=meta.container,
        codec=meta.codec,
        width=meta.width,
        height=meta.height,
        frame_rate=_frame_rate(index, meta, vfr),
        duration_s=index.duration_s,
        frame_count=len(index),
        variable_frame_rate=vfr,
    )


def is_variable_rate(index: FrameIndex) -> bool:
    """True if frame intervals vary by more than timestamp rounding.

    Rounding (e.g. 29.97 fps in milliseconds: 33 or 34) moves an interval by one tick, so the
    spread of intervals must exceed max(2%, 1 tick) -- or any amount when an interval is
    only a few ticks long (e.g. AVI, where a tick is a frame).
    """
    if len(index) < 3:
        return False
    steps = np.diff(index.pts)
    spread = int(steps.max() - steps.min())
    median = float(np.median(steps))
    return spread > max(0.02 * median, 1.0 if median >= 4 else 0.0)


def _frame_rate(index: FrameIndex, meta: StreamMeta, vfr: bool) -> Fraction:
    """Exact frame rate (see :class:`MediaInfo`)."""
    if vfr or len(index) < 2:
        span = (index.end_pts - index.start_pts) * index.time_base
        return Fraction(len(index)) / span if span > 0 else meta.guessed_rate or Fraction(0)
    measured = (len(index) - 1) / (int(index.pts[-1] - index.pts[0]) * index.time_base)
    for rate in (meta.guessed_rate, meta.average_rate):
        if rate is not None and abs(rate - measured) <= _RATE_SNAP * measured:
            return rate
    return measured
