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
use std::time::{Duration, Instant};

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

    /// Waits until `deadline` for a shared lock; [`Error::Busy`] naming the lock file
    /// (and `what` it is) when it stays held exclusively that long. `flock` has no
    /// timeout, so this polls: 50 µs sleeps for the first 5 ms, then 500 µs ones.
    pub fn shared_until(&self, deadline: Instant, what: &'static str) -> Result<LockGuard, Error> {
        self.poll(deadline, what, File::try_lock_shared)
    }

    /// Waits until `deadline` for an exclusive lock; [`Error::Busy`] naming the lock
    /// file (and `what` it is) when it stays held that long. Polls as
    /// [`LockFile::shared_until`] does.
    pub fn exclusive_until(
        &self,
        deadline: Instant,
        what: &'static str,
    ) -> Result<LockGuard, Error> {
        self.poll(deadline, what, File::try_lock)
    }

    /// Opens the lock file and calls `try_lock` on it until it takes the lock or
    /// `deadline` passes ([`Error::Busy`], with how long it waited).
    fn poll(
        &self,
        deadline: Instant,
        what: &'static str,
        try_lock: impl Fn(&File) -> Result<(), std::fs::TryLockError>,
    ) -> Result<LockGuard, Error> {
        let file = self.open()?;
        let started = Instant::now();
        if poll_until(deadline, || try_lock(&file)).map_err(|e| io_err(&self.path, e))? {
            return Ok(LockGuard { _file: file });
        }
        Err(Error::Busy {
            path: self.path.clone(),
            what,
            waited_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        })
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

/// Calls `try_lock` until it takes the lock (`true`) or `deadline` passes (`false`),
/// sleeping [`poll_pause`] between tries: `flock` has no timeout.
pub(crate) fn poll_until(
    deadline: Instant,
    mut try_lock: impl FnMut() -> Result<(), std::fs::TryLockError>,
) -> io::Result<bool> {
    let mut tries = 0u32;
    loop {
        match try_lock() {
            Ok(()) => return Ok(true),
            Err(std::fs::TryLockError::WouldBlock) => {}
            Err(std::fs::TryLockError::Error(e)) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(false);
        }
        std::thread::sleep(poll_pause(tries).min(deadline - now));
        tries = tries.saturating_add(1);
    }
}

/// The sleep before try `tries + 1` of a polled lock: 50 µs for the first 100 tries
/// (5 ms), then 150 µs. A step of gc holds the lock for a few milliseconds, so a waiter
/// polling this often takes it within a fraction of a millisecond of its release, and
/// never sleeps through the gap between two steps (`step::STEP_GAP`, twice the longer
/// pause).
pub(crate) fn poll_pause(tries: u32) -> Duration {
    if tries < 100 {
        Duration::from_micros(50)
    } else {
        Duration::from_micros(150)
    }
}
