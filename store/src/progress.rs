//! Progress reporting for long work (gc, verify).

/// Receives progress of long work. Implementations must be cheap: `inc` is called once
/// per item.
///
/// Work can come in phases (gc evicts, then walks the blob files): each phase calls
/// `start` again with its own total, and counts from zero.
pub trait Progress {
    /// A phase of `total` items begins (the count restarts at zero).
    fn start(&self, total: u64);
    /// `n` more items are done.
    fn inc(&self, n: u64);
    /// The work is over.
    fn finish(&self);
}

/// A [`Progress`] that reports nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _total: u64) {}
    fn inc(&self, _n: u64) {}
    fn finish(&self) {}
}
