"""amberlite: a declarative feature store for media machine learning."""

from amberlite.define.decorators import feature, segmenter
from amberlite.errors import (
    AmberliteError,
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
    "AqlSyntaxError",
    "ChangeRefused",
    "Decode",
    "DefinitionError",
    "MediaError",
    "ResolveError",
    "Store",
    "feature",
    "open",
    "segmenter",
]
__version__ = "0.1.0"
