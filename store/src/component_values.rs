//! Small named values shared by every process that uses a cache directory, for
//! components layered on the store (the remote tier's circuit breaker and counters).
//!
//! They live in the index's `counters` table, beside the store's own counters, so no
//! schema change is needed. A component names its values with its own prefix and a dot
//! (`remote.hits`, `remote.breaker.3f1c...`); names without a dot are the store's own
//! (`hits`, `misses`, ...) and are better left alone.

use rusqlite::{OptionalExtension, params};

use crate::error::{Error, sql_err};
use crate::store::Store;

impl Store {
    /// The value last set under `name` with [`Store::set_state`] (or summed with
    /// [`Store::add_counters`]); `None` when nothing was ever recorded.
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

    /// Adds each `(name, n)` to its persisted counter, in one transaction, so the counters
    /// add up over every process that used the cache. Zero increments are skipped.
    pub fn add_counters(&self, counters: &[(&str, i64)]) -> Result<(), Error> {
        let nonzero: Vec<(&str, i64)> = counters.iter().copied().filter(|c| c.1 != 0).collect();
        if nonzero.is_empty() {
            return Ok(());
        }
        self.index()
            .in_transaction(|index| index.add_counters(&nonzero))
    }

    /// The persisted value of the counter `name` (0 when never counted).
    pub fn counter(&self, name: &str) -> Result<u64, Error> {
        self.index().counter(name)
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
        assert_eq!(b.get_state("test.bytes").unwrap(), None, "zero is skipped");

        // The store's own counters are untouched.
        assert_eq!(a.stats().unwrap().hits, 0);
    }
}
