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
    /// timeout, so this polls ([`poll_pause`]). The wait is announced in `waiters`:
    /// once its first try fails, the waiter holds `waiters` shared until it has the lock
    /// or gives up, so a maintenance run between two steps can see that someone waits
    /// ([`LockFile::has_waiters`]) and leave the lock free long enough.
    pub fn shared_until_announced(
        &self,
        deadline: Instant,
        what: &'static str,
        waiters: &LockFile,
    ) -> Result<LockGuard, Error> {
        let mut announced: Option<File> = None;
        self.poll(deadline, what, |file| {
            let tried = file.try_lock_shared();
            if tried.is_err() && announced.is_none() {
                // Fails only while a run checks for waiters: announced at the next try.
                announced = waiters.open().ok().filter(|w| w.try_lock_shared().is_ok());
            }
            tried
        })
    }

    /// Whether a waiter announces itself in this file ([`LockFile::shared_until_announced`]
    /// holds it shared); true when that cannot be told.
    pub fn has_waiters(&self) -> bool {
        !matches!(self.try_exclusive(), Ok(Some(_)))
    }

    /// Waits until `deadline` for an exclusive lock; [`Error::Busy`] naming the lock
    /// file (and `what` it is) when it stays held that long. Polls as
    /// [`LockFile::shared_until_announced`] does.
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
        mut try_lock: impl FnMut(&File) -> Result<(), std::fs::TryLockError>,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_waiter_announces_itself_until_it_has_the_lock() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lock = LockFile::new(&dir.path().join("gc.lock"));
        let waiters = LockFile::new(&dir.path().join("gc.waiters"));
        assert!(!waiters.has_waiters(), "nobody waits yet");
        let held = lock.try_exclusive().expect("lock").expect("free");
        std::thread::scope(|scope| {
            let waiter = scope.spawn(|| {
                let deadline = Instant::now() + Duration::from_secs(10);
                lock.shared_until_announced(deadline, "the gc lock", &waiters)
                    .map(drop)
            });
            let seen = poll_until(Instant::now() + Duration::from_secs(5), || {
                if waiters.has_waiters() {
                    Ok(())
                } else {
                    Err(std::fs::TryLockError::WouldBlock)
                }
            })
            .expect("poll");
            assert!(seen, "the blocked waiter announced itself");
            drop(held);
            waiter
                .join()
                .expect("waiter")
                .expect("the waiter took the lock");
        });
        assert!(
            !waiters.has_waiters(),
            "the announcement ends with the wait"
        );
    }

    #[test]
    fn a_waiter_that_gives_up_stops_announcing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lock = LockFile::new(&dir.path().join("gc.lock"));
        let waiters = LockFile::new(&dir.path().join("gc.waiters"));
        let _held = lock.try_exclusive().expect("lock").expect("free");
        let deadline = Instant::now() + Duration::from_millis(20);
        let err = lock
            .shared_until_announced(deadline, "the gc lock", &waiters)
            .expect_err("held exclusively");
        assert!(matches!(err, Error::Busy { .. }), "{err}");
        assert!(!waiters.has_waiters());
    }
}
