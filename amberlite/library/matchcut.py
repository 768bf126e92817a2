"""Built-in shot features for match cutting: descriptors, near-duplicates, and one embedding
per match type.

* ``shot_embedding`` -- a compact descriptor of a shot (804 float32, L2-normalized): a
  square-rooted Lab colour histogram (3x4x4 bins) plus the coarse Lab layout (12x7; lightness
  zero-mean, chroma absolute) of three frames at 1/4, 1/2 and 3/4 of the shot, the two
  parts weighted equally.
* ``dedup`` -- per asset, near-duplicate shots (cosine of ``shot_embedding`` >= ``threshold``)
  are grouped greedily in time order; the earliest of each group is kept (True), later
  copies are dropped (False).
* ``match_color`` -- the shot's palette: a joint Lab histogram (L 4 x a 8 x b 8 bins, smoothed
  over neighbouring bins), square-rooted and L2-normalized, so that the cosine of two
  palettes is their Bhattacharyya coefficient.
* ``match_framing`` -- where the mass of the picture is: a binary foreground mask on a 32x18
  grid, majority vote over 5 sampled frames. Each frame's foreground is boundary-contrast
  saliency (Lab distance to the median colour of the frame border, the "background prior")
  thresholded with Otsu's method, then refined by one round of OpenCV GrabCut seeded with
  that mask (and a fixed random seed: the same frame always gives the same mask).
  Two masks are compared by IoU.
* ``match_motion`` -- camera and subject movement from dense optical flow (OpenCV Farneback on
  160x90 grey frames sampled at 10 fps, 6 pairs per shot): an 8-direction histogram of the
  camera pan (median flow) and an 8-direction, magnitude-weighted histogram of the subject
  motion (flow minus the pan), in frame widths per second, L2-normalized; a still shot is all
  zeros (nothing to match on).

:func:`representative_frame` picks the out (last) and in (first) frames a report shows for a
shot: the frame nearest the cut that is not black, not mid-fade and not mid-dissolve.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

import numpy as np
import pyarrow as pa

from amberlite.define.decorators import feature
from amberlite.media.decode import Decode, read_batch

LAYOUT = (12, 7)  # shot_embedding layout grid, width x height
EMBED_DIM = 3 * 4 * 4 + 3 * 3 * LAYOUT[0] * LAYOUT[1]
COLOR_BINS = (4, 8, 8)
COLOR_DIM = int(np.prod(COLOR_BINS))
GRID = (32, 18)  # framing mask grid, width x height
GRABCUT_SEED = 12345
FRAMING_DIM = GRID[0] * GRID[1]
MOTION_DIM = 16
_EPS = 1e-9


# --------------------------------------------------------------------------- sampling helpers


def sample_frames(shot, count: int) -> np.ndarray:
    """Up to ``count`` frames of the shot, evenly spaced (decoded with the feature's settings).

    A shot too short for the feature's fps sampling falls back to its middle frame.
    """
    _, frames = shot.frames_with_numbers()
    if len(frames) == 0:
        mid = (shot.start_frame + shot.end_frame) // 2
        decode = Decode(size=shot.asset.decode.size, format=shot.asset.decode.format)
        _, frames = read_batch(shot.asset.path, mid, mid + 1, decode, shot.asset.index)
    if len(frames) <= count:
        return frames
    pick = np.linspace(0, len(frames) - 1, count).round().astype(int)
    return frames[pick]


def _unit(v: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(v))
    return (v / norm).astype(np.float32) if norm > _EPS else np.zeros_like(v, dtype=np.float32)


def lab_histogram(frames: np.ndarray, bins: tuple[int, int, int]) -> np.ndarray:
    """Joint Lab histogram of RGB frames (N, H, W, 3), as counts over ``bins`` (L, a, b)."""
    import cv2

    lab = cv2.cvtColor(frames.reshape(-1, 1, 3), cv2.COLOR_RGB2LAB).reshape(-1, 3)
    hist = cv2.calcHist([lab.reshape(-1, 1, 3)], [0, 1, 2], None, list(bins), [0, 256] * 3)
    return hist.astype(np.float64)


def _smooth(hist: np.ndarray) -> np.ndarray:
    """Spread each bin over its neighbours ([1, 2, 1] / 4 along every axis)."""
    kernel = np.array([0.25, 0.5, 0.25])
    for axis in range(hist.ndim):
        hist = np.apply_along_axis(lambda r: np.convolve(r, kernel, mode="same"), axis, hist)
    return hist


# --------------------------------------------------------------------------- shot_embedding


@feature(
    entity="shot",
    version=1,
    output=pa.list_(pa.float32(), EMBED_DIM),
    decode=Decode(size=(64, 36), fps=Fraction(8)),
)
def shot_embedding(shot) -> np.ndarray:
    """Compact shot descriptor: Lab colour histogram + coarse luma layout, L2-normalized."""
    import cv2

    frames = sample_frames(shot, 64)
    colour = _unit(np.sqrt(lab_histogram(frames, (3, 4, 4)).ravel()))
    pick = np.linspace(0, len(frames) - 1, 5).round().astype(int)[1:4]
    layout = []
    for frame in frames[pick]:
        small = cv2.resize(frame, LAYOUT, interpolation=cv2.INTER_AREA)
        lab = cv2.cvtColor(small, cv2.COLOR_RGB2LAB).astype(np.float32)
        lab[..., 0] -= lab[..., 0].mean()  # lightness pattern; chroma kept absolute
        lab[..., 1:] -= 128.0
        layout.append(lab.ravel())
    return _unit(np.concatenate([colour, _unit(np.concatenate(layout))]))


# --------------------------------------------------------------------------- dedup


def keep_first(embeddings: np.ndarray, threshold: float) -> np.ndarray:
    """Greedy near-duplicate grouping in row order: a row is kept unless its cosine with an
    earlier kept row is >= ``threshold``. Rows must be L2-normalized (zeros never match)."""
    n = len(embeddings)
    keep = np.ones(n, dtype=bool)
    if n < 2:
        return keep
    sims = embeddings @ embeddings.T
    for i in range(1, n):
        if np.any(sims[i, :i][keep[:i]] >= threshold):
            keep[i] = False
    return keep


@feature(
    entity="shot",
    version=1,
    output=pa.bool_(),
    inputs=["shot_embedding"],
    params={"threshold": 0.95},
    batch="asset",
)
def dedup(shots: Sequence, shot_embedding, threshold: float = 0.95) -> list[bool]:
    """True for the earliest shot of each group of near-duplicates in an asset."""
    order = sorted(range(len(shots)), key=lambda i: shots[i].start_frame)
    rows = [
        np.asarray(shot_embedding[i], dtype=np.float32)
        if shot_embedding[i] is not None
        else np.zeros(EMBED_DIM, np.float32)
        for i in order
    ]
    kept = keep_first(np.stack(rows), float(threshold))
    out = [True] * len(shots)
    for pos, i in enumerate(order):
        out[i] = bool(kept[pos])
    return out


# --------------------------------------------------------------------------- colour


@feature(
    entity="shot",
    version=1,
    output=pa.list_(pa.float32(), COLOR_DIM),
    decode=Decode(size=(64, 36), fps=Fraction(4)),
)
def match_color(shot) -> np.ndarray:
    """Palette of the shot: smoothed joint Lab histogram, square-rooted, L2-normalized."""
    frames = sample_frames(shot, 16)
    return _unit(np.sqrt(_smooth(lab_histogram(frames, COLOR_BINS)).ravel()))


# --------------------------------------------------------------------------- framing


def saliency(frame: np.ndarray) -> np.ndarray:
    """Boundary-contrast saliency of an RGB frame: Lab distance of each pixel to the median
    colour of the frame's 2-pixel border (the background prior), float32 HxW."""
    import cv2

    lab = cv2.cvtColor(frame, cv2.COLOR_RGB2LAB).astype(np.float32)
    border = np.concatenate(
        [lab[:2].reshape(-1, 3), lab[-2:].reshape(-1, 3), lab[:, :2].reshape(-1, 3)]
        + [lab[:, -2:].reshape(-1, 3)]
    )
    return np.linalg.norm(lab - np.median(border, axis=0), axis=2)


def foreground_mask(
    frame: np.ndarray, min_contrast: float = 12.0, iterations: int = 1
) -> np.ndarray:
    """Foreground of one RGB frame as a bool HxW mask: saliency, Otsu, then GrabCut
    (``iterations`` rounds, seeded with the Otsu mask).

    Pixels less than ``min_contrast`` Lab units from the background never count (a flat or
    textured frame with no subject gives an empty mask).
    """
    import cv2

    sal = saliency(frame)
    if sal.max() < min_contrast:
        return np.zeros(sal.shape, dtype=bool)
    scaled = np.clip(sal * (255.0 / sal.max()), 0, 255).astype(np.uint8)
    otsu, _ = cv2.threshold(scaled, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    seed = (scaled > otsu) & (sal >= min_contrast)
    if seed.sum() < 4 or (~seed).sum() < 4:
        return seed
    gc = np.where(seed, cv2.GC_PR_FGD, cv2.GC_PR_BGD).astype(np.uint8)
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    # GrabCut seeds its colour models with k-means++ from OpenCV's per-thread random state:
    # without a fixed seed the mask depended on what the thread had computed before
    cv2.setRNGSeed(GRABCUT_SEED)
    try:
        cv2.grabCut(frame[:, :, ::-1].copy(), gc, None, bgd, fgd, iterations, cv2.GC_INIT_WITH_MASK)
    except cv2.error:
        return seed
    return (gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)


def grid_mask(mask: np.ndarray, grid: tuple[int, int] = GRID) -> np.ndarray:
    """A bool mask area-resized to ``grid`` (width, height), cells at least half covered."""
    import cv2

    cover = cv2.resize(mask.astype(np.float32), grid, interpolation=cv2.INTER_AREA)
    return cover >= 0.5


@feature(
    entity="shot",
    version=3,
    output=pa.list_(pa.float32(), FRAMING_DIM),
    decode=Decode(size=(96, 54), fps=Fraction(2)),
)
def match_framing(shot) -> np.ndarray:
    """Foreground silhouette on a 32x18 grid (1 = subject), majority vote over 5 frames
    (v2: 5 frames and one GrabCut round, 3x less work than v1's 7 frames and two rounds;
    v3: GrabCut's random state seeded for every frame, so a value no longer depends on which
    thread computed it after what)."""
    frames = sample_frames(shot, 5)
    votes = np.mean([grid_mask(foreground_mask(f)) for f in frames], axis=0)
    return (votes >= 0.5).astype(np.float32).ravel()


# --------------------------------------------------------------------------- motion


def direction_histogram(dx: np.ndarray, dy: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """8-bin histogram of flow directions, each vector spread over its two nearest bins."""
    pos = (np.arctan2(dy, dx) % (2 * np.pi)) / (2 * np.pi / 8)
    lo = np.floor(pos).astype(int) % 8
    frac = pos - np.floor(pos)
    hist = np.bincount(lo.ravel(), (weight * (1 - frac)).ravel(), minlength=8)
    hist += np.bincount(((lo + 1) % 8).ravel(), (weight * frac).ravel(), minlength=8)
    return hist


def flow_descriptor(frames: np.ndarray, times: np.ndarray, max_pairs: int = 6) -> np.ndarray:
    """Camera + subject motion of grey frames (N, H, W) shown at ``times`` seconds.

    Per consecutive pair (up to ``max_pairs``, evenly spread): Farneback flow in frame widths
    per second, area-averaged to half size; the camera pan is the median flow, the subject
    motion the remaining flow. Each is an 8-bin direction histogram (camera weighted by pan
    speed, subject by magnitude and area); the median over pairs is L2-normalized. Zeros
    when the shot does not move (speeds below 1% of a width per second).
    """
    import cv2

    if len(frames) < 2:
        return np.zeros(MOTION_DIM, np.float32)
    starts = np.unique(np.linspace(0, len(frames) - 2, min(max_pairs, len(frames) - 1)).round())
    height, width = frames.shape[1:3]
    half = (max(1, width // 2), max(1, height // 2))
    per_pair = []
    for i in starts.astype(int):
        dt = max(float(times[i + 1] - times[i]), 1e-3)
        flow = cv2.calcOpticalFlowFarneback(
            frames[i], frames[i + 1], None, 0.5, 3, 15, 3, 5, 1.2, 0
        )
        flow = cv2.resize(flow, half, interpolation=cv2.INTER_AREA) / (width * dt)
        pan = np.median(flow.reshape(-1, 2), axis=0)
        rest = flow - pan
        mag = np.hypot(rest[..., 0], rest[..., 1])
        moving = mag > 0.02
        camera = direction_histogram(pan[:1], pan[1:], np.array([np.hypot(*pan)]))
        subject = direction_histogram(rest[..., 0], rest[..., 1], mag * moving) / mag.size
        per_pair.append(np.concatenate([2.0 * camera, 4.0 * subject]))
    vec = np.median(np.stack(per_pair), axis=0)
    if np.abs(vec).max() < 0.01:
        return np.zeros(MOTION_DIM, np.float32)
    return _unit(vec)


@feature(
    entity="shot",
    version=2,
    output=pa.list_(pa.float32(), MOTION_DIM),
    decode=Decode(size=(160, 90), fps=Fraction(10), format="gray"),
)
def match_motion(shot) -> np.ndarray:
    """Camera pan and subject movement (Farneback optical flow), L2-normalized; 0 if still
    (v2: 6 frame pairs, histograms over the flow at half size; 2.5x less work than v1)."""
    numbers, frames = shot.frames_with_numbers()
    if len(frames) < 2:
        decode = Decode(size=(160, 90), format="gray")
        numbers, frames = read_batch(
            shot.asset.path, shot.start_frame, shot.end_frame, decode, shot.asset.index
        )
    times = np.array([shot.asset.time_of(int(n)) for n in numbers])
    return flow_descriptor(frames, times)


# --------------------------------------------------------------------------- out / in frames

REPRESENTATIVE_WINDOW = 600  # frames looked at from the cut inwards (24 s at 25 fps)
_THUMB = (32, 18)  # luma thumbnail the rule looks at
_BLACK = 16.0  # studio-range black level of the luma plane


def representative_frame(
    path: str, index, start_frame: int, end_frame: int, side: str = "out"
) -> int:
    """The frame a cut shows for the shot ``[start_frame, end_frame)``: with ``side="out"``
    the last representative frame, with ``side="in"`` the first.

    Contract: looks at up to :data:`REPRESENTATIVE_WINDOW` frames from that end, as 32x18
    luma; the half of them farthest from the cut is the shot's core. A frame is
    representative when its brightness above black is at least 80% of the core's median,
    its contrast (standard deviation) at least 70% of the core's median, it is not black,
    and its distance to the core's median picture is at most twice the core frames' median
    distance (+10 levels). So a fade to black, a dissolve into the next shot, or a flash at
    the end is skipped. When no frame qualifies, the frame at the cut is returned.
    """
    from amberlite.media.decode import read_luma

    if side not in ("out", "in"):
        raise ValueError(f"side must be 'out' or 'in', got {side!r}")
    n = end_frame - start_frame
    if n <= 2:
        return end_frame - 1 if side == "out" else start_frame
    take = min(n, REPRESENTATIVE_WINDOW)
    lo = end_frame - take if side == "out" else start_frame
    numbers, y = read_luma(path, _THUMB, index, lo, lo + take)
    if len(numbers) == 0:
        return end_frame - 1 if side == "out" else start_frame
    if side == "out":  # from the cut inwards
        numbers, y = numbers[::-1], y[::-1]
    y = y.astype(np.float32)
    core = y[len(y) // 2 :]
    bright = y.mean(axis=(1, 2)) - _BLACK
    contrast = y.std(axis=(1, 2))
    picture = np.median(core, axis=0)
    dist = np.abs(y - picture).mean(axis=(1, 2))
    core_bright = float(np.median(bright[len(y) // 2 :]))
    core_contrast = float(np.median(contrast[len(y) // 2 :]))
    core_dist = float(np.median(dist[len(y) // 2 :]))
    good = (
        (bright >= 0.8 * core_bright)
        & (contrast >= 0.7 * core_contrast)
        & (bright > 4.0)
        & (dist <= 2.0 * core_dist + 10.0)
    )
    hits = np.flatnonzero(good)
    return int(numbers[hits[0]]) if len(hits) else int(numbers[0])
