"""Loading definition files: a Python module in, the FeatureSpecs it declares out."""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import linecache
import sys
from pathlib import Path

from amberlite.define.annotation import AnnotationType, AnnotatorSpec
from amberlite.define.decorators import FeatureSpec
from amberlite.errors import DefinitionError


def module_name_for(source_sha: str) -> str:
    return f"amberlite_defs_{source_sha[:16]}"


def load_definitions(path: str | Path, source: str | None = None) -> list[FeatureSpec]:
    """Execute a definition file and return its features in declaration order.

    ``source``, when given, is executed instead of the file's current text (the catalog keeps
    the source that was applied, so later processes load exactly that). A file that declares
    only annotation types or annotators returns no features.
    """
    module = _load_module(path, source)
    specs = [v for v in module.__dict__.values() if isinstance(v, FeatureSpec)]
    if not specs and not any(isinstance(v, _ANNOTATION) for v in module.__dict__.values()):
        raise DefinitionError(f"{path}: declares no @feature or @segmenter functions")
    seen: dict[str, FeatureSpec] = {}
    for s in specs:
        if s.name in seen:
            raise DefinitionError(f"{path}: feature {s.name!r} declared twice")
        seen[s.name] = s
    return specs


def load_annotation_defs(
    path: str | Path, source: str | None = None
) -> tuple[list[AnnotationType], list[AnnotatorSpec]]:
    """The annotation types and annotators a definition file declares, in order."""
    module = _load_module(path, source)
    values = list(module.__dict__.values())
    types = [v for v in values if isinstance(v, AnnotationType)]
    annotators = [v for v in values if isinstance(v, AnnotatorSpec)]
    for kind, items in (("annotation type", types), ("annotator", annotators)):
        names = [i.name for i in items]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise DefinitionError(f"{path}: {kind} {twice[0]!r} declared twice")
    return types, annotators


def _load_module(path: str | Path, source: str | None):
    path = Path(path)
    if source is None:
        try:
            source = path.read_text()
        except OSError as e:
            raise DefinitionError(f"{path}: cannot read definition file: {e}") from e
    sha = hashlib.sha256(source.encode()).hexdigest()
    name = module_name_for(sha)
    if name in sys.modules:
        module = sys.modules[name]
    else:
        spec = importlib.util.spec_from_loader(name, loader=None, origin=str(path))
        assert spec is not None
        module = importlib.util.module_from_spec(spec)
        module.__file__ = str(path)
        sys.modules[name] = module
        parent = str(path.resolve().parent)
        if parent not in sys.path:
            sys.path.append(parent)
        try:
            # A unique file name per source text, registered in linecache, so that
            # inspect.getsource (code fingerprints) sees the applied text, not today's file.
            filename = f"{path}#{sha[:12]}"
            lines = source.splitlines(keepends=True)
            linecache.cache[filename] = (len(source), None, lines, filename)
            code = compile(source, filename, "exec")
            exec(code, module.__dict__)  # noqa: S102 - executing the user's definition file
        except Exception as e:
            del sys.modules[name]
            raise DefinitionError(f"{path}: error while loading: {type(e).__name__}: {e}") from e
    _check_redefinitions(path, source)
    return module


_ANNOTATION = (AnnotationType, AnnotatorSpec)


def _check_redefinitions(path: Path, source: str) -> None:
    """Refuse two decorated top-level functions of one name: the module keeps only the last,
    so the first would silently disappear."""
    lines: dict[str, int] = {}
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.decorator_list:
            if node.name in lines:
                raise DefinitionError(
                    f"{path}: function {node.name!r} is defined twice (lines {lines[node.name]} "
                    f"and {node.lineno}); the second would silently replace the first: rename "
                    "one (the feature name can be set with name=...)"
                )
            lines[node.name] = node.lineno
