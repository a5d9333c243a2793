//! The SQLite index: opening it (WAL, busy timeout, durability), the schema and its
//! migrations, replacing a corrupt database, and every query the store runs.
//!
//! The schema version lives in `PRAGMA user_version`. Migrations run in one IMMEDIATE
//! transaction, so two processes opening a fresh cache at once cannot both apply them.
//! A database with a newer version than [`SCHEMA_VERSION`] is refused, never touched.
//!
//! `schema` holds the tables and migrations, `open` opening and recovery,
//! `busy_handler` the wait for another connection's lock, `snapshot` the read snapshots
//! shared by bursts of lookups, `entries` the queries on entries and blobs,
//! `bookkeeping` counters, access times and units.

mod backends;
mod bookkeeping;
mod busy_handler;
mod entries;
mod open;
mod schema;
mod snapshot;

use std::path::PathBuf;

use rusqlite::{Connection, params};

use crate::blob::BlobId;
use crate::entry::UnitState;
use crate::error::{Error, sql_err};
use crate::key::{Key, KeyComponents};

pub(crate) use busy_handler::without_waiting;
pub(crate) use entries::Found;
pub use schema::SCHEMA_VERSION;
pub(crate) use snapshot::Reaper;

/// Persisted counter names.
pub(crate) mod counter {
    pub const HITS: &str = "hits";
    pub const MISSES: &str = "misses";
    pub const PUTS: &str = "puts";
    pub const EVICTIONS: &str = "evictions";
    pub const CORRUPT: &str = "corrupt";
    pub const CORRUPT_INDEX_RECOVERIES: &str = "corrupt_index_recoveries";
    /// Lookups that could not read the index within `StoreConfig::lookup_timeout` (each
    /// was a miss).
    pub const LOOKUP_TIMEOUTS: &str = "lookup_timeouts";
    /// Puts not written because the cache stayed busy past `StoreConfig::write_timeout`.
    pub const PUTS_DROPPED: &str = "puts_dropped";
    /// Puts handed to the background writer.
    pub const WRITES_QUEUED: &str = "writes_queued";
    /// Background puts written.
    pub const WRITES_WRITTEN: &str = "writes_written";
    /// Background puts lost (queued at drop past the drain wait, or not written in time).
    pub const WRITES_DROPPED: &str = "writes_dropped";
    /// Orphan walks of one slice of the blob tree that gc finished; the next gc walks
    /// slice `orphan_walks % SLICES` (`step.rs`).
    pub const ORPHAN_WALKS: &str = "orphan_walks";
    /// Nonzero when the next gc walks the whole blob tree: the index was rebuilt (every
    /// blob file may be an orphan), or a gc step that unindexed blob files may have
    /// died before deleting them (each such step adds 1 in the transaction that
    /// unindexes them and takes it off once they are deleted).
    pub const FULL_ORPHAN_WALK_DUE: &str = "full_orphan_walk_due";
}

/// How much of the database file lookups read through a memory map (SQLite's
/// `mmap_size`): a page of a large index not in SQLite's own cache then costs a page
/// fault the first time, not a `pread` per lookup (a lookup in an index of a million
/// entries: ~1.9 µs more than in a small one with `pread`). Scans turn it off (see
/// [`Index::set_mapped`]). Address space only; pages are read in as touched.
pub(crate) const MMAP_SIZE: i64 = 1 << 30;

/// Largest write-ahead log a closing store leaves behind. The first process to open
/// the index after every other one closed reads the whole log to rebuild its
/// shared-memory index (about 1 ms a MiB here), so a closing store whose log is longer
/// checkpoints it and truncates it.
pub(crate) const LOG_KEEP_MAX: u64 = 256 * 1024;

/// An open index database.
pub(crate) struct Index {
    pub conn: Connection,
    pub path: PathBuf,
    /// When the open read snapshot began (`snapshot.rs`), if one is open.
    snapshot: Option<std::time::Instant>,
    /// When the last single lookup ran (`snapshot.rs`: bursts share snapshots).
    last_single_lookup: Option<std::time::Instant>,
}

impl Index {
    /// Checkpoints and truncates the write-ahead log when it is longer than
    /// [`LOG_KEEP_MAX`], without waiting: when another connection reads or writes, the
    /// log stays (that connection, or SQLite's automatic checkpoint, shrinks it later).
    /// Only an optimisation of the next open, so failures are ignored.
    pub(crate) fn shrink_log(&mut self) {
        self.end_snapshot();
        let mut log = self.path.as_os_str().to_owned();
        log.push("-wal");
        let long = std::fs::metadata(&log).is_ok_and(|m| m.len() > LOG_KEEP_MAX);
        if long {
            busy_handler::without_waiting(|| {
                let _ = self
                    .conn
                    .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
            });
        }
    }

    fn err(&self, e: rusqlite::Error) -> Error {
        sql_err(&self.path, e)
    }

    /// Reads pages through the memory map (the default) or not. A scan of every entry
    /// turns it off for its duration: mapped pages count in the process's resident
    /// memory, and a walk over a large index would map all of it, where SQLite's page
    /// cache stays at its fixed size.
    pub fn set_mapped(&mut self, mapped: bool) -> Result<(), Error> {
        self.end_snapshot();
        let size = if mapped { MMAP_SIZE } else { 0 };
        self.conn
            .pragma_update(None, "mmap_size", size)
            .map_err(|e| self.err(e))
    }

    /// Runs `f` in one IMMEDIATE transaction and commits it. IMMEDIATE takes the write
    /// lock up front, so a busy database is waited for (busy timeout) instead of failing
    /// when a read transaction would have to be upgraded.
    fn write<T>(
        &mut self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<T>,
    ) -> Result<T, Error> {
        self.end_snapshot();
        let Index { conn, path, .. } = self;
        let run = || {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let value = f(&tx)?;
            tx.commit()?;
            Ok(value)
        };
        run().map_err(|e| sql_err(path, e))
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
    /// The stored blob (header + zstd frame) when it is kept in the index.
    pub inline: Option<&'a [u8]>,
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
