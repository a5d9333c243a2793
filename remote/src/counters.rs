//! What the remote tier did: counted in memory per process, and added to the local
//! index's persisted counters (`remote.hits`, ...) so `jitcache stats` shows the sums
//! over every process that used the cache.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use jitcache_store::Store;
use jitcache_store::sync::lock;

/// Counters of the remote tier: one process's (from [`crate::Remote::stats`]) or the
/// sums persisted in a local cache (from [`RemoteStats::load`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RemoteStats {
    /// Lookups answered with a verified object.
    pub hits: u64,
    /// Lookups that produced nothing: absent, rejected, failed, timed out or skipped.
    pub misses: u64,
    /// Calls that failed (refused connection, 403, 5xx, ...), uploads included.
    pub errors: u64,
    /// Calls that ran out of time, uploads included.
    pub timeouts: u64,
    /// Objects rejected: corrupt, another key, unsigned or wrongly signed.
    pub rejected: u64,
    /// Objects uploaded.
    pub uploads: u64,
    /// Uploads that found the object already there (a success; nothing was sent).
    pub uploads_existing: u64,
    /// Uploads dropped: the queue was full, the breaker was open, or the process ended
    /// before they went out.
    pub uploads_dropped: u64,
    /// Bytes received (remote objects, compressed).
    pub bytes_down: u64,
    /// Bytes sent (remote objects, compressed).
    pub bytes_up: u64,
    /// Times this process opened the circuit breaker.
    pub breaker_opens: u64,
    /// Calls skipped because the breaker was open (here or in another process).
    pub breaker_skips: u64,
}

/// One counter.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Counter {
    Hits,
    Misses,
    Errors,
    Timeouts,
    Rejected,
    Uploads,
    UploadsExisting,
    UploadsDropped,
    BytesDown,
    BytesUp,
    BreakerOpens,
    BreakerSkips,
}

const COUNT: usize = 12;

/// The persisted names, in [`Counter`] order.
const NAMES: [&str; COUNT] = [
    "remote.hits",
    "remote.misses",
    "remote.errors",
    "remote.timeouts",
    "remote.rejected",
    "remote.uploads",
    "remote.uploads_existing",
    "remote.uploads_dropped",
    "remote.bytes_down",
    "remote.bytes_up",
    "remote.breaker_opens",
    "remote.breaker_skips",
];

impl RemoteStats {
    fn from_array(v: [u64; COUNT]) -> RemoteStats {
        let [
            hits,
            misses,
            errors,
            timeouts,
            rejected,
            uploads,
            uploads_existing,
            uploads_dropped,
            bytes_down,
            bytes_up,
            breaker_opens,
            breaker_skips,
        ] = v;
        RemoteStats {
            hits,
            misses,
            errors,
            timeouts,
            rejected,
            uploads,
            uploads_existing,
            uploads_dropped,
            bytes_down,
            bytes_up,
            breaker_opens,
            breaker_skips,
        }
    }

    fn to_array(&self) -> [u64; COUNT] {
        [
            self.hits,
            self.misses,
            self.errors,
            self.timeouts,
            self.rejected,
            self.uploads,
            self.uploads_existing,
            self.uploads_dropped,
            self.bytes_down,
            self.bytes_up,
            self.breaker_opens,
            self.breaker_skips,
        ]
    }

    /// `(name, value)` for every counter, named as in `jitcache stats --json`
    /// (`hits`, `bytes_up`, ...).
    pub fn fields(&self) -> Vec<(&'static str, u64)> {
        NAMES
            .iter()
            .map(|n| n.trim_start_matches("remote."))
            .zip(self.to_array())
            .collect()
    }

    /// The sums persisted in the local cache `store` by every process that used a
    /// remote with it.
    pub fn load(store: &Store) -> Result<RemoteStats, jitcache_store::Error> {
        let mut v = [0u64; COUNT];
        for (slot, name) in v.iter_mut().zip(NAMES) {
            *slot = store.counter(name)?;
        }
        Ok(RemoteStats::from_array(v))
    }
}

/// The live counters of one remote, and what of them was already persisted.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    values: [AtomicU64; COUNT],
    persisted: Mutex<[u64; COUNT]>,
}

impl Counters {
    pub fn add(&self, counter: Counter, n: u64) {
        self.values[counter as usize].fetch_add(n, Ordering::Relaxed);
    }

    pub fn bump(&self, counter: Counter) {
        self.add(counter, 1);
    }

    fn values(&self) -> [u64; COUNT] {
        std::array::from_fn(|i| self.values[i].load(Ordering::Relaxed))
    }

    pub fn snapshot(&self) -> RemoteStats {
        RemoteStats::from_array(self.values())
    }

    /// Adds what was counted since the last call to the persisted counters of `store`.
    /// On failure the increments are kept for the next call.
    pub fn persist(&self, store: &Store) -> Result<(), jitcache_store::Error> {
        let mut persisted = lock(&self.persisted);
        let now = self.values();
        let deltas: Vec<(&str, i64)> = NAMES
            .iter()
            .zip(now.iter().zip(persisted.iter()))
            .map(|(name, (now, before))| (*name, i64::try_from(now - before).unwrap_or(i64::MAX)))
            .collect();
        store.add_counters(&deltas)?;
        *persisted = now;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jitcache_store::StoreConfig;

    #[test]
    fn persisting_adds_only_what_is_new_and_sums_over_processes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
        let (a, b) = (Counters::default(), Counters::default());
        a.bump(Counter::Hits);
        a.add(Counter::BytesDown, 100);
        a.persist(&store).unwrap();
        a.bump(Counter::Hits);
        a.persist(&store).unwrap();
        a.persist(&store).unwrap();
        b.bump(Counter::Hits);
        b.bump(Counter::BreakerSkips);
        b.persist(&store).unwrap();
        let total = RemoteStats::load(&store).unwrap();
        assert_eq!(
            (total.hits, total.bytes_down, total.breaker_skips),
            (3, 100, 1)
        );
        assert_eq!(a.snapshot().hits, 2);
        assert_eq!(
            total.fields().first().copied(),
            Some(("hits", 3)),
            "fields are named without the prefix"
        );
    }
}
