//! Target 4: 2, 4 and 8 processes doing mixed hits and puts on one cache. Each
//! iteration starts the processes (`jitcache-bench-worker`), which share a fixed
//! amount of work (9 hits to 1 put of a new 1 KiB object), and waits for them all.
//!
//! `cargo bench --bench concurrency`. `cargo run --release -p jitcache-bench -- --only 4` measures throughput over
//! a fixed time instead, and counts busy or locked errors.

mod common;

use std::path::Path;
use std::process::Child;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{bench_mode, key, object_bytes};
use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use jitcache::store::{PutEntry, Store, StoreConfig};
use jitcache_bench::concurrency::{MixedReport, MixedSpec};
use jitcache_bench::worker::{self, WorkerSpec};

const WORKER: &str = env!("CARGO_BIN_EXE_jitcache-bench-worker");
/// Entries filled beforehand: the hits.
const KEYS: u64 = 2000;

fn spawn(dir: &Path, worker: u64, procs: u64, round: u64, ops: u64) -> Child {
    let spec = WorkerSpec::Mixed(MixedSpec {
        dir: dir.to_path_buf(),
        worker,
        procs,
        start_ms: 0,
        duration_ms: 600_000,
        keys: KEYS,
        put_every: 10,
        round,
        max_ops: Some(ops),
    });
    worker::spawn(Path::new(WORKER), &spec).expect("start a worker")
}

fn finish(child: Child) {
    let report = worker::finish(child).expect("a worker's report");
    let report: MixedReport = serde_json::from_value(report).expect("a mixed report");
    assert_eq!(report.busy_errors, 0, "{report:?}");
    assert_eq!(report.other_errors, 0, "{report:?}");
}

fn concurrency(c: &mut Criterion) {
    let total: u64 = if bench_mode() { 4000 } else { 80 };
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("cache");
    {
        let store = Store::open(&root, StoreConfig::default()).expect("open");
        let bytes: Vec<Vec<u8>> = (0..KEYS).map(|i| object_bytes(i + 77, 1024)).collect();
        let batch: Vec<PutEntry<'_>> = bytes
            .iter()
            .enumerate()
            .map(|(i, b)| PutEntry::new(key(i as u64), b))
            .collect();
        store.put_many(&batch).expect("prefill");
    }
    static ROUND: AtomicU64 = AtomicU64::new(0);
    let mut group = c.benchmark_group("concurrency");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .throughput(Throughput::Elements(total));
    for procs in [2u64, 4, 8] {
        group.bench_function(format!("{procs} processes, {total} ops"), |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    let round = ROUND.fetch_add(1, Ordering::Relaxed);
                    let start = Instant::now();
                    let children: Vec<Child> = (0..procs)
                        .map(|w| spawn(&root, w, procs, round, total / procs))
                        .collect();
                    children.into_iter().for_each(finish);
                    spent += start.elapsed();
                }
                spent
            });
        });
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = concurrency
}
criterion_main!(benches);
