"""Catalog tables as a person reads them (polars DataFrames): features, assets, failures.

The Store's ``features()`` / ``assets()`` / ``failures()`` and AQL's SHOW / DESCRIBE read
these, so both show the same columns.
"""

from __future__ import annotations

import polars as pl

from amberlite.catalog.catalog import Catalog

FEATURE_COLUMNS = [
    "name",
    "version",
    "entity",
    "produces",
    "output_type",
    "fingerprint",
    "builtin",
    "description",
    "rows_stored",
]


def features_table(catalog: Catalog) -> pl.DataFrame:
    """name, version, entity, output type, fingerprint, rows stored."""
    rows = catalog.query(
        """SELECT f.name, f.version, f.entity, f.produces, f.output_type,
                  substr(f.fingerprint, 1, 12) AS fingerprint, f.builtin, f.description,
                  coalesce(sum(m.rows), 0)::BIGINT AS rows_stored
           FROM features f LEFT JOIN memo_files m ON m.feature = f.name
             AND m.version = f.version
             AND m.file_id NOT IN (SELECT file_id FROM retired_files)
           GROUP BY ALL ORDER BY f.name, f.version"""
    )
    return pl.DataFrame(rows, schema=FEATURE_COLUMNS, orient="row")


def assets_table(catalog: Catalog) -> pl.DataFrame:
    """Every ingested asset (one row each, by alias)."""
    with catalog.read() as con:
        return con.sql("SELECT * FROM assets ORDER BY alias").pl()


def failures_table(catalog: Catalog, feature: str | None = None) -> pl.DataFrame:
    """Recorded failures: feature, version, entity_id, asset (alias), error, attempts."""
    sql = """SELECT f.feature, f.version, f.entity_id, a.alias AS asset, f.error,
                    f.attempts, f.failed_at FROM failures f
             LEFT JOIN assets a USING (asset_id)"""
    with catalog.read() as con:
        if feature:
            return con.sql(sql + " WHERE f.feature = $n ORDER BY ALL", params={"n": feature}).pl()
        return con.sql(sql + " ORDER BY ALL").pl()


def failure_groups_table(catalog: Catalog, feature: str | None = None) -> pl.DataFrame:
    """Failures grouped by feature@version and message: feature, version, entities (how many
    failed so), error (the full message), example (one entity: the asset's alias, then the
    rest of the entity id), newest first within a feature."""
    sql = """SELECT f.feature, f.version, count(*)::BIGINT AS entities, f.error,
                    min(coalesce(a.alias || substr(f.entity_id, length(f.asset_id) + 1),
                                 f.entity_id)) AS example,
                    max(f.failed_at) AS last_failed_at
             FROM failures f LEFT JOIN assets a USING (asset_id)
             {where} GROUP BY f.feature, f.version, f.error
             ORDER BY f.feature, f.version, entities DESC, f.error"""
    with catalog.read() as con:
        if feature:
            return con.sql(sql.format(where="WHERE f.feature = $n"), params={"n": feature}).pl()
        return con.sql(sql.format(where="")).pl()
