"""Start-up of the ``amberlite`` command: help, version and a one-line query import only what
they need (no torch, Ray, OpenCV, hnswlib, prompt_toolkit; no data libraries for help).

Each check runs in a fresh interpreter and looks at ``sys.modules``: no timings.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

CLI_DIR = Path(__file__).resolve().parent.parent / "amberlite" / "cli"
# Never imported by the CLI's start-up, nor by a query.
COMPUTE = ["torch", "ray", "cv2", "hnswlib", "prompt_toolkit"]
# Nor the web stack of `amberlite serve`.
COMPUTE += ["fastapi", "starlette", "uvicorn", "pydantic", "amberlite.serve"]
# Not imported by --help / --version either.
DATA = ["polars", "pyarrow", "duckdb", "av", "numpy", "lark", "PIL", "tqdm"]
HELP_ARGS = [
    ["--help"],
    ["--version"],
    ["query", "--help"],
    ["matchcut", "--help"],
    ["materialize", "--help"],
    ["replicate", "add", "--help"],
    ["repl", "--help"],
    ["watch", "--help"],
    ["serve", "--help"],
]


def fresh(code: str) -> dict:
    """Run ``code`` in a new interpreter; it prints one JSON object as its last line."""
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


INVOKE = """
import io, json, sys
from contextlib import redirect_stdout
from amberlite.cli import main

results = []
for args in {args!r}:
    buf = io.StringIO()
    with redirect_stdout(buf):
        try:
            main(args, prog_name="amberlite")
            code = 0
        except SystemExit as e:
            code = e.code
    results.append([args, code, buf.getvalue()])
watched = {watched!r}
print(json.dumps({{"results": results, "loaded": [m for m in watched if m in sys.modules]}}))
"""


def test_help_and_version_import_nothing_heavy():
    got = fresh(INVOKE.format(args=HELP_ARGS, watched=COMPUTE + DATA))
    for args, code, output in got["results"]:
        assert code == 0, (args, output)
        assert output, args
    assert got["loaded"] == []
    version = got["results"][1][2]
    assert version.strip() == "amberlite, version 0.1.0"
    assert "--version" in got["results"][0][2]
    assert "color, framing, motion" in got["results"][3][2]


def test_bad_option_still_exits_2_without_imports():
    got = fresh(INVOKE.format(args=[["query"], ["nosuchcommand"]], watched=COMPUTE + DATA))
    assert [code for _, code, _ in got["results"]] == [2, 2]
    assert got["loaded"] == []


LAZY = """
import json, sys
import amberlite
cheap = [m for m in sys.modules if m.split(".")[0] in WATCHED]
from amberlite import Decode, feature, segmenter
import amberlite.store as api
import amberlite.errors as errors
same = [
    amberlite.open is api.open,
    amberlite.Store is api.Store,
    all(getattr(amberlite, n) is getattr(errors, n) for n in amberlite.__all__ if n[0].isupper()
        and n not in ("Decode", "Store")),
    callable(feature) and callable(segmenter) and isinstance(Decode, type),
]
try:
    amberlite.no_such_name
    missing = "no error"
except AttributeError as e:
    missing = str(e)
star = {}
exec("from amberlite import *", star)
print(json.dumps({
    "cheap": cheap,
    "same": same,
    "missing": missing,
    "star": sorted(n for n in star if not n.startswith("__")),
    "all": sorted(amberlite.__all__),
}))
"""


def test_import_amberlite_is_lazy_and_public_names_still_work():
    got = fresh(LAZY.replace("WATCHED", repr(set(COMPUTE + DATA))))
    assert got["cheap"] == []
    assert got["same"] == [True, True, True, True]
    assert "no_such_name" in got["missing"]
    assert got["star"] == got["all"] and "open" in got["all"]


def test_help_lists_the_match_types_of_amberlite_matchcut():
    from amberlite.cli.matchcut import MATCH_TYPE_NAMES
    from amberlite.matchcut import MATCH_TYPES

    assert MATCH_TYPE_NAMES == tuple(MATCH_TYPES)


def test_one_line_query_imports_no_compute_library(tmp_path, media_dir):
    import amberlite

    store = amberlite.open(tmp_path / "s")
    store.ingest([media_dir / "clip_a.mp4"])
    store.materialize("shots")
    args = [["--store", str(tmp_path / "s"), "query", "SELECT id FROM shots LIMIT 1"]]
    # a warm query plans from the catalog and prints DuckDB's rows: no Arrow, polars, numpy,
    # PyAV or feature code is loaded, let alone a compute library
    watched = COMPUTE + ["polars", "pyarrow", "numpy", "av", "PIL", "tqdm"]
    watched += ["amberlite.library.segment", "amberlite.library.matchcut"]
    got = fresh(INVOKE.format(args=args, watched=watched))
    [[_, code, output]] = got["results"]
    assert code == 0 and "/0-20" in output, output
    assert got["loaded"] == []


def _module_level_imports(body: list[ast.stmt]) -> list[str]:
    """Modules imported when a module is loaded (not in functions, not under TYPE_CHECKING)."""
    names = []
    for node in body:
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names.append(node.module or "")
        elif isinstance(node, (ast.If, ast.Try, ast.With)):
            if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
                continue
            for field in ("body", "orelse", "finalbody", "handlers"):
                names += _module_level_imports(getattr(node, field, []))
        elif isinstance(node, ast.ExceptHandler):
            names += _module_level_imports(node.body)
    return names


@pytest.mark.parametrize("path", sorted(CLI_DIR.glob("*.py")), ids=lambda p: p.name)
def test_cli_modules_import_only_click_and_the_standard_library_at_start(path):
    allowed_amberlite = {"amberlite", "amberlite.cli", "amberlite.version"}
    for name in _module_level_imports(ast.parse(path.read_text()).body):
        top = name.split(".")[0]
        if top == "amberlite":
            assert name in allowed_amberlite or name.startswith("amberlite.cli."), (path, name)
        else:
            assert top in sys.stdlib_module_names or top in {"click", "__future__"}, (path, name)
    # Imports of amberlite's own modules inside commands: one line each (easy to rewrite).
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("amberlite"):
            assert node.lineno == node.end_lineno, (path, node.lineno)
