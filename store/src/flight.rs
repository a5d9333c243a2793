//! Single flight: when several threads or processes miss the same key at once, one
//! compiles and the others wait for its result.
//!
//! The lock is a `flock` on one of 4096 stripe files under `v1/flight/`, chosen by the
//! key's first three hex digits, so the directory never grows with the number of keys.
//! Two keys that share a stripe wait for each other, which costs some parallelism in a
//! cold start of many processes but never correctness: a waiter that gets the lock looks
//! the key up again and compiles only if it is still missing.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::Key;
use crate::error::{Error, io_err};
use crate::layout::create_private_dir;
use crate::lock::{LockFile, LockGuard};
use crate::store::Store;

/// The right to compile a key, held until dropped (or the process dies).
#[derive(Debug)]
pub struct CompileLock {
    _guard: LockGuard,
}

/// Longest sleep between two attempts to take a compile lock.
const MAX_POLL: Duration = Duration::from_millis(20);

impl Store {
    /// Waits up to `timeout` for the compile lock of `key`.
    ///
    /// `Ok(Some(lock))`: this caller compiles; it should look the key up once more first,
    /// since the previous holder may have just stored it. `Ok(None)`: the wait timed out,
    /// or the store is read-only; the caller compiles without the lock.
    pub fn lock_compile(&self, key: &Key, timeout: Duration) -> Result<Option<CompileLock>, Error> {
        if !self.writable {
            return Ok(None);
        }
        let dir = self.layout.dir.join("flight");
        if !dir.is_dir() {
            create_private_dir(&dir).map_err(|e| io_err(&dir, e))?;
        }
        let hex = key.to_string();
        let file = LockFile::new(&stripe_path(dir, &hex));
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_micros(500);
        loop {
            if let Some(guard) = file.try_exclusive()? {
                return Ok(Some(CompileLock { _guard: guard }));
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            std::thread::sleep(pause.min(deadline - now));
            pause = (pause * 2).min(MAX_POLL);
        }
    }
}

fn stripe_path(dir: PathBuf, key_hex: &str) -> PathBuf {
    dir.join(format!("{}.lock", &key_hex[..3]))
}
