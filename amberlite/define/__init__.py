"""Declaring features: decorators, definition-file loading and code fingerprints."""

from amberlite.define.decorators import FeatureSpec, feature, segmenter
from amberlite.define.loader import load_definitions

__all__ = ["FeatureSpec", "feature", "segmenter", "load_definitions"]
