"""amberlite: a declarative feature store for media machine learning.

``import amberlite`` is cheap: the names below are imported on first use (PEP 562), so that
the ``amberlite`` command and definition files load only what they need.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from amberlite.version import __version__ as __version__

if TYPE_CHECKING:
    from amberlite.define.annotation import annotation_type, annotator
    from amberlite.define.decorators import feature, segmenter
    from amberlite.define.model import model
    from amberlite.errors import (
        AmberliteError,
        AnnotationError,
        AqlSyntaxError,
        ChangeRefused,
        DefinitionError,
        MediaError,
        ResolveError,
    )
    from amberlite.media.decode import Decode
    from amberlite.store import Store, open

__all__ = [
    "AmberliteError",
    "AnnotationError",
    "AqlSyntaxError",
    "ChangeRefused",
    "Decode",
    "DefinitionError",
    "MediaError",
    "ResolveError",
    "Store",
    "annotation_type",
    "annotator",
    "feature",
    "model",
    "open",
    "segmenter",
]
_ERRORS = (
    "AmberliteError",
    "AnnotationError",
    "AqlSyntaxError",
    "ChangeRefused",
    "DefinitionError",
    "MediaError",
    "ResolveError",
)


def __getattr__(name: str) -> Any:
    """Import a public name (or a submodule, as ``import amberlite`` used to) on first use."""
    if name == "Store":
        from amberlite.store import Store

        value = Store
    elif name == "open":
        from amberlite.store import open

        value = open
    elif name == "feature":
        from amberlite.define.decorators import feature

        value = feature
    elif name == "segmenter":
        from amberlite.define.decorators import segmenter

        value = segmenter
    elif name in ("annotation_type", "annotator"):
        from amberlite.define import annotation

        value = getattr(annotation, name)
    elif name == "model":
        from amberlite.define.model import model

        value = model
    elif name == "Decode":
        from amberlite.media.decode import Decode

        value = Decode
    elif name in _ERRORS:
        from amberlite import errors

        value = getattr(errors, name)
    elif not name.startswith("__"):
        import importlib

        try:
            return importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"{__name__}.{name}":
                raise
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
