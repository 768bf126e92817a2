"""Long-running work: materializations started over HTTP, run in their own processes.

A job is a file, not server memory: ``<store>/jobs/<id>.json`` holds what to compute and the
worker's pid; the worker (``python -m amberlite.serve.jobs STORE ID``) writes
``<id>.result.json`` when it ends (done, failed or cancelled). Progress is read from the
catalog (values stored / failed over the job's scope), so every server process (and the CLI)
sees the same jobs, and a server restart loses nothing. Cancelling sends SIGINT to the worker:
it stops as ``amberlite materialize`` does on Ctrl-C (committed values kept, claims given
back).

Job ids are generated (hex); an id from a request is checked against that form before it
names a file.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from amberlite.errors import AmberliteError

JOB_ID = re.compile(r"[0-9a-f]{16}")


class JobError(AmberliteError):
    """A job request that cannot be served (unknown id, too many running)."""


def jobs_dir(root: Path) -> Path:
    return Path(root) / "jobs"


def _path(root: Path, job_id: str, suffix: str = ".json") -> Path:
    if not isinstance(job_id, str) or not JOB_ID.fullmatch(job_id):
        raise JobError(f"no job {job_id!r} (a job id is 16 hex digits)")
    return jobs_dir(root) / f"{job_id}{suffix}"


def _write(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def start(
    root: Path,
    feature: str,
    assets: list[str] | None,
    params: dict[str, Any] | None,
    max_running: int,
) -> dict[str, Any]:
    """Start a worker process for a materialization; returns the job record."""
    running = [j for j in list_jobs(root) if j["state"] == "running"]
    if len(running) >= max_running:
        raise JobError(
            f"{len(running)} jobs are running (the most this server starts): wait for one to "
            "end or cancel one"
        )
    job_id = secrets.token_hex(8)
    d = jobs_dir(root)
    d.mkdir(parents=True, exist_ok=True)
    record = {
        "id": job_id,
        "feature": feature,
        "assets": assets,
        "params": params,
        "started_at": time.time(),
        "pid": None,
    }
    _write(_path(root, job_id), record)
    log = open(_path(root, job_id, ".log"), "wb")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(
        [sys.executable, "-m", "amberlite.serve.jobs", str(root), job_id],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    record["pid"] = proc.pid
    _write(_path(root, job_id), record)
    _reap(proc)
    return status(root, job_id)


def _reap(proc: subprocess.Popen) -> None:
    """Wait for the child in a thread, so it does not linger as a zombie."""
    import threading

    threading.Thread(target=proc.wait, daemon=True).start()


def status(root: Path, job_id: str, progress: Any = None) -> dict[str, Any]:
    """A job's record with ``state`` (running | done | failed | cancelled | lost) and the
    worker's result; ``progress(record)`` adds the catalog's counts."""
    path = _path(root, job_id)
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        raise JobError(f"no job {job_id!r}") from None
    from amberlite.run.resolve import pid_alive

    result_path = _path(root, job_id, ".result.json")
    if result_path.is_file():
        record.update(json.loads(result_path.read_text()))
    elif record.get("pid") and pid_alive(record["pid"]):
        record["state"] = "running"
    elif record.get("pid") is None and time.time() - record["started_at"] < 10:
        record["state"] = "running"  # being started
    elif _path(root, job_id, ".cancel").is_file():
        record["state"] = "cancelled"  # stopped before it could write a result
    else:
        record["state"] = "lost"
        record["error"] = "the worker ended without a result (killed?)"
    if progress is not None:
        record["progress"] = progress(record)
    return record


def list_jobs(root: Path, progress: Any = None) -> list[dict[str, Any]]:
    d = jobs_dir(root)
    if not d.is_dir():
        return []
    ids = sorted(p.name[:16] for p in d.glob("*.json") if JOB_ID.fullmatch(p.stem))
    jobs = []
    for job_id in ids:
        try:
            jobs.append(status(root, job_id, progress))
        except (JobError, json.JSONDecodeError):
            continue
    return sorted(jobs, key=lambda j: j["started_at"], reverse=True)


def cancel(root: Path, job_id: str) -> dict[str, Any]:
    """Ask a running worker to stop (SIGINT); returns its status."""
    record = status(root, job_id)
    if record["state"] == "running" and record.get("pid"):
        _path(root, job_id, ".cancel").touch()
        try:
            os.kill(record["pid"], signal.SIGINT)
        except ProcessLookupError:
            pass
        record["cancel_requested"] = True
    return record


def run(root: Path, job_id: str) -> int:
    """The worker: materialize the job's feature, then write its result."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    record = json.loads(_path(root, job_id).read_text())
    result: dict[str, Any] = {"ended_at": None}
    code = 0
    try:
        from amberlite.store import open as open_store

        store = open_store(root, create=False)
        stats = store.materialize(record["feature"], record["assets"], params=record["params"])
        result.update(
            state="done", summary=stats.summary(), computed=stats.computed, failed=stats.failed
        )
    except KeyboardInterrupt as e:
        runs = getattr(e, "runs", [])
        result.update(state="cancelled", computed=sum(s.computed for s in runs))
        code = 130
    except AmberliteError as e:
        result.update(state="failed", error=str(e))
        code = 2
    except Exception as e:  # the worker must always leave a result
        result.update(state="failed", error=f"{type(e).__name__}: {e}")
        code = 1
    result["ended_at"] = time.time()
    _write(_path(root, job_id, ".result.json"), result)
    return code


if __name__ == "__main__":
    try:
        sys.exit(run(Path(sys.argv[1]), sys.argv[2]))
    except KeyboardInterrupt:  # before run() could catch it
        _write(
            _path(Path(sys.argv[1]), sys.argv[2], ".result.json"),
            {"state": "cancelled", "ended_at": time.time()},
        )
        sys.exit(130)
