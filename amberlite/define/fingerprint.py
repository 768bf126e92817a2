"""Content identity of feature code: what `apply` compares to classify a change.

A fingerprint is a sha256 over the function's own source (as an AST dump, so comments and
formatting do not count, decorators excluded), its declaration (entity, output type, params,
decode settings, produced entity type) and the fingerprints of its inputs. Helper functions it
calls are not part of it: bump the version when you change them.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import json
import textwrap
from collections.abc import Callable, Iterable, Mapping
from typing import Any


def code_digest(fn: Callable[..., Any]) -> str:
    """sha256 of the function's AST with decorators and docstring removed."""
    try:
        source = textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError):
        return hashlib.sha256(fn.__code__.co_code).hexdigest()
    tree = ast.parse(source)
    node = tree.body[0]
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        node.decorator_list = []
        body = node.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            if isinstance(body[0].value.value, str) and len(body) > 1:
                node.body = body[1:]
    return hashlib.sha256(ast.dump(node).encode()).hexdigest()


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace; tuples become lists."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def params_key(params: Mapping[str, Any]) -> str:
    """A short, stable key for a parameter assignment (part of every memo key)."""
    return hashlib.sha256(canonical_json(dict(params)).encode()).hexdigest()[:16]


def fingerprint(code: str, declaration: Mapping[str, Any], inputs: Iterable[str]) -> str:
    """Combine code digest, declaration and input fingerprints into one sha256 hex."""
    h = hashlib.sha256()
    h.update(code.encode())
    h.update(canonical_json(dict(declaration)).encode())
    for fp in sorted(inputs):
        h.update(fp.encode())
    return h.hexdigest()
