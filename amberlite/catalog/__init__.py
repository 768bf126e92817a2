"""The DuckDB catalog: assets, entities, features@versions, committed files, failures, runs."""

from amberlite.catalog.catalog import SCHEMA_VERSION, Catalog

__all__ = ["Catalog", "SCHEMA_VERSION"]
