"""The layers of docs/architecture.md hold: imports point one way, and there is no cycle.

The import graph is built from the source with ``ast``: module-level imports, imports inside
functions, and imports under ``if TYPE_CHECKING:`` all count. A module may import modules of
its own layer or of layers below it (earlier in the list); any import of a higher layer, any
module no layer claims, and any cycle fails the test with the offending edges.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "architecture.md"
PACKAGES = {"amberlite": ROOT / "amberlite", "amberlite.grammar": ROOT / "grammar"}


def declared_layers() -> list[tuple[str, list[str]]]:
    """``[(layer, [module prefixes])]`` from the ```layers block of docs/architecture.md."""
    text = DOC.read_text()
    block = re.search(r"```layers\n(.*?)```", text, re.S)
    assert block, f"{DOC} has no ```layers block"
    layers = []
    for line in block.group(1).splitlines():
        if line.strip():
            name, _, mods = line.partition(":")
            layers.append((name.strip(), mods.split()))
    return layers


def modules() -> dict[str, Path]:
    """Every module of the package: dotted name -> file."""
    out = {}
    for pkg, base in PACKAGES.items():
        for path in base.rglob("*.py"):
            rel = path.relative_to(base).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            out[".".join([pkg, *parts])] = path
    return out


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The package modules ``name`` imports (anywhere in the file)."""
    tree = ast.parse(path.read_text(), str(path))
    is_pkg = path.name == "__init__.py"
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                pkg = name.split(".") if is_pkg else name.split(".")[:-1]
                pkg = pkg[: len(pkg) - (node.level - 1)]
                base = ".".join(pkg + ([base] if base else []))
            # `from a.b import c` imports module a.b.c when it is one, else a.b
            targets = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names
            ]
        else:
            continue
        for t in targets:
            while t and t not in known:  # a name inside a module: the module
                t = t.rpartition(".")[0]
            if t and t != name:
                out.add(t)
    return out


def layer_of(module: str, layers: list[tuple[str, list[str]]]) -> int | None:
    best = None
    for i, (_, prefixes) in enumerate(layers):
        for p in prefixes:
            # a dotted prefix names a package and its modules; the root names itself only
            if module == p or ("." in p and module.startswith(p + ".")):
                if best is None or len(p) > best[1]:
                    best = (i, len(p))
    return None if best is None else best[0]


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {m: imports(m, p, known) for m, p in mods.items()}


def test_every_module_belongs_to_a_layer():
    layers = declared_layers()
    orphans = sorted(m for m in modules() if layer_of(m, layers) is None)
    assert not orphans, f"modules in no layer of {DOC.name}: {orphans}"


def test_imports_point_down_the_layers():
    layers = declared_layers()
    bad = []
    for src, targets in sorted(graph().items()):
        ls = layer_of(src, layers)
        for dst in sorted(targets):
            ld = layer_of(dst, layers)
            if ls is not None and ld is not None and ld > ls:
                bad.append(f"{src} ({layers[ls][0]}) -> {dst} ({layers[ld][0]})")
    assert not bad, "imports against the declared layers:\n" + "\n".join(bad)


def test_no_import_cycles():
    g = graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    cycles = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in g[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_the_checker_sees_function_local_and_type_checking_imports(tmp_path):
    src = tmp_path / "m.py"
    src.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from amberlite.store import Store\n"
        "def f():\n    from amberlite.query import run\n"
        "from amberlite.plan import logical as L\n"
    )
    known = {"amberlite.store", "amberlite.query", "amberlite.plan", "amberlite.plan.logical"}
    got = imports("amberlite.core.m", src, known)
    assert got == {"amberlite.store", "amberlite.query", "amberlite.plan.logical"}
