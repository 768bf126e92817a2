"""The Ray executor: batches run as Ray tasks (or in long-lived Ray actors); the driver commits.

Same contract as :class:`~amberlite.run.executor.LocalExecutor`: ``map(spec, params, tasks,
on_done)`` computes every task with :func:`compute_batch` and calls ``on_done(task, result)``
in the calling thread once per task, as results arrive. Values and failure records are the
same as the local executor's; a task whose worker died more than ``max_retries`` times fails
its entities with a recorded reason instead of stopping the run.

How a feature is scheduled comes from ``FeatureSpec.resources``:

* ``{"gpu": 1}`` or ``{"gpu": 0.25}``: Ray ``num_gpus`` (the worker sees only its GPUs through
  ``CUDA_VISIBLE_DEVICES``; :func:`torch_device` gives ``cuda`` there, ``cpu`` elsewhere).
* ``{"cpu": 2}``: ``num_cpus`` (default 1); ``{"memory": bytes}``; any other key is a custom
  Ray resource.
* a feature that declares ``models`` runs in long-lived actors (one per GPU share with
  ``gpu``, else one per CPU), each loading its models once and taking two batches at a time
  so that decoding overlaps the model; a ``gpu`` request on a cluster without GPUs runs on CPU.
* ``{"actors": N}``: run in ``N`` long-lived actors that each load the definition once and
  serve many batches, kept until ``RayExecutor.close()``. A model loaded through a cached
  function of the definition file (``functools.cache``) is loaded once per actor, not once
  per batch or per materialization.

Shipping code: user features come from definition files exec'd as ``amberlite_defs_<sha>``
modules that workers cannot import, so a worker receives the definition *source* and the file
path, execs it once per process under the same module name, and picks the feature by name
and version. Built-in features are imported normally.

Committing exactly once: workers never touch the catalog. When the store folder is visible to
the workers (one node, or a shared filesystem), a worker writes its batch to
``<store>/tmp/<uuid>.parquet`` itself and returns only the path and ids; the driver then commits
that file through :meth:`MemoStore.commit`. Ray hands the driver one result per task even when
the task was retried after a worker died, and the catalog's claims keep other writers off the
same entities, so each value is committed once; files left by a dead attempt are never
registered and ``Store.compact`` (gc) removes them.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import linecache
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import pyarrow as pa

from amberlite.define.decorators import FeatureSpec
from amberlite.define.loader import load_definitions, module_name_for
from amberlite.errors import AmberliteError, DefinitionError
from amberlite.memo.store import ASSET_ID, ENTITY_ID, VALUE, write_aside_to
from amberlite.run.compute import BatchResult, OnDone, Task, compute_batch

log = logging.getLogger(__name__)
DEFS_PREFIX = module_name_for("")  # "amberlite_defs_"


class ExecutorError(AmberliteError):
    """The Ray cluster cannot be reached or refuses the request."""


def torch_device() -> str:
    """``"cuda"`` when this process sees a GPU (Ray sets ``CUDA_VISIBLE_DEVICES`` for a task
    given ``num_gpus``), else ``"cpu"``: where a feature's torch work should go."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


@dataclass
class AsideResult(BatchResult):
    """A batch a worker already wrote to ``aside`` (a Parquet file under ``<store>/tmp``);
    ``values`` is empty and the resolver commits the file as is."""

    aside: str | None = None


# -- shipping a feature to workers ------------------------------------------------------------
@dataclass(frozen=True)
class SpecRef:
    """How a worker finds a FeatureSpec: by import (built-ins and importable modules), by the
    definition source (``amberlite_defs_*`` modules), or, failing both, the pickled spec."""

    name: str
    version: int
    module: str
    path: str | None = None
    source: str | None = None
    spec: FeatureSpec | None = None

    @classmethod
    def of(cls, spec: FeatureSpec) -> SpecRef:
        if spec.module.startswith(DEFS_PREFIX):
            found = _definition_source(spec.module)
            if found is not None:
                return cls(spec.name, spec.version, spec.module, *found)
        elif spec.module.startswith("amberlite."):
            return cls(spec.name, spec.version, spec.module)
        return cls(spec.name, spec.version, spec.module, spec=spec)

    def load(self) -> FeatureSpec:
        """The spec in this process; a definition source is exec'd once per process."""
        if self.spec is not None:
            return self.spec
        key = (self.module, self.name, self.version)
        if key not in _WORKER_SPECS:
            if self.source is not None:
                specs = load_definitions(self.path or "<definitions>", self.source)
            else:
                module = importlib.import_module(self.module)
                specs = [v for v in vars(module).values() if isinstance(v, FeatureSpec)]
            for s in specs:
                _WORKER_SPECS[(self.module, s.name, s.version)] = s
        if key not in _WORKER_SPECS:
            raise DefinitionError(f"{self.module} declares no {self.name}@{self.version}")
        return _WORKER_SPECS[key]


_WORKER_SPECS: dict[tuple[str, str, int], FeatureSpec] = {}


def _definition_source(module_name: str) -> tuple[str, str] | None:
    """(path, source) of a loaded definition module, from the linecache entry the loader made
    (keyed ``<path>#<sha[:12]>``); None when it cannot be recovered exactly."""
    module = sys.modules.get(module_name)
    path = getattr(module, "__file__", None)
    if path is None:
        return None
    sha16 = module_name[len(DEFS_PREFIX) :]
    entry = linecache.cache.get(f"{path}#{sha16[:12]}")
    if not entry or len(entry) < 3:
        return None
    source = "".join(entry[2])
    if hashlib.sha256(source.encode()).hexdigest()[:16] != sha16:
        return None
    return path, source


# -- what a worker runs -----------------------------------------------------------------------
def _write_aside(aside_dir: str, result: BatchResult) -> str:
    """Write a batch as MemoStore.write_aside does; returns the path."""
    table = pa.table(
        {
            ENTITY_ID: pa.array(result.ok_ids, pa.string()),
            ASSET_ID: pa.array(result.ok_assets, pa.string()),
            VALUE: result.values,
        }
    )
    return str(write_aside_to(aside_dir, table))


def run_batch(
    spec: FeatureSpec, params: Mapping[str, Any], task: Task, aside_dir: str | None
) -> BatchResult:
    """Compute one batch in a worker; write it aside when the store folder is visible."""
    result = compute_batch(spec, params, task.views, task.inputs)
    if aside_dir is None or not result.ok_ids or spec.produces is not None:
        return result  # a segmenter's spans go back to the driver, which makes entities
    if not os.path.isdir(aside_dir):
        return result
    path = _write_aside(aside_dir, result)
    empty = pa.array([], type=spec.output)
    return AsideResult(result.ok_ids, result.ok_assets, empty, result.failures, aside=path)


def _task_fn(ref: SpecRef, params: Mapping[str, Any], task: Task, aside_dir: str | None):
    return run_batch(ref.load(), params, task, aside_dir)


class _FeatureActor:
    """Loads a feature once and serves many batches (model state lives as long as the actor)."""

    def __init__(self, ref: SpecRef) -> None:
        self.spec = ref.load()

    def run(self, params: Mapping[str, Any], task: Task, aside_dir: str | None) -> BatchResult:
        return run_batch(self.spec, params, task, aside_dir)


@functools.cache
def _remote_task():
    import ray

    return ray.remote(_task_fn)


@functools.cache
def _remote_actor():
    import ray

    return ray.remote(_FeatureActor)


# -- scheduling -------------------------------------------------------------------------------
def ray_options(spec: FeatureSpec) -> tuple[dict[str, Any], int]:
    """Ray ``.options(...)`` for a feature's tasks, and its actor count (0: plain tasks)."""
    res = dict(spec.resources)
    for k, v in res.items():
        if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0:
            raise DefinitionError(f"{spec.key}: resources[{k!r}] must be a number >= 0")
    actors = res.pop("actors", 0)
    if actors and (int(actors) != actors or actors < 1):
        raise DefinitionError(f"{spec.key}: resources['actors'] must be a whole number >= 1")
    opts: dict[str, Any] = {"num_cpus": res.pop("cpu", 1), "num_gpus": res.pop("gpu", 0)}
    if "memory" in res:
        opts["memory"] = res.pop("memory")
    if res:
        opts["resources"] = res
    return opts, int(actors)


def _aside_dir(tasks: Sequence[Task]) -> str | None:
    """``<store>/tmp`` of the store the views come from (views carry ``<store>/media``)."""
    for task in tasks:
        for view in task.views:
            asset = getattr(view, "asset", view)
            cache = getattr(asset, "cache_dir", None)
            if cache is not None:
                tmp = Path(cache).parent / "tmp"
                return str(tmp) if tmp.is_dir() else None
    return None


def _check_reachable(address: str | None, timeout_s: float = 5.0) -> None:
    """Fail fast on a ``host:port`` nobody listens on (Ray itself retries for minutes)."""
    if not address or address in ("auto", "local") or "://" in address or ":" not in address:
        return
    import socket

    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            pass
    except (OSError, ValueError) as e:
        raise ExecutorError(f"cannot reach a Ray cluster at {address}: {e}") from None


def _failed(task: Task, spec: FeatureSpec, message: str) -> BatchResult:
    failures = [(v.id, getattr(getattr(v, "asset", v), "id", v.id), message) for v in task.views]
    return BatchResult([], [], pa.array([], type=spec.output), failures)


class RayExecutor:
    """Batches as Ray tasks on a cluster (``address``: ``"auto"``, ``"host:port"``,
    ``"local"`` for a fresh local cluster, None for Ray's default); the driver commits.

    ``write_aside``: workers write Parquet under ``<store>/tmp`` themselves (None: only when the
    cluster is this one machine; True needs the store on a filesystem every node mounts at
    the same path). ``max_retries``: attempts after a worker dies. ``max_in_flight``: tasks
    submitted at once (default 2 per CPU).
    """

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        *,
        workers: int | None = None,
        write_aside: bool | None = None,
        max_retries: int = 3,
        max_in_flight: int | None = None,
        **init_options: Any,
    ) -> None:
        import ray

        if not ray.is_initialized():
            _check_reachable(address)
            init_options.setdefault("include_dashboard", False)
            try:
                ray.init(address=address, **init_options)
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise ExecutorError(f"cannot start or reach a Ray cluster at {address}: {e}") from e
        elif address not in (None, "auto"):
            log.info("Ray is already initialized; ignoring address %r", address)
        self.workers = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        self.write_aside = self._single_node() if write_aside is None else write_aside
        self.max_retries = max_retries
        self.max_in_flight = max_in_flight or 2 * self.workers
        self._pools: dict[tuple[Any, ...], list[Any]] = {}
        self._pool_gpus: dict[tuple[Any, ...], float] = {}  # GPUs each actor of a pool holds

    @staticmethod
    def _single_node() -> bool:
        import ray

        try:
            alive = [n for n in ray.nodes() if n.get("Alive")]
            here = ray.get_runtime_context().get_node_id()
        except Exception:  # noqa: BLE001 - Ray client and friends: do not write aside
            return False
        return len(alive) == 1 and alive[0].get("NodeID") == here

    def map(
        self, spec: FeatureSpec, params: Mapping[str, Any], tasks: Sequence[Task], on_done: OnDone
    ) -> None:
        """Run every task on the cluster; ``on_done`` in this thread as each one finishes."""
        if not tasks:
            return
        import ray

        opts, n_actors = ray_options(spec)
        if opts["num_gpus"] and not ray.cluster_resources().get("GPU"):
            log.warning("%s asks for a GPU; the Ray cluster has none: running on CPU", spec.key)
            opts["num_gpus"] = 0
        if spec.models and not n_actors:  # a model loads once per actor, kept across batches
            n_actors = self._model_actors(opts)
        ref = ray.put(SpecRef.of(spec))
        aside = _aside_dir(tasks) if self.write_aside else None
        window = 1 if spec.parallel == "serial" else self.max_in_flight
        if n_actors:
            actors = self._actors(spec, ref, opts, n_actors)
            load = {i: 0 for i in range(len(actors))}

            def submit(task: Task):
                i = min(load, key=load.__getitem__)  # the least busy actor
                load[i] += 1
                return actors[i].run.remote(params, task, aside), i

            window = min(window, 2 * len(actors))
        else:
            fn = _remote_task().options(**opts, max_retries=self.max_retries)

            def submit(task: Task):
                return fn.remote(ref, params, task, aside), None

        self._drive(spec, tasks, submit, on_done, window, load if n_actors else None)

    def _model_actors(self, opts: dict[str, Any]) -> int:
        """How many actors serve a feature with models: one per GPU share it asks for when
        it asks for GPUs, else one per ``num_cpus`` of the cluster's CPUs."""
        import ray

        res = ray.cluster_resources()
        if opts["num_gpus"]:
            return max(1, int(res.get("GPU", 0) // opts["num_gpus"]))
        return max(1, int(self.workers // max(opts["num_cpus"], 1)))

    def _actors(self, spec: FeatureSpec, ref: Any, opts: dict[str, Any], n: int) -> list[Any]:
        """The feature's actors, made on first use and kept until :meth:`close` (a model
        loads once per actor, not once per materialization). An actor of a feature with
        models takes two calls at once: one batch decodes on the CPU while the other runs
        on the model (amberlite.run.models holds the model's lock only while it runs)."""
        key = (spec.module, spec.key, repr(sorted(opts.items())), n)
        if key not in self._pools and opts.get("num_gpus"):
            self._release_gpus()  # idle actors of another feature must not hold the GPUs
        if key not in self._pools:
            self._pool_gpus[key] = opts.get("num_gpus") or 0
            extra = {"max_concurrency": 2} if spec.models else {}
            self._pools[key] = [
                _remote_actor()
                .options(
                    **opts,
                    **extra,
                    max_restarts=self.max_retries,
                    max_task_retries=self.max_retries,
                )
                .remote(ref)
                for _ in range(n)
            ]
        return self._pools[key]

    def _release_gpus(self) -> None:
        """Stop the kept actors that hold GPUs (another feature needs them now)."""
        import ray

        for key in [k for k in self._pools if self._pool_gpus.get(k)]:
            for actor in self._pools.pop(key):
                ray.kill(actor)

    def close(self) -> None:
        """Stop the actors this executor started (Ray also stops them when the driver exits)."""
        import ray

        for actors in self._pools.values():
            for actor in actors:
                ray.kill(actor)
        self._pools.clear()

    def _drive(self, spec, tasks, submit, on_done, window: int, load) -> None:
        import ray

        todo = iter(tasks)
        pending: dict[Any, tuple[Task, int | None]] = {}
        for task in islice(todo, window):
            obj, slot = submit(task)
            pending[obj] = (task, slot)
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for obj in ready:
                task, slot = pending.pop(obj)
                if load is not None:
                    load[slot] -= 1
                result = self._result(obj, task, spec)
                nxt = next(todo, None)
                if nxt is not None:
                    o, s = submit(nxt)
                    pending[o] = (nxt, s)
                on_done(task, result)

    @staticmethod
    def _result(obj, task: Task, spec: FeatureSpec) -> BatchResult:
        import ray

        try:
            result = ray.get(obj)
        except ray.exceptions.RayError as e:  # the worker died past its retries, or Ray failed
            first = str(e).strip().splitlines()[0] if str(e).strip() else ""
            return _failed(task, spec, f"ray: {type(e).__name__}: {first}"[:2000])
        aside = getattr(result, "aside", None)
        if aside is not None and not os.path.exists(aside):
            return _failed(
                task,
                spec,
                f"ray: batch file {aside} is not visible to the driver; put the store on a "
                "shared filesystem or use RayExecutor(write_aside=False)",
            )
        return result
