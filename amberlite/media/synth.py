"""Generated test and demo media: scenes of textured backgrounds with moving shapes.

Nothing is ever downloaded: every clip amberlite tests or demos on is rendered here with numpy
and encoded with PyAV. :func:`render` returns a :class:`SynthTruth` with the exact cut,
transition and flash positions, so detectors can be scored against it.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av
import numpy as np

from amberlite.errors import MediaError

SHAPES = ("disc", "rect", "none")
TRANSITIONS = ("cut", "dissolve", "fade")
OVERLAYS = ("disc", "rect", "caption", "hand")
STAMP_BITS = 16  # frame-number stamp: 16 cells across the top strip, most significant first
_STAMP_STRIP = 1 / 12  # stamp strip height as a fraction of frame height
_FLASH_WHITE = 0.85  # a flash frame is this much white over the picture


@dataclass(frozen=True)
class Overlay:
    """A local change inside one scene (never a cut): an object, a caption or a hand.

    Contract: visible on the scene's frame offsets ``[start, end)``, drawn over the background
    and the scene's shape. ``kind``: a ``"disc"`` of radius ``size`` (fraction of height) or a
    ``"rect"`` of 3 x 2 ``size``; a ``"caption"``: a lower-third bar ``size`` high across 70%
    of the width with light text-like marks; a ``"hand"``: an upright ellipse ``size`` high
    (and 0.45 x as wide) with an arm down to the bottom edge. It stays at ``at`` (fractions of
    width/height of its centre); with ``to`` it moves linearly from ``at`` on its first frame
    to ``to`` on its last (a sweep), or, with ``to`` and ``jump`` too, sits at ``at`` before
    offset ``jump`` and at ``to`` from it (a teleport). ``fade`` frames blend it in at
    ``start`` and out before ``end`` (0: it pops in and out).
    """

    kind: str
    start: int
    end: int
    at: tuple[float, float] = (0.5, 0.5)
    to: tuple[float, float] | None = None
    jump: int | None = None
    size: float = 0.3
    color: tuple[int, int, int] = (250, 250, 250)
    fade: int = 0

    def __post_init__(self) -> None:
        if self.kind not in OVERLAYS:
            raise ValueError(f"Overlay.kind must be one of {OVERLAYS}, got {self.kind!r}")
        if not 0 <= self.start < self.end:
            raise ValueError("Overlay needs 0 <= start < end")
        if self.jump is not None and (self.to is None or not self.start < self.jump < self.end):
            raise ValueError("Overlay.jump needs ``to`` and start < jump < end")
        if self.fade < 0 or 2 * self.fade > self.end - self.start:
            raise ValueError("Overlay.fade must be >= 0 and fit twice in [start, end)")

    def position(self, j: int) -> tuple[float, float]:
        """Centre (fractions of width/height) on scene frame offset ``j``."""
        if self.to is None:
            return self.at
        if self.jump is not None:
            return self.at if j < self.jump else self.to
        t = (j - self.start) / max(1, self.end - 1 - self.start)
        return tuple(a + (b - a) * t for a, b in zip(self.at, self.to))  # type: ignore[return-value]

    def alpha(self, j: int) -> float:
        """Opacity on scene frame offset ``j`` (0 when not visible)."""
        if not self.start <= j < self.end:
            return 0.0
        if not self.fade:
            return 1.0
        edge = min(j - self.start + 1, self.end - j)
        return min(1.0, edge / (self.fade + 1))

    def events(self, offset: int, frames: int) -> list[tuple[int, int, str]]:
        """``(start, end, what)`` clip-frame spans where this overlay changes the picture
        locally (appears, jumps, disappears or sweeps), for :class:`SynthTruth`."""
        if self.to is not None and self.jump is None:
            return [(offset + self.start, offset + self.end, f"{self.kind} sweeps")]
        out = []
        if self.start > 0:
            out.append((self.start, self.start + self.fade + 1, f"{self.kind} appears"))
        if self.jump is not None:
            out.append((self.jump, self.jump + 1, f"{self.kind} jumps"))
        if self.end < frames:
            out.append((self.end - self.fade, self.end + 1, f"{self.kind} disappears"))
        return [(offset + a, offset + b, what) for a, b, what in out]


@dataclass(frozen=True)
class Scene:
    """One shot of generated media.

    Contract: ``frames`` frames of ``background`` colour (plus a seeded low-contrast texture
    when ``texture``), with a ``shape`` of ``shape_color`` centred at ``position`` (fractions of
    width/height) and of ``radius`` (fraction of height; a rect is 3r x 2r). The shape moves
    by ``motion`` (fractions of width/height per second, bouncing off the edges); the
    textured background moves by ``pan`` pixels per frame (camera pan), plus ``dx`` pixels
    per frame during each ``(start, frames, dx)`` of ``whips`` (sudden fast pans; the
    background is motion-blurred over half of each frame's displacement). ``bands``
    > 0 lays that many high-contrast vertical bands of seeded colours under the texture (a
    backdrop whose pans change much of the picture). ``overlays`` are local changes (see
    :class:`Overlay`). The first
    ``transition_frames`` frames blend in from the previous scene (``"dissolve"``, or
    ``"fade"`` through black); ``"cut"`` starts hard. ``flashes`` are offsets of frames
    washed out to near-white (flashes, not cuts).
    """

    frames: int
    background: tuple[int, int, int]
    shape: str = "disc"
    shape_color: tuple[int, int, int] = (255, 255, 255)
    position: tuple[float, float] = (0.5, 0.5)
    radius: float = 0.2
    motion: tuple[float, float] = (0.0, 0.0)
    pan: tuple[float, float] = (0.0, 0.0)
    texture: bool = True
    transition_in: str = "cut"
    transition_frames: int = 0
    flashes: tuple[int, ...] = ()
    seed: int = 0
    bands: int = 0
    whips: tuple[tuple[int, int, float], ...] = ()
    overlays: tuple[Overlay, ...] = ()

    def __post_init__(self) -> None:
        if self.frames < 1:
            raise ValueError(f"Scene.frames must be >= 1, got {self.frames}")
        if self.shape not in SHAPES:
            raise ValueError(f"Scene.shape must be one of {SHAPES}, got {self.shape!r}")
        if self.transition_in not in TRANSITIONS:
            raise ValueError(f"Scene.transition_in must be one of {TRANSITIONS}")
        if self.transition_in != "cut" and not 0 < self.transition_frames <= self.frames:
            raise ValueError("a dissolve/fade needs 0 < transition_frames <= frames")
        if any(not 0 <= f < self.frames for f in self.flashes):
            raise ValueError("Scene.flashes must be offsets within the scene")
        if any(o.end > self.frames for o in self.overlays):
            raise ValueError("Scene.overlays must end within the scene")
        if any(not (0 <= a and n >= 1 and a + n <= self.frames) for a, n, _ in self.whips):
            raise ValueError("Scene.whips must be (start, frames >= 1, dx) within the scene")

    def pan_offset(self, j: int) -> tuple[float, float]:
        """Background displacement (pixels) on frame offset ``j``: the pan plus the whips."""
        x = self.pan[0] * j + sum(dx * min(max(j - a, 0), n) for a, n, dx in self.whips)
        return x, self.pan[1] * j


@dataclass(frozen=True)
class SynthTruth:
    """Ground truth of a rendered clip (frame numbers are 0-based, spans end-exclusive).

    ``cuts``: first frame of every scene after the first that starts with a hard cut.
    ``transitions``: ``(start, end, kind)`` of each dissolve/fade (``start`` = scene start).
    ``scene_spans``: ``(start, end)`` of every scene, partitioning ``[0, frame_count)``.
    ``flashes``: frame numbers of flash frames. ``times``: presentation time in seconds of
    every frame (irregular when ``vfr``). ``matches``: ``(scene_a, scene_b, kind)`` pairs
    designed to match in ``"colour"``, ``"framing"`` or ``"motion"`` (filled by
    :func:`sample_film`). ``local_changes``: ``(start, end, what)`` spans of local changes
    inside a scene (overlays appearing, jumping, disappearing or sweeping; whip pans), where
    no cut is.
    """

    cuts: tuple[int, ...]
    transitions: tuple[tuple[int, int, str], ...]
    scene_spans: tuple[tuple[int, int], ...]
    flashes: tuple[int, ...]
    frame_count: int
    fps: Fraction
    vfr: bool
    times: tuple[float, ...]
    matches: tuple[tuple[int, int, str], ...] = ()
    local_changes: tuple[tuple[int, int, str], ...] = ()


class _SceneRenderer:
    """Draws frames of one scene; frame offsets past the scene's end continue its motion."""

    def __init__(self, scene: Scene, width: int, height: int, fps: Fraction) -> None:
        self.scene = scene
        self.width, self.height = width, height
        self.fps = float(fps)
        tile = _background_tile(scene, width, height)
        self.tile2 = np.tile(tile, (2, 2, 1))  # 2x2 periodic tiling: any pan offset is a view
        self.xs = np.arange(width, dtype=np.float32)
        self.ys = np.arange(height, dtype=np.float32)
        self.color = np.array(scene.shape_color, dtype=np.uint8)

    def frame(self, j: int) -> np.ndarray:
        """Return frame ``j`` of the scene as a new HxWx3 uint8 array."""
        s, w, h = self.scene, self.width, self.height
        px, py = s.pan_offset(j)
        ox = (-round(px)) % w
        oy = (-round(py)) % h
        img = self.tile2[oy : oy + h, ox : ox + w].copy()
        streak = round(abs(px - s.pan_offset(j - 1)[0]) / 2)  # motion blur, half-open shutter
        if streak > 1:
            img = _smear(self.tile2[oy : oy + h], ox, w, streak)
        t = j / self.fps
        cx = _bounce(s.position[0] + s.motion[0] * t) * w
        cy = _bounce(s.position[1] + s.motion[1] * t) * h
        r = s.radius * h
        if s.shape == "disc":
            self._disc(img, cx, cy, r, r, self.color)
        elif s.shape == "rect":
            self._rect(img, cx, cy, 1.5 * r, r, self.color)
        for ov in s.overlays:
            alpha = ov.alpha(j)
            if alpha >= 1.0:
                self._overlay(img, ov, j)
            elif alpha > 0.0:
                top = img.copy()
                self._overlay(top, ov, j)
                img = _blend(img, top, alpha)
        return img

    def _overlay(self, img: np.ndarray, ov: Overlay, j: int) -> None:
        w, h = self.width, self.height
        cx, cy = (p * size for p, size in zip(ov.position(j), (w, h)))
        r = ov.size * h
        color = np.array(ov.color, dtype=np.uint8)
        if ov.kind == "disc":
            self._disc(img, cx, cy, r, r, color)
        elif ov.kind == "rect":
            self._rect(img, cx, cy, 1.5 * r, r, color)
        elif ov.kind == "caption":
            self._rect(img, cx, cy, 0.35 * w, r / 2, color)
            ink = np.array([255 - int(c) // 4 for c in ov.color], dtype=np.uint8)
            rng = np.random.default_rng(self.scene.seed + 7)
            x, right = cx - 0.32 * w, cx + 0.32 * w
            while x < right:  # "words": light blocks of random widths on the bar
                word = float(rng.uniform(0.02, 0.07)) * w
                self._rect(img, x + word / 2, cy, min(word, right - x) / 2, r / 5, ink)
                x += word + 0.012 * w
        else:  # hand: a palm and an arm down to the bottom edge
            self._rect(img, cx, (cy + h) / 2, 0.15 * r, (h - cy) / 2, color)
            self._disc(img, cx, cy, 0.225 * r, r / 2, color)

    def _disc(
        self, img: np.ndarray, cx: float, cy: float, rx: float, ry: float, color: np.ndarray
    ) -> None:
        """An ellipse of semi-axes ``rx``, ``ry`` (a disc when equal)."""
        x0, x1, y0, y1 = _bbox(cx, cy, rx, ry, self.width, self.height)
        if x0 >= x1 or y0 >= y1:
            return
        dx2 = ((self.xs[x0:x1] - cx) / rx) ** 2
        dy2 = ((self.ys[y0:y1] - cy) / ry) ** 2
        mask = dy2[:, None] + dx2[None, :] <= 1.0
        img[y0:y1, x0:x1][mask] = color

    def _rect(
        self, img: np.ndarray, cx: float, cy: float, hw: float, hh: float, color: np.ndarray
    ) -> None:
        x0, x1, y0, y1 = _bbox(cx, cy, hw, hh, self.width, self.height)
        img[y0:y1, x0:x1] = color


def _smear(rows: np.ndarray, ox: int, w: int, length: int) -> np.ndarray:
    """Columns ``[ox, ox + w)`` of the ``w``-periodic ``rows``, each averaged over ``length``
    pixels along x around it (horizontal motion blur)."""
    cols = np.arange(ox - length // 2, ox + w + length - length // 2) % w
    strip = rows[:, cols].astype(np.int32)
    acc = np.concatenate([np.zeros_like(strip[:, :1]), np.cumsum(strip, axis=1)], axis=1)
    return ((acc[:, length : length + w] - acc[:, :w]) // length).astype(np.uint8)


def _bounce(p: float) -> float:
    """Fold a moving coordinate back into [0, 1], as if bouncing off the frame edges."""
    p = p % 2.0
    return 2.0 - p if p > 1.0 else p


def _bbox(cx: float, cy: float, hw: float, hh: float, w: int, h: int) -> tuple[int, ...]:
    """Pixel bounds ``(x0, x1, y0, y1)`` of a box of half-sizes (hw, hh), clipped to the frame."""
    x0 = max(0, math.floor(cx - hw))
    x1 = min(w, math.ceil(cx + hw) + 1)
    y0 = max(0, math.floor(cy - hh))
    y1 = min(h, math.ceil(cy + hh) + 1)
    return x0, x1, y0, y1


def _background_tile(scene: Scene, width: int, height: int) -> np.ndarray:
    """Background colour (or ``bands`` of seeded colours) plus seeded two-octave blocky
    texture (amplitude about +-12)."""
    base = np.empty((height, width, 3), dtype=np.int16)
    base[:] = np.array(scene.background, dtype=np.int16)
    if scene.bands:
        rng = np.random.default_rng(scene.seed + 1)
        widths = rng.uniform(0.5, 1.5, scene.bands)
        edges = np.round(np.cumsum(widths)[:-1] / widths.sum() * width)
        colours = rng.integers(0, 256, (scene.bands, 3), dtype=np.int16)
        base[:] = colours[np.searchsorted(edges, np.arange(width), side="right")][None]
    if scene.texture:
        rng = np.random.default_rng(scene.seed)
        tex = _blocky_noise(rng, height, width, 16, 7) + _blocky_noise(rng, height, width, 4, 5)
        base += tex[:, :, None]
    return np.clip(base, 0, 255).astype(np.uint8)


def _blocky_noise(rng: np.random.Generator, h: int, w: int, block: int, amp: int) -> np.ndarray:
    """Uniform integer noise in [-amp, amp], constant over ``block`` x ``block`` pixel squares."""
    coarse = rng.integers(-amp, amp + 1, size=(-(-h // block), -(-w // block)), dtype=np.int16)
    return np.repeat(np.repeat(coarse, block, axis=0), block, axis=1)[:h, :w]


def _blend(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """``(1 - t) * a + t * b`` as uint8."""
    out = a.astype(np.float32) * (1.0 - t) + b.astype(np.float32) * t
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def _transition(kind: str, prev: np.ndarray, cur: np.ndarray, j: int, length: int) -> np.ndarray:
    """Frame ``j`` of a ``length``-frame dissolve or fade-through-black from prev to cur."""
    t = (j + 1) / (length + 1)
    if kind == "dissolve":
        return _blend(prev, cur, t)
    black = np.zeros_like(cur)
    return _blend(prev, black, 2 * t) if t < 0.5 else _blend(black, cur, 2 * t - 1)


def draw_stamp(img: np.ndarray, number: int) -> None:
    """Draw ``number`` (mod 2**16) as a black/white bar code in the top strip of ``img``.

    Contract: :func:`read_stamp` recovers the number from the decoded frame, RGB or gray,
    at native size or downscaled to >= 64x36.
    """
    h, w = img.shape[:2]
    strip = max(4, round(h * _STAMP_STRIP))
    for k in range(STAMP_BITS):
        bit = (number >> (STAMP_BITS - 1 - k)) & 1
        x0, x1 = k * w // STAMP_BITS, (k + 1) * w // STAMP_BITS
        img[:strip, x0:x1] = 255 if bit else 0


def read_stamp(frame: np.ndarray) -> int:
    """Decode the number drawn by :func:`draw_stamp` from a decoded frame (HxW or HxWx3)."""
    gray = frame.mean(axis=2) if frame.ndim == 3 else frame.astype(np.float32)
    h, w = gray.shape
    strip = max(1, round(h * _STAMP_STRIP))
    rows = gray[strip // 4 : max(strip // 4 + 1, 3 * strip // 4)]
    number = 0
    for k in range(STAMP_BITS):
        xc0 = k * w // STAMP_BITS + w // (STAMP_BITS * 4)
        xc1 = (k + 1) * w // STAMP_BITS - w // (STAMP_BITS * 4)
        bit = rows[:, xc0 : max(xc1, xc0 + 1)].mean() > 127
        number = (number << 1) | int(bit)
    return number


def _scene_frames(
    scenes: Sequence[Scene], width: int, height: int, fps: Fraction
) -> Iterator[np.ndarray]:
    """Yield every frame of the clip in order, with transitions and flashes applied."""
    prev: _SceneRenderer | None = None  # renderers are made one scene at a time (memory)
    for scene in scenes:
        rend = _SceneRenderer(scene, width, height, fps)
        for j in range(scene.frames):
            img = rend.frame(j)
            if prev is not None and scene.transition_in != "cut" and j < scene.transition_frames:
                img = _transition(
                    scene.transition_in,
                    prev.frame(prev.scene.frames + j),
                    img,
                    j,
                    scene.transition_frames,
                )
            if j in scene.flashes:
                img = _blend(img, np.full_like(img, 255), _FLASH_WHITE)
            yield img
        prev = rend


def _frame_ticks(n: int, vfr: bool, seed: int) -> np.ndarray:
    """Presentation times in ticks of 1/fps: regular, or with ~25% of frames held twice as long."""
    steps = np.ones(n, dtype=np.int64)
    if vfr:
        held = np.random.default_rng(seed).random(n) < 0.25
        steps[held] = 2
    return np.concatenate([[0], np.cumsum(steps)[:-1]]).astype(np.int64)


def _truth(scenes: Sequence[Scene], fps: Fraction, ticks: np.ndarray, vfr: bool) -> SynthTruth:
    """Ground truth for a clip made of ``scenes``."""
    cuts, transitions, spans, flashes, local = [], [], [], [], []
    start = 0
    for i, s in enumerate(scenes):
        if i > 0 and s.transition_in == "cut":
            cuts.append(start)
        elif i > 0:
            transitions.append((start, start + s.transition_frames, s.transition_in))
        spans.append((start, start + s.frames))
        flashes.extend(start + f for f in s.flashes)
        for ov in s.overlays:
            local.extend(ov.events(start, s.frames))
        local.extend((start + a, start + a + n, "whip pan") for a, n, _ in s.whips)
        start += s.frames
    times = tuple(float(Fraction(int(t)) / fps) for t in ticks)
    return SynthTruth(
        cuts=tuple(cuts),
        transitions=tuple(transitions),
        scene_spans=tuple(spans),
        flashes=tuple(sorted(flashes)),
        frame_count=start,
        fps=fps,
        vfr=vfr,
        times=times,
        local_changes=tuple(sorted(local)),
    )


def _open_encoder(
    path: str, codec: str, width: int, height: int, fps: Fraction, gop: int, preset: str, crf: int
) -> tuple[av.container.OutputContainer, av.video.stream.VideoStream]:
    """Open ``path`` for writing with one video stream configured for fast encoding."""
    container = av.open(path, "w")
    stream = container.add_stream(codec, rate=fps)
    stream.width, stream.height = width, height
    stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
    stream.codec_context.time_base = 1 / fps
    stream.codec_context.gop_size = gop
    if codec == "libx264":
        stream.options = {"preset": preset, "crf": str(crf)}
    else:
        stream.codec_context.bit_rate = int(width * height * float(fps) * 0.2)
    return container, stream


def render(
    path: str | os.PathLike[str],
    scenes: Sequence[Scene],
    width: int = 640,
    height: int = 360,
    fps: Fraction | int = Fraction(25),
    codec: str = "libx264",
    vfr: bool = False,
    gop: int | None = None,
    *,
    preset: str = "ultrafast",
    crf: int = 23,
    stamp: bool = False,
    seed: int = 0,
) -> SynthTruth:
    """Render ``scenes`` into a video file at ``path`` (container from the extension).

    Contract: encodes with PyAV (libx264 ``preset``/``crf``; other codecs at a generous bit
    rate) with a keyframe at least every ``gop`` frames (default: 2 seconds). ``vfr=True``
    writes a real variable-frame-rate file: ~25% of frames (seeded) are held for two frame
    intervals, so frame n is NOT at n/fps. ``stamp=True`` draws each frame's number as a bar
    code (see :func:`read_stamp`). Returns the clip's :class:`SynthTruth`.
    Raises ValueError for bad arguments (odd sizes, empty scenes, a first scene with a
    transition).
    """
    fps = Fraction(fps)
    if not scenes:
        raise ValueError("render needs at least one scene")
    if scenes[0].transition_in != "cut":
        raise ValueError("the first scene cannot transition in from nothing")
    if width % 2 or height % 2 or width < 16 or height < 16:
        raise ValueError(f"width and height must be even and >= 16, got {width}x{height}")
    gop = gop or max(1, round(2 * fps))
    total = sum(s.frames for s in scenes)
    ticks = _frame_ticks(total, vfr, seed)
    path = os.fspath(path)
    container, stream = _open_encoder(path, codec, width, height, fps, gop, preset, crf)
    time_base = 1 / fps
    try:
        for n, img in enumerate(_scene_frames(scenes, width, height, fps)):
            if stamp:
                draw_stamp(img, n)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts, frame.time_base = int(ticks[n]), time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    finally:
        container.close()
    return _truth(scenes, fps, ticks, vfr)


LOCAL_CHANGES = ("objects", "captions", "whip_pans", "sweeps")


def _contrasting(rng: np.random.Generator, background: tuple[int, ...]) -> tuple[int, int, int]:
    """A saturated colour far from ``background`` (each channel pushed to the other end)."""
    return tuple(int(np.clip(255 - c + rng.integers(-30, 31), 0, 255)) for c in background)


def local_change_scene(
    kind: str,
    frames: int,
    seed: int,
    *,
    width: int = 640,
    transition_in: str = "cut",
    transition_frames: int = 0,
) -> Scene:
    """One scene of ``frames`` frames holding local changes of ``kind`` (none of them a cut).

    Contract: ``"objects"``: a big high-contrast disc (radius 0.2-0.35 of the height) or
    rect (up to 0.75 x 0.5 of the height), covering up to ~22% of a 16:9 picture, pops in,
    pops out, teleports or visits for 4-20 frames; ``"captions"``: a
    lower-third bar with text-like marks appears (popping or fading in) and may disappear;
    ``"whip_pans"``: a backdrop of high-contrast vertical bands that whips sideways at 25-60
    px per frame of a 640-wide picture (scaled to ``width``) for 6-15 frames, at rest
    otherwise; ``"sweeps"``: a hand (palm and arm, full height) or a big disc crosses the
    whole picture in 8-20 frames. Events start >= 10 frames after the scene's start and end
    >= 10 frames before its end (the truth's ``local_changes`` lists them); the scene is
    seeded by ``seed``. Raises ValueError for an unknown ``kind``.
    """
    if kind not in LOCAL_CHANGES:
        raise ValueError(f"kind must be one of {LOCAL_CHANGES}, got {kind!r}")
    rng = np.random.default_rng(seed)
    background = tuple(int(c) for c in rng.integers(20, 236, 3))
    lo, hi = 10 + transition_frames, frames - 10
    base = Scene(
        frames=frames,
        background=background,
        shape=("disc", "rect", "none")[seed % 3],
        shape_color=tuple(int(c) for c in rng.integers(0, 256, 3)),
        position=(float(rng.uniform(0.2, 0.8)), float(rng.uniform(0.2, 0.8))),
        radius=float(rng.uniform(0.08, 0.15)),
        motion=(float(rng.normal(0, 0.2)), float(rng.normal(0, 0.2))),
        transition_in=transition_in,
        transition_frames=transition_frames,
        seed=seed,
    )
    if hi - lo < 24:
        return base
    if kind == "whip_pans":
        whips, t = [], lo
        while t + 16 < hi and len(whips) < 2:
            n = int(rng.integers(6, 16))
            dx = float(rng.uniform(25, 60)) * width / 640 * (1 if rng.random() < 0.5 else -1)
            whips.append((t, min(n, hi - t), dx))
            t += n + int(rng.integers(12, 30))
        return dataclasses.replace(base, bands=int(rng.integers(5, 11)), whips=tuple(whips))
    overlays, t = [], lo
    while t + 20 < hi and len(overlays) < 3:
        ov = _local_overlay(rng, kind, t, hi, frames, background)
        overlays.append(ov)
        t = (ov.end if ov.end < frames else (ov.jump or ov.start)) + int(rng.integers(12, 30))
        if ov.end >= frames and ov.jump is None and ov.to is None:
            break  # popped in for good: nothing after it
    return dataclasses.replace(base, overlays=tuple(overlays))


def _local_overlay(
    rng: np.random.Generator, kind: str, t: int, hi: int, frames: int, background: tuple
) -> Overlay:
    """One overlay of ``kind`` whose first event is at offset ``t`` (before ``hi``)."""
    color = _contrasting(rng, background)
    if kind == "captions":
        fade = int(rng.choice([0, 0, 4, 8]))
        end = frames if rng.random() < 0.4 else min(hi, t + int(rng.integers(20, 60)))
        end = max(end, t + 2 * fade + 1)
        dark = (int(rng.integers(0, 40)),) * 3
        return Overlay("caption", t, end, (0.5, float(rng.uniform(0.78, 0.88))),
                       size=float(rng.uniform(0.1, 0.18)), color=dark, fade=fade)  # fmt: skip
    if kind == "sweeps":
        n = int(rng.integers(8, 21))
        hand = rng.random() < 0.6
        y = float(rng.uniform(0.3, 0.6))
        ends = ((-0.15, y), (1.15, y + float(rng.normal(0, 0.1))))
        at, to = ends if rng.random() < 0.5 else ends[::-1]
        skin = tuple(int(c) for c in np.array([190, 130, 100]) * rng.uniform(0.5, 1.1))
        if hand:
            return Overlay("hand", t, t + n, at, to, size=float(rng.uniform(0.8, 1.1)),
                           color=skin)  # fmt: skip
        return Overlay("disc", t, t + n, at, to, size=float(rng.uniform(0.2, 0.35)),
                       color=color)  # fmt: skip
    shape = "disc" if rng.random() < 0.5 else "rect"
    size = float(rng.uniform(0.2, 0.35) if shape == "disc" else rng.uniform(0.15, 0.25))
    at = (float(rng.uniform(0.25, 0.75)), float(rng.uniform(0.3, 0.7)))
    to = (float(rng.uniform(0.25, 0.75)), float(rng.uniform(0.3, 0.7)))
    how = rng.choice(["in", "out", "jump", "visit"])
    if how == "in":
        return Overlay(shape, t, frames, at, size=size, color=color)
    if how == "out":
        return Overlay(shape, 0, t, at, size=size, color=color)
    if how == "jump":
        return Overlay(shape, 0, frames, at, to, jump=t, size=size, color=color)
    return Overlay(shape, t, t + int(rng.integers(4, 21)), at, size=size, color=color)


_ORANGE = (205, 120, 40)
_NAVY = (20, 30, 90)


def film_scenes(seed: int = 0) -> tuple[list[Scene], tuple[tuple[int, int, str], ...]]:
    """The scenes of :func:`sample_film` (745 frames) and their designed matches.

    Matches (scene indices): colour 0~3 (navy), 1~6 (orange); framing 1~4 (disc at left,
    r=0.18), 0~7 (centred disc r=0.2); motion 1~4~7 (background panning right).
    """
    s = seed * 100
    scenes = [
        Scene(90, _NAVY, "disc", (240, 240, 240), (0.5, 0.5), 0.2, seed=s + 1),
        Scene(75, _ORANGE, "disc", (180, 20, 20), (0.3, 0.5), 0.18, pan=(4, 0), seed=s + 2),
        Scene(100, (40, 140, 60), "rect", (250, 230, 60), (0.15, 0.4), 0.15,
              motion=(0.8, 0.1), seed=s + 3),
        Scene(100, _NAVY, "disc", (230, 200, 40), (0.7, 0.35), 0.12, motion=(-0.1, 0.0),
              transition_in="dissolve", transition_frames=25, seed=s + 4),
        Scene(90, (110, 40, 130), "disc", (60, 220, 220), (0.3, 0.5), 0.18, pan=(4, 0),
              flashes=(40, 41), seed=s + 5),
        Scene(100, (80, 80, 80), "none", pan=(-3, 0), transition_in="fade",
              transition_frames=30, seed=s + 6),
        Scene(80, _ORANGE, "rect", (30, 30, 200), (0.75, 0.7), 0.12, motion=(-0.6, -0.4),
              pan=(0, 6), seed=s + 7),
        Scene(110, (20, 120, 130), "disc", (250, 140, 180), (0.5, 0.5), 0.2, pan=(5, 0),
              seed=s + 8),
    ]  # fmt: skip
    matches = (
        (0, 3, "colour"),
        (1, 6, "colour"),
        (1, 4, "framing"),
        (0, 7, "framing"),
        (1, 4, "motion"),
        (1, 7, "motion"),
        (4, 7, "motion"),
    )
    return scenes, matches


def sample_film(
    path: str | os.PathLike[str],
    seed: int = 0,
    width: int = 640,
    height: int = 360,
    fps: Fraction | int = Fraction(25),
    *,
    vfr: bool = False,
    stamp: bool = False,
) -> SynthTruth:
    """Render the ~30 s demo film (at 25 fps) with cuts, a dissolve, a fade, a flash, motion.

    Contract: 8 scenes (see :func:`film_scenes`): 5 hard cuts, one 25-frame dissolve, one
    30-frame fade through black, a 2-frame flash, fast subject motion and camera pans; the
    returned truth's ``matches`` lists the scene pairs designed to match in colour, framing
    and motion. Textures depend on ``seed``; the edit structure does not.
    """
    scenes, matches = film_scenes(seed)
    truth = render(path, scenes, width, height, fps, vfr=vfr, stamp=stamp, seed=seed)
    return dataclasses.replace(truth, matches=matches)


def corrupt_copy(
    src: str | os.PathLike[str], dst: str | os.PathLike[str], keep: float = 0.3
) -> None:
    """Write to ``dst`` the first ``keep`` fraction of ``src``'s bytes (a truncated file)."""
    try:
        with open(src, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise MediaError(src, f"cannot read file ({exc.strerror or exc})") from exc
    with open(dst, "wb") as f:
        f.write(data[: int(len(data) * keep)])


# --------------------------------------------------------------------------- subtitles
Cue = tuple[float, float, str]  # (start_s, end_s, text)
_ASS_HEADER = (
    "[Script Info]\nScriptType: v4.00+\nPlayResX: 384\nPlayResY: 288\n\n[V4+ Styles]\n"
    "Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, "
    "BackColour, Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, "
    "BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, MarginV, Encoding\n"
    "Style: Default,Arial,16,&Hffffff,&Hffffff,&H0,&H0,0,0,0,0,100,100,0,0,1,1,0,2,10,10,10,0"
    "\n\n[Events]\nFormat: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, "
    "Text\n"
)


def _clock(t: float, sep: str = ",", hours: int = 2) -> str:
    ms = int(round(t * 1000))
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    if hours == 1:  # ASS: H:MM:SS.cc
        return f"{h}:{m:02d}:{s:02d}.{ms // 10:02d}"
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def subtitle_text(fmt: str, cues: Sequence[Cue]) -> str:
    """A subtitle file's text: ``fmt`` is ``srt``, ``vtt`` or ``ass``."""
    if fmt == "srt":
        return "".join(
            f"{i}\n{_clock(a)} --> {_clock(b)}\n{t}\n\n" for i, (a, b, t) in enumerate(cues, 1)
        )
    if fmt == "vtt":
        return "WEBVTT\n\n" + "".join(
            f"{_clock(a, '.')} --> {_clock(b, '.')}\n{t}\n\n" for a, b, t in cues
        )
    if fmt == "ass":
        return _ASS_HEADER + "".join(
            f"Dialogue: 0,{_clock(a, hours=1)},{_clock(b, hours=1)},Default,,0,0,0,,"
            + t.replace("\n", "\\N")
            + "\n"
            for a, b, t in cues
        )
    raise ValueError(f"unknown subtitle format {fmt!r}: srt, vtt or ass")


def mux_subtitles(
    video: str | os.PathLike[str],
    out: str | os.PathLike[str],
    tracks: Sequence[tuple[str, Sequence[Cue], str | None]],
) -> None:
    """Copy ``video``'s video stream into ``out`` with subtitle ``tracks`` of
    ``(codec, cues, language)``: ``mov_text`` (an ``.mp4``/``.mov`` out) or ``srt``,
    ``vtt``, ``ass`` (an ``.mkv`` out; the cues pass through FFmpeg's own demuxer of that
    format and are stream-copied)."""
    import struct
    import tempfile

    src = av.open(os.fspath(video))
    dst = av.open(os.fspath(out), "w")
    opened = [src]
    try:
        v = dst.add_stream_from_template(src.streams.video[0])
        packets: list[tuple[av.Packet, Any]] = []
        for codec, cues, lang in tracks:
            if codec == "mov_text":
                st = dst.add_stream("mov_text")
                st.codec_context.subtitle_header = _ASS_HEADER.encode()
                st.time_base = Fraction(1, 1000)
                for a, b, t in cues:
                    data = t.encode()
                    pk = av.Packet(struct.pack(">H", len(data)) + data)
                    pk.pts = pk.dts = round(a * 1000)
                    pk.duration = round((b - a) * 1000)
                    pk.time_base = Fraction(1, 1000)
                    packets.append((pk, st))
            else:
                with tempfile.NamedTemporaryFile("w", suffix=f".{codec}", delete=False) as f:
                    f.write(subtitle_text(codec, cues))
                sub = av.open(f.name)
                opened.append(sub)
                os.unlink(f.name)
                st = dst.add_stream_from_template(sub.streams.subtitles[0])
                for pk in sub.demux(sub.streams.subtitles[0]):
                    if pk.size:
                        packets.append((pk, st))
            if lang:
                st.metadata["language"] = lang
        for pk in src.demux(src.streams.video[0]):
            if pk.dts is not None:
                pk.stream = v
                dst.mux(pk)
        for pk, st in packets:
            pk.stream = st
            dst.mux(pk)
    finally:
        dst.close()
        for c in opened:
            c.close()
