"""Shot segmentation: the ``shots`` segmenter that produces the ``shot`` entities.

Method (all frame numbers are the exact ones of the asset's FrameIndex, so VFR files are
segmented in frames, not in nominal-rate time):

1. **Thumbnails.** Every frame's decoded Y, U and V planes are reduced in place (no RGB
   conversion) to 64x36 luma and 32x18 chroma (bilinear to twice the size, then 2x2 area
   averaging: anti-aliased enough for motion; at odd integer factors such as 360p and 1080p
   the bilinear step is a strided copy, and the averages run on 256 frames at once). Files
   of more than ``2 * CHUNK_MIN`` frames are split at keyframes into chunks decoded
   concurrently, each on one decoder thread when there are chunks for every core (FFmpeg's
   frame threads cost about a third more CPU per frame, its slice threads oversubscribe the
   cores on files with several slices per frame), with OpenCV's own thread pool off
   meanwhile; the decoder releases the GIL, so a thread pool keeps every core busy without
   pickling frames. What needs no other frame (histograms, mean luma) is computed in the
   same threads.
2. **Features**, vectorized with numpy over a whole chunk (with a carried tail of previous
   frames): ``d1`` the mean absolute Y+U+V difference to the previous frame; ``h1`` the
   colour-distribution distance to the previous frame (mean 1-D earth mover's distance of
   the Y, U, V histograms, 0-1: high on a cut, low under motion, smooth under a dissolve);
   on half-size thumbnails, the difference to each of the ``FLASH_SPAN + 1`` previous
   frames (flash bridging), the colour distance ``hL`` and pixel distance ``dL`` over ``2L``
   frames (L ~ 0.2 s) and the dissolve residual ``|Y[j-L] - (Y[j-2L] + Y[j]) / 2|``; mean
   and spread of luma; how much of the picture changed: ``spread``, the fraction of 8x6
   blocks whose Y+U+V difference to the previous frame (``spread_long``: to frame
   ``j-2L``) is at least 8. Where the change is sudden (``c`` at least 1.5x its
   rolling median) and wide (half the blocks), ``spread`` is measured exactly instead
   (:func:`motion_spread`): the fraction of pixels that changed after the best of no
   motion and the strongest global translation (a phase-correlation peak away from zero,
   so a pan is found behind a still subject), each with a pixel of tolerance (more along
   fast motion: blur), both ways, letterbox black left out. A chunk's last frames wait for
   the next chunk, so this gate sees both sides and nothing depends on the chunking.
3. **Hard cuts.** A frame is a cut candidate when its content change ``c = d1 + 50 * h1``
   is at least ``min_content`` and ``threshold`` times the rolling median of ``c`` around it
   (like PySceneDetect's AdaptiveDetector): fast motion and pans raise the median too.
   **Local change** is no cut: ``spread`` must reach the parameter of that name (a big
   object popping in, out or jumping, a caption, a hand sweeping through, a whip pan once
   compensated, all change less of the picture).
   **Flashes** are suppressed: a change is no cut if, within ``FLASH_SPAN`` frames, some frame
   after it looks like some frame before it (difference under 40% of the jump).
4. **Dissolves.** A window ``[m-L, m+L]`` is dissolve-like when its ends differ
   (``dL >= 2 * min_content`` and ``hL >= gradual``), no single step holds more than half
   of that change (no hard cut), and its middle frame is close to the average of its ends
   (residual <= dL / 4; motion and pans give about dL / 2), and ``spread_long`` reaches
   ``spread`` (a caption fading in is no dissolve). Runs of such windows (joined
   over gaps <= L) give one cut each, at the run's centre: the transition's midpoint.
5. **Fades.** Runs of near-black, flat frames strictly inside the asset, entered and left
   by luma ramps, give one cut at the middle of the dark run; hard-cut and dissolve
   candidates inside a fade are dropped.
6. **Minimum length.** Candidates are accepted strongest first (hard cuts, then fades, then
   dissolves) when at least ``min_frames`` from every accepted cut and from both ends.

Output: spans ``(start_frame, end_frame)``, end exclusive, covering ``[0, frame_count)``.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from amberlite.define.decorators import segmenter
from amberlite.media._av import usable_cores
from amberlite.media.decode import iter_planes
from amberlite.media.frame_index import FrameIndex

THUMB = (64, 36)  # luma thumbnail (width, height); chroma is half of it each way
FLASH_SPAN = 4  # longest flash (frames) bridged by flash suppression
CHUNK_MIN = 300  # frames: files shorter than two chunks are read in one piece
CHUNK_MAX = 3000  # frames: upper bound of a chunk (bounds memory per chunk)
_HIST_BINS = (32, 16, 16)  # Y, U, V histogram bins
_Y_PIX = THUMB[0] * THUMB[1]
_C_PIX = (THUMB[0] // 2) * (THUMB[1] // 2)
GRID = (8, 6)  # blocks across and down a thumbnail for the block spread
BLOCK_TAU = 8.0  # mean Y+U+V difference of a block that counts it as changed
PIXEL_TAU = 16.0  # Y+U+V difference of a pixel (beyond its motion tolerance): changed
SPREAD = 0.6  # default smallest fraction of the picture a cut changes
GATE_SPREAD = 0.5  # block spread from which a jump's spread is measured exactly
GATE_CONTENT, GATE_RATIO = 4.0, 1.5  # ... when its change c is this big and this sudden
MOTION_PEAK = 0.12  # phase-correlation peak of a real global motion (cuts: ~0.07)
_FADE_MEAN, _FADE_STD = 28.0, 8.0  # a frame of a fade: mean luma and its spread at most these
_DARK = 24  # luma at or below which a pixel in both frames is letterbox/black: not counted


def _check_params(
    threshold: float, min_frames: int, min_content: float, gradual: float, spread: float = SPREAD
) -> None:
    """ValueError for parameters that make no sense (refused when a request gives them)."""
    if not isinstance(min_frames, int) or isinstance(min_frames, bool) or min_frames < 1:
        raise ValueError(f"min_frames must be an int >= 1, got {min_frames!r}")
    for name, value in (("threshold", threshold), ("min_content", min_content)):
        if not isinstance(value, int | float) or not value > 0:
            raise ValueError(f"{name} must be a positive number, got {value!r}")
    for name, value in (("gradual", gradual), ("spread", spread)):
        if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value <= 1:
            raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")


@segmenter(
    produces="shot",
    version=3,
    params={
        "threshold": 3.0,
        "min_frames": 8,
        "min_content": 8.0,
        "gradual": 0.02,
        "spread": SPREAD,
    },
    check=_check_params,
)
def shots(
    asset,
    threshold: float = 3.0,
    min_frames: int = 8,
    min_content: float = 8.0,
    gradual: float = 0.02,
    spread: float = SPREAD,
):
    """Shots from hard cuts, dissolves and fades (flash, motion and local-change robust);
    see the module doc.

    ``threshold``: hard-cut ratio to the local median change; ``min_frames``: shortest shot;
    ``min_content``: smallest absolute change that can be a hard cut; ``gradual``: smallest
    colour change (0-1) across a dissolve window (0 disables dissolve detection);
    ``spread``: smallest fraction of the picture a cut or dissolve changes (0 disables the
    local-change test).
    """
    _check_params(threshold, min_frames, min_content, gradual, spread)
    n = asset.record.frame_count
    feats = features(asset.path, asset.index, fps=float(asset.record.frame_rate))
    cuts = detect(feats, threshold, min_frames, min_content, gradual, spread)
    return spans(cuts, n)


# --------------------------------------------------------------------------- thumbnails


def _reducer(
    shape: tuple[int, ...], size: tuple[int, int]
) -> tuple[Callable[[np.ndarray], np.ndarray], bool]:
    """``(first, doubled)`` to shrink a plane of ``shape`` (rows, columns) to ``size``:
    bilinear to twice ``size`` then a 2x2 area average (fast, mildly anti-aliased), or area
    averaging straight to ``size`` for small planes. ``first`` is the per-frame step,
    ``doubled`` whether its result is twice ``size`` (then :func:`_halve` finishes it).
    Bilinear resampling at an odd integer factor samples pixel centres exactly (weights 1
    and 0), so it is a strided view there: the same values, no arithmetic."""
    import cv2

    w, h = size
    rows, cols = shape[0], shape[1]
    if not (cols > 2 * w and rows > 2 * h):
        return (lambda p: cv2.resize(p, size, interpolation=cv2.INTER_AREA)), False
    fx, fy = cols // (2 * w), rows // (2 * h)
    if cols == 2 * w * fx and rows == 2 * h * fy and fx % 2 and fy % 2:
        ox, oy = fx // 2, fy // 2
        return (lambda p: p[oy::fy, ox::fx]), True
    return (lambda p: cv2.resize(p, (2 * w, 2 * h), interpolation=cv2.INTER_LINEAR)), True


def _halve(stack: np.ndarray) -> np.ndarray:
    """2x2 area average of every image of ``stack`` (uint8[N, 2h, 2w] -> [N, h, w]): one
    OpenCV call on the images stacked into one tall one (even heights: no block straddles
    two images), the same values as one call per image."""
    import cv2

    n, rows, cols = stack.shape
    tall = stack.reshape(n * rows, cols)
    out = cv2.resize(tall, (cols // 2, n * rows // 2), interpolation=cv2.INTER_AREA)
    return out.reshape(n, rows // 2, cols // 2)


@dataclass
class Thumbs:
    """Frame numbers and per-frame descriptors: ``full`` = 64x36 Y + 2 x 32x18 chroma
    (uint8[N, 3456]); ``half`` = the same at half size (uint8[N, 864]); and what needs no
    other frame (see :func:`_frame_stats`): ``cdf`` (float32[N, 64]), ``mean_y``, ``std_y``."""

    numbers: np.ndarray
    full: np.ndarray
    half: np.ndarray
    cdf: np.ndarray
    mean_y: np.ndarray
    std_y: np.ndarray

    def __len__(self) -> int:
        return int(self.numbers.size)

    def _parts(self) -> tuple[np.ndarray, ...]:
        return (self.numbers, self.full, self.half, self.cdf, self.mean_y, self.std_y)

    def tail(self, k: int) -> Thumbs:
        return Thumbs(*(x[-k:] for x in self._parts()))

    @staticmethod
    def concat(a: Thumbs, b: Thumbs) -> Thumbs:
        return Thumbs(*(np.concatenate([x, y]) for x, y in zip(a._parts(), b._parts())))

    @staticmethod
    def empty() -> Thumbs:
        return Thumbs(
            np.zeros(0, np.int64),
            np.zeros((0, _Y_PIX + 2 * _C_PIX), np.uint8),
            np.zeros((0, (_Y_PIX + 2 * _C_PIX) // 4), np.uint8),
            np.zeros((0, 64), np.float32),
            np.zeros(0, np.float32),
            np.zeros(0, np.float32),
        )


_BATCH = 256  # frames whose thumbnails are finished together (see read_thumbs)


def read_thumbs(
    path: str, index: FrameIndex | None, start: int, end: int | None, threads: bool = True
) -> Thumbs:
    """Descriptors of the frames ``[start, end)`` (see :class:`Thumbs`); ``threads``:
    FFmpeg's own decoder threads (off when chunks are decoded concurrently, one per core).

    Per frame only the first, per-plane step of :func:`_reducer` runs (a strided copy at the
    usual odd integer factors: 360p, 1080p); the 2x2 averages to the thumbnail and to the
    half-size descriptor run on batches of up to ``_BATCH`` frames of one size."""
    w, h = THUMB
    sizes = ((w, h), (w // 2, h // 2), (w // 2, h // 2))
    numbers: list[int] = []
    full: list[np.ndarray] = []
    half: list[np.ndarray] = []
    stats: list[tuple[np.ndarray, ...]] = []
    plan: tuple = ()  # (plane shapes, [(first, doubled)] per plane, [buffer] per plane)
    k = 0  # frames in the buffers

    def flush() -> None:
        thumbs = [
            _halve(buf[:k]) if doubled else buf[:k] for buf, (_, doubled) in zip(plan[2], plan[1])
        ]
        full.append(np.concatenate([t.reshape(k, -1) for t in thumbs], axis=1))
        half.append(np.concatenate([_halve(t).reshape(k, -1) for t in thumbs], axis=1))
        stats.append(_frame_stats(full[-1]))

    for n, *planes in iter_planes(path, index, start, end, threads=threads):
        shapes = tuple(p.shape for p in planes)
        if not plan or shapes != plan[0] or k == _BATCH:
            if k:
                flush()
            if not plan or shapes != plan[0]:
                steps = [_reducer(s, size) for s, size in zip(shapes, sizes)]
                bufs = [
                    np.empty((_BATCH, *(d * (2 if doubled else 1) for d in size[::-1])), np.uint8)
                    for (_, doubled), size in zip(steps, sizes)
                ]
                plan = (shapes, steps, bufs)
            k = 0
        for p, (first, _), buf in zip(planes, plan[1], plan[2]):
            buf[k] = first(p)
        numbers.append(n)
        k += 1
    if k:
        flush()
    if not numbers:
        return Thumbs.empty()
    cdf, mean_y, std_y = (np.concatenate(x) for x in zip(*stats))
    return Thumbs(
        np.array(numbers, np.int64),
        np.concatenate(full),
        np.concatenate(half),
        cdf,
        mean_y,
        std_y,
    )


def chunk_bounds(index: FrameIndex, workers: int) -> list[tuple[int, int]]:
    """Split ``[0, len(index))`` at keyframes into about ``2 * workers`` chunks of
    ``CHUNK_MIN``..``CHUNK_MAX`` frames (one chunk for short files or one worker)."""
    n = len(index)
    if workers <= 1 or n < 2 * CHUNK_MIN or index.synthetic:
        return [(0, n)]
    count = max(2 * workers, -(-n // CHUNK_MAX))
    count = min(count, n // CHUNK_MIN)
    keyframes = np.searchsorted(index.pts, index.keyframe_pts)
    keyframes = keyframes[(keyframes > 0) & (keyframes < n)]
    targets = np.arange(1, count) * n / count
    if keyframes.size == 0:
        return [(0, n)]
    snapped = keyframes[np.clip(np.searchsorted(keyframes, targets), 0, keyframes.size - 1)]
    edges = np.unique(np.concatenate([[0], snapped, [n]]))
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


_cv_lock = threading.Lock()
_cv_users = 0  # segmentations running with OpenCV's thread pool off
_cv_saved = 0  # the thread count to restore when the last of them ends


@contextlib.contextmanager
def _opencv_serial() -> Iterator[None]:
    """OpenCV's own thread pool off while chunks are decoded on every core: its parallel
    loops (resizes, absolute differences over whole chunks) would only contend with the
    decoders for the same cores (~40% more CPU in :func:`chunk_features` on two cores).
    The setting is process-wide, so concurrent segmentations share it: the first one in
    turns the pool off, the last one out restores what it found (other OpenCV users in the
    process run single-threaded meanwhile: slower, never different)."""
    import cv2

    global _cv_users, _cv_saved
    with _cv_lock:
        if _cv_users == 0:
            _cv_saved = cv2.getNumThreads()
            cv2.setNumThreads(1)
        _cv_users += 1
    try:
        yield
    finally:
        with _cv_lock:
            _cv_users -= 1
            if _cv_users == 0:
                cv2.setNumThreads(_cv_saved)


def iter_thumbs(path: str, index: FrameIndex, workers: int | None = None) -> Iterator[Thumbs]:
    """Thumbnails of the whole file, chunk by chunk in order, chunks decoded concurrently
    (each on one decoder thread when there are at least as many chunks as workers: FFmpeg's
    frame threads cost about a third more CPU per frame)."""
    workers = workers or usable_cores()
    bounds = chunk_bounds(index, workers)
    if len(bounds) == 1:
        yield read_thumbs(path, index, 0, None)
        return
    threads = len(bounds) < workers
    with cf.ThreadPoolExecutor(workers, thread_name_prefix="shots") as pool:
        yield from pool.map(lambda b: read_thumbs(path, index, *b, threads=threads), bounds)


# --------------------------------------------------------------------------- features


@dataclass
class Features:
    """Per-frame features (arrays of length N, position j = frame ``numbers[j]``); values
    needing frames before the first are NaN. See the module docstring for the meaning."""

    numbers: np.ndarray
    d1: np.ndarray  # mean |Y|+|U|+|V| difference to the previous frame
    h1: np.ndarray  # histogram TV distance to the previous frame (0-1)
    lag: np.ndarray  # [FLASH_SPAN + 1, N] half-size difference to frame j - k, k = 1..
    h_long: np.ndarray  # histogram distance to frame j - 2L
    d_long: np.ndarray  # half-size difference to frame j - 2L
    resid: np.ndarray  # half-size |Y[j-L] - (Y[j-2L] + Y[j]) / 2|
    mean_y: np.ndarray
    std_y: np.ndarray  # NaN where mean_y > _FADE_MEAN (only dark frames need it)
    spread: np.ndarray  # fraction of the picture changed from frame j - 1 (0-1)
    spread_long: np.ndarray  # fraction of the blocks changed from frame j - 2L (0-1)
    half_window: int  # L


def _absdiff_mean(
    x: np.ndarray, k: int, parts: tuple[int, int], d: np.ndarray | None = None
) -> np.ndarray:
    """Mean |x[j] - x[j-k]| per plane, summed over Y, U, V (length len(x) - k); ``d`` is
    that absolute difference when the caller has it already."""
    import cv2

    if d is None:
        d = cv2.absdiff(x[k:], x[:-k])
    ny, nc = parts
    y = d[:, :ny].sum(axis=1, dtype=np.uint32) / ny
    c = d[:, ny:].sum(axis=1, dtype=np.uint32) / nc
    return (y + c).astype(np.float32)


def _block_spread(d: np.ndarray, size: tuple[int, int], grid: tuple[int, int] = GRID) -> np.ndarray:
    """Per row of ``d`` (absolute differences of descriptors whose luma is ``size``), the
    fraction of the ``grid`` blocks whose mean Y+U+V difference is at least ``BLOCK_TAU``:
    a cut changes nearly all of them, a local change a few. (Each plane of all rows is one
    tall image that OpenCV box-averages into blocks, which never straddle two frames.)"""
    import cv2

    n, (w, h), (gw, gh) = d.shape[0], size, grid
    ny, nc = w * h, (w // 2) * (h // 2)

    def means(lo: int, pw: int, ph: int) -> np.ndarray:
        plane = np.ascontiguousarray(d[:, lo : lo + pw * ph]).reshape(n * ph, pw)
        return cv2.resize(plane, (gw, n * gh), interpolation=cv2.INTER_AREA)

    chroma = cv2.add(means(ny, w // 2, h // 2), means(ny + nc, w // 2, h // 2), dtype=cv2.CV_16U)
    total = cv2.add(means(0, w, h), chroma, dtype=cv2.CV_16U).reshape(n, gh * gw)
    return (total >= BLOCK_TAU).mean(axis=1).astype(np.float32)


def _yuv(desc: np.ndarray) -> np.ndarray:
    """One full descriptor as a luma-sized 3-channel image (chroma repeated 2x2)."""
    import cv2

    w, h = THUMB
    y = desc[:_Y_PIX].reshape(h, w)
    u = desc[_Y_PIX : _Y_PIX + _C_PIX].reshape(h // 2, w // 2)
    v = desc[_Y_PIX + _C_PIX :].reshape(h // 2, w // 2)
    uv = cv2.resize(cv2.merge([u, v]), THUMB, interpolation=cv2.INTER_NEAREST)
    return cv2.merge([y, *cv2.split(uv)])


def _tolerant_diff(cur: np.ndarray, ref: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """How far each pixel of ``cur`` lies outside the range of ``ref`` around it (0 when a
    small shift or blur of ``ref`` explains it)."""
    import cv2

    over = cv2.subtract(cur, cv2.dilate(ref, kernel))
    return cv2.add(over, cv2.subtract(cv2.erode(ref, kernel), cur))


def _pixel_diff(cur: np.ndarray, ref: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Motion-tolerant Y+U+V difference per pixel of two :func:`_yuv` images, both ways (a
    blurred frame lies within the range of the sharp one, whichever comes first)."""
    import cv2

    d = cv2.min(_tolerant_diff(cur, ref, kernel), _tolerant_diff(ref, cur, kernel))
    return d.sum(axis=2, dtype=np.uint16)


class _Prepared:
    """What :func:`motion_spread` computes of one frame on its own (its :func:`_yuv` image,
    that image's 3x3 dilation and erosion, its luma's spectrum without the mean), kept for
    the next frame's comparison: in a pan, gated frames come in runs."""

    __slots__ = ("yuv", "dil", "ero", "spectrum")

    def __init__(self, desc: np.ndarray) -> None:
        import cv2

        self.yuv = _yuv(desc)
        self.dil = cv2.dilate(self.yuv, _K3)
        self.ero = cv2.erode(self.yuv, _K3)
        self.spectrum = cv2.dft(self.yuv[..., 0].astype(np.float32), flags=cv2.DFT_COMPLEX_OUTPUT)
        self.spectrum[0, 0] = 0  # the mean: no information on motion


_K3 = np.ones((3, 3), np.uint8)


_NEAR_ZERO = (  # the 3x3 shifts around none, wrapped: rows, columns
    np.array([0, 0, 0, 1, 1, 1, -1, -1, -1]),
    np.array([0, 1, -1, 0, 1, -1, 0, 1, -1]),
)


def _translation(fa: np.ndarray, fb: np.ndarray) -> tuple[float, float, float]:
    """The strongest translation ``(dx, dy, strength)`` of picture b against picture a
    (given as their spectra without the mean, :class:`_Prepared`) other than none: the
    phase-correlation peak outside one pixel of zero, refined to subpixels by a parabola (so
    a panning background is found even behind a still subject); ``strength`` is the peak's
    height (about 1 for a pure shift, under ~0.1 for unrelated pictures)."""
    import cv2

    cross = cv2.mulSpectrums(fb, fa, 0, conjB=True)
    cross /= cv2.magnitude(cross[..., 0], cross[..., 1])[..., None] + 1e-6
    r = cv2.idft(cross, flags=cv2.DFT_REAL_OUTPUT | cv2.DFT_SCALE)
    h, w = r.shape
    masked = r.copy()
    masked[_NEAR_ZERO] = -np.inf
    py, px = np.unravel_index(int(np.argmax(masked)), r.shape)

    def vertex(m1: float, m0: float, p1: float) -> float:
        den = m1 - 2 * m0 + p1
        return 0.0 if den >= 0 else float(np.clip(0.5 * (m1 - p1) / den, -0.5, 0.5))

    fx = vertex(r[py, (px - 1) % w], r[py, px], r[py, (px + 1) % w])
    fy = vertex(r[(py - 1) % h, px], r[py, px], r[(py + 1) % h, px])
    return (px + w // 2) % w - w // 2 + fx, (py + h // 2) % h - h // 2 + fy, float(r[py, px])


def motion_spread(prev: np.ndarray, cur: np.ndarray) -> float:
    """Fraction (0-1) of the picture that changed from ``prev`` to ``cur`` (full
    descriptors), after the best of no motion and the strongest global translation, each
    with a tolerance of a pixel or more (more along fast motion: blur). Near-black pixels in
    both (letterbox) and pixels the shift uncovers do not count; with too few left, 1."""
    return _motion_spread(_Prepared(prev), _Prepared(cur))


def _motion_spread(pa: _Prepared, pb: _Prepared) -> float:
    """:func:`motion_spread` of two prepared frames."""
    import cv2

    a, b = pa.yuv, pb.yuv
    # _pixel_diff(b, a, 3x3) from the frames' own dilations and erosions
    ab = cv2.add(cv2.subtract(b, pa.dil), cv2.subtract(pa.ero, b))
    ba = cv2.add(cv2.subtract(a, pb.dil), cv2.subtract(pb.ero, a))
    d = cv2.min(ab, ba).sum(axis=2, dtype=np.uint16)
    w, h = THUMB
    counted = (a[..., 0] > _DARK) | (b[..., 0] > _DARK)
    if np.count_nonzero(counted) < 0.1 * counted.size:
        return 1.0
    still = np.count_nonzero(d[counted] >= PIXEL_TAU) / np.count_nonzero(counted)
    if still < GATE_SPREAD / 2:  # a local change even without motion compensation
        return still
    dx, dy, strength = _translation(pa.spectrum, pb.spectrum)
    if strength >= MOTION_PEAK and abs(dx) <= w / 4 and abs(dy) <= h / 4:
        shift = np.float32([[1, 0, dx], [0, 1, dy]])
        moved = cv2.warpAffine(
            a, shift, THUMB, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
        ax, ay = 1 + int(abs(dx)) // 4, 1 + int(abs(dy)) // 4  # blur: half the motion
        kernel = np.ones((2 * ay + 1, 2 * ax + 1), np.uint8)
        xs, ys = np.arange(w) - dx, np.arange(h) - dy
        inside = ((ys >= 0) & (ys <= h - 1))[:, None] & ((xs >= 0) & (xs <= w - 1))[None, :]
        d = np.where(inside, np.minimum(d, _pixel_diff(b, moved, kernel)), d)
        counted &= inside | (d < PIXEL_TAU)  # uncovered: counts only when nothing changed
    if np.count_nonzero(counted) < 0.1 * counted.size:
        return 1.0
    return np.count_nonzero(d[counted] >= PIXEL_TAU) / np.count_nonzero(counted)


def _cdfs(full: np.ndarray) -> np.ndarray:
    """Per frame, the cumulative Y/U/V histograms (fractions), each divided by its bin count
    so that ``sum |cdf_a - cdf_b| / 3`` is the mean 1-D earth mover's distance in [0, 1]:
    float32[N, 64]. Unlike bin-wise distances it changes smoothly as colours drift."""
    n = full.shape[0]
    counts = np.empty((n, 64), np.float32)
    for lo in range(0, n, 1024):  # (frame, bin) numbered in 16 bits: 1024 frames at a time
        part = full[lo : lo + 1024]
        m = part.shape[0]
        bins = np.empty(part.shape, np.uint16)
        np.right_shift(part[:, :_Y_PIX], 3, out=bins[:, :_Y_PIX])
        np.right_shift(part[:, _Y_PIX:], 4, out=bins[:, _Y_PIX:])
        bins[:, _Y_PIX : _Y_PIX + _C_PIX] += 32
        bins[:, _Y_PIX + _C_PIX :] += 48
        bins += (np.arange(m, dtype=np.uint16) * 64)[:, None]
        counts[lo : lo + m] = np.bincount(bins.ravel(), minlength=m * 64).reshape(m, 64)
    out = np.empty_like(counts)
    for lo, hi, pix in ((0, 32, _Y_PIX), (32, 48, _C_PIX), (48, 64, _C_PIX)):
        out[:, lo:hi] = np.cumsum(counts[:, lo:hi], axis=1) / (pix * (hi - lo))
    return out


def _frame_stats(full: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What each frame's descriptor gives alone: its :func:`_cdfs`, its mean luma and the
    spread (standard deviation) of its luma; the spread is only needed (and computed) for
    frames dark enough to be part of a fade, NaN elsewhere. The mean is the float32 of
    ``sum / pixels`` computed in float64, exactly as NumPy's float32 mean rounds it."""
    mean_y = (full[:, :_Y_PIX].sum(axis=1, dtype=np.uint32) / _Y_PIX).astype(np.float32)
    std_y = np.full(full.shape[0], np.nan, np.float32)
    dark = mean_y <= _FADE_MEAN
    if dark.any():
        std_y[dark] = full[dark, :_Y_PIX].astype(np.float32).std(axis=1)
    return _cdfs(full), mean_y, std_y


def _tv(cdf: np.ndarray, k: int) -> np.ndarray:
    """Colour distribution distance between frames j and j-k, in [0, 1] (length len - k)."""
    return np.abs(cdf[k:] - cdf[:-k]).sum(axis=1) / 3.0


def _lagged(values: np.ndarray, k: int, total: int) -> np.ndarray:
    """Left-pad a length ``total - k`` lag series with NaN to ``total``."""
    out = np.full(total, np.nan, np.float32)
    out[k:] = values
    return out


def chunk_features(t: Thumbs, half_window: int) -> Features:
    """Features of every frame of ``t`` (a tail of previous frames may lead it)."""
    import cv2

    n, big, lw = len(t), 2 * half_window, half_window
    hist = t.cdf
    parts_full, parts_half = (_Y_PIX, _C_PIX), (_Y_PIX // 4, _C_PIX // 4)
    d1, h1, spread = (np.full(n, np.nan, np.float32) for _ in range(3))
    if n > 1:
        step = cv2.absdiff(t.full[1:], t.full[:-1])
        d1 = _lagged(_absdiff_mean(t.full, 1, parts_full, step), 1, n)
        h1 = _lagged(_tv(hist, 1), 1, n)
        spread = _lagged(_block_spread(step, THUMB), 1, n)
        # where the change is a jump over a wide area, measure it exactly (motion-compensated)
        c = np.nan_to_num(d1 + 50.0 * h1, nan=0.0)
        base = _rolling_median(c, _radius(half_window))
        gate = (c >= GATE_CONTENT) & (c >= GATE_RATIO * (base + 1.0)) & (spread >= GATE_SPREAD)
        prepared: dict[int, _Prepared] = {}
        for j in np.flatnonzero(gate):
            pa = prepared.pop(j - 1, None) or _Prepared(t.full[j - 1])
            prepared = {j: _Prepared(t.full[j])}  # the next gated frame may compare to it
            spread[j] = _motion_spread(pa, prepared[j])
    lag = np.full((FLASH_SPAN + 1, n), np.nan, np.float32)
    for k in range(1, FLASH_SPAN + 2):
        if n > k:
            lag[k - 1] = _lagged(_absdiff_mean(t.half, k, parts_half), k, n)
    h_long = np.full(n, np.nan, np.float32)
    d_long = np.full(n, np.nan, np.float32)
    resid = np.full(n, np.nan, np.float32)
    spread_long = np.full(n, np.nan, np.float32)
    if n > big:
        h_long = _lagged(_tv(hist, big), big, n)
        far = cv2.absdiff(t.half[big:], t.half[:-big])
        d_long = _lagged(_absdiff_mean(t.half, big, parts_half, far), big, n)
        half_size = (THUMB[0] // 2, THUMB[1] // 2)
        spread_long = _lagged(_block_spread(far, half_size, (GRID[0], GRID[1] // 2)), big, n)
        hf = t.half.astype(np.int16)
        mid = 2 * hf[lw : n - lw] - hf[: n - big] - hf[big:]  # 2 * (middle - mean of ends)
        ay = np.abs(mid[:, : _Y_PIX // 4]).mean(axis=1) / 2
        ac = np.abs(mid[:, _Y_PIX // 4 :]).mean(axis=1)  # two chroma planes: mean * 2 / 2
        resid = _lagged((ay + ac).astype(np.float32), big, n)
    return Features(
        t.numbers,
        d1,
        h1,
        lag,
        h_long,
        d_long,
        resid,
        t.mean_y,
        t.std_y,
        spread,
        spread_long,
        half_window,
    )


def _cat(parts: list[Features], half_window: int) -> Features:
    if not parts:
        z = np.zeros(0, np.float32)
        return Features(
            np.zeros(0, np.int64),
            *(z, z, np.zeros((FLASH_SPAN + 1, 0)), z, z, z, z, z, z, z),
            half_window,
        )

    def cat(name: str, axis: int = 0) -> np.ndarray:
        return np.concatenate([getattr(p, name) for p in parts], axis=axis)

    return Features(
        cat("numbers"),
        cat("d1"),
        cat("h1"),
        cat("lag", 1),
        cat("h_long"),
        cat("d_long"),
        cat("resid"),
        cat("mean_y"),
        cat("std_y"),
        cat("spread"),
        cat("spread_long"),
        half_window,
    )


def features(
    path: str, index: FrameIndex, fps: float = 25.0, workers: int | None = None
) -> Features:
    """Per-frame features of a whole file (chunks decoded concurrently, see module doc).

    Each chunk is joined to the frames before it (lagged features look back) and its last
    frames wait for the next chunk (the motion gate looks ahead), so the result does not
    depend on the chunking."""
    half_window = max(2, round(0.2 * fps))
    ahead = _radius(half_window)
    keep = max(2 * half_window, FLASH_SPAN + 1, ahead + 1)
    parts: list[Features] = []
    tail: Thumbs | None = None
    done = 0  # leading frames of ``tail`` already in ``parts``
    last: tuple[Features, int] | None = None
    workers = workers or usable_cores()
    serial = _opencv_serial() if len(chunk_bounds(index, workers)) > 1 else contextlib.nullcontext()
    with serial:
        for chunk in iter_thumbs(path, index, workers):
            if len(chunk) == 0:
                continue
            joined = chunk if tail is None else Thumbs.concat(tail, chunk)
            f = chunk_features(joined, half_window)
            end = max(done, len(joined) - ahead)
            parts.append(_slice(f, done, end))
            start = max(0, end - keep)
            tail, done, last = joined.tail(len(joined) - start), end - start, (f, end)
    if last is not None:
        parts.append(_slice(last[0], last[1], len(last[0].numbers)))
    return _cat(parts, half_window)


def _slice(f: Features, start: int, end: int) -> Features:
    return Features(
        f.numbers[start:end],
        f.d1[start:end],
        f.h1[start:end],
        f.lag[:, start:end],
        f.h_long[start:end],
        f.d_long[start:end],
        f.resid[start:end],
        f.mean_y[start:end],
        f.std_y[start:end],
        f.spread[start:end],
        f.spread_long[start:end],
        f.half_window,
    )


# --------------------------------------------------------------------------- decisions


def _radius(half_window: int) -> int:
    """Frames each side of a frame whose median change is its hard-cut baseline."""
    return max(4, 2 * half_window)


def _rolling_median(x: np.ndarray, radius: int) -> np.ndarray:
    """Median of ``x[j-radius .. j+radius]`` without ``x[j]`` (NaNs ignored, edge-padded)."""
    n = x.size
    if n == 0:
        return x
    padded = np.pad(np.nan_to_num(x, nan=0.0), radius, mode="edge")
    win = np.lib.stride_tricks.sliding_window_view(padded, 2 * radius + 1).copy()
    win[:, radius] = np.nan
    return np.nanmedian(win, axis=1)


def _bridged(f: Features, ratio: float = 0.4) -> np.ndarray:
    """Per frame j: some frame in ``(j-1, j+FLASH_SPAN]`` looks like one in
    ``[j-1-FLASH_SPAN, j-1]`` at a lag >= 2 (difference < ``ratio`` x the jump at j)."""
    n = f.numbers.size
    best = np.full(n, np.inf, np.float32)
    for k in range(2, FLASH_SPAN + 2):
        dk = np.nan_to_num(f.lag[k - 1], nan=np.inf)  # dk[b] = D(b - k, b)
        padded = np.concatenate([dk, np.full(k, np.inf, np.float32)])
        # pairs (a, b = a + k) with a <= j - 1 < j <= b, i.e. b in [j, j + k - 1]
        win = np.lib.stride_tricks.sliding_window_view(padded, k)[:n]
        best = np.minimum(best, win.min(axis=1))
    jump = np.nan_to_num(f.lag[0], nan=0.0)
    return best < ratio * jump


def hard_cuts(
    f: Features, threshold: float, min_content: float, spread: float = SPREAD
) -> list[tuple[int, float]]:
    """``(position j, score)`` of hard-cut candidates (flashes and local changes removed)."""
    c = np.nan_to_num(f.d1 + 50.0 * f.h1, nan=0.0)
    base = _rolling_median(c, _radius(f.half_window))
    ratio = c / (base + 1.0)
    cand = (c >= min_content) & (ratio >= threshold)
    cand &= np.nan_to_num(f.spread, nan=1.0) >= spread
    cand[0] = False
    cand &= ~_bridged(f)
    return [(int(j), float(ratio[j])) for j in np.flatnonzero(cand)]


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``[start, end)`` of each run of True in ``mask``."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return list(zip(edges[0::2].tolist(), edges[1::2].tolist()))


def dissolves(
    f: Features, gradual: float, min_content: float, spread: float = SPREAD
) -> list[tuple[int, float]]:
    """``(position, score)`` of dissolve centres; see the module docstring."""
    if gradual <= 0 or f.numbers.size <= 2 * f.half_window:
        return []
    lw, big = f.half_window, 2 * f.half_window
    d1 = np.nan_to_num(f.d1, nan=np.inf)
    step_max = np.lib.stride_tricks.sliding_window_view(
        np.concatenate([np.full(big - 1, np.inf, np.float32), d1]), big
    ).max(axis=1)  # largest single step in (j - 2L, j]
    dl = np.nan_to_num(f.d_long, nan=0.0)
    ok = (
        (np.nan_to_num(f.h_long, nan=0.0) >= gradual)
        & (dl >= 2 * min_content)
        & (step_max <= 0.5 * dl)
        & (np.nan_to_num(f.resid, nan=np.inf) <= 0.25 * dl)
        & (np.nan_to_num(f.spread_long, nan=1.0) >= spread)
    )
    out = []
    for a, b in _merge(_runs(ok), gap=lw):
        centre = (a + b - 1) // 2 - lw  # window end j -> window middle j - L
        if centre > 0:
            out.append((centre, float(dl[a:b].max())))
    return out


def _merge(runs: list[tuple[int, int]], gap: int) -> list[tuple[int, int]]:
    """Join runs separated by at most ``gap`` positions."""
    out: list[tuple[int, int]] = []
    for a, b in runs:
        if out and a - out[-1][1] <= gap:
            out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


def fades(f: Features) -> list[tuple[int, int, int]]:
    """``(centre, start, end)`` of dips to black strictly inside the asset."""
    n = f.numbers.size
    dark = (f.mean_y <= _FADE_MEAN) & (f.std_y <= _FADE_STD)
    out = []
    for a, b in _runs(dark):
        if a == 0 or b == n:
            continue
        s, e = a, b
        while s > 0 and f.mean_y[s - 1] > f.mean_y[s] + 0.2:
            s -= 1
        while e < n and f.mean_y[e] > f.mean_y[e - 1] + 0.2:
            e += 1
        if a - s >= 2 or e - b >= 2:  # entered or left by a ramp
            out.append(((a + b) // 2, s, e))
    return out


def detect(
    f: Features,
    threshold: float,
    min_frames: int,
    min_content: float,
    gradual: float,
    spread: float = SPREAD,
) -> list[int]:
    """Cut frame numbers, sorted, at least ``min_frames`` apart and from both ends."""
    n = f.numbers.size
    dips = fades(f)
    inside = np.zeros(n, bool)
    for _, s, e in dips:
        inside[s:e] = True
    hard = hard_cuts(f, threshold, min_content, spread)
    ranked = [(3, score, j) for j, score in hard if not inside[j]]
    ranked += [(2, 0.0, j) for j, _, _ in dips]
    gradual_cuts = dissolves(f, gradual, min_content, spread)
    ranked += [(1, score, j) for j, score in gradual_cuts if not inside[j]]
    ranked.sort(reverse=True)
    accepted: list[int] = []
    for _, _, j in ranked:
        if j < min_frames or j > n - min_frames:
            continue
        if all(abs(j - a) >= min_frames for a in accepted):
            accepted.append(j)
    return sorted(int(f.numbers[j]) for j in accepted)


def spans(cuts: list[int], frame_count: int) -> list[tuple[int, int]]:
    """Spans ``[start, end)`` covering ``[0, frame_count)`` split at ``cuts``."""
    bounds = [0, *[c for c in cuts if 0 < c < frame_count], frame_count]
    return [(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
