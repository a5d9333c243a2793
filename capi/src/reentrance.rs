//! Re-entrance guard: while a thread loads or unloads code through a cache, it holds that
//! cache's linker lock, and the code that runs meanwhile (a resolver callback, a static
//! constructor or destructor of the unit) must not use the same cache's linker on the
//! same thread: that would deadlock. Such calls get `JITCACHE_ERR_REENTRANT` instead.
//!
//! A compile callback runs while no lock is held, so the guard is lifted around it.

use std::cell::RefCell;

use crate::status::{ApiError, Status};

thread_local! {
    /// Caches (by handle) whose linker this thread may hold, innermost last.
    static BUSY: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

/// Marks `cache` busy on this thread until dropped.
pub(crate) struct Busy {
    cache: u64,
}

/// Marks `cache` busy on this thread.
pub(crate) fn enter(cache: u64) -> Busy {
    let _ = BUSY.try_with(|busy| busy.borrow_mut().push(cache));
    Busy { cache }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let _ = BUSY.try_with(|busy| {
            let mut busy = busy.borrow_mut();
            if let Some(at) = busy.iter().rposition(|c| *c == self.cache) {
                busy.remove(at);
            }
        });
    }
}

/// Lifts every busy mark of `cache` on this thread until dropped.
pub(crate) struct Suspended {
    cache: u64,
    count: usize,
}

/// Lifts the busy marks of `cache` (around a compile callback, where no lock is held).
pub(crate) fn suspend(cache: u64) -> Suspended {
    let count = BUSY
        .try_with(|busy| {
            let mut busy = busy.borrow_mut();
            let before = busy.len();
            busy.retain(|c| *c != cache);
            before - busy.len()
        })
        .unwrap_or(0);
    Suspended { cache, count }
}

impl Drop for Suspended {
    fn drop(&mut self) {
        let _ = BUSY.try_with(|busy| {
            busy.borrow_mut()
                .extend(std::iter::repeat_n(self.cache, self.count));
        });
    }
}

/// Fails if `cache` is busy on this thread.
pub(crate) fn check(cache: u64) -> Result<(), ApiError> {
    let busy = BUSY
        .try_with(|busy| busy.borrow().contains(&cache))
        .unwrap_or(false);
    if busy {
        return Err(ApiError::new(
            Status::Reentrant,
            "this cache is loading or unloading code on this thread (the call came from a \
             resolver callback, or a constructor or destructor of that code); its linker \
             cannot be used until that returns",
        ));
    }
    Ok(())
}
