//! Target 5: many small units loaded one by one (a JIT loading one definition at a
//! time). Times loading 1,000 one-function objects, each its own unit, with the code
//! arena and with one mapping per unit, and prints the memory each way takes per unit.
//!
//! `cargo bench --bench memory`. `cargo run --release -p jitcache-bench -- --only 5` reports the figure against
//! one 4 KiB page.

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use jitcache::backends::{Backend, ClifUnit, CraneliftBackend, CraneliftConfig};
use jitcache::linker::{Linker, MemoryStrategy, ObjectFile};

fn objects(n: usize) -> Vec<Vec<u8>> {
    let backend = CraneliftBackend::new(CraneliftConfig::default()).expect("backend");
    (0..n)
        .map(|i| {
            let clif = format!(
                "function %f{i}(i64) -> i64 {{\nblock0(v0: i64):\n    v1 = iconst.i64 {i}\n    v2 = imul v0, v0\n    v3 = iadd v2, v1\n    return v3\n}}\n"
            );
            backend
                .compile(&ClifUnit::parse(&clif).expect("clif"))
                .expect("compile")
                .bytes
        })
        .collect()
}

/// Loads every object as its own unit into a new linker; returns the linker.
fn load_all(strategy: MemoryStrategy, objects: &[Vec<u8>], names: &[String]) -> Linker {
    let mut linker = Linker::with_memory(strategy);
    for (bytes, name) in objects.iter().zip(names) {
        linker.load(&[ObjectFile { name, bytes }]).expect("load");
    }
    linker
}

fn main() {
    let n = if std::env::args().any(|a| a == "--bench") {
        1000
    } else {
        20
    };
    let objects = objects(n);
    let names: Vec<String> = (0..n).map(|i| format!("f{i}.o")).collect();
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    let mut group = c.benchmark_group("memory");
    group.throughput(Throughput::Elements(n as u64));
    for (label, strategy) in [
        ("arena", MemoryStrategy::Arena),
        ("mapping per unit", MemoryStrategy::MappingPerUnit),
    ] {
        group.bench_function(format!("load {n} small units, {label}"), |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    let linker = load_all(strategy, &objects, &names);
                    spent += start.elapsed();
                    drop(linker);
                }
                spent
            });
        });
    }
    group.finish();
    c.final_summary();

    let arena = load_all(MemoryStrategy::Arena, &objects, &names).arena_stats();
    let strict = load_all(MemoryStrategy::MappingPerUnit, &objects, &names).arena_stats();
    println!("\nbytes per unit, {n} small units loaded one by one:");
    for (label, s) in [("arena", arena), ("mapping per unit", strict)] {
        println!(
            "  {label:<17} touched {:>6.0}   mapped {:>6.0}   the units' own {:>5.0}",
            s.touched_bytes as f64 / n as f64,
            s.mapped_bytes as f64 / n as f64,
            s.used_bytes as f64 / n as f64
        );
    }
}
