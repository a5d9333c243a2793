//! `Store::put_many`: many entries in one index transaction, each distinct blob written
//! once, with the same results as the same puts one by one.

use std::collections::HashMap;

use jitcache_store::{EntryMeta, KeyBuilder, PutEntry, Store};
use proptest::prelude::*;

use crate::common::{assert_blob_files_sound, fast_config, fresh, key, noise};

#[test]
fn entries_sharing_bytes_share_blobs() {
    let (dir, store) = fresh();
    let blobs = [noise(1, 3000), noise(2, 10), Vec::new()];
    let entries: Vec<PutEntry<'_>> = (0..300)
        .map(|i| PutEntry::new(key(i), &blobs[i as usize % 3]))
        .collect();
    store.put_many(&entries).unwrap();
    for i in 0..300 {
        assert_eq!(
            store.get(&key(i)).unwrap().as_deref(),
            Some(&blobs[i as usize % 3][..]),
            "key {i}"
        );
    }
    let stats = store.stats().unwrap();
    assert_eq!((stats.entries, stats.blobs, stats.puts), (300, 3, 300));
    assert_blob_files_sound(&dir.path().join("cache"));
}

#[test]
fn equal_bytes_in_different_buffers_share_a_blob_with_an_earlier_put() {
    let (_dir, store) = fresh();
    let bytes = noise(5, 500);
    store.put(&key(0), &bytes).unwrap();
    let copies: Vec<Vec<u8>> = (0..4).map(|_| bytes.clone()).collect();
    let entries: Vec<PutEntry<'_>> = copies
        .iter()
        .enumerate()
        .map(|(i, b)| PutEntry::new(key(i as u64 + 1), b))
        .collect();
    store.put_many(&entries).unwrap();
    let stats = store.stats().unwrap();
    assert_eq!((stats.entries, stats.blobs), (5, 1));
}

#[test]
fn the_last_occurrence_of_a_key_wins() {
    let (_dir, store) = fresh();
    let (a, b, c) = (b"first".to_vec(), b"second".to_vec(), b"third".to_vec());
    store.put(&key(1), &a).unwrap();
    let entries = [
        PutEntry::new(key(1), &b),
        PutEntry::new(key(2), &a),
        PutEntry::new(key(1), &c),
    ];
    store.put_many(&entries).unwrap();
    assert_eq!(store.get(&key(1)).unwrap(), Some(c));
    assert_eq!(store.get(&key(2)).unwrap(), Some(a));
    assert_eq!(store.stats().unwrap().entries, 2);
}

#[test]
fn an_empty_batch_does_nothing() {
    let (_dir, store) = fresh();
    store.put_many(&[]).unwrap();
    let stats = store.stats().unwrap();
    assert_eq!((stats.entries, stats.puts), (0, 0));
}

#[test]
fn metadata_is_kept_like_put_with() {
    let (_dir, store) = fresh();
    let mut builder = KeyBuilder::new("lisp", "square");
    builder.unit(b"(defn square [x] (* x x))");
    let k = builder.build();
    let meta = EntryMeta {
        name: Some("lisp/square".to_owned()),
        components: Some(builder.components()),
    };
    let bytes = b"object".to_vec();
    let plain = b"plain".to_vec();
    store
        .put_many(&[
            PutEntry {
                key: k,
                bytes: &bytes,
                meta: Some(&meta),
            },
            PutEntry::new(key(7), &plain),
        ])
        .unwrap();
    let record = store
        .last_unit("lisp", "square")
        .unwrap()
        .expect("unit recorded");
    assert_eq!(record.key, k);
    let mut names = HashMap::new();
    store
        .for_each_entry(|e| {
            names.insert(e.key, e.name.clone());
            true
        })
        .unwrap();
    assert_eq!(names[&k].as_deref(), Some("lisp/square"));
    assert_eq!(names[&key(7)], None);
}

#[test]
fn a_large_batch_is_one_call() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("cache"), fast_config()).unwrap();
    let blobs: Vec<Vec<u8>> = (0..8).map(|i| noise(i, 200)).collect();
    let entries: Vec<PutEntry<'_>> = (0..20_000u64)
        .map(|i| PutEntry::new(key(i), &blobs[(i % 8) as usize]))
        .collect();
    store.put_many(&entries).unwrap();
    let stats = store.stats().unwrap();
    assert_eq!((stats.entries, stats.blobs), (20_000, 8));
    let mut seen = 0u64;
    store
        .for_each_entry(|_| {
            seen += 1;
            true
        })
        .unwrap();
    assert_eq!(seen, 20_000);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// A batch leaves the store as the same puts one by one would: every key reads the
    /// bytes of its last occurrence, and the blobs are the distinct byte strings.
    #[test]
    fn put_many_equals_puts_one_by_one(
        ops in prop::collection::vec((0u64..12, 0usize..5), 0..40),
        before in prop::collection::vec((0u64..12, 0usize..5), 0..5),
    ) {
        let contents: Vec<Vec<u8>> = (0..5).map(|i| noise(i as u64 + 100, 50 * i)).collect();
        let (_dir, store) = fresh();
        let mut model: HashMap<u64, usize> = HashMap::new();
        for (k, c) in &before {
            store.put(&key(*k), &contents[*c]).unwrap();
            model.insert(*k, *c);
        }
        let entries: Vec<PutEntry<'_>> =
            ops.iter().map(|(k, c)| PutEntry::new(key(*k), &contents[*c])).collect();
        store.put_many(&entries).unwrap();
        for (k, c) in &ops {
            model.insert(*k, *c);
        }
        for k in 0..12 {
            let expected = model.get(&k).map(|c| contents[*c].clone());
            prop_assert_eq!(store.get(&key(k)).unwrap(), expected, "key {}", k);
        }
        let stats = store.stats().unwrap();
        let distinct: std::collections::HashSet<usize> = model.values().copied().collect();
        prop_assert_eq!(stats.entries, model.len() as u64);
        prop_assert_eq!(stats.blobs, distinct.len() as u64);
        prop_assert_eq!(stats.puts, (before.len() + ops.len()) as u64);
    }
}
