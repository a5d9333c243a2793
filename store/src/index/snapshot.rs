//! Read snapshots that serve several lookups.
//!
//! A lookup in its own read transaction pays SQLite's WAL read lock: two `fcntl` calls
//! and the transaction's set-up, ~1.9 µs here against ~0.15 µs for the query itself.
//! So a lookup leaves its read transaction open, and the lookups of the next
//! [`MAX_AGE`] reuse it. What that can and cannot change:
//!
//! - A snapshot sees entries as they were when it began. It never answers a miss: a key
//!   it does not have is looked up again in a new snapshot, so an entry another process
//!   has just put (single flight waits for exactly that) is found.
//! - A hit from a snapshot may name an entry removed or replaced since, by gc, `clear`
//!   or another put. Every entry ever stored under a key holds a correct object for that
//!   key, the blob is verified as always, and a blob that is gone is looked up again
//!   fresh: such a hit is as good as one a moment earlier.
//! - Everything else (writes, gc, verify, statistics, iteration) ends the snapshot first:
//!   only [`Index::lookup_recent`] uses it.
//! - An open read transaction keeps SQLite from checkpointing past it, so a snapshot
//!   never lives much beyond [`MAX_AGE`]: the next lookup after that begins a new one, and
//!   when none comes, a reaper thread (one per store, started on the first snapshot,
//!   asleep while there is none) ends it.
//! - Only lookups in a burst (one within [`MAX_AGE`] of the previous) open a snapshot: a
//!   lookup on its own runs in its own transaction, so a process that reads one key (a
//!   JIT's warm start reads its batch's pack, or uses `get_many`) starts no thread.

use std::sync::{Arc, Condvar, Mutex, PoisonError, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::Index;
use super::entries::{Found, lookup_in};
use crate::error::Error;
use crate::key::Key;
use crate::sync::lock;

/// How long one read snapshot serves lookups.
pub(crate) const MAX_AGE: Duration = Duration::from_millis(10);

impl Index {
    /// Ends the read snapshot, if one is open.
    pub fn end_snapshot(&mut self) {
        if self.snapshot.take().is_some() {
            // A read transaction cannot fail to end; if SQLite disagrees, the
            // connection is not in a transaction any more either way.
            let _ = self.conn.execute_batch("COMMIT");
        }
    }

    /// When the open read snapshot began.
    pub(crate) fn snapshot_began(&self) -> Option<Instant> {
        self.snapshot
    }

    fn begin_snapshot(&mut self) -> Result<Instant, Error> {
        self.conn.execute_batch("BEGIN").map_err(|e| self.err(e))?;
        let now = Instant::now();
        self.snapshot = Some(now);
        Ok(now)
    }

    /// [`Index::lookup`] through a read snapshot at most [`MAX_AGE`] old (see the module
    /// docs). Returns what was found and, when this call began a snapshot, when.
    pub fn lookup_recent(&mut self, key: &Key) -> Result<(Option<Found>, Option<Instant>), Error> {
        let reused = self.snapshot.is_some_and(|t| t.elapsed() < MAX_AGE);
        let now = Instant::now();
        let in_a_burst = self
            .last_single_lookup
            .replace(now)
            .is_some_and(|last| now.duration_since(last) < MAX_AGE);
        if !reused && !in_a_burst {
            // A lookup on its own (the first, or the first in a while) keeps nothing
            // open: a process that looks up one key, or one pack, never needs a reaper.
            self.end_snapshot();
            let found = lookup_in(&self.conn, key).map_err(|e| self.err(e))?;
            return Ok((found, None));
        }
        let mut began = None;
        if !reused {
            self.end_snapshot();
            began = Some(self.begin_snapshot()?);
        }
        let mut found = lookup_in(&self.conn, key).map_err(|e| self.err(e));
        if reused && !matches!(found, Ok(Some(_))) {
            // Not in this snapshot: maybe put since it began. Look in a new one.
            self.end_snapshot();
            began = Some(self.begin_snapshot()?);
            found = lookup_in(&self.conn, key).map_err(|e| self.err(e));
        }
        if found.is_err() {
            self.end_snapshot();
        }
        Ok((found?, began))
    }
}

/// Ends a store's read snapshots that nobody reuses within [`MAX_AGE`].
pub(crate) struct Reaper {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
    index: Weak<Mutex<Index>>,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

#[derive(Default)]
struct State {
    /// The snapshot to end: when it began.
    armed: Option<Instant>,
    stop: bool,
}

impl Reaper {
    /// A reaper for the snapshots of `index`; its thread starts on the first [`Reaper::arm`].
    pub fn new(index: &Arc<Mutex<Index>>) -> Reaper {
        Reaper {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                wake: Condvar::new(),
            }),
            thread: Mutex::new(None),
            index: Arc::downgrade(index),
        }
    }

    /// Asks for the snapshot that began at `began` to be ended once it is [`MAX_AGE`]
    /// old, unless a lookup ends it first.
    pub fn arm(&self, began: Instant) {
        let mut thread = lock(&self.thread);
        if thread.is_none() {
            let shared = Arc::clone(&self.shared);
            let index = Weak::clone(&self.index);
            // Without the thread, snapshots still end at the next lookup or write.
            *thread = std::thread::Builder::new()
                .name("jitcache-snapshot-reaper".into())
                .spawn(move || reap(&shared, &index))
                .ok();
        }
        drop(thread);
        let mut state = lock(&self.shared.state);
        state.armed = Some(began);
        self.shared.wake.notify_one();
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        lock(&self.shared.state).stop = true;
        self.shared.wake.notify_one();
        let thread = self
            .thread
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(thread) = thread.take() {
            let _ = thread.join();
        }
    }
}

/// The reaper thread: sleeps until a snapshot is armed, waits until it is [`MAX_AGE`]
/// old, and ends it if it is still open and that old.
fn reap(shared: &Shared, index: &Weak<Mutex<Index>>) {
    let mut state = lock(&shared.state);
    loop {
        if state.stop {
            return;
        }
        let Some(began) = state.armed else {
            state = shared
                .wake
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
            continue;
        };
        let due = began + MAX_AGE;
        let now = Instant::now();
        if now < due {
            state = shared
                .wake
                .wait_timeout(state, due - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            continue;
        }
        state.armed = None;
        drop(state);
        let Some(index) = index.upgrade() else {
            return;
        };
        {
            let mut index = lock(&index);
            match index.snapshot_began() {
                Some(t) if t.elapsed() >= MAX_AGE => index.end_snapshot(),
                // A newer snapshot, armed by its own lookup; or none.
                _ => {}
            }
        }
        drop(index);
        state = lock(&shared.state);
    }
}
