//! Small named values shared by every process that uses a cache directory, for
//! components layered on the store (the remote tier's circuit breaker and counters, the
//! facade's manifest counts).
//!
//! States ([`Store::set_state`]) live in the index's `counters` table, beside the
//! store's own counters, so no schema change is needed. Counters
//! ([`Store::add_counters`]) are added to the small file beside the index
//! (`read_counters.rs`), not in an index transaction: a warm process that only read
//! then ends without writing to the index. [`Store::counter`] sums the two places. A
//! component names its values with its own prefix and a dot (`remote.hits`,
//! `remote.breaker.3f1c...`); names without a dot are the store's own (`hits`,
//! `misses`, ...) and are better left alone.

use std::time::Instant;

use rusqlite::{OptionalExtension, params};

use crate::error::{Error, sql_err};
use crate::store::Store;

impl Store {
    /// The value last set under `name` with [`Store::set_state`]; `None` when nothing
    /// was ever set. (Counters are read with [`Store::counter`].)
    pub fn get_state(&self, name: &str) -> Result<Option<i64>, Error> {
        let index = self.index();
        let mut stmt = index
            .conn
            .prepare_cached("SELECT value FROM counters WHERE name = ?1")
            .map_err(|e| sql_err(&index.path, e))?;
        stmt.query_row([name], |r| r.get(0))
            .optional()
            .map_err(|e| sql_err(&index.path, e))
    }

    /// Sets `name` to `value`, replacing what was there; every process opening the same
    /// cache directory sees it. Fails with [`Error::ReadOnly`] on a read-only cache.
    pub fn set_state(&self, name: &str, value: i64) -> Result<(), Error> {
        let index = self.index();
        index
            .conn
            .prepare_cached(
                "INSERT INTO counters (name, value) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            )
            .and_then(|mut stmt| stmt.execute(params![name, value]))
            .map(drop)
            .map_err(|e| sql_err(&index.path, e))
    }

    /// Adds each `(name, n)` to its persisted counter, all at once under the counters
    /// file's lock, so the counters add up over every process that used the cache. Zero
    /// increments are skipped; names are at most 255 bytes. Waits for another process
    /// at most [`StoreConfig::write_timeout`](crate::StoreConfig::write_timeout), then
    /// fails with [`Error::Busy`]; fails with [`Error::ReadOnly`] on a read-only cache.
    pub fn add_counters(&self, counters: &[(&str, i64)]) -> Result<(), Error> {
        let nonzero: Vec<(&str, i64)> = counters.iter().copied().filter(|c| c.1 != 0).collect();
        if nonzero.is_empty() {
            return Ok(());
        }
        if !self.is_writable() {
            return Err(Error::ReadOnly {
                path: self.layout.dir.clone(),
            });
        }
        self.add_read_counters(&nonzero, Instant::now() + self.config.write_timeout)
    }

    /// The persisted value of the counter `name` (0 when never counted): what was
    /// added with [`Store::add_counters`], and for the store's own counters what its
    /// batches wrote to the index.
    pub fn counter(&self, name: &str) -> Result<u64, Error> {
        let indexed = self.index().counter(name)?;
        let beside = self
            .counters_beside_index()?
            .get(name)
            .copied()
            .unwrap_or(0);
        let beside = u64::try_from(beside).unwrap_or(0);
        Ok(indexed.saturating_add(beside))
    }
}

#[cfg(test)]
mod tests {
    use crate::{Store, StoreConfig};

    #[test]
    fn state_is_replaced_and_counters_add_up_across_opens() {
        let dir = tempfile::tempdir().unwrap();
        let a = Store::open(dir.path(), StoreConfig::default()).unwrap();
        let b = Store::open(dir.path(), StoreConfig::default()).unwrap();
        assert_eq!(a.get_state("test.until").unwrap(), None);
        a.set_state("test.until", 41).unwrap();
        b.set_state("test.until", 42).unwrap();
        assert_eq!(a.get_state("test.until").unwrap(), Some(42));

        a.add_counters(&[("test.hits", 2), ("test.bytes", 0)])
            .unwrap();
        b.add_counters(&[("test.hits", 3)]).unwrap();
        assert_eq!(a.counter("test.hits").unwrap(), 5);
        assert_eq!(b.counter("test.bytes").unwrap(), 0, "zero is skipped");
        // Counters and states are apart: a state of the same name is not a count.
        assert_eq!(b.get_state("test.hits").unwrap(), None);

        // The store's own counters are untouched.
        assert_eq!(a.stats().unwrap().hits, 0);
    }

    /// Adding counters writes nothing to the index: a warm process that only read and
    /// counted leaves the write-ahead log as it was.
    #[test]
    fn adding_counters_leaves_the_index_alone() {
        let dir = tempfile::tempdir().unwrap();
        let wal = dir.path().join("v1/index.sqlite-wal");
        let log = || std::fs::read(&wal).unwrap_or_default();
        {
            let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
            store.set_state("test.state", 1).unwrap();
        }
        let before = log();
        {
            let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
            store
                .add_counters(&[("test.hits", 200), ("test.misses", 1)])
                .unwrap();
        }
        assert!(log() == before, "the write-ahead log changed");
        let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
        assert_eq!(store.counter("test.hits").unwrap(), 200);
        assert_eq!(store.counter("test.misses").unwrap(), 1);
    }

    /// Reading the counters waits for another process's lock on their file with a
    /// bound (`busy_timeout`), then fails with `Busy` naming the file.
    #[test]
    fn a_held_counters_lock_bounds_reading_them() {
        let dir = tempfile::tempdir().unwrap();
        let config = StoreConfig {
            busy_timeout: std::time::Duration::from_millis(30),
            ..StoreConfig::default()
        };
        let store = Store::open(dir.path(), config).unwrap();
        store.add_counters(&[("test.hits", 1)]).unwrap();
        let holder = std::fs::File::open(dir.path().join("v1/read-counters")).unwrap();
        holder.lock().unwrap();
        let started = std::time::Instant::now();
        match store.counter("test.hits") {
            Err(crate::Error::Busy { path, what, .. }) => {
                assert_eq!(what, "the read counters' lock");
                assert!(path.ends_with("read-counters"), "{}", path.display());
            }
            other => panic!("expected Busy, got {other:?}"),
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        drop(holder);
        assert_eq!(store.counter("test.hits").unwrap(), 1);
    }
}
