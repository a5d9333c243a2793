//! The local store's place in the facade: reads that fall back to the remote tier, and
//! writes that stop after the first failure. A store error never fails a call: it is a
//! miss, or a write not made, with one warning.

use std::sync::atomic::Ordering;

use jitcache_store::{CompileLock, EntryMeta, Key, KeyComponents, PutEntry};

use super::remote::entry_name;
use super::{JitCache, Origin};

impl JitCache {
    /// Reads `keys` from the store in one batch, then what it misses from the remote
    /// tier; any store error makes them all local misses (and a warning).
    pub(super) fn read_many(&self, keys: &[Key]) -> Vec<Option<(Vec<u8>, Origin)>> {
        let Some(store) = self.store.as_ref().filter(|_| !keys.is_empty()) else {
            return vec![None; keys.len()];
        };
        let mut found: Vec<Option<(Vec<u8>, Origin)>> = match store.get_many(keys) {
            Ok(found) => found
                .into_iter()
                .map(|bytes| bytes.map(|b| (b, Origin::Disk)))
                .collect(),
            Err(err) => {
                self.bypass(err.to_string());
                vec![None; keys.len()]
            }
        };
        self.fetch_remote_many(keys, &mut found);
        found
    }

    /// Stores `bytes` under `key` (with the unit's components, when it is a unit). The
    /// first failure (read-only, full) warns once and stops further writes.
    pub(super) fn write(&self, key: &Key, bytes: &[u8], components: Option<&KeyComponents>) {
        self.write_many(&[(*key, bytes, components)]);
    }

    /// Stores `bytes` under `key` as [`JitCache::write`] does, in this machine's store
    /// only: for what describes this machine's files (their inodes and paths), which is
    /// no use to a fleet.
    pub(super) fn write_local(&self, key: &Key, bytes: &[u8], components: &KeyComponents) {
        self.store_entries(&[(*key, bytes, Some(components))], false);
    }

    /// Stores several entries as [`JitCache::write`] does, in one store transaction.
    pub(super) fn write_many(&self, entries: &[(Key, &[u8], Option<&KeyComponents>)]) {
        self.store_entries(entries, true);
    }

    /// Stores `entries` in one store transaction (or queues them for the background
    /// writer), and uploads them when `upload` and the remote tier takes uploads.
    fn store_entries(&self, entries: &[(Key, &[u8], Option<&KeyComponents>)], upload: bool) {
        let Some(store) = &self.store else {
            return;
        };
        if upload {
            for (key, bytes, components) in entries {
                self.upload(key, bytes, *components);
            }
        }
        if self.background_writes.load(Ordering::Relaxed) {
            for (key, bytes, components) in entries {
                self.queue_local(key, bytes, *components, None);
            }
            return;
        }
        if self.writes_failed.load(Ordering::Relaxed) {
            return;
        }
        let metas: Vec<EntryMeta> = entries
            .iter()
            .map(|(_, _, components)| EntryMeta {
                name: Some(entry_name(*components)),
                components: components.cloned(),
            })
            .collect();
        let result = match entries {
            [(key, bytes, _)] => store.put_with(key, bytes, &metas[0]),
            _ => {
                let batch: Vec<PutEntry<'_>> = entries
                    .iter()
                    .zip(&metas)
                    .map(|((key, bytes, _), meta)| PutEntry {
                        key: *key,
                        bytes,
                        meta: Some(meta),
                    })
                    .collect();
                store.put_many(&batch)
            }
        };
        if let Err(err) = result {
            // A cache too busy to take the write within its bound: this write is dropped
            // (the store counts it), later ones are tried.
            if matches!(err, jitcache_store::Error::Busy { .. }) {
                return;
            }
            self.writes_failed.store(true, Ordering::Relaxed);
            self.bypass(err.to_string());
        }
    }

    /// Stores `bytes` under `key` as [`JitCache::write`] does; with background writes
    /// the entry is queued, and `lock` (the key's compile lock) is released once it is
    /// written, so other processes wait for it rather than compile it again. Without,
    /// the entry is written here and `lock` released on return.
    pub(super) fn write_holding(
        &self,
        key: &Key,
        bytes: &[u8],
        components: Option<&KeyComponents>,
        lock: Option<CompileLock>,
    ) {
        if self.store.is_none() {
            return;
        }
        if !self.background_writes.load(Ordering::Relaxed) {
            self.write(key, bytes, components);
            return;
        }
        self.upload(key, bytes, components);
        self.queue_local(key, bytes, components, lock);
    }

    /// Hands `bytes` under `key` to the store's background writer, `lock` released once
    /// it is written.
    fn queue_local(
        &self,
        key: &Key,
        bytes: &[u8],
        components: Option<&KeyComponents>,
        lock: Option<CompileLock>,
    ) {
        let Some(store) = &self.store else {
            return;
        };
        if self.writes_failed.load(Ordering::Relaxed) {
            return;
        }
        let meta = EntryMeta {
            name: Some(entry_name(components)),
            components: components.cloned(),
        };
        if let Err(err) = store.put_background(key, bytes.to_vec(), meta, lock) {
            // As in `write_many`: a busy cache drops this write only.
            if matches!(err, jitcache_store::Error::Busy { .. }) {
                return;
            }
            self.writes_failed.store(true, Ordering::Relaxed);
            self.bypass(err.to_string());
        }
    }

    /// Reads `key` from the store, else from the remote tier.
    pub(super) fn read(&self, key: &Key) -> Option<(Vec<u8>, Origin)> {
        match self.read_local(key) {
            Some(bytes) => Some((bytes, Origin::Disk)),
            None => self.fetch_remote(key).map(|bytes| (bytes, Origin::Remote)),
        }
    }

    /// Reads `key` from the store; any store error is a miss (and a warning).
    pub(super) fn read_local(&self, key: &Key) -> Option<Vec<u8>> {
        let store = self.store.as_ref()?;
        match store.get(key) {
            Ok(found) => found,
            Err(err) => {
                self.bypass(err.to_string());
                None
            }
        }
    }
}
