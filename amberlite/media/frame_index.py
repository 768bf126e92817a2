"""Exact frame numbering: the presentation timestamp of every frame, read by demuxing only.

Frame ``n`` of a video is the frame with the n-th smallest presentation timestamp (pts) of
its first video stream. This holds on variable-frame-rate files, where ``n / fps`` is wrong.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from amberlite.errors import MediaError
from amberlite.media._av import PathLike, media_errors, open_video

_INDEX_VERSION = 1


class FrameIndex:
    """Sorted presentation timestamps of every frame of a video stream.

    Attributes: ``pts`` (int64, sorted ascending, one per frame, in ``time_base`` units),
    ``time_base`` (Fraction seconds per tick), ``start_pts`` (the first frame's pts: time 0),
    ``end_pts`` (when the last frame stops being displayed), ``keyframe_pts`` (sorted pts of
    keyframes, used to seek), ``synthetic`` (True when the container had no timestamps and
    the pts were numbered 0, 1, 2... at the nominal rate; such files are never seeked).
    Immutable by convention: the arrays are read-only.
    """

    __slots__ = (
        "pts",
        "time_base",
        "start_pts",
        "end_pts",
        "keyframe_pts",
        "synthetic",
        "_sec",
        "_samples",
    )

    def __init__(
        self,
        pts: np.ndarray,
        time_base: Fraction,
        start_pts: int | None = None,
        end_pts: int | None = None,
        keyframe_pts: np.ndarray | None = None,
        synthetic: bool = False,
    ) -> None:
        pts = np.sort(np.asarray(pts, dtype=np.int64))
        if pts.size == 0:
            raise ValueError("a FrameIndex needs at least one frame")
        self.pts = _readonly(pts)
        self.time_base = Fraction(time_base)
        self.start_pts = int(pts[0] if start_pts is None else start_pts)
        self.end_pts = int(_default_end(pts) if end_pts is None else end_pts)
        kf = pts[:1] if keyframe_pts is None else np.asarray(keyframe_pts, dtype=np.int64)
        self.keyframe_pts = _readonly(np.sort(kf))
        self.synthetic = bool(synthetic)
        # seconds as correctly rounded floats of exact rationals, so that time_of(n) == k / fps
        # compares equal whenever the two rationals are equal
        ticks = (pts - self.start_pts).astype(np.float64) * self.time_base.numerator
        self._sec = _readonly(ticks / self.time_base.denominator)
        self._samples: dict[Fraction, np.ndarray] = {}  # fps -> samples(fps)

    def __len__(self) -> int:
        return int(self.pts.size)

    def __repr__(self) -> str:
        tb = self.time_base
        return f"FrameIndex({len(self)} frames, {self.duration_s:.3f} s, time_base={tb})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FrameIndex):
            return NotImplemented
        return (
            np.array_equal(self.pts, other.pts)
            and self.time_base == other.time_base
            and (self.start_pts, self.end_pts) == (other.start_pts, other.end_pts)
            and np.array_equal(self.keyframe_pts, other.keyframe_pts)
            and self.synthetic == other.synthetic
        )

    __hash__ = None  # type: ignore[assignment]

    @property
    def seconds(self) -> np.ndarray:
        """Presentation time of every frame in seconds from the first frame (read-only)."""
        return self._sec

    @property
    def duration_s(self) -> float:
        """Seconds from the first frame's pts to the end of the last frame's display."""
        return float((self.end_pts - self.start_pts) * self.time_base)

    def time_of(self, frame: int) -> float:
        """Seconds from stream start (the first frame) at which ``frame`` is presented.

        Raises IndexError for a frame number outside ``[0, len)``.
        """
        return float(self._sec[self._check(frame)])

    def frame_at(self, t_s: float) -> int:
        """The frame on screen at ``t_s`` seconds: ``time_of(n) <= t_s < time_of(n + 1)``.

        Contract: ``frame_at(time_of(n)) == n`` exactly. Times before 0 raise ValueError;
        times at or after ``duration_s`` raise ValueError.
        """
        if not 0.0 <= t_s < self.duration_s:
            raise ValueError(f"time {t_s} s is outside the video [0, {self.duration_s}) s")
        return int(np.searchsorted(self._sec, t_s, side="right") - 1)

    def frame_of_pts(self, pts: int, hint: int = -1) -> int:
        """Frame number of the frame with presentation timestamp ``pts``; KeyError if none.
        ``hint``: a likely answer (a decoder's next frame), checked first (no search)."""
        if 0 <= hint < len(self) and self.pts[hint] == pts:
            return hint
        n = int(np.searchsorted(self.pts, pts, side="left"))
        if n >= len(self) or self.pts[n] != pts:
            raise KeyError(pts)
        return n

    def samples(self, fps: Fraction) -> np.ndarray:
        """Frame numbers sampled at ``fps`` over the whole stream, sorted and unique: for each
        sample time ``k / fps`` (``k / fps`` before the end), the frame presented nearest to
        it (ties: the earlier frame). Read-only, computed once per rate (a decode of any
        range looks up its part, instead of sampling the whole stream again).

        Exact integer arithmetic: frame time ``(pts - start) * tb`` and sample time ``k / fps``
        are both scaled by ``fps.num * tb.den`` so no float rounding decides which is nearest.
        """
        fps = Fraction(fps)
        found = self._samples.get(fps)
        if found is None:  # threads may race here: both compute the same array
            found = self._samples[fps] = _readonly(self._sample(fps))
        return found

    def _sample(self, fps: Fraction) -> np.ndarray:
        tb = self.time_base
        scale_f = tb.numerator * fps.numerator  # ticks -> common unit
        scale_k = tb.denominator * fps.denominator  # sample number -> common unit
        span = self.end_pts - self.start_pts
        count = max(1, math.ceil(span * tb * fps))  # samples k with k / fps < duration
        dtype = np.int64 if span * scale_f + count * scale_k < 2**62 else object
        rel = (self.pts - self.start_pts).astype(dtype) * scale_f
        targets = np.arange(count).astype(dtype) * scale_k
        pos = np.searchsorted(rel, targets, side="left")
        below = np.clip(pos - 1, 0, len(self) - 1)
        above = np.clip(pos, 0, len(self) - 1)
        take_above = (rel[above] - targets) < (targets - rel[below])  # ties: earlier frame
        return np.unique(np.where(take_above, above, below).astype(np.int64))

    def keyframe_at_or_before(self, pts: int) -> int:
        """The pts of the last keyframe whose pts is <= ``pts`` (the first frame's if none)."""
        k = int(np.searchsorted(self.keyframe_pts, pts, side="right")) - 1
        return int(self.keyframe_pts[k]) if k >= 0 else int(self.pts[0])

    def head(self, n: int) -> FrameIndex:
        """The index of the first ``n`` frames (the readable part of a file damaged at
        frame ``n``): frame ``n - 1`` is shown until frame ``n`` would have been."""
        if not 0 < n <= len(self):
            raise ValueError(f"head({n}) of an index of {len(self)} frames")
        if n == len(self):
            return self
        cut = int(self.pts[n])
        return FrameIndex(
            self.pts[:n],
            self.time_base,
            self.start_pts,
            cut,
            self.keyframe_pts[self.keyframe_pts < cut],
            self.synthetic,
        )

    def save(self, path: PathLike) -> None:
        """Write the index to ``path`` (numpy ``.npz`` format, at exactly that path)."""
        with open(path, "wb") as f:
            np.savez(
                f,
                version=np.int64(_INDEX_VERSION),
                pts=self.pts,
                keyframe_pts=self.keyframe_pts,
                time_base=np.array([self.time_base.numerator, self.time_base.denominator]),
                bounds=np.array([self.start_pts, self.end_pts], dtype=np.int64),
                synthetic=np.bool_(self.synthetic),
            )

    @classmethod
    def load(cls, path: PathLike) -> FrameIndex:
        """Read an index written by :meth:`save`; MediaError if unreadable or not an index."""
        try:
            with np.load(path, allow_pickle=False) as z:
                if int(z["version"]) != _INDEX_VERSION:
                    raise MediaError(path, f"unsupported frame index version {int(z['version'])}")
                num, den = (int(v) for v in z["time_base"])
                start, end = (int(v) for v in z["bounds"])
                return cls(z["pts"], Fraction(num, den), start, end, z["keyframe_pts"],
                           bool(z["synthetic"]))  # fmt: skip
        except (OSError, KeyError, ValueError) as exc:
            raise MediaError(path, f"not a frame index ({exc})") from exc

    def _check(self, frame: int) -> int:
        if not 0 <= frame < len(self):
            raise IndexError(f"frame {frame} out of range [0, {len(self)})")
        return int(frame)


def _readonly(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


def _default_end(pts: np.ndarray) -> int:
    """End of display of the last frame when no duration is known: one median interval on."""
    step = int(np.median(np.diff(pts))) if pts.size > 1 else 1
    return int(pts[-1]) + max(step, 1)


@dataclass(frozen=True)
class StreamMeta:
    """What a demux scan learns about the file besides the frame index (used by probe)."""

    container: str
    codec: str
    width: int
    height: int
    average_rate: Fraction | None
    guessed_rate: Fraction | None


def frame_index(path: PathLike) -> FrameIndex:
    """Demux (no decode) the first video stream of ``path`` and index every frame's pts.

    Contract: ``len(index)`` is the exact number of frames a decoder presents (packets the
    container marks as discarded, e.g. by an edit list, are excluded). Raises
    :class:`MediaError` naming the file if it is missing, not media, has no video stream,
    has no frames, or is truncated (fewer packets than its header promises, or media ending
    well before the duration its header states).
    """
    return scan(path)[0]


def scan(path: PathLike) -> tuple[FrameIndex, StreamMeta]:
    """Demux ``path`` once; return its :class:`FrameIndex` and :class:`StreamMeta`."""
    with open_video(path) as (container, stream):
        p = os.fspath(path)
        with media_errors(p, "corrupt or truncated media"):
            video, ends = _demux(container, stream)
        meta = StreamMeta(
            container=_container_name(container.format.name, p),
            codec=stream.codec_context.name,
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            average_rate=_fraction(stream.average_rate),
            guessed_rate=_fraction(stream.guessed_rate),
        )
        _check_complete(p, container, stream, video, ends)
        return _build_index(p, stream, video, meta), meta


@dataclass
class _VideoPackets:
    pts: list[int]
    keyframes: list[int]
    last_end: int | None = None
    packets: int = 0  # all packets, including discarded and empty ones
    missing_pts: int = 0


def _demux(container, stream) -> tuple[_VideoPackets, dict[int, float]]:
    """Read every packet of every stream; collect video pts and each stream's end (seconds)."""
    video = _VideoPackets([], [])
    ends: dict[int, float] = {}
    for packet in container.demux():
        if packet.size == 0 and packet.dts is None and packet.pts is None:
            continue  # PyAV's end-of-stream flush packet
        idx = packet.stream.index
        if packet.pts is not None:
            end = (packet.pts + (packet.duration or 0)) * packet.stream.time_base
            ends[idx] = max(ends.get(idx, float("-inf")), float(end))
        if idx != stream.index:
            continue
        video.packets += 1  # includes empty packets (e.g. AVI skip frames), as headers count them
        if packet.size == 0:
            continue
        if packet.pts is None:
            video.missing_pts += 1
            continue
        if packet.is_discard:
            continue
        video.pts.append(packet.pts)
        if packet.is_keyframe:
            video.keyframes.append(packet.pts)
        end_pts = packet.pts + (packet.duration or 0)
        video.last_end = end_pts if video.last_end is None else max(video.last_end, end_pts)
    return video, ends


def _check_complete(path: str, container, stream, video: _VideoPackets, ends) -> None:
    """Raise MediaError if the demuxed media is shorter than the container header promises.

    Two signs of truncation: fewer video packets than the header's frame count while the
    video also ends early (AVI counts skipped slots in the header, so a count alone is not
    enough), or all media ending well (> max(0.25 s, 1%)) before the header's duration;
    so losing only the last quarter second of a file may go unnoticed.
    """
    if video.packets == 0:
        raise MediaError(path, "video stream has no frames")
    if not container.duration or not ends:
        return
    duration = container.duration / 1_000_000
    start = (container.start_time or 0) / 1_000_000
    video_end = ends.get(stream.index, start) - start
    promised = stream.frames or 0
    if promised and video.packets < promised and video_end < duration - 1e-3:
        raise MediaError(path, f"truncated: {video.packets} of {promised} video frames present")
    present = max(ends.values()) - start
    if present < duration - max(0.25, 0.01 * duration):
        raise MediaError(path, f"truncated: media ends at {present:.2f} s of {duration:.2f} s")


def _build_index(path: str, stream, video: _VideoPackets, meta: StreamMeta) -> FrameIndex:
    """FrameIndex from demuxed packets; packets without timestamps get synthetic ones."""
    if video.missing_pts:
        rate = meta.guessed_rate or meta.average_rate or Fraction(25)
        return FrameIndex(np.arange(video.packets), 1 / rate, synthetic=True)
    if not video.pts:
        raise MediaError(path, "video stream has no presentable frames")
    pts = np.array(video.pts, dtype=np.int64)
    end = video.last_end if video.last_end is not None and video.last_end > pts.max() else None
    keyframes = np.array(video.keyframes or [int(pts.min())], dtype=np.int64)
    return FrameIndex(pts, Fraction(stream.time_base), end_pts=end, keyframe_pts=keyframes)


def _container_name(format_name: str, path: str) -> str:
    """Short container name: the file extension if FFmpeg lists it for the format, else the
    format's first name (``"mov,mp4,..."`` -> ``"mp4"`` for x.mp4; ``"matroska,webm"`` ->
    ``"matroska"`` for x.mkv)."""
    names = format_name.split(",")
    ext = os.path.splitext(path)[1].lstrip(".").lower()
    return ext if ext in names else names[0]


def _fraction(rate: object) -> Fraction | None:
    """A positive Fraction frame rate, or None if unknown."""
    if rate is None:
        return None
    r = Fraction(rate)
    return r if r > 0 else None
