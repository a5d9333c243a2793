//! Thread-local storage of loaded units: C `__thread` and C++ `thread_local` used from
//! several threads at once, compared with the same sources linked natively (gcc and clang,
//! `-O0`/`-O2`, `-fPIC`, `-fPIC -fno-plt`, `-mtls-dialect=gnu2`); C++ destructors at
//! thread exit and at unload; blocks per thread; thread-locals across units; registers
//! kept by the TLS descriptor resolver; the typed errors of initial-exec and local-exec.

use std::ffi::c_long;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, mpsc};

use jitcache_linker::{Error, Linker, UnitId, call};

use crate::common::{compile_with, obj};

/// Whether `tool` runs. On CI (`CI` set), where gcc, g++, clang, clang++ and clang 19
/// (the first clang with `-mtls-dialect=gnu2`) are installed, a missing tool fails the test instead of skipping it.
fn need(tool: &str) -> bool {
    let found = crate::common::have(tool);
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "{tool} is required on CI but was not found"
        );
        eprintln!("skipped: {tool} not found");
    }
    found
}

/// Whether `compiler` accepts `flags` (clang before 19 has no `-mtls-dialect=gnu2`).
fn accepts(compiler: &str, flags: &[&str]) -> bool {
    let dir = work_dir("probe");
    let src = dir.join("probe.c");
    std::fs::write(&src, "int x;\n").expect("write");
    Command::new(compiler)
        .args(flags)
        .args(["-x", "c", "-c"])
        .arg(&src)
        .arg("-o")
        .arg(dir.join(format!("probe-{}.o", std::process::id())))
        .output()
        .is_ok_and(|o| o.status.success())
}

fn work_dir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("linker-tls")
        .join(name);
    std::fs::create_dir_all(&d).expect("mkdir");
    d
}

/// The flag sets every program is built with, per compiler that is installed.
fn configurations(c_family: [&'static str; 3]) -> Vec<(&'static str, Vec<&'static str>)> {
    let mut out = Vec::new();
    for compiler in c_family {
        if !need(compiler) {
            continue;
        }
        for opt in ["-O0", "-O2"] {
            out.push((compiler, vec![opt, "-fPIC"]));
            out.push((compiler, vec![opt, "-fPIC", "-fno-plt"]));
            let gnu2 = vec![opt, "-fPIC", "-mtls-dialect=gnu2"];
            if accepts(compiler, &gnu2) {
                out.push((compiler, gnu2));
            } else {
                eprintln!("note: {compiler} has no -mtls-dialect=gnu2");
            }
        }
    }
    out
}

/// The program's output when `source` is linked natively with a driver that calls
/// `run(buf, cap)` and prints `buf`.
fn native_output(compiler: &str, ext: &str, source: &str, flags: &[&str], tag: &str) -> String {
    let dir = work_dir(tag);
    let src = dir.join(format!("prog.{ext}"));
    let driver = dir.join("driver.c");
    let exe = dir.join("prog");
    std::fs::write(&src, source).expect("write");
    std::fs::write(
        &driver,
        "#include <stdio.h>\nint run(char *out, long cap);\n\
         int main(void) { static char buf[1 << 16]; run(buf, sizeof buf); fputs(buf, stdout); return 0; }\n",
    )
    .expect("write");
    let c_driver = if ext == "c" { compiler } else { "cc" };
    let obj_driver = dir.join("driver.o");
    let status = Command::new(c_driver)
        .args(["-c", "-O0"])
        .arg(&driver)
        .arg("-o")
        .arg(&obj_driver)
        .status()
        .expect("compile the driver");
    assert!(status.success());
    let out = Command::new(compiler)
        .args(flags)
        .arg(&src)
        .arg(&obj_driver)
        .args(["-pthread", "-o"])
        .arg(&exe)
        .output()
        .expect("link natively");
    assert!(
        out.status.success(),
        "{compiler} {flags:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = Command::new(&exe).output().expect("run the native program");
    assert!(run.status.success(), "native {tag} failed");
    String::from_utf8(run.stdout).expect("UTF-8")
}

/// The same program loaded in-process: `run(buf, cap)`, then `buf`.
fn loaded_output(linker: &Linker, unit: UnitId) -> String {
    let run = linker.symbol(unit, "run").expect("run is defined");
    let mut buf = vec![0_u8; 1 << 16];
    let len = buf.len() as i64;
    // SAFETY: a function of that C signature in a unit still loaded.
    unsafe { call::call_i64(run, &[buf.as_mut_ptr() as i64, len]) }.expect("call run");
    let end = buf.iter().position(|&b| b == 0).expect("NUL-terminated");
    String::from_utf8(buf[..end].to_vec()).expect("UTF-8")
}

fn label(compiler: &str, flags: &[&str]) -> String {
    format!("{compiler}{}", flags.join("")).replace(['-', '='], "_")
}

// ---------------------------------------------------------------------------------------
// C `__thread` from several threads at once.

const C_PROGRAM: &str = r#"
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

__thread int counter = 5;                        /* .tdata, exported */
static __thread int hidden_count;                /* .tbss */
static __thread long arr[4] = { 1, 2, 3, 4 };    /* .tdata */
__thread char name[16];                          /* .tbss, exported */
int global_target = 100;
__thread int *ptr = &global_target;              /* .tdata with a relocation */
static __thread double wide __attribute__((aligned(64))) = 2.5;

#define THREADS 4
struct result { int counter, hidden; long sum; int via_ptr, aligned, first; char name[16]; uintptr_t where; };
static struct result results[THREADS + 1];
static pthread_barrier_t start, done;

static void work(int id, struct result *r) {
  r->first = counter;                        /* still the initial value in this thread */
  for (int i = 0; i < 1000 * (id + 1); i++) { counter += id; hidden_count++; arr[i % 4] += id; }
  snprintf(name, sizeof name, "thread-%d", id);
  wide *= id + 1;
  r->counter = counter;
  r->hidden = hidden_count;
  r->sum = arr[0] + arr[1] + arr[2] + arr[3];
  r->via_ptr = *ptr;
  r->aligned = ((uintptr_t)&wide % 64 == 0) && wide == 2.5 * (id + 1);
  memcpy(r->name, name, sizeof name);
  r->where = (uintptr_t)&counter;
}

static void *thread_main(void *arg) {
  int id = (int)(intptr_t)arg;
  pthread_barrier_wait(&start);              /* all threads work at once */
  work(id, &results[id]);
  pthread_barrier_wait(&done);               /* and are all alive when they compare */
  return NULL;
}

int run(char *out, long cap) {
  pthread_t threads[THREADS];
  pthread_barrier_init(&start, NULL, THREADS);
  pthread_barrier_init(&done, NULL, THREADS);
  for (int i = 0; i < THREADS; i++) pthread_create(&threads[i], NULL, thread_main, (void *)(intptr_t)(i + 1));
  for (int i = 0; i < THREADS; i++) pthread_join(threads[i], NULL);
  work(0, &results[0]);                      /* the calling thread's own copy */
  int distinct = 1;
  for (int i = 0; i <= THREADS; i++)
    for (int j = 0; j < i; j++) distinct &= results[i].where != results[j].where;
  long n = snprintf(out, cap, "distinct addresses: %d\n", distinct);
  for (int i = 0; i <= THREADS; i++) {
    struct result *r = &results[i];
    n += snprintf(out + n, cap - n, "%d: first=%d counter=%d hidden=%d sum=%ld ptr=%d aligned=%d name=%s\n",
                  i, r->first, r->counter, r->hidden, r->sum, r->via_ptr, r->aligned, r->name);
  }
  return (int)n;
}
"#;

#[test]
fn c_thread_locals_match_native_runs_from_several_threads() {
    let configs = configurations(["gcc", "clang", "clang-19"]);
    for (compiler, flags) in &configs {
        let tag = format!("c_{}", label(compiler, flags));
        let expected = native_output(compiler, "c", C_PROGRAM, flags, &tag);
        assert!(expected.contains("distinct addresses: 1"), "{expected}");
        let bytes = compile_with(compiler, &tag, "c", C_PROGRAM, flags);
        let mut linker = Linker::new();
        let unit = linker
            .load(&[obj("tls.o", &bytes)])
            .unwrap_or_else(|e| panic!("{compiler} {flags:?}: {e}"));
        // The calling thread ran `work` once in each call: a second call continues from
        // its values, so compare the first.
        let got = loaded_output(&linker, unit);
        assert_eq!(got, expected, "{compiler} {flags:?}");
        assert_eq!(
            linker.thread_local_blocks(unit),
            Some(1),
            "{compiler} {flags:?}: the four threads' blocks went when they exited"
        );
        linker.unload(unit).expect("unload");
    }
}

// ---------------------------------------------------------------------------------------
// The same variables from Rust threads.

const C_COUNTER: &str = r#"
__thread long counter = 5;
static __thread long calls;
long bump(long by) { counter += by; calls++; return counter; }
long calls_here(void) { return calls; }
long *where(void) { return &counter; }
"#;

#[test]
fn rust_threads_each_see_their_own_values() {
    for (compiler, flags) in configurations(["gcc", "clang", "clang-19"]) {
        let bytes = compile_with(compiler, "counter", "c", C_COUNTER, &flags);
        let mut linker = Linker::new();
        let unit = linker.load(&[obj("counter.o", &bytes)]).expect("load");
        let bump = linker.symbol(unit, "bump").expect("bump");
        let calls = linker.symbol(unit, "calls_here").expect("calls_here");
        let where_ = linker.symbol(unit, "where").expect("where");
        assert!(
            linker.symbol(unit, "counter").is_none(),
            "a thread-local has no single address"
        );
        const THREADS: usize = 6;
        let barrier = Arc::new(Barrier::new(THREADS + 1));
        let handles: Vec<_> = (1..=THREADS as i64)
            .map(|by| {
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    barrier.wait();
                    let mut last = 0;
                    for _ in 0..10_000 {
                        // SAFETY: a function of that C signature in a unit still loaded.
                        last = unsafe { call::call_i64(bump, &[by]) }.expect("bump");
                    }
                    // SAFETY: a function of that C signature in a unit still loaded.
                    let at = unsafe { call::call_i64(where_, &[]) }.expect("where");
                    // SAFETY: a function of that C signature in a unit still loaded.
                    let n = unsafe { call::call_i64(calls, &[]) }.expect("calls");
                    barrier.wait(); // every thread still alive: blocks are counted
                    barrier.wait();
                    (last, n, at)
                })
            })
            .collect();
        barrier.wait();
        barrier.wait();
        assert_eq!(linker.thread_local_blocks(unit), Some(THREADS));
        barrier.wait();
        let results: Vec<_> = handles
            .into_iter()
            .map(|h| h.join().expect("join"))
            .collect();
        for (by, &(last, n, _)) in (1..).zip(&results) {
            assert_eq!(last, 5 + 10_000 * by, "{compiler} {flags:?}");
            assert_eq!(n, 10_000);
        }
        let mut addresses: Vec<i64> = results.iter().map(|r| r.2).collect();
        addresses.sort_unstable();
        addresses.dedup();
        assert_eq!(addresses.len(), THREADS, "one block per thread");
        assert_eq!(
            linker.thread_local_blocks(unit),
            Some(0),
            "blocks are freed when their threads exit"
        );
        assert_eq!(
            // SAFETY: a function of that C signature in a unit still loaded.
            unsafe { call::call_i64(bump, &[1]) }.expect("bump"),
            6,
            "this thread"
        );
        linker.unload(unit).expect("unload");
    }
}

// ---------------------------------------------------------------------------------------
// C++ thread_local with constructors and destructors.

const CPP_PROGRAM: &str = r#"
#include <atomic>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

static std::string results[5];
static std::atomic<int> constructed{0};
static std::atomic<int> arrived{0};

struct Tracker {
  int slot = -1;
  int uses = 0;
  std::string trail;
  Tracker() { constructed++; trail = "made"; }
  ~Tracker() {
    if (slot >= 0) results[slot] += " | destroyed after " + std::to_string(uses) + " uses, " + trail;
  }
};

thread_local Tracker tracker;
thread_local std::string greeting = "hello from " + std::to_string(sizeof(Tracker) > 0);
thread_local int plain = 41;

static void work(int slot) {
  arrived++;
  while (arrived.load() < 4) std::this_thread::yield();   // all four at once
  tracker.slot = slot;
  for (int i = 0; i <= slot; i++) tracker.uses++;
  tracker.trail += "+" + std::to_string(slot);
  plain += slot;
  greeting += " #" + std::to_string(slot);
  results[slot] = greeting + " plain=" + std::to_string(plain) + " uses=" + std::to_string(tracker.uses);
}

extern "C" int run(char *out, long cap) {
  std::vector<std::thread> threads;
  for (int t = 1; t <= 4; t++) threads.emplace_back(work, t);
  for (auto &t : threads) t.join();
  long n = std::snprintf(out, cap, "constructed in threads: %d\n", constructed.load());
  for (int t = 1; t <= 4; t++) n += std::snprintf(out + n, cap - n, "%d: %s\n", t, results[t].c_str());
  return (int)n;
}
"#;

#[test]
fn cpp_thread_locals_match_native_runs_and_are_destroyed_at_thread_exit() {
    let configs = configurations(["g++", "clang++", "clang++-19"]);
    for (compiler, flags) in &configs {
        let tag = format!("cpp_{}", label(compiler, flags));
        let expected = native_output(compiler, "cc", CPP_PROGRAM, flags, &tag);
        assert!(
            expected.contains("destroyed after 4 uses, made+3"),
            "{expected}"
        );
        let bytes = compile_with(compiler, &tag, "cc", CPP_PROGRAM, flags);
        let mut linker = Linker::new();
        linker.open_library("stdc++").expect("libstdc++");
        let unit = linker
            .load(&[obj("tls.o", &bytes)])
            .unwrap_or_else(|e| panic!("{compiler} {flags:?}: {e}"));
        assert_eq!(
            loaded_output(&linker, unit),
            expected,
            "{compiler} {flags:?}"
        );
        linker
            .unload(unit)
            .expect("unload: every thread that had one has exited");
    }
}

/// Counts destructor runs on the host side, where they can be read after unload.
static DESTROYED: AtomicUsize = AtomicUsize::new(0);
static DESTROYED_SUM: AtomicUsize = AtomicUsize::new(0);

extern "C" fn note_destroyed(value: c_long) {
    DESTROYED.fetch_add(1, Ordering::SeqCst);
    DESTROYED_SUM.fetch_add(value as usize, Ordering::SeqCst);
}

const CPP_LIFETIME: &str = r#"
extern "C" void note_destroyed(long value);
struct Holder {
  long value = 0;
  ~Holder() { note_destroyed(value); }
};
thread_local Holder holder;
extern "C" long touch(long v) { holder.value += v; return holder.value; }
"#;

fn lifetime_unit(linker: &mut Linker, compiler: &str, flags: &[&str]) -> UnitId {
    linker.set_resolver(Box::new(|name| {
        (name == "note_destroyed").then_some(note_destroyed as *const () as usize)
    }));
    let bytes = compile_with(compiler, "lifetime", "cc", CPP_LIFETIME, flags);
    linker.open_library("stdc++").expect("libstdc++");
    linker
        .load(&[obj("lifetime.o", &bytes)])
        .unwrap_or_else(|e| panic!("{compiler} {flags:?}: {e}"))
}

/// Destructor runs of one test, measured as differences (other tests may run at once,
/// but only this one calls `note_destroyed` with values this large).
fn destroyed_sum() -> usize {
    DESTROYED_SUM.load(Ordering::SeqCst)
}

#[test]
fn unload_waits_for_threads_that_hold_thread_locals_and_destroys_its_own() {
    const BASE: i64 = 1_000_000;
    for (compiler, flags) in configurations(["g++", "clang++", "clang++-19"]) {
        let mut linker = Linker::new();
        let unit = lifetime_unit(&mut linker, compiler, &flags);
        let touch = linker.symbol(unit, "touch").expect("touch");

        // Threads that exit: their destructors run at exit, their blocks go.
        let before = destroyed_sum();
        let done: Vec<_> = (1..=3)
            .map(|i| {
                std::thread::spawn(move || {
                    // SAFETY: a function of that C signature in a unit still loaded.
                    unsafe { call::call_i64(touch, &[BASE * i]) }.expect("touch")
                })
            })
            .collect();
        for (i, h) in (1..).zip(done) {
            assert_eq!(h.join().expect("join"), BASE * i);
        }
        assert_eq!(
            destroyed_sum() - before,
            6 * BASE as usize,
            "{compiler} {flags:?}"
        );
        assert_eq!(linker.thread_local_blocks(unit), Some(0));

        // A thread that is still running holds one: unload refuses and the unit stays.
        let (go, wait) = mpsc::channel::<()>();
        let (ready, is_ready) = mpsc::channel::<()>();
        let holder = std::thread::spawn(move || {
            // SAFETY: a function of that C signature in a unit still loaded.
            unsafe { call::call_i64(touch, &[BASE * 10]) }.expect("touch");
            ready.send(()).expect("send");
            wait.recv().expect("recv");
        });
        is_ready.recv().expect("the thread touched it");
        assert_eq!(
            // SAFETY: a function of that C signature in a unit still loaded.
            unsafe { call::call_i64(touch, &[BASE * 20]) }.expect("touch"),
            BASE * 20
        );
        let before = destroyed_sum();
        match linker.unload(unit) {
            Err(Error::ThreadLocalsInUse {
                unit: u,
                destructors,
            }) => {
                assert_eq!((u, destructors), (unit, 1), "{compiler} {flags:?}");
            }
            other => panic!("{compiler} {flags:?}: expected ThreadLocalsInUse, got {other:?}"),
        }
        assert_eq!(
            destroyed_sum(),
            before,
            "nothing was destroyed by the refusal"
        );
        assert_eq!(
            // SAFETY: a function of that C signature in a unit still loaded.
            unsafe { call::call_i64(touch, &[1]) }.expect("still loaded"),
            BASE * 20 + 1
        );
        go.send(()).expect("send");
        holder.join().expect("join");
        assert_eq!(destroyed_sum() - before, 10 * BASE as usize);

        // Now only this thread holds one: unload destroys it, then unloads.
        let before = destroyed_sum();
        linker.unload(unit).expect("unload");
        assert_eq!(destroyed_sum() - before, (20 * BASE + 1) as usize);
    }
}

#[test]
fn dropping_the_linker_keeps_a_unit_whose_thread_locals_are_still_held() {
    const BASE: i64 = 1_000_000_000;
    let (compiler, flags) = match configurations(["g++", "clang++", "clang++-19"])
        .into_iter()
        .next()
    {
        Some(c) => c,
        None => return,
    };
    let mut linker = Linker::new();
    let unit = lifetime_unit(&mut linker, compiler, &flags);
    let touch = linker.symbol(unit, "touch").expect("touch");
    let (go, wait) = mpsc::channel::<()>();
    let (ready, is_ready) = mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        // SAFETY: a function of that C signature in a unit still loaded.
        unsafe { call::call_i64(touch, &[BASE]) }.expect("touch");
        ready.send(()).expect("send");
        wait.recv().expect("recv");
    });
    is_ready.recv().expect("touched");
    let before = destroyed_sum();
    drop(linker);
    go.send(()).expect("send");
    holder.join().expect("join");
    assert_eq!(
        destroyed_sum() - before,
        BASE as usize,
        "the destructor ran at thread exit, in code that stayed mapped"
    );
}

// ---------------------------------------------------------------------------------------
// Thread-locals across units, COMDAT thread-locals, emulated TLS.

#[test]
fn a_unit_uses_the_thread_locals_an_earlier_unit_exports() {
    for (compiler, flags) in configurations(["gcc", "clang", "clang-19"]) {
        let first = compile_with(
            compiler,
            "tls_first",
            "c",
            "__thread long shared = 7;\n__attribute__((visibility(\"hidden\"))) __thread long secret = 1;\n\
             long get_first(void) { return shared; }\n",
            &flags,
        );
        let second = compile_with(
            compiler,
            "tls_second",
            "c",
            "extern __thread long shared;\nlong bump_second(long by) { shared += by; return shared; }\n\
             long *where_second(void) { return &shared; }\n",
            &flags,
        );
        let third = compile_with(
            compiler,
            "tls_third",
            "c",
            "extern __thread long secret;\nlong get_secret(void) { return secret; }\n",
            &flags,
        );
        let mut linker = Linker::new();
        let a = linker.load(&[obj("first.o", &first)]).expect("load first");
        let b = linker
            .load(&[obj("second.o", &second)])
            .expect("load second");
        let get = linker.symbol(a, "get_first").expect("get_first");
        let bump = linker.symbol(b, "bump_second").expect("bump_second");
        let other = std::thread::spawn(move || {
            // SAFETY: a function of that C signature in a unit still loaded.
            let v = unsafe { call::call_i64(bump, &[100]) }.expect("bump");
            // SAFETY: a function of that C signature in a unit still loaded.
            (v, unsafe { call::call_i64(get, &[]) }.expect("get"))
        })
        .join()
        .expect("join");
        assert_eq!(
            other,
            (107, 107),
            "{compiler} {flags:?}: one variable per thread"
        );
        // SAFETY: a function of that C signature in a unit still loaded.
        assert_eq!(unsafe { call::call_i64(bump, &[1]) }.expect("bump"), 8);
        // SAFETY: a function of that C signature in a unit still loaded.
        assert_eq!(unsafe { call::call_i64(get, &[]) }.expect("get"), 8);
        let err = linker
            .load(&[obj("third.o", &third)])
            .expect_err("a hidden thread-local is not exported");
        assert!(
            matches!(&err, Error::UndefinedSymbol { symbol, .. } if symbol == "secret"),
            "{err}"
        );
        linker.unload(b).expect("unload");
        linker.unload(a).expect("unload");
    }
}

#[test]
fn inline_thread_locals_of_comdat_groups_are_one_variable_per_thread() {
    let source = |tag: &str| {
        format!(
            "inline thread_local long counter = 10;\n\
             extern \"C\" long bump_{tag}() {{ return ++counter; }}\n"
        )
    };
    for (compiler, flags) in configurations(["g++", "clang++", "clang++-19"]) {
        let first = compile_with(compiler, "inline_tl_first", "cc", &source("first"), &flags);
        let second = compile_with(
            compiler,
            "inline_tl_second",
            "cc",
            &source("second"),
            &flags,
        );
        let mut linker = Linker::new();
        linker.open_library("stdc++").expect("libstdc++");
        // In one unit, and across units.
        let a = linker
            .load(&[obj("first.o", &first), obj("second.o", &second)])
            .unwrap_or_else(|e| panic!("{compiler} {flags:?}: {e}"));
        let b = linker.load(&[obj("second.o", &second)]).expect("load");
        let f = |u, name: &str| linker.symbol(u, name).expect("defined");
        let (first_a, second_a, second_b) =
            (f(a, "bump_first"), f(a, "bump_second"), f(b, "bump_second"));
        // SAFETY: a function of that C signature in a unit still loaded.
        assert_eq!(unsafe { call::call_i64(first_a, &[]) }.expect("call"), 11);
        // SAFETY: a function of that C signature in a unit still loaded.
        assert_eq!(unsafe { call::call_i64(second_a, &[]) }.expect("call"), 12);
        assert_eq!(
            // SAFETY: a function of that C signature in a unit still loaded.
            unsafe { call::call_i64(second_b, &[]) }.expect("call"),
            13,
            "{compiler} {flags:?}"
        );
        // SAFETY: a function of that C signature in a unit still loaded.
        let there =
            std::thread::spawn(move || unsafe { call::call_i64(second_b, &[]) }.expect("call"))
                .join()
                .expect("join");
        assert_eq!(there, 11, "a fresh copy in another thread");
        linker.unload(b).expect("unload");
        linker.unload(a).expect("unload");
    }
}

#[test]
fn emulated_tls_objects_still_load() {
    if !need("clang") {
        return;
    }
    let bytes = compile_with(
        "clang",
        "emutls",
        "c",
        "__thread long v = 3;\nlong bump(void) { return ++v; }\n",
        &["-O2", "-fPIC", "-femulated-tls"],
    );
    let mut linker = Linker::new();
    let unit = linker.load(&[obj("emutls.o", &bytes)]).expect("load");
    let bump = linker.symbol(unit, "bump").expect("bump");
    // SAFETY: a function of that C signature in a unit still loaded.
    assert_eq!(unsafe { call::call_i64(bump, &[]) }.expect("call"), 4);
    // SAFETY: a function of that C signature in a unit still loaded.
    let there = std::thread::spawn(move || unsafe { call::call_i64(bump, &[]) }.expect("call"))
        .join()
        .expect("join");
    assert_eq!(there, 4);
    assert_eq!(
        linker.thread_local_blocks(unit),
        Some(0),
        "libgcc's blocks, not ours"
    );
    linker.unload(unit).expect("unload");
}

// ---------------------------------------------------------------------------------------
// The TLS descriptor resolver keeps every register but %rax.

/// Assembly of `probe_<kind>(const u8 *in, u8 *out)`: loads the vector registers, the
/// opmask registers (AVX-512) and the caller-saved general registers from `in`, runs a
/// TLS descriptor call for `probe_var`, and stores the same registers to `out`, then the
/// variable's address (`%rax + %fs:0`).
fn probe_asm() -> String {
    let gprs = ["rdi", "rsi", "rdx", "rcx", "r8", "r9", "r10", "r11"];
    let mut s = String::from(
        ".section .tbss,\"awT\",@nobits\n.globl probe_var\n.type probe_var, @tls_object\n\
         .size probe_var, 8\n.align 8\nprobe_var:\n.zero 8\n.text\n",
    );
    for probe in Probe::ALL {
        let (load, store) = probe.moves();
        s += &format!(
            ".globl probe_{0}\n.type probe_{0}, @function\nprobe_{0}:\n\
             push %rbx\npush %r12\npush %r13\nmov %rdi, %r12\nmov %rsi, %r13\n",
            probe.name()
        );
        for i in 0..probe.vectors() {
            s += &format!("{load} {}(%r12), %{}{i}\n", i * probe.width(), probe.reg());
        }
        for k in 1..probe.masks() + 1 {
            s += &format!("kmovw {}(%r12), %k{k}\n", probe.masks_at() + 8 * k);
        }
        for (i, r) in gprs.iter().enumerate() {
            s += &format!("mov {}(%r12), %{r}\n", probe.gprs_at() + 8 * i);
        }
        s += "lea probe_var@TLSDESC(%rip), %rax\ncall *probe_var@TLSCALL(%rax)\n";
        for i in 0..probe.vectors() {
            s += &format!("{store} %{}{i}, {}(%r13)\n", probe.reg(), i * probe.width());
        }
        for k in 1..probe.masks() + 1 {
            s += &format!("kmovw %k{k}, {}(%r13)\n", probe.masks_at() + 8 * k);
        }
        for (i, r) in gprs.iter().enumerate() {
            s += &format!("mov %{r}, {}(%r13)\n", probe.gprs_at() + 8 * i);
        }
        s += &format!(
            "addq %fs:0, %rax\nmov %rax, {}(%r13)\npop %r13\npop %r12\npop %rbx\nret\n",
            probe.gprs_at() + 64
        );
    }
    s
}

#[derive(Clone, Copy, Debug)]
enum Probe {
    Sse,
    Avx,
    Avx512,
}

impl Probe {
    const ALL: [Probe; 3] = [Probe::Sse, Probe::Avx, Probe::Avx512];

    fn name(self) -> &'static str {
        match self {
            Probe::Sse => "sse",
            Probe::Avx => "avx",
            Probe::Avx512 => "avx512",
        }
    }

    fn supported(self) -> bool {
        match self {
            Probe::Sse => true,
            Probe::Avx => std::arch::is_x86_feature_detected!("avx"),
            Probe::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
        }
    }

    fn moves(self) -> (&'static str, &'static str) {
        match self {
            Probe::Sse => ("movdqu", "movdqu"),
            Probe::Avx => ("vmovdqu", "vmovdqu"),
            Probe::Avx512 => ("vmovdqu64", "vmovdqu64"),
        }
    }

    fn reg(self) -> &'static str {
        match self {
            Probe::Sse => "xmm",
            Probe::Avx => "ymm",
            Probe::Avx512 => "zmm",
        }
    }

    fn width(self) -> usize {
        match self {
            Probe::Sse => 16,
            Probe::Avx => 32,
            Probe::Avx512 => 64,
        }
    }

    fn vectors(self) -> usize {
        match self {
            Probe::Avx512 => 32,
            _ => 16,
        }
    }

    fn masks(self) -> usize {
        match self {
            Probe::Avx512 => 7,
            _ => 0,
        }
    }

    /// Offset of the opmask slots (8 bytes each, k0 unused).
    fn masks_at(self) -> usize {
        self.vectors() * self.width()
    }

    /// Offset of the general registers.
    fn gprs_at(self) -> usize {
        self.masks_at() + if self.masks() > 0 { 64 } else { 0 }
    }

    /// Bytes of registers compared.
    fn len(self) -> usize {
        self.gprs_at() + 64
    }
}

const PROBE_GD: &str =
    "extern __thread long probe_var;\nlong *gd_address(void) { return &probe_var; }\n";

#[test]
fn the_descriptor_resolver_keeps_every_register_but_rax() {
    if !need("gcc") {
        return;
    }
    let probe = compile_with("gcc", "probe", "s", &probe_asm(), &[]);
    let gd = compile_with("gcc", "probe_gd", "c", PROBE_GD, &["-O2", "-fPIC"]);
    let mut linker = Linker::new();
    let unit = linker
        .load(&[obj("probe.o", &probe), obj("gd.o", &gd)])
        .expect("load");
    let gd_address = linker.symbol(unit, "gd_address").expect("gd_address");
    for probe in Probe::ALL.into_iter().filter(|p| p.supported()) {
        let entry = linker
            .symbol(unit, &format!("probe_{}", probe.name()))
            .expect("probe");
        let check = move |round: u8| {
            // Every byte distinct per round; opmask slots hold 16 bits, k0's none.
            let mut input = vec![0_u8; probe.len()];
            for (i, b) in input.iter_mut().enumerate() {
                *b = (i as u8).wrapping_mul(31).wrapping_add(round) | 1;
            }
            if probe.masks() > 0 {
                input[probe.masks_at()..probe.gprs_at()]
                    .chunks_mut(8)
                    .enumerate()
                    .for_each(|(k, slot)| slot[if k == 0 { 0 } else { 2 }..].fill(0));
            }
            let mut output = vec![0_u8; probe.len() + 8];
            // SAFETY: a function of that C signature in a unit still loaded.
            unsafe { call::call_i64(entry, &[input.as_ptr() as i64, output.as_mut_ptr() as i64]) }
                .expect("probe");
            let mut mismatched: Vec<usize> = (0..probe.len())
                .filter(|&i| input[i] != output[i])
                .map(|i| i / 8 * 8)
                .collect();
            mismatched.dedup();
            assert!(
                mismatched.is_empty(),
                "{probe:?} round {round}: registers changed at byte offsets {mismatched:?}"
            );
            let at = u64::from_le_bytes(output[probe.len()..].try_into().expect("8 bytes"));
            assert_eq!(
                at as i64,
                // SAFETY: a function of that C signature in a unit still loaded.
                unsafe { call::call_i64(gd_address, &[]) }.expect("gd"),
                "{probe:?}: the descriptor and __tls_get_addr agree"
            );
        };
        // A thread's first access makes its block (the slow path), the next finds it.
        std::thread::spawn(move || {
            check(1);
            check(2);
        })
        .join()
        .expect("a fresh thread");
        check(3);
    }
    linker.unload(unit).expect("unload");
}
