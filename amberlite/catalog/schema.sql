-- amberlite catalog, schema version 3. One DuckDB file per store.
-- Every catalog table and sequence is declared here and nowhere else (a new table or column
-- is a new schema version, with a migration in catalog.py's MIGRATIONS).
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);

CREATE TABLE IF NOT EXISTS assets (
    asset_id TEXT PRIMARY KEY,          -- content hash of the file bytes
    alias TEXT UNIQUE NOT NULL,         -- human name (file stem unless given)
    path TEXT NOT NULL,                 -- last known location
    size_bytes BIGINT,
    container TEXT, codec TEXT, width INTEGER, height INTEGER,
    fps_num BIGINT, fps_den BIGINT, duration_s DOUBLE, frame_count BIGINT,
    variable_frame_rate BOOLEAN,
    ingested_at TIMESTAMP
);

CREATE TABLE IF NOT EXISTS ingest_failures (
    path TEXT PRIMARY KEY, error TEXT, failed_at TIMESTAMP
);

CREATE TABLE IF NOT EXISTS entity_types (
    name TEXT PRIMARY KEY, parent TEXT, kind TEXT   -- kind: base | implicit | derived
);

-- Derived entities (shots, user-declared spans), created when a segmenter value commits.
CREATE TABLE IF NOT EXISTS entities (
    entity_type TEXT NOT NULL,
    entity_id TEXT NOT NULL,            -- "<asset_id>/<start_frame>-<end_frame>": identity is content
    asset_id TEXT NOT NULL,
    producer TEXT NOT NULL,             -- "<segmenter>@<version>/<params_key>"
    idx INTEGER NOT NULL,
    start_frame BIGINT, end_frame BIGINT, start_s DOUBLE, end_s DOUBLE,
    PRIMARY KEY (producer, entity_id)
);

CREATE TABLE IF NOT EXISTS definitions (
    sha TEXT PRIMARY KEY, path TEXT, source TEXT, applied_at TIMESTAMP
);

CREATE TABLE IF NOT EXISTS features (
    name TEXT NOT NULL, version INTEGER NOT NULL,
    entity TEXT NOT NULL, produces TEXT,
    fingerprint TEXT NOT NULL, code_digest TEXT NOT NULL,
    output_type TEXT NOT NULL, declaration TEXT NOT NULL,
    definition_sha TEXT,               -- NULL for built-in features
    builtin BOOLEAN DEFAULT FALSE,
    on_ingest BOOLEAN DEFAULT FALSE,
    description TEXT,
    applied_at TIMESTAMP,
    PRIMARY KEY (name, version)
);

CREATE SEQUENCE IF NOT EXISTS commit_seq START 1;

-- Every committed Parquet file; file_id is the commit sequence number (connectors follow it).
CREATE TABLE IF NOT EXISTS memo_files (
    file_id BIGINT PRIMARY KEY,
    feature TEXT NOT NULL, version INTEGER NOT NULL, params_key TEXT NOT NULL,
    params TEXT,
    path TEXT NOT NULL,                -- relative to the store root
    rows BIGINT NOT NULL, bytes BIGINT NOT NULL,
    kind TEXT NOT NULL,                -- 'compute' | 'compact'
    committed_at TIMESTAMP
);

-- Files replaced by compaction (their rows live on in the compacted file).
CREATE TABLE IF NOT EXISTS retired_files (
    file_id BIGINT PRIMARY KEY, replaced_by BIGINT, retired_at TIMESTAMP
);

-- Work in progress: an entity claimed by a live writer is not computed by another.
CREATE TABLE IF NOT EXISTS claims (
    feature TEXT, version INTEGER, params_key TEXT, entity_id TEXT,
    owner TEXT, host TEXT, pid INTEGER, claimed_at TIMESTAMP,
    PRIMARY KEY (feature, version, params_key, entity_id)
);

CREATE TABLE IF NOT EXISTS failures (
    feature TEXT, version INTEGER, params_key TEXT, entity_id TEXT, asset_id TEXT,
    error TEXT, attempts INTEGER, failed_at TIMESTAMP,
    PRIMARY KEY (feature, version, params_key, entity_id)
);

CREATE SEQUENCE IF NOT EXISTS run_seq START 1;

CREATE TABLE IF NOT EXISTS runs (
    run_id BIGINT PRIMARY KEY, feature TEXT, version INTEGER, params_key TEXT,
    executor TEXT, trigger TEXT, started_at TIMESTAMP, finished_at TIMESTAMP,
    requested BIGINT, stored BIGINT, computed BIGINT, failed BIGINT, seconds DOUBLE
);

-- Triggers (amberlite.triggers): watch / backfill records; runs carry '<kind>#<trigger_id>'.
CREATE SEQUENCE IF NOT EXISTS trigger_seq START 1;

CREATE TABLE IF NOT EXISTS triggers (
    trigger_id BIGINT PRIMARY KEY,
    kind TEXT NOT NULL,                -- 'watch' | 'backfill'
    target TEXT NOT NULL,              -- the watched folder, or feature@version
    reason TEXT,                       -- why it ran (files that arrived, versions replaced)
    state TEXT NOT NULL,               -- running | done | failed | interrupted
    host TEXT, pid INTEGER,
    started_at TIMESTAMP, finished_at TIMESTAMP,
    assets BIGINT, computed BIGINT, failed BIGINT
);

-- Replicas (amberlite.connectors): a dataset followed into a target, up to last_file_id.
CREATE TABLE IF NOT EXISTS replicas (
    feature TEXT NOT NULL, version INTEGER NOT NULL, params_key TEXT NOT NULL,
    target TEXT NOT NULL, options TEXT NOT NULL, last_file_id BIGINT NOT NULL,
    created_at TIMESTAMP,
    PRIMARY KEY (feature, version, params_key, target)
);

CREATE TABLE IF NOT EXISTS replica_labels (
    feature TEXT NOT NULL, version INTEGER NOT NULL, params_key TEXT NOT NULL,
    target TEXT NOT NULL, entity_id TEXT NOT NULL, label BIGINT NOT NULL,
    deleted BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (feature, version, params_key, target, entity_id)
);

-- Annotations (amberlite.annotations), version 3. Types and annotators from definition files.
CREATE TABLE IF NOT EXISTS annotation_types (
    name TEXT NOT NULL, version INTEGER NOT NULL, fingerprint TEXT NOT NULL,
    declaration TEXT NOT NULL, definition_sha TEXT, applied_at TIMESTAMP,
    PRIMARY KEY (name, version)
);

CREATE TABLE IF NOT EXISTS annotators (
    name TEXT NOT NULL, version INTEGER NOT NULL, type TEXT NOT NULL, entity TEXT NOT NULL,
    fingerprint TEXT NOT NULL, definition_sha TEXT, applied_at TIMESTAMP,
    PRIMARY KEY (name, version)
);

-- Written by people and applications: the live state of each annotation (soft-deleted rows
-- stay, deleted = TRUE) and every change to it.
CREATE TABLE IF NOT EXISTS annotations (
    id TEXT PRIMARY KEY, type TEXT NOT NULL, type_version INTEGER NOT NULL,
    asset_id TEXT NOT NULL, start_s DOUBLE NOT NULL, end_s DOUBLE NOT NULL,
    box DOUBLE[4], polygon DOUBLE[2][], label TEXT, confidence DOUBLE, text TEXT,
    vector FLOAT[], fields TEXT,       -- user fields as JSON
    author TEXT NOT NULL, created_at TIMESTAMP, updated_at TIMESTAMP,
    deleted BOOLEAN NOT NULL DEFAULT FALSE
);

CREATE TABLE IF NOT EXISTS annotation_history (
    id TEXT NOT NULL, seq INTEGER NOT NULL, author TEXT NOT NULL, changed_at TIMESTAMP NOT NULL,
    action TEXT NOT NULL,              -- add | edit | remove | import
    changes TEXT NOT NULL,             -- JSON: the new record, or {field: [old, new]}
    PRIMARY KEY (id, seq)
);

-- Written by models: one row per committed run of annotator@version over a set of assets
-- (its Parquet file under annotations/); readers take, per asset, the newest run covering it.
CREATE TABLE IF NOT EXISTS annotation_runs (
    run_id BIGINT PRIMARY KEY, annotator TEXT NOT NULL, version INTEGER NOT NULL,
    type TEXT NOT NULL, type_version INTEGER NOT NULL, path TEXT, rows BIGINT NOT NULL,
    assets TEXT[] NOT NULL, started_at TIMESTAMP, committed_at TIMESTAMP
);
