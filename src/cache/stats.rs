//! What a [`JitCache`](super::JitCache) did in this process.

use std::time::Duration;

use jitcache_remote::RemoteStats;

/// Counters of one process's use of a cache.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Units found already loaded in this process.
    pub memory_hits: u64,
    /// Units read from the persistent store (including ones another process compiled
    /// while this one waited for it).
    pub disk_hits: u64,
    /// Units fetched from the remote tier (verified, then copied into the store).
    pub remote_hits: u64,
    /// Units neither in memory nor in the store when asked for.
    pub misses: u64,
    /// Units this process compiled.
    pub compiles: u64,
    /// Units whose manifest (the files their last compiles read, see `docs/backends.md`)
    /// named an object whose files are unchanged.
    pub manifest_hits: u64,
    /// Units whose manifest named no compile whose files are all unchanged (or that had
    /// no manifest yet).
    pub manifest_misses: u64,
    /// Units compiled but not stored, because the object cannot be reused (it embeds the
    /// time of the compile, or a file it read changed while it compiled).
    pub not_stored: u64,
    /// Time spent in backends (lowering and compiling).
    pub compile_time: Duration,
    /// Time spent reading from the store and linking.
    pub load_time: Duration,
    /// Why the persistent cache was bypassed, if it was (disabled, or unusable).
    pub bypassed: Option<String>,
    /// What the remote tier did in this process (`None` without a remote); uploads run
    /// in the background, so these may still grow after a call returns.
    pub remote: Option<RemoteStats>,
}
