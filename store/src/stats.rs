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

/// Hit and miss counts kept beside the index, for processes that have nothing else to
/// write: a process that only reads adds them here (open, lock, read, write: a few
/// system calls) instead of in an index transaction, whose first write makes SQLite
/// create the write-ahead log and, when the process closes the database, checkpoint it
/// with several `fsync`s. [`Store::stats`](crate::Store::stats) adds these to the
/// index's counters.
///
/// The file is 24 bytes: the magic `JCRC` and version 1 (u32 LE), then hits and misses
/// (u64 LE). It is updated under an exclusive `flock`. A file of any other shape
/// (damaged, cut short) is statistics lost, not an error: the counts restart from zero.
#[derive(Clone, Debug)]
pub(crate) struct ReadCounters {
    path: std::path::PathBuf,
}

const READ_COUNTERS_MAGIC: [u8; 8] = *b"JCRC\x01\0\0\0";
const READ_COUNTERS_LEN: usize = 24;

impl ReadCounters {
    pub fn new(path: &std::path::Path) -> ReadCounters {
        ReadCounters {
            path: path.to_path_buf(),
        }
    }

    /// Adds `hits` and `misses` to the file's counts (creating it), waiting for another
    /// process's lock on it until `deadline` (then failing with `WouldBlock`).
    pub fn add(&self, hits: u64, misses: u64, deadline: Instant) -> std::io::Result<()> {
        use std::io::{Seek, SeekFrom, Write};
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&self.path)?;
        let mut tries = 0u32;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) => {}
                Err(std::fs::TryLockError::Error(e)) => return Err(e),
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(std::io::ErrorKind::WouldBlock.into());
            }
            std::thread::sleep(crate::lock::poll_pause(tries).min(deadline - now));
            tries = tries.saturating_add(1);
        }
        let mut buf = [0u8; READ_COUNTERS_LEN + 1];
        let n = read_full(&mut file, &mut buf)?;
        let (old_hits, old_misses) = parse(&buf[..n]).unwrap_or((0, 0));
        let mut out = [0u8; READ_COUNTERS_LEN];
        out[..8].copy_from_slice(&READ_COUNTERS_MAGIC);
        out[8..16].copy_from_slice(&old_hits.saturating_add(hits).to_le_bytes());
        out[16..].copy_from_slice(&old_misses.saturating_add(misses).to_le_bytes());
        file.seek(SeekFrom::Start(0))?;
        file.write_all(&out)?;
        if n > READ_COUNTERS_LEN {
            file.set_len(READ_COUNTERS_LEN as u64)?;
        }
        // Closing the file releases the lock.
        Ok(())
    }

    /// The counts: (hits, misses); zeros when the file is missing or damaged.
    pub fn read(&self) -> std::io::Result<(u64, u64)> {
        let mut file = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((0, 0)),
            Err(e) => return Err(e),
        };
        file.lock_shared()?;
        let mut buf = [0u8; READ_COUNTERS_LEN + 1];
        let n = read_full(&mut file, &mut buf)?;
        Ok(parse(&buf[..n]).unwrap_or((0, 0)))
    }
}

/// Reads until `buf` is full or the file ends; returns the bytes read.
fn read_full(file: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    use std::io::Read;
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// The counts of a well-formed file's bytes.
fn parse(bytes: &[u8]) -> Option<(u64, u64)> {
    if bytes.len() != READ_COUNTERS_LEN || bytes[..8] != READ_COUNTERS_MAGIC {
        return None;
    }
    let hits = u64::from_le_bytes(bytes[8..16].try_into().ok()?);
    let misses = u64::from_le_bytes(bytes[16..24].try_into().ok()?);
    Some((hits, misses))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_counters_add_up_and_survive_damage() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("read-counters");
        let counters = ReadCounters::new(&path);
        assert_eq!(counters.read().expect("read"), (0, 0), "no file yet");
        let soon = || Instant::now() + Duration::from_secs(1);
        counters.add(3, 1, soon()).expect("add");
        ReadCounters::new(&path).add(2, 5, soon()).expect("add");
        assert_eq!(counters.read().expect("read"), (5, 6));
        assert_eq!(std::fs::read(&path).expect("bytes").len(), 24);
        // A damaged file restarts the counts instead of failing.
        std::fs::write(&path, b"garbage").expect("damage");
        assert_eq!(counters.read().expect("read"), (0, 0));
        counters.add(1, 0, soon()).expect("add");
        assert_eq!(counters.read().expect("read"), (1, 0));
        // Too long: cut back to its size.
        let mut long = std::fs::read(&path).expect("bytes");
        long.extend_from_slice(b"tail");
        std::fs::write(&path, &long).expect("lengthen");
        counters.add(0, 0, soon()).expect("add");
        assert_eq!(std::fs::read(&path).expect("bytes").len(), 24);
    }
}
