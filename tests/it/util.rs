//! Helpers shared by the end-to-end tests: running the `jitcache` binary, reading its
//! `--json` report, writing programs and flipping bytes.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// The `jitcache` binary built for these tests.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_jitcache")
}

/// `jitcache --cache-dir CACHE ARGS...`, not yet started.
pub fn command(cache: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(bin());
    cmd.arg("--cache-dir").arg(cache).args(args);
    cmd.env_remove("JITCACHE_DIR");
    cmd
}

/// `jitcache --json --cache-dir CACHE run PROGRAM --explain EXTRA...`, not yet started.
pub fn run_command(cache: &Path, program: &Path, extra: &[&str]) -> Command {
    let mut cmd = command(cache, &["--json", "run"]);
    cmd.arg(program).arg("--explain").args(extra);
    cmd
}

/// What one `jitcache run` process did.
#[derive(Debug)]
pub struct Run {
    /// The program's standard output.
    pub stdout: String,
    /// Everything on standard error, the JSON report included.
    pub stderr: String,
    /// The process's exit status (`None` if killed by a signal).
    pub code: Option<i32>,
    /// The final JSON report.
    pub report: Value,
}

impl Run {
    /// Reads a finished `jitcache --json run` process.
    pub fn from_output(output: Output) -> Run {
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        let report = stderr
            .lines()
            .rev()
            .find(|line| line.starts_with('{'))
            .and_then(|line| serde_json::from_str(line).ok())
            .unwrap_or_else(|| {
                panic!(
                    "no JSON report on stderr (status {:?}):\n{stderr}",
                    output.status
                )
            });
        Run {
            stdout,
            stderr,
            code: output.status.code(),
            report,
        }
    }

    fn count(&self, field: &str) -> u64 {
        self.report[field]
            .as_u64()
            .unwrap_or_else(|| panic!("report has no integer {field}: {}", self.report))
    }

    /// Units of the program.
    pub fn units(&self) -> u64 {
        self.count("units")
    }

    /// Units compiled by this process.
    pub fn compiled(&self) -> u64 {
        self.count("compiled")
    }

    /// Units read from the persistent cache.
    pub fn disk_hits(&self) -> u64 {
        self.count("disk_hits")
    }

    /// `main`'s exit status as reported.
    pub fn exit(&self) -> i64 {
        self.report["exit"].as_i64().unwrap_or(i64::MIN)
    }

    /// `(unit, reason)` for every compiled unit, in the report's order.
    pub fn explain(&self) -> Vec<(String, String)> {
        self.report["explain"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .map(|item| {
                        let field = |f: &str| item[f].as_str().unwrap_or_default().to_owned();
                        (field("unit"), field("reason"))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The names of the compiled units.
    pub fn compiled_units(&self) -> BTreeSet<String> {
        self.explain().into_iter().map(|(unit, _)| unit).collect()
    }

    /// The reason given for compiling `unit`, if it was compiled.
    pub fn reason(&self, unit: &str) -> Option<String> {
        self.explain()
            .into_iter()
            .find(|(u, _)| u == unit)
            .map(|(_, why)| why)
    }

    /// Lines of stderr that are jitcache warnings.
    pub fn warnings(&self) -> usize {
        self.stderr
            .lines()
            .filter(|l| l.starts_with("jitcache: warning"))
            .count()
    }
}

/// Runs `jitcache --json run PROGRAM --explain EXTRA...` on the cache at `cache`.
pub fn run(cache: &Path, program: &Path, extra: &[&str]) -> Run {
    let output = run_command(cache, program, extra)
        .output()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin()));
    Run::from_output(output)
}

/// Runs `jitcache --json run --no-cache PROGRAM` (a from-scratch reference run).
pub fn run_uncached(cache: &Path, program: &Path) -> Run {
    run(cache, program, &["--no-cache"])
}

/// Runs an admin command with `--json`; returns its stdout, panicking on failure.
pub fn admin(cache: &Path, args: &[&str]) -> String {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let output = command(cache, &all)
        .output()
        .unwrap_or_else(|e| panic!("cannot start: {e}"));
    assert!(
        output.status.success(),
        "jitcache {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `jitcache --json ls`: every entry as a JSON object.
pub fn entries(cache: &Path) -> Vec<Value> {
    admin(cache, &["ls"])
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad ls line {l:?}: {e}")))
        .collect()
}

/// How many entries of the cache at `cache` are named `name` (`pack`, `lisp/fib`).
pub fn entries_named(cache: &Path, name: &str) -> usize {
    entries(cache)
        .iter()
        .filter(|e| e["name"].as_str() == Some(name))
        .count()
}

/// The hits the store at `cache` counted so far, over every process.
pub fn store_hits(cache: &Path) -> u64 {
    stats(cache)["hits"].as_u64().expect("hits")
}

/// `jitcache --json stats`.
pub fn stats(cache: &Path) -> Value {
    let text = admin(cache, &["stats"]);
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("bad stats {text:?}: {e}"))
}

/// Changes the stored bytes (header + zstd frame) of the blob of the entry named `name`
/// (`lisp/cube`) with `damage`: in its file under `<cache>/v1/blobs/`, or in the index
/// when the blob is small enough to be kept there.
pub fn damage_blob_of(cache: &Path, name: &str, damage: impl FnOnce(&mut [u8])) {
    let entry = entries(cache)
        .into_iter()
        .find(|e| e["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no entry named {name}"));
    let hex = entry["blob"].as_str().unwrap_or_default().to_owned();
    assert_eq!(hex.len(), 64, "blob id of {name}: {hex:?}");
    let file = cache
        .join("v1")
        .join("blobs")
        .join(&hex[..2])
        .join(&hex[2..4])
        .join(&hex);
    if file.exists() {
        let mut bytes = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        damage(&mut bytes);
        std::fs::write(&file, bytes).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        return;
    }
    let id: Vec<u8> = (0..32)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex"))
        .collect();
    let conn = rusqlite::Connection::open(cache.join("v1").join("index.sqlite"))
        .unwrap_or_else(|e| panic!("index: {e}"));
    let mut bytes: Vec<u8> = conn
        .query_row(
            "SELECT data FROM inline_blobs WHERE blob = ?1",
            [&id],
            |r| r.get(0),
        )
        .unwrap_or_else(|e| panic!("the blob of {name} is neither a file nor inline: {e}"));
    damage(&mut bytes);
    conn.execute(
        "UPDATE inline_blobs SET data = ?2 WHERE blob = ?1",
        rusqlite::params![id, bytes],
    )
    .unwrap_or_else(|e| panic!("index: {e}"));
}

/// Flips every bit of the byte in the middle of `bytes`.
pub fn flip_middle_byte(bytes: &mut [u8]) {
    assert!(!bytes.is_empty(), "empty blob");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
}

/// Writes `text` to `dir/name` (making the directories it needs) and returns the path.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{}: {e}", parent.display()));
    }
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    path
}

/// A fresh temporary directory.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"))
}

/// Asserts that a run succeeded in the sense of the program: stdout and exit status.
#[track_caller]
pub fn assert_output(run: &Run, stdout: &str, exit: i32) {
    assert_eq!(run.stdout, stdout, "stdout; stderr:\n{}", run.stderr);
    assert_eq!(run.code, Some(exit), "exit status; stderr:\n{}", run.stderr);
    assert_eq!(
        run.exit(),
        i64::from(exit),
        "reported exit; stderr:\n{}",
        run.stderr
    );
}
