//! Progress reporting for long work (gc, verify).

/// Receives progress of long work. Implementations must be cheap: `inc` is called once
/// per item.
pub trait Progress {
    /// Work of `total` items begins.
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
