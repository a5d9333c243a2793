//! The SQLite index: opening it (WAL, busy timeout, durability), the schema and its
//! migrations, replacing a corrupt database, and every query the store runs.
//!
//! The schema version lives in `PRAGMA user_version`. Migrations run in one IMMEDIATE
//! transaction, so two processes opening a fresh cache at once cannot both apply them.
//! A database with a newer version than [`SCHEMA_VERSION`] is refused, never touched.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};

use crate::blob::BlobId;
use crate::error::{Error, is_corrupt, sql_err, write_err};
use crate::key::{Key, KeyComponents};
use crate::layout::Layout;
use crate::lock::LockFile;
use crate::store::{Durability, EntryInfo, UnitRecord, UnitState};

/// The index schema version this build writes and understands.
pub const SCHEMA_VERSION: i64 = 1;

/// `MIGRATIONS[i]` takes a database from schema version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[r"
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
"];

/// Persisted counter names.
pub(crate) mod counter {
    pub const HITS: &str = "hits";
    pub const MISSES: &str = "misses";
    pub const PUTS: &str = "puts";
    pub const EVICTIONS: &str = "evictions";
    pub const CORRUPT: &str = "corrupt";
    pub const CORRUPT_INDEX_RECOVERIES: &str = "corrupt_index_recoveries";
}

/// An open index database.
pub(crate) struct Index {
    pub conn: Connection,
    pub path: PathBuf,
}

/// Why an open attempt failed.
enum OpenError {
    Corrupt,
    Other(Error),
}

impl Index {
    /// Opens (creating and migrating if needed) the index. A database SQLite reports as
    /// corrupt or not a database is moved aside (`index.sqlite.corrupt-<ms>`) and a
    /// fresh one started; the recovery is counted in the fresh one.
    pub fn open(
        layout: &Layout,
        durability: Durability,
        busy_timeout: Duration,
        writable: bool,
        now_ms: i64,
    ) -> Result<Index, Error> {
        let attempt = || open_once(&layout.index, durability, busy_timeout, writable);
        match attempt() {
            Ok(index) => return Ok(index),
            Err(OpenError::Other(e)) => return Err(e),
            Err(OpenError::Corrupt) if !writable => {
                return Err(Error::CorruptIndex {
                    path: layout.index.clone(),
                });
            }
            Err(OpenError::Corrupt) => {}
        }
        // One process at a time decides and replaces; the others find the fresh index.
        let _guard = LockFile::new(&layout.open_lock).exclusive()?;
        match attempt() {
            Ok(index) => return Ok(index),
            Err(OpenError::Other(e)) => return Err(e),
            Err(OpenError::Corrupt) => {}
        }
        move_aside(&layout.index, now_ms)?;
        match attempt() {
            Ok(index) => {
                index.add_counters(&[(counter::CORRUPT_INDEX_RECOVERIES, 1)])?;
                Ok(index)
            }
            Err(OpenError::Other(e)) => Err(e),
            Err(OpenError::Corrupt) => Err(Error::CorruptIndex {
                path: layout.index.clone(),
            }),
        }
    }

    fn err(&self, e: rusqlite::Error) -> Error {
        sql_err(&self.path, e)
    }

    /// Blob and uncompressed length recorded for `key`.
    pub fn lookup(&self, key: &Key) -> Result<Option<(BlobId, u64)>, Error> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT blob, size FROM entries WHERE key = ?1")
            .map_err(|e| self.err(e))?;
        let row = stmt
            .query_row([key.as_bytes().as_slice()], |r| {
                Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?))
            })
            .optional()
            .map_err(|e| self.err(e))?;
        Ok(row.and_then(|(blob, size)| {
            let blob: [u8; 32] = blob.try_into().ok()?;
            Some((BlobId::from_bytes(blob), u64::try_from(size).ok()?))
        }))
    }

    /// Records `key → blob` (replacing any previous entry for the key) and, when given,
    /// the unit's components; one IMMEDIATE transaction.
    pub fn insert(&mut self, row: &NewEntry<'_>) -> Result<(), Error> {
        let path = self.path.clone();
        let err = |e| sql_err(&path, e);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO entries
                     (key, blob, size, stored_size, name, created_ms, last_access_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
                )
                .map_err(err)?;
            stmt.execute(params![
                row.key.as_bytes().as_slice(),
                row.blob.as_bytes().as_slice(),
                to_i64(row.size),
                to_i64(row.stored_size),
                row.name,
                row.now_ms,
            ])
            .map_err(err)?;
            if let Some(c) = row.components {
                let mut stmt = tx
                    .prepare_cached(
                        "INSERT OR REPLACE INTO units
                         (namespace, name, key, unit, backend, flags, target, deps, state, updated_ms)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0, ?9)",
                    )
                    .map_err(err)?;
                stmt.execute(params![
                    c.namespace,
                    c.name,
                    row.key.as_bytes().as_slice(),
                    c.unit.as_slice(),
                    c.backend.as_slice(),
                    c.flags.as_slice(),
                    c.target.as_slice(),
                    c.deps.as_slice(),
                    row.now_ms,
                ])
                .map_err(err)?;
            }
            bump(&tx, counter::PUTS, 1).map_err(err)?;
        }
        tx.commit().map_err(err)
    }

    /// Deletes the entry `key` if it still points at `blob` (a concurrent writer may
    /// have replaced it), marks its unit `state` and bumps `counter_name`. Returns
    /// whether an entry was deleted.
    pub fn evict(
        &mut self,
        key: &Key,
        blob: Option<&BlobId>,
        state: UnitState,
        counter_name: Option<&str>,
    ) -> Result<bool, Error> {
        let path = self.path.clone();
        let err = |e| sql_err(&path, e);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        let n = match blob {
            Some(blob) => tx
                .prepare_cached("DELETE FROM entries WHERE key = ?1 AND blob = ?2")
                .and_then(|mut s| {
                    s.execute(params![
                        key.as_bytes().as_slice(),
                        blob.as_bytes().as_slice()
                    ])
                }),
            None => tx
                .prepare_cached("DELETE FROM entries WHERE key = ?1")
                .and_then(|mut s| s.execute([key.as_bytes().as_slice()])),
        }
        .map_err(err)?;
        if n > 0 {
            set_unit_state(&tx, key, state).map_err(err)?;
            if let Some(name) = counter_name {
                bump(&tx, name, 1).map_err(err)?;
            }
        }
        tx.commit().map_err(err)?;
        Ok(n > 0)
    }

    /// Deletes every entry that points at `blob` (a damaged blob), marking their units
    /// corrupt and counting one corrupt blob. Returns the number of entries deleted.
    pub fn evict_blob(&mut self, blob: &BlobId) -> Result<u64, Error> {
        let path = self.path.clone();
        let err = |e| sql_err(&path, e);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        tx.execute(
            "UPDATE units SET state = ?2 WHERE key IN (SELECT key FROM entries WHERE blob = ?1)",
            params![blob.as_bytes().as_slice(), UnitState::Corrupt.code()],
        )
        .map_err(err)?;
        let n = tx
            .execute(
                "DELETE FROM entries WHERE blob = ?1",
                [blob.as_bytes().as_slice()],
            )
            .map_err(err)?;
        bump(&tx, counter::CORRUPT, 1).map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(n as u64)
    }

    /// Whether any entry points at `blob`.
    pub fn blob_referenced(&self, blob: &BlobId) -> Result<bool, Error> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT 1 FROM entries WHERE blob = ?1 LIMIT 1")
            .map_err(|e| self.err(e))?;
        stmt.exists([blob.as_bytes().as_slice()])
            .map_err(|e| self.err(e))
    }

    /// Applies batched last-access times and counter increments in one transaction.
    pub fn flush(
        &mut self,
        accesses: &mut dyn Iterator<Item = (Key, i64)>,
        counters: &[(&str, i64)],
    ) -> Result<(), Error> {
        let path = self.path.clone();
        let err = |e| sql_err(&path, e);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        {
            let mut stmt = tx
                .prepare_cached(
                    "UPDATE entries SET last_access_ms = ?2
                     WHERE key = ?1 AND last_access_ms < ?2",
                )
                .map_err(err)?;
            for (key, ms) in accesses {
                stmt.execute(params![key.as_bytes().as_slice(), ms])
                    .map_err(err)?;
            }
            for (name, n) in counters {
                if *n != 0 {
                    bump(&tx, name, *n).map_err(err)?;
                }
            }
        }
        tx.commit().map_err(err)
    }

    /// Adds to persisted counters in one transaction.
    pub fn add_counters(&self, counters: &[(&str, i64)]) -> Result<(), Error> {
        for (name, n) in counters {
            bump(&self.conn, name, *n).map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    /// The persisted value of a counter (0 when never counted).
    pub fn counter(&self, name: &str) -> Result<u64, Error> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT value FROM counters WHERE name = ?1")
            .map_err(|e| self.err(e))?;
        let v: Option<i64> = stmt
            .query_row([name], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(e))?;
        Ok(v.map_or(0, to_u64))
    }

    /// (entries, blobs, bytes uncompressed, bytes on disk); blobs counted once however
    /// many entries share them.
    pub fn totals(&self) -> Result<(u64, u64, u64, u64), Error> {
        let entries: i64 = self
            .conn
            .prepare_cached("SELECT COUNT(*) FROM entries")
            .and_then(|mut s| s.query_row([], |r| r.get(0)))
            .map_err(|e| self.err(e))?;
        let (blobs, raw, disk): (i64, i64, i64) = self
            .conn
            .prepare_cached(
                "SELECT COUNT(*), COALESCE(SUM(size), 0), COALESCE(SUM(stored_size), 0)
                 FROM (SELECT MAX(size) AS size, MAX(stored_size) AS stored_size
                       FROM entries GROUP BY blob)",
            )
            .and_then(|mut s| s.query_row([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))))
            .map_err(|e| self.err(e))?;
        Ok((to_u64(entries), to_u64(blobs), to_u64(raw), to_u64(disk)))
    }

    /// Up to `limit` entries with keys greater than `after`, in key order.
    pub fn entries_after(&self, after: Option<&Key>, limit: u32) -> Result<Vec<EntryInfo>, Error> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT key, blob, size, stored_size, name, created_ms, last_access_ms
                 FROM entries WHERE key > ?1 ORDER BY key LIMIT ?2",
            )
            .map_err(|e| self.err(e))?;
        let after = after.map_or(&[][..], |k| k.as_bytes().as_slice());
        let rows = stmt
            .query_map(params![after, limit], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, Option<String>>(4)?,
                    r.get::<_, i64>(5)?,
                    r.get::<_, i64>(6)?,
                ))
            })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (key, blob, size, stored, name, created, access) = row.map_err(|e| self.err(e))?;
            let (Ok(key), Ok(blob)) = (<[u8; 32]>::try_from(key), <[u8; 32]>::try_from(blob))
            else {
                continue;
            };
            out.push(EntryInfo {
                key: Key::from_bytes(key),
                blob: BlobId::from_bytes(blob),
                size: to_u64(size),
                stored_size: to_u64(stored),
                name,
                created: to_u64(created),
                last_access: to_u64(access),
            });
        }
        Ok(out)
    }

    /// Up to `limit` entries in least-recently-used order, after the cursor
    /// `(last_access_ms, key)`: `(key, blob, stored_size, last_access_ms)`.
    pub fn lru_after(
        &self,
        after: Option<(i64, Key)>,
        limit: u32,
    ) -> Result<Vec<(Key, BlobId, u64, i64)>, Error> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT key, blob, stored_size, last_access_ms FROM entries
                 WHERE (last_access_ms, key) > (?1, ?2)
                 ORDER BY last_access_ms, key LIMIT ?3",
            )
            .map_err(|e| self.err(e))?;
        let (ms, key) = after.map_or((i64::MIN, Vec::new()), |(ms, k)| {
            (ms, k.as_bytes().to_vec())
        });
        let rows = stmt
            .query_map(params![ms, key, limit], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (key, blob, stored, access) = row.map_err(|e| self.err(e))?;
            if let (Ok(key), Ok(blob)) = (<[u8; 32]>::try_from(key), <[u8; 32]>::try_from(blob)) {
                out.push((
                    Key::from_bytes(key),
                    BlobId::from_bytes(blob),
                    to_u64(stored),
                    access,
                ));
            }
        }
        Ok(out)
    }

    /// Up to `limit` distinct blobs greater than `after` with their recorded
    /// uncompressed length and the number of entries pointing at them.
    pub fn blobs_after(
        &self,
        after: Option<&BlobId>,
        limit: u32,
    ) -> Result<Vec<(BlobId, u64, u64)>, Error> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT blob, MAX(size), COUNT(*) FROM entries WHERE blob > ?1
                 GROUP BY blob ORDER BY blob LIMIT ?2",
            )
            .map_err(|e| self.err(e))?;
        let after = after.map_or(&[][..], |b| b.as_bytes().as_slice());
        let rows = stmt
            .query_map(params![after, limit], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (blob, size, n) = row.map_err(|e| self.err(e))?;
            if let Ok(blob) = <[u8; 32]>::try_from(blob) {
                out.push((BlobId::from_bytes(blob), to_u64(size), to_u64(n)));
            }
        }
        Ok(out)
    }

    /// Entries pointing at a blob whose id is not 32 bytes (only a damaged index has
    /// them): removed by `verify --repair`.
    pub fn malformed_rows(&self) -> Result<u64, Error> {
        self.conn
            .query_row(
                "SELECT COUNT(*) FROM entries WHERE length(blob) != 32 OR length(key) != 32",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(to_u64)
            .map_err(|e| self.err(e))
    }

    /// Deletes the rows counted by [`Index::malformed_rows`].
    pub fn delete_malformed_rows(&self) -> Result<u64, Error> {
        self.conn
            .execute(
                "DELETE FROM entries WHERE length(blob) != 32 OR length(key) != 32",
                [],
            )
            .map(|n| n as u64)
            .map_err(|e| self.err(e))
    }

    /// `PRAGMA quick_check`: empty when the database is sound, else SQLite's findings
    /// (at most 10).
    pub fn quick_check(&self) -> Result<Vec<String>, Error> {
        let mut stmt = self
            .conn
            .prepare("PRAGMA quick_check(10)")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let line = row.map_err(|e| self.err(e))?;
            if line != "ok" {
                out.push(line);
            }
        }
        Ok(out)
    }

    /// Deletes every entry, marking present units evicted.
    pub fn clear(&mut self) -> Result<u64, Error> {
        let path = self.path.clone();
        let err = |e| sql_err(&path, e);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        tx.execute(
            "UPDATE units SET state = ?1 WHERE state = ?2",
            params![UnitState::Evicted.code(), UnitState::Present.code()],
        )
        .map_err(err)?;
        let n = tx.execute("DELETE FROM entries", []).map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(n as u64)
    }

    /// The last unit recorded under `(namespace, name)`.
    pub fn last_unit(&self, namespace: &str, name: &str) -> Result<Option<UnitRecord>, Error> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT key, unit, backend, flags, target, deps, state FROM units
                 WHERE namespace = ?1 AND name = ?2",
            )
            .map_err(|e| self.err(e))?;
        let row = stmt
            .query_row([namespace, name], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                    r.get::<_, Vec<u8>>(3)?,
                    r.get::<_, Vec<u8>>(4)?,
                    r.get::<_, Vec<u8>>(5)?,
                    r.get::<_, i64>(6)?,
                ))
            })
            .optional()
            .map_err(|e| self.err(e))?;
        let Some((key, unit, backend, flags, target, deps, state)) = row else {
            return Ok(None);
        };
        let d = |v: Vec<u8>| <[u8; 32]>::try_from(v).ok();
        let (Some(key), Some(unit), Some(backend), Some(flags), Some(target), Some(deps)) =
            (d(key), d(unit), d(backend), d(flags), d(target), d(deps))
        else {
            return Ok(None);
        };
        Ok(Some(UnitRecord {
            key: Key::from_bytes(key),
            components: KeyComponents {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                unit,
                backend,
                flags,
                target,
                deps,
            },
            state: UnitState::from_code(state),
        }))
    }

    /// Marks the unit recorded for `key` (if any) with `state`.
    pub fn set_unit_state(&self, key: &Key, state: UnitState) -> Result<(), Error> {
        set_unit_state(&self.conn, key, state).map_err(|e| self.err(e))
    }

    /// Deletes one entry unconditionally (used by gc, which holds the gc lock).
    pub fn delete_entry(&self, key: &Key) -> Result<bool, Error> {
        self.conn
            .prepare_cached("DELETE FROM entries WHERE key = ?1")
            .and_then(|mut s| s.execute([key.as_bytes().as_slice()]))
            .map(|n| n > 0)
            .map_err(|e| self.err(e))
    }

    /// Runs `f` in an IMMEDIATE transaction on this index.
    pub fn in_transaction<T>(
        &mut self,
        f: impl FnOnce(&Index) -> Result<T, Error>,
    ) -> Result<T, Error> {
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| sql_err(&self.path, e))?;
        match f(self) {
            Ok(v) => {
                if let Err(e) = self.conn.execute_batch("COMMIT") {
                    let _ = self.conn.execute_batch("ROLLBACK");
                    return Err(sql_err(&self.path, e));
                }
                Ok(v)
            }
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }
}

/// One row to insert.
pub(crate) struct NewEntry<'a> {
    pub key: &'a Key,
    pub blob: &'a BlobId,
    pub size: u64,
    pub stored_size: u64,
    pub name: Option<&'a str>,
    pub components: Option<&'a KeyComponents>,
    pub now_ms: i64,
}

fn bump(conn: &Connection, name: &str, n: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO counters (name, value) VALUES (?1, ?2)
         ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
    )?
    .execute(params![name, n])?;
    Ok(())
}

fn set_unit_state(conn: &Connection, key: &Key, state: UnitState) -> rusqlite::Result<()> {
    conn.prepare_cached("UPDATE units SET state = ?2 WHERE key = ?1 AND state != ?2")?
        .execute(params![key.as_bytes().as_slice(), state.code()])?;
    Ok(())
}

pub(crate) fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub(crate) fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn classify(path: &Path, e: rusqlite::Error) -> OpenError {
    if is_corrupt(&e) {
        OpenError::Corrupt
    } else {
        OpenError::Other(sql_err(path, e))
    }
}

fn open_once(
    path: &Path,
    durability: Durability,
    busy_timeout: Duration,
    writable: bool,
) -> Result<Index, OpenError> {
    let c = |e| classify(path, e);
    let flags = if writable {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let mut conn = match Connection::open_with_flags(path, flags).and_then(|conn| {
        conn.query_row("SELECT COUNT(*) FROM sqlite_master", [], |_| Ok(()))?;
        Ok(conn)
    }) {
        Ok(conn) => conn,
        // A WAL database on a read-only file system cannot be opened without its -shm
        // file; nobody can write it there, so open it as immutable.
        Err(e) if !writable && e.sqlite_error_code() == Some(rusqlite::ErrorCode::CannotOpen) => {
            let uri = immutable_uri(path).ok_or_else(|| c(e))?;
            Connection::open_with_flags(uri, flags | OpenFlags::SQLITE_OPEN_URI).map_err(c)?
        }
        Err(e) => return Err(c(e)),
    };
    conn.busy_timeout(busy_timeout).map_err(c)?;
    conn.set_prepared_statement_cache_capacity(32);
    if writable {
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "wal", |r| r.get(0))
            .map_err(c)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(OpenError::Other(Error::Index {
                path: path.to_path_buf(),
                source: rusqlite::Error::InvalidParameterName(format!(
                    "journal_mode stayed {mode}, WAL required"
                )),
            }));
        }
        let sync = match durability {
            Durability::None => "OFF",
            Durability::Data => "NORMAL",
            Durability::Full => "FULL",
        };
        conn.pragma_update(None, "synchronous", sync).map_err(c)?;
    }
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(c)?;
    if version > SCHEMA_VERSION {
        return Err(OpenError::Other(Error::NewerFormat {
            path: path.to_path_buf(),
            found: version,
            supported: SCHEMA_VERSION,
        }));
    }
    if version < SCHEMA_VERSION {
        if !writable {
            return Err(OpenError::Other(Error::ReadOnly {
                path: path.to_path_buf(),
            }));
        }
        migrate(&mut conn).map_err(|e| match e {
            MigrateError::Sql(e) => classify(path, e),
            MigrateError::Newer(found) => OpenError::Other(Error::NewerFormat {
                path: path.to_path_buf(),
                found,
                supported: SCHEMA_VERSION,
            }),
        })?;
    }
    let tables: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'
             AND name IN ('entries', 'units', 'counters')",
            [],
            |r| r.get(0),
        )
        .map_err(c)?;
    if tables != 3 {
        return Err(OpenError::Corrupt);
    }
    Ok(Index {
        conn,
        path: path.to_path_buf(),
    })
}

/// `file:<path>?immutable=1`, percent-encoding what a URI path cannot hold; None for a
/// path that is not UTF-8.
fn immutable_uri(path: &Path) -> Option<String> {
    let text = path.to_str()?;
    let mut uri = String::from("file:");
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"/._-~".contains(&b) {
            uri.push(char::from(b));
        } else {
            uri.push_str(&format!("%{b:02X}"));
        }
    }
    uri.push_str("?immutable=1");
    Some(uri)
}

enum MigrateError {
    Sql(rusqlite::Error),
    Newer(i64),
}

/// Applies the missing migrations in one IMMEDIATE transaction, re-reading the version
/// inside it (another process may have migrated meanwhile).
fn migrate(conn: &mut Connection) -> Result<(), MigrateError> {
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

/// Renames a corrupt database (and its WAL) to `<name>.corrupt-<ms>`; drops its
/// shared-memory file. The main file goes last: once it is gone another opener may
/// create a fresh database (with its own WAL and -shm) at the same path at any moment,
/// and those must not be touched.
fn move_aside(index: &Path, now_ms: i64) -> Result<(), Error> {
    let with = |tail: &str| {
        let mut name = index.as_os_str().to_owned();
        name.push(tail);
        PathBuf::from(name)
    };
    crate::layout::remove_file_if_exists(&with("-shm"))?;
    for ext in ["-wal", ""] {
        let from = with(ext);
        let to = with(&format!(".corrupt-{now_ms}{ext}"));
        match std::fs::rename(&from, &to) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(write_err(&from, e)),
        }
    }
    Ok(())
}
