//! gc: least-recently-used eviction by the batched access times, shared blobs,
//! orphans, clear, and batching of access times.

use std::sync::Arc;
use std::time::Duration;

use jitcache_store::{
    Clock, EntryMeta, GcOptions, KeyBuilder, ManualClock, NoProgress, Progress, Store, StoreConfig,
    UnitState,
};

use crate::common::{key, noise};

fn clocked(root: &std::path::Path, clock: &ManualClock) -> Store {
    let config = StoreConfig {
        clock: Clock::Manual(clock.clone()),
        access_flush_interval: Duration::from_secs(3600),
        // These tests step the clock by milliseconds.
        access_resolution: Duration::ZERO,
        ..StoreConfig::default()
    };
    Store::open(root, config).expect("open")
}

#[test]
fn gc_evicts_least_recently_used_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(1_000);
    let store = clocked(&dir.path().join("cache"), &clock);
    let mut units = Vec::new();
    for k in 0..4u64 {
        let mut b = KeyBuilder::new("t", &k.to_string());
        b.unit(&k.to_le_bytes());
        let meta = EntryMeta {
            name: None,
            components: Some(b.components()),
        };
        store
            .put_with(&key(k), &noise(k, 20_000), &meta)
            .expect("put");
        units.push(b);
        clock.advance(1_000);
    }
    // Touch 0 and 1: now 2 is the least recently used, then 3.
    assert!(store.get(&key(0)).expect("get").is_some());
    clock.advance(1_000);
    assert!(store.get(&key(1)).expect("get").is_some());
    let per_blob = store.stats().expect("stats").bytes_on_disk / 4;
    let report = store
        .gc(
            &GcOptions {
                max_size: Some(per_blob * 2 + per_blob / 2),
                ..GcOptions::default()
            },
            &NoProgress,
        )
        .expect("gc");
    assert_eq!(report.evicted_entries, 2);
    assert_eq!(report.removed_blobs, 2);
    assert!(report.bytes_on_disk <= per_blob * 2 + per_blob / 2);
    for (k, present) in [(0, true), (1, true), (2, false), (3, false)] {
        assert_eq!(
            store.get(&key(k)).expect("get").is_some(),
            present,
            "key {k}"
        );
        let unit = store
            .last_unit("t", &k.to_string())
            .expect("unit")
            .expect("recorded");
        let state = if present {
            UnitState::Present
        } else {
            UnitState::Evicted
        };
        assert_eq!(unit.state, state, "unit {k}");
    }
    assert_eq!(store.stats().expect("stats").evictions, 2);
}

#[test]
fn evicting_one_of_two_sharers_keeps_the_blob() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(1_000);
    let store = clocked(&dir.path().join("cache"), &clock);
    store.put(&key(1), &noise(7, 10_000)).expect("put");
    clock.advance(10);
    store.put(&key(2), &noise(7, 10_000)).expect("put");
    clock.advance(10);
    store.put(&key(3), &noise(8, 10_000)).expect("put");
    let total = store.stats().expect("stats").bytes_on_disk;
    // Cap just under the total: key 1 goes first, but its blob is shared with key 2
    // and frees nothing, so key 2 goes too; key 3 stays.
    let report = store
        .gc(
            &GcOptions {
                max_size: Some(total - 1),
                ..GcOptions::default()
            },
            &NoProgress,
        )
        .expect("gc");
    assert_eq!((report.evicted_entries, report.removed_blobs), (2, 1));
    assert!(store.get(&key(3)).expect("get").is_some());
    assert!(store.verify(false, &NoProgress).expect("verify").is_clean());
}

#[test]
fn hits_are_batched_not_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(1_000);
    let root = dir.path().join("cache");
    let store = clocked(&root, &clock);
    store.put(&key(1), b"x").expect("put");
    clock.set(5_000);
    for _ in 0..10 {
        assert!(store.get(&key(1)).expect("get").is_some());
    }
    // Another handle sees the index as written: the hits are still in memory.
    let other = clocked(&root, &clock);
    let mut seen = Vec::new();
    other
        .for_each_entry(|e| {
            seen.push(e.last_access);
            true
        })
        .expect("list");
    assert_eq!(seen, vec![1_000]);
    store.flush().expect("flush");
    seen.clear();
    other
        .for_each_entry(|e| {
            seen.push(e.last_access);
            true
        })
        .expect("list");
    assert_eq!(seen, vec![5_000]);
    assert_eq!(other.stats().expect("stats").hits, 10);
    // Drop flushes too.
    clock.set(9_000);
    assert!(store.get(&key(1)).expect("get").is_some());
    drop(store);
    other
        .for_each_entry(|e| {
            assert_eq!(e.last_access, 9_000);
            true
        })
        .expect("list");
}

/// A file in a shard directory that no entry points at: named like a blob of shard
/// `shard` (two hex digits).
fn plant_orphan(root: &std::path::Path, shard: &str) -> std::path::PathBuf {
    let dir = root.join("v1/blobs").join(shard).join("00");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let path = dir.join(format!("{shard}00{}", "0".repeat(60)));
    std::fs::write(&path, b"junk").expect("write");
    path
}

#[test]
fn gc_walks_one_slice_of_the_blob_tree_per_run_and_all_of_it_in_sixteen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("cache");
    let store = Store::open(
        &root,
        StoreConfig {
            inline_max: 0,
            ..StoreConfig::default()
        },
    )
    .expect("open");
    for k in 0..40 {
        store.put(&key(k), &noise(k, 600)).expect("put");
    }
    // A capped gc evicts and deletes blob files; its marks are settled, so the next
    // run walks one slice, not the whole tree.
    let on_disk = store.stats().expect("stats").bytes_on_disk;
    let capped = GcOptions {
        max_size: Some(on_disk / 2),
        ..GcOptions::default()
    };
    let gc = store.gc(&capped, &NoProgress).expect("capped gc");
    assert!(gc.evicted_entries > 0 && gc.removed_blobs > 0, "{gc:?}");
    assert!(!gc.full_orphan_walk, "{gc:?}");
    // Orphans in the shards of slices 0, 5 and 15 (the first run above walked slice 0).
    let orphans = [("0a", 0), ("5b", 5), ("fc", 15)]
        .map(|(shard, slice)| (plant_orphan(&root, shard), slice));
    let mut removed_at = Vec::new();
    for run in 1..=16u64 {
        let gc = store.gc(&GcOptions::default(), &NoProgress).expect("gc");
        assert!(!gc.full_orphan_walk, "run {run}: {gc:?}");
        for _ in 0..gc.removed_orphans {
            removed_at.push(run % 16);
        }
    }
    assert_eq!(
        removed_at,
        vec![5, 15, 0],
        "each orphan goes in its slice's turn"
    );
    for (path, slice) in &orphans {
        assert!(!path.exists(), "slice {slice}: {}", path.display());
    }
    // The entries that were kept still read back, and nothing is left to find.
    let report = store.verify(false, &NoProgress).expect("verify");
    assert!(
        report.is_clean() && report.orphaned_blobs == 0,
        "{report:?}"
    );
    for k in 0..40 {
        if let Some(got) = store.get(&key(k)).expect("get") {
            assert_eq!(got, noise(k, 600), "entry {k}");
        }
    }
}

#[test]
fn a_full_orphan_walk_finds_orphans_in_every_slice_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("cache");
    let store = Store::open(&root, StoreConfig::default()).expect("open");
    store.put(&key(1), b"kept").expect("put");
    let orphans: Vec<_> = ["00", "3d", "a1", "ff"]
        .iter()
        .map(|s| plant_orphan(&root, s))
        .collect();
    let full = GcOptions {
        full_orphan_walk: true,
        ..GcOptions::default()
    };
    let gc = store.gc(&full, &NoProgress).expect("gc");
    assert!(gc.full_orphan_walk);
    assert_eq!(gc.removed_orphans, 4, "{gc:?}");
    assert!(orphans.iter().all(|p| !p.exists()));
    assert_eq!(
        store.get(&key(1)).expect("get").as_deref(),
        Some(&b"kept"[..])
    );
}

#[test]
fn gc_removes_orphans_and_stale_temp_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("cache");
    let store = Store::open(&root, StoreConfig::default()).expect("open");
    store.put(&key(1), b"kept").expect("put");
    let orphan = root.join("v1/blobs/ab/cd");
    std::fs::create_dir_all(&orphan).expect("mkdir");
    std::fs::write(orphan.join(format!("abcd{}", "0".repeat(60))), b"junk").expect("write");
    std::fs::write(orphan.join("not-a-blob"), b"junk").expect("write");
    std::fs::write(root.join("v1/tmp/blob-dead"), b"half").expect("write");
    let report = store.verify(false, &NoProgress).expect("verify");
    assert!(report.is_clean(), "orphans are not damage");
    assert_eq!((report.orphaned_blobs, report.stale_tmp), (2, 1));
    let full = GcOptions {
        full_orphan_walk: true,
        ..GcOptions::default()
    };
    let gc = store.gc(&full, &NoProgress).expect("gc");
    assert_eq!(
        (gc.removed_orphans, gc.removed_tmp, gc.evicted_entries),
        (2, 1, 0)
    );
    assert_eq!(
        store.get(&key(1)).expect("get").as_deref(),
        Some(&b"kept"[..])
    );
}

#[test]
fn clear_empties_the_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path().join("cache"), StoreConfig::default()).expect("open");
    for k in 0..5 {
        store.put(&key(k), &noise(k, 1000)).expect("put");
    }
    store.clear().expect("clear");
    let stats = store.stats().expect("stats");
    assert_eq!((stats.entries, stats.blobs, stats.bytes_on_disk), (0, 0, 0));
    assert_eq!(stats.puts, 5, "counters survive clear");
    assert_eq!(store.get(&key(0)).expect("get"), None);
    store.put(&key(0), b"again").expect("put after clear");
    assert!(store.verify(false, &NoProgress).expect("verify").is_clean());
}

#[test]
fn listing_pages_through_many_entries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = StoreConfig {
        durability: jitcache_store::Durability::None,
        ..StoreConfig::default()
    };
    let store = Store::open(dir.path().join("cache"), config).expect("open");
    for k in 0..700 {
        store.put(&key(k), &k.to_le_bytes()).expect("put");
    }
    let mut keys = Vec::new();
    store
        .for_each_entry(|e| {
            keys.push(e.key);
            assert_eq!(e.size, 8);
            true
        })
        .expect("list");
    assert_eq!(keys.len(), 700);
    assert!(keys.windows(2).all(|w| w[0] < w[1]), "key order");
    let mut n = 0;
    store
        .for_each_entry(|_| {
            n += 1;
            n < 300
        })
        .expect("list");
    assert_eq!(n, 300, "stops when asked");
}

/// Counts progress calls.
#[derive(Default)]
struct Count {
    total: std::sync::atomic::AtomicU64,
    done: std::sync::atomic::AtomicU64,
    finished: std::sync::atomic::AtomicBool,
}

impl Progress for Count {
    fn start(&self, total: u64) {
        self.total.store(total, std::sync::atomic::Ordering::SeqCst);
        self.done.store(0, std::sync::atomic::Ordering::SeqCst);
    }
    fn inc(&self, n: u64) {
        self.done.fetch_add(n, std::sync::atomic::Ordering::SeqCst);
    }
    fn finish(&self) {
        self.finished
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

#[test]
fn verify_reports_progress() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path().join("cache"), StoreConfig::default()).expect("open");
    for k in 0..10 {
        store.put(&key(k), &noise(k, 100)).expect("put");
    }
    let count = Count::default();
    store.verify(false, &count).expect("verify");
    use std::sync::atomic::Ordering::SeqCst;
    assert_eq!(count.total.load(SeqCst), 10);
    assert_eq!(count.done.load(SeqCst), 10);
    assert!(count.finished.load(SeqCst));
}

#[test]
fn threads_share_one_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store =
        Arc::new(Store::open(dir.path().join("cache"), StoreConfig::default()).expect("open"));
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                for i in 0..40u64 {
                    let k = (t * 7 + i) % 16;
                    if i % 3 == 0 {
                        store
                            .put(&key(k), &crate::common::tagged(k, t, 3000))
                            .expect("put");
                    } else if let Some(bytes) = store.get(&key(k)).expect("get") {
                        assert!(crate::common::check_tagged(k, &bytes).is_some());
                    }
                    if t == 0 && i % 10 == 9 {
                        store
                            .gc(
                                &GcOptions {
                                    max_size: Some(8_000),
                                    ..GcOptions::default()
                                },
                                &NoProgress,
                            )
                            .expect("gc");
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread");
    }
    assert!(store.verify(false, &NoProgress).expect("verify").is_clean());
}

#[test]
fn access_times_are_kept_to_the_configured_resolution() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(1_000_000);
    let open = || {
        Store::open(
            dir.path().join("cache"),
            StoreConfig {
                clock: Clock::Manual(clock.clone()),
                access_resolution: Duration::from_secs(60),
                ..StoreConfig::default()
            },
        )
        .expect("open")
    };
    let store = open();
    store.put(&key(1), b"one").expect("put");
    let access = |store: &Store| {
        let mut at = None;
        store
            .for_each_entry(|e| {
                at = Some(e.last_access);
                true
            })
            .expect("list");
        at.expect("one entry")
    };
    let created = access(&store);
    // A hit 30 s later is within the resolution: nothing is written.
    clock.advance(30_000);
    assert!(store.get(&key(1)).expect("get").is_some());
    store.flush().expect("flush");
    assert_eq!(access(&store), created);
    // A hit 90 s after the recorded time moves it.
    clock.advance(60_000);
    assert!(store.get(&key(1)).expect("get").is_some());
    store.flush().expect("flush");
    assert_eq!(access(&store), created + 90_000);
}

#[test]
fn touch_along_refreshes_keys_only_when_the_anchor_needed_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(1_000_000);
    let store = Store::open(
        dir.path().join("cache"),
        StoreConfig {
            clock: Clock::Manual(clock.clone()),
            access_resolution: Duration::from_secs(60),
            ..StoreConfig::default()
        },
    )
    .expect("open");
    // key(0) plays a pack, keys 1..=3 the units it holds.
    for k in 0..4 {
        store.put(&key(k), &noise(k, 100)).expect("put");
    }
    let units = [key(1), key(2), key(3)];
    let access = |store: &Store| {
        let mut at = std::collections::HashMap::new();
        store
            .for_each_entry(|e| {
                at.insert(e.key, e.last_access);
                true
            })
            .expect("list");
        at
    };
    let created = access(&store)[&key(1)];

    // Within the resolution: the anchor's hit records nothing, so neither do its units.
    clock.advance(30_000);
    assert!(store.get(&key(0)).expect("get").is_some());
    store.touch_along(&key(0), &units);
    store.flush().expect("flush");
    let now = access(&store);
    assert!(units.iter().all(|u| now[u] == created), "{now:?}");

    // Past it: the anchor's access is recorded, and the units' with it.
    clock.advance(60_000);
    assert!(store.get(&key(0)).expect("get").is_some());
    store.touch_along(&key(0), &units);
    store.flush().expect("flush");
    let now = access(&store);
    assert_eq!(now[&key(0)], created + 90_000);
    assert!(units.iter().all(|u| now[u] == created + 90_000), "{now:?}");

    // Another key as the anchor touches nothing.
    clock.advance(120_000);
    assert!(store.get(&key(0)).expect("get").is_some());
    store.touch_along(&key(3), &units[..2]);
    store.flush().expect("flush");
    let now = access(&store);
    assert_eq!(now[&key(1)], created + 90_000);
}

#[test]
fn gc_frees_blobs_kept_in_the_index() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(1_000);
    let store = clocked(&dir.path().join("cache"), &clock);
    for k in 0..6u64 {
        clock.advance(10);
        store.put(&key(k), &noise(k, 2_000)).expect("put");
    }
    let before = store.stats().expect("stats");
    assert_eq!(before.blobs, 6);
    assert!(
        crate::common::files_under(&dir.path().join("cache/v1/blobs")).is_empty(),
        "small blobs are kept in the index"
    );
    let report = store
        .gc(
            &GcOptions {
                max_size: Some(before.bytes_on_disk / 2),
                ..GcOptions::default()
            },
            &NoProgress,
        )
        .expect("gc");
    assert_eq!(report.evicted_entries, 3);
    assert_eq!(report.removed_blobs, 3);
    assert!(report.freed_bytes > 0);
    let after = store.stats().expect("stats");
    assert_eq!((after.entries, after.blobs), (3, 3));
    assert!(after.bytes_on_disk <= before.bytes_on_disk / 2);
    // The oldest went; the rest still read back.
    assert_eq!(store.get(&key(0)).expect("get"), None);
    assert_eq!(store.get(&key(5)).expect("get"), Some(noise(5, 2_000)));
    let verify = store.verify(false, &NoProgress).expect("verify");
    assert!(
        verify.is_clean() && verify.orphaned_blobs == 0,
        "{verify:?}"
    );
}
