"""The catalog schema: one file (schema.sql), versioned, and older catalogs upgraded in place.

``tests/data/store_v1.tar.gz`` is a store written by schema-version-1 code: one asset aliased
``film1`` whose media file is not in the archive, a definition file ``defs.py`` (a
``brightness`` shot feature), stored values of ``shots``, ``brightness`` and
``shot_embedding``, an HNSW replica of ``shot_embedding`` and a ``triggers`` table.
"""

from __future__ import annotations

import logging
import tarfile
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

import amberlite
from amberlite.catalog import MIGRATIONS, SCHEMA_VERSION, Catalog, schema_statements
from amberlite.errors import StoreError

V1_ARCHIVE = Path(__file__).parent / "data" / "store_v1.tar.gz"
LAZY_IN_V1 = ("trigger_seq", "triggers", "replicas", "replica_labels")


def unpack_v1(tmp_path: Path) -> Path:
    with tarfile.open(V1_ARCHIVE) as tar:
        tar.extractall(tmp_path, filter="data")
    return tmp_path / "store"


def catalog_objects(path: Path) -> tuple[set[str], set[str]]:
    """(table names, sequence names) in a catalog file, read without amberlite."""
    con = duckdb.connect(str(path / "catalog.duckdb"), read_only=True)
    try:
        tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        seqs = {
            r[0] for r in con.execute("SELECT sequence_name FROM duckdb_sequences()").fetchall()
        }
    finally:
        con.close()
    return tables, seqs


def schema_version(path: Path) -> int:
    con = duckdb.connect(str(path / "catalog.duckdb"), read_only=True)
    try:
        (v,) = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    finally:
        con.close()
    return int(v)


def declared() -> tuple[set[str], set[str]]:
    """(table names, sequence names) declared in schema.sql."""
    stmts = schema_statements()
    return (
        {n for n, (kind, _) in stmts.items() if kind == "table"},
        {n for n, (kind, _) in stmts.items() if kind == "sequence"},
    )


def stored_brightness(root: Path) -> list[float]:
    """The brightness values in the store's Parquet files, in shot index order (read without
    amberlite's query path: the catalog's entities give each shot's index)."""
    con = duckdb.connect(str(root / "catalog.duckdb"), read_only=True)
    try:
        idx = dict(
            con.execute("SELECT entity_id, idx FROM entities WHERE entity_type = 'shot'").fetchall()
        )
        files = [
            r[0]
            for r in con.execute(
                "SELECT path FROM memo_files WHERE feature = 'brightness' AND file_id NOT IN "
                "(SELECT file_id FROM retired_files)"
            ).fetchall()
        ]
    finally:
        con.close()
    values = {}
    for f in files:
        t = pq.read_table(root / f).to_pydict()
        values.update(zip(t["entity_id"], t["value"]))
    return [values[e] for e in sorted(values, key=idx.__getitem__)]


def test_archive_is_schema_version_1(tmp_path):
    """Guards the fixture: the archive must stay a version-1 catalog, or the migration test
    below migrates nothing."""
    root = unpack_v1(tmp_path)
    assert schema_version(root) == 1
    assert SCHEMA_VERSION > 1
    (asset_path,) = (
        duckdb.connect(str(root / "catalog.duckdb"), read_only=True)
        .execute("SELECT path FROM assets WHERE alias = 'film1'")
        .fetchone()
    )
    assert not Path(asset_path).exists(), "the v1 store's media must be absent"


def test_v1_store_is_migrated_and_reads_its_values(tmp_path, caplog):
    root = unpack_v1(tmp_path)
    expected = stored_brightness(root)
    assert len(expected) == 3
    with caplog.at_level(logging.INFO, logger="amberlite.catalog.catalog"):
        store = amberlite.open(root)
    assert schema_version(root) == SCHEMA_VERSION == 3
    assert any("migrating catalog from schema version 1 to 3" in r.message for r in caplog.records)
    tables, seqs = catalog_objects(root)
    assert (tables, seqs) == declared()

    runs_before = store.catalog.query("SELECT count(*) FROM runs")[0][0]
    # its shots are shots@2's (the built-in segmenter is at a newer version now: older
    # versions stay readable, named with USING)
    got = store.query("SELECT index, brightness FROM shots USING shots@2 ORDER BY index")
    assert got["index"].to_list() == [0, 1, 2]
    assert got["brightness"].to_list() == expected
    # read from the stored values: nothing ran (the media is absent, computing would fail)
    assert store.catalog.query("SELECT count(*) FROM runs")[0][0] == runs_before
    assert store.catalog.query("SELECT count(*) FROM failures")[0][0] == 0

    (replica,) = store.replicas.list()
    assert (replica.key.feature, replica.key.version, replica.target) == (
        "shot_embedding",
        1,
        "hnsw",
    )
    status = store.status()
    assert status["assets"] == 1
    assert status["triggers"].height == 0
    assert {r["feature"] for r in store.replicas.status()} == {"shot_embedding@1"}


def test_v1_store_without_lazy_tables_is_migrated(tmp_path):
    """Version 1 created the trigger and replica tables lazily: a v1 catalog that never used
    them lacks them, and the migration creates them."""
    root = unpack_v1(tmp_path)
    con = duckdb.connect(str(root / "catalog.duckdb"))
    con.execute("DROP TABLE replica_labels; DROP TABLE replicas; DROP TABLE triggers")
    con.execute("DROP SEQUENCE trigger_seq")
    con.close()
    tables, seqs = catalog_objects(root)
    assert not set(LAZY_IN_V1) & (tables | seqs)

    store = amberlite.open(root)
    assert schema_version(root) == SCHEMA_VERSION
    assert catalog_objects(root) == declared()
    assert store.replicas.list() == []
    assert store.status()["triggers"].height == 0


def test_migrating_again_is_a_no_op(tmp_path, caplog):
    root = unpack_v1(tmp_path)
    amberlite.open(root)
    con = duckdb.connect(str(root / "catalog.duckdb"), read_only=True)
    snapshot = {t: con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall() for t in declared()[0]}
    con.close()
    with caplog.at_level(logging.INFO, logger="amberlite.catalog.catalog"):
        amberlite.open(root)
    assert not [r for r in caplog.records if "migrating" in r.message]
    assert schema_version(root) == SCHEMA_VERSION
    assert catalog_objects(root) == declared()
    con = duckdb.connect(str(root / "catalog.duckdb"), read_only=True)
    after = {t: con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall() for t in declared()[0]}
    con.close()
    assert after == snapshot


def test_fresh_store_has_exactly_the_schema_file(tmp_path):
    """Every table and sequence a store ends up with is declared in schema.sql: a module that
    creates one of its own makes this fail (the store is used by the features that once
    created their tables lazily: replicas, triggers)."""
    tables, seqs = declared()
    assert {"meta", "assets", "triggers", "replicas", "replica_labels"} <= tables
    assert {"commit_seq", "run_seq", "trigger_seq"} <= seqs

    store = amberlite.open(tmp_path / "s")
    assert schema_version(tmp_path / "s") == SCHEMA_VERSION
    assert catalog_objects(tmp_path / "s") == (tables, seqs)
    store.status()
    store.replicas.list()
    assert catalog_objects(tmp_path / "s") == (tables, seqs)


def test_migrations_cover_every_older_version():
    """One step per version from 1 up to the current one, in order."""
    assert [v for v, _ in MIGRATIONS] == list(range(1, SCHEMA_VERSION))


def test_failed_migration_leaves_version_1(tmp_path, monkeypatch):
    """The migration runs in the opening write transaction: a failing step commits nothing."""
    root = unpack_v1(tmp_path)
    con = duckdb.connect(str(root / "catalog.duckdb"))
    con.execute("DROP TABLE replica_labels; DROP TABLE replicas")
    con.close()

    def broken(con):
        con.execute(schema_statements()["replicas"][1])
        raise RuntimeError("step failed")

    monkeypatch.setattr("amberlite.catalog.catalog.MIGRATIONS", ((1, broken),))
    with pytest.raises(RuntimeError, match="step failed"):
        Catalog(root)
    assert schema_version(root) == 1
    assert "replicas" not in catalog_objects(root)[0]


def test_newer_catalog_is_refused(tmp_path):
    amberlite.open(tmp_path / "s")
    con = duckdb.connect(str(tmp_path / "s" / "catalog.duckdb"))
    con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", [str(SCHEMA_VERSION + 1)])
    con.close()
    with pytest.raises(StoreError, match=f"schema version {SCHEMA_VERSION + 1}.*upgrade"):
        amberlite.open(tmp_path / "s")
