//! Advisory file locks (`flock`) between processes and threads.
//!
//! Each acquisition opens the lock file anew, so two locks taken in one process
//! conflict exactly as they would in two processes (`flock` locks belong to the open
//! file, not to the process). Closing the file (dropping the guard, or the process
//! dying, even by SIGKILL) releases the lock.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, io_err};

/// A lock file.
#[derive(Clone, Debug)]
pub(crate) struct LockFile {
    path: PathBuf,
}

/// A held lock; released on drop.
#[derive(Debug)]
pub(crate) struct LockGuard {
    _file: File,
}

impl LockFile {
    pub fn new(path: &Path) -> LockFile {
        LockFile {
            path: path.to_path_buf(),
        }
    }

    fn open(&self) -> Result<File, Error> {
        match OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&self.path)
        {
            Ok(f) => Ok(f),
            // On a read-only file system an existing lock file can still be locked.
            Err(e) if e.raw_os_error() == Some(libc::EROFS) => {
                File::open(&self.path).map_err(|e| io_err(&self.path, e))
            }
            Err(e) => Err(io_err(&self.path, e)),
        }
    }

    /// Waits for a shared lock (held by writers between writing a blob and indexing it).
    pub fn shared(&self) -> Result<LockGuard, Error> {
        let file = self.open()?;
        file.lock_shared().map_err(|e| io_err(&self.path, e))?;
        Ok(LockGuard { _file: file })
    }

    /// Waits for an exclusive lock (gc, verify, clear).
    pub fn exclusive(&self) -> Result<LockGuard, Error> {
        let file = self.open()?;
        file.lock().map_err(|e| io_err(&self.path, e))?;
        Ok(LockGuard { _file: file })
    }

    /// Takes an exclusive lock if nobody holds the lock, without waiting.
    pub fn try_exclusive(&self) -> Result<Option<LockGuard>, Error> {
        let file = self.open()?;
        match file.try_lock() {
            Ok(()) => Ok(Some(LockGuard { _file: file })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                Ok(None)
            }
            Err(std::fs::TryLockError::Error(e)) => Err(io_err(&self.path, e)),
        }
    }
}
