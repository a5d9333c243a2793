//! The persistent store as the drop-in and the key-value store use it: where it lives,
//! reads that never fail (an error is a miss, with one warning), and writes batched into
//! one index transaction.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use jitcache_store::{EntryMeta, Key, PutEntry, Store, StoreConfig};

/// The cache directory the `jitcache` command-line tool uses: `$JITCACHE_DIR`, else
/// `$XDG_CACHE_HOME/jitcache`, else `$HOME/.cache/jitcache` (empty variables count as
/// unset). `None` when none of them is set.
///
/// ```
/// if let Some(dir) = jitcache_cranelift::default_cache_dir() {
///     assert!(dir.is_absolute() || std::env::var_os("JITCACHE_DIR").is_some());
/// }
/// ```
pub fn default_cache_dir() -> Option<PathBuf> {
    let nonempty = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = nonempty("JITCACHE_DIR") {
        return Some(PathBuf::from(dir));
    }
    if let Some(xdg) = nonempty("XDG_CACHE_HOME") {
        return Some(PathBuf::from(xdg).join("jitcache"));
    }
    nonempty("HOME").map(|home| PathBuf::from(home).join(".cache").join("jitcache"))
}

/// Where a tier's store comes from.
#[derive(Clone, Debug)]
pub(crate) enum Location {
    /// No persistent cache.
    Disabled,
    /// [`default_cache_dir`], resolved when the tier opens.
    Default,
    /// This directory.
    Dir(PathBuf),
}

/// An entry to write at the next flush.
struct Pending {
    bytes: Vec<u8>,
    name: String,
}

/// What changes as a tier is used.
#[derive(Default)]
struct State {
    /// Why the store is not used (or no longer written), when it is not.
    bypassed: Option<String>,
    /// Whether the warning about an unusable cache was printed.
    warned: bool,
    /// Whether a write failed: the store is then only read.
    writes_failed: bool,
    /// Entries to write at the next flush, by key.
    pending: HashMap<Key, Pending>,
}

/// The persistent store, or its absence, and what is waiting to be written to it.
pub(crate) struct Tier {
    store: Option<Store>,
    dir: Option<PathBuf>,
    state: RefCell<State>,
}

/// Pending entries at which a tier writes without waiting for a flush.
const FLUSH_AT: usize = 4096;

impl Tier {
    /// Opens the store at `location`. Never fails: an unusable directory gives a tier
    /// that misses every lookup and writes nothing, with one warning on stderr.
    pub(crate) fn open(location: &Location) -> Tier {
        let dir = match location {
            Location::Disabled => None,
            Location::Default => default_cache_dir(),
            Location::Dir(dir) => Some(dir.clone()),
        };
        let mut tier = Tier {
            store: None,
            dir: dir.clone(),
            state: RefCell::new(State::default()),
        };
        match (location, dir) {
            (Location::Disabled, _) => {
                tier.state.get_mut().bypassed = Some("the persistent cache is disabled".into());
            }
            (_, None) => tier.bypass(
                "no cache directory: set JITCACHE_DIR, XDG_CACHE_HOME or HOME, \
                 or call JITBuilder::cache_dir"
                    .to_owned(),
            ),
            (_, Some(dir)) => match Store::open(&dir, StoreConfig::default()) {
                Ok(store) => tier.store = Some(store),
                Err(err) => tier.bypass(err.to_string()),
            },
        }
        tier
    }

    /// Whether lookups can hit: the store opened (a read or write error later is
    /// reported in [`Tier::bypassed`], and lookups go on).
    pub(crate) fn is_usable(&self) -> bool {
        self.store.is_some()
    }

    /// Why the store is not used, when it is not.
    pub(crate) fn bypassed(&self) -> Option<String> {
        self.state.borrow().bypassed.clone()
    }

    /// The cache directory, when there is one.
    pub(crate) fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// Records that the store cannot be used for `reason`, and warns once.
    fn bypass(&self, reason: String) {
        let mut state = self.state.borrow_mut();
        if !state.warned {
            state.warned = true;
            let dir = self
                .dir
                .as_deref()
                .map_or_else(|| "(none)".into(), |d| d.display().to_string());
            eprintln!(
                "jitcache: warning: cache at {dir} is unusable, compiling without it: {reason}"
            );
        }
        state.bypassed.get_or_insert(reason);
    }

    /// The bytes stored under `key` (or waiting to be written under it); any store
    /// error is a miss.
    ///
    /// The lookup is a batch of one (`Store::get_many`): its own read transaction. A
    /// `Store::get` in a burst of lookups keeps a read snapshot open, and looks a miss
    /// up again in a new one, waking the store's snapshot reaper: a cold module misses
    /// on every function, and 1,000 misses on an empty store took ~9 ms that way against
    /// ~3 ms as batches of one.
    pub(crate) fn get(&self, key: &Key) -> Option<Vec<u8>> {
        if let Some(pending) = self.state.borrow().pending.get(key) {
            return Some(pending.bytes.clone());
        }
        let store = self.store.as_ref()?;
        match store.get_many(std::slice::from_ref(key)) {
            Ok(mut found) => found.pop().flatten(),
            Err(err) => {
                self.bypass(err.to_string());
                None
            }
        }
    }

    /// Queues `bytes` to be stored under `key` at the next [`Tier::flush`] (or now, when
    /// many are queued: then returns how many were written). `name` is what
    /// `jitcache ls` shows.
    pub(crate) fn put_later(&self, key: Key, bytes: Vec<u8>, name: String) -> u64 {
        let mut state = self.state.borrow_mut();
        if self.store.is_none() || state.writes_failed {
            return 0;
        }
        state.pending.insert(key, Pending { bytes, name });
        let full = state.pending.len() >= FLUSH_AT;
        drop(state);
        if full { self.flush() } else { 0 }
    }

    /// Writes every queued entry in one index transaction; returns how many were
    /// written. A busy store drops the batch; any other failure (read-only, full disk)
    /// warns once and stops further writes.
    pub(crate) fn flush(&self) -> u64 {
        let pending = std::mem::take(&mut self.state.borrow_mut().pending);
        let Some(store) = self.store.as_ref().filter(|_| !pending.is_empty()) else {
            return 0;
        };
        let metas: Vec<(Key, &Pending, EntryMeta)> = pending
            .iter()
            .map(|(key, p)| {
                let meta = EntryMeta {
                    name: Some(p.name.clone()),
                    components: None,
                };
                (*key, p, meta)
            })
            .collect();
        let entries: Vec<PutEntry<'_>> = metas
            .iter()
            .map(|(key, p, meta)| PutEntry {
                key: *key,
                bytes: &p.bytes,
                meta: Some(meta),
            })
            .collect();
        match store.put_many(&entries) {
            Ok(()) => entries.len() as u64,
            // A cache too busy to take the batch within its bound: this batch is dropped
            // (the store counts it in `puts_dropped`), later ones are tried.
            Err(jitcache_store::Error::Busy { .. }) => 0,
            Err(err) => {
                self.state.borrow_mut().writes_failed = true;
                self.bypass(err.to_string());
                0
            }
        }
    }
}

impl Drop for Tier {
    fn drop(&mut self) {
        self.flush();
        if let Some(store) = &self.store {
            // Last-access times and hit counters; a failure here loses only statistics.
            let _ = store.flush();
        }
    }
}
