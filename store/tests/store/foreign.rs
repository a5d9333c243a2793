//! Foreign entries first: entries of backend identities this machine no longer uses
//! (not for `foreign_after`, or not since a newer version of the same backend appeared)
//! are evicted before least-recently-used ones, and all of them by `prune_foreign`.
//! Times come from a manual clock. Also the migration of an index from schema 2.

use std::path::Path;

use jitcache_store::{
    Clock, EntryMeta, GcOptions, Key, KeyBuilder, KeyComponents, ManualClock, NoProgress,
    SCHEMA_VERSION, Store, StoreConfig,
};

use crate::common::noise;

const DAY: i64 = 24 * 3600 * 1000;

fn open(root: &Path, clock: &ManualClock) -> Store {
    let config = StoreConfig {
        clock: Clock::Manual(clock.clone()),
        inline_max: 0,
        ..StoreConfig::default()
    };
    Store::open(root, config).expect("open")
}

/// The components of unit `n` compiled by `backend` `version`.
fn unit(n: u64, backend: &str, version: &str) -> KeyComponents {
    KeyBuilder::new("test", &format!("u{n}"))
        .unit(&n.to_le_bytes())
        .backend(backend, version)
        .target("x86_64")
        .components()
}

/// Puts unit `n` of `backend` `version` (10 KB), recording the identity as used.
fn put(store: &Store, n: u64, backend: &str, version: &str) -> Key {
    let c = unit(n, backend, version);
    store.record_backend(backend, c.backend_identity());
    store.flush().expect("flush");
    let key = c.key();
    let meta = EntryMeta {
        name: Some(format!("u{n}")),
        components: Some(c),
    };
    store.put_with(&key, &noise(n, 10_000), &meta).expect("put");
    key
}

/// How many of `keys` have an entry (read from the listing: a `get` would make them
/// recently used).
fn present(store: &Store, keys: &[Key]) -> usize {
    let mut listed = std::collections::HashSet::new();
    store
        .for_each_entry(|e| {
            listed.insert(e.key);
            true
        })
        .expect("list");
    keys.iter().filter(|k| listed.contains(*k)).count()
}

#[test]
fn an_identity_unused_for_the_age_limit_is_pruned_and_the_others_stay() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(100 * DAY);
    let store = open(dir.path(), &clock);
    let old: Vec<Key> = (0..5).map(|n| put(&store, n, "cc", "gcc 13")).collect();
    clock.advance(20 * DAY);
    let current: Vec<Key> = (10..15).map(|n| put(&store, n, "clang", "19")).collect();
    let plain = KeyBuilder::new("test", "plain").build();
    store.put(&plain, &noise(99, 10_000)).expect("put plain");

    // 20 days: nothing is foreign yet.
    let report = store.prune_foreign(&NoProgress).expect("prune");
    assert_eq!(report.evicted_entries, 0, "{report:?}");

    clock.advance(11 * DAY);
    let current_again = put(&store, 10, "clang", "19");
    assert_eq!(current_again, current[0]);
    let report = store.prune_foreign(&NoProgress).expect("prune");
    assert_eq!(report.evicted_entries, 5, "{report:?}");
    assert_eq!(report.removed_blobs, 5, "{report:?}");
    assert_eq!(present(&store, &old), 0);
    // clang's last use was 11 days ago for most units, but the identity is in use.
    assert_eq!(present(&store, &current), 5);
    assert!(
        store.get(&plain).expect("get").is_some(),
        "no identity: never foreign"
    );
    assert!(store.verify(false, &NoProgress).expect("verify").is_clean());
}

#[test]
fn a_superseded_identity_is_evicted_before_recently_used_entries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(100 * DAY);
    let store = open(dir.path(), &clock);
    let lru: Vec<Key> = (0..5).map(|n| put(&store, n, "clang", "19")).collect();
    clock.advance(1000);
    let old: Vec<Key> = (10..15).map(|n| put(&store, n, "cc", "gcc 13")).collect();
    // Read the old compiler's entries: by LRU they are the newest.
    clock.advance(DAY);
    for key in &old {
        assert!(store.get(key).expect("get").is_some());
    }
    store.flush().expect("flush");
    // The compiler is upgraded: gcc 13 is not used after gcc 14 appears.
    clock.advance(1000);
    let new: Vec<Key> = (20..25).map(|n| put(&store, n, "cc", "gcc 14")).collect();
    let on_disk = store.stats().expect("stats").bytes_on_disk;
    // A cap that forces out a third of the cache: the superseded entries go, not the
    // least recently used ones.
    let cap = on_disk - on_disk / 3;
    let opts = GcOptions {
        max_size: Some(cap),
        ..GcOptions::default()
    };
    let report = store.gc(&opts, &NoProgress).expect("gc");
    assert_eq!(report.evicted_entries, 5, "{report:?}");
    assert_eq!(present(&store, &old), 0);
    assert_eq!(present(&store, &lru), 5);
    assert_eq!(present(&store, &new), 5);
    // Past the foreign entries, LRU as before.
    let opts = GcOptions {
        max_size: Some(report.bytes_on_disk - 1),
        ..GcOptions::default()
    };
    let report = store.gc(&opts, &NoProgress).expect("gc");
    assert_eq!(report.evicted_entries, 1, "{report:?}");
    assert_eq!(
        present(&store, &lru),
        4,
        "the least recently used goes next"
    );
}

#[test]
fn an_index_of_schema_2_is_migrated_and_keeps_its_entries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(100 * DAY);
    let root = dir.path().join("cache");
    let keys: Vec<Key> = {
        let store = open(&root, &clock);
        (0..3).map(|n| put(&store, n, "cc", "gcc 13")).collect()
    };
    // Turn the index back into schema 2: no backends table, no backend column.
    {
        let conn = rusqlite::Connection::open(root.join("v1/index.sqlite")).expect("sqlite");
        conn.execute_batch(
            "DROP INDEX entries_by_backend;
             ALTER TABLE entries DROP COLUMN backend;
             DROP TABLE backends;
             PRAGMA user_version = 2;",
        )
        .expect("downgrade");
    }
    let store = open(&root, &clock);
    assert_eq!(present(&store, &keys), 3, "entries survive the migration");
    let conn = rusqlite::Connection::open(root.join("v1/index.sqlite")).expect("sqlite");
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .expect("version");
    assert_eq!(version, SCHEMA_VERSION);
    // Entries from before the migration have no identity: never foreign.
    clock.advance(365 * DAY);
    let fresh = put(&store, 7, "cc", "gcc 14");
    let report = store.prune_foreign(&NoProgress).expect("prune");
    assert_eq!(report.evicted_entries, 0, "{report:?}");
    assert_eq!(present(&store, &keys), 3);
    assert!(store.get(&fresh).expect("get").is_some());
}
