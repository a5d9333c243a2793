//! C++ exceptions through loaded code in hosts linked with each common unwinder:
//! libgcc_s (the default), LLVM's libunwind (shared, and static in the executable), and
//! `-static-libgcc` (the executable's own hidden copy of libgcc's unwinder next to the
//! libgcc_s that libstdc++ loads), both ways: loaded code throws to the host, and host
//! code throws through loaded frames (with cleanups on both sides). Needs `c++`, and
//! LLVM's libunwind (Debian's `libunwind-19-dev`): without it the LLVM cases skip,
//! except when `CI` is set.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::{hosts, lib, run, scratch, success};

const SIGABRT: i32 = 6;

/// LLVM's libunwind directory (shared and static library), if installed.
fn llvm_libunwind() -> Option<PathBuf> {
    let found = ["/usr/lib/llvm-19/lib", "/usr/lib/llvm-14/lib"]
        .into_iter()
        .map(PathBuf::from)
        .find(|d| d.join("libunwind.so").exists() && d.join("libunwind.a").exists());
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "LLVM's libunwind (libunwind-19-dev) is not installed, and CI is set"
        );
        eprintln!("note: LLVM's libunwind is not installed; skipping");
    }
    found
}

/// The object the hosts load: throws, catches and cleans up.
const THROWS: &str = r#"
#include <stdexcept>
#include <string>
#include <cstring>
extern "C" long host_throw(long);
static long cleanups;
struct Guard { ~Guard() { cleanups += 1; } };
extern "C" long loaded_cleanups(long) { return cleanups; }
extern "C" __attribute__((noinline)) long loaded_throws(long x) {
  Guard g;
  if (x > 0) throw std::runtime_error("loaded " + std::to_string(x));
  return 0;
}
extern "C" __attribute__((noinline)) long loaded_calls_host(long x) {
  Guard g;
  return host_throw(x) + 1;
}
extern "C" long loaded_catches_host(long x) {
  try { return host_throw(x); }
  catch (const std::runtime_error &e) { return 1000 + (long)std::strlen(e.what()); }
}
"#;

fn object(dir: &Path) -> PathBuf {
    let src = dir.join("throws.cc");
    let obj = dir.join("throws.o");
    std::fs::write(&src, THROWS).expect("write source");
    let out = Command::new("c++")
        .args(["-O2", "-fPIC", "-c"])
        .arg(&src)
        .arg("-o")
        .arg(&obj)
        .output()
        .expect("run c++");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    obj
}

/// How the host is linked: with `libjitcache.so` or `libjitcache.a`, then `extra`.
fn build(dir: &Path, name: &str, shared: bool, extra: &[&str]) -> PathBuf {
    let lib = lib();
    let exe = dir.join(name);
    let mut cmd = Command::new("c++");
    cmd.args(["-std=c++17", "-O1", "-g", "-pthread", "-I"])
        .arg(&lib.include)
        .arg(hosts().join("unwind_host.cpp"))
        .arg("-o")
        .arg(&exe);
    if shared {
        cmd.arg("-L")
            .arg(&lib.dir)
            .arg("-ljitcache")
            .arg(format!("-Wl,-rpath,{}", lib.dir.display()));
    } else {
        cmd.arg(lib.dir.join("libjitcache.a"));
    }
    cmd.args(extra);
    if !shared {
        // What Rust's std needs besides an unwinder (which `extra` chooses).
        cmd.args(["-lutil", "-lrt", "-lpthread", "-lm", "-ldl", "-lc"]);
    }
    let out = cmd.output().expect("run c++");
    assert!(
        out.status.success(),
        "building {name} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    exe
}

fn run_host(exe: &Path, dir: &Path, obj: &Path, add_own: bool) -> Output {
    let cache = dir.join(format!(
        "cache-{}",
        exe.file_name().and_then(|n| n.to_str()).unwrap_or("host")
    ));
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&cache, &obj];
    if add_own {
        args.push(&"add-own-unwinder");
    }
    run(exe, &args, &[])
}

/// The line of `stdout` that starts with `key `, without the key.
fn line<'a>(stdout: &'a str, key: &str) -> &'a str {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no {key} line in:\n{stdout}"))
}

/// Every exception reached its handler, with the cleanups on its way run.
fn assert_all_caught(what: &str, stdout: &str) {
    assert_eq!(
        line(stdout, "loaded-to-host"),
        "caught \"loaded 3\" loaded_cleanups=1",
        "{what}:\n{stdout}"
    );
    assert_eq!(
        line(stdout, "host-through-loaded"),
        "caught \"host 5\" loaded_cleanups=2 host_cleanups=1",
        "{what}:\n{stdout}"
    );
    assert_eq!(
        line(stdout, "loaded-catches-host"),
        "1006",
        "{what}:\n{stdout}"
    );
    assert!(stdout.ends_with("done\n"), "{what}:\n{stdout}");
}

#[test]
fn exceptions_cross_loaded_code_with_libgcc_s() {
    let tmp = scratch("unwind-libgcc");
    let obj = object(tmp.path());
    let exe = build(tmp.path(), "host-libgcc", true, &[]);
    let stdout = success("libgcc_s host", &run_host(&exe, tmp.path(), &obj, false));
    assert!(
        line(&stdout, "global-unwinder").contains("libgcc_s"),
        "{stdout}"
    );
    assert_all_caught("libgcc_s", &stdout);
}

/// The host links LLVM's libunwind before libgcc_s: every `_Unwind_*` of the process
/// (libstdc++'s, libjitcache's, the loaded code's) binds to it, and its
/// `__register_frame` takes one FDE per call.
#[test]
fn exceptions_cross_loaded_code_with_llvm_libunwind() {
    let Some(llvm) = llvm_libunwind() else {
        return;
    };
    let tmp = scratch("unwind-llvm");
    let obj = object(tmp.path());
    let dir = llvm.display().to_string();
    let shared = build(
        tmp.path(),
        "host-llvm-shared",
        true,
        &[
            &format!("-L{dir}"),
            "-lunwind",
            &format!("-Wl,-rpath,{dir}"),
        ],
    );
    let stdout = success(
        "LLVM libunwind host",
        &run_host(&shared, tmp.path(), &obj, false),
    );
    assert!(
        line(&stdout, "global-unwinder").contains("libunwind.so"),
        "{stdout}"
    );
    assert_all_caught("LLVM libunwind, shared", &stdout);

    // libjitcache.a and libunwind.a in the executable: the unwinder is the executable's.
    let archive = llvm.join("libunwind.a").display().to_string();
    let exe = build(tmp.path(), "host-llvm-static", false, &[&archive]);
    let stdout = success(
        "static LLVM libunwind host",
        &run_host(&exe, tmp.path(), &obj, false),
    );
    let global = line(&stdout, "global-unwinder");
    assert!(global.contains("host-llvm-static"), "{stdout}");
    assert_all_caught("LLVM libunwind, static", &stdout);
}

/// With `-static-libgcc` the executable has its own copy of libgcc's unwinder (hidden:
/// no `dlsym` finds it), used by the host's own landing pads (`_Unwind_Resume`), while
/// libstdc++ throws with libgcc_s. libjitcache.so registers with libgcc_s only; the host
/// hands it its own copy with `jitcache_add_unwinder`. Linked statically, libjitcache.a
/// binds to the executable's copy itself and finds libgcc_s by `dlsym`: nothing to add.
#[test]
fn exceptions_cross_loaded_code_with_static_libgcc() {
    let tmp = scratch("unwind-static-libgcc");
    let obj = object(tmp.path());
    let exe = build(tmp.path(), "host-static-libgcc", true, &["-static-libgcc"]);

    let stdout = success(
        "-static-libgcc host",
        &run_host(&exe, tmp.path(), &obj, true),
    );
    assert!(
        line(&stdout, "global-unwinder").contains("libgcc_s"),
        "{stdout}"
    );
    assert!(
        line(&stdout, "own-unwinder").contains("host-static-libgcc"),
        "{stdout}"
    );
    assert_all_caught("-static-libgcc with jitcache_add_unwinder", &stdout);

    // Without it the host's landing pad resumes with an unwinder that does not know the
    // loaded frames: the process aborts (what the C API call is for).
    let out = run_host(&exe, tmp.path(), &obj, false);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&out.status),
        Some(SIGABRT),
        "{stdout}"
    );
    assert!(stdout.contains("loaded-to-host caught"), "{stdout}");
    assert!(!stdout.contains("host-through-loaded"), "{stdout}");

    let exe = build(
        tmp.path(),
        "host-static-libgcc-a",
        false,
        &["-static-libgcc"],
    );
    let stdout = success(
        "-static-libgcc, libjitcache.a",
        &run_host(&exe, tmp.path(), &obj, false),
    );
    assert_all_caught("-static-libgcc with libjitcache.a", &stdout);
}
