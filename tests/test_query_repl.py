"""The AQL shell driven as a real terminal (pexpect): a multi-line query, a table, `.timer on`,
an error without a traceback, and Ctrl-D."""

from __future__ import annotations

import time

import pexpect
from test_query_support import make_store, spawn_repl


def test_repl_session(tmp_path, media_dir):
    store = make_store(tmp_path, media_dir)
    child = spawn_repl(store.root, {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    try:
        child.expect("aql> ")
        child.sendline("SELECT asset, count(*) AS n")
        child.expect(r"\.\.\.> ")
        child.sendline("FROM shots GROUP BY asset;")
        child.expect(r"\| film1\s+\| 3\s+\|")
        child.expect(r"\| film2\s+\| 2\s+\|")
        child.expect("aql> ")
        child.sendline(".timer on")
        child.expect("timer on")
        child.expect("aql> ")
        child.sendline("SELECT alias FROM assets WHERE alias = 'film2';")
        child.expect(r"\| film2\s+\|")
        child.expect(r"time: [0-9.]+ s \(1 rows\)")
        child.expect("aql> ")
        child.sendline("SELECT brightnes FROM shots;")
        child.expect("did you mean 'brightness'")
        child.expect("aql> ")
        time.sleep(0.5)  # let prompt_toolkit enter raw mode before the key arrives
        child.sendcontrol("d")
        child.expect(pexpect.EOF)
        assert "Traceback" not in (child.before or "")
    finally:
        child.close()
    assert child.exitstatus == 0
    history = (store.root / ".aql_history").read_text()
    assert "FROM shots GROUP BY asset;" in history
