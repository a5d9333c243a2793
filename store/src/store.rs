//! The store: opening a cache directory, and the put and get paths.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::blob::{self, BlobId, Damage, ReadFailure};
use crate::config::{Durability, StoreConfig};
use crate::entry::{EntryInfo, EntryMeta, PutEntry, UnitRecord, UnitState};
use crate::error::{Error, io_err, is_busy, write_err};
use crate::index::{Found, Index, NewEntry, Reaper, counter, without_waiting};
use crate::key::Key;
use crate::layout::{Layout, create_private_dir, remove_file_if_exists};
use crate::lock::{LockFile, poll_pause};
use crate::pause_point::{self, PausePoint};
use crate::read_counters::ReadCounters;
use crate::stats::{AccessBatch, Stats};
use crate::step::{STEP_GAP, STEP_GAP_WAITED};
use crate::sync::lock;

/// A [`Store::get_many`] batch at least this large is read by two threads.
const PARALLEL_READ_MIN: usize = 64;

/// A content-addressed store of compiled objects in one cache directory.
///
/// `Store` is `Send + Sync`; share it between threads behind an `Arc`. Any number of
/// processes may open the same directory at once.
pub struct Store {
    pub(crate) layout: Layout,
    pub(crate) config: StoreConfig,
    pub(crate) index: Arc<Mutex<Index>>,
    /// Ends read snapshots of single lookups that nobody reuses (`index/snapshot.rs`).
    reaper: Reaper,
    batch: Mutex<AccessBatch>,
    read_counters: ReadCounters,
    pub(crate) gc_lock: LockFile,
    /// Where writers waiting for `gc_lock` announce themselves.
    gc_waiters: LockFile,
    pub(crate) writable: bool,
    pub(crate) pause: Option<PausePoint>,
    /// When this process looks at the index again for a due trim (`trim.rs`).
    pub(crate) next_trim_check: Mutex<Option<Instant>>,
    /// The background trim this store started, if any.
    pub(crate) trimmer: Mutex<Option<crate::trim::Trimmer>>,
    /// The background writer, started by the first [`Store::put_background`].
    pub(crate) writer: Mutex<Option<crate::writer::Writer>>,
    /// Whether a checkpoint thread of this store runs (`checkpoint.rs`).
    pub(crate) checkpointing: Arc<std::sync::atomic::AtomicBool>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("root", &self.layout.root)
            .field("writable", &self.writable)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens the cache at `root`, creating it (mode 0700) if needed.
    ///
    /// Refuses a root that is world-writable or owned by another user
    /// ([`Error::InsecureDirectory`]) and an index written by a newer version
    /// ([`Error::NewerFormat`]). A corrupt index is moved aside and replaced by an empty
    /// one (counted in [`Stats::corrupt_index_recoveries`]); its blobs become orphans
    /// for [`Store::gc`]. On a read-only file system the store opens for reading and
    /// writes fail with [`Error::ReadOnly`]. A directory on a network file system is
    /// refused with [`Error::NetworkFilesystem`] (see `store/src/filesystem.rs`). Stale temp files of dead writers are
    /// removed when no other process is working in the cache.
    pub fn open(root: impl AsRef<Path>, config: StoreConfig) -> Result<Store, Error> {
        crate::filesystem::refuse_network(root.as_ref())?;
        let layout = Layout::new(root.as_ref());
        let dirs_writable = layout.prepare()?;
        let writable = dirs_writable && probe_writable(&layout.gc_lock)?;
        let index = Index::open(
            &layout,
            config.durability,
            config.busy_timeout,
            writable,
            config.clock.now_ms(),
        )?;
        let gc_lock = LockFile::new(&layout.gc_lock);
        let layout_waiters = layout.gc_waiters.clone();
        if writable && let Some(_guard) = gc_lock.try_exclusive()? {
            layout.clean_tmp()?;
        }
        let index = Arc::new(Mutex::new(index));
        Ok(Store {
            read_counters: ReadCounters::new(&layout.read_counters),
            layout,
            config,
            reaper: Reaper::new(&index),
            index,
            batch: Mutex::new(AccessBatch::new()),
            gc_lock,
            gc_waiters: LockFile::new(&layout_waiters),
            writable,
            pause: PausePoint::from_env(),
            next_trim_check: Mutex::new(None),
            trimmer: Mutex::new(None),
            writer: Mutex::new(None),
            checkpointing: crate::checkpoint::flag(),
        })
    }

    /// The cache root given to [`Store::open`].
    pub fn root(&self) -> &Path {
        &self.layout.root
    }

    /// Whether the store can be written (false on a read-only file system).
    pub fn is_writable(&self) -> bool {
        self.writable
    }

    /// Where the blob `id` lives (whether or not it exists).
    pub fn blob_path(&self, id: &BlobId) -> PathBuf {
        self.layout.blob_path(id)
    }

    /// Reads the index without its memory map until the guard drops (for scans; see
    /// `Index::set_mapped`).
    pub(crate) fn unmapped(&self) -> Result<Unmapped<'_>, Error> {
        self.index().set_mapped(false)?;
        Ok(Unmapped(self))
    }

    /// The index, its read snapshot ended: what is read through it is current.
    pub(crate) fn index(&self) -> MutexGuard<'_, Index> {
        let mut index = lock(&self.index);
        index.end_snapshot();
        index
    }

    /// The entry of `key`, looked up through a read snapshot a few milliseconds old at
    /// most (which never answers a miss; see `index/snapshot.rs`).
    fn lookup_recent(&self, key: &Key, deadline: Instant) -> Result<Option<Found>, Error> {
        let (found, began) = self.retry_index(deadline, |index| index.lookup_recent(key))?;
        if let Some(began) = began {
            self.reaper.arm(began);
        }
        Ok(found)
    }

    /// Runs `f` on the index without letting SQLite wait inside it: when another
    /// process holds a lock `f` needs, `f` fails at once, the index is let go (so this
    /// process's other threads keep using it), and `f` is tried again after a short
    /// sleep, until `deadline`. Then the result is [`Error::Busy`] with the time waited.
    /// `f` must be safe to repeat after a busy failure: a failed transaction has rolled
    /// back.
    pub(crate) fn retry_index<T>(
        &self,
        deadline: Instant,
        mut f: impl FnMut(&mut Index) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let started = Instant::now();
        let mut tries = 0u32;
        loop {
            let result = {
                let mut index = lock(&self.index);
                without_waiting(|| f(&mut index))
            };
            match result {
                Err(Error::Busy { path, what, .. }) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return Err(Error::Busy {
                            path,
                            what,
                            waited_ms: millis(started.elapsed()),
                        });
                    }
                    std::thread::sleep(poll_pause(tries).min(deadline - now));
                    tries = tries.saturating_add(1);
                }
                other => return other,
            }
        }
    }

    pub(crate) fn batch(&self) -> MutexGuard<'_, AccessBatch> {
        lock(&self.batch)
    }

    /// The bytes stored under `key`, verified against their hash; `None` on a miss
    /// (absent, or damaged: then the entry is evicted and the damage counted).
    pub fn get(&self, key: &Key) -> Result<Option<Vec<u8>>, Error> {
        let mut out = Vec::new();
        Ok(self.get_into(key, &mut out)?.then_some(out))
    }

    /// Like [`Store::get`], reading into `out` (its contents are replaced; its capacity
    /// is reused). Returns whether it was a hit; on a miss `out` is empty.
    ///
    /// Waits at most [`StoreConfig::lookup_timeout`] for the index: a lookup that cannot
    /// read it in time is a miss (counted in [`Stats::lookup_timeouts`]).
    pub fn get_into(&self, key: &Key, out: &mut Vec<u8>) -> Result<bool, Error> {
        if let Some(bytes) = self.pending_write(key) {
            out.clear();
            out.extend_from_slice(&bytes);
            self.batch().hits += 1;
            return Ok(true);
        }
        let deadline = Instant::now() + self.config.lookup_timeout;
        // Two tries: a blob missing at the first may be a concurrent gc and re-put.
        for attempt in 0..2 {
            // The second try looks in the current state: the first one's blob was gone.
            let found = if attempt == 0 {
                self.lookup_recent(key, deadline)
            } else {
                self.retry_index(deadline, |index| {
                    index.end_snapshot();
                    index.lookup(key)
                })
            };
            let found = match found {
                Ok(found) => found,
                Err(e) if is_busy(&e) => {
                    out.clear();
                    self.batch().lookup_timeouts += 1;
                    self.note(None);
                    return Ok(false);
                }
                Err(e) => return Err(e),
            };
            let Some(found) = found else {
                out.clear();
                self.note(None);
                return Ok(false);
            };
            let (blob, size) = (found.blob, found.size);
            let path = self.layout.blob_path(&blob);
            match blob::read_stored(found.inline.as_deref(), &path, &blob, Some(size), out) {
                Ok(()) => {
                    self.note(Some((key, found.last_access_ms)));
                    return Ok(true);
                }
                Err(ReadFailure::Io(e)) => return Err(io_err(&path, e)),
                Err(ReadFailure::Damaged(Damage::Missing)) if attempt == 0 => continue,
                Err(ReadFailure::Damaged(damage)) => {
                    self.handle_damage(key, &blob, damage);
                    break;
                }
            }
        }
        out.clear();
        self.note(None);
        Ok(false)
    }

    /// [`Store::get`] of many keys at once: one read transaction for all the index
    /// lookups, then one read and decompression per blob (spread over threads when the
    /// batch is large). Each result is verified like a single `get`.
    ///
    /// Waits at most [`StoreConfig::lookup_timeout`] for the index, like [`Store::get`]:
    /// a batch that cannot read it in time is all misses.
    pub fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Vec<u8>>>, Error> {
        // Before the index: see `Store::pending_many`.
        let pending = self.pending_many(keys);
        let deadline = Instant::now() + self.config.lookup_timeout;
        let found = match self.retry_index(deadline, |index| {
            index.end_snapshot();
            index.lookup_many(keys)
        }) {
            Ok(found) => found,
            Err(e) if is_busy(&e) => {
                let mut batch = self.batch();
                batch.lookup_timeouts += keys.len() as i64;
                batch.misses += keys.len() as i64;
                return Ok(vec![None; keys.len()]);
            }
            Err(e) => return Err(e),
        };
        // Each read says whether it recorded its own hit or miss already.
        type Read = (Option<Vec<u8>>, bool);
        let read = |key: &Key, entry: &Option<Found>| -> Result<Read, Error> {
            let Some(Found {
                blob, size, inline, ..
            }) = entry
            else {
                return Ok((None, false));
            };
            let path = self.layout.blob_path(blob);
            let mut out = Vec::new();
            match blob::read_stored(inline.as_deref(), &path, blob, Some(*size), &mut out) {
                Ok(()) => Ok((Some(out), false)),
                Err(ReadFailure::Io(e)) => Err(io_err(&path, e)),
                // Gone (a concurrent gc, maybe a re-put): the single path looks again.
                Err(ReadFailure::Damaged(Damage::Missing)) => {
                    Ok((self.get_into(key, &mut out)?.then_some(out), true))
                }
                Err(ReadFailure::Damaged(damage)) => {
                    self.handle_damage(key, blob, damage);
                    Ok((None, false))
                }
            }
        };
        let mut results: Vec<Read> = if keys.len() >= PARALLEL_READ_MIN {
            let half = keys.len() / 2;
            let (first, second) = std::thread::scope(|scope| {
                let other = scope.spawn(|| {
                    keys[half..]
                        .iter()
                        .zip(&found[half..])
                        .map(|(k, e)| read(k, e))
                        .collect::<Result<Vec<_>, Error>>()
                });
                let first = keys[..half]
                    .iter()
                    .zip(&found[..half])
                    .map(|(k, e)| read(k, e))
                    .collect::<Result<Vec<_>, Error>>();
                (first, other.join())
            });
            let mut all = first?;
            match second {
                Ok(rest) => all.extend(rest?),
                Err(panic) => std::panic::resume_unwind(panic),
            }
            all
        } else {
            keys.iter()
                .zip(&found)
                .map(|(k, e)| read(k, e))
                .collect::<Result<Vec<_>, Error>>()?
        };
        if let Some(pending) = pending {
            let mut hits = 0;
            for (result, bytes) in results.iter_mut().zip(pending) {
                if let Some(bytes) = bytes {
                    *result = (Some(bytes.to_vec()), true);
                    hits += 1;
                }
            }
            self.batch().hits += hits;
        }
        let mut batch = self.batch();
        let now = self.config.clock.now_ms();
        for ((key, entry), (result, noted)) in keys.iter().zip(&found).zip(&results) {
            match (result, noted, entry) {
                (_, true, _) => {}
                (Some(_), false, Some(entry)) => {
                    self.record_access(&mut batch, key, entry.last_access_ms, now);
                    batch.hits += 1;
                }
                _ => batch.misses += 1,
            }
        }
        if batch.due(self.config.access_flush_interval) {
            let taken = batch.take();
            drop(batch);
            self.flush_from_lookup(taken);
        }
        Ok(results.into_iter().map(|(bytes, _)| bytes).collect())
    }

    /// Records that `keys` were used now without reading them here (their objects came
    /// from a pack holding them), so least-recently-used eviction keeps them. Like a hit,
    /// this is batched in memory; it counts no hit.
    pub fn touch(&self, keys: &[Key]) {
        let now = self.config.clock.now_ms();
        let mut batch = self.batch();
        for key in keys {
            batch.times.insert(*key, now);
        }
    }

    /// [`Store::touch`] of `keys` if the last hit of this process whose access time
    /// needed recording was `anchor`: for objects that came from the entry `anchor` (a
    /// pack holding them) and are always touched with it. When `anchor` was read within
    /// [`StoreConfig::access_resolution`] of its recorded last access, so were `keys`
    /// (they were touched together then), and nothing needs writing.
    ///
    /// Call it right after the read of `anchor`.
    pub fn touch_along(&self, anchor: &Key, keys: &[Key]) {
        if self.batch().last_recorded_hit == Some(*anchor) {
            self.touch(keys);
        }
    }

    /// Queues the access time of a hit on `key`, unless the index already has one within
    /// [`StoreConfig::access_resolution`] (the flush would not change it).
    fn record_access(&self, batch: &mut AccessBatch, key: &Key, last_access_ms: i64, now: i64) {
        let resolution =
            i64::try_from(self.config.access_resolution.as_millis()).unwrap_or(i64::MAX);
        if last_access_ms < now.saturating_sub(resolution) {
            batch.times.insert(*key, now);
            batch.last_recorded_hit = Some(*key);
        }
    }

    /// Evicts a damaged entry. When no writer is active (the gc lock is free) every
    /// entry sharing the blob is evicted and the blob deleted, so the next put of the
    /// same bytes writes a sound copy; otherwise only this entry goes. Errors here
    /// are not reported: the read is a miss either way.
    fn handle_damage(&self, key: &Key, blob: &BlobId, damage: Damage) {
        if !self.writable {
            return;
        }
        let exclusive = if damage == Damage::Missing {
            None
        } else {
            self.gc_lock.try_exclusive().ok().flatten()
        };
        if let Some(_guard) = exclusive {
            if self.index().evict_blob(blob).is_ok() {
                let _ = remove_file_if_exists(&self.layout.blob_path(blob));
            }
        } else {
            let _ = self
                .index()
                .evict(key, Some(blob), UnitState::Corrupt, Some(counter::CORRUPT));
        }
    }

    /// Records a hit (with the key and its recorded last access) or a miss in the batch,
    /// writing the batch when due.
    fn note(&self, hit: Option<(&Key, i64)>) {
        let mut batch = self.batch();
        match hit {
            Some((key, last_access_ms)) => {
                let now = self.config.clock.now_ms();
                self.record_access(&mut batch, key, last_access_ms, now);
                batch.hits += 1;
            }
            None => batch.misses += 1,
        }
        if batch.due(self.config.access_flush_interval) {
            let taken = batch.take();
            drop(batch);
            self.flush_from_lookup(taken);
        }
    }

    /// Writes a batch that fell due during a lookup, on the lookup's thread, without
    /// waiting on any other process: one try, and if another process holds the lock
    /// the batch goes back and is written at a later flush.
    fn flush_from_lookup(&self, taken: AccessBatch) {
        let _ = self.write_batch(taken, Instant::now());
    }

    /// Writes `taken`, waiting for other processes until `deadline`; on failure its
    /// counters (and, when the cache was only busy, its access times) go back into
    /// the batch for a later flush.
    fn write_batch(&self, taken: AccessBatch, deadline: Instant) -> Result<(), Error> {
        let mut taken = taken;
        let writes = self.take_writer_counts();
        taken.writes_queued += writes.queued;
        taken.writes_written += writes.written;
        taken.writes_dropped += writes.dropped;
        if !self.writable {
            return Ok(());
        }
        self.forget_recent_backends(&mut taken.backends);
        if taken.is_empty() {
            return Ok(());
        }
        let result = if taken.times.is_empty()
            && taken.lookup_timeouts == 0
            && taken.puts_dropped == 0
            && taken.writes_queued == 0
            && taken.writes_written == 0
            && taken.writes_dropped == 0
            && taken.backends.is_empty()
        {
            // Counts alone are not worth an index write (see `ReadCounters`).
            self.add_read_counters(
                &[(counter::HITS, taken.hits), (counter::MISSES, taken.misses)],
                deadline,
            )
        } else {
            let resolution =
                i64::try_from(self.config.access_resolution.as_millis()).unwrap_or(i64::MAX);
            let used: Vec<([u8; 32], String)> = taken
                .backends
                .iter()
                .map(|(id, name)| (*id, name.clone()))
                .collect();
            let now_ms = self.config.clock.now_ms();
            self.retry_index(deadline, |index| {
                // An upsert: repeated harmlessly when the flush after it was busy.
                if !used.is_empty() {
                    index.record_backends(&used, now_ms)?;
                }
                index.flush(
                    &mut taken.times.iter().map(|(k, ms)| (*k, *ms)),
                    &[
                        (counter::HITS, taken.hits),
                        (counter::MISSES, taken.misses),
                        (counter::LOOKUP_TIMEOUTS, taken.lookup_timeouts),
                        (counter::PUTS_DROPPED, taken.puts_dropped),
                        (counter::WRITES_QUEUED, taken.writes_queued),
                        (counter::WRITES_WRITTEN, taken.writes_written),
                        (counter::WRITES_DROPPED, taken.writes_dropped),
                    ],
                    resolution,
                )
            })
        };
        if let Err(e) = &result {
            self.batch().restore(taken, is_busy(e));
        }
        result
    }

    /// Writes batched last-access times and hit/miss counters to the index now, waiting
    /// up to [`StoreConfig::busy_timeout`] for other processes.
    pub fn flush(&self) -> Result<(), Error> {
        self.flush_until(Instant::now() + self.config.busy_timeout)
    }

    /// [`Store::flush`], waiting for other processes only until `deadline`.
    fn flush_until(&self, deadline: Instant) -> Result<(), Error> {
        let taken = self.batch().take();
        self.write_batch(taken, deadline)
    }

    /// Stores `bytes` under `key`, replacing any previous entry for the key.
    pub fn put(&self, key: &Key, bytes: &[u8]) -> Result<(), Error> {
        self.put_with(key, bytes, &EntryMeta::default())
    }

    /// Stores `bytes` under `key` with `meta`.
    ///
    /// The blob is written to `tmp/`, fsynced per [`Durability`] and renamed into
    /// place, then indexed; if a sound blob with the same bytes already exists it is
    /// shared. On a full or read-only disk this fails with [`Error::DiskFull`] or
    /// [`Error::ReadOnly`] and nothing already stored is touched.
    ///
    /// Waits at most [`StoreConfig::write_timeout`] for other processes (a step of gc,
    /// another writer's transaction); a put that cannot be written in time fails with
    /// [`Error::Busy`], indexes nothing, and is counted in [`Stats::puts_dropped`].
    pub fn put_with(&self, key: &Key, bytes: &[u8], meta: &EntryMeta) -> Result<(), Error> {
        let result = self.put_until(key, bytes, meta, self.config.write_timeout);
        self.count_dropped(&result, 1);
        if result.is_ok() {
            self.maybe_checkpoint();
            self.maybe_trim();
        }
        result
    }

    /// Takes the gc lock shared, waiting at most `wait`; returns it with what is left
    /// of the wait for the index.
    fn shared_gc_lock(
        &self,
        wait: Duration,
    ) -> Result<(crate::lock::LockGuard, WaitBudget), Error> {
        let started = Instant::now();
        let guard =
            self.gc_lock
                .shared_until_announced(started + wait, "the gc lock", &self.gc_waiters)?;
        Ok((
            guard,
            WaitBudget {
                left: wait.saturating_sub(started.elapsed()),
            },
        ))
    }

    /// The pause of a maintenance run between two steps: [`STEP_GAP_WAITED`] when a
    /// writer announced that it waits for the gc lock, else the short [`STEP_GAP`].
    pub(crate) fn pause_between_steps(&self) {
        let gap = if self.gc_waiters.has_waiters() {
            STEP_GAP_WAITED
        } else {
            STEP_GAP
        };
        std::thread::sleep(gap);
    }

    fn count_dropped(&self, result: &Result<(), Error>, puts: usize) {
        if let Err(e) = result
            && is_busy(e)
        {
            self.batch().puts_dropped += puts as i64;
        }
    }

    fn put_until(
        &self,
        key: &Key,
        bytes: &[u8],
        meta: &EntryMeta,
        wait: Duration,
    ) -> Result<(), Error> {
        if !self.writable {
            return Err(Error::ReadOnly {
                path: self.layout.dir.clone(),
            });
        }
        // A background put of the key queued earlier must not land after this one.
        if self
            .supersede_pending(std::slice::from_ref(key), wait)
            .is_none()
        {
            return Err(Error::Busy {
                path: self.layout.dir.clone(),
                what: "the background writer",
                waited_ms: millis(wait),
            });
        }
        let id = BlobId::of(bytes);
        let size = bytes.len() as u64;
        // Held until the entry is indexed: gc cannot collect the blob meanwhile, nor
        // remove our temp file.
        let (_shared, deadline) = self.shared_gc_lock(wait)?;
        let stored = self.store_blob(&id, bytes)?;
        let deadline = deadline.after_work();
        self.pause_at(PausePoint::AfterRename);
        let now_ms = self.config.clock.now_ms();
        let row = NewEntry {
            key,
            blob: &id,
            size,
            stored_size: stored.size(),
            name: meta.name.as_deref(),
            components: meta.components.as_ref(),
            now_ms,
            inline: stored.inline(),
        };
        self.retry_index(deadline, |index| index.insert(&row))?;
        self.pause_at(PausePoint::AfterIndex);
        Ok(())
    }

    /// Stores many entries at once: each distinct blob is written (or found) once, then
    /// every entry is indexed in one transaction, so a batch costs one commit rather
    /// than one per entry. Entries are indexed in key order; a key given twice keeps
    /// the bytes of its last occurrence.
    ///
    /// The transaction holds the index's write lock until it commits, and other
    /// writers wait for it (up to [`StoreConfig::write_timeout`]): split large fills
    /// (more than a few thousand entries) into batches. Failures are as for
    /// [`Store::put_with`]; a failed batch indexes none of its entries (blobs already
    /// written stay, as orphans for [`Store::gc`] if nothing else uses them).
    pub fn put_many(&self, entries: &[PutEntry<'_>]) -> Result<(), Error> {
        self.put_many_tries(entries, 1)
    }

    /// [`Store::put_many`], tried again while it finds a lock busy, up to `attempts`
    /// times in all (each waiting at most the write timeout); a batch still not written
    /// is counted as dropped once.
    pub(crate) fn put_many_tries(
        &self,
        entries: &[PutEntry<'_>],
        attempts: usize,
    ) -> Result<(), Error> {
        let mut result = self.put_many_until(entries, self.config.write_timeout);
        for _ in 1..attempts {
            match &result {
                Err(e) if is_busy(e) => {
                    result = self.put_many_until(entries, self.config.write_timeout);
                }
                _ => break,
            }
        }
        self.count_dropped(&result, entries.len());
        if result.is_ok() {
            self.maybe_checkpoint();
            self.maybe_trim();
        }
        result
    }

    fn put_many_until(&self, entries: &[PutEntry<'_>], wait: Duration) -> Result<(), Error> {
        if !self.writable {
            return Err(Error::ReadOnly {
                path: self.layout.dir.clone(),
            });
        }
        if entries.is_empty() {
            return Ok(());
        }
        let keys: Vec<Key> = entries.iter().map(|e| e.key).collect();
        if self.supersede_pending(&keys, wait).is_none() {
            return Err(Error::Busy {
                path: self.layout.dir.clone(),
                what: "the background writer",
                waited_ms: millis(wait),
            });
        }
        // Held until the entries are indexed, as in `put_with`.
        let (_shared, deadline) = self.shared_gc_lock(wait)?;
        // Entries often share byte slices (the same object under several keys): a slice
        // seen before, same address and length, is not hashed again. The slices are
        // borrowed for the whole call, so equal address and length mean equal bytes.
        let mut ids: HashMap<(usize, usize), BlobId> = HashMap::new();
        let mut stored: HashMap<BlobId, Stored> = HashMap::new();
        let mut blob_of = Vec::with_capacity(entries.len());
        for entry in entries {
            let slice = (entry.bytes.as_ptr() as usize, entry.bytes.len());
            let id = *ids.entry(slice).or_insert_with(|| BlobId::of(entry.bytes));
            if let std::collections::hash_map::Entry::Vacant(slot) = stored.entry(id) {
                slot.insert(self.store_blob(&id, entry.bytes)?);
            }
            blob_of.push(id);
        }
        self.pause_at(PausePoint::AfterRename);
        let now_ms = self.config.clock.now_ms();
        let mut rows: Vec<NewEntry<'_>> = entries
            .iter()
            .zip(&blob_of)
            .map(|(entry, id)| NewEntry {
                key: &entry.key,
                blob: id,
                size: entry.bytes.len() as u64,
                stored_size: stored.get(id).map_or(0, Stored::size),
                name: entry.meta.and_then(|m| m.name.as_deref()),
                components: entry.meta.and_then(|m| m.components.as_ref()),
                now_ms,
                inline: stored.get(id).and_then(Stored::inline),
            })
            .collect();
        // Key order turns random B-tree inserts into appends; the sort is stable, so
        // the last occurrence of a key is still inserted last.
        rows.sort_by_key(|row| *row.key);
        self.retry_index(deadline.after_work(), |index| index.insert_many(&rows))?;
        self.pause_at(PausePoint::AfterIndex);
        Ok(())
    }

    pub(crate) fn pause_at(&self, point: PausePoint) {
        if self.pause == Some(point) {
            pause_point::pause(point);
        }
    }

    /// Stores the blob `id` of `bytes`: compressed in memory when small enough to go in
    /// the index with its entry ([`StoreConfig::inline_max`]), else as a file (kept if a
    /// sound one exists).
    fn store_blob(&self, id: &BlobId, bytes: &[u8]) -> Result<Stored, Error> {
        let size = bytes.len() as u64;
        if size <= self.config.inline_max {
            return blob::encode_to_vec(bytes, self.config.compression_level)
                .map(Stored::Inline)
                .map_err(|e| write_err(&self.layout.index, e));
        }
        let path = self.layout.blob_path(id);
        Ok(Stored::File(match existing_sound(&path, id, size) {
            Some(len) => len,
            None => self.write_blob(&path, bytes)?,
        }))
    }

    /// Compresses `bytes` into a temp file, syncs it and renames it to `path`. Returns
    /// the file's length.
    fn write_blob(&self, path: &Path, bytes: &[u8]) -> Result<u64, Error> {
        let tmp_dir = &self.layout.tmp;
        let mut tmp = tempfile::Builder::new()
            .prefix("blob-")
            .tempfile_in(tmp_dir)
            .map_err(|e| write_err(tmp_dir, e))?;
        let tmp_path = tmp.path().to_path_buf();
        blob::encode(tmp.as_file_mut(), bytes, self.config.compression_level)
            .map_err(|e| write_err(&tmp_path, e))?;
        if self.config.durability != Durability::None {
            tmp.as_file()
                .sync_data()
                .map_err(|e| write_err(&tmp_path, e))?;
        }
        let stored = tmp
            .as_file()
            .metadata()
            .map_err(|e| io_err(&tmp_path, e))?
            .len();
        self.pause_at(PausePoint::AfterTmp);
        let tmp = match tmp.persist(path) {
            Ok(_) => None,
            Err(e) if e.error.kind() == io::ErrorKind::NotFound => Some(e.file),
            Err(e) => return Err(write_err(path, e.error)),
        };
        let shard = path.parent().unwrap_or(&self.layout.blobs);
        if let Some(tmp) = tmp {
            create_private_dir(shard).map_err(|e| write_err(shard, e))?;
            tmp.persist(path).map_err(|e| write_err(path, e.error))?;
        }
        if self.config.durability == Durability::Full {
            File::open(shard)
                .and_then(|d| d.sync_all())
                .map_err(|e| write_err(shard, e))?;
        }
        Ok(stored)
    }

    /// Removes the entry for `key` (and a background put of it still queued). Returns
    /// whether there was one. Its blob is deleted
    /// at once when no other entry shares it and no writer is active, else by the next
    /// [`Store::gc`].
    pub fn remove(&self, key: &Key) -> Result<bool, Error> {
        // A queued background put of the key is removed with it.
        let Some(queued) =
            self.supersede_pending(std::slice::from_ref(key), self.config.busy_timeout)
        else {
            return Err(Error::Busy {
                path: self.layout.dir.clone(),
                what: "the background writer",
                waited_ms: millis(self.config.busy_timeout),
            });
        };
        let removed = self.remove_indexed(key)?;
        Ok(removed || queued > 0)
    }

    /// [`Store::remove`] of the entry in the index.
    fn remove_indexed(&self, key: &Key) -> Result<bool, Error> {
        let Some(Found { blob, .. }) = self.index().lookup(key)? else {
            return Ok(false);
        };
        if !self.writable {
            return Err(Error::ReadOnly {
                path: self.layout.index.clone(),
            });
        }
        let removed = self
            .index()
            .evict(key, Some(&blob), UnitState::Evicted, None)?;
        if removed
            && let Some(_guard) = self.gc_lock.try_exclusive()?
            && !self.index().blob_referenced(&blob)?
        {
            remove_file_if_exists(&self.layout.blob_path(&blob))?;
        }
        Ok(removed)
    }

    /// Removes from `used` the backend identities whose recorded last use is within the
    /// access resolution: like an access time, a last use only needs refreshing once
    /// in a while (foreignness is judged in days), and a warm start that skips it
    /// writes nothing to the index. An identity the index cannot be asked about stays.
    fn forget_recent_backends(&self, used: &mut HashMap<[u8; 32], String>) {
        if used.is_empty() {
            return;
        }
        let resolution =
            i64::try_from(self.config.access_resolution.as_millis()).unwrap_or(i64::MAX);
        let since_ms = self.config.clock.now_ms().saturating_sub(resolution);
        let ids: Vec<[u8; 32]> = used.keys().copied().collect();
        let recent = without_waiting(|| self.index().backends_seen_since(&ids, since_ms));
        for id in recent.unwrap_or_default() {
            used.remove(&id);
        }
    }

    /// Adds `deltas` to the counters kept beside the index (`read_counters.rs`),
    /// waiting for another process's lock on them until `deadline`.
    pub(crate) fn add_read_counters(
        &self,
        deltas: &[(&str, i64)],
        deadline: Instant,
    ) -> Result<(), Error> {
        let started = Instant::now();
        self.read_counters
            .add(deltas, deadline)
            .map_err(|e| self.read_counters_err(e, started, write_err))
    }

    /// The counters kept beside the index, waiting for a writer's lock on them at most
    /// [`StoreConfig::busy_timeout`] (they are read for statistics, never by a lookup).
    pub(crate) fn counters_beside_index(&self) -> Result<BTreeMap<String, i64>, Error> {
        let started = Instant::now();
        self.read_counters
            .read(started + self.config.busy_timeout)
            .map_err(|e| self.read_counters_err(e, started, io_err))
    }

    /// An error of the read counters' file: `Busy` when its lock stayed held, else
    /// `other`'s error naming the file.
    fn read_counters_err(
        &self,
        e: io::Error,
        started: Instant,
        other: fn(&Path, io::Error) -> Error,
    ) -> Error {
        match e.kind() {
            io::ErrorKind::WouldBlock => Error::Busy {
                path: self.layout.read_counters.clone(),
                what: "the read counters' lock",
                waited_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            },
            _ => other(&self.layout.read_counters, e),
        }
    }

    /// Counts and sizes, and the counters summed over every process (this one's
    /// batched counters are flushed first).
    pub fn stats(&self) -> Result<Stats, Error> {
        self.flush()?;
        let read = self.counters_beside_index()?;
        let read_count = |name: &str| read.get(name).map_or(0, |n| u64::try_from(*n).unwrap_or(0));
        let index = self.index();
        let (entries, blobs, bytes_uncompressed, bytes_on_disk) = index.totals()?;
        Ok(Stats {
            entries,
            blobs,
            bytes_uncompressed,
            bytes_on_disk,
            hits: index
                .counter(counter::HITS)?
                .saturating_add(read_count(counter::HITS)),
            misses: index
                .counter(counter::MISSES)?
                .saturating_add(read_count(counter::MISSES)),
            puts: index.counter(counter::PUTS)?,
            evictions: index.counter(counter::EVICTIONS)?,
            corrupt: index.counter(counter::CORRUPT)?,
            corrupt_index_recoveries: index.counter(counter::CORRUPT_INDEX_RECOVERIES)?,
            lookup_timeouts: index.counter(counter::LOOKUP_TIMEOUTS)?,
            puts_dropped: index.counter(counter::PUTS_DROPPED)?,
            writes_queued: index.counter(counter::WRITES_QUEUED)?,
            writes_written: index.counter(counter::WRITES_WRITTEN)?,
            writes_dropped: index.counter(counter::WRITES_DROPPED)?,
        })
    }

    /// Calls `f` for every entry in key order until it returns false. Entries are read
    /// a page at a time (memory stays flat) and no lock is held while `f` runs, so `f`
    /// may use the store; entries changed meanwhile may or may not be seen.
    pub fn for_each_entry(&self, mut f: impl FnMut(&EntryInfo) -> bool) -> Result<(), Error> {
        let _unmapped = self.unmapped()?;
        let mut after: Option<Key> = None;
        loop {
            let page = self.index().entries_after(after.as_ref(), PAGE)?;
            for entry in &page {
                if !f(entry) {
                    return Ok(());
                }
            }
            match page.last() {
                Some(last) if page.len() == PAGE as usize => after = Some(last.key),
                _ => return Ok(()),
            }
        }
    }

    /// The last entry stored with components for unit `(namespace, name)`, and whether
    /// it is still there. Compare its components with a missing key's
    /// ([`KeyComponents::differences`](crate::KeyComponents::differences)) to explain the miss.
    pub fn last_unit(&self, namespace: &str, name: &str) -> Result<Option<UnitRecord>, Error> {
        self.index().last_unit(namespace, name)
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.stop_writer();
        self.stop_trim();
        // Bounded like a put: dropping a store never waits long on another process.
        let _ = self.flush_until(Instant::now() + self.config.write_timeout);
        // A checkpoint is work of this process (bounded by its busy timeout and the log's
        // size), not a wait on another one.
        if self.writable && self.wait_for_checkpoint(CHECKPOINT_WAIT) {
            self.index().shrink_log();
        }
    }
}

/// Longest a closing store waits for its own checkpoint thread before it leaves the log
/// as it is.
const CHECKPOINT_WAIT: Duration = Duration::from_secs(1);

/// What is left of a put's wait: the time spent compressing and writing the blob is
/// work, not waiting, and does not count against [`StoreConfig::write_timeout`].
struct WaitBudget {
    left: Duration,
}

impl WaitBudget {
    /// The deadline for the waits after the work done so far.
    fn after_work(&self) -> Instant {
        Instant::now() + self.left
    }
}

/// `d` in whole milliseconds.
pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Maps the index again when dropped (see [`Store::unmapped`]).
pub(crate) struct Unmapped<'a>(&'a Store);

impl Drop for Unmapped<'_> {
    fn drop(&mut self) {
        // Without the map, lookups are only slower.
        let _ = self.0.index().set_mapped(true);
    }
}

/// Where a blob being put went.
enum Stored {
    /// A file of this many bytes.
    File(u64),
    /// These bytes, to go in the index with the entry.
    Inline(Vec<u8>),
}

impl Stored {
    fn size(&self) -> u64 {
        match self {
            Stored::File(len) => *len,
            Stored::Inline(bytes) => bytes.len() as u64,
        }
    }

    fn inline(&self) -> Option<&[u8]> {
        match self {
            Stored::File(_) => None,
            Stored::Inline(bytes) => Some(bytes),
        }
    }
}

/// Rows read per page when iterating the index.
pub(crate) const PAGE: u32 = 256;

/// The length of the blob file at `path` if it exists and verifies; a damaged copy
/// returns None (and is then overwritten by the caller's rename).
fn existing_sound(path: &Path, id: &BlobId, size: u64) -> Option<u64> {
    let stored = std::fs::metadata(path).ok()?.len();
    let mut scratch = Vec::new();
    blob::read_verified(path, id, Some(size), &mut scratch).ok()?;
    Some(stored)
}

/// Whether the cache directory can be written, found by opening the gc lock file for
/// writing (it has to exist anyway).
fn probe_writable(lock: &Path) -> Result<bool, Error> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(lock)
    {
        Ok(_) => Ok(true),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EROFS | libc::EACCES)) => Ok(false),
        Err(e) => Err(write_err(lock, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Store>();
    }

    #[test]
    fn counters_convert() {
        assert_eq!(crate::index::to_u64(-1), 0);
    }
}
