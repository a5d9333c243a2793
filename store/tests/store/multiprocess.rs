//! Many OS processes on one store: overlapping keys, sizes from bytes to megabytes,
//! concurrent gc and verify. Every read returns exactly bytes some process put under
//! that key, or a miss; the store verifies clean afterwards.

use std::path::Path;
use std::process::Output;

use jitcache_store::{Error, GcOptions, NoProgress, Store, StoreConfig};

use crate::common::{assert_blob_files_sound, check_tagged, key, spawn_child, tagged};

const WORKERS: usize = 8;
const OPS: u64 = 600;
const KEYS: u64 = 48;
const WORKER_ENV: &str = "JITCACHE_STORE_TEST_WORKER";

#[test]
fn many_processes_share_one_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("cache");
    // The children race to create the store, too.
    let children: Vec<_> = (0..WORKERS)
        .map(|w| spawn_child("mp-worker", &root, &[(WORKER_ENV, &w.to_string())]))
        .collect();
    let outputs: Vec<Output> = children
        .into_iter()
        .map(|c| c.wait_with_output().expect("wait child"))
        .collect();
    let mut hits = 0u64;
    for (w, out) in outputs.iter().enumerate() {
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "worker {w} failed: {}\nstdout:\n{stdout}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let line = stdout
            .lines()
            .find_map(|l| l.split("RESULT hits=").nth(1))
            .expect("worker reported");
        hits += line
            .split_whitespace()
            .next()
            .and_then(|n| n.parse::<u64>().ok())
            .expect("hit count");
    }
    assert!(hits > 0, "workers should have read each other's entries");

    let store = Store::open(&root, StoreConfig::default()).expect("open");
    let report = store.verify(false, &NoProgress).expect("verify");
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.stale_tmp, 0);
    for k in 0..KEYS {
        if let Some(bytes) = store.get(&key(k)).expect("get") {
            assert!(check_tagged(k, &bytes).is_some(), "key {k}: foreign bytes");
        }
    }
    let stats = store.stats().expect("stats");
    assert!(stats.hits >= hits, "hit counters persisted: {stats:?}");
    assert!(stats.puts > 0);
    assert_blob_files_sound(&root);
}

/// One worker: a seeded mix of puts, gets and removes; worker 0 also runs gc with a
/// size cap, worker 1 verify, mid-run.
pub fn child_worker(root: &Path) {
    let worker: u64 = std::env::var(WORKER_ENV)
        .ok()
        .and_then(|w| w.parse().ok())
        .expect("worker id");
    let store = Store::open(root, StoreConfig::default()).expect("open store");
    let mut rng = worker.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let (mut hits, mut misses, mut puts, mut dropped) = (0u64, 0u64, 0u64, 0u64);
    let mut buf = Vec::new();
    for i in 0..OPS {
        let k = next() % KEYS;
        let dice = next() % 100;
        if dice < 35 {
            let size = match next() % 100 {
                0..70 => 16 + (next() % 2048) as usize,
                70..96 => 2048 + (next() % (128 << 10)) as usize,
                _ => (512 << 10) + (next() % (1536 << 10)) as usize,
            };
            // Versions collide across workers on purpose: identical bytes share blobs.
            let version = next() % 4;
            // A put the cache was too busy to take in its bounded wait is dropped (and
            // counted by the store); anything else is a failure.
            match store.put(&key(k), &tagged(k, version, size)) {
                Ok(()) => puts += 1,
                Err(Error::Busy { .. }) => dropped += 1,
                Err(e) => panic!("worker {worker}: put: {e}"),
            }
        } else if dice < 97 {
            if store.get_into(&key(k), &mut buf).expect("get") {
                assert!(
                    check_tagged(k, &buf).is_some(),
                    "worker {worker}: key {k} returned bytes nobody put"
                );
                hits += 1;
            } else {
                misses += 1;
            }
        } else {
            store.remove(&key(k)).expect("remove");
        }
        if worker == 0 && i % 60 == 59 {
            let opts = GcOptions {
                max_size: Some(3 << 20),
                ..GcOptions::default()
            };
            store.gc(&opts, &NoProgress).expect("gc");
        }
        if worker == 1 && i % 100 == 99 {
            let report = store.verify(false, &NoProgress).expect("verify");
            assert!(report.is_clean(), "mid-run verify: {report:?}");
        }
    }
    store.flush().expect("flush");
    // On a line of its own: libtest has already printed "test ... " without a newline.
    println!("\nRESULT hits={hits} misses={misses} puts={puts} dropped={dropped}");
}
