//! Linker benches: loading a small object and a 100-function object with
//! `jitcache-linker`, against `dlopen`+`dlsym` of the same code built as a shared object
//! (a fresh copy of the `.so` each time, since dlopen of an open path only bumps a count).
//!
//! `cargo bench --bench linker` runs the criterion groups and then prints the ratio of
//! dlopen to load for both objects. Unloading and closing happen outside the timings.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion};
use jitcache_linker::call::SharedObject;
use jitcache_linker::{Linker, ObjectFile, UnitId};

const SMALL: &str = "int f0(int x) { return x * 2 + 1; }\n";

/// 100 functions calling each other, with data and a string, plus a libc call.
fn hundred() -> String {
    let mut s =
        String::from("#include <stdio.h>\nint counter;\nstatic const char *name = \"hundred\";\n");
    s.push_str("int f0(int x) { counter++; return x + (int)name[0]; }\n");
    for i in 1..100 {
        s.push_str(&format!(
            "int f{i}(int x) {{ static int t[4] = {{ {i}, 1, 2, 3 }}; return f{}(x ^ t[x & 3]) + {i}; }}\n",
            i - 1
        ));
    }
    s.push_str("int report(void) { return printf(\"%d\\n\", counter); }\n");
    s
}

struct Fixture {
    name: &'static str,
    object: Vec<u8>,
    shared: PathBuf,
    dir: PathBuf,
}

fn cc(args: &[&str]) {
    let out = Command::new("cc").args(args).output().expect("run cc");
    assert!(
        out.status.success(),
        "cc {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn fixture(dir: &Path, name: &'static str, source: &str) -> Fixture {
    let c = dir.join(format!("{name}.c"));
    let o = dir.join(format!("{name}.o"));
    let so = dir.join(format!("{name}.so"));
    std::fs::write(&c, source).expect("write source");
    let (c_s, o_s, so_s) = (
        c.display().to_string(),
        o.display().to_string(),
        so.display().to_string(),
    );
    cc(&["-O2", "-fPIC", "-c", &c_s, "-o", &o_s]);
    cc(&["-shared", "-fPIC", "-O2", &c_s, "-o", &so_s]);
    Fixture {
        name,
        object: std::fs::read(&o).expect("read object"),
        shared: so,
        dir: dir.to_owned(),
    }
}

/// A fresh copy of the shared object, removed when dropped.
struct FreshCopy(PathBuf);

impl Drop for FreshCopy {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn fresh_copy(f: &Fixture) -> FreshCopy {
    static N: AtomicU64 = AtomicU64::new(0);
    let path = f.dir.join(format!(
        "{}-{}.so",
        f.name,
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::copy(&f.shared, &path).expect("copy .so");
    FreshCopy(path)
}

/// Loads the fixture as a unit of `linker` and takes a symbol; returns the unit.
fn load(linker: &mut Linker, f: &Fixture) -> UnitId {
    let unit = linker
        .load(&[ObjectFile {
            name: f.name,
            bytes: &f.object,
        }])
        .expect("load");
    black_box(linker.symbol(unit, "f0").expect("f0"));
    unit
}

fn dlopen(copy: FreshCopy) -> (SharedObject, FreshCopy) {
    let so = SharedObject::open(&copy.0).expect("dlopen");
    black_box(so.symbol("f0").expect("f0"));
    (so, copy)
}

fn benches(c: &mut Criterion, fixtures: &[Fixture]) {
    let mut group = c.benchmark_group("linker");
    for f in fixtures {
        // One linker for the whole run, as a JIT has: its host-symbol cache is warm.
        // Unloading is outside the timing, like dlclose below.
        group.bench_function(format!("load+symbol/{}", f.name), |b| {
            let mut linker = Linker::new();
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    let unit = load(&mut linker, f);
                    total += start.elapsed();
                    linker.unload(unit).expect("unload");
                }
                total
            });
        });
        group.bench_function(format!("dlopen+dlsym/{}", f.name), |b| {
            b.iter_batched(|| fresh_copy(f), dlopen, BatchSize::SmallInput);
        });
    }
    group.finish();
}

/// Median of `n` timings of `routine`; `setup` and dropping the output are not timed.
fn median<S, O>(
    n: usize,
    mut setup: impl FnMut() -> S,
    mut routine: impl FnMut(S) -> O,
    mut teardown: impl FnMut(O),
) -> Duration {
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let input = setup();
        let start = Instant::now();
        let out = routine(input);
        times.push(start.elapsed());
        teardown(out);
    }
    times.sort();
    times[n / 2]
}

fn ratios(fixtures: &[Fixture]) {
    println!(
        "\nratio of dlopen+dlsym (fresh .so) to jitcache-linker load+symbol, medians of 2000 runs:"
    );
    for f in fixtures {
        let linker = std::cell::RefCell::new(Linker::new());
        let load_t = median(
            2000,
            || (),
            |()| load(&mut linker.borrow_mut(), f),
            |unit| linker.borrow_mut().unload(unit).expect("unload"),
        );
        let dl_t = median(2000, || fresh_copy(f), dlopen, drop);
        println!(
            "  {:<8} load {:>8.2} µs   dlopen {:>8.2} µs   dlopen/load = {:.1}x",
            f.name,
            load_t.as_secs_f64() * 1e6,
            dl_t.as_secs_f64() * 1e6,
            dl_t.as_secs_f64() / load_t.as_secs_f64()
        );
    }
}

fn main() {
    let dir = std::env::temp_dir().join(format!("jitcache-linker-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let fixtures = [
        fixture(&dir, "small", SMALL),
        fixture(&dir, "hundred", &hundred()),
    ];
    let mut c = Criterion::default().configure_from_args();
    benches(&mut c, &fixtures);
    c.final_summary();
    if std::env::args().any(|a| a == "--bench") {
        ratios(&fixtures);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
