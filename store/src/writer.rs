//! The background writer: puts handed to a bounded queue and written by one thread of
//! the process, with a connection of its own, so a JIT's compile path costs a copy into
//! the queue instead of a compression, a blob write and an index commit.
//!
//! - [`Store::put_background`] queues the put and returns. Until it is written, a
//!   [`Store::get`] of the key in this process answers from the queue, so the result is
//!   usable at once; other processes see it once it is written.
//! - The queue holds [`StoreConfig::background_queue`] puts (default 256). A put that
//!   finds it full is written on the caller's thread instead, as [`Store::put_with`]
//!   does, with the usual [`StoreConfig::write_timeout`]: a burst slows down to the
//!   speed of synchronous puts rather than losing work or growing memory without bound.
//! - The writer takes every put waiting when it wakes and writes them with
//!   [`Store::put_many`]: one index transaction for a burst of compiles, each bounded by
//!   the write timeout. A batch that finds a lock busy (a step of gc, another
//!   process's commit) is tried again, three times in all, then dropped and counted:
//!   the writer's waits cost no caller anything, a dropped batch costs its compiles.
//! - A [`CompileLock`] handed with a put is released once the put is written (or
//!   dropped), so other processes waiting to compile the key find it stored instead of
//!   compiling it again. The hold is bounded: each batch waits at most three write
//!   timeouts, and a waiter's own single-flight timeout lets it compile anyway.
//! - [`Store::flush_writes`] waits, with a bound, until everything queued before it is
//!   written. Dropping the store drains the queue waiting at most
//!   [`StoreConfig::writer_drain_timeout`] (default 2 s); what is still queued then is
//!   dropped and counted in [`Stats::writes_dropped`](crate::Stats::writes_dropped).
//!
//! A process killed with puts in the queue loses them (they are recompiled by the next
//! process); a process killed mid-write leaves what a killed [`Store::put_with`] leaves:
//! the index is never half-written, and a blob not yet indexed is an orphan for gc.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

#[cfg(doc)]
use crate::Stats;
use crate::config::StoreConfig;
use crate::entry::{EntryMeta, PutEntry};
use crate::error::Error;
use crate::flight::CompileLock;
use crate::key::Key;
use crate::pause_point::PausePoint;
use crate::store::Store;
use crate::sync::lock;

/// Puts the writer takes into one [`Store::put_many`] at most.
const MAX_BATCH: usize = 64;

/// How many times the writer tries a batch that finds a lock busy before it drops it:
/// each try waits at most [`StoreConfig::write_timeout`].
const WRITE_ATTEMPTS: usize = 3;

/// One queued put.
struct Job {
    key: Key,
    bytes: Arc<[u8]>,
    meta: EntryMeta,
    /// Released when the put is written or dropped.
    _lock: Option<CompileLock>,
}

/// What the caller's threads and the writer thread share.
struct Queue {
    jobs: VecDeque<Job>,
    /// Puts taken by the writer and not yet written or dropped.
    in_flight: usize,
    /// The keys of those puts.
    writing: Vec<Key>,
    /// The bytes of every queued or in-flight put, by key, for lookups in this process.
    pending: HashMap<Key, Arc<[u8]>>,
    /// Set when the store drops: the writer finishes what is queued and exits.
    closing: bool,
}

/// The shared state of a running writer.
pub(crate) struct Shared {
    queue: Mutex<Queue>,
    /// Signalled when a job is queued and when the store closes.
    work: Condvar,
    /// Signalled when the writer finished a batch.
    done: Condvar,
    /// Counts not yet moved into the store's access batch (see `Store::flush`).
    queued: AtomicI64,
    written: AtomicI64,
    dropped: AtomicI64,
    /// Batches the writer has committed: a lookup that sees it change ends its read
    /// snapshot, which may predate the commit (`index/snapshot.rs`).
    batches: AtomicU64,
    /// The value of `batches` when a lookup last looked.
    batches_seen: AtomicU64,
}

/// A running background writer.
pub(crate) struct Writer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// Counts of the background writer since they were last taken.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct WriterCounts {
    pub queued: i64,
    pub written: i64,
    pub dropped: i64,
}

impl Store {
    /// Hands the put of `bytes` under `key` to the background writer and returns at
    /// once; see the module `writer.rs` for what is guaranteed. `lock`, when given, is
    /// released once the entry is written (or the put dropped), so other processes
    /// waiting for the key find it instead of compiling it again.
    ///
    /// A lookup of `key` in this process finds the bytes at once. When the queue is
    /// full the put is written on this thread, as [`Store::put_with`] would (and fails
    /// like it).
    ///
    /// ```
    /// # fn main() -> Result<(), jitcache_store::Error> {
    /// use std::time::Duration;
    /// use jitcache_store::{EntryMeta, KeyBuilder, Store, StoreConfig};
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let store = Store::open(dir.path(), StoreConfig::default())?;
    /// let key = KeyBuilder::new("c", "main.c").unit(b"int main;").build();
    /// store.put_background(&key, b"object".to_vec(), EntryMeta::default(), None)?;
    /// assert_eq!(store.get(&key)?.as_deref(), Some(&b"object"[..]));
    /// assert_eq!(store.flush_writes(Duration::from_secs(5)), 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn put_background(
        &self,
        key: &Key,
        bytes: Vec<u8>,
        meta: EntryMeta,
        lock: Option<CompileLock>,
    ) -> Result<(), Error> {
        if !self.writable {
            return Err(Error::ReadOnly {
                path: self.layout.dir.clone(),
            });
        }
        let shared = self.writer();
        let job = Job {
            key: *key,
            bytes: bytes.into(),
            meta,
            _lock: lock,
        };
        {
            let mut queue = lock_queue(&shared);
            if queue.jobs.len() < self.config.background_queue.max(1) {
                queue.pending.insert(job.key, Arc::clone(&job.bytes));
                queue.jobs.push_back(job);
                shared.queued.fetch_add(1, Ordering::Relaxed);
                shared.work.notify_one();
                return Ok(());
            }
        }
        // Full: written here, bounded like any put; the lock drops after it.
        self.put_with(&job.key, &job.bytes, &job.meta)
    }

    /// Waits until every put queued for the background writer before this call is
    /// written (or dropped), at most `timeout`. Returns how many are still queued or
    /// being written: 0 when all are done.
    pub fn flush_writes(&self, timeout: Duration) -> usize {
        let Some(shared) = self.writer_if_started() else {
            return 0;
        };
        wait_drained(&shared, Instant::now() + timeout)
    }

    /// How many background puts wait in the queue, not yet taken by the writer thread.
    pub fn queued_writes(&self) -> usize {
        self.writer_if_started()
            .map_or(0, |shared| lock_queue(&shared).jobs.len())
    }

    /// Makes the background puts of `keys` not land after a put or removal that
    /// follows them: those still queued leave the queue (the later call replaces them;
    /// they no longer count as queued), and a batch writing one of them is waited for,
    /// at most `wait`. Returns how many queued puts left the queue, or None when that
    /// wait ran out.
    pub(crate) fn supersede_pending(&self, keys: &[Key], wait: Duration) -> Option<usize> {
        let Some(shared) = self.writer_if_started() else {
            return Some(0);
        };
        let deadline = Instant::now() + wait;
        let mut queue = lock_queue(&shared);
        if !keys.iter().any(|k| queue.pending.contains_key(k)) {
            return Some(0);
        }
        let (removed, kept): (Vec<Job>, Vec<Job>) = queue
            .jobs
            .drain(..)
            .partition(|job| keys.contains(&job.key));
        queue.jobs = kept.into();
        for job in &removed {
            if queue
                .pending
                .get(&job.key)
                .is_some_and(|b| Arc::ptr_eq(b, &job.bytes))
            {
                queue.pending.remove(&job.key);
            }
        }
        shared
            .queued
            .fetch_sub(removed.len() as i64, Ordering::Relaxed);
        let mut done = true;
        while keys.iter().any(|k| queue.writing.contains(k)) {
            let now = Instant::now();
            if now >= deadline {
                done = false;
                break;
            }
            queue = shared
                .done
                .wait_timeout(queue, deadline - now)
                .map_or_else(|e| e.into_inner().0, |(q, _)| q);
        }
        drop(queue);
        let superseded = removed.len();
        // Their compile locks go here, outside the queue's lock.
        drop(removed);
        done.then_some(superseded)
    }

    /// The bytes of puts of `keys` still waiting for the writer, taken before a
    /// [`Store::get_many`] reads the index: a put written after this is in the index
    /// the batch reads, and one still waiting is newer than it. None without any.
    pub(crate) fn pending_many(&self, keys: &[Key]) -> Option<Vec<Option<Arc<[u8]>>>> {
        let shared = self.writer_if_started()?;
        let queue = lock_queue(&shared);
        if queue.pending.is_empty() {
            return None;
        }
        Some(keys.iter().map(|k| queue.pending.get(k).cloned()).collect())
    }

    /// The bytes of a put of `key` still waiting for the background writer. When there
    /// are none and the writer has committed since the last look, the read snapshot is
    /// ended, so the lookup that follows sees what the writer wrote.
    pub(crate) fn pending_write(&self, key: &Key) -> Option<Arc<[u8]>> {
        let shared = self.writer_if_started()?;
        if let Some(bytes) = lock_queue(&shared).pending.get(key).cloned() {
            return Some(bytes);
        }
        let batches = shared.batches.load(Ordering::SeqCst);
        if shared.batches_seen.swap(batches, Ordering::SeqCst) != batches {
            self.index().end_snapshot();
        }
        None
    }

    /// The writer's counts since the last call (moved into the access batch by flushes).
    pub(crate) fn take_writer_counts(&self) -> WriterCounts {
        self.writer_if_started()
            .map_or_else(WriterCounts::default, |shared| shared.take_counts())
    }

    /// Drains the queue, waiting at most [`StoreConfig::writer_drain_timeout`]; drops
    /// and counts what is left, and stops the thread (from `Drop`).
    pub(crate) fn stop_writer(&self) {
        let Some(mut writer) = lock(&self.writer).take() else {
            return;
        };
        let shared = Arc::clone(&writer.shared);
        let deadline = Instant::now() + self.config.writer_drain_timeout;
        wait_drained(&shared, deadline);
        let left = {
            let mut queue = lock_queue(&shared);
            queue.closing = true;
            let left = std::mem::take(&mut queue.jobs);
            for job in &left {
                queue.pending.remove(&job.key);
            }
            shared.work.notify_all();
            left.len()
        };
        shared.dropped.fetch_add(left as i64, Ordering::Relaxed);
        // The batch in flight, if any, is bounded by its tries of the write timeout: each
        // try's wait, and as long again for its work.
        let in_flight_bound = self.config.write_timeout * (2 * WRITE_ATTEMPTS as u32);
        if let Some(thread) = writer.thread.take()
            && wait_drained(&shared, Instant::now() + in_flight_bound) == 0
        {
            let _ = thread.join();
        }
        // The store's last flush (in `Drop`) writes these.
        let counts = shared.take_counts();
        let mut batch = self.batch();
        batch.writes_queued += counts.queued;
        batch.writes_written += counts.written;
        batch.writes_dropped += counts.dropped;
    }

    fn writer_if_started(&self) -> Option<Arc<Shared>> {
        lock(&self.writer).as_ref().map(|w| Arc::clone(&w.shared))
    }

    /// The running writer, started on first use. Its thread opens its own connection.
    fn writer(&self) -> Arc<Shared> {
        let mut slot = lock(&self.writer);
        if let Some(writer) = slot.as_ref() {
            return Arc::clone(&writer.shared);
        }
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                jobs: VecDeque::new(),
                in_flight: 0,
                writing: Vec::new(),
                pending: HashMap::new(),
                closing: false,
            }),
            work: Condvar::new(),
            done: Condvar::new(),
            queued: AtomicI64::new(0),
            written: AtomicI64::new(0),
            dropped: AtomicI64::new(0),
            batches: AtomicU64::new(0),
            batches_seen: AtomicU64::new(0),
        });
        let root = self.layout.root.clone();
        let config = self.config.clone();
        let theirs = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("jitcache-writer".into())
            .spawn(move || run(&root, config, &theirs))
            .ok();
        if thread.is_none() {
            // No thread: every put is dropped (and counted) rather than queued forever.
            lock_queue(&shared).closing = true;
        }
        *slot = Some(Writer {
            shared: Arc::clone(&shared),
            thread,
        });
        shared
    }
}

impl Shared {
    fn take_counts(&self) -> WriterCounts {
        WriterCounts {
            queued: self.queued.swap(0, Ordering::Relaxed),
            written: self.written.swap(0, Ordering::Relaxed),
            dropped: self.dropped.swap(0, Ordering::Relaxed),
        }
    }
}

fn lock_queue(shared: &Shared) -> std::sync::MutexGuard<'_, Queue> {
    lock(&shared.queue)
}

/// Waits until nothing is queued or in flight, or `deadline`; returns what is left.
fn wait_drained(shared: &Shared, deadline: Instant) -> usize {
    let mut queue = lock_queue(shared);
    loop {
        let left = queue.jobs.len() + queue.in_flight;
        let now = Instant::now();
        if left == 0 || now >= deadline || (queue.closing && queue.in_flight == 0) {
            return left;
        }
        queue = shared
            .done
            .wait_timeout(queue, deadline - now)
            .map_or_else(|e| e.into_inner().0, |(q, _)| q);
    }
}

/// The writer thread: opens its own store, then writes batches until closed.
fn run(root: &std::path::Path, config: StoreConfig, shared: &Shared) {
    let store = Store::open(root, config).ok();
    while let Some(batch) = next_batch(shared) {
        let written = match &store {
            Some(store) => write(store, &batch),
            None => false,
        };
        let counter = if written {
            &shared.written
        } else {
            &shared.dropped
        };
        counter.fetch_add(batch.len() as i64, Ordering::Relaxed);
        shared.batches.fetch_add(1, Ordering::SeqCst);
        let mut queue = lock_queue(shared);
        queue.in_flight = 0;
        queue.writing.clear();
        for job in &batch {
            // A newer put of the same key may be queued meanwhile: keep its bytes.
            if queue
                .pending
                .get(&job.key)
                .is_some_and(|b| Arc::ptr_eq(b, &job.bytes))
            {
                queue.pending.remove(&job.key);
            }
        }
        drop(queue);
        // The compile locks go here, after the entries are in the index.
        drop(batch);
        shared.done.notify_all();
    }
}

/// Waits for work; takes up to [`MAX_BATCH`] jobs. None when closing with nothing left.
fn next_batch(shared: &Shared) -> Option<Vec<Job>> {
    let mut queue = lock_queue(shared);
    loop {
        if !queue.jobs.is_empty() {
            let n = queue.jobs.len().min(MAX_BATCH);
            let batch: Vec<Job> = queue.jobs.drain(..n).collect();
            queue.in_flight = batch.len();
            queue.writing = batch.iter().map(|job| job.key).collect();
            return Some(batch);
        }
        if queue.closing {
            return None;
        }
        queue = shared
            .work
            .wait(queue)
            .unwrap_or_else(std::sync::PoisonError::into_inner);
    }
}

/// Writes `batch` in one transaction; whether it was written. A batch that finds the
/// index or the gc lock busy is tried again, [`WRITE_ATTEMPTS`] times in all:
/// the writer is off the JIT's path, so waiting a few write timeouts costs no caller
/// anything, while dropping the batch costs its compiles again in the next process.
fn write(store: &Store, batch: &[Job]) -> bool {
    store.pause_at(PausePoint::BackgroundQueued);
    let entries: Vec<PutEntry<'_>> = batch
        .iter()
        .map(|job| PutEntry {
            key: job.key,
            bytes: &job.bytes,
            meta: Some(&job.meta),
        })
        .collect();
    store.put_many_tries(&entries, WRITE_ATTEMPTS).is_ok()
}
