//! Store latency: put (per durability), hit and miss, against a floor of what any
//! file-backed cache must do for a hit (read the file, decompress, copy).
//!
//! `cargo bench --bench store`. Sizes are typical object files: 1 KiB (a small
//! function), 64 KiB (a module), 1 MiB (a large unit).

mod common;

use std::hint::black_box;
use std::time::Duration;

use common::{key, object_bytes};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use jitcache::store::{BlobId, Durability, Store, StoreConfig};

const SIZES: [usize; 3] = [1 << 10, 64 << 10, 1 << 20];

fn open(dir: &std::path::Path, durability: Durability) -> Store {
    let config = StoreConfig {
        durability,
        ..StoreConfig::default()
    };
    Store::open(dir, config).expect("open store")
}

fn put(c: &mut Criterion) {
    let mut group = c.benchmark_group("store/put");
    for durability in [Durability::None, Durability::Data] {
        for size in SIZES {
            let dir = tempfile::tempdir().expect("tempdir");
            let store = open(dir.path(), durability);
            let mut bytes = object_bytes(1, size);
            let mut n = 0u64;
            group.throughput(Throughput::Bytes(size as u64));
            group.bench_with_input(
                BenchmarkId::new(format!("{durability:?}"), size),
                &size,
                |b, _| {
                    b.iter(|| {
                        // New bytes each time: no blob sharing.
                        n += 1;
                        bytes[..8].copy_from_slice(&n.to_le_bytes());
                        store.put(&key(n), &bytes).expect("put");
                    });
                },
            );
        }
    }
    group.finish();
}

fn hit(c: &mut Criterion) {
    let mut group = c.benchmark_group("store/hit");
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path(), Durability::None);
    for (i, size) in SIZES.into_iter().enumerate() {
        let bytes = object_bytes(i as u64, size);
        let k = key(i as u64);
        store.put(&k, &bytes).expect("put");
        let mut out = Vec::new();
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::new("get_into", size), &size, |b, _| {
            b.iter(|| {
                assert!(store.get_into(black_box(&k), &mut out).expect("get"));
                black_box(&out);
            });
        });
        // The floor: read the blob file, decompress it, hand over the bytes. (Small blobs
        // live in the index: the file comes from a store that keeps every blob in one.)
        let files = tempfile::tempdir().expect("tempdir");
        let file_store = Store::open(
            files.path(),
            StoreConfig {
                inline_max: 0,
                ..StoreConfig::default()
            },
        )
        .expect("open");
        file_store.put(&k, &bytes).expect("put");
        let path = file_store.blob_path(&BlobId::of(&bytes));
        let mut dctx = zstd::bulk::Decompressor::new().expect("zstd");
        let mut out = Vec::with_capacity(size);
        group.bench_with_input(BenchmarkId::new("floor", size), &size, |b, _| {
            b.iter(|| {
                let file = std::fs::read(black_box(&path)).expect("read");
                out.clear();
                dctx.decompress_to_buffer(
                    jitcache::store::split_stored(&file).expect("a blob").1,
                    &mut out,
                )
                .expect("decompress");
                black_box(&out);
            });
        });
    }
    group.throughput(Throughput::Elements(1));
    group.bench_function("miss", |b| {
        let absent = key(u64::MAX);
        let mut out = Vec::new();
        b.iter(|| assert!(!store.get_into(black_box(&absent), &mut out).expect("get")));
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
}

criterion_group! {
    name = benches;
    config = config();
    targets = put, hit
}
criterion_main!(benches);
