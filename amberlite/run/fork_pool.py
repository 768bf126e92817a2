"""Forked worker processes that survive a worker's death: for ``parallel="process"`` features.

``run_forked(fn, tasks, workers, on_done)`` forks ``workers`` processes (they inherit ``fn``
and everything the parent imported, so a feature from a definition file needs no pickling),
sends each a task at a time over its own pipe and calls ``on_done(index, result)`` in the
calling thread as results come back. Because each worker runs one known task, a worker that
dies (``os._exit``, a segfault, the OOM killer) is pinned to that task: the task runs once
more in a freshly forked worker (a transient death recovers), and if its worker dies again
``on_died(index, exitcode)`` is called in place of ``on_done``, while the other tasks go on.
:class:`concurrent.futures.ProcessPoolExecutor` cannot do this: one death breaks the pool
and fails every pending future without saying which task killed it.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection, wait
from typing import Any

ATTEMPTS = 2  # a task whose worker dies runs once more in a fresh worker


def _serve(fn: Callable[[Any], Any], conn: Connection) -> None:
    """A worker's loop: receive (index, task), send (index, result); None ends it."""
    while True:
        msg = conn.recv()
        if msg is None:
            break
        index, task = msg
        conn.send((index, fn(task)))
    conn.close()


class _Worker:
    def __init__(self, ctx: Any, fn: Callable[[Any], Any]) -> None:
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_serve, args=(fn, child), daemon=True)
        self.proc.start()
        child.close()
        self.index: int | None = None  # the task it is running

    def give(self, index: int, task: Any) -> None:
        self.index = index
        try:
            self.conn.send((index, task))
        except OSError:  # it died idle: its sentinel says so, and the task counts a death
            pass

    def stop(self) -> None:
        """End an idle worker; kill a busy one (the caller is giving up on its task)."""
        if self.index is None:
            try:
                self.conn.send(None)
            except OSError:
                pass
            self.proc.join(timeout=5)
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join()
        self.conn.close()


def run_forked(
    fn: Callable[[Any], Any],
    tasks: Sequence[Any],
    workers: int,
    on_done: Callable[[int, Any], None],
    on_died: Callable[[int, int], None],
) -> None:
    """Run ``fn(task)`` for every task in forked processes, at most ``workers`` at a time.

    ``on_done(index, result)`` receives each result; ``on_died(index, exitcode)`` each task
    whose worker died ``ATTEMPTS`` times (exit code: negative for a signal, as in
    :attr:`multiprocessing.Process.exitcode`). A task whose worker died is retried in a new
    worker after the others already queued. Exceptions of ``fn`` are the caller's to catch
    inside ``fn``; one that escapes kills only that worker's task, as a death would."""
    ctx = multiprocessing.get_context("fork")
    queue = list(range(len(tasks)))[::-1]  # pop() takes the next task
    deaths = [0] * len(tasks)
    pool: list[_Worker] = []
    try:
        for _ in range(min(workers, len(tasks))):
            pool.append(_Worker(ctx, fn))
        for w in pool:
            if queue:
                i = queue.pop()
                w.give(i, tasks[i])
        while any(w.index is not None for w in pool):
            busy = [w for w in pool if w.index is not None]
            ready = set(wait([w.conn for w in busy] + [w.proc.sentinel for w in busy]))
            for w in busy:
                if w.conn in ready:
                    try:
                        index, result = w.conn.recv()
                    except (EOFError, OSError):  # died while sending: handled below
                        ready.add(w.proc.sentinel)
                    else:
                        w.index = None
                        on_done(index, result)
                        if queue:
                            i = queue.pop()
                            w.give(i, tasks[i])
                        continue
                if w.proc.sentinel in ready and w.index is not None:
                    index, w.index = w.index, None
                    w.proc.join()
                    code = w.proc.exitcode if w.proc.exitcode is not None else -1
                    w.conn.close()
                    deaths[index] += 1
                    if deaths[index] < ATTEMPTS:
                        queue.insert(0, index)  # after the tasks already queued
                    else:
                        on_died(index, code)
                    pool.remove(w)
                    if queue:
                        fresh = _Worker(ctx, fn)
                        pool.append(fresh)
                        i = queue.pop()
                        fresh.give(i, tasks[i])
    finally:
        for w in pool:
            w.stop()
