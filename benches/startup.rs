//! Target 2: start-up of a program in a new process, `jitcache run` with a warm cache
//! against `--no-cache`: a Lisp program of 1,000 definitions (Cranelift) and a C program
//! of 200 files (the system compiler). Each iteration is a whole process.
//!
//! `cargo bench --bench startup`. The uncached C program is 20 files here (each file is
//! a compiler process, about 20 ms): `cargo run --release -p jitcache-bench -- --only 2` measures all
//! 200.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::LazyLock;
use std::time::Duration;

use common::bench_mode;
use common::programs::{lisp_program, write_c_program};
use criterion::{Criterion, criterion_group, criterion_main};

/// The `jitcache` binary, built in this profile (it is another package's).
static EXE: LazyLock<PathBuf> = LazyLock::new(|| {
    jitcache_bench::exe::workspace_binary("jitcache-cli", "jitcache").expect("the jitcache binary")
});

fn run(cache: &Path, program: &Path, no_cache: bool) {
    let mut command = Command::new(&*EXE);
    command.arg("--cache-dir").arg(cache).arg("run");
    if no_cache {
        command.arg("--no-cache");
    }
    let out = command.arg(program).output().expect("run jitcache");
    assert!(
        out.status.success(),
        "{}: {}",
        program.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn startup(c: &mut Criterion) {
    let full = bench_mode();
    let (lisp_defs, c_units, c_uncached_units) = if full { (1000, 200, 20) } else { (60, 6, 3) };
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = dir.path().join("cache");
    let lisp = dir.path().join("p.clj");
    std::fs::write(&lisp, lisp_program(lisp_defs)).expect("write lisp");
    let c_dir = dir.path().join("c");
    write_c_program(&c_dir, c_units).expect("write c");
    let c_small = dir.path().join("c-small");
    write_c_program(&c_small, c_uncached_units).expect("write c");
    // Fill the cache.
    run(&cache, &lisp, false);
    run(&cache, &c_dir, false);

    let mut group = c.benchmark_group("startup");
    group.sample_size(10);
    group.bench_function(format!("lisp {lisp_defs} defs, warm"), |b| {
        b.iter(|| run(&cache, &lisp, false));
    });
    group.bench_function(format!("lisp {lisp_defs} defs, no cache"), |b| {
        b.iter(|| run(&cache, &lisp, true));
    });
    group.bench_function(format!("c {c_units} files, warm"), |b| {
        b.iter(|| run(&cache, &c_dir, false));
    });
    group.bench_function(format!("c {c_uncached_units} files, no cache"), |b| {
        b.iter(|| run(&cache, &c_small, true));
    });
    group.bench_function("bare process (jitcache --version)", |b| {
        b.iter(|| {
            let out = Command::new(&*EXE).arg("--version").output().expect("run");
            assert!(out.status.success());
        });
    });
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
    targets = startup
}
criterion_main!(benches);
