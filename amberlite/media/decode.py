"""Decoding frames with exact frame numbers, standard decode settings and a fast luma path.

Failure contract: a file that cannot be opened or indexed raises :class:`MediaError` before
anything is yielded. A file that fails midway (truncated or corrupt after indexing) yields
every frame it could decode and then raises :class:`MediaError` naming the file; the batch
functions (:func:`read_batch`, :func:`read_luma`) therefore raise and return nothing.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import partial

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from amberlite.errors import MediaError
from amberlite.media._av import (
    _AV_ERRORS,
    PathLike,
    check_file,
    describe_av_error,
    open_video,
    usable_cores,
)
from amberlite.media.frame_index import FrameIndex, frame_index

FORMATS = ("rgb24", "gray")
# 8-bit planar YUV layouts whose plane 0 is the luma (Y) plane, readable without conversion
_YUV8 = frozenset(
    ["yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "yuv440p", "yuvj440p",
     "yuv411p", "yuv410p", "nv12", "nv21", "nv16", "nv24", "gray", "yuva420p"]
)  # fmt: skip
_YUV420 = frozenset(["yuv420p", "yuvj420p"])
# interpolation for rgb24 downscaling: area averaging avoids bilinear's aliasing at big factors
_INTERPOLATION = "AREA"


@dataclass(frozen=True)
class Decode:
    """Standard decode settings; part of a feature's identity (see :meth:`key`).

    ``size``: ``(width, height)`` to scale to, None = native. ``fps``: sample at this rate,
    None = every frame; sample k is the frame whose presentation time is nearest to
    ``k / fps`` (ties go to the earlier frame) on a grid anchored at the first frame, so any
    sub-range yields the same frames as the whole file; a frame nearest to several samples
    (fps above the file's rate) is yielded once. ``format``: ``"rgb24"`` -> HxWx3 uint8,
    ``"gray"`` -> HxW uint8, the decoder's luma (Y) plane as is (no colour conversion;
    studio range 16-235 for most video), area-resized exactly as :func:`read_luma` does.
    """

    size: tuple[int, int] | None = None
    fps: Fraction | None = None
    format: str = "rgb24"

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ValueError(f"Decode.format must be one of {FORMATS}, got {self.format!r}")
        if self.size is not None:
            w, h = self.size
            if int(w) != w or int(h) != h or w < 1 or h < 1:
                raise ValueError(f"Decode.size must be two positive ints, got {self.size!r}")
            object.__setattr__(self, "size", (int(w), int(h)))
        if self.fps is not None:
            fps = _as_fraction(self.fps)
            if fps <= 0:
                raise ValueError(f"Decode.fps must be positive, got {self.fps!r}")
            object.__setattr__(self, "fps", fps)

    def key(self) -> str:
        """Stable string identity, e.g. ``"size=160x90;fps=2;format=rgb24"``.

        Unset fields read ``size=native`` and ``fps=all``; fps is an exact fraction
        (``fps=30000/1001``).
        """
        size = "native" if self.size is None else f"{self.size[0]}x{self.size[1]}"
        fps = "all" if self.fps is None else str(self.fps)
        return f"size={size};fps={fps};format={self.format}"


def _as_fraction(value: object) -> Fraction:
    """Fraction from an int/Fraction/str, or from a float via its shortest decimal repr."""
    if isinstance(value, float):
        return Fraction(repr(value))
    return Fraction(value)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- frame selection


def _frame_range(index: FrameIndex, start_frame: int, end_frame: int | None) -> tuple[int, int]:
    """Validate and clamp ``[start_frame, end_frame)`` against the index."""
    n = len(index)
    end = n if end_frame is None else min(int(end_frame), n)
    start = int(start_frame)
    if start < 0 or (end_frame is not None and end_frame < 0):
        raise ValueError(f"frame range [{start_frame}, {end_frame}) must not be negative")
    return start, max(start, end)


def sample_frames(index: FrameIndex, fps: Fraction) -> np.ndarray:
    """Frame numbers sampled at ``fps`` (see :class:`Decode`), sorted and unique: a new
    array of :meth:`FrameIndex.samples <amberlite.media.frame_index.FrameIndex.samples>`."""
    return index.samples(fps).copy()


def _wanted(index: FrameIndex, start: int, end: int, fps: Fraction | None) -> np.ndarray:
    """Frame numbers to yield in ``[start, end)``, honouring ``fps`` sampling (a new array;
    the index's samples are looked up, so a short range costs no pass over a long film)."""
    if fps is None:
        return np.arange(start, end, dtype=np.int64)
    frames = index.samples(fps)
    lo, hi = np.searchsorted(frames, [start, end], side="left")
    return frames[lo:hi].copy()


# --------------------------------------------------------------------------- conversion


def _plane(plane: av.video.plane.VideoPlane, width: int, height: int) -> np.ndarray:
    """A (height, width) uint8 view of an 8-bit plane, honouring its line size (stride)."""
    buf = np.frombuffer(plane, dtype=np.uint8)
    return buf[: plane.line_size * height].reshape(height, plane.line_size)[:, :width]


def _planar(frame: av.VideoFrame, chroma: bool) -> av.VideoFrame:
    """``frame`` itself if its planes can be read as is (8-bit YUV; 4:2:0 when ``chroma``),
    else converted to yuv420p at native size."""
    fmt = frame.format.name
    ok = fmt in _YUV420 if chroma else fmt in _YUV8
    return frame if ok else frame.reformat(format="yuv420p")


def _resize(plane: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a 2-D uint8 plane to ``size`` (width, height) by area averaging (OpenCV)."""
    import cv2

    if (plane.shape[1], plane.shape[0]) == size:
        return plane
    return cv2.resize(plane, size, interpolation=cv2.INTER_AREA)


def _luma(frame: av.VideoFrame, size: tuple[int, int] | None) -> np.ndarray:
    """The Y plane, resized to ``size`` if given. May be a read-only view of the frame."""
    f = _planar(frame, chroma=False)
    y = _plane(f.planes[0], f.width, f.height)
    return y if size is None else _resize(y, size)


def _planes(
    frame: av.VideoFrame, size: tuple[int, int] | None, chroma: bool
) -> tuple[np.ndarray, ...]:
    """``(y,)`` or ``(y, u, v)``; u and v at half width and height (quarter size) of y."""
    if not chroma:
        return (_luma(frame, size),)
    f = _planar(frame, chroma=True)
    w, h = size if size is not None else (f.width, f.height)
    cw, ch = (f.width + 1) // 2, (f.height + 1) // 2
    y = _plane(f.planes[0], f.width, f.height)
    u, v = _plane(f.planes[1], cw, ch), _plane(f.planes[2], cw, ch)
    csize = ((w + 1) // 2, (h + 1) // 2)
    return _resize(y, (w, h)), _resize(u, csize), _resize(v, csize)


def _converter(decode: Decode) -> Callable[[av.VideoFrame], np.ndarray]:
    """Frame -> array function implementing ``decode``'s size and format."""
    size = decode.size
    if decode.format == "gray":
        return lambda frame: _luma(frame, size).copy()
    if size is None:
        return lambda frame: frame.to_ndarray(format="rgb24")
    w, h = size
    # One reformatter per decode call: its scaling context is set up once and reused, not
    # once per frame as frame.to_ndarray(width=..., height=...) does (5x faster at 64x36,
    # the same pixels).
    reformatter = VideoReformatter()

    def convert(frame: av.VideoFrame) -> np.ndarray:
        small = reformatter.reformat(
            frame, width=w, height=h, format="rgb24", interpolation=_INTERPOLATION
        )
        return small.to_ndarray()

    return convert


# --------------------------------------------------------------------------- progress

_TICK_EVERY = 32  # frames between two progress ticks of one decode
_watch_lock = threading.Lock()
_watchers: dict[str, list[Callable[[int], None]]] = {}


@contextlib.contextmanager
def watching(callbacks: Mapping[str, Callable[[int], None]]) -> Iterator[None]:
    """Inside the block, every decode of a file named in ``callbacks`` (by path) in this
    process calls its callback with the number of frames decoded, every few frames and from
    whichever thread decodes: progress inside one long video, not only per finished asset."""
    keys = [(os.fspath(p), cb) for p, cb in callbacks.items()]
    with _watch_lock:
        for p, cb in keys:
            _watchers.setdefault(p, []).append(cb)
    try:
        yield
    finally:
        with _watch_lock:
            for p, cb in keys:
                cbs = _watchers.get(p, [])
                if cb in cbs:
                    cbs.remove(cb)
                if not cbs:
                    _watchers.pop(p, None)


def _tick(path: str, k: int) -> None:
    for cb in list(_watchers.get(path, ())):
        cb(k)


# --------------------------------------------------------------------------- decoding


class _Reseek(Exception):
    """The seek landed after the first wanted frame; retry from an earlier keyframe."""


def _seek_points(index: FrameIndex, first: int) -> list[int | None]:
    """Seek targets to try for frame ``first``: its keyframe, the one before, file start."""
    if index.synthetic or first == 0:
        return [None]
    kf = index.keyframe_at_or_before(int(index.pts[first]))
    earlier = index.keyframe_at_or_before(kf - 1)
    points: list[int | None] = [kf] if kf > index.pts[0] else []
    if earlier > index.pts[0] and earlier != kf:
        points.append(earlier)
    return [*points, None]


def _numbered(
    frames: Iterator[av.VideoFrame], index: FrameIndex
) -> Iterator[tuple[int, av.VideoFrame]]:
    """Attach exact frame numbers (by pts; sequential when the file has no timestamps)."""
    prev = -1
    for frame in frames:
        if index.synthetic or frame.pts is None:
            n = prev + 1
        else:
            try:
                n = index.frame_of_pts(frame.pts, hint=prev + 1)
            except KeyError:
                continue  # a frame the index does not know (e.g. discarded by an edit list)
        prev = n
        yield n, frame


def _decode_wanted(
    path: str,
    index: FrameIndex,
    wanted: np.ndarray,
    convert: Callable[[av.VideoFrame], object],
    threads: bool = True,
) -> Iterator[tuple[int, object]]:
    """Yield ``(n, convert(frame))`` for every frame number in sorted ``wanted``
    (``threads``: FFmpeg's frame/slice threading, see :func:`open_video`)."""
    if wanted.size == 0:
        return
    for seek in _seek_points(index, int(wanted[0])):
        try:
            yield from _decode_from(path, index, wanted, convert, seek, threads)
            return
        except _Reseek:
            continue
    raise MediaError(path, f"cannot decode frame {int(wanted[0])}: decoding never reached it")


_open_decoders = 0  # decoders open in this process (an executor's threads decode side by side)
_decoders_lock = threading.Lock()


@contextlib.contextmanager
def _decoder(path: str, threads: bool) -> Iterator[tuple]:
    """:func:`open_video` for a decode; FFmpeg's own threads (``threads``) only while fewer
    decoders than cores are open in this process. Where every core already runs a decoder
    (an executor's thread pool decoding batches side by side) more threads per decoder
    only cost CPU: about 10% more for the shot features of a film on two cores."""
    global _open_decoders
    with _decoders_lock:
        _open_decoders += 1
        alone = _open_decoders < usable_cores()
    try:
        with open_video(path, threads=threads and alone) as opened:
            yield opened
    finally:
        with _decoders_lock:
            _open_decoders -= 1


def _decode_from(
    path: str,
    index: FrameIndex,
    wanted: np.ndarray,
    convert: Callable[[av.VideoFrame], object],
    seek: int | None,
    threads: bool = True,
) -> Iterator[tuple[int, object]]:
    """Decode from ``seek`` (a keyframe pts, or None = file start), yielding wanted frames.

    Raises _Reseek (before yielding anything) if the first wanted frame was passed.
    """
    k, total = 0, int(wanted.size)
    watched, ticked = path in _watchers, 0
    with _decoder(path, threads) as (container, stream):
        try:
            if seek is not None:
                container.seek(seek, stream=stream, backward=True)
            for n, frame in _numbered(container.decode(stream), index):
                if n < wanted[k]:
                    continue
                if n > wanted[k]:
                    if k == 0:
                        raise _Reseek
                    at = int(wanted[k])
                    raise MediaError(path, f"decoder skipped frame {at}", frame=at)
                yield n, convert(frame)
                k += 1
                if watched and k - ticked >= _TICK_EVERY:
                    _tick(path, k - ticked)
                    ticked = k
                if k == total:
                    return
        except _AV_ERRORS as exc:  # the real place: the first wanted frame not decoded
            at = int(wanted[k])
            raise MediaError(
                path, f"decoding failed at frame {at}: {describe_av_error(exc)}", frame=at
            ) from exc
        finally:
            if watched and k > ticked:
                _tick(path, k - ticked)
    at = int(wanted[k])
    raise MediaError(path, f"truncated or corrupt: decoding stopped before frame {at}", frame=at)


def _prepare(
    path: PathLike, index: FrameIndex | None, start_frame: int, end_frame: int | None
) -> tuple[str, FrameIndex, int, int]:
    """Check the file, build the index if needed, clamp the range."""
    p = check_file(path)
    index = frame_index(p) if index is None else index
    start, end = _frame_range(index, start_frame, end_frame)
    return p, index, start, end


def read_frames(
    path: PathLike,
    start_frame: int = 0,
    end_frame: int | None = None,
    decode: Decode = Decode(),
    index: FrameIndex | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(exact frame number, array)`` for frames in ``[start_frame, end_frame)``.

    Contract: frame numbers come from presentation timestamps (exact on variable-frame-rate
    files); decoding seeks to the keyframe at or before ``start_frame`` (falling back to
    earlier keyframes if the container's seek overshoots) and uses FFmpeg threading.
    ``end_frame`` None or past the end = to the end. Arrays follow ``decode`` (size, fps
    sampling, format) and are new, writable arrays. Pass ``index`` (from
    :func:`frame_index`) to skip re-demuxing. Errors: see the module docstring (frames
    decoded before a midway failure are yielded, then MediaError is raised).
    """
    p, index, start, end = _prepare(path, index, start_frame, end_frame)
    wanted = _wanted(index, start, end, decode.fps)
    yield from _decode_wanted(p, index, wanted, _converter(decode))  # type: ignore[misc]


def read_batch(
    path: PathLike,
    start_frame: int = 0,
    end_frame: int | None = None,
    decode: Decode = Decode(),
    index: FrameIndex | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """All of :func:`read_frames` at once: ``(frame_numbers int64[N], frames uint8[N, ...])``.

    An empty range returns empty arrays (frames shaped ``(0, h, w[, 3])``, with h = w = 0
    when ``decode.size`` is None). Raises MediaError on a
    midway failure (nothing is returned).
    """
    p, index, start, end = _prepare(path, index, start_frame, end_frame)
    wanted = _wanted(index, start, end, decode.fps)
    convert = _converter(decode)
    numbers = np.empty(wanted.size, dtype=np.int64)
    out: np.ndarray | None = None
    for i, (n, arr) in enumerate(_decode_wanted(p, index, wanted, convert)):
        if out is None:
            out = np.empty((wanted.size, *arr.shape), dtype=np.uint8)  # type: ignore[union-attr]
        numbers[i], out[i] = n, arr
    if out is None:
        w, h = decode.size if decode.size is not None else (0, 0)
        out = np.empty((0, h, w, 3) if decode.format == "rgb24" else (0, h, w), dtype=np.uint8)
    return numbers, out


def read_luma(
    path: PathLike,
    size: tuple[int, int] | None = (64, 36),
    index: FrameIndex | None = None,
    start_frame: int = 0,
    end_frame: int | None = None,
    chroma: bool = False,
) -> tuple[np.ndarray, ...]:
    """Fast path for shot detection: every frame's luma (Y) plane, small, no RGB conversion.

    Returns ``(numbers int64[N], y uint8[N, h, w])``, or with ``chroma=True``
    ``(numbers, y, u, v)`` where u and v are ``uint8[N, ceil(h/2), ceil(w/2)]``.
    ``size`` is ``(width, height)``; the decoded planes are read in place (honouring their
    stride) and area-averaged with OpenCV, nearly free next to decoding; None keeps the
    native size. 8-bit YUV video needs no conversion (others are converted to yuv420p).
    Same numbering, range and error contract as :func:`read_batch`.
    """
    p, index, start, end = _prepare(path, index, start_frame, end_frame)
    wanted = np.arange(start, end, dtype=np.int64)
    convert = partial(_planes, size=size, chroma=chroma)
    numbers = np.empty(wanted.size, dtype=np.int64)
    planes: list[np.ndarray] | None = None
    for i, (n, arrays) in enumerate(_decode_wanted(p, index, wanted, convert)):
        if planes is None:
            planes = [np.empty((wanted.size, *a.shape), dtype=np.uint8) for a in arrays]
        numbers[i] = n
        for dst, a in zip(planes, arrays):
            dst[i] = a
    if planes is None:
        w, h = size if size is not None else (0, 0)
        shapes = [(0, h, w)] + ([(0, (h + 1) // 2, (w + 1) // 2)] * 2 if chroma else [])
        planes = [np.empty(s, dtype=np.uint8) for s in shapes]
    return (numbers, *planes)


def iter_planes(
    path: PathLike,
    index: FrameIndex | None = None,
    start_frame: int = 0,
    end_frame: int | None = None,
    threads: bool = True,
) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
    """Yield ``(n, y, u, v)`` for every frame in ``[start_frame, end_frame)``: the decoded
    4:2:0 planes at native size (u, v at half width and height), no copy, no conversion.
    ``threads=False`` decodes on one thread (no frame or slice threads): cheaper in CPU
    when the caller already decodes several ranges concurrently, one per core.

    For callers that reduce each frame themselves (e.g. to a tiny thumbnail with their own
    resampling): the arrays are read-only views of the decoder's frame (they keep it alive;
    copy what you keep at full size). Non-4:2:0 video is converted to yuv420p first. Same
    numbering, seeking, threading and error contract as :func:`read_frames`.
    """
    p, index, start, end = _prepare(path, index, start_frame, end_frame)
    wanted = np.arange(start, end, dtype=np.int64)

    def native(frame: av.VideoFrame) -> tuple[np.ndarray, ...]:
        f = _planar(frame, chroma=True)
        cw, ch = (f.width + 1) // 2, (f.height + 1) // 2
        planes = f.planes
        return (
            _plane(planes[0], f.width, f.height),
            _plane(planes[1], cw, ch),
            _plane(planes[2], cw, ch),
        )

    for n, (y, u, v) in _decode_wanted(p, index, wanted, native, threads):  # type: ignore[misc]
        yield n, y, u, v


def read_spans(
    path: PathLike,
    spans: list[tuple[int, int]],
    decode: Decode = Decode(),
    index: FrameIndex | None = None,
    gap: int = 250,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """:func:`read_batch` of many ``[start, end)`` spans from one pass over the file.

    Contract: the result at position i equals ``read_batch(path, *spans[i], decode, index)``
    (the same frame numbers and pixels: fps sampling is anchored at the file's first frame,
    not at the span). Spans are decoded in order of their start, each run of spans less than
    ``gap`` frames apart with one seek; frames between the spans of a run are decoded, not
    converted. Same error contract as :func:`read_batch`.
    """
    return read_spans_multi(path, [(decode, spans)], index, gap)[0]


def read_spans_multi(
    path: PathLike,
    requests: Sequence[tuple[Decode, Sequence[tuple[int, int]]]],
    index: FrameIndex | None = None,
    gap: int = 250,
) -> list[list[tuple[np.ndarray, np.ndarray]]]:
    """:func:`read_spans` for several decode settings at once, from ONE pass over the file:
    ``requests`` is a list of ``(decode, spans)``; the result at ``[r][i]`` equals
    ``read_batch(path, *spans_r[i], decode_r, index)``.

    Every frame any request samples is decoded once and converted once per picture (size and
    format) it is wanted at: features that look at different sizes, rates or formats of the
    same shots share the decoder, and those that look at the same picture at different
    rates share its conversion. Runs of spans less than ``gap`` frames apart (over all
    requests) are decoded with one seek. Same error contract as :func:`read_batch`.
    """
    p = check_file(path)
    index = frame_index(p) if index is None else index
    items: list[tuple[int, int, tuple[int, int], np.ndarray]] = []  # (request, i, range, wanted)
    out: list[list[tuple[np.ndarray, np.ndarray] | None]] = []
    for r, (decode, spans) in enumerate(requests):
        out.append([None] * len(spans))
        for i, (s, e) in enumerate(spans):
            rng = _frame_range(index, s, e)
            items.append((r, i, rng, _wanted(index, *rng, decode.fps)))
    # one conversion per picture (size, format) a frame is wanted at, whatever the rates
    look = [(decode.size, decode.format) for decode, _ in requests]
    converters = {k: _converter(decode) for k, (decode, _) in zip(look, requests)}
    items.sort(key=lambda it: it[2])

    def flush(run: list[tuple[int, int, tuple[int, int], np.ndarray]]) -> None:
        wanting: dict[int, set[int]] = defaultdict(set)  # frame -> requests that sample it
        for r, _, _, numbers in run:
            for n in numbers.tolist():
                wanting[n].add(r)
        frames_of: list[dict[int, np.ndarray]] = [{} for _ in requests]
        union = np.fromiter(sorted(wanting), dtype=np.int64, count=len(wanting))
        for n, frame in _decode_wanted(p, index, union, _keep):
            made: dict[tuple, np.ndarray] = {}
            for r in wanting[n]:
                if look[r] not in made:
                    made[look[r]] = converters[look[r]](frame)  # type: ignore[arg-type]
                frames_of[r][n] = made[look[r]]
        for r, i, _, numbers in run:
            if numbers.size:
                got = np.stack([frames_of[r][int(n)] for n in numbers])
                out[r][i] = (numbers.copy(), got)

    run: list[tuple[int, int, tuple[int, int], np.ndarray]] = []
    last_end = 0
    for item in items:
        start, end = item[2]
        if run and start - last_end > gap:
            flush(run)
            run = []
        last_end = max(last_end, end) if run else end
        run.append(item)
    if run:
        flush(run)
    for r, (decode, spans) in enumerate(requests):
        for i, got in enumerate(out[r]):
            if got is None:  # an empty span: shaped like read_batch's empty result
                start = _frame_range(index, *spans[i])[0]
                out[r][i] = read_batch(p, start, start, decode, index)
    return out  # type: ignore[return-value]


def _keep(frame: av.VideoFrame) -> av.VideoFrame:
    return frame
