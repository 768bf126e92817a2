"""The DuckDB catalog: assets, entities, features@versions, committed files, failures, runs."""

from amberlite.catalog.catalog import MIGRATIONS, SCHEMA_VERSION, Catalog, schema_statements

__all__ = ["Catalog", "MIGRATIONS", "SCHEMA_VERSION", "schema_statements"]
