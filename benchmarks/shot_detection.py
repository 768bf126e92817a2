"""Shot detection: amberlite's ``shots`` vs PySceneDetect, in accuracy and frames/s.

One generated video per class (hard cuts, dissolves, fades, flashes, fast motion) at 360p
and a mixed one at 1080p, cached under ``benchmarks/.media/``. For each: precision, recall
and F1 (a hard cut counts within +-1 frame; a dissolve or fade counts when a detected cut
lies inside its span, +-1), and frames/s of amberlite (frame index + features + decisions),
PySceneDetect ContentDetector and AdaptiveDetector (PyAV backend, decoder threads on), and
pure PyAV decode of the same file (all threads, no conversion) as the physical limit. Times
are the best of ``--repeat`` interleaved runs (the machine may be shared).

A second table compares the learned segmenter (``transnetv2``: amberlite's decode thread,
windows and cut rule around the TransNetV2 model) with TransNetV2 called as its package does
it (``predict_frames``, ``predictions_to_scenes``) and the classical segmenter, on shorter
clips of the same classes (CPU: about 80 frames/s).

    python -m benchmarks.shot_detection [--seconds 180] [--hd-seconds 60] [--repeat 3]
    python -m benchmarks.shot_detection --only-learned [--learned-seconds 20] [--repeat 1]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from amberlite.library.segment import detect, features, shots
from amberlite.media.frame_index import frame_index
from amberlite.media.synth import Scene, SynthTruth, render

MEDIA = Path(__file__).parent / ".media"
FPS = 25
_GEN_VERSION = 2  # bump when the generator changes (invalidates the cache)
CLASSES = ("hard_cuts", "dissolves", "fades", "flashes", "fast_motion")


# --------------------------------------------------------------------------- media


def _scene(rng: np.random.Generator, kind: str, frames: int, i: int) -> Scene:
    """A random scene; ``kind`` shapes its motion, transition in and flashes."""
    fast = kind == "fast_motion"
    speed = 1.5 if fast else 0.25
    pan = float(rng.normal(0, 12 if fast else 2))
    transition, length = "cut", 0
    if i > 0 and kind in ("dissolves", "fades", "mixed") and rng.random() < 0.7:
        transition = "fade" if kind == "fades" or (kind == "mixed" and i % 2) else "dissolve"
        length = int(rng.integers(10, 41))
    flashes: tuple[int, ...] = ()
    first = length + 8  # flashes of 1-3 frames, apart from each other and from transitions
    if kind in ("flashes", "mixed") and frames > first + 20:
        starts = np.arange(first, frames - 10, 8)
        picked = rng.choice(starts, size=min(len(starts), int(rng.integers(1, 4))), replace=False)
        flashes = tuple(sorted(int(s) + d for s in picked for d in range(int(rng.integers(1, 4)))))
    return Scene(
        frames=frames,
        background=tuple(int(c) for c in rng.integers(10, 246, 3)),
        shape=("disc", "rect", "none")[i % 3],
        shape_color=tuple(int(c) for c in rng.integers(0, 256, 3)),
        position=(float(rng.uniform(0.2, 0.8)), float(rng.uniform(0.2, 0.8))),
        radius=float(rng.uniform(0.1, 0.3)),
        motion=(float(rng.normal(0, speed)), float(rng.normal(0, speed))),
        pan=(pan, float(rng.normal(0, 4 if fast else 0.5))),
        transition_in=transition,
        transition_frames=min(length, frames) if transition != "cut" else 0,
        flashes=flashes,
        seed=int(rng.integers(1 << 30)),
    )


def scenes_for(kind: str, seconds: float, seed: int) -> list[Scene]:
    """Scenes of 2-6 s (some shorter) filling about ``seconds``."""
    rng = np.random.default_rng(seed)
    out: list[Scene] = []
    total = int(seconds * FPS)
    while sum(s.frames for s in out) < total:
        frames = int(rng.integers(20, 60) if rng.random() < 0.2 else rng.integers(50, 150))
        out.append(_scene(rng, kind, frames, len(out)))
    return out


def media(kind: str, seconds: float, size: tuple[int, int], seed: int) -> tuple[Path, SynthTruth]:
    """Render (or reuse from the cache) one benchmark video and its truth."""
    key = json.dumps([_GEN_VERSION, kind, seconds, size, seed])
    stem = f"{kind}_{size[1]}p_{hashlib.sha256(key.encode()).hexdigest()[:10]}"
    path, meta = MEDIA / f"{stem}.mp4", MEDIA / f"{stem}.json"
    if path.exists() and meta.exists():
        d = json.loads(meta.read_text())
        return path, SynthTruth(**{**d, "fps": Fraction(d["fps"])})
    MEDIA.mkdir(parents=True, exist_ok=True)
    scenes = scenes_for(kind, seconds, seed)
    truth = render(path, scenes, *size, fps=FPS, preset="veryfast", seed=seed)
    d = {k: getattr(truth, k) for k in truth.__dataclass_fields__}
    meta.write_text(json.dumps({**d, "fps": str(truth.fps)}))
    return path, truth


# --------------------------------------------------------------------------- detectors


def amberlite_cuts(path: Path) -> list[int]:
    index = frame_index(path)
    f = features(str(path), index, fps=FPS)
    return detect(f, **shots.params)  # the segmenter's defaults


def _scenedetect(path: Path, detector) -> list[int]:
    from scenedetect import SceneManager, open_video

    video = open_video(str(path), backend="pyav", threading_mode="AUTO")
    manager = SceneManager()
    manager.add_detector(detector)
    manager.detect_scenes(video)
    return [start.frame_num for start, _ in manager.get_scene_list()][1:]


def content_cuts(path: Path) -> list[int]:
    from scenedetect import ContentDetector

    return _scenedetect(path, ContentDetector())


def adaptive_cuts(path: Path) -> list[int]:
    from scenedetect import AdaptiveDetector

    return _scenedetect(path, AdaptiveDetector())


def learned_cuts(path: Path) -> list[int]:
    """amberlite's ``transnetv2`` segmenter as it runs in a worker: its model loaded once
    per process (amberlite.run.models), decode in a thread overlapping the model."""
    from amberlite.library import transnet
    from amberlite.run.models import loaded

    net = loaded(transnet.TRANSNET)
    probs = transnet.probabilities(transnet.decoded_chunks(str(path), frame_index(path)), net)
    return transnet.cuts(probs, **transnet.transnetv2.params)


def transnet_package_cuts(path: Path) -> list[int]:
    """The peer: TransNetV2 called as its package does it (``predict_frames`` over all frames
    at 48x27, ``predictions_to_scenes``); frames from PyAV, as its ``predict_video`` would
    read them from an ffmpeg pipe (no ffmpeg binary here)."""
    import torch

    from amberlite.media.decode import Decode, read_frames

    net = _package_net()
    frames = np.stack([f for _, f in read_frames(str(path), 0, None, Decode(size=(48, 27)))])
    with torch.no_grad():
        single, _ = net.predict_frames(torch.from_numpy(frames), quiet=True)
    scenes = np.asarray(net.predictions_to_scenes(single.numpy(), threshold=0.5))
    return [int(s) for s in scenes[1:, 0]]


_NET: list = []


def _package_net():
    from amberlite.library.transnet import build_transnet

    if not _NET:
        _NET.append(build_transnet())
    return _NET[0]


def pure_decode(path: Path) -> list[int]:
    """Decode every frame with PyAV, FFmpeg threads on, no conversion (the speed limit)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_type = "AUTO"
        stream.codec_context.thread_count = 0
        for _ in container.decode(stream):
            pass
    return []


METHODS: dict[str, Callable[[Path], list[int]]] = {
    "amberlite": amberlite_cuts,
    "psd_content": content_cuts,
    "psd_adaptive": adaptive_cuts,
    "decode": pure_decode,
}
# The learned method and its peer, on shorter clips (TransNetV2 runs ~80 frames/s on 2 CPUs).
LEARNED: dict[str, Callable[[Path], list[int]]] = {
    "learned": learned_cuts,
    "transnetv2_pkg": transnet_package_cuts,
    "amberlite": amberlite_cuts,
}


# --------------------------------------------------------------------------- scoring


@dataclass
class Score:
    precision: float
    recall: float
    f1: float


def score(found: list[int], truth: SynthTruth) -> Score:
    """Greedy one-to-one matching of detections to true cuts (+-1) and transitions (span +-1)."""
    events = [(c - 1, c + 1, c) for c in truth.cuts]
    events += [(s - 1, e, (s + e) / 2) for s, e, _ in truth.transitions]
    free = sorted(found)
    hits = 0
    for lo, hi, centre in sorted(events, key=lambda e: e[1] - e[0]):
        inside = [d for d in free if lo <= d <= hi]
        if inside:
            free.remove(min(inside, key=lambda d: abs(d - centre)))
            hits += 1
    p = hits / len(found) if found else 1.0
    r = hits / len(events) if events else 1.0
    return Score(p, r, 2 * p * r / (p + r) if p + r else 0.0)


def run(
    path: Path, truth: SynthTruth, repeat: int, methods: dict | None = None
) -> dict[str, tuple[float, Score | None]]:
    """fps (best of ``repeat`` interleaved runs) and score of every method on one video."""
    methods = METHODS if methods is None else methods
    best = {name: float("inf") for name in methods}
    found: dict[str, list[int]] = {}
    for _ in range(repeat):
        for name, fn in methods.items():
            t, c = time.perf_counter(), time.process_time()
            found[name] = fn(path)
            best[name] = min(best[name], time.perf_counter() - t)
            CPU_S[name] = time.process_time() - c
    n = truth.frame_count
    return {
        name: (n / best[name], None if name == "decode" else score(found[name], truth))
        for name in methods
    }


CPU_S: dict[str, float] = {}  # CPU seconds (all threads) of each method's last run


def learned_table(seconds: float, hd_seconds: float, repeat: int) -> None:
    """F1 per class and frames/s of the learned segmenter, TransNetV2 as its package runs it,
    and the classical segmenter, on the same (shorter) clips."""
    videos = [(k, seconds, (640, 360), 10 + i) for i, k in enumerate(CLASSES)]
    videos.append(("mixed", hd_seconds, (1920, 1080), 99))
    prepared = [(k, size, *media(k, s, size, seed)) for k, s, size, seed in videos]
    _package_net()  # its load is not timed (the learned method's model is cached likewise)
    learned_cuts(prepared[0][2])
    head = (
        f"{'video':18s} {'frames':>6s} | {'F1 lrn':>6s} {'F1 pkg':>6s} {'F1 amb':>6s} | "
        f"{'fps lrn':>7s} {'pkg':>6s} {'amb':>6s} | {'f/cpu-s lrn':>11s} {'pkg':>6s} "
        f"{'amb':>6s} | {'lrn/pkg':>7s} {'cpu':>5s}"
    )
    print("\nlearned (TransNetV2, CPU)\n" + head)
    print("-" * len(head))
    for kind, size, path, truth in prepared:
        res = run(path, truth, repeat, LEARNED)
        (fl, sl), (fp, sp), (fa, sa) = (res[m] for m in LEARNED)
        n = truth.frame_count
        cl, cp, ca = (n / CPU_S[m] for m in LEARNED)
        print(
            f"{kind + f' {size[1]}p':18s} {n:6d} | "
            f"{sl.f1:6.3f} {sp.f1:6.3f} {sa.f1:6.3f} | {fl:7.1f} {fp:6.1f} {fa:6.0f} | "
            f"{cl:11.1f} {cp:6.1f} {ca:6.0f} | {fl / fp:7.2f} {cl / cp:5.2f}",
            flush=True,
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=180.0, help="length of each 360p video")
    ap.add_argument("--hd-seconds", type=float, default=60.0, help="length of the 1080p video")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per method (best kept)")
    ap.add_argument("--learned-seconds", type=float, default=20.0, help="learned: 360p length")
    ap.add_argument("--learned-hd-seconds", type=float, default=8.0, help="learned: 1080p")
    ap.add_argument("--only-learned", action="store_true", help="only the learned table")
    args = ap.parse_args()
    if args.only_learned:
        learned_table(args.learned_seconds, args.learned_hd_seconds, max(1, args.repeat))
        return
    videos = [(k, args.seconds, (640, 360), 10 + i) for i, k in enumerate(CLASSES)]
    videos.append(("mixed", args.hd_seconds, (1920, 1080), 99))
    t0 = time.perf_counter()
    prepared = [(k, size, *media(k, s, size, seed)) for k, s, size, seed in videos]
    print(f"media ready in {time.perf_counter() - t0:.0f} s (cached under {MEDIA})\n")
    head = (
        f"{'video':18s} {'frames':>6s} {'events':>6s} | {'F1 amb':>6s} {'P':>5s} {'R':>5s} | "
        f"{'F1 cont':>7s} {'F1 adap':>7s} | {'fps amb':>7s} {'cont':>6s} {'adap':>6s} "
        f"{'decode':>6s} | {'x cont':>6s} {'x adap':>6s} {'x dec':>5s}"
    )
    print(head)
    print("-" * len(head))
    for kind, size, path, truth in prepared:
        res = run(path, truth, args.repeat)
        (fa, sa), (fc, sc), (fd, sd), (fp, _) = (res[m] for m in METHODS)
        events = len(truth.cuts) + len(truth.transitions)
        print(
            f"{kind + f' {size[1]}p':18s} {truth.frame_count:6d} {events:6d} | "
            f"{sa.f1:6.3f} {sa.precision:5.2f} {sa.recall:5.2f} | {sc.f1:7.3f} {sd.f1:7.3f} | "
            f"{fa:7.0f} {fc:6.0f} {fd:6.0f} {fp:6.0f} | "
            f"{fa / fc:6.2f} {fa / fd:6.2f} {fa / fp:5.2f}"
        )
    learned_table(args.learned_seconds, args.learned_hd_seconds, max(1, args.repeat))


if __name__ == "__main__":
    main()
