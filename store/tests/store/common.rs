//! Helpers shared by the store tests.

#![allow(dead_code)]

use std::path::Path;

use jitcache_store::{Key, KeyBuilder, Store, StoreConfig};

/// A store in a fresh temporary directory.
pub fn fresh() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    (dir, store)
}

/// Opens the store under `root` with the default config.
pub fn open(root: &Path) -> Store {
    Store::open(root.join("cache"), StoreConfig::default()).expect("open store")
}

/// A key derived from a small integer.
pub fn key(n: u64) -> Key {
    KeyBuilder::new("test", &n.to_string()).build()
}
