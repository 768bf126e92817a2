"""Executors: where batches are computed. The driver (the resolver) commits every result.

Every executor honours one contract: ``map(spec, params, tasks, on_done)`` computes each task
with :func:`compute_batch` and calls ``on_done(task, result)`` in the calling thread, once per
task, as results arrive. Local is the default; ``amberlite.run.ray_executor`` scales out.
A batch whose forked worker process dies is run once more in a fresh worker; if that worker
dies too, the batch's entities come back as failures ("worker process died ..."), so the run
goes on and records them instead of aborting.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import signal
from typing import Any

import pyarrow as pa

from amberlite.core.entities import asset_id_of
from amberlite.run.compute import BatchResult, Executor, Task, compute_batch, compute_group
from amberlite.run.fork_pool import run_forked


def worker_died(task: Task, exitcode: int) -> BatchResult:
    """The result of a batch whose worker process died (twice): every entity fails."""
    how = f"exit code {exitcode}"
    if exitcode < 0:
        try:
            how += f", {signal.Signals(-exitcode).name}"
        except ValueError:
            pass
    msg = f"worker process died ({how}) while computing this batch (tried twice)"
    ids = [v.id for v in task.views]
    assets = [asset_id_of(v) for v in task.views]
    return BatchResult([], [], pa.array([]), [(i, a, msg) for i, a in zip(ids, assets)])


class LocalExecutor:
    """In-process: threads (default: decoding and numpy release the GIL), forked processes
    for features declared ``parallel="process"``, or serial."""

    name = "local"

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or os.cpu_count() or 1

    def map(self, spec, params, tasks, on_done) -> None:
        if not tasks:
            return
        if spec.parallel == "process":  # forked workers; a worker's death fails its batch
            run_forked(
                lambda task: compute_batch(spec, params, task.views, task.inputs),
                tasks,
                self.workers,
                lambda i, result: on_done(tasks[i], result),
                lambda i, exitcode: on_done(tasks[i], worker_died(tasks[i], exitcode)),
            )
            return
        if spec.parallel == "serial" or self.workers == 1 or len(tasks) == 1:
            for task in tasks:
                on_done(task, compute_batch(spec, params, task.views, task.inputs))
            return
        self._threads(
            [(t, compute_batch, (spec, params, t.views, t.inputs)) for t in tasks], on_done
        )

    def map_group(self, members, groups, on_done) -> None:
        """Several features over the same spans, one decode per batch: ``groups[j]`` holds
        each member's task of batch j (None where a member has nothing in it);
        ``on_done(j, results)`` gets the members' results of batch j, in the calling thread.
        Threads, like :meth:`map` (the resolver groups only thread-parallel features)."""
        if not groups:
            return
        if self.workers == 1 or len(groups) == 1:
            for j, tasks in enumerate(groups):
                on_done(j, compute_group(members, tasks))
            return
        self._threads([(j, compute_group, (members, t)) for j, t in enumerate(groups)], on_done)

    def _threads(self, calls, on_done) -> None:
        """Run each ``(key, fn, args)`` of ``calls`` on the thread pool; ``on_done(key,
        result)`` in the calling thread as each finishes."""
        with cf.ThreadPoolExecutor(self.workers, thread_name_prefix="amberlite") as pool:
            futures = {pool.submit(fn, *args): key for key, fn, args in calls}
            try:
                for fut in cf.as_completed(futures):
                    on_done(futures[fut], fut.result())
            except BaseException:  # Ctrl-C or an error: drop the batches not yet started
                pool.shutdown(wait=True, cancel_futures=True)
                raise


def make_executor(name: str | Executor | None, **options: Any) -> Executor:
    """``"local"`` (default) or ``"ray"``; an Executor instance passes through."""
    if name is None or name == "local":
        return LocalExecutor(**options)
    if not isinstance(name, str):
        return name
    if name == "ray":
        from amberlite.run.ray_executor import RayExecutor

        return RayExecutor(**options)
    from amberlite.errors import ResolveError

    raise ResolveError(f"unknown executor {name!r}", name=name, candidates=["local", "ray"])
