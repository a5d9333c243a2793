//! The background upload queue: a bounded channel drained by one thread, so a compile
//! never waits for the network. A full queue drops the upload (counted); dropping the
//! queue waits a bounded time for what is queued, so a short-lived process still gets
//! its uploads out.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use jitcache_store::Key;
use jitcache_store::sync::lock;

use crate::counters::Counter;
use crate::remote::Inner;

/// One object to upload.
pub(crate) struct Job {
    pub key: Key,
    pub name: String,
    pub bytes: Vec<u8>,
}

/// Uploads queued or in progress, with a condition variable signalled when it drops.
#[derive(Default)]
struct Pending {
    count: Mutex<usize>,
    idle: Condvar,
    /// Set when the queue was closed and not drained in time: the thread skips what is
    /// left (already counted as dropped) instead of uploading it late.
    abandoned: AtomicBool,
}

impl Pending {
    fn add(&self, n: isize) {
        let mut count = lock(&self.count);
        *count = count.saturating_add_signed(n);
        if *count == 0 {
            self.idle.notify_all();
        }
    }

    /// Waits until nothing is pending or `timeout` passed; true when nothing is pending.
    fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut count = lock(&self.count);
        while *count > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            count = self
                .idle
                .wait_timeout(count, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }

    fn get(&self) -> usize {
        *lock(&self.count)
    }
}

/// The queue and its thread.
pub(crate) struct Uploader {
    sender: Option<SyncSender<Job>>,
    pending: Arc<Pending>,
    thread: Option<JoinHandle<()>>,
    inner: Arc<Inner>,
}

impl Uploader {
    /// Starts the upload thread; `None` if the thread cannot be started.
    pub fn start(inner: Arc<Inner>, capacity: usize) -> Option<Uploader> {
        let (sender, receiver) = std::sync::mpsc::sync_channel(capacity.max(1));
        let pending = Arc::new(Pending::default());
        let thread = {
            let (inner, pending) = (Arc::clone(&inner), Arc::clone(&pending));
            std::thread::Builder::new()
                .name("jitcache-upload".to_owned())
                .spawn(move || work(&inner, &pending, &receiver))
                .ok()?
        };
        Some(Uploader {
            sender: Some(sender),
            pending,
            thread: Some(thread),
            inner,
        })
    }

    /// Queues `job`; false (and counted) when the queue is full.
    pub fn enqueue(&self, job: Job) -> bool {
        let Some(sender) = &self.sender else {
            return false;
        };
        self.pending.add(1);
        match sender.try_send(job) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.pending.add(-1);
                self.inner.counters.bump(Counter::UploadsDropped);
                false
            }
        }
    }

    /// Waits at most `timeout` for queued uploads; true when none is left.
    pub fn drain(&self, timeout: Duration) -> bool {
        self.pending.wait_idle(timeout)
    }

    /// Closes the queue, waits at most `timeout` for it to empty, and counts what is
    /// left as dropped. The thread is left to finish on its own if it is still busy.
    pub fn close(&mut self, timeout: Duration) {
        self.sender = None;
        if self.pending.wait_idle(timeout) {
            if let Some(thread) = self.thread.take() {
                let _ = thread.join();
            }
        } else {
            self.pending.abandoned.store(true, Ordering::Relaxed);
            let left = self.pending.get() as u64;
            self.inner.counters.add(Counter::UploadsDropped, left);
        }
    }
}

impl Drop for Uploader {
    fn drop(&mut self) {
        if self.sender.is_some() {
            let timeout = self.inner.config.drain_timeout;
            self.close(timeout);
        }
    }
}

/// Uploads sent at once: what is queued when the thread comes for work, up to this many.
const BATCH: usize = 16;

/// The upload thread: uploads what is queued, a batch at a time (concurrently), until the
/// queue is closed and empty.
fn work(inner: &Inner, pending: &Pending, receiver: &Receiver<Job>) {
    while let Ok(first) = receiver.recv() {
        let mut jobs = vec![first];
        while jobs.len() < BATCH {
            match receiver.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let n = jobs.len() as isize;
        if !pending.abandoned.load(Ordering::Relaxed) {
            inner.upload_now(jobs);
        }
        pending.add(-n);
    }
}
