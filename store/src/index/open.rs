//! Opening the index: connection settings, schema check, and replacing a corrupt
//! database.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags};

use super::schema::{MigrateError, SCHEMA_VERSION, migrate};
use super::{Index, counter};
use crate::config::Durability;
use crate::error::{Error, is_corrupt, sql_err, write_err};
use crate::layout::Layout;
use crate::lock::LockFile;

/// What the open lock is, in a [`Error::Busy`] about it.
const OPEN_LOCK: &str = "the lock of a process creating or replacing the index";

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
        let open_lock = LockFile::new(&layout.open_lock);
        // Creating the database (journal mode, schema) is done by one process at a time:
        // SQLite returns "database is locked" without waiting in parts of that dance.
        let creating = std::fs::metadata(&layout.index).map_or(true, |m| m.len() == 0);
        let mut guard = if writable && creating {
            Some(open_lock.exclusive_until(Instant::now() + busy_timeout, OPEN_LOCK)?)
        } else {
            None
        };
        match attempt() {
            Ok(index) => return Ok(index),
            // An SQLite error outside the lock may be another process replacing a
            // corrupt index under our feet (its files vanish mid-open, or the fresh
            // database is locked without waiting while it is set up): look again under
            // the lock, which that process holds until the fresh index is ready.
            // Anything else is final.
            Err(OpenError::Other(e @ (Error::Index { .. } | Error::Busy { .. })))
                if writable && guard.is_none() =>
            {
                drop(e);
            }
            Err(OpenError::Other(e)) => return Err(e),
            Err(OpenError::Corrupt) if !writable => {
                return Err(Error::CorruptIndex {
                    path: layout.index.clone(),
                });
            }
            Err(OpenError::Corrupt) => {}
        }
        // One process at a time decides and replaces; the others find the fresh index.
        if guard.is_none() {
            guard = Some(open_lock.exclusive_until(Instant::now() + busy_timeout, OPEN_LOCK)?);
            match attempt() {
                Ok(index) => return Ok(index),
                Err(OpenError::Other(e)) => return Err(e),
                Err(OpenError::Corrupt) => {}
            }
        }
        let _guard = guard;
        move_aside(&layout.index, now_ms)?;
        match attempt() {
            Ok(index) => {
                // The old index's blobs are all orphans now: the next gc walks them all.
                index.add_counters(&[
                    (counter::CORRUPT_INDEX_RECOVERIES, 1),
                    (counter::FULL_ORPHAN_WALK_DUE, 1),
                ])?;
                Ok(index)
            }
            Err(OpenError::Other(e)) => Err(e),
            Err(OpenError::Corrupt) => Err(Error::CorruptIndex {
                path: layout.index.clone(),
            }),
        }
    }
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
    let mut conn = match Connection::open_with_flags(path, flags).and_then(|mut conn| {
        // The busy handler first: the probe below may meet another process's lock.
        super::busy_handler::wait_up_to(&mut conn, busy_timeout)?;
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
    super::busy_handler::wait_up_to(&mut conn, busy_timeout).map_err(c)?;
    conn.set_prepared_statement_cache_capacity(32);
    conn.pragma_update(None, "mmap_size", super::MMAP_SIZE)
        .map_err(c)?;
    // Checkpoints run on a thread of their own, never inside a put's commit
    // (`checkpoint.rs`).
    conn.pragma_update(None, "wal_autocheckpoint", 0)
        .map_err(c)?;
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
            Durability::None => "NORMAL",
            Durability::Data => "NORMAL",
            Durability::Full => "FULL",
        };
        conn.pragma_update(None, "synchronous", sync).map_err(c)?;
        // The write-ahead log and its shared-memory index outlive the process: the last
        // connection to close does not checkpoint, so it neither fsyncs nor deletes the
        // two files that the next process would create again (with a directory fsync).
        // A warm start that writes nothing pays none of that. Checkpoints happen on a
        // thread of a store whose put finds the log long (`checkpoint.rs`), and in a
        // store that closes with a log longer than `LOG_KEEP_MAX` (`Index::shrink_log`),
        // which bounds what a later first opener reads to rebuild the log's index.
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)
            .map_err(c)?;
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
        snapshot: None,
        last_single_lookup: None,
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
