//! Fault injection: a writer killed with SIGKILL at each step of a put leaves the store
//! consistent: committed entries intact, no half-written blob visible, verify clean.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::Child;

use jitcache_store::{GcOptions, NoProgress, PAUSE_ENV, PausePoint, Store, StoreConfig};

use crate::common::{assert_blob_files_sound, files_under, key, noise, spawn_child};

const VICTIM_KEY: u64 = 1000;

fn victim_bytes() -> Vec<u8> {
    noise(VICTIM_KEY, 1 << 20)
}

/// Starts a child that puts the victim entry and pauses at `point`; returns once it has
/// paused.
fn start_paused_writer(root: &Path, point: PausePoint) -> Child {
    let mut child = spawn_child("fault-put", root, &[(PAUSE_ENV, point.name())]);
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

fn kill(mut child: Child) {
    child.kill().expect("SIGKILL"); // Child::kill sends SIGKILL on Unix
    child.wait().expect("reap");
}

#[test]
fn sigkill_mid_put_leaves_store_consistent() {
    for point in PausePoint::ALL {
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

        let store = Store::open(&root, StoreConfig::default()).expect("reopen after kill");
        for (k, bytes) in &committed {
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
        assert_eq!(
            files_under(&root.join("v1/tmp")),
            Vec::<std::path::PathBuf>::new(),
            "{point}: stale temp file cleaned at open"
        );
        assert_blob_files_sound(&root);
        let report = store.verify(false, &NoProgress).expect("verify");
        assert!(report.is_clean(), "{point}: {report:?}");
        let gc = store.gc(&GcOptions::default(), &NoProgress).expect("gc");
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
