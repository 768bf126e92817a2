"""Shot detection: amberlite's ``shots`` vs PySceneDetect, in accuracy and frames/s.

One generated video per class at 360p — hard cuts, dissolves, fades, flashes, fast motion,
and the local changes that are not cuts (big objects popping in, out or teleporting;
captions; whip pans; hands and objects sweeping through), each scene still entered by a cut
or dissolve — and a mixed one at 1080p, cached under ``benchmarks/.media/``. For each:
precision, recall and F1 (a hard cut counts within +-1 frame; a dissolve or fade counts
when a detected cut lies inside its span, +-1; a cut on a local change is a false one) and
frames/s of every method in ``METHODS``: amberlite's classical segmenter (frame index +
features + decisions), PySceneDetect ContentDetector and AdaptiveDetector (PyAV backend,
decoder threads on), and pure PyAV decode of the same file (all threads, no conversion) as
the physical limit. Times are the best of ``--repeat`` interleaved runs (the machine may be
shared); ``cpu x`` columns give a peer's CPU seconds (all threads, least of the runs) over the
classical segmenter's, a ratio that other processes' load moves less than wall time.
Another method is one more ``Method`` in the list.

A second table (``LEARNED``) compares the learned segmenter (``transnetv2``: amberlite's
decode thread, windows and cut rule around the TransNetV2 model, as it runs in a worker)
with TransNetV2 called as its package does it (``predict_frames``,
``predictions_to_scenes``) and the classical segmenter, on shorter clips of the same classes
(about 80 frames/s on 2 CPU cores); besides frames/s it reports frames per CPU-second (all
threads), which a shared machine's load does not move.

    python -m benchmarks.shot_detection [--seconds 180] [--hd-seconds 60] [--repeat 3]
                                        [--classes objects,captions] [--no-hd] [--no-learned]
    python -m benchmarks.shot_detection --only-learned [--learned-seconds 8] [--repeat 1]
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
from amberlite.media.synth import LOCAL_CHANGES, Scene, SynthTruth, local_change_scene, render

MEDIA = Path(__file__).parent / ".media"
FPS = 25
_GEN_VERSION = 4  # bump when the generator changes (invalidates the cache)
CLASSES = ("hard_cuts", "dissolves", "fades", "flashes", "fast_motion", *LOCAL_CHANGES)


# --------------------------------------------------------------------------- media


def _scene(rng: np.random.Generator, kind: str, frames: int, i: int) -> Scene:
    """A random scene; ``kind`` shapes its motion, transition in, flashes or local changes."""
    if kind in LOCAL_CHANGES:
        dissolve = i > 0 and rng.random() < 0.3
        return local_change_scene(
            kind,
            frames,
            int(rng.integers(1 << 30)),
            transition_in="dissolve" if dissolve else "cut",
            transition_frames=min(int(rng.integers(10, 26)), frames) if dissolve else 0,
        )
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


@dataclass(frozen=True)
class Method:
    """One row group of the table: ``name`` (column label), ``cuts`` (path -> cut frame
    numbers), ``scored`` (False for a speed reference that finds no cuts)."""

    name: str
    cuts: Callable[[Path], list[int]]
    scored: bool = True


METHODS: list[Method] = [
    Method("classical", amberlite_cuts),
    Method("content", content_cuts),
    Method("adaptive", adaptive_cuts),
    Method("decode", pure_decode, scored=False),
]
BASELINE = "classical"  # the method whose speed the others are compared with
# The learned method and its peer, on shorter clips (TransNetV2 runs ~80 frames/s on 2 CPUs).
LEARNED: list[Method] = [
    Method("learned", learned_cuts),
    Method("transnetv2_pkg", transnet_package_cuts),
    Method("classical", amberlite_cuts),
]
CPU_S: dict[str, float] = {}  # CPU seconds (all threads) of each method's last run
CPU_BEST: dict[str, float] = {}  # ... and the least of them over the repeats of one video


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
    path: Path, truth: SynthTruth, repeat: int, methods: list[Method]
) -> dict[str, tuple[float, Score | None]]:
    """frames/s (best of ``repeat`` interleaved runs) and score of every method on one video."""
    best = {m.name: float("inf") for m in methods}
    CPU_BEST.clear()
    found: dict[str, list[int]] = {}
    for _ in range(repeat):
        for m in methods:
            t, c = time.perf_counter(), time.process_time()
            found[m.name] = m.cuts(path)
            best[m.name] = min(best[m.name], time.perf_counter() - t)
            CPU_S[m.name] = time.process_time() - c
            CPU_BEST[m.name] = min(CPU_BEST.get(m.name, float("inf")), CPU_S[m.name])
    n = truth.frame_count
    return {
        m.name: (n / best[m.name], score(found[m.name], truth) if m.scored else None)
        for m in methods
    }


def _row(kind: str, size: tuple[int, int], truth: SynthTruth, res: dict, methods: list) -> str:
    events = len(truth.cuts) + len(truth.transitions)
    base = res[BASELINE]
    cells = [f"{kind} {size[1]}p", str(truth.frame_count), str(events)]
    cells += [f"{res[m.name][1].f1:.3f}" for m in methods if m.scored]
    cells += [f"{base[1].precision:.2f}", f"{base[1].recall:.2f}"]
    cells += [f"{res[m.name][0]:.0f}" for m in methods]
    cells += [f"{base[0] / res[m.name][0]:.2f}" for m in methods if m.name != BASELINE]
    cells += [
        f"{CPU_BEST[m.name] / CPU_BEST[BASELINE]:.2f}"
        for m in methods
        if m.scored and m.name != BASELINE
    ]
    return "| " + " | ".join(cells) + " |"


def learned_table(videos: list, repeat: int) -> None:
    """F1 per class, frames/s and frames per CPU-second of the LEARNED methods."""
    prepared = [(k, size, *media(k, s, size, seed)) for k, s, size, seed in videos]
    _package_net()  # loads are not timed (the learned method's model is cached likewise)
    learned_cuts(prepared[0][2])
    names = [m.name for m in LEARNED]
    head = ["video", "frames", "events", *(f"F1 {n}" for n in names)]
    head += [*(f"fps {n}" for n in names), *(f"f/cpu-s {n}" for n in names)]
    head += ["learned/pkg fps", "learned/pkg cpu"]
    print("\nlearned (TransNetV2, CPU)\n| " + " | ".join(head) + " |")
    print("|---|" + "---:|" * (len(head) - 1))
    for kind, size, path, truth in prepared:
        res = run(path, truth, repeat, LEARNED)
        n = truth.frame_count
        cpu = {m: n / CPU_S[m] for m in names}
        cells = [f"{kind} {size[1]}p", str(n), str(len(truth.cuts) + len(truth.transitions))]
        cells += [f"{res[m][1].f1:.3f}" for m in names]
        cells += [f"{res[m][0]:.1f}" for m in names] + [f"{cpu[m]:.1f}" for m in names]
        cells += [f"{res['learned'][0] / res['transnetv2_pkg'][0]:.2f}"]
        cells += [f"{cpu['learned'] / cpu['transnetv2_pkg']:.2f}"]
        print("| " + " | ".join(cells) + " |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=180.0, help="length of each 360p video")
    ap.add_argument("--hd-seconds", type=float, default=60.0, help="length of the 1080p video")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per method (best kept)")
    ap.add_argument("--classes", default=",".join(CLASSES), help="comma-separated classes")
    ap.add_argument("--no-hd", action="store_true", help="skip the 1080p video")
    ap.add_argument("--learned-seconds", type=float, default=8.0, help="learned: 360p length")
    ap.add_argument("--learned-hd-seconds", type=float, default=4.0, help="learned: 1080p")
    ap.add_argument("--only-learned", action="store_true", help="only the learned table")
    ap.add_argument("--no-learned", action="store_true", help="skip the learned table")
    args = ap.parse_args()
    kinds = [k for k in args.classes.split(",") if k]
    unknown = sorted(set(kinds) - set(CLASSES))
    if unknown:
        ap.error(f"unknown classes {unknown}; choose from {', '.join(CLASSES)}")
    videos = [(k, args.seconds, (640, 360), 10 + CLASSES.index(k)) for k in kinds]
    short = [(k, args.learned_seconds, (640, 360), 10 + CLASSES.index(k)) for k in kinds]
    if not args.no_hd:
        videos.append(("mixed", args.hd_seconds, (1920, 1080), 99))
        short.append(("mixed", args.learned_hd_seconds, (1920, 1080), 99))
    if args.only_learned:
        learned_table(short, max(1, args.repeat))
        return
    t0 = time.perf_counter()
    prepared = [(k, size, *media(k, s, size, seed)) for k, s, size, seed in videos]
    print(f"media ready in {time.perf_counter() - t0:.0f} s (cached under {MEDIA})\n")
    scored = [m.name for m in METHODS if m.scored]
    head = ["video", "frames", "events", *(f"F1 {n}" for n in scored)]
    head += [f"P {BASELINE}", f"R {BASELINE}", *(f"fps {m.name}" for m in METHODS)]
    head += [f"x {m.name}" for m in METHODS if m.name != BASELINE]
    head += [f"cpu x {m.name}" for m in METHODS if m.scored and m.name != BASELINE]
    print("| " + " | ".join(head) + " |")
    print("|---|" + "---:|" * (len(head) - 1))
    for kind, size, path, truth in prepared:
        res = run(path, truth, args.repeat, METHODS)
        print(_row(kind, size, truth, res, METHODS), flush=True)
    if not args.no_learned:
        learned_table(short, max(1, args.repeat))


if __name__ == "__main__":
    main()
