//! Fault injection: a writer killed with SIGKILL at each step of a put leaves the store
//! consistent: committed entries intact, no half-written blob visible, verify clean.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::Child;

use jitcache_store::{Error, GcOptions, NoProgress, PAUSE_ENV, PausePoint, Store, StoreConfig};

use crate::common::{
    assert_blob_files_sound, files_under, hold_write_lock, key, noise, spawn_child,
};

pub const VICTIM_KEY: u64 = 1000;

pub fn victim_bytes() -> Vec<u8> {
    noise(VICTIM_KEY, 1 << 20)
}

/// Starts a child that puts the victim entry and pauses at `point`; returns once it has
/// paused.
fn start_paused_writer(root: &Path, point: PausePoint) -> Child {
    start_paused("fault-put", root, point)
}

/// Starts a child in `role` with the pause hook at `point`; returns once it has paused.
pub fn start_paused(role: &str, root: &Path, point: PausePoint) -> Child {
    let mut child = spawn_child(role, root, &[(PAUSE_ENV, point.name())]);
    let stderr = child.stderr.take().expect("stderr piped");
    let mut lines = BufReader::new(stderr).lines();
    let wanted = format!("jitcache-store: paused at {point}");
    loop {
        match lines.next() {
            Some(Ok(line)) if line == wanted => break,
            Some(Ok(_)) => {}
            _ => {
                let status = child.wait().expect("wait");
                panic!("writer exited ({status}) before pausing at {point}");
            }
        }
    }
    // Keep draining stderr so the child never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    child
}

/// Reopens the store at `root` after a writer killed at `point`: every entry committed
/// before stays, and the victim's put is in the index exactly when the kill came after
/// its index commit.
pub fn reopen_after_kill(root: &Path, committed: &[(u64, Vec<u8>)], point: PausePoint) -> Store {
    let store = Store::open(root, StoreConfig::default()).expect("reopen after kill");
    for (k, bytes) in committed {
        assert_eq!(
            store.get(&key(*k)).expect("get").as_ref(),
            Some(bytes),
            "{point}: entry {k}"
        );
    }
    let victim = store.get(&key(VICTIM_KEY)).expect("get victim");
    match point {
        PausePoint::AfterIndex => assert_eq!(victim, Some(victim_bytes()), "{point}"),
        _ => assert_eq!(victim, None, "{point}"),
    }
    store
}

pub fn kill(mut child: Child) {
    child.kill().expect("SIGKILL"); // Child::kill sends SIGKILL on Unix
    child.wait().expect("reap");
}

#[test]
fn sigkill_mid_put_leaves_store_consistent() {
    for point in PausePoint::PUT {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("cache");
        let committed: Vec<(u64, Vec<u8>)> = (0..5)
            .map(|k| (k, noise(k, 10_000 * (k as usize + 1))))
            .collect();
        {
            let store = Store::open(&root, StoreConfig::default()).expect("open");
            for (k, bytes) in &committed {
                store.put(&key(*k), bytes).expect("put");
            }
        }

        let child = start_paused_writer(&root, point);
        if point == PausePoint::AfterTmp {
            // A store opened while the writer is alive must not take its temp file.
            let tmp_before = files_under(&root.join("v1/tmp"));
            assert_eq!(tmp_before.len(), 1, "the writer's temp file");
            drop(Store::open(&root, StoreConfig::default()).expect("open"));
            assert_eq!(files_under(&root.join("v1/tmp")), tmp_before);
        }
        kill(child);

        let store = reopen_after_kill(&root, &committed, point);
        assert_eq!(
            files_under(&root.join("v1/tmp")),
            Vec::<std::path::PathBuf>::new(),
            "{point}: stale temp file cleaned at open"
        );
        assert_blob_files_sound(&root);
        let report = store.verify(false, &NoProgress).expect("verify");
        assert!(report.is_clean(), "{point}: {report:?}");
        // The orphan of a put killed after its rename may lie in any slice of the blob
        // tree: a full walk finds it at once.
        let full = GcOptions {
            full_orphan_walk: true,
            ..GcOptions::default()
        };
        let gc = store.gc(&full, &NoProgress).expect("gc");
        let expected_orphans = u64::from(point == PausePoint::AfterRename);
        assert_eq!(gc.removed_orphans, expected_orphans, "{point}: {gc:?}");
        // The store still takes writes, including the interrupted one.
        store
            .put(&key(VICTIM_KEY), &victim_bytes())
            .expect("put again");
        assert_eq!(
            store.get(&key(VICTIM_KEY)).expect("get"),
            Some(victim_bytes())
        );
        let report = store.verify(false, &NoProgress).expect("verify");
        assert!(
            report.is_clean() && report.orphaned_blobs == 0,
            "{point}: {report:?}"
        );
    }
}

/// A writer between writing its blob and indexing it holds gc off: gc waits, and then
/// finds the blob referenced instead of collecting it as an orphan.
#[test]
fn gc_waits_for_a_writer_between_blob_and_index() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("cache");
    drop(Store::open(&root, StoreConfig::default()).expect("open"));
    let mut child = start_paused_writer(&root, PausePoint::AfterRename);
    let (tx, rx) = std::sync::mpsc::channel();
    let gc_root = root.clone();
    let gc = std::thread::spawn(move || {
        let store = Store::open(&gc_root, StoreConfig::default()).expect("open");
        let report = store.gc(&GcOptions::default(), &NoProgress).expect("gc");
        tx.send(()).expect("send");
        report
    });
    // gc must not finish while the writer is paused. (If the lock were broken this
    // could only pass by luck; it cannot fail spuriously when the lock works.)
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(
        rx.try_recv().is_err(),
        "gc ran while a writer held the lock"
    );
    let mut stdin = child.stdin.take().expect("stdin piped");
    stdin.write_all(b"resume\n").expect("resume writer");
    drop(stdin);
    let status = child.wait().expect("writer exits");
    assert!(status.success(), "writer: {status}");
    let report = gc.join().expect("gc thread");
    assert_eq!(
        report.removed_orphans, 0,
        "gc collected a blob about to be indexed: {report:?}"
    );
    let store = Store::open(&root, StoreConfig::default()).expect("open");
    assert_eq!(
        store.get(&key(VICTIM_KEY)).expect("get"),
        Some(victim_bytes())
    );
    assert!(store.verify(false, &NoProgress).expect("verify").is_clean());
}

/// Child side: open the store and put the victim entry (the pause hook stops it).
pub fn child_put(root: &Path) {
    let store = Store::open(root, StoreConfig::default()).expect("open");
    store.put(&key(VICTIM_KEY), &victim_bytes()).expect("put");
}

/// Entries of the gc crash tests: file blobs and inline ones.
fn gc_fixture(root: &Path) -> Vec<(u64, Vec<u8>)> {
    let committed: Vec<(u64, Vec<u8>)> = (0..12)
        .map(|k| (k, noise(k, 3_000 * (k as usize + 1))))
        .collect();
    let store = Store::open(root, StoreConfig::default()).expect("open");
    for (k, bytes) in &committed {
        store.put(&key(*k), bytes).expect("put");
    }
    // An orphan for the walk to find: a stray file in a shard directory.
    let shard = root.join("v1/blobs/ab/cd");
    std::fs::create_dir_all(&shard).expect("shard");
    std::fs::write(shard.join("stray"), b"not a blob").expect("stray");
    committed
}

/// Starts a child that runs a size-capped gc and pauses at `point`.
fn start_paused_gc(root: &Path, point: PausePoint) -> Child {
    let mut child = spawn_child("fault-gc", root, &[(PAUSE_ENV, point.name())]);
    let stderr = child.stderr.take().expect("stderr piped");
    let mut lines = BufReader::new(stderr).lines();
    let wanted = format!("jitcache-store: paused at {point}");
    loop {
        match lines.next() {
            Some(Ok(line)) if line == wanted => break,
            Some(Ok(_)) => {}
            _ => {
                let status = child.wait().expect("wait");
                panic!("gc exited ({status}) before pausing at {point}");
            }
        }
    }
    std::thread::spawn(move || lines.for_each(drop));
    child
}

/// A gc killed at each of its steps, holding the gc lock or between steps: while it is
/// paused, readers hit, and a writer either proceeds (between steps) or gives up within
/// its bound with `Busy` (mid-step); after the kill nothing that was not evicted is lost,
/// nothing is corrupt, and the next process's gc, verify and puts proceed.
#[test]
fn sigkill_mid_gc_leaves_store_consistent() {
    for point in PausePoint::GC {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("cache");
        let committed = gc_fixture(&root);
        let child = start_paused_gc(&root, point);

        let store = Store::open(&root, StoreConfig::default()).expect("open");
        // Readers take no lock: every entry still there reads back exactly.
        for (k, bytes) in &committed {
            if let Some(got) = store.get(&key(*k)).expect("get") {
                assert_eq!(&got, bytes, "{point}: entry {k}");
            }
        }
        let put = store.put(&key(500), b"written while gc is paused");
        match point {
            PausePoint::GcBetweenSteps => put.expect("a put proceeds between steps"),
            _ => {
                let err = put.expect_err("the paused step holds the gc lock");
                assert!(
                    matches!(
                        &err,
                        Error::Busy {
                            what: "the gc lock",
                            ..
                        }
                    ),
                    "{point}: {err}"
                );
                assert!(err.to_string().contains("gc.lock"), "{err}");
                assert_eq!(store.stats().expect("stats").puts_dropped, 1, "{point}");
            }
        }
        drop(store);
        kill(child);

        let store = Store::open(&root, StoreConfig::default()).expect("reopen after kill");
        let mut kept = 0;
        for (k, bytes) in &committed {
            if let Some(got) = store.get(&key(*k)).expect("get") {
                assert_eq!(&got, bytes, "{point}: entry {k}");
                kept += 1;
            }
        }
        assert!(kept > 0, "{point}: the cap keeps some entries");
        let report = store.verify(false, &NoProgress).expect("verify");
        assert!(report.is_clean(), "{point}: {report:?}");
        let gc = store.gc(&GcOptions::default(), &NoProgress).expect("gc");
        if point == PausePoint::GcEvicted {
            // The killed step had unindexed blob files it did not delete: its mark makes
            // the next gc walk every blob file, and that gc finds them (and the stray).
            assert!(gc.full_orphan_walk, "{point}: {gc:?}");
            assert!(gc.removed_orphans >= 2, "{point}: {gc:?}");
        } else {
            // A gc killed within its walk leaves what it had not reached to the slices
            // of later runs; a full walk takes it now.
            let full = GcOptions {
                full_orphan_walk: true,
                ..GcOptions::default()
            };
            store.gc(&full, &NoProgress).expect("full gc");
        }
        assert_blob_files_sound(&root);
        let report = store.verify(false, &NoProgress).expect("verify");
        assert!(
            report.is_clean() && report.orphaned_blobs == 0 && report.stale_tmp == 0,
            "{point}: {report:?}"
        );
        store
            .put(&key(501), b"after the kill")
            .expect("put after kill");
        assert_eq!(
            store.get(&key(501)).expect("get").as_deref(),
            Some(&b"after the kill"[..])
        );
    }
}

/// Child side: a gc that evicts about half of the fixture, then removes orphans (the
/// pause hook stops it).
pub fn child_gc(root: &Path) {
    let store = Store::open(root, StoreConfig::default()).expect("open");
    let on_disk = store.stats().expect("stats").bytes_on_disk;
    // A full walk, so that it reaches the stray file wherever it lies.
    let opts = GcOptions {
        max_size: Some(on_disk / 2),
        full_orphan_walk: true,
        ..GcOptions::default()
    };
    store.gc(&opts, &NoProgress).expect("gc");
}

/// Another process holding the index's write lock: lookups go on (readers take no lock
/// and never wait on a writer), a put gives up within its bound with `Busy` naming the
/// index and is counted, a flush due during lookups does not wait; once the lock is gone
/// everything proceeds and nothing was lost.
#[test]
fn a_held_write_lock_never_blocks_lookups_and_bounds_puts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("cache");
    let config = StoreConfig {
        access_flush_interval: std::time::Duration::ZERO,
        ..StoreConfig::default()
    };
    let store = Store::open(&root, config).expect("open");
    store.put(&key(1), b"one").expect("put");

    let locker = hold_write_lock(&root);
    // Every lookup finds its flush due (interval zero) and must not wait for it.
    for _ in 0..3 {
        assert_eq!(
            store.get(&key(1)).expect("get").as_deref(),
            Some(&b"one"[..])
        );
    }
    let err = store
        .put(&key(2), b"two")
        .expect_err("a put cannot be indexed");
    assert!(
        matches!(
            err,
            Error::Busy {
                what: "the index's write lock",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("index.sqlite"), "{err}");
    locker.execute_batch("COMMIT").expect("commit");
    drop(locker);

    store
        .put(&key(2), b"two")
        .expect("put once the lock is gone");
    assert_eq!(
        store.get(&key(2)).expect("get").as_deref(),
        Some(&b"two"[..])
    );
    let stats = store.stats().expect("stats");
    assert_eq!(stats.puts_dropped, 1, "{stats:?}");
    assert!(
        stats.hits >= 4,
        "the counts of the unwritten flushes were kept: {stats:?}"
    );
    assert!(store.verify(false, &NoProgress).expect("verify").is_clean());
}
