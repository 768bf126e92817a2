"""The package works from a built wheel: grammar and connectors ship inside it."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_wheel_ships_grammar_and_connectors(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "dist"),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    wheel = next((tmp_path / "dist").glob("amberlite-*.whl"))
    site = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(site),
            str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    # Dependencies from this environment; amberlite itself only from the wheel (the editable
    # install's finder lives in a .pth file, which PYTHONPATH entries do not run).
    deps = sysconfig.get_paths()["purelib"]
    code = (
        "import importlib.resources as r, amberlite, amberlite.connectors, amberlite.grammar\n"
        f"assert amberlite.__file__.startswith({str(site)!r}), amberlite.__file__\n"
        "assert (r.files('amberlite.grammar') / 'aql.lark').is_file()\n"
        "assert (r.files('amberlite.catalog') / 'schema.sql').is_file()\n"
        "assert (r.files('amberlite.serve') / 'static' / 'app.js').is_file()\n"
        "s = amberlite.open('store')\n"
        "print(sorted(s.registry.names()))\n"
    )
    out = subprocess.run(
        [
            sys.executable,
            "-I",
            "-c",
            f"import sys; sys.path[:0] = [{str(site)!r}, {deps!r}]\n" + code,
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    assert out.returncode == 0, out.stderr
    assert "shots" in out.stdout


def test_every_subpackage_is_declared():
    """A subpackage missing from pyproject's list would be missing from the wheel."""
    import tomllib

    declared = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    found = {
        "amberlite." + ".".join(p.parent.relative_to(ROOT / "amberlite").parts)
        for p in (ROOT / "amberlite").rglob("__init__.py")
        if p.parent != ROOT / "amberlite"
    }
    assert found <= declared, f"add to pyproject.toml packages: {sorted(found - declared)}"
