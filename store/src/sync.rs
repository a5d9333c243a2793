//! Locking that survives a panic elsewhere.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `mutex`, recovering its data if a thread panicked while holding it.
///
/// Every critical section in jitcache leaves its data consistent at each step, so a
/// panic in one caller (a host callback that panicked, say) must not make the cache
/// unusable for every later caller, as a poisoned lock's `unwrap` would.
///
/// ```
/// use std::sync::Mutex;
/// let counter = Mutex::new(1);
/// *jitcache_store::sync::lock(&counter) += 1;
/// assert_eq!(*jitcache_store::sync::lock(&counter), 2);
/// ```
pub fn lock<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
