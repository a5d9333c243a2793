//! A test-only fault-injection hook: `JITCACHE_STORE_PAUSE=<point>` (read once, at open)
//! makes every `put` (or every step of `gc`, for the gc points) stop at that point, print `jitcache-store: paused at <point>` on
//! stderr and wait: a line on stdin resumes the put; end of input (or no stdin) leaves
//! it paused until killed. Crash tests use it to SIGKILL a writer between the steps of
//! a put, and lock tests to hold a writer mid-put. Unset, it costs one comparison per
//! put and nothing on reads.

use std::fmt;
use std::io::Write;
use std::time::Duration;

/// Environment variable naming the pause point.
pub const PAUSE_ENV: &str = "JITCACHE_STORE_PAUSE";

/// A point in `put` where the hook can pause.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PausePoint {
    /// The temp file is written (and synced per durability) but not renamed.
    AfterTmp,
    /// The blob is in place under `blobs/` but not yet indexed.
    AfterRename,
    /// The index row is committed; the gc lock is still held.
    AfterIndex,
    /// A step of gc has committed the eviction of a page of entries and holds the gc
    /// lock; the blob files of those entries are not deleted yet.
    GcEvicted,
    /// A step of gc holds the gc lock and is about to delete an orphaned blob file.
    GcOrphan,
    /// Between two steps of gc: the gc lock is free.
    GcBetweenSteps,
    /// A background put is queued and taken by the writer thread; nothing of it is
    /// written yet (the following points of a put then pause the writer thread too).
    BackgroundQueued,
}

impl PausePoint {
    /// Every pause point.
    pub const ALL: [PausePoint; 7] = [
        PausePoint::AfterTmp,
        PausePoint::AfterRename,
        PausePoint::AfterIndex,
        PausePoint::GcEvicted,
        PausePoint::GcOrphan,
        PausePoint::GcBetweenSteps,
        PausePoint::BackgroundQueued,
    ];

    /// The pause points of a background put, in the order the writer thread reaches
    /// them.
    pub const BACKGROUND: [PausePoint; 4] = [
        PausePoint::BackgroundQueued,
        PausePoint::AfterTmp,
        PausePoint::AfterRename,
        PausePoint::AfterIndex,
    ];

    /// The pause points of a put.
    pub const PUT: [PausePoint; 3] = [
        PausePoint::AfterTmp,
        PausePoint::AfterRename,
        PausePoint::AfterIndex,
    ];

    /// The pause points of gc.
    pub const GC: [PausePoint; 3] = [
        PausePoint::GcEvicted,
        PausePoint::GcOrphan,
        PausePoint::GcBetweenSteps,
    ];

    /// The value of [`PAUSE_ENV`] selecting this point.
    pub fn name(self) -> &'static str {
        match self {
            PausePoint::AfterTmp => "after-tmp",
            PausePoint::AfterRename => "after-rename",
            PausePoint::AfterIndex => "after-index",
            PausePoint::GcEvicted => "gc-evicted",
            PausePoint::GcOrphan => "gc-orphan",
            PausePoint::GcBetweenSteps => "gc-between-steps",
            PausePoint::BackgroundQueued => "background-queued",
        }
    }

    pub(crate) fn from_env() -> Option<PausePoint> {
        let value = std::env::var(PAUSE_ENV).ok()?;
        PausePoint::ALL.into_iter().find(|p| p.name() == value)
    }
}

impl fmt::Display for PausePoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Announces the pause and waits for a line on stdin (returns) or for death.
pub(crate) fn pause(point: PausePoint) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "jitcache-store: paused at {point}");
    let _ = err.flush();
    drop(err);
    let mut line = String::new();
    if std::io::stdin().read_line(&mut line).is_ok_and(|n| n > 0) {
        return;
    }
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}
