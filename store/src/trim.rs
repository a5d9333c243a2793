//! Automatic size management: a configured maximum size, and a trim down to it in the
//! background of whichever process notices that one is due.
//!
//! The maximum comes from, in order: [`StoreConfig::max_size`], the environment
//! ([`MAX_SIZE_ENV`]), the cache's own setting ([`Store::set_max_size_setting`], what
//! `jitcache config max-size` changes). With none, nothing is trimmed.
//!
//! After a put (never a lookup), a process whose last look is older than
//! [`StoreConfig::trim_interval`] reads the time of the last trim from the index
//! (`trim.last_ms` in `counters`). When that is older than the interval too, it claims
//! the trim in one transaction that compares and sets the time (tried once, without
//! waiting: a busy index means somebody else is writing, and the next put looks again),
//! so across every process sharing the cache at most one trim starts per interval. The
//! winner trims on a thread of its own with a connection of its own: a gc with the
//! maximum as its cap, in short steps like any gc, without the orphan walk.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;

use crate::config::StoreConfig;
use crate::error::Error;
use crate::gc::GcOptions;
use crate::progress::NoProgress;
use crate::store::Store;
use crate::sync::lock;

/// Environment variable with a maximum cache size (`500M`, `2G`, bytes without a
/// suffix), used when [`StoreConfig::max_size`] is not set.
pub const MAX_SIZE_ENV: &str = "JITCACHE_MAX_SIZE";

/// The cache-level maximum size, in `counters`.
const SETTING_MAX_SIZE: &str = "settings.max_size";
/// When the last trim began, ms since the epoch, in `counters`.
const TRIM_LAST: &str = "trim.last_ms";

/// A trim running on its own thread.
pub(crate) struct Trimmer {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

/// Parses a size such as `1024`, `64K`, `5M`, `2G` or `1T` (binary multiples; an
/// optional trailing `B` or `iB`); `None` when it is not one.
pub fn parse_size(text: &str) -> Option<u64> {
    let upper = text.trim().to_ascii_uppercase();
    let unit_part = upper
        .strip_suffix("IB")
        .or_else(|| upper.strip_suffix('B'))
        .unwrap_or(&upper);
    let (digits, shift) = match unit_part.chars().last() {
        Some('K') => (&unit_part[..unit_part.len() - 1], 10),
        Some('M') => (&unit_part[..unit_part.len() - 1], 20),
        Some('G') => (&unit_part[..unit_part.len() - 1], 30),
        Some('T') => (&unit_part[..unit_part.len() - 1], 40),
        _ => (unit_part, 0),
    };
    digits
        .trim()
        .parse::<u64>()
        .ok()?
        .checked_mul(1u64 << shift)
}

impl Store {
    /// The cache's own maximum size (shared by every process using the directory), if
    /// one is set.
    pub fn max_size_setting(&self) -> Result<Option<u64>, Error> {
        Ok(self
            .get_state(SETTING_MAX_SIZE)?
            .and_then(|v| u64::try_from(v).ok()))
    }

    /// Sets (or with `None` removes) the cache's own maximum size.
    pub fn set_max_size_setting(&self, max: Option<u64>) -> Result<(), Error> {
        match max {
            Some(max) => self.set_state(SETTING_MAX_SIZE, crate::index::to_i64(max)),
            None => self.set_state(SETTING_MAX_SIZE, -1),
        }
    }

    /// The maximum size in force: [`StoreConfig::max_size`], else [`MAX_SIZE_ENV`], else
    /// the cache's setting. An unparsable environment value is ignored.
    pub fn max_size(&self) -> Result<Option<u64>, Error> {
        if let Some(max) = self.config.max_size {
            return Ok(Some(max));
        }
        if let Some(max) = std::env::var(MAX_SIZE_ENV)
            .ok()
            .and_then(|v| parse_size(&v))
        {
            return Ok(Some(max));
        }
        self.max_size_setting()
    }

    /// Called after a put: starts a trim in the background when one is due (see the
    /// module docs). Errors only mean no trim this time.
    pub(crate) fn maybe_trim(&self) {
        let now = Instant::now();
        {
            let mut next = lock(&self.next_trim_check);
            if next.is_some_and(|at| now < at) {
                return;
            }
            *next = Some(now + self.config.trim_interval);
        }
        let Ok(Some(max)) = self.max_size() else {
            return;
        };
        let now_ms = self.config.clock.now_ms();
        let interval_ms = crate::index::to_i64(crate::store::millis(self.config.trim_interval));
        let claimed = self.retry_index(Instant::now(), |index| {
            index.claim_periodic(TRIM_LAST, now_ms, interval_ms)
        });
        if claimed.unwrap_or(false) {
            self.start_trim(max);
        }
    }

    /// Starts the trim thread (unless one of this store's is still running).
    fn start_trim(&self, max: u64) {
        let mut slot = lock(&self.trimmer);
        if slot.as_ref().is_some_and(|t| !t.thread.is_finished()) {
            return;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let root: PathBuf = self.layout.root.clone();
        let config = StoreConfig {
            max_size: None,
            ..self.config.clone()
        };
        let flag = Arc::clone(&stop);
        let spawned = std::thread::Builder::new()
            .name("jitcache-trim".into())
            .spawn(move || {
                let _ = trim(&root, config, max, &flag);
            });
        if let Ok(thread) = spawned {
            *slot = Some(Trimmer { stop, thread });
        }
    }

    /// Waits for a background trim this store started, if one runs. A store dropped
    /// while one runs stops it after its current step instead.
    pub fn wait_for_trim(&self) {
        let trimmer = lock(&self.trimmer).take();
        if let Some(trimmer) = trimmer {
            let _ = trimmer.thread.join();
        }
    }

    /// Stops a background trim after its current step (from `Drop`).
    pub(crate) fn stop_trim(&self) {
        let trimmer = lock(&self.trimmer).take();
        if let Some(trimmer) = trimmer {
            trimmer.stop.store(true, Ordering::Relaxed);
            let _ = trimmer.thread.join();
        }
    }
}

/// The trim itself, on its own connection: a gc down to `max` without the orphan walk,
/// stopping between steps when asked to.
fn trim(
    root: &std::path::Path,
    config: StoreConfig,
    max: u64,
    stop: &AtomicBool,
) -> Result<(), Error> {
    let store = Store::open(root, config)?;
    let opts = GcOptions {
        max_size: Some(max),
        remove_orphans: false,
        full_orphan_walk: false,
    };
    let mut run = store.gc_steps(&opts, &NoProgress)?;
    while !run.step()? {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        store.pause_between_steps();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_parse_with_binary_suffixes() {
        assert_eq!(parse_size("1024"), Some(1024));
        assert_eq!(parse_size("5M"), Some(5 << 20));
        assert_eq!(parse_size(" 2GiB "), Some(2 << 30));
        assert_eq!(parse_size("64k"), Some(64 << 10));
        assert_eq!(parse_size("M"), None);
        assert_eq!(parse_size("lots"), None);
        assert_eq!(parse_size("99999999T"), None);
    }
}
