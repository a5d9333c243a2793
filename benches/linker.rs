//! Linker benches: loading objects with `jitcache-linker` into its code arena (W^X, the
//! default: code written with `pwrite`; and the opt-in shared alias: code written through
//! a writable view kept for the chunk's life), into one mapping per unit, and `dlopen`+`dlsym` of the same
//! code built as a shared object (a fresh copy of the `.so` each time, since dlopen of an
//! open path only bumps a count); a batch of small Cranelift objects linked as one unit
//! (the facade's hot case); the bytes mapped per unit for 1000 small units; and the two
//! bindings: a call from one unit to another through a stub against a direct one, and
//! the load of a small unit with stubs against without.
//!
//! `cargo bench --bench linker` runs the criterion groups and then prints a summary of
//! medians with the ratios. Unloading and closing happen outside the timings.

use std::cell::RefCell;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion};
use jitcache_backends::{Backend, ClifUnit, CraneliftBackend, CraneliftConfig};
use jitcache_linker::call::SharedObject;
use jitcache_linker::{Binding, Linker, LoadOptions, MemoryStrategy, ObjectFile, UnitId};

const SMALL: &str = "int f0(int x) { return x * 2 + 1; }\n";

/// Objects in the batch: the facade links a whole batch of definitions (~300–1000) as
/// one unit.
const BATCH: usize = 300;

/// The memory strategies measured, by label.
const STRATEGIES: [(&str, MemoryStrategy); 3] = [
    ("arena", MemoryStrategy::Arena),
    ("arena, shared alias", MemoryStrategy::ArenaSharedAlias),
    ("own mapping", MemoryStrategy::MappingPerUnit),
];

/// A caller of `f0` in a unit of its own: its calls reach `f0` as the binding says.
const CALLER: &str = "int f0(int x);\nint sum_f0(int n) { int s = 0; for (int i = 0; i < n; i++) s += f0(i); return s; }\n";

/// Calls of `f0` per call of `sum_f0`.
const CALLS: i64 = 1000;

/// Units for the bytes-per-unit figure.
const UNITS: usize = 1000;

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

/// The runtime function every Cranelift definition calls (resolved by the resolver,
/// as the facade's runtime is).
extern "C" fn rt_add(a: i64, b: i64) -> i64 {
    a.wrapping_add(b)
}

/// Definition `i` as CLIF: calls the previous definition (another object of the batch)
/// and the runtime, like a compiled Lisp definition.
fn definition(i: usize) -> String {
    let (decl, first) = if i == 0 {
        (String::new(), "v1 = iconst.i64 0".to_owned())
    } else {
        (
            format!("    fn1 = %d{} sig0\n", i - 1),
            "v1 = call fn1(v0)".to_owned(),
        )
    };
    format!(
        "function %d{i}(i64) -> i64 system_v {{\n    sig0 = (i64) -> i64 system_v\n    sig1 = (i64, i64) -> i64 system_v\n    fn0 = %rt_add sig1\n{decl}block0(v0: i64):\n    {first}\n    v2 = iconst.i64 {i}\n    v3 = call fn0(v1, v2)\n    return v3\n}}\n"
    )
}

/// `n` small Cranelift objects (default configuration: non-PIC, unwind info), one
/// definition each.
fn cranelift_objects(n: usize) -> Vec<Vec<u8>> {
    let backend = CraneliftBackend::new(CraneliftConfig::default()).expect("host backend");
    (0..n)
        .map(|i| {
            let unit = ClifUnit::parse(&definition(i)).expect("clif");
            backend.compile(&unit).expect("compile").bytes
        })
        .collect()
}

fn cranelift_linker(strategy: MemoryStrategy) -> Linker {
    let mut linker = Linker::with_memory(strategy);
    linker.set_resolver(Box::new(|name| {
        (name == "rt_add").then_some(rt_add as extern "C" fn(i64, i64) -> i64 as usize)
    }));
    linker
}

/// Links the batch as one unit and checks the last definition's result.
fn load_batch(linker: &mut Linker, files: &[ObjectFile<'_>]) -> UnitId {
    let unit = linker.load(files).expect("load batch");
    let last = linker
        .symbol(unit, &format!("d{}", files.len() - 1))
        .expect("last definition");
    black_box(last);
    unit
}

fn batch_files<'a>(names: &'a [String], objects: &'a [Vec<u8>]) -> Vec<ObjectFile<'a>> {
    names
        .iter()
        .zip(objects)
        .map(|(name, bytes)| ObjectFile { name, bytes })
        .collect()
}

/// Times `load` with a linker reused across iterations (its host-symbol cache warm),
/// unloading outside the timing.
fn timed_loads(
    linker: &mut Linker,
    iters: u64,
    mut load: impl FnMut(&mut Linker) -> UnitId,
) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let start = Instant::now();
        let unit = load(linker);
        total += start.elapsed();
        linker.unload(unit).expect("unload");
    }
    total
}

/// A linker with `f0` (the small fixture) and `sum_f0` loaded with `binding`; the
/// address of `sum_f0`.
fn bound(binding: Binding, small: &[u8], caller: &[u8]) -> (Linker, usize) {
    let mut linker = Linker::new();
    let options = LoadOptions::default().binding(binding);
    for (name, bytes) in [("small.o", small), ("caller.o", caller)] {
        linker
            .load_with(&[ObjectFile { name, bytes }], &options)
            .expect("load");
    }
    let sum = linker.lookup("sum_f0").expect("sum_f0");
    (linker, sum)
}

/// One call of `sum_f0(CALLS)`.
fn sum_f0(addr: usize) -> i64 {
    // SAFETY: `int sum_f0(int)` of a unit loaded by `bound`, whose linker the caller holds.
    unsafe { jitcache_linker::call::call_i64(addr, &[CALLS]) }.expect("call")
}

/// Median load of the small fixture with `binding`, each unit unloaded before the next.
fn binding_load(binding: Binding, f: &Fixture) -> Duration {
    let linker = RefCell::new(Linker::new());
    let options = LoadOptions::default().binding(binding);
    let object = [ObjectFile {
        name: f.name,
        bytes: &f.object,
    }];
    let load = || {
        linker
            .borrow_mut()
            .load_with(&object, &options)
            .expect("load")
    };
    let first = load(); // the first chunk and stub block, outside the timings
    linker.borrow_mut().unload(first).expect("unload");
    median(
        2000,
        || (),
        |()| load(),
        |unit| linker.borrow_mut().unload(unit).expect("unload"),
    )
}

fn benches(c: &mut Criterion, fixtures: &[Fixture], clif: &[Vec<u8>], caller: &[u8]) {
    let mut group = c.benchmark_group("linker");
    for (label, binding) in [("direct", Binding::Direct), ("stubs", Binding::Stubs)] {
        let (linker, sum) = bound(binding, &fixtures[0].object, caller);
        group.bench_function(format!("{CALLS} calls to another unit ({label})"), |b| {
            b.iter(|| black_box(sum_f0(black_box(sum))));
        });
        drop(linker);
    }
    for f in fixtures {
        for (label, strategy) in STRATEGIES {
            group.bench_function(format!("load+symbol ({label})/{}", f.name), |b| {
                let mut linker = Linker::with_memory(strategy);
                b.iter_custom(|iters| timed_loads(&mut linker, iters, |l| load(l, f)));
            });
        }
        group.bench_function(format!("dlopen+dlsym/{}", f.name), |b| {
            b.iter_batched(|| fresh_copy(f), dlopen, BatchSize::SmallInput);
        });
    }
    let names: Vec<String> = (0..clif.len()).map(|i| format!("d{i}.o")).collect();
    let files = batch_files(&names, clif);
    for (label, strategy) in STRATEGIES {
        group.bench_function(
            format!("batch of {} cranelift objects ({label})", clif.len()),
            |b| {
                let mut linker = cranelift_linker(strategy);
                b.iter_custom(|iters| timed_loads(&mut linker, iters, |l| load_batch(l, &files)));
            },
        );
    }
    group.finish();
}

/// Median of `n` timings of `routine`; `setup` and `teardown` are not timed.
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

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Median load time with pieces reused (each unit unloaded before the next load) and
/// with fresh pieces (units accumulate, as in a JIT; unloaded in bulk, untimed).
fn load_medians(strategy: MemoryStrategy, f: &Fixture) -> (Duration, Duration) {
    let linker = RefCell::new(Linker::with_memory(strategy));
    load(&mut linker.borrow_mut(), f); // the arena's first chunk, outside the timings
    let reused = median(
        2000,
        || (),
        |()| load(&mut linker.borrow_mut(), f),
        |unit| linker.borrow_mut().unload(unit).expect("unload"),
    );
    let mut times = Vec::new();
    for _ in 0..4 {
        let mut units = Vec::with_capacity(500);
        for _ in 0..500 {
            let start = Instant::now();
            units.push(load(&mut linker.borrow_mut(), f));
            times.push(start.elapsed());
        }
        for unit in units {
            linker.borrow_mut().unload(unit).expect("unload");
        }
    }
    times.sort();
    (reused, times[times.len() / 2])
}

/// Loads `UNITS` units of `bytes` into a linker and reports bytes per unit.
fn bytes_per_unit(strategy: MemoryStrategy, bytes: &[u8], resolver: bool) -> (f64, f64, f64) {
    let mut linker = if resolver {
        cranelift_linker(strategy)
    } else {
        Linker::with_memory(strategy)
    };
    let options = LoadOptions::default().export(false);
    for _ in 0..UNITS {
        linker
            .load_with(
                &[ObjectFile {
                    name: "unit.o",
                    bytes,
                }],
                &options,
            )
            .expect("load");
    }
    let s = linker.arena_stats();
    let per = |b: usize| b as f64 / s.units as f64;
    (per(s.touched_bytes), per(s.mapped_bytes), per(s.used_bytes))
}

fn summary(fixtures: &[Fixture], clif: &[Vec<u8>], caller: &[u8]) {
    println!("\nbindings (medians):");
    let mut per_call = Vec::new();
    for binding in [Binding::Direct, Binding::Stubs] {
        let (linker, sum) = bound(binding, &fixtures[0].object, caller);
        let t = median(20_000, || (), |()| sum_f0(sum), drop);
        per_call.push(t.as_secs_f64() * 1e9 / CALLS as f64);
        drop(linker);
    }
    let (direct, stubs) = (
        binding_load(Binding::Direct, &fixtures[0]),
        binding_load(Binding::Stubs, &fixtures[0]),
    );
    let (linker, _) = bound(Binding::Direct, &fixtures[0].object, caller);
    let f0 = linker.lookup_handle("f0").expect("f0");
    let raw = f0.addr();
    let per = |t: Duration| t.as_secs_f64() * 1e9 / CALLS as f64;
    let handle_call = per(median(
        2000,
        || (),
        |()| {
            for i in 0..CALLS {
                black_box(f0.call_i64(&[black_box(i)]).expect("call"));
            }
        },
        drop,
    ));
    let raw_call = per(median(
        2000,
        || (),
        |()| {
            for i in 0..CALLS {
                // SAFETY: `int f0(int)` of a unit of `linker`, which is alive here.
                black_box(
                    unsafe { jitcache_linker::call::call_i64(raw, &[black_box(i)]) }.expect("call"),
                );
            }
        },
        drop,
    ));
    drop(linker);
    println!(
        "  a call to another unit: direct {:.2} ns, through a stub {:.2} ns (+{:.2} ns)   load of the small unit (reusing freed pieces): direct {:.2} µs, with stubs {:.2} µs (+{:.2} µs)",
        per_call[0],
        per_call[1],
        per_call[1] - per_call[0],
        us(direct),
        us(stubs),
        us(stubs) - us(direct),
    );
    println!(
        "  a call from Rust: through a Symbol handle (lifetime checked) {handle_call:.2} ns, raw address (unsafe) {raw_call:.2} ns"
    );

    println!("\nmedians (µs); dlopen+dlsym opens a fresh .so each time:");
    for f in fixtures {
        let (arena_reused, arena_fresh) = load_medians(MemoryStrategy::Arena, f);
        let (alias_reused, alias_fresh) = load_medians(MemoryStrategy::ArenaSharedAlias, f);
        let (own, _) = load_medians(MemoryStrategy::MappingPerUnit, f);
        let dl = median(2000, || fresh_copy(f), dlopen, drop);
        println!(
            "  {:<8} arena (W^X) {:>6.2} (reusing freed pieces {:>6.2})   shared alias {:>6.2} (reusing {:>6.2})   own mapping {:>6.2}   dlopen {:>6.2}   W^X/alias = {:.2}x   own/arena = {:.1}x   dlopen/arena = {:.1}x",
            f.name,
            us(arena_fresh),
            us(arena_reused),
            us(alias_fresh),
            us(alias_reused),
            us(own),
            us(dl),
            us(arena_fresh) / us(alias_fresh),
            us(own) / us(arena_fresh),
            us(dl) / us(arena_fresh),
        );
    }

    let names: Vec<String> = (0..clif.len()).map(|i| format!("d{i}.o")).collect();
    let files = batch_files(&names, clif);
    for (label, strategy) in STRATEGIES {
        let linker = RefCell::new(cranelift_linker(strategy));
        let unit = load_batch(&mut linker.borrow_mut(), &files);
        let last = linker
            .borrow()
            .symbol(unit, &format!("d{}", clif.len() - 1))
            .expect("last");
        let want = (0..clif.len() as i64).sum::<i64>();
        assert_eq!(
            // SAFETY: `d{n}` of the unit loaded above, `int64_t (int64_t)`, still loaded.
            unsafe { jitcache_linker::call::call_i64(last, &[1]) }.expect("call"),
            want
        );
        linker.borrow_mut().unload(unit).expect("unload");
        let t = median(
            200,
            || (),
            |()| load_batch(&mut linker.borrow_mut(), &files),
            |unit| linker.borrow_mut().unload(unit).expect("unload"),
        );
        println!(
            "  batch of {} cranelift objects, one load ({label}): {:>8.1} µs = {:.2} µs per object",
            clif.len(),
            us(t),
            us(t) / clif.len() as f64
        );
    }

    println!(
        "\nbytes per unit, {UNITS} small units loaded (memory touched / address space / the units' own bytes):"
    );
    let small_c = &fixtures[0].object;
    let small_clif = &cranelift_objects(1)[0];
    for (label, bytes, resolver) in [
        ("small C", small_c.as_slice(), false),
        ("small Cranelift", small_clif.as_slice(), true),
    ] {
        let arena = bytes_per_unit(MemoryStrategy::Arena, bytes, resolver);
        let own = bytes_per_unit(MemoryStrategy::MappingPerUnit, bytes, resolver);
        println!(
            "  {label:<16} arena {:>6.0} / {:>6.0} / {:>4.0}   own mapping {:>6.0} / {:>6.0}   own/arena (memory) = {:.0}x",
            arena.0,
            arena.1,
            arena.2,
            own.0,
            own.1,
            own.0 / arena.0
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
    let clif = cranelift_objects(BATCH);
    let caller = {
        let (c, o) = (dir.join("caller.c"), dir.join("caller.o"));
        std::fs::write(&c, CALLER).expect("write source");
        let (c_s, o_s) = (c.display().to_string(), o.display().to_string());
        cc(&["-O2", "-fPIC", "-c", &c_s, "-o", &o_s]);
        std::fs::read(&o).expect("read object")
    };
    let mut c = Criterion::default().configure_from_args();
    benches(&mut c, &fixtures, &clif, &caller);
    c.final_summary();
    if std::env::args().any(|a| a == "--bench") {
        summary(&fixtures, &clif, &caller);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
