//! The background writer: a queued put is visible in this process at once and in
//! others once flushed; the queue bound holds (a full queue writes on the caller's
//! thread); a process killed at each step of a background put leaves a consistent
//! store; the compile lock handed with a put is held until it is written.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use jitcache_store::{EntryMeta, GcOptions, NoProgress, PausePoint, Store, StoreConfig};

use crate::common::{assert_blob_files_sound, child_command, hold_write_lock, key, noise, tagged};
use crate::faults::{VICTIM_KEY, kill, reopen_after_kill, start_paused, victim_bytes};

const FLUSH: Duration = Duration::from_secs(30);

#[test]
fn a_background_put_is_seen_at_once_here_and_by_another_process_after_flush() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("cache");
    let store = Store::open(&root, StoreConfig::default()).expect("open");
    let entries: Vec<(u64, Vec<u8>)> = (0..40).map(|k| (k, tagged(k, 1, 30_000))).collect();
    for (k, bytes) in &entries {
        store
            .put_background(&key(*k), bytes.clone(), EntryMeta::default(), None)
            .expect("put_background");
        assert_eq!(store.get(&key(*k)).expect("get").as_ref(), Some(bytes));
    }
    assert_eq!(store.flush_writes(FLUSH), 0, "everything written");
    let out = child_command("bg-read", &root)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("run reader");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "reader failed: {stderr}");
    assert!(stderr.contains("read 40 of 40"), "{stderr}");
    let stats = store.stats().expect("stats");
    assert_eq!(stats.writes_queued, 40, "{stats:?}");
    assert_eq!(stats.writes_written, 40, "{stats:?}");
    assert_eq!(stats.writes_dropped, 0, "{stats:?}");
}

/// Child: opens the store and reports how many of the entries of the test above it
/// reads back exactly.
pub fn child_read(root: &Path) {
    let store = Store::open(root, StoreConfig::default()).expect("open");
    let good = (0..40)
        .filter(|k| store.get(&key(*k)).expect("get") == Some(tagged(*k, 1, 30_000)))
        .count();
    eprintln!("read {good} of 40");
}

#[test]
fn dropping_the_store_drains_the_queue() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("cache");
    {
        let store = Store::open(&root, StoreConfig::default()).expect("open");
        for k in 0..100 {
            store
                .put_background(&key(k), noise(k, 5_000), EntryMeta::default(), None)
                .expect("put_background");
        }
    }
    let store = Store::open(&root, StoreConfig::default()).expect("reopen");
    for k in 0..100 {
        assert_eq!(
            store.get(&key(k)).expect("get"),
            Some(noise(k, 5_000)),
            "{k}"
        );
    }
    let stats = store.stats().expect("stats");
    assert_eq!(
        (
            stats.writes_queued,
            stats.writes_written,
            stats.writes_dropped
        ),
        (100, 100, 0)
    );
}

#[test]
fn the_queue_bound_holds_and_a_full_queue_writes_on_the_callers_thread() {
    // The child's writer pauses on its first batch; with a queue of 4, of 11 puts one
    // is in flight, 4 wait, and 6 are written by the caller.
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("cache");
    drop(Store::open(&root, StoreConfig::default()).expect("open"));
    let mut child = start_paused("bg-bound", &root, PausePoint::BackgroundQueued);
    let stdout = child.stdout.take().expect("stdout piped");
    let line = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find_map(|line| line.find("visible").map(|at| line[at..].to_owned()))
        .expect("the child's report");
    kill(child);
    assert_eq!(line, "visible here 11, in the index 6");
    let store = Store::open(&root, StoreConfig::default()).expect("reopen");
    let stored = (0..11).filter(|k| store.get(&key(*k)).expect("get").is_some());
    assert_eq!(
        stored.count(),
        6,
        "the caller's writes stay, the queue is lost"
    );
    assert!(store.verify(false, &NoProgress).expect("verify").is_clean());
}

/// Child: puts one entry in the background (the writer pauses on it), then ten more
/// with a queue of 4; prints how many are visible to it and how many are in the index.
pub fn child_bound(root: &Path) {
    let config = StoreConfig {
        background_queue: 4,
        ..StoreConfig::default()
    };
    let store = Store::open(root, config).expect("open");
    let put = |k: u64| {
        store
            .put_background(&key(k), noise(k, 2_000), EntryMeta::default(), None)
            .expect("put_background");
    };
    put(0);
    // The writer took the first put (and pauses on it) once nothing waits.
    while store.queued_writes() > 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    for k in 1..11 {
        put(k);
    }
    let visible = (0..11)
        .filter(|k| store.get(&key(*k)).expect("get").is_some())
        .count();
    let other = Store::open(root, StoreConfig::default()).expect("open again");
    let indexed = (0..11)
        .filter(|k| other.get(&key(*k)).expect("get").is_some())
        .count();
    println!("visible here {visible}, in the index {indexed}");
    // Stay until killed: the paused writer holds the in-flight put.
    std::thread::sleep(Duration::from_secs(3600));
}

#[test]
fn sigkill_at_each_step_of_a_background_put_leaves_the_store_consistent() {
    for point in PausePoint::BACKGROUND {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("cache");
        let committed: Vec<(u64, Vec<u8>)> = (0..5).map(|k| (k, noise(k, 20_000))).collect();
        {
            let store = Store::open(&root, StoreConfig::default()).expect("open");
            for (k, bytes) in &committed {
                store.put(&key(*k), bytes).expect("put");
            }
        }
        kill(start_paused("bg-put", &root, point));

        let store = reopen_after_kill(&root, &committed, point);
        assert_blob_files_sound(&root);
        let report = store.verify(false, &NoProgress).expect("verify");
        assert!(report.is_clean(), "{point}: {report:?}");
        store.gc(&GcOptions::default(), &NoProgress).expect("gc");
        // The next process proceeds, in the background too.
        store
            .put_background(&key(VICTIM_KEY), victim_bytes(), EntryMeta::default(), None)
            .expect("put again");
        assert_eq!(store.flush_writes(FLUSH), 0);
        let report = store.verify(false, &NoProgress).expect("verify");
        assert!(
            report.is_clean() && report.orphaned_blobs == 0,
            "{point}: {report:?}"
        );
        drop(store);
        let store = Store::open(&root, StoreConfig::default()).expect("reopen");
        assert_eq!(
            store.get(&key(VICTIM_KEY)).expect("get"),
            Some(victim_bytes())
        );
    }
}

/// Child: puts the victim entry in the background and waits for it to be written.
pub fn child_put(root: &Path) {
    let store = Store::open(root, StoreConfig::default()).expect("open");
    store
        .put_background(&key(VICTIM_KEY), victim_bytes(), EntryMeta::default(), None)
        .expect("put_background");
    store.flush_writes(Duration::from_secs(3600));
}

#[test]
fn the_compile_lock_is_held_until_the_background_put_is_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("cache");
    let mut child = start_paused("bg-locked", &root, PausePoint::AfterRename);
    // The child's writer is paused mid-put with the compile lock of the key.
    let store = Store::open(&root, StoreConfig::default()).expect("open");
    let lock = store
        .lock_compile(&key(VICTIM_KEY), Duration::from_millis(100))
        .expect("lock_compile");
    assert!(lock.is_none(), "the lock travels with the queued put");
    // Resume the writer: the entry is indexed, then the lock released.
    use std::io::Write;
    let mut stdin = child.stdin.take().expect("stdin piped");
    writeln!(stdin).expect("resume");
    let lock = store
        .lock_compile(&key(VICTIM_KEY), Duration::from_secs(30))
        .expect("lock_compile");
    assert!(lock.is_some(), "released once written");
    assert_eq!(
        store.get(&key(VICTIM_KEY)).expect("get"),
        Some(victim_bytes()),
        "written before the lock was released"
    );
    drop(stdin);
    kill(child);
}

/// Child: takes the compile lock of the victim key, hands it with the put to the
/// writer, and waits.
pub fn child_locked(root: &Path) {
    let store = Store::open(root, StoreConfig::default()).expect("open");
    let lock = store
        .lock_compile(&key(VICTIM_KEY), Duration::from_secs(5))
        .expect("lock_compile")
        .expect("free");
    store
        .put_background(
            &key(VICTIM_KEY),
            victim_bytes(),
            EntryMeta::default(),
            Some(lock),
        )
        .expect("put_background");
    store.flush_writes(Duration::from_secs(3600));
    std::thread::sleep(Duration::from_secs(3600));
}

/// A store at `root` whose writes wait at most `write_timeout`, holding `key(1)`, with
/// its index's write lock held by another connection and `key(2)` queued for the
/// background writer behind it.
fn busy_store_with_a_queued_put(
    root: &Path,
    write_timeout: Duration,
) -> (Store, rusqlite::Connection) {
    let config = StoreConfig {
        write_timeout,
        ..StoreConfig::default()
    };
    let store = Store::open(root, config).expect("open");
    store.put(&key(1), b"one").expect("put");
    let locker = hold_write_lock(root);
    store
        .put_background(&key(2), noise(2, 500), EntryMeta::default(), None)
        .expect("put_background");
    (store, locker)
}

/// What `key(2)` reads as from another store, then `store`'s writer's counts once it is
/// closed (they reach the index then): written, dropped, puts dropped.
fn queued_put_outcome(root: &Path, store: Store) -> (Option<Vec<u8>>, (u64, u64, u64)) {
    let other = Store::open(root, StoreConfig::default()).expect("open again");
    let found = other.get(&key(2)).expect("get").map(|b| b.to_vec());
    drop(other);
    drop(store);
    let stats = Store::open(root, StoreConfig::default())
        .expect("reopen")
        .stats()
        .expect("stats");
    let counts = (
        stats.writes_written,
        stats.writes_dropped,
        stats.puts_dropped,
    );
    (found, counts)
}

/// A background put whose first try finds another process's write transaction open is
/// tried again and written once the lock is gone (within the writer's three tries);
/// nothing is counted as dropped.
#[test]
fn the_writer_tries_a_busy_batch_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("cache");
    let (store, locker) = busy_store_with_a_queued_put(&root, Duration::from_millis(100));
    // Longer than one try (100 ms), shorter than three.
    std::thread::sleep(Duration::from_millis(150));
    locker.execute_batch("COMMIT").expect("commit");
    drop(locker);
    assert_eq!(store.flush_writes(FLUSH), 0, "the queue drains");
    let (found, counts) = queued_put_outcome(&root, store);
    assert_eq!(found, Some(noise(2, 500)), "written by a later try");
    assert_eq!(counts, (1, 0, 0), "written, dropped, puts dropped");
}

/// A lock held through all three tries: the batch is dropped, counted once as a dropped
/// background write and once as a dropped put, and the store goes on.
#[test]
fn the_writer_drops_a_batch_that_stays_busy_and_counts_it_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("cache");
    let (store, locker) = busy_store_with_a_queued_put(&root, Duration::from_millis(20));
    assert_eq!(store.flush_writes(FLUSH), 0, "the batch is settled");
    locker.execute_batch("COMMIT").expect("commit");
    drop(locker);
    store
        .put(&key(3), b"three")
        .expect("a put once the lock is gone");
    let (found, counts) = queued_put_outcome(&root, store);
    assert_eq!(found, None, "dropped, not written");
    assert_eq!(counts, (0, 1, 1), "written, dropped, puts dropped");
}
