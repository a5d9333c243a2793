//! The remote tier's place in the facade: after a local miss the remote is asked; a
//! verified hit is copied into the local store before it is returned; what is written
//! locally after a compile is queued for upload when the remote is read-write.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use jitcache_remote::{Fetched, Remote, RemoteConfig};
use jitcache_store::{EntryMeta, Key, KeyComponents, PutEntry, Store};

use super::{JitCache, Origin};

/// Sets up the remote of `config`, if there is one and the local store is usable. A
/// remote that cannot be set up is left out with one warning: it never fails the cache.
pub(super) fn connect(config: Option<&RemoteConfig>, store: Option<&Arc<Store>>) -> Option<Remote> {
    let (config, store) = (config?, store?);
    match Remote::connect(config.clone(), Some(Arc::clone(store))) {
        Ok(remote) => Some(remote),
        Err(err) => {
            eprintln!("jitcache: warning: {err}; going on without the remote");
            None
        }
    }
}

/// The local entry's metadata for a fetched object: the name its uploader recorded.
fn meta_of(fetched: &Fetched) -> EntryMeta {
    EntryMeta {
        name: (!fetched.name.is_empty()).then(|| fetched.name.clone()),
        components: None,
    }
}

/// The entry name recorded locally and in the remote object: `namespace/name` for a
/// unit, `pack` for a pack.
pub(super) fn entry_name(components: Option<&KeyComponents>) -> String {
    match components {
        Some(c) => format!("{}/{}", c.namespace, c.name),
        None => "pack".to_owned(),
    }
}

impl JitCache {
    /// The remote tier, if one is configured and in use.
    pub fn remote(&self) -> Option<&Remote> {
        self.remote.as_ref()
    }

    /// Waits at most `timeout` for queued uploads to the remote tier; true when none is
    /// left. Dropping the cache does the same with the remote's drain timeout (2 s).
    pub fn finish_uploads(&self, timeout: Duration) -> bool {
        self.remote.as_ref().is_none_or(|r| r.drain(timeout))
    }

    /// `key` from the remote tier after a local miss, copied into the local store.
    pub(super) fn fetch_remote(&self, key: &Key) -> Option<Vec<u8>> {
        let fetched = self.remote.as_ref()?.get(key)?;
        self.keep_local(key, &fetched);
        Some(fetched.bytes)
    }

    /// Fills the gaps of `found` (local misses of `keys`) from the remote tier, in one
    /// concurrent round trip; hits are copied into the local store.
    pub(super) fn fetch_remote_many(&self, keys: &[Key], found: &mut [Option<(Vec<u8>, Origin)>]) {
        let Some(remote) = &self.remote else {
            return;
        };
        let missing: Vec<usize> = (0..keys.len()).filter(|&i| found[i].is_none()).collect();
        if missing.is_empty() {
            return;
        }
        let wanted: Vec<Key> = missing.iter().map(|&i| keys[i]).collect();
        let fetched: Vec<(usize, Fetched)> = missing
            .into_iter()
            .zip(remote.get_many(&wanted))
            .filter_map(|(i, fetched)| Some((i, fetched?)))
            .collect();
        self.keep_all_local(keys, &fetched);
        for (i, fetched) in fetched {
            found[i] = Some((fetched.bytes, Origin::Remote));
        }
    }

    /// Stores verified remote objects locally in one index transaction.
    fn keep_all_local(&self, keys: &[Key], fetched: &[(usize, Fetched)]) {
        let Some(store) = self.store.as_ref().filter(|_| !fetched.is_empty()) else {
            return;
        };
        if self.writes_failed.load(Ordering::Relaxed) {
            return;
        }
        let metas: Vec<EntryMeta> = fetched.iter().map(|(_, f)| meta_of(f)).collect();
        let entries: Vec<PutEntry<'_>> = fetched
            .iter()
            .zip(&metas)
            .map(|((i, f), meta)| PutEntry {
                key: keys[*i],
                bytes: &f.bytes,
                meta: Some(meta),
            })
            .collect();
        if let Err(err) = store.put_many(&entries) {
            self.writes_failed.store(true, Ordering::Relaxed);
            self.bypass(err.to_string());
        }
    }

    /// Stores a verified remote object locally, so the next start is a local hit. A
    /// failure here is handled like any local write failure: one warning, no more writes.
    fn keep_local(&self, key: &Key, fetched: &Fetched) {
        let Some(store) = &self.store else {
            return;
        };
        if self.writes_failed.load(Ordering::Relaxed) {
            return;
        }
        if let Err(err) = store.put_with(key, &fetched.bytes, &meta_of(fetched)) {
            self.writes_failed.store(true, Ordering::Relaxed);
            self.bypass(err.to_string());
        }
    }

    /// Queues an upload of what was just compiled (or packed), when the remote is
    /// read-write; off the caller's path.
    pub(super) fn upload(&self, key: &Key, bytes: &[u8], components: Option<&KeyComponents>) {
        if let Some(remote) = self.remote.as_ref().filter(|r| r.is_writable()) {
            remote.upload(key, &entry_name(components), bytes);
        }
    }
}
