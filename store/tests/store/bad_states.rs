//! Bad states, each with its typed error naming the path: a newer database, a corrupt
//! database (recovered, not an error), insecure directories, a read-only and a full
//! disk (real mounts, in a private mount namespace).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use jitcache_store::{Error, GcOptions, NoProgress, Store, StoreConfig};

use crate::common::{fresh, key, mount_or_skip, noise, open, run_in_mount_namespace};

#[test]
fn new_directories_are_private() {
    let (dir, _store) = fresh();
    let root = dir.path().join("cache");
    for d in [
        root.clone(),
        root.join("v1"),
        root.join("v1/blobs"),
        root.join("v1/tmp"),
    ] {
        let mode = std::fs::metadata(&d).expect("stat").mode() & 0o777;
        assert_eq!(mode, 0o700, "{}", d.display());
    }
}

#[test]
fn newer_database_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    drop(open(dir.path()));
    let index = dir.path().join("cache/v1/index.sqlite");
    {
        let conn = rusqlite::Connection::open(&index).expect("sqlite");
        conn.pragma_update(None, "user_version", 99)
            .expect("set version");
    }
    let before = std::fs::read(&index).expect("read");
    let err = Store::open(dir.path().join("cache"), StoreConfig::default()).expect_err("refused");
    match &err {
        Error::NewerFormat {
            path,
            found,
            supported,
        } => {
            assert_eq!(path, &index);
            assert_eq!(*found, 99);
            assert_eq!(*supported, jitcache_store::SCHEMA_VERSION);
        }
        other => panic!("expected NewerFormat, got {other:?}"),
    }
    assert!(err.to_string().contains("index.sqlite"), "{err}");
    assert_eq!(
        std::fs::read(&index).expect("read"),
        before,
        "never downgraded"
    );
}

fn corrupt_database_is_replaced(damage: impl Fn(&Path)) {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("cache");
    {
        let store = open(dir.path());
        // Larger than `inline_max`: blob files, which outlive the index.
        for k in 0..3 {
            store.put(&key(k), &noise(k, 20_000)).expect("put");
        }
    }
    let index = root.join("v1/index.sqlite");
    for ext in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", index.display()));
    }
    damage(&index);

    let store = open(dir.path());
    let stats = store.stats().expect("stats");
    assert_eq!(stats.corrupt_index_recoveries, 1);
    assert_eq!(stats.entries, 0);
    let aside: Vec<_> = std::fs::read_dir(root.join("v1"))
        .expect("readdir")
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("index.sqlite.corrupt-")
        })
        .collect();
    assert_eq!(aside.len(), 1, "the corrupt database is kept aside");
    assert_eq!(store.get(&key(0)).expect("get"), None);
    // The old blobs are orphans now: verify reports them, gc collects them.
    let report = store.verify(false, &NoProgress).expect("verify");
    assert!(report.is_clean());
    assert_eq!(report.orphaned_blobs, 3);
    // However gc is asked, the first one after the rebuild walks every blob file.
    let gc = store.gc(&GcOptions::default(), &NoProgress).expect("gc");
    assert_eq!(gc.removed_orphans, 3);
    assert!(gc.full_orphan_walk, "{gc:?}");
    let gc = store.gc(&GcOptions::default(), &NoProgress).expect("gc");
    assert!(!gc.full_orphan_walk, "the full walk was done: {gc:?}");
    store.put(&key(0), b"fresh").expect("put");
    assert_eq!(
        store.get(&key(0)).expect("get").as_deref(),
        Some(&b"fresh"[..])
    );
    drop(store);
    // The recovery happened once; reopening finds a sound index.
    assert_eq!(
        open(dir.path())
            .stats()
            .expect("stats")
            .corrupt_index_recoveries,
        1
    );
}

#[test]
fn garbage_database_is_moved_aside() {
    corrupt_database_is_replaced(|index| {
        std::fs::write(index, noise(1, 8192)).expect("overwrite");
    });
}

#[test]
fn damaged_database_pages_are_moved_aside() {
    corrupt_database_is_replaced(|index| {
        // Keep SQLite's file header, destroy the schema page.
        let mut bytes = std::fs::read(index).expect("read");
        let end = bytes.len().min(4096);
        bytes[100..end].fill(0xA5);
        std::fs::write(index, bytes).expect("write");
    });
}

/// Several openers finding the same corrupt index at once replace it exactly once.
#[test]
fn concurrent_openers_recover_a_corrupt_index_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("cache");
    drop(open(dir.path()));
    let index = root.join("v1/index.sqlite");
    // The write-ahead log outlives a closed store and would supply the pages: the
    // index and its log are lost together.
    for ext in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", index.display()));
    }
    std::fs::write(&index, noise(9, 4096)).expect("overwrite");
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(6));
    let threads: Vec<_> = (0..6)
        .map(|_| {
            let (root, barrier) = (root.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let store = Store::open(&root, StoreConfig::default()).expect("open");
                store.put(&key(1), b"one").expect("put");
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread");
    }
    let store = open(dir.path());
    assert_eq!(store.stats().expect("stats").corrupt_index_recoveries, 1);
    let aside = std::fs::read_dir(root.join("v1"))
        .expect("readdir")
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("index.sqlite.corrupt-")
        })
        .count();
    assert_eq!(aside, 1);
    assert_eq!(
        store.get(&key(1)).expect("get").as_deref(),
        Some(&b"one"[..])
    );
}

#[test]
fn world_writable_root_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("cache");
    std::fs::create_dir(&root).expect("mkdir");
    for mode in [0o777, 0o1777, 0o702] {
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(mode)).expect("chmod");
        match Store::open(&root, StoreConfig::default()) {
            Err(Error::InsecureDirectory { path, reason }) => {
                assert_eq!(path, root);
                assert!(reason.contains("world-writable"), "{reason}");
            }
            other => panic!("mode {mode:o}: expected InsecureDirectory, got {other:?}"),
        }
    }
    assert!(
        !root.join("v1").exists(),
        "nothing created in a refused directory"
    );
    // The format directory is checked too.
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    drop(Store::open(&root, StoreConfig::default()).expect("open"));
    std::fs::set_permissions(root.join("v1"), std::fs::Permissions::from_mode(0o777))
        .expect("chmod");
    assert!(matches!(
        Store::open(&root, StoreConfig::default()),
        Err(Error::InsecureDirectory { path, .. }) if path == root.join("v1")
    ));
}

#[test]
fn foreign_owned_root_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("cache");
    std::fs::create_dir(&root).expect("mkdir");
    let me = std::fs::metadata(&root).expect("stat").uid();
    let other = if me == 65534 { 65533 } else { 65534 };
    if let Err(e) = std::os::unix::fs::chown(&root, Some(other), None) {
        eprintln!("SKIP: cannot chown to uid {other} (needs root): {e}");
        return;
    }
    match Store::open(&root, StoreConfig::default()) {
        Err(Error::InsecureDirectory { path, reason }) => {
            assert_eq!(path, root);
            assert!(reason.contains(&format!("uid {other}")), "{reason}");
        }
        other => panic!("expected InsecureDirectory, got {other:?}"),
    }
}

/// A store on a read-only mount: reads work, every write is a typed error, nothing
/// stored is damaged.
#[test]
fn read_only_disk() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = open(dir.path());
        store.put(&key(1), &noise(1, 50_000)).expect("put");
        store.put(&key(2), b"two").expect("put");
    }
    if run_in_mount_namespace("read-only", dir.path()).is_none() {
        return;
    }
    let store = open(dir.path());
    assert_eq!(store.get(&key(1)).expect("get"), Some(noise(1, 50_000)));
    assert!(store.verify(false, &NoProgress).expect("verify").is_clean());
}

/// Child side of [`read_only_disk`], inside its own mount namespace.
pub fn child_read_only(dir: &Path) {
    let d = dir.to_str().expect("utf-8 path");
    mount_or_skip(&["--bind", d, d]);
    mount_or_skip(&["-o", "remount,ro,bind", d]);
    let store = Store::open(dir.join("cache"), StoreConfig::default()).expect("open read-only");
    assert!(!store.is_writable());
    assert_eq!(store.get(&key(1)).expect("get"), Some(noise(1, 50_000)));
    assert_eq!(
        store.get(&key(2)).expect("get").as_deref(),
        Some(&b"two"[..])
    );
    assert_eq!(store.get(&key(3)).expect("get"), None);
    let err = store.put(&key(3), b"three").expect_err("put fails");
    assert!(
        matches!(&err, Error::ReadOnly { path } if path.starts_with(dir)),
        "{err:?}"
    );
    assert!(matches!(store.remove(&key(1)), Err(Error::ReadOnly { .. })));
    assert!(matches!(
        store.gc(&GcOptions::default(), &NoProgress),
        Err(Error::ReadOnly { .. })
    ));
    assert!(matches!(store.clear(), Err(Error::ReadOnly { .. })));
    assert!(store.verify(false, &NoProgress).expect("verify").is_clean());
    assert_eq!(store.stats().expect("stats").entries, 2);
}

/// A store on a tiny tmpfs: a put that does not fit is a DiskFull error naming the
/// path; earlier entries and the index are intact; no temp file is left behind.
#[test]
fn full_disk() {
    let dir = tempfile::tempdir().expect("tempdir");
    run_in_mount_namespace("disk-full", dir.path());
}

/// Child side of [`full_disk`], inside its own mount namespace.
pub fn child_disk_full(dir: &Path) {
    let d = dir.to_str().expect("utf-8 path");
    mount_or_skip(&["-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", d]);
    let root = dir.join("cache");
    let store = Store::open(&root, StoreConfig::default()).expect("open");
    for k in 0..4 {
        store.put(&key(k), &noise(k, 100_000)).expect("small put");
    }
    let err = store
        .put(&key(99), &noise(99, 4 << 20))
        .expect_err("does not fit");
    match &err {
        Error::DiskFull { path } => assert!(path.starts_with(&root), "{}", path.display()),
        other => panic!("expected DiskFull, got {other:?}"),
    }
    assert!(err.to_string().contains("no space left"), "{err}");
    assert_eq!(
        std::fs::read_dir(root.join("v1/tmp")).expect("tmp").count(),
        0,
        "the failed temp file is removed"
    );
    for k in 0..4 {
        assert_eq!(store.get(&key(k)).expect("get"), Some(noise(k, 100_000)));
    }
    assert_eq!(store.get(&key(99)).expect("get"), None);
    assert!(store.verify(false, &NoProgress).expect("verify").is_clean());
    drop(store);
    let store = Store::open(&root, StoreConfig::default()).expect("reopen");
    assert_eq!(store.stats().expect("stats").entries, 4);
    // Space freed, writes work again.
    assert!(store.remove(&key(0)).expect("remove"));
    store
        .put(&key(5), &noise(5, 100_000))
        .expect("put after freeing space");
}

#[test]
fn an_index_of_schema_1_is_migrated_and_keeps_its_entries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = StoreConfig {
        inline_max: 0,
        ..StoreConfig::default()
    };
    let big = noise(7, 20_000);
    {
        let store = Store::open(dir.path().join("cache"), config).expect("open");
        store.put(&key(1), &big).expect("put");
    }
    // What a build of schema 1 left: no table of inline blobs (nor what schema 3
    // added: backend identities).
    let index = dir.path().join("cache/v1/index.sqlite");
    {
        let conn = rusqlite::Connection::open(&index).expect("sqlite");
        conn.execute_batch(
            "DROP TABLE inline_blobs;
             DROP INDEX entries_by_backend;
             ALTER TABLE entries DROP COLUMN backend;
             DROP TABLE backends;
             PRAGMA user_version = 1;",
        )
        .expect("downgrade");
    }
    let store = open(dir.path());
    assert_eq!(store.get(&key(1)).expect("get"), Some(big), "kept");
    store.put(&key(2), b"small").expect("put inline");
    assert_eq!(store.get(&key(2)).expect("get"), Some(b"small".to_vec()));
    let conn = rusqlite::Connection::open(&index).expect("sqlite");
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .expect("version");
    assert_eq!(version, jitcache_store::SCHEMA_VERSION);
}
