//! Foreign entries first: the backend identities this machine produces are recorded in
//! the index (`backends`: identity, backend name, first and last time used), and the
//! entries of the others are evicted before any least-recently-used entry.
//!
//! An identity ([`KeyComponents::backend_identity`]: backend name and version, flags,
//! target) is recorded when a JIT uses it ([`Store::record_backend`], batched like
//! access times and written at the next flush, so never waited for on a lookup's
//! thread, and like them only when the recorded last use is older than
//! [`StoreConfig::access_resolution`](crate::StoreConfig::access_resolution)) and its
//! last-seen time is raised by every put of an entry made with it. It is *foreign*
//! when it has not been used for [`StoreConfig::foreign_after`] (default 30 days: an
//! old compiler, an old jitcache, a machine's former configuration), or has not been
//! used since a newer identity of the same backend name was first seen (the compiler
//! was upgraded). Entries whose identity was never recorded here (put
//! without components, or copied from elsewhere) are never foreign.
//!
//! A size trim and a capped [`Store::gc`] evict foreign entries first, then least
//! recently used ones while the cache is still over its cap;
//! [`Store::prune_foreign`] (`jitcache gc --prune-foreign`) evicts all of them.
//!
//! [`KeyComponents::backend_identity`]: crate::KeyComponents::backend_identity
//! [`StoreConfig::foreign_after`]: crate::StoreConfig::foreign_after

use crate::store::Store;

impl Store {
    /// Records that this process uses the backend identity `identity` (from
    /// [`KeyComponents::backend_identity`](crate::KeyComponents::backend_identity)) of
    /// the backend named `name` (without its version): its entries are not foreign.
    /// Batched in memory and written with the next flush of access times.
    pub fn record_backend(&self, name: &str, identity: [u8; 32]) {
        self.batch().backends.insert(identity, name.to_owned());
    }
}
