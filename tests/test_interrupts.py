"""Ctrl-C during a computation: `amberlite materialize` keeps committed values, records the
run as interrupted and exits 130; the REPL cancels the statement and prompts again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pexpect
from test_query_support import DEFS, make_store, spawn_repl

import amberlite

SLOW = (
    DEFS
    + '''

@feature(entity="frame", output=pa.int64(), batch=2, parallel="serial")
def slow(frames):
    """n, slowly (0.1 s a frame)."""
    import time

    time.sleep(0.1 * len(frames))
    return [f.n for f in frames]
'''
)


def slow_store(tmp_path, media_dir):
    store = make_store(tmp_path, media_dir)
    defs = tmp_path / "slow_defs.py"
    defs.write_text(SLOW)
    store.apply(defs)
    return store


def env(tmp_path):
    return {
        **os.environ,
        "HOME": str(tmp_path),
        "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
    }


def wait_for_a_commit(store, proc, timeout: float = 120.0) -> None:
    """Until the first value file of ``slow`` is committed (however loaded the machine)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        if store.catalog.query("SELECT count(*) FROM memo_files WHERE feature = 'slow'")[0][0]:
            return
        time.sleep(0.2)
    raise AssertionError("no commit within the timeout")


def test_ctrl_c_in_materialize_records_an_interrupted_run(tmp_path, media_dir):
    store = slow_store(tmp_path, media_dir)
    proc = subprocess.Popen(
        [sys.executable, "-m", "amberlite.cli", "--store", str(store.root), "materialize", "slow"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env(tmp_path),
    )
    wait_for_a_commit(store, proc)  # start-up, then a commit (every 2 s)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "Aborted!" not in err
    assert "interrupted: " in err and "committed values are kept; run again to finish" in err
    store = amberlite.open(store.root)
    runs = store.catalog.query("SELECT trigger, computed FROM runs WHERE feature = 'slow'")
    assert len(runs) == 1
    assert runs[0][0] == "request (interrupted)"
    computed = runs[0][1]
    assert computed > 0
    assert f"interrupted: {computed} computed, 0 failed" in err
    assert store.catalog.query("SELECT count(*) FROM claims") == [(0,)]
    assert store.resolver.counts(store.registry.get("slow"), None, None)["stored"] == computed
    # status names the run's state, with the trigger as it was asked
    run = store.status()["runs"].row(0, named=True)
    assert (run["state"], run["trigger"], run["computed"]) == ("interrupted", "request", computed)
    shown = subprocess.run(
        [sys.executable, "-m", "amberlite.cli", "--store", str(store.root), "status"],
        capture_output=True,
        text=True,
        env=env(tmp_path),
    ).stdout
    line = next(ln for ln in shown.splitlines() if "slow@1" in ln and "interrupted" in ln)
    assert "request" in line and "(interrupted)" not in line


def test_ctrl_c_drops_the_thread_pools_queued_batches(monkeypatch):
    """A KeyboardInterrupt while threads compute returns after the running batches, without
    running the queued ones (a plain ``with ThreadPoolExecutor`` would run them all)."""
    import pytest

    from amberlite.run import executor as ex

    ran = []

    def fake(spec, params, views, inputs):
        time.sleep(0.3)
        ran.append(views)
        return None

    monkeypatch.setattr(ex, "compute_batch", fake)
    spec = type("S", (), {"parallel": "thread"})()
    tasks = [ex.Task([i], {}) for i in range(40)]

    def on_done(task, result):
        raise KeyboardInterrupt

    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        ex.LocalExecutor(workers=2).map(spec, {}, tasks, on_done)
    assert time.monotonic() - started < 2
    assert len(ran) <= 4


def test_ctrl_c_in_the_repl_cancels_the_statement(tmp_path, media_dir):
    store = slow_store(tmp_path, media_dir)
    child = spawn_repl(store.root, env(tmp_path))
    try:
        child.expect("aql> ")
        child.sendline("SELECT count(slow) AS n FROM frames;")
        time.sleep(5)
        child.sendintr()
        child.expect("cancelled")
        child.expect("aql> ")
        child.sendline("SELECT alias FROM assets WHERE alias = 'film2';")
        child.expect(r"\| film2\s+\|")
        child.expect("aql> ")
        time.sleep(0.5)
        child.sendcontrol("d")
        child.expect(pexpect.EOF)
        assert "Traceback" not in (child.before or "")
    finally:
        child.close()
    assert child.exitstatus == 0
    store = amberlite.open(store.root)
    assert store.catalog.query("SELECT count(*) FROM claims") == [(0,)]
    runs = store.catalog.query("SELECT trigger, computed FROM runs WHERE feature = 'slow'")
    assert runs and all(r[0] == "request (interrupted)" for r in runs)


def test_ctrl_c_during_a_commit_waits_for_the_commit():
    import pytest

    from amberlite.run.resolve import _interrupt_deferred

    finished = []
    # Ctrl-C as a command-line process has it (a library loaded by an earlier test in this
    # worker may have left SIGINT ignored; the deferral then rightly does nothing)
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, [])
        with pytest.raises(KeyboardInterrupt):
            with _interrupt_deferred():
                # delivered to this (the main) thread now: with kill(), a loaded machine
                # could hand the signal to another thread of the process that runs later
                signal.raise_signal(signal.SIGINT)
                time.sleep(0.05)
                finished.append(True)
        assert finished == [True]
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, before)


def test_ctrl_c_in_a_query_that_computes_exits_130_and_keeps_the_commits(tmp_path, media_dir):
    """Every command says what Ctrl-C kept (not click's bare "Aborted!"): here a query."""
    store = slow_store(tmp_path, media_dir)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "amberlite.cli",
            "--store",
            str(store.root),
            "query",
            "SELECT slow FROM frames",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env(tmp_path),
        # an xdist worker may run with SIGINT ignored, which a child would inherit
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    wait_for_a_commit(store, proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "Aborted!" not in err and out == ""
    store = amberlite.open(store.root)
    ((computed,),) = store.catalog.query("SELECT computed FROM runs WHERE feature = 'slow'")
    assert computed > 0
    assert f"interrupted: {computed} computed, 0 failed; committed values are kept" in err
    assert store.resolver.counts(store.registry.get("slow"), None, None)["stored"] == computed
