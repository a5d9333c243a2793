//! Statistics, and the in-memory batch of last-access times and counters that keeps a
//! hit from being a write.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::key::Key;

/// Store statistics. Sizes and counts come from the index; the counters are persisted
/// and add up over every process that used the cache.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Number of keys stored.
    pub entries: u64,
    /// Number of distinct blobs the entries point at (identical objects share one).
    pub blobs: u64,
    /// Uncompressed size of those blobs.
    pub bytes_uncompressed: u64,
    /// Size of those blob files on disk.
    pub bytes_on_disk: u64,
    /// Reads that returned bytes.
    pub hits: u64,
    /// Reads that found nothing usable (absent, or damaged and evicted).
    pub misses: u64,
    /// Successful writes.
    pub puts: u64,
    /// Entries evicted by gc to respect a size cap.
    pub evictions: u64,
    /// Damaged or missing blobs found (by reads or verify).
    pub corrupt: u64,
    /// Times a corrupt index database was moved aside and replaced.
    pub corrupt_index_recoveries: u64,
}

/// Hits, misses and last-access times not yet written to the index.
#[derive(Debug)]
pub(crate) struct AccessBatch {
    pub times: HashMap<Key, i64>,
    pub hits: i64,
    pub misses: i64,
    last_flush: Instant,
}

/// Flush anyway once this many keys wait, whatever the interval.
const MAX_PENDING: usize = 4096;

impl AccessBatch {
    pub fn new() -> AccessBatch {
        AccessBatch {
            times: HashMap::new(),
            hits: 0,
            misses: 0,
            last_flush: Instant::now(),
        }
    }

    /// Whether the batch should be written now.
    pub fn due(&self, interval: Duration) -> bool {
        self.times.len() >= MAX_PENDING || self.last_flush.elapsed() >= interval
    }

    pub fn is_empty(&self) -> bool {
        self.times.is_empty() && self.hits == 0 && self.misses == 0
    }

    /// Takes the pending work, leaving the batch empty and its timer restarted.
    pub fn take(&mut self) -> AccessBatch {
        let taken = AccessBatch {
            times: std::mem::take(&mut self.times),
            hits: std::mem::take(&mut self.hits),
            misses: std::mem::take(&mut self.misses),
            last_flush: self.last_flush,
        };
        self.last_flush = Instant::now();
        taken
    }

    /// Puts back the counters of a batch that could not be written (access times are
    /// dropped: they only steer eviction order).
    pub fn restore_counters(&mut self, failed: &AccessBatch) {
        self.hits += failed.hits;
        self.misses += failed.misses;
    }
}
