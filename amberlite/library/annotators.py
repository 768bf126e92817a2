"""Built-in annotators (see amberlite.define.annotation): filled in below."""

from __future__ import annotations

from amberlite.define.annotation import AnnotatorSpec


def builtin_annotators() -> list[AnnotatorSpec]:
    """The annotators every store has."""
    return []
