"""Declaring features: decorators (``define.decorators``), definition files (``define.loader``),
code fingerprints, the registry of specs and the code-free :class:`define.info.FeatureInfo`.
"""
