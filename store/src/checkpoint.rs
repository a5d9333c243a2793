//! WAL checkpoints off the JIT's path.
//!
//! SQLite's automatic checkpoint runs in whichever connection commits the transaction
//! that takes the write-ahead log past 1,000 pages, inside that commit, and fsyncs the
//! database: a put that happened to cross the mark took 300 ms and more in the
//! benchmark of 8 processes (`benches/src/maintenance.rs`). So the store's connections
//! turn it off (`wal_autocheckpoint=0`, `index/open.rs`), and after a put that finds the
//! log larger than [`CHECKPOINT_AT`] a thread of its own, with a connection of its own,
//! runs a passive checkpoint (which never blocks writers or readers). At most one such
//! thread runs per store. The last connection to close the database does not checkpoint
//! (`SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE`, `index/open.rs`); a store that closes with a log
//! longer than `LOG_KEEP_MAX` checkpoints and truncates it if nobody else is using the
//! index (`Index::shrink_log`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rusqlite::config::DbConfig;

use crate::store::Store;

/// The size of the write-ahead log past which a put starts a checkpoint (1,000 pages
/// of 4 KiB, SQLite's own default mark).
pub(crate) const CHECKPOINT_AT: u64 = 4 << 20;

impl Store {
    /// After a put: starts a passive checkpoint on a thread of its own when the log is
    /// past [`CHECKPOINT_AT`] and none of this store's is running. Errors only mean no
    /// checkpoint this time.
    pub(crate) fn maybe_checkpoint(&self) {
        let wal = self.layout.index.with_extension("sqlite-wal");
        if std::fs::metadata(&wal).map_or(true, |m| m.len() < CHECKPOINT_AT) {
            return;
        }
        if self.checkpointing.swap(true, Ordering::AcqRel) {
            return;
        }
        let running = Arc::clone(&self.checkpointing);
        let index = self.layout.index.clone();
        let spawned = std::thread::Builder::new()
            .name("jitcache-checkpoint".into())
            .spawn(move || {
                if let Ok(conn) = rusqlite::Connection::open(&index) {
                    // Like the store's own connections: closing this one, even last,
                    // leaves the log in place (`index/open.rs`).
                    let _ = conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true);
                    let _ = conn.busy_timeout(Duration::from_millis(100));
                    let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                }
                running.store(false, Ordering::Release);
            });
        if spawned.is_err() {
            self.checkpointing.store(false, Ordering::Release);
        }
    }
}

impl Store {
    /// Waits at most `timeout` for this store's checkpoint thread, if one runs; true
    /// when none runs any more. A closing store waits so that its own truncation of the
    /// log (`Index::shrink_log`) does not find the log busy with that checkpoint.
    pub(crate) fn wait_for_checkpoint(&self, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        while self.checkpointing.load(Ordering::Acquire) {
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        true
    }
}

/// A flag shared with the checkpoint thread: whether one runs.
pub(crate) fn flag() -> Arc<AtomicBool> {
    Arc::new(AtomicBool::new(false))
}
