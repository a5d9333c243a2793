//! Round trips and the simple API.

use jitcache_store::{EntryMeta, GcOptions, KeyBuilder, NoProgress};

use crate::common::{fresh, key, open};

#[test]
fn put_then_get_round_trips() {
    let (_dir, store) = fresh();
    assert_eq!(store.get(&key(1)).unwrap(), None);
    store.put(&key(1), b"hello").unwrap();
    assert_eq!(store.get(&key(1)).unwrap().as_deref(), Some(&b"hello"[..]));
    store.put(&key(2), b"").unwrap();
    assert_eq!(store.get(&key(2)).unwrap().as_deref(), Some(&b""[..]));
    let mut buf = vec![1, 2, 3];
    assert!(store.get_into(&key(1), &mut buf).unwrap());
    assert_eq!(buf, b"hello");
    assert!(!store.get_into(&key(3), &mut buf).unwrap());
    assert!(buf.is_empty());
}

#[test]
fn survives_reopen_and_counts() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        store.put(&key(1), &vec![7u8; 100_000]).unwrap();
        assert!(store.get(&key(1)).unwrap().is_some());
        assert!(store.get(&key(9)).unwrap().is_none());
    }
    let store = open(dir.path());
    assert_eq!(store.get(&key(1)).unwrap(), Some(vec![7u8; 100_000]));
    let stats = store.stats().unwrap();
    assert_eq!(stats.entries, 1);
    assert_eq!(stats.blobs, 1);
    assert_eq!(stats.bytes_uncompressed, 100_000);
    assert!(stats.bytes_on_disk < 1_000);
    assert_eq!((stats.hits, stats.misses, stats.puts), (2, 1, 1));
}

#[test]
fn identical_bytes_share_one_blob() {
    let (_dir, store) = fresh();
    store.put(&key(1), b"same").unwrap();
    store.put(&key(2), b"same").unwrap();
    store.put(&key(3), b"other").unwrap();
    let stats = store.stats().unwrap();
    assert_eq!((stats.entries, stats.blobs), (3, 2));
}

#[test]
fn remove_and_last_unit() {
    let (_dir, store) = fresh();
    let mut b = KeyBuilder::new("lisp", "fib");
    b.unit(b"(fib)");
    let k = b.build();
    let meta = EntryMeta {
        name: Some("fib".into()),
        components: Some(b.components()),
    };
    store.put_with(&k, b"obj", &meta).unwrap();
    let rec = store.last_unit("lisp", "fib").unwrap().unwrap();
    assert_eq!(rec.key, k);
    assert_eq!(rec.state, jitcache_store::UnitState::Present);
    assert!(store.remove(&k).unwrap());
    assert!(!store.remove(&k).unwrap());
    assert_eq!(store.get(&k).unwrap(), None);
    let rec = store.last_unit("lisp", "fib").unwrap().unwrap();
    assert_eq!(rec.state, jitcache_store::UnitState::Evicted);
    let report = store.gc(&GcOptions::default(), &NoProgress).unwrap();
    assert_eq!(report.removed_orphans, 0, "remove deleted the blob already");
    assert!(store.verify(false, &NoProgress).unwrap().is_clean());
}

#[test]
fn compile_lock_is_exclusive_per_key() {
    let (_dir, store) = fresh();
    let zero = std::time::Duration::ZERO;
    let held = store.lock_compile(&key(1), zero).unwrap();
    assert!(held.is_some());
    assert!(
        store.lock_compile(&key(1), zero).unwrap().is_none(),
        "second taker waits"
    );
    drop(held);
    // Other tests of this process start children: one forked while the lock file was
    // open holds the lock until it execs, so "free again" allows a bounded wait.
    assert!(
        store
            .lock_compile(&key(1), std::time::Duration::from_secs(5))
            .unwrap()
            .is_some(),
        "free again"
    );
}

#[test]
fn get_many_matches_get_on_large_batches() {
    let (_dir, store) = fresh();
    let bytes = |i: u64| -> Vec<u8> { (0..(i * 37 % 5000)).map(|j| (j * i % 251) as u8).collect() };
    for i in 0..150u64 {
        store.put(&key(i), &bytes(i)).expect("put");
    }
    // Present keys interleaved with absent ones, more than the parallel threshold.
    let keys: Vec<_> = (0..300u64).map(key).collect();
    let found = store.get_many(&keys).expect("get_many");
    assert_eq!(found.len(), keys.len());
    for (i, got) in (0..300u64).zip(&found) {
        if i < 150 {
            assert_eq!(got.as_deref(), Some(bytes(i).as_slice()), "key {i}");
        } else {
            assert!(got.is_none(), "key {i} was never put");
        }
    }
    let stats = store.stats().expect("stats");
    assert_eq!(stats.hits, 150);
    assert_eq!(stats.misses, 150);
    assert!(store.get_many(&[]).expect("empty batch").is_empty());
}

#[test]
fn component_dirs_are_private_plain_and_cleared() {
    use std::os::unix::fs::PermissionsExt;
    let (_dir, store) = fresh();
    let probes = store.component_dir("cc-probes").expect("component dir");
    assert!(probes.is_dir());
    assert!(probes.starts_with(store.root()));
    let mode = std::fs::metadata(&probes)
        .expect("stat")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o700);
    std::fs::write(probes.join("x"), b"1").expect("write");
    for bad in ["", ".", "..", "a/b", "../up", "with space"] {
        assert!(store.component_dir(bad).is_err(), "{bad:?} must be refused");
    }
    store.clear().expect("clear");
    assert!(!probes.exists(), "clear removes component files");
}

/// Size of the write-ahead log of the cache under `<dir>/cache`, 0 when there is none.
fn log_len(dir: &std::path::Path) -> u64 {
    std::fs::metadata(dir.join("cache/v1/index.sqlite-wal")).map_or(0, |m| m.len())
}

/// A closing store leaves a short write-ahead log in place (the next start neither
/// recreates it nor pays a checkpoint), and checkpoints and truncates a long one (the
/// next first opener would read all of it); either way a reopen sees every entry.
#[test]
fn closing_keeps_a_short_log_and_truncates_a_long_one() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        store.put(&key(0), b"zero").unwrap();
    }
    let short = log_len(dir.path());
    assert!(short > 0, "a short log stays after close");
    assert!(short <= 256 * 1024, "short log of {short} bytes");
    {
        let store = open(dir.path());
        assert_eq!(store.get(&key(0)).unwrap().as_deref(), Some(&b"zero"[..]));
        for k in 1..400 {
            store
                .put(&key(k), &vec![u8::try_from(k % 251).unwrap(); 2_000])
                .unwrap();
        }
        assert!(log_len(dir.path()) > 256 * 1024, "the puts grew the log");
    }
    assert_eq!(log_len(dir.path()), 0, "a long log is truncated at close");
    let store = open(dir.path());
    assert_eq!(store.stats().unwrap().entries, 400);
    // 399 % 251
    assert_eq!(store.get(&key(399)).unwrap(), Some(vec![148u8; 2_000]));
}

/// A store closing while another one has the index open (and may hold a read
/// snapshot) shrinks the log only if it can without waiting; the other store sees every
/// entry either way.
#[test]
fn closing_beside_a_reader_leaves_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let reader = open(dir.path());
    reader.put(&key(0), b"zero").unwrap();
    {
        let store = open(dir.path());
        for k in 1..400 {
            store.put(&key(k), &vec![7u8; 2_000]).unwrap();
        }
        // The reader holds a read snapshot across the close.
        assert!(reader.get(&key(0)).unwrap().is_some());
    }
    for k in [0, 1, 399] {
        assert!(reader.get(&key(k)).unwrap().is_some(), "entry {k}");
    }
}
