"""The amberlite command as a user runs it: exit codes, messages, no tracebacks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run(store: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "amberlite.cli", "--store", str(store), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "200"},
    )


def test_cli_end_to_end(tmp_path, media_dir):
    store = tmp_path / "s"
    r = run(store, "ingest", str(media_dir / "clip_a.mp4"), str(media_dir / "broken.mp4"))
    assert r.returncode == 0, r.stderr
    assert "ingested clip_a" in r.stdout and "failed" in r.stdout
    r = run(store, "apply", str(EXAMPLES / "basic" / "features.py"))
    assert r.returncode == 0 and "mean_color@1: new feature" in r.stdout
    r = run(store, "materialize", "mean_color")
    assert r.returncode == 0 and "1 computed" in r.stdout, r.stderr
    r = run(store, "get", "mean_color", "--format", "csv")
    assert r.returncode == 0 and r.stdout.startswith("id,ref,asset,asset_id,mean_color")
    r = run(store, "status")
    assert r.returncode == 0
    assert "assets   1" in r.stdout and "mean_color" in r.stdout
    assert "ingest failures (1)" in r.stdout and "broken.mp4" in r.stdout


def test_cli_errors_are_messages(tmp_path):
    assert run(tmp_path / "s", "init").returncode == 0
    r = run(tmp_path / "s", "materialize", "mean_colr")
    assert r.returncode == 2
    assert r.stderr.startswith("error: unknown feature 'mean_colr'")
    assert "Traceback" not in r.stderr
    r = run(tmp_path / "s", "apply", str(tmp_path / "missing.py"))
    assert r.returncode == 2 and "cannot read definition file" in r.stderr
