//! The circuit breaker: after `threshold` failures in a row the remote is skipped for
//! `cooldown`. The time it opens until is written to the local index, so every process
//! using the same cache directory skips the remote too, instead of each paying the
//! timeouts to find out.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use jitcache_store::Store;

use crate::config::{BreakerConfig, RemoteConfig};

/// The shared-state name holding, for the remote `config`, the time (milliseconds since
/// the Unix epoch) until which the breaker is open.
pub fn breaker_state_name(config: &RemoteConfig) -> String {
    format!("remote.breaker.{}", config.id())
}

/// Until when the breaker of the remote `config` is open, as recorded in the local cache
/// `store` (milliseconds since the Unix epoch); `None` when it is closed.
pub fn breaker_open_until(store: &Store, config: &RemoteConfig) -> Option<i64> {
    let until = store.get_state(&breaker_state_name(config)).ok()??;
    (until > now_ms()).then_some(until)
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// One remote's breaker in this process.
#[derive(Debug)]
pub(crate) struct Breaker {
    config: BreakerConfig,
    shared: Option<Arc<Store>>,
    name: String,
    failures: AtomicU32,
    /// Until when this process knows it to be open (it may also learn so from the index).
    open_until: AtomicI64,
}

impl Breaker {
    pub fn new(config: &RemoteConfig, shared: Option<Arc<Store>>) -> Breaker {
        Breaker {
            config: config.breaker,
            shared,
            name: breaker_state_name(config),
            failures: AtomicU32::new(0),
            open_until: AtomicI64::new(0),
        }
    }

    /// Whether a call may go to the remote at `now` (milliseconds since the epoch).
    pub fn allows(&self, now: i64) -> bool {
        if self.open_until.load(Ordering::Relaxed) > now {
            return false;
        }
        let shared = self
            .shared
            .as_ref()
            .and_then(|s| s.get_state(&self.name).ok().flatten())
            .unwrap_or(0);
        if shared > now {
            self.open_until.fetch_max(shared, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// Records a call that got an answer (found or not).
    pub fn succeeded(&self) {
        self.failures.store(0, Ordering::Relaxed);
    }

    /// Records a failed call at `now`; returns true when this failure opened the breaker.
    pub fn failed(&self, now: i64) -> bool {
        if self.open_until.load(Ordering::Relaxed) > now {
            // Already open: the other calls of a concurrent round failing too do not
            // open it again.
            return false;
        }
        let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if n < self.config.threshold.max(1) {
            return false;
        }
        self.failures.store(0, Ordering::Relaxed);
        let cooldown = i64::try_from(self.config.cooldown.as_millis()).unwrap_or(i64::MAX);
        let until = now.saturating_add(cooldown);
        self.open_until.fetch_max(until, Ordering::Relaxed);
        if let Some(store) = &self.shared {
            // A read-only cache cannot record it: this process still respects it.
            let _ = store.set_state(&self.name, until);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jitcache_store::StoreConfig;
    use std::time::Duration;

    fn config() -> RemoteConfig {
        let mut c = RemoteConfig::parse("s3://bucket/p").unwrap();
        c.breaker = BreakerConfig {
            threshold: 3,
            cooldown: Duration::from_secs(30),
        };
        c
    }

    #[test]
    fn opens_after_failures_in_a_row_and_other_processes_respect_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path(), StoreConfig::default()).unwrap());
        let c = config();
        let breaker = Breaker::new(&c, Some(Arc::clone(&store)));
        let t = 1_000_000;
        assert!(!breaker.failed(t));
        breaker.succeeded();
        assert!(
            !breaker.failed(t) && !breaker.failed(t),
            "a success resets the count"
        );
        assert!(breaker.allows(t));
        assert!(breaker.failed(t), "the third failure in a row opens it");
        assert!(
            !breaker.failed(t) && !breaker.failed(t) && !breaker.failed(t),
            "failures while open (a concurrent round) do not open it again"
        );
        assert!(!breaker.allows(t + 29_999));
        assert!(
            breaker.allows(t + 30_000),
            "closed again after the cool-down"
        );

        // Another process (another store handle, another breaker) reads it from the index.
        let other_store = Arc::new(Store::open(dir.path(), StoreConfig::default()).unwrap());
        let other = Breaker::new(&c, Some(other_store));
        assert!(!other.allows(t + 1));
        assert!(other.allows(t + 30_000));

        // A breaker of another remote is not affected.
        let elsewhere = RemoteConfig::parse("s3://bucket/q").unwrap();
        assert!(Breaker::new(&elsewhere, Some(store)).allows(t + 1));
    }
}
