//! Building the C library and the host programs, and running them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, OnceLock};

use tempfile::TempDir;

/// Where the built library and the header are.
pub struct Lib {
    /// The directory holding `libjitcache.so` and `libjitcache.a`.
    pub dir: PathBuf,
    /// The repository's `include/`.
    pub include: PathBuf,
}

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("capi/ has a parent")
        .to_path_buf()
}

/// The test hosts' sources.
pub fn hosts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hosts")
}

/// Builds the library once per test process: `cargo test` does not build a cdylib or
/// staticlib for a crate's integration tests, so this runs `cargo build -p
/// jitcache-capi --lib` in the same target directory and profile as this test.
pub fn lib() -> &'static Lib {
    static LIB: OnceLock<Lib> = OnceLock::new();
    LIB.get_or_init(|| {
        let exe = std::env::current_exe().expect("test executable path");
        // <target>/<profile>/deps/<test>, or <target>/<triple>/<profile>/deps/<test>
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("test executable in <profile>/deps")
            .to_path_buf();
        let profile = profile_dir
            .file_name()
            .and_then(|n| n.to_str())
            .expect("profile directory name")
            .to_owned();
        let mut target_dir = profile_dir.parent().expect("target dir").to_path_buf();
        let mut triple = None;
        if !target_dir.join("CACHEDIR.TAG").exists()
            && target_dir
                .parent()
                .is_some_and(|p| p.join("CACHEDIR.TAG").exists())
        {
            triple = target_dir.file_name().map(|n| n.to_owned());
            target_dir = target_dir.parent().expect("target dir").to_path_buf();
        }
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args([
            "build",
            "--quiet",
            "-p",
            "jitcache-capi",
            "--lib",
            "--target-dir",
        ])
        .arg(&target_dir)
        .current_dir(repo());
        match profile.as_str() {
            "debug" => {}
            "release" => {
                cmd.arg("--release");
            }
            other => {
                cmd.args(["--profile", other]);
            }
        }
        if let Some(triple) = triple {
            cmd.arg("--target").arg(triple);
        }
        let out = cmd.output().expect("run cargo build");
        assert!(
            out.status.success(),
            "cargo build -p jitcache-capi failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for file in ["libjitcache.so", "libjitcache.a"] {
            assert!(
                profile_dir.join(file).is_file(),
                "{file} not found in {}",
                profile_dir.display()
            );
        }
        Lib {
            dir: profile_dir,
            include: repo().join("include"),
        }
    })
}

/// The root of this crate's scratch files, under the target's tmp dir.
fn scratch_root() -> PathBuf {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("capi");
    std::fs::create_dir_all(&root).expect("create scratch root");
    root
}

/// A fresh scratch directory, removed when dropped (kept if `JITCACHE_TEST_KEEP` is set,
/// to inspect a failure).
pub fn scratch(name: &str) -> TempDir {
    tempfile::Builder::new()
        .prefix(&format!("{name}-"))
        .disable_cleanup(std::env::var_os("JITCACHE_TEST_KEEP").is_some())
        .tempdir_in(scratch_root())
        .expect("scratch dir")
}

/// How a host program links the library.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Link {
    /// `-ljitcache` against `libjitcache.so`, with an rpath.
    Shared,
    /// `libjitcache.a` and the system libraries Rust's std needs.
    Static,
}

/// Compiles a host program once per test process; returns the executable.
///
/// `compiler` is `cc` or `c++`; `std` is the language standard option.
pub fn build_host(source: &str, compiler: &str, std: &str, link: Link) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<(String, Link), PathBuf>>> = OnceLock::new();
    let built = BUILT.get_or_init(|| Mutex::new(HashMap::new()));
    let mut built = built.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(exe) = built.get(&(source.to_owned(), link)) {
        return exe.clone();
    }
    let lib = lib();
    let out_dir = scratch_root().join("hosts");
    std::fs::create_dir_all(&out_dir).expect("create hosts dir");
    let stem = Path::new(source)
        .file_stem()
        .and_then(|s| s.to_str())
        .expect("source stem");
    let exe = out_dir.join(format!("{stem}-{link:?}"));
    // Built under a private name and renamed into place: concurrent test runs never see
    // a half-written executable.
    let building = out_dir.join(format!("{stem}-{link:?}.{}", std::process::id()));
    let mut cmd = Command::new(compiler);
    cmd.arg(std)
        .args(["-Wall", "-Wextra", "-Werror", "-g", "-pthread", "-I"])
        .arg(&lib.include)
        .arg(hosts().join(source))
        .arg("-o")
        .arg(&building);
    match link {
        Link::Shared => {
            cmd.arg("-L")
                .arg(&lib.dir)
                .arg("-ljitcache")
                .arg(format!("-Wl,-rpath,{}", lib.dir.display()));
        }
        Link::Static => {
            cmd.arg(lib.dir.join("libjitcache.a")).args([
                "-lgcc_s",
                "-lutil",
                "-lrt",
                "-lpthread",
                "-lm",
                "-ldl",
                "-lc",
            ]);
        }
    }
    let out = cmd.output().expect("run the host compiler");
    assert!(
        out.status.success(),
        "compiling {source} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::rename(&building, &exe).expect("rename the host into place");
    built.insert((source.to_owned(), link), exe.clone());
    exe
}

/// Runs a host program; returns its output (asserting nothing).
pub fn run(exe: &Path, args: &[&dyn AsRef<std::ffi::OsStr>], envs: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new(exe);
    for arg in args {
        cmd.arg(arg);
    }
    for (key, value) in envs {
        cmd.env(key, value);
    }
    cmd.output().expect("run host")
}

/// Asserts a host run succeeded; returns its stdout.
pub fn success(what: &str, out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    stdout
}

/// The statistics a host printed as `stats memory_hits=.. disk_hits=.. misses=..
/// compiles=..`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub memory_hits: u64,
    pub disk_hits: u64,
    pub misses: u64,
    pub compiles: u64,
}

/// Parses the `stats ...` line of a host's output.
pub fn stats(stdout: &str) -> Stats {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("stats "))
        .unwrap_or_else(|| panic!("no stats line in:\n{stdout}"));
    let mut stats = Stats::default();
    for field in line.split_whitespace().skip(1) {
        let (name, value) = field.split_once('=').expect("name=value");
        let value: u64 = value.parse().unwrap_or(0);
        match name {
            "memory_hits" => stats.memory_hits = value,
            "disk_hits" => stats.disk_hits = value,
            "misses" => stats.misses = value,
            "compiles" => stats.compiles = value,
            _ => {}
        }
    }
    stats
}

/// A compiler driver that logs every compile (`-c`, but not the `-###` dry run of the
/// backend's probe) to `$JITCACHE_TEST_COMPILE_LOG` and
/// runs `real`: proof that a run did or did not invoke the compiler.
pub fn logging_compiler(dir: &Path, real: &str) -> PathBuf {
    let path = dir.join(format!("logging-{real}"));
    let script = format!(
        "#!/bin/sh\n\
         compiles=no\n\
         for arg in \"$@\"; do\n\
         \x20 case \"$arg\" in -c) compiles=yes ;; '-###') compiles=no; break ;; esac\n\
         done\n\
         if [ $compiles = yes ]; then echo \"$*\" >> \"${{JITCACHE_TEST_COMPILE_LOG:-/dev/null}}\"; fi\n\
         exec {real} \"$@\"\n"
    );
    std::fs::write(&path, script).expect("write compiler wrapper");
    let mut perms = std::fs::metadata(&path).expect("stat").permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&path, perms).expect("chmod");
    path
}

/// How many compiles the log of [`logging_compiler`] records.
pub fn compiles_logged(log: &Path) -> usize {
    std::fs::read_to_string(log)
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

/// What a host printed about its units: `unit <name> <origin>[: reason]` and
/// `value <name>=<n>` lines (`hosts/inputs_host.c`, `hosts/jank_pch.cpp`).
#[derive(Debug)]
pub struct Units {
    /// Unit name → `compiled: reason`, `disk` or `memory`.
    pub origin: std::collections::BTreeMap<String, String>,
    /// Unit name → the value its function returned.
    pub value: std::collections::BTreeMap<String, i64>,
    /// Everything the host printed.
    pub stdout: String,
}

/// Parses the `unit` and `value` lines of a host's output.
pub fn units(stdout: String) -> Units {
    let mut origin = std::collections::BTreeMap::new();
    let mut value = std::collections::BTreeMap::new();
    for line in stdout.lines() {
        if let Some(rest) = line.strip_prefix("unit ") {
            let (name, from) = rest.split_once(' ').expect("unit <name> <origin>");
            origin.insert(name.to_owned(), from.to_owned());
        } else if let Some(rest) = line.strip_prefix("value ") {
            let (name, v) = rest.split_once('=').expect("value <name>=<n>");
            value.insert(name.to_owned(), v.parse().expect("a number"));
        }
    }
    Units {
        origin,
        value,
        stdout,
    }
}

/// Writes a file (and its directory), then waits past the cache's margin for files
/// modified just before a compile started, whose objects it does not store (the compile
/// may have read a mix of versions): the next run's compiles are stored.
pub fn write_input(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
    settle();
}

/// Waits past the cache's margin for files modified just before a compile (see
/// [`write_input`]).
pub fn settle() {
    std::thread::sleep(std::time::Duration::from_millis(100));
}
