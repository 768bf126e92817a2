"""Built-in features, declared like any user feature and recorded in every store."""

from __future__ import annotations

from typing import Any


def builtin_features() -> list[Any]:
    """The FeatureSpecs of the built-in features (imports their code: numpy, OpenCV...)."""
    from amberlite.define.decorators import FeatureSpec
    from amberlite.library import matchcut, segment

    return [s for m in (segment, matchcut) for s in vars(m).values() if isinstance(s, FeatureSpec)]
