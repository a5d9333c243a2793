//! Target 5 (scale): a big index. Hit latency on an index of many entries against one of
//! 1,000 (each entry its own small blob, keys drawn over the whole index), walking every
//! entry, and gc evicting half of the entries of a store where each has its own blob.
//!
//! `cargo bench --bench scale`. Sizes here are kept small enough for a bench run
//! (100,000 entries, gc over 2,000); `cargo run --release -p jitcache-bench -- --only 5`
//! uses 1,000,000 and 100,000, and compares gc with deleting the same files.

mod common;

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Rng, bench_mode, key, object_bytes};
use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use jitcache::store::{Durability, GcOptions, Key, NoProgress, PutEntry, Store, StoreConfig};

fn open(dir: &Path) -> Store {
    let config = StoreConfig {
        durability: Durability::None,
        ..StoreConfig::default()
    };
    Store::open(dir, config).expect("open")
}

/// A store of `n` entries over 16 shared blobs, filled 100,000 per transaction.
fn filled(dir: &Path, n: u64, blobs: &[Vec<u8>]) -> Store {
    let store = open(dir);
    let mut start = 0;
    while start < n {
        let end = (start + 100_000).min(n);
        let batch: Vec<PutEntry<'_>> = (start..end)
            .map(|i| PutEntry::new(key(i), &blobs[(i % 16) as usize]))
            .collect();
        store.put_many(&batch).expect("put_many");
        start = end;
    }
    store
}

/// Keys drawn at random over the whole index, more than it has entries at the
/// bench's sizes, so the hits read the whole index.
const RANDOM_KEYS: usize = 1 << 17;

fn hit_latency(c: &mut Criterion) {
    let big = if bench_mode() { 100_000 } else { 5_000 };
    let mut group = c.benchmark_group("scale/hit");
    for n in [1_000, big] {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(dir.path());
        jitcache_bench::scale::fill_distinct(&store, n as usize, 256, 0).expect("fill");
        // Closed and opened again, as a process opening the cache finds it (closing
        // checkpoints and truncates the log the fill left).
        drop(store);
        let store = open(dir.path());
        let mut rng = Rng::new(n);
        let keys: Vec<Key> = (0..RANDOM_KEYS)
            .map(|_| key(rng.below(n as usize) as u64))
            .collect();
        let mut out = Vec::new();
        let mut i = 0;
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                i = (i + 1) % keys.len();
                assert!(store.get_into(&keys[i], &mut out).expect("get"));
            });
        });
    }
    group.finish();
}

fn iterate(c: &mut Criterion) {
    let n = if bench_mode() { 100_000 } else { 5_000 };
    let blobs: Vec<Vec<u8>> = (0..16).map(|i| object_bytes(i, 1024)).collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = filled(dir.path(), n, &blobs);
    let mut group = c.benchmark_group("scale/for_each_entry");
    group.sample_size(10).throughput(Throughput::Elements(n));
    group.bench_function(BenchmarkId::from_parameter(n), |b| {
        b.iter(|| {
            let mut seen = 0u64;
            store
                .for_each_entry(|e| {
                    seen += black_box(e.size).min(1);
                    true
                })
                .expect("walk");
            assert_eq!(seen, n);
        });
    });
    group.finish();
}

fn gc(c: &mut Criterion) {
    let n: u64 = if bench_mode() { 2_000 } else { 200 };
    let mut group = c.benchmark_group("scale/gc");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .throughput(Throughput::Elements(n));
    group.bench_function(format!("evict half of {n}"), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir().expect("tempdir");
                let store = open(dir.path());
                let bytes: Vec<Vec<u8>> = (0..n).map(|i| object_bytes(i + 99, 512)).collect();
                let batch: Vec<PutEntry<'_>> = bytes
                    .iter()
                    .enumerate()
                    .map(|(i, b)| PutEntry::new(key(i as u64), b))
                    .collect();
                store.put_many(&batch).expect("fill");
                let cap = store.stats().expect("stats").bytes_on_disk / 2;
                let opts = GcOptions {
                    max_size: Some(cap),
                    ..GcOptions::default()
                };
                let start = Instant::now();
                let report = store.gc(&opts, &NoProgress).expect("gc");
                total += start.elapsed();
                assert!(report.evicted_entries > 0);
            }
            total
        });
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = hit_latency, iterate, gc
}
criterion_main!(benches);
