//! Target 2: a warm start of the generated C program of 200 files (`jitcache run`, a new
//! process) against what a user would run instead, on the same code, in the same run.
//!
//! Every figure is the wall time of whole processes, spawn to exit, median of several:
//!
//! - **warm**: `jitcache run DIR` on a cache that holds every unit;
//! - **prelinked `.so`** (peer a, the ahead-of-time floor): the same files built as one
//!   shared object (`cc -O2 -fPIC -shared`), loaded by a minimal C host with
//!   `dlopen(RTLD_NOW)`, which calls its `main`;
//! - **ccache route** (peer b, what a C JIT does without jitcache): every file through
//!   `ccache cc -O2 -fPIC -c` (all direct hits; one compiler per core), `cc -shared`,
//!   then the host `dlopen`s the result; ccache is installed from the distribution
//!   (`apt-get install -y ccache`) when missing, and the row is not run if that fails;
//! - **native executable** (peer d): the same files linked by `cc -O2` into a program;
//! - **uncached build**: the files compiled with `cc -O2 -fPIC -c`, one compiler per
//!   core, then linked: what the program costs with no cache at all.
//!
//! The same program as C++ (`.cc` files through `c++`) gives one more row, reported
//! without a target: its warm `jitcache run` against its uncached build with `c++`, one
//! compiler per core.
//!
//! Every process must print what the first `jitcache run` printed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use jitcache_cli::child::run_once;

use crate::measure::{median, millis};
use crate::programs::{write_c_program, write_cxx_program};
use crate::report::{Ratio, Row, Target};

/// The minimal host of the `dlopen` peers: loads the shared object named by its
/// argument and returns what its `main` returns.
const HOST_C: &str = r#"#include <dlfcn.h>
#include <stdio.h>
int main(int argc, char **argv) {
    if (argc != 2) return 2;
    void *so = dlopen(argv[1], RTLD_NOW);
    if (!so) { fprintf(stderr, "%s\n", dlerror()); return 3; }
    int (*entry)(void) = (int (*)(void))dlsym(so, "main");
    if (!entry) { fprintf(stderr, "%s\n", dlerror()); return 4; }
    return entry();
}
"#;

/// Sizes and repetitions of target 2.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// Files of the C program.
    pub units: usize,
    /// Runs of each fast process (warm, `.so` host, native), interleaved.
    pub runs: usize,
    /// Runs of the ccache route.
    pub ccache_runs: usize,
    /// Runs of the uncached parallel build.
    pub uncached_runs: usize,
}

/// Medians of target 2, in the same run.
#[derive(Clone, Copy, Debug)]
pub struct Times {
    /// `jitcache run`, warm.
    pub warm: Duration,
    /// The in-process time until `main` of the warm runs (from the run's report).
    pub warm_load: Duration,
    /// The host `dlopen`ing the prelinked `.so`.
    pub so: Duration,
    /// The native executable.
    pub native: Duration,
}

/// Runs `command`, returning its wall time and stdout; fails when it fails.
fn timed(command: &mut Command) -> Result<(Duration, Vec<u8>)> {
    let start = Instant::now();
    let out = command
        .output()
        .with_context(|| format!("running {command:?}"))?;
    let wall = start.elapsed();
    if !out.status.success() {
        bail!(
            "{command:?} exited with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok((wall, out.stdout))
}

/// The program's files with extension `ext` (`c`, `cc`), sorted.
fn source_files(program: &Path, ext: &str) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(program)?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    files.retain(|p| p.extension().is_some_and(|e| e == ext));
    files.sort();
    Ok(files)
}

/// Compiles every file of `files` to an object in `out` with `compiler` (a command
/// and its first arguments, e.g. `ccache cc`, run with `env` added to its
/// environment), `jobs` compilers at a time; returns the objects.
fn compile_parallel(
    compiler: &[&str],
    env: &[(&str, &Path)],
    files: &[PathBuf],
    out: &Path,
    jobs: usize,
) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out)?;
    let objects: Vec<PathBuf> = files
        .iter()
        .map(|f| {
            out.join(f.file_stem().unwrap_or_default())
                .with_extension("o")
        })
        .collect();
    let next = AtomicUsize::new(0);
    let results: Vec<Result<()>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..jobs.max(1))
            .map(|_| {
                s.spawn(|| -> Result<()> {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let (Some(file), Some(object)) = (files.get(i), objects.get(i)) else {
                            return Ok(());
                        };
                        timed(
                            Command::new(compiler[0])
                                .args(&compiler[1..])
                                .envs(env.iter().copied())
                                .args(["-O2", "-fPIC", "-c"])
                                .arg(file)
                                .arg("-o")
                                .arg(object),
                        )?;
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| bail!("a compile thread panicked"))
            })
            .collect()
    });
    results.into_iter().collect::<Result<()>>()?;
    Ok(objects)
}

/// The peers built from `program` in `dir`: the host, the prelinked `.so`, the native
/// executable.
struct Peers {
    host: PathBuf,
    so: PathBuf,
    native: PathBuf,
}

fn build_peers(program: &Path, dir: &Path) -> Result<Peers> {
    let files = source_files(program, "c")?;
    let host_c = dir.join("host.c");
    std::fs::write(&host_c, HOST_C)?;
    let peers = Peers {
        host: dir.join("host"),
        so: dir.join("prelinked.so"),
        native: dir.join("native"),
    };
    timed(
        Command::new("cc")
            .args(["-O2", "-o"])
            .arg(&peers.host)
            .arg(&host_c)
            .arg("-ldl"),
    )?;
    timed(
        Command::new("cc")
            .args(["-O2", "-fPIC", "-shared", "-o"])
            .arg(&peers.so)
            .args(&files),
    )?;
    timed(
        Command::new("cc")
            .args(["-O2", "-o"])
            .arg(&peers.native)
            .args(&files),
    )?;
    Ok(peers)
}

/// Interleaved runs of the warm `jitcache run`, the `.so` host and the native program;
/// checks that each printed `expected`.
fn measure_fast(
    exe: &Path,
    cache: &Path,
    program: &Path,
    peers: &Peers,
    runs: usize,
    expected: &[u8],
) -> Result<Times> {
    let (mut warm, mut warm_load, mut so, mut native) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        let run = crate::startup::warm_run(exe, cache, program, expected)?;
        warm.push(run.wall);
        warm_load.push(run.load);
        let (wall, out) = timed(Command::new(&peers.host).arg(&peers.so))?;
        ensure!(out == expected, "the .so host printed something else");
        so.push(wall);
        let (wall, out) = timed(&mut Command::new(&peers.native))?;
        ensure!(out == expected, "the native program printed something else");
        native.push(wall);
    }
    Ok(Times {
        warm: median(&mut warm),
        warm_load: median(&mut warm_load),
        so: median(&mut so),
        native: median(&mut native),
    })
}

/// The path of `ccache`, installing it from the distribution when it is missing.
fn ccache() -> Result<PathBuf> {
    let find = || -> Option<PathBuf> {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join("ccache"))
                .find(|p| p.is_file())
        })
    };
    if let Some(path) = find() {
        return Ok(path);
    }
    eprintln!("jitcache-bench: ccache is missing: apt-get install -y ccache");
    let out = Command::new("apt-get")
        .args(["install", "-y", "-q", "ccache"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .output()
        .context("ccache is not installed and apt-get could not run")?;
    ensure!(
        out.status.success(),
        "ccache is not installed and `apt-get install -y ccache` failed: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    find().context("ccache is still missing after apt-get install")
}

/// One run of the ccache route: compile through ccache (its cache in `ccache_dir`),
/// link a shared object, run the host on it.
fn ccache_route(
    ccache: &Path,
    ccache_dir: &Path,
    files: &[PathBuf],
    dir: &Path,
    peers: &Peers,
    jobs: usize,
) -> Result<(Duration, Vec<u8>)> {
    let ccache = ccache.to_str().context("the path of ccache is not UTF-8")?;
    let start = Instant::now();
    let objects = compile_parallel(
        &[ccache, "cc"],
        &[("CCACHE_DIR", ccache_dir)],
        files,
        &dir.join("ccache-obj"),
        jobs,
    )?;
    let so = dir.join("ccache-route.so");
    timed(
        Command::new("cc")
            .args(["-shared", "-o"])
            .arg(&so)
            .args(&objects),
    )?;
    let (_, out) = timed(Command::new(&peers.host).arg(&so))?;
    Ok((start.elapsed(), out))
}

/// The counter `name` of `ccache --print-stats` for the cache in `ccache_dir`.
fn ccache_stat(ccache: &Path, ccache_dir: &Path, name: &str) -> Result<u64> {
    let (_, out) = timed(
        Command::new(ccache)
            .env("CCACHE_DIR", ccache_dir)
            .arg("--print-stats"),
    )?;
    let text = String::from_utf8_lossy(&out);
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .with_context(|| format!("ccache --print-stats has no {name}"))
}

/// The median of the ccache route over `runs` runs, all hits (a first run fills the
/// cache, in `dir/ccache`); checks that every run printed `expected` and that ccache
/// missed nothing.
fn measure_ccache(
    files: &[PathBuf],
    dir: &Path,
    peers: &Peers,
    runs: usize,
    jobs: usize,
    expected: &[u8],
) -> Result<Duration> {
    let ccache = ccache()?;
    let ccache_dir = dir.join("ccache");
    ccache_route(&ccache, &ccache_dir, files, dir, peers, jobs)?;
    timed(
        Command::new(&ccache)
            .env("CCACHE_DIR", &ccache_dir)
            .arg("--zero-stats"),
    )?;
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let (wall, out) = ccache_route(&ccache, &ccache_dir, files, dir, peers, jobs)?;
        ensure!(out == expected, "the ccache route printed something else");
        times.push(wall);
    }
    let misses = ccache_stat(&ccache, &ccache_dir, "cache_miss")?;
    ensure!(
        misses == 0,
        "the ccache route missed {misses} times after a first run"
    );
    Ok(median(&mut times))
}

/// The median of the uncached build over `runs` runs: every file compiled by
/// `compiler` (`cc`, `c++`), `jobs` compilers at a time, then linked into an executable
/// by the same driver, which runs.
fn measure_uncached(
    compiler: &str,
    files: &[PathBuf],
    dir: &Path,
    runs: usize,
    jobs: usize,
    expected: &[u8],
) -> Result<Duration> {
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        let objects = compile_parallel(&[compiler], &[], files, &dir.join("uncached-obj"), jobs)?;
        let exe = dir.join("uncached");
        timed(Command::new(compiler).arg("-o").arg(&exe).args(&objects))?;
        let (_, out) = timed(&mut Command::new(&exe))?;
        times.push(start.elapsed());
        ensure!(out == expected, "the uncached build printed something else");
    }
    Ok(median(&mut times))
}

/// The names, baselines and targets of target 2's rows, in order.
fn row_specs(units: usize) -> [(String, &'static str, Ratio, Target); 4] {
    [
        (
            format!("C {units} files: warm vs prelinked .so"),
            "dlopen of one prelinked .so by a C host",
            Ratio::ValueOverBaseline,
            Target::AtMost(2.0),
        ),
        (
            format!("C {units} files: warm vs ccache route"),
            "ccache hits + cc -shared + dlopen",
            Ratio::BaselineOverValue,
            Target::AtLeast(50.0),
        ),
        (
            format!("C {units} files: warm vs native executable"),
            "the natively linked program",
            Ratio::ValueOverBaseline,
            Target::Report,
        ),
        (
            format!("C {units} files: warm vs uncached parallel build"),
            "cc per file, one per core, then link",
            Ratio::BaselineOverValue,
            Target::AtLeast(500.0),
        ),
    ]
}

/// The rows of target 2: `exe` is `jitcache`, `dir` the work directory. The C rows,
/// then the C++ row.
pub fn rows(exe: &Path, dir: &Path, plan: &Plan) -> Vec<Row> {
    let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
    // The host is given an absolute path: `dlopen` of a bare name searches the
    // library path instead.
    let dir = &std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    let mut rows = c_rows(exe, dir, plan, jobs);
    rows.push(cxx_row(exe, dir, plan, jobs));
    rows
}

/// The C program's rows: warm against each peer and the uncached build.
fn c_rows(exe: &Path, dir: &Path, plan: &Plan, jobs: usize) -> Vec<Row> {
    let specs = row_specs(plan.units);
    let skipped_all = |why: String| -> Vec<Row> {
        specs
            .iter()
            .map(|(name, _, kind, target)| {
                Row::skipped(2, name.clone(), "ms", *kind, *target, why.clone())
            })
            .collect()
    };
    let program = dir.join(format!("c{}", plan.units));
    let cache = dir.join("cache");
    let prepared = (|| -> Result<(Peers, Vec<PathBuf>, Vec<u8>)> {
        write_c_program(&program, plan.units)?;
        let files = source_files(&program, "c")?;
        let peers = build_peers(&program, dir)?;
        let cold = run_once(exe, &cache, &program, false)?;
        Ok((peers, files, cold.stdout))
    })();
    let (peers, files, expected) = match prepared {
        Ok(p) => p,
        Err(err) => return skipped_all(format!("{err:#}")),
    };
    let t = match measure_fast(exe, &cache, &program, &peers, plan.runs, &expected) {
        Ok(t) => t,
        Err(err) => return skipped_all(format!("{err:#}")),
    };
    let ccache = measure_ccache(&files, dir, &peers, plan.ccache_runs, jobs, &expected);
    let uncached = measure_uncached("cc", &files, dir, plan.uncached_runs, jobs, &expected);
    let sizes = format!(
        "{} .c files (one function and a static helper each, a shared header, main.c), cc -O2 -fPIC; {jobs} compilers at a time",
        plan.units
    );
    let warm_note = format!(
        "whole processes, spawn to exit; warm jitcache run spends {:.2} ms until main (its report)",
        millis(t.warm_load)
    );
    let baselines = [
        (Ok(t.so), plan.runs),
        (ccache, plan.ccache_runs),
        (Ok(t.native), plan.runs),
        (uncached, plan.uncached_runs),
    ];
    specs
        .into_iter()
        .zip(baselines)
        .map(|((name, baseline_name, kind, target), (baseline, runs))| {
            let row = Row::new(
                2,
                name,
                "ms",
                (
                    millis(t.warm),
                    baseline.as_ref().map_or(f64::NAN, |b| millis(*b)),
                ),
                baseline_name,
                kind,
                target,
            )
            .with_sizes(sizes.clone())
            .with_runs(plan.runs, runs)
            .with_notes(warm_note.clone());
            row.peer_outcome(&baseline)
        })
        .collect()
}

/// The C++ row: the program of `plan.units` files as C++, warm `jitcache run` (median of
/// `plan.runs`) against the uncached `c++` build, `jobs` compilers at a time.
fn cxx_row(exe: &Path, dir: &Path, plan: &Plan, jobs: usize) -> Row {
    let name = format!("C++ {} files: warm vs uncached parallel build", plan.units);
    let baseline_name = "c++ per file, one per core, then link";
    let (kind, target) = (Ratio::BaselineOverValue, Target::Report);
    let program = dir.join(format!("cxx{}", plan.units));
    let cache = dir.join("cache-cxx");
    let warm = (|| -> Result<(Duration, Vec<PathBuf>, Vec<u8>)> {
        write_cxx_program(&program, plan.units)?;
        let files = source_files(&program, "cc")?;
        let (warm, expected) = crate::startup::warm_median(exe, &cache, &program, plan.runs)?;
        Ok((warm, files, expected))
    })();
    let (warm, files, expected) = match warm {
        Ok(w) => w,
        Err(err) => return Row::skipped(2, name, "ms", kind, target, format!("{err:#}")),
    };
    let uncached = measure_uncached(
        "c++",
        &files,
        &dir.join("cxx-peers"),
        plan.uncached_runs,
        jobs,
        &expected,
    );
    let row = Row::new(
        2,
        name,
        "ms",
        (
            millis(warm),
            uncached.as_ref().map_or(f64::NAN, |b| millis(*b)),
        ),
        baseline_name,
        kind,
        target,
    )
    .with_sizes(format!(
        "{} .cc files (the C program as C++: a constexpr helper in a namespace each, a shared header, main.cc), c++ -O2 -fPIC; {jobs} compilers at a time",
        plan.units
    ))
    .with_runs(plan.runs, plan.uncached_runs)
    .with_notes("whole processes, spawn to exit".to_owned());
    row.peer_outcome(&uncached)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The peers need the system C compiler: under CI its absence fails the test.
    fn have_cc() -> bool {
        let found = Command::new("cc").arg("--version").output().is_ok();
        assert!(
            found || std::env::var_os("CI").is_none(),
            "cc is missing (needed under CI)"
        );
        found
    }

    #[test]
    fn the_peers_print_what_the_program_prints() {
        if !have_cc() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let program = dir.path().join("c");
        write_c_program(&program, 12).unwrap();
        let peers = build_peers(&program, dir.path()).unwrap();
        let (_, from_so) = timed(Command::new(&peers.host).arg(&peers.so)).unwrap();
        let (_, native) = timed(&mut Command::new(&peers.native)).unwrap();
        assert!(String::from_utf8_lossy(&native).starts_with("checksum "));
        assert_eq!(from_so, native);

        let files = source_files(&program, "c").unwrap();
        assert_eq!(files.len(), 12, "11 units and main.c");
        let built = measure_uncached("cc", &files, dir.path(), 1, 2, &native);
        assert!(built.is_ok(), "{built:?}");
        let wrong = measure_uncached("cc", &files, dir.path(), 1, 2, b"something else");
        assert!(wrong.is_err(), "a peer printing something else is an error");
    }

    #[test]
    fn the_cxx_program_builds_with_cxx_and_prints_what_the_c_program_prints() {
        if !have_cc() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let c = dir.path().join("c");
        write_c_program(&c, 12).unwrap();
        let peers = build_peers(&c, dir.path()).unwrap();
        let (_, native) = timed(&mut Command::new(&peers.native)).unwrap();
        let cxx = dir.path().join("cxx");
        write_cxx_program(&cxx, 12).unwrap();
        let files = source_files(&cxx, "cc").unwrap();
        assert_eq!(files.len(), 12, "11 units and main.cc");
        let out = dir.path().join("cxx-out");
        let built = measure_uncached("c++", &files, &out, 1, 2, &native);
        assert!(built.is_ok(), "the same output from c++: {built:?}");
    }
}
