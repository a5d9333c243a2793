//! Target 1: an in-process persistent hit of a small unit (the store's verified read,
//! the link, the symbol's address) against its like-for-like floor (an inline blob: the
//! same bytes from an SQLite row of the index's shape; a file blob: read the blob
//! file; then decompress with a reused context and copy into mapped memory), and
//! against `dlopen`+`dlsym` of the same code as a fresh shared object. Criterion runs
//! calls back to back (the report's "bursts"); the report also measures them isolated.
//!
//! `cargo bench --bench hit`. `cargo run --release -p jitcache-bench -- --only 1` prints the ratios. The group
//! `hit/batch of 200` compares `get_many` with one `get_into` per key.

mod common;

use std::fs::File;
use std::hint::black_box;
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::SmallUnit;
use common::programs::{SMALL_C, SMALL_SYMBOL};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use jitcache::linker::call::SharedObject;
use jitcache::linker::{Linker, ObjectFile};
use jitcache::store::{BlobId, Key, KeyBuilder, Store, StoreConfig};
use jitcache_bench::hit::IndexFloor;

/// A persistent hit of `key` in `store`: get_into + load + symbol (the unload is not
/// timed).
fn persistent_hit(b: &mut criterion::Bencher<'_>, store: &Store, key: &Key) {
    let mut linker = Linker::new();
    let mut out = Vec::new();
    b.iter_custom(|iters| {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            let start = Instant::now();
            assert!(store.get_into(key, &mut out).expect("get"));
            let id = linker
                .load(&[ObjectFile {
                    name: "small.o",
                    bytes: &out,
                }])
                .expect("load");
            black_box(linker.symbol(id, SMALL_SYMBOL).expect("symbol"));
            total += start.elapsed();
            linker.unload(id).expect("unload");
        }
        total
    });
}

/// Decompresses a blob's stored bytes with `dctx` into `out` and copies them into
/// `mapped`.
fn floor_tail(
    dctx: &mut zstd::bulk::Decompressor<'_>,
    stored: &[u8],
    out: &mut Vec<u8>,
    mapped: &mut [u8],
) {
    out.clear();
    dctx.decompress_to_buffer(
        jitcache::store::split_stored(stored).expect("a blob").1,
        out,
    )
    .expect("decompress");
    mapped.copy_from_slice(out);
    black_box(&mapped);
}

fn hit(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let unit = SmallUnit::build(dir.path()).expect("compile the small unit");
    let store = Store::open(dir.path().join("cache"), StoreConfig::default()).expect("open");
    let key = KeyBuilder::new("bench", "small.c")
        .unit(SMALL_C.as_bytes())
        .build();
    store.put(&key, &unit.object).expect("put");
    // The store keeps a blob this small in its index; the same object in a store that
    // keeps every blob in a file gives the file-blob hit and the file floor.
    let file_store = Store::open(
        dir.path().join("cache-files"),
        StoreConfig {
            inline_max: 0,
            ..StoreConfig::default()
        },
    )
    .expect("open");
    file_store.put(&key, &unit.object).expect("put");
    let blob = file_store.blob_path(&BlobId::of(&unit.object));

    let mut group = c.benchmark_group("hit");
    group.bench_function("store get_into", |b| {
        let mut out = Vec::new();
        b.iter(|| assert!(store.get_into(black_box(&key), &mut out).expect("get")));
    });
    group.bench_function("persistent hit (get_into + load + symbol)", |b| {
        persistent_hit(b, &store, &key);
    });
    // Made once: criterion calls a benchmark's closure for the warm-up and again for
    // the measurement, and the floor's database can be created only once.
    let floor = IndexFloor::create(
        &dir.path().join("floor.sqlite"),
        key,
        &BlobId::of(&unit.object),
        unit.object.len(),
        &std::fs::read(&blob).expect("blob"),
    )
    .expect("the index floor's database");
    group.bench_function("index floor (SQLite row + zstd + copy)", |b| {
        let mut dctx = zstd::bulk::Decompressor::new().expect("zstd");
        let (mut row, mut out) = (Vec::new(), Vec::with_capacity(unit.object.len()));
        let mut mapped = vec![0u8; unit.object.len()];
        b.iter(|| {
            floor.read(&mut row).expect("the floor's row");
            floor_tail(&mut dctx, &row, &mut out, &mut mapped);
        });
    });
    group.bench_function("file-blob hit (get_into + load + symbol)", |b| {
        persistent_hit(b, &file_store, &key);
    });
    group.bench_function("file floor (read_exact + zstd + copy)", |b| {
        let len = std::fs::metadata(&blob).expect("blob").len() as usize;
        let mut file_bytes = vec![0u8; len];
        let mut dctx = zstd::bulk::Decompressor::new().expect("zstd");
        let mut out = Vec::with_capacity(unit.object.len());
        let mut mapped = vec![0u8; unit.object.len()];
        b.iter(|| {
            let mut f = File::open(&blob).expect("open blob");
            f.read_exact(&mut file_bytes).expect("read");
            drop(f);
            floor_tail(&mut dctx, &file_bytes, &mut out, &mut mapped);
        });
    });
    group.bench_function("dlopen+dlsym (fresh .so)", |b| {
        static N: AtomicU64 = AtomicU64::new(0);
        b.iter_batched(
            || {
                let path = dir
                    .path()
                    .join(format!("small-{}.so", N.fetch_add(1, Ordering::Relaxed)));
                std::fs::copy(&unit.shared, &path).expect("copy .so");
                path
            },
            |path| {
                let so = SharedObject::open(&path).expect("dlopen");
                black_box(so.symbol(SMALL_SYMBOL).expect("dlsym"));
                (so, path)
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

/// A batch of 200 small units: `get_many` (one read transaction, two threads) against
/// 200 `get_into` calls (one transaction each).
fn batch(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), StoreConfig::default()).expect("open");
    let objects: Vec<Vec<u8>> = (0..200).map(|i| common::object_bytes(i, 1500)).collect();
    let keys: Vec<_> = (0..200).map(common::key).collect();
    for (k, o) in keys.iter().zip(&objects) {
        store.put(k, o).expect("put");
    }
    let mut group = c.benchmark_group("hit/batch of 200");
    group.throughput(criterion::Throughput::Elements(200));
    group.bench_function("get_many", |b| {
        b.iter(|| {
            let found = store.get_many(black_box(&keys)).expect("get_many");
            assert!(found.iter().all(Option::is_some));
        });
    });
    group.bench_function("get_into each", |b| {
        let mut out = Vec::new();
        b.iter(|| {
            for k in &keys {
                assert!(store.get_into(black_box(k), &mut out).expect("get"));
            }
        });
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = hit, batch
}
criterion_main!(benches);
