"""The AQL shell without a terminal (`repl -f FILE`, piped stdin): statements run in order,
the first error stops with exit 2 and its line; EXPLAIN prints as plain text; a dot-command
typed inside an open statement is refused, not swallowed into it."""

from __future__ import annotations

import subprocess
import sys
import time

import pexpect
from test_interrupts import env
from test_query_support import make_store, spawn_repl


def repl(store, tmp_path, *args, stdin=""):
    return subprocess.run(
        [sys.executable, "-m", "amberlite.cli", "--store", str(store.root), "repl", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env(tmp_path),
        timeout=120,
    )


def test_repl_script_file_runs_statements_without_a_terminal(tmp_path, media_dir):
    store = make_store(tmp_path, media_dir)
    script = tmp_path / "q.aql"
    script.write_text(
        "SELECT alias FROM assets\n  WHERE alias = 'film2';\n\n.format csv\n"
        "SELECT alias FROM assets WHERE alias = 'film1';\n"
    )
    r = repl(store, tmp_path, "-f", str(script))
    assert r.returncode == 0, r.stderr
    assert "| film2" in r.stdout
    assert "alias\nfilm1" in r.stdout
    assert "not a terminal" not in r.stderr.lower() and "\x1b" not in r.stdout


def test_piped_repl_stops_at_the_first_error_with_its_line(tmp_path, media_dir):
    store = make_store(tmp_path, media_dir)
    r = repl(
        store,
        tmp_path,
        stdin="SELECT alias FROM assets WHERE alias = 'film1';\n\nSELECT brightnes\n"
        "FROM shots;\nSELECT alias FROM assets WHERE alias = 'film2';\n",
    )
    assert r.returncode == 2
    assert "| film1" in r.stdout and "film2" not in r.stdout
    assert "error: line 3:" in r.stderr and "brightness" in r.stderr
    assert "Traceback" not in r.stderr


def test_explain_in_the_repl_prints_plain_text(tmp_path, media_dir):
    store = make_store(tmp_path, media_dir)
    r = repl(store, tmp_path, stdin="EXPLAIN SELECT brightness FROM shots;\n")
    assert r.returncode == 0, r.stderr
    assert "| plan" not in r.stdout and "brightness" in r.stdout
    assert not r.stdout.lstrip().startswith("|")


def test_dot_command_inside_an_open_statement_is_refused(tmp_path, media_dir):
    store = make_store(tmp_path, media_dir)
    child = spawn_repl(store.root, env(tmp_path))
    try:
        child.expect("aql> ")
        child.sendline("SELECT alias FROM assets")
        child.expect(r"\.\.\.> ")
        child.sendline(".timer on")
        child.expect("dot-commands run at the start of a statement")
        child.expect(r"\.\.\.> ")
        child.sendline("WHERE alias = 'film2';")
        child.expect(r"\| film2\s+\|")
        child.expect("aql> ")
        time.sleep(0.5)
        child.sendcontrol("d")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0
