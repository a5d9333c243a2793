//! Unwinding through loaded code: a backtrace taken inside a loaded unit walks through its
//! frames back into the host (only because `.eh_frame` is registered), and C++ exceptions
//! thrown in loaded code or in libstdc++ are caught in loaded code.

use jitcache_linker::{Linker, LoadOptions, call};

use crate::common::{compile_with, have, obj};

const BACKTRACE: &str = r#"
#include <stdint.h>
#include <unwind.h>

static uintptr_t ips[64];
static int count;

static _Unwind_Reason_Code record(struct _Unwind_Context *ctx, void *arg) {
  (void)arg;
  if (count < 64) ips[count++] = _Unwind_GetIP(ctx);
  return _URC_NO_REASON;
}

__attribute__((noinline)) long walk(void) {
  count = 0;
  _Unwind_Backtrace(record, 0);
  __asm__ volatile("" ::: "memory");
  return count;
}
__attribute__((noinline)) long level2(void) { long n = walk(); __asm__ volatile("" ::: "memory"); return n; }
__attribute__((noinline)) long level1(void) { long n = level2(); __asm__ volatile("" ::: "memory"); return n; }
long ip_at(long i) { return (long)ips[i]; }
"#;

fn frames(register: bool, flags: &[&str], tag: &str) -> (Vec<usize>, usize, usize) {
    let bytes = compile_with("cc", &format!("backtrace_{tag}"), "c", BACKTRACE, flags);
    let mut linker = Linker::new();
    let unit = linker
        .load_with(
            &[obj("backtrace.o", &bytes)],
            &LoadOptions::default().unwind_info(register),
        )
        .expect("load");
    let level1 = linker.symbol(unit, "level1").expect("level1");
    let level2 = linker.symbol(unit, "level2").expect("level2");
    let ip_at = linker.symbol(unit, "ip_at").expect("ip_at");
    let n = call::call_i64(level1, &[]).expect("call");
    let ips = (0..n)
        .map(|i| call::call_i64(ip_at, &[i]).expect("call") as usize)
        .collect();
    (ips, level1, level2)
}

#[test]
fn backtrace_walks_through_loaded_frames_into_the_host() {
    for (tag, flags) in [
        ("o0", &["-O0", "-fPIC"][..]),
        ("o2", &["-O2", "-fPIC"][..]),
        ("nopic", &["-O2", "-fno-pic"][..]),
    ] {
        let (ips, level1, level2) = frames(true, flags, tag);
        // walk, level2, level1, then host frames (call_i64, this test, the harness...).
        assert!(ips.len() > 5, "{tag}: only {} frames", ips.len());
        let in_fn = |ip: usize, f: usize| (f..f + 256).contains(&ip);
        assert!(
            in_fn(ips[1], level2),
            "{tag}: frame 1 {:#x} not in level2 {level2:#x}",
            ips[1]
        );
        assert!(
            in_fn(ips[2], level1),
            "{tag}: frame 2 {:#x} not in level1 {level1:#x}",
            ips[2]
        );
        let host = call::call_i64 as fn(usize, &[i64]) -> _ as usize;
        assert!(
            ips[3..].iter().any(|&ip| ip.abs_diff(host) < 4096),
            "{tag}: no host frame after the loaded ones"
        );
    }
}

#[test]
fn without_registration_the_unwinder_stops_at_loaded_code() {
    let (ips, _, _) = frames(false, &["-O0", "-fPIC"], "unregistered");
    assert!(
        ips.len() <= 2,
        "{} frames without .eh_frame registration",
        ips.len()
    );
}

const CPP: &str = r#"
#include <stdexcept>
#include <string>
#include <vector>

static int thrower(int x) {
  if (x > 0) throw std::runtime_error("boom " + std::to_string(x));
  return x;
}
extern "C" long catch_own(long x) {
  try { return thrower((int)x); }
  catch (const std::runtime_error &e) { return 100 + (long)std::string(e.what()).size(); }
}
extern "C" long catch_from_libstdcxx(long i) {
  std::vector<int> v(3, 7);
  try { return v.at((size_t)i); }
  catch (const std::out_of_range &) { return -1; }
}
struct Guard { int *p; ~Guard() { *p += 1; } };
static int cleanups;
__attribute__((noinline)) static void deep(int n) { Guard g{&cleanups}; if (n == 0) throw 42; deep(n - 1); }
extern "C" long through_frames(long n) {
  cleanups = 0;
  try { deep((int)n); } catch (int v) { return v + cleanups * 1000; }
  return -1;
}
struct Static { Static() : value(7) {} int value; };
static Static s;
extern "C" long static_value() { return s.value; }
"#;

#[test]
fn cxx_exceptions_through_loaded_code() {
    let compilers: Vec<&str> = ["c++", "clang++"].into_iter().filter(|c| have(c)).collect();
    if compilers.is_empty() {
        eprintln!("note: no C++ compiler; skipping the C++ exception test");
        return;
    }
    if !compilers.contains(&"clang++") {
        eprintln!("note: clang++ is not installed; the C++ exception test runs with c++ only");
    }
    for (compiler, tag, flags) in compilers.iter().flat_map(|c| {
        [
            (*c, "o0", &["-O0", "-fPIC"][..]),
            (*c, "o2", &["-O2", "-fPIC"][..]),
        ]
    }) {
        let tag = &format!("{}_{tag}", compiler.replace('+', "x"));
        let bytes = compile_with(compiler, &format!("exceptions_{tag}"), "cc", CPP, flags);
        let mut linker = Linker::new();
        linker.open_library("stdc++").expect("libstdc++");
        let unit = linker
            .load(&[obj("exceptions.o", &bytes)])
            .expect("load C++ object");
        let f = |name: &str| {
            linker
                .symbol(unit, name)
                .unwrap_or_else(|| panic!("{name}"))
        };
        assert_eq!(
            call::call_i64(f("static_value"), &[]).expect("call"),
            7,
            "{tag}: static constructor"
        );
        assert_eq!(call::call_i64(f("catch_own"), &[0]).expect("call"), 0);
        assert_eq!(
            call::call_i64(f("catch_own"), &[3]).expect("call"),
            106,
            "{tag}: thrown and caught in loaded code"
        );
        assert_eq!(
            call::call_i64(f("catch_from_libstdcxx"), &[1]).expect("call"),
            7
        );
        assert_eq!(
            call::call_i64(f("catch_from_libstdcxx"), &[9]).expect("call"),
            -1,
            "{tag}: thrown by libstdc++"
        );
        assert_eq!(
            call::call_i64(f("through_frames"), &[4]).expect("call"),
            5042,
            "{tag}: destructors ran while unwinding"
        );
        linker.unload(unit).expect("unload");
    }
}

/// Several objects in one unit: their `.eh_frame` sections are placed back to back and
/// registered as one run; the backtrace still finds every object's frames.
#[test]
fn backtrace_walks_through_frames_of_many_objects_of_one_unit() {
    let walker = compile_with("cc", "many_walk", "c", BACKTRACE, &["-O2", "-fPIC"]);
    let compilers: Vec<&str> = ["cc", "clang"].into_iter().filter(|c| have(c)).collect();
    let mut levels = Vec::new();
    for i in 0..6 {
        let callee = if i == 0 {
            "walk".to_owned()
        } else {
            format!("step{}", i - 1)
        };
        let source = format!(
            "long {callee}(void);\n__attribute__((noinline)) long step{i}(void) {{ long n = {callee}(); __asm__ volatile(\"\" ::: \"memory\"); return n + 0 * {i}; }}\n"
        );
        let compiler = compilers[i % compilers.len()];
        let flags: &[&str] = if i % 3 == 0 {
            &["-O0", "-fPIC"]
        } else {
            &["-O2", "-fPIC"]
        };
        levels.push(compile_with(
            compiler,
            &format!("many_step{i}"),
            "c",
            &source,
            flags,
        ));
    }
    let names: Vec<String> = (0..levels.len()).map(|i| format!("step{i}.o")).collect();
    let mut objects = vec![obj("walk.o", &walker)];
    objects.extend(names.iter().zip(&levels).map(|(n, b)| obj(n, b)));
    let mut linker = Linker::new();
    let unit = linker.load(&objects).expect("load");
    let top = linker.symbol(unit, "step5").expect("step5");
    let n = call::call_i64(top, &[]).expect("call");
    let ip_at = linker.symbol(unit, "ip_at").expect("ip_at");
    let ips: Vec<usize> = (0..n)
        .map(|i| call::call_i64(ip_at, &[i]).expect("call") as usize)
        .collect();
    // walk, step0..step5, then host frames.
    assert!(ips.len() > 8, "only {} frames", ips.len());
    for i in 0..6 {
        let f = linker.symbol(unit, &format!("step{i}")).expect("step");
        assert!(
            (f..f + 256).contains(&ips[i + 1]),
            "frame {} {:#x} not in step{i} {f:#x}",
            i + 1,
            ips[i + 1]
        );
    }
    let host = call::call_i64 as fn(usize, &[i64]) -> _ as usize;
    assert!(
        ips[7..].iter().any(|&ip| ip.abs_diff(host) < 4096),
        "no host frame after the loaded ones"
    );
}
