"""A feature-length workload: match cutting a 2-hour film, stage by stage.

    python -m benchmarks.film [--minutes 120] [--hd-minutes 10] [--scaling 10,20,30]
                              [--stages color,framing,motion] [--cache DIR] [--separate]

Generates (once, cached outside the repository, by default ``~/.cache/amberlite/bench``) a
2-hour 640x360 25 fps film of ~2,000 shots (random scenes of 0.8-6 s with cuts, dissolves,
fades, flashes, moving shapes and camera pans), runs it through a fresh store: ingest ->
shots -> shot features (shot_embedding + dedup, match_color, match_framing, match_motion,
computed together over one decode of each batch of shots; ``--separate``: one after the
other, each with its own decode) -> top pairs per type, and prints wall time, CPU time, the
cores kept busy (CPU / wall, and the load-proof thread demand, :class:`Demand`) and peak
memory (RSS of the process, sampled) per stage, with frames/s and shots/s. The same
stages on a 10-minute 1920x1080 sample project the per-hour cost at 1080p. ``--scaling``
runs shorter 360p films of the same generator to check that no stage grows faster than the
film's length (each stage's seconds per minute of film should be flat) -- the pair stage
grows with the pairs, n^2.

The peer, in the same run: one pure decode of the file (PyAV, all frames, decoder threads,
no conversion), the floor any stage that looks at every frame pays.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np

from amberlite.media.synth import Scene, render

FPS = 25
_GEN_VERSION = 1  # bump when the generator changes (invalidates the cache)
MATCH_STAGES = ("color", "framing", "motion")


def cache_dir(given: str | None = None) -> Path:
    """Where generated films live: ``--cache``, ``$AMBERLITE_BENCH_CACHE`` or ~/.cache."""
    base = given or os.environ.get("AMBERLITE_BENCH_CACHE")
    return Path(base) if base else Path.home() / ".cache" / "amberlite" / "bench"


def film_scenes(minutes: float, seed: int) -> list[Scene]:
    """Scenes filling ``minutes``: mostly 2-6 s, one in five 0.8-2.4 s; ~30% enter by a
    dissolve or a fade; some hold flashes, fast shapes, pans."""
    rng = np.random.default_rng(seed)
    total = int(minutes * 60 * FPS)
    out: list[Scene] = []
    count = 0
    while count < total:
        frames = int(rng.integers(20, 60) if rng.random() < 0.2 else rng.integers(50, 150))
        frames = min(frames, max(1, total - count))
        i = len(out)
        transition, length = "cut", 0
        if i > 0 and rng.random() < 0.3:
            transition = "fade" if rng.random() < 0.4 else "dissolve"
            length = min(frames, int(rng.integers(10, 31)))
        flashes: tuple[int, ...] = ()
        if rng.random() < 0.1 and frames > length + 30:
            at = int(rng.integers(length + 8, frames - 10))
            flashes = (at,)
        fast = rng.random() < 0.15
        out.append(
            Scene(
                frames=frames,
                background=tuple(int(c) for c in rng.integers(10, 246, 3)),
                shape=("disc", "rect", "none")[i % 3],
                shape_color=tuple(int(c) for c in rng.integers(0, 256, 3)),
                position=(float(rng.uniform(0.2, 0.8)), float(rng.uniform(0.2, 0.8))),
                radius=float(rng.uniform(0.1, 0.3)),
                motion=tuple(float(v) for v in rng.normal(0, 1.2 if fast else 0.2, 2)),
                pan=(float(rng.normal(0, 6 if fast else 1.5)), float(rng.normal(0, 0.5))),
                transition_in=transition,
                transition_frames=length,
                flashes=flashes,
                seed=int(rng.integers(1 << 30)),
            )
        )
        count += frames
    return out


def film(minutes: float, size: tuple[int, int], seed: int = 7, cache: Path | None = None) -> Path:
    """The generated film of ``minutes`` at ``size`` (rendered once, then reused)."""
    folder = cache or cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"film_v{_GEN_VERSION}_{minutes:g}min_{size[1]}p_s{seed}"
    path = folder / f"{stem}.mp4"
    if path.exists():
        return path
    scenes = film_scenes(minutes, seed)
    t = time.perf_counter()
    print(f"rendering {path.name}: {len(scenes)} scenes, {minutes:g} min ...", flush=True)
    tmp = path.with_suffix(".tmp.mp4")
    render(tmp, scenes, *size, fps=FPS, preset="ultrafast", crf=23, seed=seed)
    tmp.replace(path)
    meta = {"scenes": len(scenes), "frames": sum(s.frames for s in scenes)}
    path.with_suffix(".json").write_text(json.dumps(meta))
    print(f"  rendered in {time.perf_counter() - t:.0f} s", flush=True)
    return path


# --------------------------------------------------------------------------- measuring


class PeakRSS:
    """Peak resident memory of this process during a ``with`` block, sampled every 50 ms
    (``ru_maxrss`` only ever grows, so it cannot give a per-stage peak)."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()

    @staticmethod
    def now() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, self.now())

    def __enter__(self) -> PeakRSS:
        self.peak = self.now()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.now())


class Demand:
    """How many of this process's threads wanted a CPU during a ``with`` block, on average:
    per thread, CPU time plus time spent runnable in the run queue (``/proc/self/task/*/
    schedstat``, sampled every 50 ms), summed, over the wall time. Load-proof where "CPU s /
    wall s" is not: a stage whose demand is 2 or more keeps both cores of a quiet 2-core
    machine busy; below 1 it leaves one idle (threads waiting for the GIL, a lock or I/O do
    not count)."""

    def __init__(self) -> None:
        self.first: dict[str, tuple[int, int]] = {}
        self.last: dict[str, tuple[int, int]] = {}
        self._stop = threading.Event()
        self.value = 0.0

    @staticmethod
    def read() -> dict[str, tuple[int, int]]:
        out = {}
        for tid in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{tid}/schedstat") as f:
                    on_cpu, waiting, _ = f.read().split()
                out[tid] = (int(on_cpu), int(waiting))
            except (OSError, ValueError):  # a thread that just ended
                continue
        return out

    def _take(self) -> None:
        for tid, v in self.read().items():
            self.first.setdefault(tid, v)
            self.last[tid] = v

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self._take()

    def __enter__(self) -> Demand:
        self._take()
        self._t = time.perf_counter()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._take()
        wall = time.perf_counter() - self._t
        ns = sum(sum(self.last[t]) - sum(self.first[t]) for t in self.last)
        self.value = ns / 1e9 / max(wall, 1e-9)


def cpu_seconds() -> float:
    """CPU time (user + system) of this process and its waited-for children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def timed(fn: Callable[[], object]) -> tuple[float, float, int, object]:
    """(wall seconds, CPU seconds, peak RSS bytes, result) of ``fn()``; its thread demand
    (:class:`Demand`) goes to :data:`LAST_DEMAND`."""
    global LAST_DEMAND
    with PeakRSS() as mem, Demand() as demand:
        t, c = time.perf_counter(), cpu_seconds()
        out = fn()
        seconds, cpu = time.perf_counter() - t, cpu_seconds() - c
    LAST_DEMAND = demand.value
    return seconds, cpu, mem.peak, out


LAST_DEMAND = 0.0


def pure_decode(path: Path) -> int:
    """Decode every frame with PyAV (decoder threads, no conversion): the floor."""
    n = 0
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        stream.thread_type = "AUTO"
        for _ in c.decode(stream):
            n += 1
    return n


def run_film(
    path: Path, workdir: Path, stages: tuple[str, ...], top: int = 10, separate: bool = False
) -> list[tuple]:
    """Every stage of match cutting on ``path`` in a fresh store: rows of (stage, wall s,
    CPU s, peak RSS bytes, count, unit). The shot features (``shot_embedding``, ``dedup``
    and one embedding per match type) are one stage, computed together over one decode
    (``matchcut.prepare`` of every type); ``separate``: one stage per feature, each
    materialized alone with its own decode (the way before one-decode)."""
    import amberlite
    from amberlite.matchcut import MATCH_TYPES, prepare, top_pairs

    rows: list[tuple] = []
    store_dir = workdir / f"store_{path.stem}"
    shutil.rmtree(store_dir, ignore_errors=True)
    store = amberlite.open(store_dir)
    sec, cpu, peak, report = timed(lambda: store.ingest([path], compute=False))
    alias = report.assets[0]["alias"]
    frames = report.assets[0]["frame_count"]
    rows.append(("ingest", sec, cpu, peak, frames, "frames", LAST_DEMAND))
    sec, cpu, peak, _ = timed(lambda: store.materialize("shots", assets=[alias], progress=False))
    shots = store.entities("shot").height
    rows.append(("shots", sec, cpu, peak, frames, "frames", LAST_DEMAND))
    if separate:  # one feature after the other, each with its own decode (as before)
        sec, cpu, peak, _ = timed(lambda: store.materialize("dedup", [alias], progress=False))
        rows.append(("embedding+dedup", sec, cpu, peak, shots, "shots", LAST_DEMAND))
        for kind in stages:
            name = MATCH_TYPES[kind][0]
            sec, cpu, peak, _ = timed(lambda n=name: store.materialize(n, [alias], progress=False))
            rows.append((kind, sec, cpu, peak, shots, "shots", LAST_DEMAND))
    else:  # every shot feature over one decode per batch of shots
        sec, cpu, peak, _ = timed(lambda: prepare(store, [alias], stages, progress=False))
        rows.append(("shot features", sec, cpu, peak, shots, "shots", LAST_DEMAND))
    for kind in stages:
        sec, cpu, peak, _ = timed(lambda k=kind: top_pairs(store, [alias], k, top=top))
        rows.append((f"top pairs {kind}", sec, cpu, peak, shots, "shots", LAST_DEMAND))
    sec, cpu, peak, n = timed(lambda: pure_decode(path))
    rows.append(("(peer) pure decode", sec, cpu, peak, n, "frames", LAST_DEMAND))
    return rows


def print_rows(title: str, rows: list[tuple], minutes: float) -> None:
    print(f"\n{title}")
    print(
        f"{'stage':<22} {'wall s':>8} {'CPU s':>8} {'cores':>6} {'demand':>7} {'peak GB':>8} "
        f"{'per wall s':>12} {'wall s/min':>10}"
    )
    total = cpu_total = 0.0
    for stage, sec, cpu, peak, count, unit, demand in rows:
        if not stage.startswith("("):
            total, cpu_total = total + sec, cpu_total + cpu
        rate = f"{count / sec:,.0f} {unit}" if sec > 0 else "-"
        print(
            f"{stage:<22} {sec:>8.1f} {cpu:>8.1f} {cpu / max(sec, 1e-9):>6.2f} {demand:>7.2f} "
            f"{peak / 2**30:>8.2f} {rate:>12} {sec / minutes:>10.2f}"
        )
    peak_all = max(r[3] for r in rows)
    print(
        f"{'end to end':<22} {total:>8.1f} {cpu_total:>8.1f} {cpu_total / max(total, 1e-9):>6.2f} "
        f"{'':>7} {peak_all / 2**30:>8.2f}"
    )
    print(
        "cores: CPU s / wall s (the cores a stage kept busy; meaningful on a quiet machine); "
        "demand: threads wanting a CPU on average, running or queued (load-proof: >= 2 keeps "
        "both cores busy)"
    )


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min) {five:.2f} (5 min) on {os.cpu_count()} CPUs"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=120)
    ap.add_argument("--hd-minutes", type=float, default=10)
    ap.add_argument("--scaling", default="", help="comma-separated minutes, e.g. 10,20,30")
    ap.add_argument("--stages", default=",".join(MATCH_STAGES))
    ap.add_argument("--cache", default=None)
    ap.add_argument("--render-only", action="store_true")
    ap.add_argument(
        "--separate",
        action="store_true",
        help="materialize the shot features one by one, each with its own decode (the peer "
        "of the one-decode stage)",
    )
    args = ap.parse_args()
    stages = tuple(s for s in args.stages.split(",") if s)
    cache = cache_dir(args.cache)
    scaling = [float(m) for m in args.scaling.split(",") if m]
    jobs = [(m, (640, 360)) for m in scaling]
    if args.minutes:
        jobs.append((args.minutes, (640, 360)))
    if args.hd_minutes:
        jobs.append((args.hd_minutes, (1920, 1080)))
    paths = [(m, size, film(m, size, cache=cache)) for m, size in jobs]
    if args.render_only:
        return
    print(f"\n{load()}; shared machine, other jobs running")
    per_min: dict[str, list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="amberlite-film-") as d:
        for minutes, size, path in paths:
            rows = run_film(path, Path(d), stages, separate=args.separate)
            title = f"{path.name}: {minutes:g} min at {size[0]}x{size[1]}"
            print_rows(title, rows, minutes)
            print(load())
            if size[1] == 1080:
                wall = sum(r[1] for r in rows if not r[0].startswith("("))
                cpu = sum(r[2] for r in rows if not r[0].startswith("("))
                print(
                    f"projected per hour of 1080p: {wall * 60 / minutes / 60:.1f} min wall "
                    f"(this load), {cpu * 60 / minutes / 60:.1f} CPU-min"
                )
            else:
                for r in rows:
                    per_min.setdefault(r[0], []).append((minutes, r[2]))  # CPU s: load-proof
    if len({m for m, _ in next(iter(per_min.values()), [])}) > 1:
        print("\nscaling (360p): CPU seconds per minute of film, per stage")
        lengths = sorted({m for m, _ in next(iter(per_min.values()))})
        print(f"{'stage':<22} " + " ".join(f"{m:>8g}m" for m in lengths) + f" {'exponent':>9}")
        for stage, pts in per_min.items():
            pts = sorted(pts)
            x = np.log([m for m, _ in pts])
            y = np.log([max(s, 1e-3) for _, s in pts])
            slope = float(np.polyfit(x, y, 1)[0])
            vals = " ".join(f"{s / m:>9.2f}" for m, s in pts)
            print(f"{stage:<22} {vals} {slope:>9.2f}")
        print("exponent: log-log slope of CPU seconds vs film length (1 = linear in length)")


if __name__ == "__main__":
    main()
