//! The Python package (`python/`) over the library this test built: its unit tests
//! (`python -m unittest`), `pip install ./python` (the wheel bundles the library), and
//! the llvmlite program `python/examples/llvmlite_demo.py` in new processes: the second
//! gets every object from jitcache and LLVM generates no code; entries damaged in the
//! store, replaced by bytes that are no object, or truncated are misses, never a crash.
//!
//! Python 3 and llvmlite are needed; without them the tests skip, except when `CI` is
//! set: then they fail (`.ci/run` installs llvmlite).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::{lib, repo, scratch, success};

/// The Python interpreter: `$PYTHON`, else `python3`.
fn python() -> PathBuf {
    std::env::var_os("PYTHON").map_or_else(|| PathBuf::from("python3"), PathBuf::from)
}

/// Whether `python3 -c <code>` succeeds.
fn python_runs(code: &str) -> bool {
    Command::new(python())
        .args(["-c", code])
        .output()
        .is_ok_and(|out| out.status.success())
}

/// Whether Python (and, if `llvmlite`, llvmlite) is there; with `CI` set, a failure
/// when it is not.
fn python_or_fail(llvmlite: bool) -> bool {
    let (code, what) = if llvmlite {
        (
            "import llvmlite.binding",
            "python3 with llvmlite (pip install llvmlite)",
        )
    } else {
        ("import ctypes, sqlite3", "python3")
    };
    let found = python_runs(code);
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "{what} is not installed, and CI is set: this test needs it"
        );
        eprintln!("note: {what} not found; skipping the Python test");
    }
    found
}

fn library() -> PathBuf {
    lib().dir.join("libjitcache.so")
}

/// Runs Python with `args`, the package importable from `path` and the environment
/// `envs`; returns its output.
fn run_python(args: &[&dyn AsRef<std::ffi::OsStr>], path: &Path, envs: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new(python());
    for arg in args {
        cmd.arg(arg);
    }
    cmd.env("PYTHONPATH", path)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env_remove("JITCACHE_LIBRARY");
    for (key, value) in envs {
        cmd.env(key, value);
    }
    cmd.output().expect("run python")
}

/// The demo's last line: `codegen=N hits=N misses=N stores=N uncacheable=N errors=N`.
fn counters(stdout: &str) -> [u64; 6] {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("codegen="))
        .unwrap_or_else(|| panic!("no counters in:\n{stdout}"));
    let mut out = [0; 6];
    for (slot, field) in out.iter_mut().zip(line.split_whitespace()) {
        *slot = field
            .split_once('=')
            .and_then(|(_, v)| v.parse().ok())
            .expect("name=number");
    }
    out
}

const RESULT: &str = "square(12)=144 fib(20)=6765 poly(5)=41 greeting_len=13";

/// The modules of the demo: three of IR text and the engine's empty first one.
const MODULES: u64 = 4;

#[test]
fn python_package_unit_tests_pass() {
    if !python_or_fail(false) {
        return;
    }
    let python_dir = repo().join("python");
    let out = run_python(
        &[
            &"-m",
            &"unittest",
            &"discover",
            &"-v",
            &"-s",
            &python_dir.join("tests"),
        ],
        &python_dir.join("src"),
        &[("JITCACHE_LIBRARY", &library())],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "python -m unittest failed:\n{stderr}");
    assert!(stderr.contains("\nOK"), "{stderr}");
    if python_runs("import llvmlite") {
        assert!(!stderr.contains("skipped"), "{stderr}");
    }
}

#[test]
fn pip_installed_package_serves_llvmlite_from_the_cache() {
    if !python_or_fail(true) {
        return;
    }
    let tmp = scratch("python-llvmlite");
    let site = tmp.path().join("site");
    let cache = tmp.path().join("cache");

    // pip install ./python: the in-tree backend needs no index and bundles the library.
    let out = Command::new(python())
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--no-index",
            "--target",
        ])
        .arg(&site)
        .arg(repo().join("python"))
        .env("JITCACHE_LIBRARY", library())
        .output()
        .expect("run pip");
    assert!(
        out.status.success(),
        "pip install ./python failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(site.join("jitcache/_lib/libjitcache.so").is_file());
    let which = run_python(
        &[&"-c", &"import jitcache; print(jitcache.library_path())"],
        &site,
        &[],
    );
    let which = success("library_path", &which);
    assert!(
        which.trim().ends_with("site/jitcache/_lib/libjitcache.so"),
        "{which}"
    );

    let demo = repo().join("python/examples/llvmlite_demo.py");
    let damage = repo().join("python/tests/damage_entries.py");
    let run_demo = || {
        let out = run_python(&[&demo, &cache], &site, &[]);
        let stdout = success("llvmlite_demo.py", &out);
        assert!(stdout.contains(RESULT), "{stdout}");
        counters(&stdout)
    };

    // codegen, hits, misses, stores, uncacheable, errors
    assert_eq!(run_demo(), [MODULES, 0, MODULES, MODULES, 0, 0], "cold");
    // A new process: every object from jitcache, no code generated.
    assert_eq!(run_demo(), [0, MODULES, 0, 0, 0, 0], "warm");
    // Another salt: other keys, every module compiled.
    let salted = success(
        "llvmlite_demo.py with a salt",
        &run_python(&[&demo, &cache, &"runtime-abi-2"], &site, &[]),
    );
    assert_eq!(
        counters(&salted),
        [MODULES, 0, MODULES, MODULES, 0, 0],
        "{salted}"
    );

    // docs/integration.md shows the program as it is.
    let guide =
        std::fs::read_to_string(repo().join("docs/integration.md")).expect("docs/integration.md");
    let text = std::fs::read_to_string(&demo).expect("read the demo");
    assert!(
        guide.contains(&format!("```python\n{text}```")),
        "docs/integration.md must contain python/examples/llvmlite_demo.py verbatim"
    );

    // Damaged entries: each a miss, compiled and stored again; then hits.
    for mode in ["flip", "garbage", "truncate"] {
        let out = run_python(&[&damage, &mode, &cache], &site, &[]);
        let stdout = success(&format!("damage_entries.py {mode}"), &out);
        assert!(!stdout.contains("damaged=0"), "{mode}: {stdout}");
        assert_eq!(
            run_demo(),
            [MODULES, 0, MODULES, MODULES, 0, 0],
            "after {mode}"
        );
        assert_eq!(run_demo(), [0, MODULES, 0, 0, 0, 0], "after {mode}, again");
    }
}
