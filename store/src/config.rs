//! How a store behaves: compression, durability, timeouts, clock.

use std::time::Duration;

use crate::clock::Clock;
#[cfg(doc)]
use crate::store::Store;

/// When the store forces data to disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Durability {
    /// Never fsync a blob (the default); the index uses `synchronous=NORMAL`, which in
    /// WAL mode cannot corrupt it. After a power loss an entry may point at a missing
    /// or damaged blob: every read verifies the bytes against their hash, so that is a
    /// miss (the entry evicted, the unit recompiled), never wrong bytes. A killed
    /// process loses nothing: its writes are in the page cache. This is the default
    /// because a cache entry can always be made again, while an fsync per put costs
    /// milliseconds here (a cold start of 326 units took 1.5 s with [`Durability::Data`],
    /// most of it in `fdatasync`).
    #[default]
    None,
    /// Fsync each blob before renaming it into place; the index uses
    /// `synchronous=NORMAL`. A power loss may forget the last puts, or keep an entry
    /// whose rename was lost (a miss, evicted when read); it never corrupts the index
    /// and never makes a read return wrong bytes.
    Data,
    /// Also fsync the blob's directory after the rename; the index uses
    /// `synchronous=FULL`.
    Full,
}

/// How a [`Store`] behaves. `StoreConfig::default()` suits most uses.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// zstd level for new blobs (default 3).
    pub compression_level: i32,
    /// When to fsync (default [`Durability::None`]: see there why that is safe).
    pub durability: Durability,
    /// How long maintenance and other calls outside a JIT's path (gc, verify, clear,
    /// remove, stats, [`Store::flush`]) wait for another process holding the index's
    /// write lock (default 10 s).
    pub busy_timeout: Duration,
    /// How long a lookup ([`Store::get`], [`Store::get_many`]) may wait to read the index
    /// (default 20 ms). A lookup that cannot read it in time is a miss, counted in
    /// [`Stats::lookup_timeouts`](crate::Stats::lookup_timeouts); it never waits longer.
    pub lookup_timeout: Duration,
    /// How long a put ([`Store::put`], [`Store::put_many`]) may wait for the gc lock (a
    /// step of gc, verify or clear holds it for a few milliseconds) and for the index's
    /// write lock (default 40 ms). A put that cannot be written in time fails with
    /// [`Error::Busy`](crate::Error::Busy), writes nothing, and is counted in
    /// [`Stats::puts_dropped`](crate::Stats::puts_dropped); the caller may retry it
    /// later or drop it.
    pub write_timeout: Duration,
    /// How often batched last-access times and hit/miss counters are written to the
    /// index (default 2 s; also written by [`Store::flush`] and on drop).
    pub access_flush_interval: Duration,
    /// How stale a recorded last-access time may get before a hit updates it (default
    /// 10 minutes). Least-recently-used order only needs coarse times, and a start that
    /// hits units used less than that ago writes nothing for them: an edit-and-run loop
    /// pays no index write for the units it did not change (a warm start of 200 units
    /// that does write their access times spends about 2 ms more).
    pub access_resolution: Duration,
    /// Objects of at most this many bytes (uncompressed) are stored in the index, next
    /// to their entry, instead of in a blob file of their own (default 16 KiB; 0 puts
    /// every object in a file). A hit on such an object reads no file: the lookup
    /// brings its bytes. Larger objects are faster as files, and keep the index small.
    pub inline_max: u64,
    /// The most bytes the cache's blobs may take on disk before a trim evicts least
    /// recently used entries (default `None`: then `JITCACHE_MAX_SIZE`, then the
    /// cache's own setting, [`Store::set_max_size_setting`], decide; with none of them
    /// nothing is trimmed). A trim runs in the background of a process that puts, at
    /// most once per [`StoreConfig::trim_interval`] across all processes (see
    /// `store/src/trim.rs`), never on a lookup's thread.
    pub max_size: Option<u64>,
    /// How often, at most, a trim to the maximum size starts, across every process
    /// sharing the cache (default 5 minutes).
    pub trim_interval: Duration,
    /// After how long without use here a backend identity is foreign (default 30
    /// days): its entries are evicted before any least-recently-used one by a size
    /// trim or a capped gc, and all of them by [`Store::prune_foreign`]. An identity
    /// not used since a newer one of the same backend name appeared is foreign at once.
    pub foreign_after: Duration,
    /// How many puts the background writer ([`Store::put_background`]) holds queued at
    /// most (default 256); a put that finds the queue full is written on its caller's
    /// thread instead.
    pub background_queue: usize,
    /// How long dropping the store waits for the background writer to write what is
    /// queued (default 2 s); what is left then is dropped and counted in
    /// [`Stats::writes_dropped`](crate::Stats::writes_dropped).
    pub writer_drain_timeout: Duration,
    /// Time source for creation and access times (default the system clock).
    pub clock: Clock,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            compression_level: 3,
            durability: Durability::None,
            busy_timeout: Duration::from_secs(10),
            lookup_timeout: Duration::from_millis(20),
            write_timeout: Duration::from_millis(40),
            access_flush_interval: Duration::from_secs(2),
            access_resolution: Duration::from_secs(600),
            inline_max: 16 << 10,
            max_size: None,
            trim_interval: Duration::from_secs(300),
            foreign_after: Duration::from_secs(30 * 24 * 3600),
            background_queue: 256,
            writer_drain_timeout: Duration::from_secs(2),
            clock: Clock::System,
        }
    }
}
