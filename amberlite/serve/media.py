"""Pictures and video for the web app: a frame as JPEG, a shot's thumbnail strip, the asset's
own file when a browser can play it, and short MP4 clips (a time range, or a cut: the end of
shot A into the start of shot B) that a browser plays.

An asset whose file a browser plays as it is (:meth:`Media.playable`: H.264 / AV1 / VP9 in
MP4 or MOV, VP8 / VP9 / AV1 in WebM, 8-bit 4:2:0, its first frame at time 0 so the browser's
clock is the store's) is served whole, with byte ranges: any time range plays and scrubs
without transcoding. Other assets play through clips.

Frames are decoded by exact frame number (:func:`amberlite.media.decode.read_batch`). Clips
are encoded once with PyAV (H.264, ``+faststart``) into ``<store>/cache/clips/``, named by a
hash of what they show (never by an id or alias), written aside and renamed, so any number of
server processes can share the cache; the server then answers byte-range requests on the file.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from amberlite.context import StoreContext
from amberlite.core.entities import AssetView
from amberlite.errors import AmberliteError, MediaError
from amberlite.media.decode import Decode, read_batch

MAX_SIDE = 3840  # pixels, either side of a requested picture
MAX_CLIP_S = 30.0  # seconds of one clip
CLIP_HEIGHT = 360  # clips are scaled to at most this height
CLIP_VERSION = "2"  # part of every clip's cache name: bump when the encoding changes
# codecs a browser's <video> decodes, per container family PyAV names (Chromium's set)
PLAYABLE = {
    "mov,mp4,m4a,3gp,3g2,mj2": ("video/mp4", frozenset({"h264", "av1", "vp9"})),
    "matroska,webm": ("video/webm", frozenset({"vp8", "vp9", "av1"})),
}
PLAYABLE_PIX = frozenset({"yuv420p", "yuvj420p"})


class BadMediaRequest(AmberliteError):
    """A picture or clip request outside what the asset or the server allows (a 4xx)."""


@dataclass(frozen=True)
class Span:
    """A range of one asset: frames ``[start, end)``."""

    asset_id: str
    start: int
    end: int


class Media:
    """Frames, strips and clips of a store's assets (frame indexes cached per asset)."""

    def __init__(self, ctx: StoreContext, views: int = 64) -> None:
        self.ctx = ctx
        self._views: OrderedDict[str, AssetView] = OrderedDict()
        self._size = views
        self._lock = threading.Lock()
        self.clip_dir = ctx.root / "cache" / "clips"
        self._playable: dict[str, tuple[str | None, str]] = {}

    def view(self, asset_id: str) -> AssetView:
        with self._lock:
            if asset_id in self._views:
                self._views.move_to_end(asset_id)
                return self._views[asset_id]
        found = self.ctx.asset_views([asset_id], Decode())
        if not found:
            raise BadMediaRequest(f"unknown asset {asset_id!r}")
        found[0].index  # noqa: B018 - load the frame index outside the lock
        with self._lock:
            self._views[asset_id] = found[0]
            while len(self._views) > self._size:
                self._views.popitem(last=False)
        return found[0]

    # -- pictures -----------------------------------------------------------------------------
    def frame_number(self, asset_id: str, t: float | None, n: int | None) -> int:
        """The frame shown at ``t`` seconds, or frame ``n``; checked against the asset."""
        view = self.view(asset_id)
        if (t is None) == (n is None):
            raise BadMediaRequest("give exactly one of t (seconds) and n (frame number)")
        if n is not None:
            if not 0 <= n < len(view.index):
                raise BadMediaRequest(
                    f"frame {n} is outside {view.alias} (frames 0-{len(view.index) - 1})"
                )
            return n
        try:
            return view.index.frame_at(float(t))
        except ValueError as e:
            raise BadMediaRequest(str(e)) from None

    def frame_jpeg(
        self, asset_id: str, n: int, width: int | None, height: int | None, quality: int = 85
    ) -> bytes:
        """Frame ``n`` as JPEG, scaled to fit ``width`` x ``height`` (aspect kept)."""
        view = self.view(asset_id)
        size = fit(view.record.width, view.record.height, width, height)
        _, frames = read_batch(view.path, n, n + 1, Decode(size=size), view.index)
        if not len(frames):
            raise MediaError(f"{view.alias}: frame {n} could not be decoded")
        return jpeg(frames[0], quality)

    def strip_jpeg(self, span: Span, count: int, height: int) -> bytes:
        """``count`` frames evenly spread over the span, side by side, ``height`` pixels high."""
        view = self.view(span.asset_id)
        if not 1 <= count <= 32:
            raise BadMediaRequest("count must be between 1 and 32")
        size = fit(view.record.width, view.record.height, None, height)
        last = max(span.start, span.end - 1)
        wanted = sorted(
            {round(span.start + (last - span.start) * k / max(1, count - 1)) for k in range(count)}
        )
        pictures = []
        for n in wanted:
            _, frames = read_batch(view.path, n, n + 1, Decode(size=size), view.index)
            pictures.extend(frames[:1])
        if not pictures:
            raise MediaError(f"{view.alias}: no frame of {span.start}-{span.end} decoded")
        return jpeg(np.concatenate(pictures, axis=1), 80)

    # -- the asset's own file -----------------------------------------------------------------
    def playable(self, asset_id: str) -> tuple[str | None, str]:
        """``(media type, "")`` when a browser plays the asset's file as it is, else ``(None,
        why not)``. Probed once per asset and process (the container's header only)."""
        if asset_id in self._playable:
            return self._playable[asset_id]
        view = self.view(asset_id)
        found = _probe_playable(view.path, view.index)
        with self._lock:
            self._playable[asset_id] = found
        return found

    # -- clips --------------------------------------------------------------------------------
    def span_of_seconds(self, asset_id: str, start_s: float, end_s: float) -> Span:
        """Frames shown in ``[start_s, end_s)`` (at least one)."""
        view = self.view(asset_id)
        if not (0 <= start_s < end_s):
            raise BadMediaRequest(f"need 0 <= start < end, got {start_s} and {end_s}")
        if end_s - start_s > MAX_CLIP_S:
            raise BadMediaRequest(f"a clip is at most {MAX_CLIP_S:g} s long")
        duration = view.index.duration_s
        if start_s >= duration:
            raise BadMediaRequest(f"{view.alias} is {duration:.3f} s long: start {start_s} is past")
        first = view.index.frame_at(start_s)
        last = view.index.frame_at(end_s) if end_s < duration else len(view.index)
        return Span(asset_id, first, max(last, first + 1))

    def clip(self, spans: list[Span]) -> Path:
        """An MP4 of the spans played one after another (cached; made on first request)."""
        total = sum(s.end - s.start for s in spans)
        rates = [self.view(s.asset_id).record.frame_rate for s in spans]
        rate = rates[0] if rates[0] else Fraction(25)
        if total / float(rate) > 2 * MAX_CLIP_S:
            raise BadMediaRequest(f"a clip is at most {2 * MAX_CLIP_S:g} s long")
        key = "|".join([CLIP_VERSION, *(f"{s.asset_id}:{s.start}:{s.end}" for s in spans)])
        path = self.clip_dir / (hashlib.sha256(key.encode()).hexdigest()[:32] + ".mp4")
        if not path.is_file():
            self.clip_dir.mkdir(parents=True, exist_ok=True)
            first = self.view(spans[0].asset_id).record
            size = fit(first.width, first.height, None, min(CLIP_HEIGHT, first.height), even=True)
            fd, tmp = tempfile.mkstemp(dir=self.clip_dir, suffix=".part")
            os.close(fd)
            try:
                self._encode(spans, Path(tmp), size, rate)
                os.replace(tmp, path)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        return path

    def _encode(self, spans: list[Span], out: Path, size: tuple[int, int], rate: Fraction) -> None:
        import av

        with av.open(str(out), "w", format="mp4", options={"movflags": "+faststart"}) as box:
            stream = box.add_stream("libx264", rate=rate)
            stream.width, stream.height = size
            stream.pix_fmt = "yuv420p"
            stream.options = {"preset": "ultrafast", "crf": "23", "g": str(int(rate) or 25)}
            for span in spans:
                view = self.view(span.asset_id)
                # another asset's shape is fitted inside the clip's, with black bars
                inner = fit(view.record.width, view.record.height, *size) or size
                _, frames = read_batch(
                    view.path, span.start, span.end, Decode(size=inner), view.index
                )
                for picture in frames:
                    frame = av.VideoFrame.from_ndarray(letterbox(picture, size), "rgb24")
                    box.mux(stream.encode(frame))
            box.mux(stream.encode(None))


def _probe_playable(path: str | os.PathLike, index) -> tuple[str | None, str]:
    import av

    name = os.path.basename(os.fspath(path))
    try:
        with av.open(os.fspath(path)) as box:
            stream = box.streams.video[0]
            family, codec = box.format.name, stream.codec_context.name
            pix = stream.codec_context.pix_fmt or ""
    except (av.FFmpegError, OSError, IndexError) as e:
        return None, f"{name} could not be opened ({e})"
    mime, codecs = PLAYABLE.get(family, (None, frozenset()))
    if mime == "video/webm" and not name.lower().endswith(".webm"):
        mime = None  # Matroska other than WebM
    if mime is None:
        return None, f"{name}: browsers do not play its container ({family})"
    if codec not in codecs:
        return None, f"{name}: browsers do not play {codec} video in {mime}"
    if pix not in PLAYABLE_PIX:
        return None, f"{name}: browsers do not play {pix} pictures"
    first = float(index.start_pts * index.time_base)
    if abs(first) > 0.5 / max(len(index) / max(index.duration_s, 1e-9), 1.0):
        return None, f"{name}: its first frame is at {first:.3f} s, not 0"
    return mime, ""


def fit(
    width: int, height: int, want_w: int | None, want_h: int | None, even: bool = False
) -> tuple[int, int] | None:
    """The size that fits ``want_w`` x ``want_h`` keeping the aspect ratio (None: native)."""
    for name, v in (("w", want_w), ("h", want_h)):
        if v is not None and not 1 <= v <= MAX_SIDE:
            raise BadMediaRequest(f"{name} must be between 1 and {MAX_SIDE}, got {v}")
    if want_w is None and want_h is None:
        return None
    scale = min(
        want_w / width if want_w is not None else float("inf"),
        want_h / height if want_h is not None else float("inf"),
    )
    w, h = max(1, round(width * scale)), max(1, round(height * scale))
    if even:
        w, h = max(2, w - w % 2), max(2, h - h % 2)
    return w, h


def letterbox(picture: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``picture`` centred on black at ``size`` (width, height); as is when it fills it."""
    w, h = size
    if picture.shape[1] == w and picture.shape[0] == h:
        return np.ascontiguousarray(picture)
    out = np.zeros((h, w, 3), np.uint8)
    y, x = (h - picture.shape[0]) // 2, (w - picture.shape[1]) // 2
    out[y : y + picture.shape[0], x : x + picture.shape[1]] = picture
    return out


def jpeg(picture: np.ndarray, quality: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(picture).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()
