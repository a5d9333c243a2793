//! The crate's one error type and the mapping from OS and SQLite errors onto it.

use std::io;
use std::path::{Path, PathBuf};

/// Everything that can go wrong in the store. Each variant names the path involved.
///
/// A damaged blob is not an error: it is a miss (the entry is evicted and the event
/// counted). A corrupt index database found at open is not an error either: it is moved
/// aside and a fresh one started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O error not covered by a more specific variant.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The SQLite index failed.
    #[error("{}: index database error: {source}", path.display())]
    Index {
        /// The index database.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: rusqlite::Error,
    },
    /// The index was written by a newer jitcache; it is never downgraded.
    #[error(
        "{}: index schema version {found} is newer than version {supported} that this build understands; refusing to touch it",
        path.display()
    )]
    NewerFormat {
        /// The index database.
        path: PathBuf,
        /// The schema version found on disk.
        found: i64,
        /// The newest schema version this build knows.
        supported: i64,
    },
    /// The index database became corrupt while the store was open (corruption found at
    /// open is repaired by starting a fresh index instead).
    #[error("{}: index database is corrupt; reopen the store to start a fresh index", path.display())]
    CorruptIndex {
        /// The index database.
        path: PathBuf,
    },
    /// The cache directory is world-writable or owned by another user. The cache holds
    /// code that will be executed, so such a directory is refused.
    #[error("{}: refusing to use the cache directory: {reason} (the cache holds code that will be executed)", path.display())]
    InsecureDirectory {
        /// The directory refused.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The file system is read-only or the write was not permitted. Nothing stored was
    /// damaged.
    #[error("{}: cannot write: read-only file system or permission denied", path.display())]
    ReadOnly {
        /// The file or directory that could not be written.
        path: PathBuf,
    },
    /// The disk (or quota) is full. Nothing stored was damaged.
    #[error("{}: cannot write: no space left on device", path.display())]
    DiskFull {
        /// The file or directory that could not be written.
        path: PathBuf,
    },
    /// Another process held a lock of the cache (the gc lock, or the index's write lock)
    /// for longer than the operation may wait ([`StoreConfig::write_timeout`],
    /// [`StoreConfig::busy_timeout`]). Nothing was written; the operation can be tried
    /// again.
    ///
    /// [`StoreConfig::write_timeout`]: crate::StoreConfig::write_timeout
    /// [`StoreConfig::busy_timeout`]: crate::StoreConfig::busy_timeout
    #[error("{}: gave up after {waited_ms} ms waiting for {what} held by another process", path.display())]
    Busy {
        /// The lock file or database waited for.
        path: PathBuf,
        /// What was waited for ("the gc lock", "the index's write lock", ...).
        what: &'static str,
        /// How long the operation waited, in milliseconds.
        waited_ms: u64,
    },
    /// The cache directory is on a network file system (NFS, CIFS/SMB, AFS, Ceph, 9p,
    /// Lustre, GFS2, ...), where the index's shared memory and file locks do not hold
    /// across machines; the store refuses it rather than risk a corrupt index or a hung
    /// lock. Put the cache on a local disk (each machine its own), and share compiled
    /// code between machines with the remote tier.
    #[error("{}: refusing to use a cache directory on a network file system ({fs}): its file locks and shared memory do not hold across machines; use a local directory", path.display())]
    NetworkFilesystem {
        /// The cache root refused.
        path: PathBuf,
        /// The file system found (`nfs`, `cifs`, `smb2`, `ceph`, ...).
        fs: String,
    },
    /// A key given as text is not 64 hexadecimal digits.
    #[error("invalid key {text:?}: expected 64 hexadecimal digits")]
    InvalidKey {
        /// The text that failed to parse.
        text: String,
    },
}

/// Maps an error from a read-side operation.
pub(crate) fn io_err(path: &Path, source: io::Error) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Maps an error from a write-side operation: a full disk and a read-only file system
/// become their own variants.
pub(crate) fn write_err(path: &Path, source: io::Error) -> Error {
    match source.raw_os_error() {
        Some(libc::ENOSPC | libc::EDQUOT) => Error::DiskFull {
            path: path.to_path_buf(),
        },
        Some(libc::EROFS | libc::EACCES | libc::EPERM) => Error::ReadOnly {
            path: path.to_path_buf(),
        },
        _ => io_err(path, source),
    }
}

/// Maps a SQLite error on the index at `path`.
pub(crate) fn sql_err(path: &Path, source: rusqlite::Error) -> Error {
    use rusqlite::ErrorCode;
    let path = path.to_path_buf();
    match source.sqlite_error_code() {
        Some(ErrorCode::DiskFull) => Error::DiskFull { path },
        Some(ErrorCode::ReadOnly) => Error::ReadOnly { path },
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => Error::CorruptIndex { path },
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => Error::Busy {
            path,
            what: "the index's write lock",
            waited_ms: 0,
        },
        _ => Error::Index { path, source },
    }
}

/// True when `err` is [`Error::Busy`].
pub(crate) fn is_busy(err: &Error) -> bool {
    matches!(err, Error::Busy { .. })
}

/// True when `err` (from SQLite) means the database file is not a usable database.
pub(crate) fn is_corrupt(err: &rusqlite::Error) -> bool {
    matches!(
        err.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
    )
}
