"""Executors: where batches are computed. The driver (the resolver) commits every result.

Every executor honours one contract: ``map(spec, params, tasks, on_done)`` computes each task
with :func:`compute_batch` and calls ``on_done(task, result)`` in the calling thread, once per
task, as results arrive. Local is the default; ``amberlite.run.ray_executor`` scales out.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
from collections.abc import Mapping
from typing import Any

from amberlite.define.decorators import FeatureSpec
from amberlite.run.compute import BatchResult, Executor, Task, compute_batch

# Specs by key for forked workers: a FeatureSpec wraps a function from a definition module,
# which pickle cannot name, but a forked child inherits this table.
_FORK_SPECS: dict[str, FeatureSpec] = {}


def _run_forked(key: str, params: Mapping[str, Any], task: Task) -> BatchResult:
    return compute_batch(_FORK_SPECS[key], params, task.views, task.inputs)


class LocalExecutor:
    """In-process: threads (default: decoding and numpy release the GIL), forked processes
    for features declared ``parallel="process"``, or serial."""

    name = "local"

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or os.cpu_count() or 1

    def map(self, spec, params, tasks, on_done) -> None:
        if not tasks:
            return
        if spec.parallel == "serial" or self.workers == 1 or len(tasks) == 1:
            for task in tasks:
                on_done(task, compute_batch(spec, params, task.views, task.inputs))
            return
        if spec.parallel == "process":
            _FORK_SPECS[spec.key] = spec
            pool: cf.Executor = cf.ProcessPoolExecutor(
                self.workers, mp_context=multiprocessing.get_context("fork")
            )
            submit = lambda t: pool.submit(_run_forked, spec.key, params, t)  # noqa: E731
        else:
            pool = cf.ThreadPoolExecutor(self.workers, thread_name_prefix="amberlite")
            submit = lambda t: pool.submit(  # noqa: E731
                compute_batch, spec, params, t.views, t.inputs
            )
        with pool:
            futures = {submit(t): t for t in tasks}
            for fut in cf.as_completed(futures):
                on_done(futures[fut], fut.result())


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
