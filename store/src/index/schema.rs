//! The index schema and its migrations.

use rusqlite::{Connection, TransactionBehavior};

/// The index schema version this build writes and understands.
pub const SCHEMA_VERSION: i64 = 3;

/// `MIGRATIONS[i]` takes a database from schema version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    r"
CREATE TABLE entries (
    key            BLOB PRIMARY KEY NOT NULL,  -- 32 bytes
    blob           BLOB NOT NULL,              -- 32 bytes: BLAKE3 of the uncompressed bytes
    size           INTEGER NOT NULL,           -- uncompressed length
    stored_size    INTEGER NOT NULL,           -- length of the blob file
    name           TEXT,
    created_ms     INTEGER NOT NULL,
    last_access_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX entries_by_blob ON entries(blob);
CREATE INDEX entries_by_access ON entries(last_access_ms, key);
CREATE TABLE units (
    namespace  TEXT NOT NULL,
    name       TEXT NOT NULL,
    key        BLOB NOT NULL,
    unit       BLOB NOT NULL,
    backend    BLOB NOT NULL,
    flags      BLOB NOT NULL,
    target     BLOB NOT NULL,
    deps       BLOB NOT NULL,
    state      INTEGER NOT NULL,               -- 0 present, 1 evicted, 2 corrupt
    updated_ms INTEGER NOT NULL,
    PRIMARY KEY (namespace, name)
) WITHOUT ROWID;
CREATE INDEX units_by_key ON units(key);
CREATE TABLE counters (
    name  TEXT PRIMARY KEY NOT NULL,
    value INTEGER NOT NULL
) WITHOUT ROWID;
",
    r"
CREATE TABLE inline_blobs (
    blob BLOB PRIMARY KEY NOT NULL,  -- 32 bytes: BLAKE3 of the uncompressed bytes
    data BLOB NOT NULL               -- what a blob file would hold: header + zstd frame
);
",
    r"
CREATE TABLE backends (
    identity      BLOB PRIMARY KEY NOT NULL,  -- 32 bytes: KeyComponents::backend_identity
    name          TEXT NOT NULL,              -- the backend's name, without its version
    first_seen_ms INTEGER NOT NULL,
    last_seen_ms  INTEGER NOT NULL
) WITHOUT ROWID;
ALTER TABLE entries ADD COLUMN backend BLOB;  -- the identity that made it; NULL: unknown
CREATE INDEX entries_by_backend ON entries(backend, key) WHERE backend IS NOT NULL;
",
];

pub(super) enum MigrateError {
    Sql(rusqlite::Error),
    Newer(i64),
}

/// Applies the missing migrations in one IMMEDIATE transaction, re-reading the version
/// inside it (another process may have migrated meanwhile).
pub(super) fn migrate(conn: &mut Connection) -> Result<(), MigrateError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(MigrateError::Sql)?;
    let version: i64 = tx
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(MigrateError::Sql)?;
    if version > SCHEMA_VERSION {
        return Err(MigrateError::Newer(version));
    }
    let start = usize::try_from(version).unwrap_or(0);
    for sql in MIGRATIONS.iter().skip(start) {
        tx.execute_batch(sql).map_err(MigrateError::Sql)?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)
        .map_err(MigrateError::Sql)?;
    tx.commit().map_err(MigrateError::Sql)
}
