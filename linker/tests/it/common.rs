//! Helpers: compiling C (and C++) snippets at test time, once per snippet.

use std::path::{Path, PathBuf};
use std::process::Command;

use jitcache_linker::ObjectFile;

fn dir() -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("linker-snippets");
    std::fs::create_dir_all(&d).expect("mkdir");
    d
}

/// Whether a compiler can be run.
pub fn have(compiler: &str) -> bool {
    Command::new(compiler)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Compiles `source` (C, or C++ when `compiler` is a C++ compiler) with `flags` into an
/// object and returns its bytes. `name` must be unique per source and flags.
pub fn compile_with(
    compiler: &str,
    name: &str,
    ext: &str,
    source: &str,
    flags: &[&str],
) -> Vec<u8> {
    let d = dir();
    // Unique paths per call, so that tests running at once never read a half-written file.
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let pid = std::process::id();
    let src = d.join(format!("{name}-{pid}-{n}.{ext}"));
    let obj = d.join(format!("{name}-{pid}-{n}.o"));
    std::fs::write(&src, source).expect("write source");
    let out = Command::new(compiler)
        .args(flags)
        .arg("-c")
        .arg(&src)
        .arg("-o")
        .arg(&obj)
        .output()
        .expect("run compiler");
    assert!(
        out.status.success(),
        "{compiler} {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read(&obj).expect("read object")
}

/// Compiles C with `cc`.
pub fn cc(name: &str, source: &str, flags: &[&str]) -> Vec<u8> {
    compile_with("cc", name, "c", source, flags)
}

/// One object named `name`.
pub fn obj<'a>(name: &'a str, bytes: &'a [u8]) -> ObjectFile<'a> {
    ObjectFile { name, bytes }
}

/// The permissions of the mapping that holds `addr`, from /proc/self/maps.
pub fn perms(addr: usize) -> String {
    maps_line(addr)
        .map(|(perms, _)| perms)
        .unwrap_or_else(|| panic!("{addr:#x} is not mapped"))
}

/// Permissions and name (path, `[heap]`, empty) of the mapping holding `addr`.
pub fn maps_line(addr: usize) -> Option<(String, String)> {
    let maps = std::fs::read_to_string("/proc/self/maps").expect("maps");
    for line in maps.lines() {
        let mut parts = line.split_whitespace();
        let (Some(range), Some(perms)) = (parts.next(), parts.next()) else {
            continue;
        };
        let Some((lo, hi)) = range.split_once('-') else {
            continue;
        };
        let (Ok(lo), Ok(hi)) = (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
        else {
            continue;
        };
        if (lo..hi).contains(&addr) {
            let name = parts.nth(3).unwrap_or_default().to_owned();
            return Some((perms.to_owned(), name));
        }
    }
    None
}
