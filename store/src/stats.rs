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
    /// Lookups that could not read the index within
    /// [`StoreConfig::lookup_timeout`](crate::StoreConfig::lookup_timeout): each was a
    /// miss (and is counted in `misses` too).
    pub lookup_timeouts: u64,
    /// Puts not written because the cache stayed busy past
    /// [`StoreConfig::write_timeout`](crate::StoreConfig::write_timeout).
    pub puts_dropped: u64,
    /// Puts handed to the background writer ([`Store::put_background`](crate::Store::put_background)).
    pub writes_queued: u64,
    /// Background puts the writer wrote.
    pub writes_written: u64,
    /// Background puts lost: still queued when the store was dropped and the drain
    /// wait ran out, or not written in time by the writer.
    pub writes_dropped: u64,
}

/// Hits, misses and last-access times not yet written to the index.
#[derive(Debug)]
pub(crate) struct AccessBatch {
    pub times: HashMap<Key, i64>,
    pub hits: i64,
    pub misses: i64,
    pub lookup_timeouts: i64,
    pub puts_dropped: i64,
    pub writes_queued: i64,
    pub writes_written: i64,
    pub writes_dropped: i64,
    /// Backend identities used since the last flush, with their names (`foreign.rs`).
    pub backends: HashMap<[u8; 32], String>,
    /// The last write of a batch failed: only the interval makes it due again (not the
    /// number of keys waiting), so a busy cache is not tried at every lookup.
    failed: bool,
    /// The last hit whose access time was queued; kept across flushes (see
    /// `Store::touch_along`).
    pub last_recorded_hit: Option<Key>,
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
            lookup_timeouts: 0,
            puts_dropped: 0,
            writes_queued: 0,
            writes_written: 0,
            writes_dropped: 0,
            backends: HashMap::new(),
            failed: false,
            last_recorded_hit: None,
            last_flush: Instant::now(),
        }
    }

    /// Whether the batch should be written now.
    pub fn due(&self, interval: Duration) -> bool {
        (self.times.len() >= MAX_PENDING && !self.failed) || self.last_flush.elapsed() >= interval
    }

    pub fn is_empty(&self) -> bool {
        self.times.is_empty()
            && self.hits == 0
            && self.misses == 0
            && self.lookup_timeouts == 0
            && self.puts_dropped == 0
            && self.writes_queued == 0
            && self.writes_written == 0
            && self.writes_dropped == 0
            && self.backends.is_empty()
    }

    /// Takes the pending work, leaving the batch empty and its timer restarted.
    pub fn take(&mut self) -> AccessBatch {
        let taken = AccessBatch {
            times: std::mem::take(&mut self.times),
            hits: std::mem::take(&mut self.hits),
            misses: std::mem::take(&mut self.misses),
            lookup_timeouts: std::mem::take(&mut self.lookup_timeouts),
            puts_dropped: std::mem::take(&mut self.puts_dropped),
            writes_queued: std::mem::take(&mut self.writes_queued),
            writes_written: std::mem::take(&mut self.writes_written),
            writes_dropped: std::mem::take(&mut self.writes_dropped),
            backends: std::mem::take(&mut self.backends),
            failed: false,
            last_recorded_hit: self.last_recorded_hit,
            last_flush: self.last_flush,
        };
        self.failed = false;
        self.last_flush = Instant::now();
        taken
    }

    /// Puts back a batch that could not be written: its counters always; its access
    /// times when the cache was only busy (they are written at a later flush) and the
    /// batch stays small, else they are dropped (they only steer eviction order).
    pub fn restore(&mut self, failed: AccessBatch, busy: bool) {
        self.hits += failed.hits;
        self.misses += failed.misses;
        self.lookup_timeouts += failed.lookup_timeouts;
        self.puts_dropped += failed.puts_dropped;
        self.writes_queued += failed.writes_queued;
        self.writes_written += failed.writes_written;
        self.writes_dropped += failed.writes_dropped;
        self.backends.extend(failed.backends);
        self.failed = true;
        if busy && self.times.len() + failed.times.len() <= 4 * MAX_PENDING {
            for (key, ms) in failed.times {
                let at = self.times.entry(key).or_insert(ms);
                *at = (*at).max(ms);
            }
        }
    }
}
