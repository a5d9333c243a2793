//! Waiting for another connection's lock: short sleeps first.
//!
//! SQLite's own busy handler (`busy_timeout`) sleeps 1, 2, 5, 10 ms ... between tries.
//! A write transaction here lasts tens of microseconds, so with that schedule a writer
//! that finds the lock taken sleeps for a hundred of them, and with more processes than
//! cores (the holder preempted, others queueing) total throughput falls as processes
//! are added: 8 processes doing 1 put in 10 do 15 % less work than 2
//! (`cargo run --release -p jitcache-bench -- --only 4`). This handler sleeps 50 µs for
//! the first 100 tries (5 ms), then 1 ms, and gives up after the configured busy
//! timeout, measured from the tries' schedule.
//!
//! A thread can also ask for no wait at all ([`without_waiting`]): the JIT's paths
//! (lookups, puts, access-time flushes) try once, and on a busy database let go of the
//! store's index and wait outside it, up to their own bound (`Store::retry_index`), so
//! no thread ever holds the index while it waits on another process.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rusqlite::Connection;

/// Tries that sleep [`SHORT`] before the handler falls back to [`LONG`].
const SHORT_TRIES: u64 = 100;
const SHORT: Duration = Duration::from_micros(50);
const LONG: Duration = Duration::from_millis(1);

/// The longest busy timeout of the stores opened in this process, in µs. The handler
/// is a plain function (what SQLite calls), so it cannot carry each connection's own;
/// stores of one process normally share one configuration.
static TIMEOUT_US: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Set while this thread runs [`without_waiting`]: the handler gives up at once.
    static NO_WAIT: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with the busy handler giving up at once on this thread: a statement that
/// meets another connection's lock fails with `SQLITE_BUSY` instead of sleeping.
pub(crate) fn without_waiting<T>(f: impl FnOnce() -> T) -> T {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            NO_WAIT.with(|w| w.set(self.0));
        }
    }
    let _reset = Reset(NO_WAIT.with(|w| w.replace(true)));
    f()
}

/// Installs the handler on `conn`, waiting up to `timeout` for a lock.
pub(super) fn wait_up_to(conn: &mut Connection, timeout: Duration) -> rusqlite::Result<()> {
    let us = u64::try_from(timeout.as_micros()).unwrap_or(u64::MAX);
    TIMEOUT_US.fetch_max(us, Ordering::Relaxed);
    conn.busy_handler(Some(on_busy))
}

/// Time slept before the try numbered `tries` (0-based), by the schedule.
fn waited(tries: u64) -> Duration {
    let short = tries.min(SHORT_TRIES);
    let long = tries.saturating_sub(SHORT_TRIES);
    SHORT * u32::try_from(short).unwrap_or(u32::MAX)
        + LONG * u32::try_from(long).unwrap_or(u32::MAX)
}

/// SQLite's busy callback: `tries` is how many times it was called for this lock.
/// Returns whether to try again.
fn on_busy(tries: i32) -> bool {
    if NO_WAIT.with(Cell::get) {
        return false;
    }
    let tries = u64::try_from(tries).unwrap_or(0);
    let timeout = Duration::from_micros(TIMEOUT_US.load(Ordering::Relaxed));
    if waited(tries) >= timeout {
        return false;
    }
    std::thread::sleep(if tries < SHORT_TRIES { SHORT } else { LONG });
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_is_short_sleeps_then_milliseconds() {
        assert_eq!(waited(0), Duration::ZERO);
        assert_eq!(waited(100), Duration::from_millis(5));
        assert_eq!(waited(110), Duration::from_millis(15));
        // A 10 s timeout gives up after 5 ms of short sleeps and 9,995 long ones.
        let tries = (0..).find(|&n| waited(n) >= Duration::from_secs(10));
        assert_eq!(tries, Some(100 + 9_995));
    }
}
