//! Damaged blobs: every kind of damage is a miss, the entry is evicted and the event
//! counted; verify finds damage and repair removes it; a new put heals.

use std::path::Path;

use jitcache_store::{Damage, EntryMeta, KeyBuilder, NoProgress, UnitState};

use crate::common::{blob_file, fresh_files as fresh, key, noise};

fn flip_byte(path: &Path, at: usize) {
    let mut bytes = std::fs::read(path).expect("read");
    let at = at.min(bytes.len() - 1);
    bytes[at] ^= 0x01;
    std::fs::write(path, bytes).expect("write");
}

fn truncate(path: &Path, keep: usize) {
    let bytes = std::fs::read(path).expect("read");
    std::fs::write(path, &bytes[..keep.min(bytes.len())]).expect("write");
}

fn set_header_length(path: &Path, len: u64) {
    let mut bytes = std::fs::read(path).expect("read");
    bytes[8..16].copy_from_slice(&len.to_le_bytes());
    std::fs::write(path, bytes).expect("write");
}

type Damager = fn(&Path);

const DAMAGES: &[(&str, Damager)] = &[
    ("bit flip in the data", |p| flip_byte(p, 200)),
    ("bit flip in the last byte", |p| flip_byte(p, usize::MAX)),
    ("bit flip in the magic", |p| flip_byte(p, 0)),
    ("truncated", |p| truncate(p, 100)),
    ("truncated header", |p| truncate(p, 10)),
    ("empty", |p| truncate(p, 0)),
    ("wrong length in header", |p| set_header_length(p, 12_345)),
    ("huge length in header", |p| set_header_length(p, u64::MAX)),
    ("missing", |p| std::fs::remove_file(p).expect("remove")),
    ("replaced by another blob", |p| {
        std::fs::write(p, std::fs::read(p.with_file_name("other")).expect("other")).expect("write")
    }),
];

#[test]
fn every_damage_is_a_counted_miss() {
    for (name, damage) in DAMAGES {
        let (_dir, store) = fresh();
        let bytes = noise(1, 3_000);
        let mut b = KeyBuilder::new("t", "unit");
        b.unit(b"src");
        let k = b.build();
        let meta = EntryMeta {
            name: None,
            components: Some(b.components()),
        };
        store.put_with(&k, &bytes, &meta).expect("put");
        let path = blob_file(&store, &bytes);
        // Material for the "replaced by another blob" case: a sound blob file of other bytes.
        store.put(&key(50), &noise(2, 3_000)).expect("put");
        std::fs::copy(
            blob_file(&store, &noise(2, 3_000)),
            path.with_file_name("other"),
        )
        .expect("copy");
        damage(&path);
        let _ = std::fs::remove_file(path.with_file_name("other"));

        assert_eq!(
            store.get(&k).expect("get never errs on damage"),
            None,
            "{name}"
        );
        let stats = store.stats().expect("stats");
        assert_eq!(stats.corrupt, 1, "{name}: counted");
        assert_eq!(stats.entries, 1, "{name}: evicted");
        assert!(!path.exists(), "{name}: damaged blob removed");
        assert_eq!(
            store
                .last_unit("t", "unit")
                .expect("unit")
                .expect("recorded")
                .state,
            UnitState::Corrupt,
            "{name}"
        );
        assert!(
            store.verify(false, &NoProgress).expect("verify").is_clean(),
            "{name}"
        );
        // A new put writes a sound copy.
        store.put(&k, &bytes).expect("put again");
        assert_eq!(store.get(&k).expect("get"), Some(bytes), "{name}");
    }
}

#[test]
fn put_replaces_a_damaged_blob_it_would_share() {
    let (_dir, store) = fresh();
    let bytes = noise(3, 10_000);
    store.put(&key(1), &bytes).expect("put");
    flip_byte(&blob_file(&store, &bytes), 500);
    // Same bytes under another key: the existing blob fails verification, so it is
    // rewritten rather than shared.
    store.put(&key(2), &bytes).expect("put");
    assert_eq!(store.get(&key(2)).expect("get"), Some(bytes.clone()));
    assert_eq!(
        store.get(&key(1)).expect("get"),
        Some(bytes),
        "healed for the sharer too"
    );
    assert_eq!(store.stats().expect("stats").corrupt, 0);
}

#[test]
fn verify_finds_and_repairs_damage() {
    let (_dir, store) = fresh();
    let good = noise(1, 5_000);
    let bad = noise(2, 5_000);
    let gone = noise(3, 5_000);
    store.put(&key(1), &good).expect("put");
    store.put(&key(2), &bad).expect("put");
    store.put(&key(3), &bad).expect("put");
    store.put(&key(4), &gone).expect("put");
    flip_byte(&blob_file(&store, &bad), 300);
    std::fs::remove_file(blob_file(&store, &gone)).expect("remove");

    let report = store.verify(false, &NoProgress).expect("verify");
    assert!(!report.is_clean());
    assert_eq!((report.checked_blobs, report.checked_entries), (3, 4));
    assert_eq!(report.damaged_entries, 3);
    let mut kinds: Vec<Damage> = report.damaged.iter().map(|d| d.damage).collect();
    kinds.sort_by_key(|d| format!("{d:?}"));
    assert_eq!(kinds.len(), 2);
    assert!(kinds.contains(&Damage::Missing), "{kinds:?}");
    assert!(
        report
            .damaged
            .iter()
            .all(|d| d.path.starts_with(store.root()))
    );
    // Without repair nothing changed.
    assert_eq!(store.stats().expect("stats").entries, 4);

    let repaired = store.verify(true, &NoProgress).expect("repair");
    assert_eq!(repaired.evicted_entries, 3);
    let after = store.verify(false, &NoProgress).expect("verify");
    assert!(after.is_clean(), "{after:?}");
    assert_eq!(store.get(&key(1)).expect("get"), Some(good));
    assert_eq!(store.get(&key(2)).expect("get"), None);
    let stats = store.stats().expect("stats");
    assert_eq!((stats.entries, stats.corrupt), (1, 2));
}

/// The stored bytes (header + zstd frame) of the blob of `bytes` kept in the index of
/// the store under `root`: read, passed through `damage` as a file, written back (or
/// the row deleted when `damage` removed the file).
fn damage_inline(root: &Path, bytes: &[u8], damage: Damager) {
    let index = root.join(jitcache_store::FORMAT_DIR).join("index.sqlite");
    let conn = rusqlite::Connection::open(&index).expect("open index");
    let id = jitcache_store::BlobId::of(bytes);
    let stored: Vec<u8> = conn
        .query_row(
            "SELECT data FROM inline_blobs WHERE blob = ?1",
            [id.as_bytes().as_slice()],
            |r| r.get(0),
        )
        .expect("the blob is kept in the index");
    let scratch = tempfile::tempdir().expect("tempdir");
    let file = scratch.path().join("blob");
    std::fs::write(&file, &stored).expect("write");
    // "replaced by another blob": another blob's stored bytes.
    let other: Vec<u8> = conn
        .query_row(
            "SELECT data FROM inline_blobs WHERE blob != ?1 LIMIT 1",
            [id.as_bytes().as_slice()],
            |r| r.get(0),
        )
        .expect("another inline blob");
    std::fs::write(file.with_file_name("other"), other).expect("write other");
    damage(&file);
    match std::fs::read(&file) {
        Ok(damaged) => conn.execute(
            "UPDATE inline_blobs SET data = ?2 WHERE blob = ?1",
            rusqlite::params![id.as_bytes().as_slice(), damaged],
        ),
        Err(_) => conn.execute(
            "DELETE FROM inline_blobs WHERE blob = ?1",
            [id.as_bytes().as_slice()],
        ),
    }
    .expect("write back");
}

#[test]
fn every_inline_damage_is_a_counted_miss() {
    for (name, damage) in DAMAGES {
        let (dir, store) = crate::common::fresh();
        let bytes = noise(1, 3_000);
        let k = key(1);
        store.put(&k, &bytes).expect("put");
        store.put(&key(50), &noise(2, 3_000)).expect("put");
        assert!(
            !blob_file(&store, &bytes).exists(),
            "a small blob is kept in the index"
        );
        damage_inline(&dir.path().join("cache"), &bytes, *damage);

        assert_eq!(
            store.get(&k).expect("get never errs on damage"),
            None,
            "{name}"
        );
        let stats = store.stats().expect("stats");
        assert_eq!(stats.corrupt, 1, "{name}: counted");
        assert_eq!(stats.entries, 1, "{name}: evicted");
        let report = store.verify(false, &NoProgress).expect("verify");
        assert!(report.is_clean(), "{name}: {report:?}");
        assert_eq!(report.orphaned_blobs, 0, "{name}: the damaged copy is gone");
        // A new put stores a sound copy.
        store.put(&k, &bytes).expect("put again");
        assert_eq!(store.get(&k).expect("get"), Some(bytes), "{name}");
    }
}

#[test]
fn verify_finds_and_repairs_inline_damage() {
    let (dir, store) = crate::common::fresh();
    let (good, bad) = (noise(1, 2_000), noise(2, 2_000));
    store.put(&key(1), &good).expect("put");
    store.put(&key(2), &bad).expect("put");
    store.put(&key(3), &bad).expect("put");
    damage_inline(&dir.path().join("cache"), &bad, |p| flip_byte(p, 100));
    let report = store.verify(false, &NoProgress).expect("verify");
    assert_eq!((report.checked_blobs, report.checked_entries), (2, 3));
    assert_eq!(report.damaged_entries, 2);
    assert_eq!(report.damaged[0].damage, Damage::HashMismatch);
    assert!(report.damaged[0].path.ends_with("index.sqlite"));
    let repaired = store.verify(true, &NoProgress).expect("repair");
    assert_eq!(repaired.evicted_entries, 2);
    assert!(store.verify(false, &NoProgress).expect("verify").is_clean());
    assert_eq!(store.get(&key(1)).expect("get"), Some(good));
    assert_eq!(store.get(&key(2)).expect("get"), None);
}
