//! An unusable cache directory never fails a run: a read-only one (a read-only bind mount,
//! since the tests run as root and permission bits do not stop root) and ones refused for
//! their permissions (world-writable, owned by another user). The program runs with the
//! right output and exit status, with exactly one warning, and the cache is bypassed.

use std::path::{Path, PathBuf};
use std::process::Command;

use jitcache::{Config, JitCache, MissReason};
use jitcache_frontends::lisp::runtime::capture_output;
use jitcache_frontends::run::RunOptions;

use crate::util::{self, Run, assert_output};

const PROGRAM: &str = "\
(defn double [x] (* 2 x))
(defn inc [x] (+ x 1))
(defn main [] (println (double 21) (inc 41)) (inc 6))
";
const OUTPUT: &str = "42 42\n";
const EXIT: i32 = 7;
const UNITS: u64 = 3;

/// A read-only bind mount of a directory onto itself, unmounted on drop.
struct ReadOnlyMount {
    dir: PathBuf,
}

impl ReadOnlyMount {
    /// Makes `dir` read-only, or says why it cannot.
    fn new(dir: &Path) -> Result<ReadOnlyMount, String> {
        let mount = |args: &[&str]| -> Result<(), String> {
            let out = Command::new("mount")
                .args(args)
                .arg(dir)
                .arg(dir)
                .output()
                .map_err(|e| format!("cannot run mount: {e}"))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "mount {args:?} failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
        };
        mount(&["--bind"])?;
        let guard = ReadOnlyMount {
            dir: dir.to_path_buf(),
        };
        mount(&["-o", "remount,bind,ro"])?;
        // Root must really be unable to write there.
        let probe = dir.join(".probe");
        if std::fs::write(&probe, b"x").is_ok() {
            let _ = std::fs::remove_file(&probe);
            return Err("the read-only bind mount is writable".to_owned());
        }
        Ok(guard)
    }
}

impl Drop for ReadOnlyMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).status();
    }
}

/// A read-only mount of `dir`, or `None` (with the reason printed) where mounting is not
/// permitted.
fn read_only(dir: &Path) -> Option<ReadOnlyMount> {
    match ReadOnlyMount::new(dir) {
        Ok(mount) => Some(mount),
        Err(reason) => {
            eprintln!("skipped: cannot make a read-only mount: {reason}");
            None
        }
    }
}

/// Checks a run on an unusable cache: right output, one warning naming `why`, every unit
/// compiled with the reason "cache bypassed".
#[track_caller]
fn assert_bypassed(run: &Run, why: &str) {
    assert_output(run, OUTPUT, EXIT);
    assert_eq!(run.warnings(), 1, "one warning:\n{}", run.stderr);
    assert!(
        run.stderr
            .lines()
            .any(|l| l.starts_with("jitcache: warning") && l.contains(why)),
        "warning mentions {why:?}:\n{}",
        run.stderr
    );
    assert_eq!(run.compiled(), UNITS, "{}", run.stderr);
    assert_eq!(run.disk_hits(), 0);
    for (unit, reason) in run.explain() {
        assert_eq!(reason, "cache bypassed", "unit {unit}");
    }
}

/// Runs the program in this process on `cache`: the facade's stats must say bypassed.
fn assert_bypassed_in_process(cache: &Path, program: &Path) {
    let jit = JitCache::open(cache, Config::default());
    let bypassed = jit.stats().bypassed;
    assert!(bypassed.is_some(), "stats().bypassed after open");
    assert!(jit.store().is_none());
    let (report, out) =
        capture_output(|| jitcache_frontends::run::run(&jit, program, &RunOptions::default()));
    let report = report.unwrap_or_else(|e| panic!("run: {e}"));
    assert_eq!(String::from_utf8_lossy(&out), OUTPUT);
    assert_eq!(report.exit, EXIT);
    assert_eq!(report.compiled.len() as u64, UNITS);
    assert!(
        report
            .compiled
            .iter()
            .all(|(_, why)| *why == MissReason::Bypassed),
        "{:?}",
        report.compiled
    );
    let stats = jit.stats();
    assert_eq!((stats.compiles, stats.disk_hits), (UNITS, 0));
    assert_eq!(stats.bypassed, bypassed);
}

#[test]
fn read_only_cold_cache_still_runs_with_one_warning() {
    let dir = util::tempdir();
    let program = util::write(dir.path(), "prog.clj", PROGRAM);
    let cache = dir.path().join("cache");
    std::fs::create_dir(&cache).unwrap_or_else(|e| panic!("{e}"));
    let Some(_mount) = read_only(&cache) else {
        return;
    };

    let run = util::run(&cache, &program, &[]);
    assert_bypassed(&run, "cannot write");
    // Nothing could be stored: the next run compiles everything again.
    let run = util::run(&cache, &program, &[]);
    assert_bypassed(&run, "cannot write");
    assert_bypassed_in_process(&cache, &program);
    assert!(
        std::fs::read_dir(&cache).map(|d| d.count()).unwrap_or(1) == 0,
        "the cache stayed empty"
    );
}

#[test]
fn read_only_warm_cache_serves_hits_and_compiles_what_changed() {
    let dir = util::tempdir();
    let program = util::write(dir.path(), "prog.clj", PROGRAM);
    let cache = dir.path().join("cache");
    let cold = util::run(&cache, &program, &[]);
    assert_output(&cold, OUTPUT, EXIT);
    assert_eq!(cold.compiled(), UNITS);
    let Some(mount) = read_only(&cache) else {
        return;
    };

    // Reading works on a read-only file system: all hits, nothing to warn about.
    let warm = util::run(&cache, &program, &[]);
    assert_output(&warm, OUTPUT, EXIT);
    assert_eq!(
        (warm.compiled(), warm.disk_hits()),
        (0, UNITS),
        "{}",
        warm.stderr
    );
    assert_eq!(warm.warnings(), 0, "{}", warm.stderr);

    // An edited unit is compiled; storing it fails, with one warning; the rest still hit.
    let edited = util::write(
        dir.path(),
        "prog.clj",
        &PROGRAM.replace("(+ x 1)", "(+ 1 x)"),
    );
    for _ in 0..2 {
        let run = util::run(&cache, &edited, &[]);
        assert_output(&run, OUTPUT, EXIT);
        assert_eq!(
            run.compiled_units().into_iter().collect::<Vec<_>>(),
            ["inc"],
            "{}",
            run.stderr
        );
        assert_eq!(run.disk_hits(), UNITS - 1);
        assert_eq!(run.warnings(), 1, "{}", run.stderr);
    }
    drop(mount);
    assert_eq!(
        util::entries(&cache).len() as u64,
        UNITS,
        "nothing was added"
    );
}

#[test]
fn world_writable_cache_dir_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = util::tempdir();
    let program = util::write(dir.path(), "prog.clj", PROGRAM);
    let cache = dir.path().join("cache");
    std::fs::create_dir(&cache).unwrap_or_else(|e| panic!("{e}"));
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777))
        .unwrap_or_else(|e| panic!("{e}"));

    for _ in 0..2 {
        let run = util::run(&cache, &program, &[]);
        assert_bypassed(&run, "world-writable");
    }
    assert_bypassed_in_process(&cache, &program);
    assert_eq!(
        std::fs::read_dir(&cache).map(|d| d.count()).ok(),
        Some(0),
        "nothing written in it"
    );
}

#[test]
fn cache_dir_owned_by_another_user_is_refused() {
    let dir = util::tempdir();
    let program = util::write(dir.path(), "prog.clj", PROGRAM);
    let cache = dir.path().join("cache");
    // A warm cache first: being refused must not depend on the directory being empty.
    let cold = util::run(&cache, &program, &[]);
    assert_eq!(cold.compiled(), UNITS);
    if let Err(e) = std::os::unix::fs::chown(&cache, Some(65534), Some(65534)) {
        eprintln!("skipped: cannot chown the cache directory: {e}");
        return;
    }
    for _ in 0..2 {
        let run = util::run(&cache, &program, &[]);
        assert_bypassed(&run, "owned by uid 65534");
    }
    assert_bypassed_in_process(&cache, &program);
}
