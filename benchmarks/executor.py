"""Executors: the same 2,000-entity feature on the local executor and on Ray.

A feature over 2,000 "window" entities of a generated clip does a few milliseconds of numpy
work per entity (BLAS pinned to one thread, so both executors use the 2 cores the same
way). Each run computes a fresh dataset (a new ``salt`` parameter), cold for the memo, with
the Ray cluster already up and its workers warm. Reported: seconds, entities/s and the
ratio to local (target: Ray overhead <= 15%); then the executors' own per-task overhead:
``map`` over no-op tasks of one entity (for Ray: serialize, schedule, run, write the batch
aside, return).

    python -m benchmarks.executor [--entities 2000] [--tasks 400] [--repeat 3]
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy: one BLAS thread per worker
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import argparse  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

from amberlite.run.compute import Task  # noqa: E402
from amberlite.run.executor import LocalExecutor  # noqa: E402
from benchmarks.windows import render_clip, window_store  # noqa: E402

FEATURES = """
@feature(entity="window", output=pa.list_(pa.float32(), 16), params={"salt": 0})
def work(window, salt=0):
    rng = np.random.default_rng(window.start_frame * 7919 + window.end_frame + salt)
    a = rng.standard_normal((96, 96)).astype(np.float32)
    for _ in range(12):
        a = np.tanh(a @ a / 96.0)
    return a[:16, 0]

@feature(entity="asset", output=pa.int64())
def noop(asset):
    return 0
"""


def timed(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--entities", type=int, default=2000)
    ap.add_argument("--tasks", type=int, default=400)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    import ray

    from amberlite.run.ray_executor import RayExecutor

    root = Path(tempfile.mkdtemp(prefix="amberlite-exec-"))
    clip = root / "clip.mp4"
    render_clip(clip, 120, 64, 36)
    store = window_store(root, clip, args.entities, FEATURES)
    store.entities("window")
    cpus = os.cpu_count() or 1
    t = time.perf_counter()
    ray.init(address="local", num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    print(f"ray.init: {time.perf_counter() - t:.1f} s ({cpus} CPUs)")
    executors = {
        "local (threads)": LocalExecutor(cpus),
        "ray (workers write aside)": RayExecutor(),
        "ray (values via driver)": RayExecutor(write_aside=False),
    }
    salt = iter(range(1, 10_000))

    def run(feature: str, exe) -> None:
        stats = store.materialize(
            feature, params={"salt": next(salt)}, executor=exe, progress=False
        )
        assert stats.computed == args.entities and not stats.failed, stats.summary()

    for exe in executors.values():  # warm: workers started, definitions loaded
        run("work", exe)

    print(f"\n| executor ({args.entities} entities, ~{cpus} CPUs) | s | entities/s | vs local |")
    print("|---|---:|---:|---:|")
    base = None
    for label, exe in executors.items():
        secs = timed(lambda exe=exe: run("work", exe), args.repeat)
        base = base or secs
        print(f"| {label} | {secs:.2f} | {args.entities / secs:,.0f} | {secs / base:.2f}x |")

    # Per-task overhead of the executor alone: map() over no-op tasks of one entity, results
    # dropped (the resolver's per-batch catalog commit is the same for every executor).
    spec = store.feature("noop")
    view = store._asset_views(store.assets()["asset_id"].to_list(), spec.decode)[0]
    tasks = [Task([view], {}) for _ in range(args.tasks)]
    print(f"\n| executor.map (no-op, {args.tasks} tasks of 1 entity) | s | ms per task |")
    print("|---|---:|---:|")
    for label, exe in executors.items():
        exe.map(spec, {}, tasks[:20], lambda t, r: None)  # warm
        secs = timed(lambda exe=exe: exe.map(spec, {}, tasks, lambda t, r: None), args.repeat)
        print(f"| {label} | {secs:.2f} | {1000 * secs / args.tasks:.2f} |")
    ray.shutdown()


if __name__ == "__main__":
    main()
