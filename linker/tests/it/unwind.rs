//! Unwinding through loaded code: a backtrace taken inside a loaded unit walks through its
//! frames back into the host (only because `.eh_frame` is registered), and C++ exceptions
//! thrown in loaded code or in libstdc++ are caught in loaded code.

use jitcache_linker::unwind::{self, Origin, UnwinderKind};
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
    // SAFETY: a function of that C signature in a unit still loaded.
    let n = unsafe { call::call_i64(level1, &[]) }.expect("call");
    let ips = (0..n)
        // SAFETY: a function of that C signature in a unit still loaded.
        .map(|i| unsafe { call::call_i64(ip_at, &[i]) }.expect("call") as usize)
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
        let host = call::call_i64 as unsafe fn(usize, &[i64]) -> _ as usize;
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
            // SAFETY: a function of that C signature in a unit still loaded.
            unsafe { call::call_i64(f("static_value"), &[]) }.expect("call"),
            7,
            "{tag}: static constructor"
        );
        assert_eq!(
            // SAFETY: a function of that C signature in a unit still loaded.
            unsafe { call::call_i64(f("catch_own"), &[0]) }.expect("call"),
            0
        );
        assert_eq!(
            // SAFETY: a function of that C signature in a unit still loaded.
            unsafe { call::call_i64(f("catch_own"), &[3]) }.expect("call"),
            106,
            "{tag}: thrown and caught in loaded code"
        );
        assert_eq!(
            // SAFETY: a function of that C signature in a unit still loaded.
            unsafe { call::call_i64(f("catch_from_libstdcxx"), &[1]) }.expect("call"),
            7
        );
        assert_eq!(
            // SAFETY: a function of that C signature in a unit still loaded.
            unsafe { call::call_i64(f("catch_from_libstdcxx"), &[9]) }.expect("call"),
            -1,
            "{tag}: thrown by libstdc++"
        );
        assert_eq!(
            // SAFETY: a function of that C signature in a unit still loaded.
            unsafe { call::call_i64(f("through_frames"), &[4]) }.expect("call"),
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
    // SAFETY: a function of that C signature in a unit still loaded.
    let n = unsafe { call::call_i64(top, &[]) }.expect("call");
    let ip_at = linker.symbol(unit, "ip_at").expect("ip_at");
    let ips: Vec<usize> = (0..n)
        // SAFETY: a function of that C signature in a unit still loaded.
        .map(|i| unsafe { call::call_i64(ip_at, &[i]) }.expect("call") as usize)
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
    let host = call::call_i64 as unsafe fn(usize, &[i64]) -> _ as usize;
    assert!(
        ips[7..].iter().any(|&ip| ip.abs_diff(host) < 4096),
        "no host frame after the loaded ones"
    );
}

/// LLVM's libunwind, for tests that need a second unwinder in this process (the Debian
/// package `libunwind-19-dev`, or 14); `None` with a note, or a failure when `CI` is set.
pub fn llvm_libunwind() -> Option<&'static str> {
    const PATHS: [&str; 2] = [
        "/usr/lib/llvm-19/lib/libunwind.so.1",
        "/usr/lib/llvm-14/lib/libunwind.so.1",
    ];
    let found = PATHS.into_iter().find(|p| std::path::Path::new(p).exists());
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "LLVM's libunwind (libunwind-19-dev) is not installed, and CI is set"
        );
        eprintln!("note: LLVM's libunwind is not installed; skipping");
    }
    found
}

type FindFde = unsafe extern "C" fn(*const std::ffi::c_void, *mut [usize; 3]) -> *const u8;

/// LLVM's libunwind opened `RTLD_LOCAL` next to this process's libgcc: its own registry,
/// which nothing in the process uses unless told to.
struct Llvm {
    register: unwind::FrameFn,
    deregister: unwind::FrameFn,
    find_fde: FindFde,
}

fn open_llvm(path: &str) -> Llvm {
    let c = std::ffi::CString::new(path).expect("path");
    // SAFETY: dlopen of a library with no constructors that matter; never closed.
    let handle = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    assert!(!handle.is_null(), "dlopen {path}");
    let sym = |name: &std::ffi::CStr| {
        // SAFETY: a live handle and a C string.
        let p = unsafe { libc::dlsym(handle, name.as_ptr()) };
        assert!(!p.is_null(), "{name:?} in {path}");
        p as usize
    };
    // SAFETY: the addresses of these functions, with these C signatures, in libunwind.
    unsafe {
        Llvm {
            register: std::mem::transmute::<usize, unwind::FrameFn>(sym(c"__register_frame")),
            deregister: std::mem::transmute::<usize, unwind::FrameFn>(sym(c"__deregister_frame")),
            find_fde: std::mem::transmute::<usize, FindFde>(sym(c"_Unwind_Find_FDE")),
        }
    }
}

/// The start of the function whose FDE covers `pc` in `find_fde`'s registry, if any.
fn fde_function(find_fde: FindFde, pc: usize) -> Option<usize> {
    let mut bases = [0_usize; 3];
    // SAFETY: `_Unwind_Find_FDE` only looks `pc` up; `bases` has its three words.
    let fde = unsafe { find_fde(pc as *const std::ffi::c_void, &mut bases) };
    (!fde.is_null()).then_some(bases[2])
}

#[test]
fn the_unwinder_of_this_process_is_libgcc_found_by_its_behaviour() {
    let found = unwind::unwinders();
    let first = found.first().expect("an unwinder");
    assert_eq!(first.kind, UnwinderKind::Libgcc, "{found:?}");
    assert_eq!(first.origin, Origin::Linked);
    let provider = first.provider.as_deref().unwrap_or("");
    assert!(provider.contains("libgcc_s"), "{found:?}");
}

/// An LLVM libunwind is told apart from libgcc by the probe, and a unit registered with
/// it (one FDE per call) is found by its `_Unwind_Find_FDE` function by function, and is
/// gone after unload; libgcc's registry has it too.
#[test]
fn llvm_libunwind_gets_one_fde_per_function_and_loses_them_at_unload() {
    let Some(path) = llvm_libunwind() else {
        return;
    };
    let llvm = open_llvm(path);
    // SAFETY: the three functions of one libunwind, loaded for the rest of the process.
    let kind = unsafe { unwind::probe(llvm.register, llvm.deregister, llvm.find_fde) };
    assert_eq!(kind, Some(UnwinderKind::Llvm));
    // SAFETY: as above; kind as probed.
    let added = unsafe {
        unwind::add_unwinder(unwind::Unwinder {
            register: llvm.register,
            deregister: llvm.deregister,
            kind: UnwinderKind::Llvm,
        })
    };
    assert!(added, "added once");
    assert!(
        unwind::unwinders()
            .iter()
            .any(|u| u.origin == Origin::Added && u.kind == UnwinderKind::Llvm)
    );
    let bytes = compile_with("cc", "llvm_fdes", "c", BACKTRACE, &["-O2", "-fPIC"]);
    let mut linker = Linker::new();
    let unit = linker.load(&[obj("backtrace.o", &bytes)]).expect("load");
    let libgcc_find: FindFde = {
        unsafe extern "C" {
            fn _Unwind_Find_FDE(pc: *const std::ffi::c_void, b: *mut [usize; 3]) -> *const u8;
        }
        _Unwind_Find_FDE
    };
    let functions: Vec<usize> = ["walk", "level1", "level2", "ip_at"]
        .iter()
        .map(|n| linker.symbol(unit, n).expect("defined"))
        .collect();
    for &f in &functions {
        assert_eq!(fde_function(llvm.find_fde, f + 1), Some(f), "LLVM: {f:#x}");
        assert_eq!(fde_function(libgcc_find, f + 1), Some(f), "libgcc: {f:#x}");
    }
    linker.unload(unit).expect("unload");
    for &f in &functions {
        assert_eq!(
            fde_function(llvm.find_fde, f + 1),
            None,
            "LLVM after unload"
        );
        assert_eq!(
            fde_function(libgcc_find, f + 1),
            None,
            "libgcc after unload"
        );
    }
}
