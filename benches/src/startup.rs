//! Target 3: start-up of the generated Lisp program of 1,000 definitions in a new
//! process, warm cache against what a Cranelift JIT without a cache does.
//!
//! Each run is a whole process, spawn to exit, median of several, interleaved: `jitcache
//! --json run PROGRAM` warm, `jitcache-bench-cljit PROGRAM` (every definition compiled
//! in memory by `cranelift_jit::JITModule` from the same IR, then `main` called: see
//! [`crate::lispjit`]), and `jitcache run --no-cache` (each definition compiled to an
//! object and linked by jitcache's linker), reported beside them. The in-process time
//! until `main` of the warm runs (from the run's JSON report) is in the notes.
//!
//! A generated CLIF program of as many functions (one file, so one cache unit) gives one
//! more row, reported without a target: its warm `jitcache run` against the same
//! `jitcache-bench-cljit` compiling its functions in memory with `JITModule`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};

use jitcache_cli::child::{Run, run_once};

use crate::measure::{median, millis};
use crate::programs::{clif_program, lisp_program};
use crate::report::{Ratio, Row, Target};

/// Medians of a program's warm and uncached runs.
struct Startup {
    warm: Duration,
    warm_load: Duration,
    uncached: Duration,
    uncached_load: Duration,
}

/// Runs `program` once cold (filling the cache), then `uncached_runs` times without
/// the cache and `warm_runs` times warm, interleaved; checks that every run printed the
/// same and that warm runs compiled nothing.
fn measure_program(
    exe: &Path,
    cache: &Path,
    program: &Path,
    warm_runs: usize,
    uncached_runs: usize,
) -> Result<Startup> {
    let cold = run_once(exe, cache, program, false)?;
    let mut warm = Vec::new();
    let mut uncached = Vec::new();
    let per_round = warm_runs.div_ceil(uncached_runs.max(1));
    while warm.len() < warm_runs || uncached.len() < uncached_runs {
        if uncached.len() < uncached_runs {
            uncached.push(run_once(exe, cache, program, true)?);
        }
        for _ in 0..per_round {
            if warm.len() < warm_runs {
                warm.push(run_once(exe, cache, program, false)?);
            }
        }
    }
    for run in warm.iter().chain(&uncached) {
        ensure!(
            run.stdout == cold.stdout,
            "{}: a run printed something else than the first",
            program.display()
        );
    }
    ensure!(
        warm.iter().all(|r| r.compiled == 0),
        "{}: a warm run compiled units",
        program.display()
    );
    let med = |runs: &[Run], f: fn(&Run) -> Duration| {
        let mut d: Vec<Duration> = runs.iter().map(f).collect();
        median(&mut d)
    };
    Ok(Startup {
        warm: med(&warm, |r| r.wall),
        warm_load: med(&warm, |r| r.load),
        uncached: med(&uncached, |r| r.wall),
        uncached_load: med(&uncached, |r| r.load),
    })
}

/// Wall time of a bare `jitcache --version` process: what any new process costs.
fn bare_process(exe: &Path, runs: usize) -> Result<Duration> {
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        let out = Command::new(exe)
            .arg("--version")
            .output()
            .context("running jitcache --version")?;
        times.push(start.elapsed());
        ensure!(out.status.success(), "jitcache --version failed");
    }
    Ok(median(&mut times))
}

/// Sizes and repetitions of target 3.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// Definitions of the Lisp program.
    pub lisp_defs: usize,
    /// Warm runs.
    pub warm_runs: usize,
    /// Runs of the `cranelift_jit` process.
    pub jit_runs: usize,
    /// Runs of `jitcache run --no-cache`.
    pub uncached_runs: usize,
}

/// Writes the Lisp program of `defs` definitions into `dir`.
pub fn write_lisp(dir: &Path, defs: usize) -> Result<PathBuf> {
    let lisp = dir.join(format!("defs{defs}.clj"));
    std::fs::write(&lisp, lisp_program(defs))
        .with_context(|| format!("writing {}", lisp.display()))?;
    Ok(lisp)
}

/// Writes the CLIF program of `functions` functions into `dir`.
pub fn write_clif(dir: &Path, functions: usize) -> Result<PathBuf> {
    let clif = dir.join(format!("functions{functions}.clif"));
    std::fs::write(&clif, clif_program(functions))
        .with_context(|| format!("writing {}", clif.display()))?;
    Ok(clif)
}

/// Medians of `runs` whole processes of `cljit PROGRAM`; checks each printed `expected`.
fn measure_cljit(cljit: &Path, program: &Path, runs: usize, expected: &[u8]) -> Result<Duration> {
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        let out = Command::new(cljit)
            .arg(program)
            .output()
            .with_context(|| format!("running {}", cljit.display()))?;
        times.push(start.elapsed());
        ensure!(
            out.status.success(),
            "{} failed ({}): {}",
            cljit.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
        ensure!(
            out.stdout == expected,
            "the cranelift_jit process printed something else than jitcache run"
        );
    }
    Ok(median(&mut times))
}

/// The rows of target 3: `exe` is `jitcache`, `cljit` the `jitcache-bench-cljit`
/// binary. The Lisp rows, then the CLIF row.
pub fn rows(exe: &Path, cljit: &Path, dir: &Path, plan: &Plan) -> Vec<Row> {
    let mut rows = lisp_rows(exe, cljit, dir, plan);
    rows.push(clif_row(exe, cljit, dir, plan));
    rows
}

/// The CLIF row: warm `jitcache run` of a CLIF program of `plan.lisp_defs` functions
/// (median of `plan.warm_runs`) against `cljit` compiling it in memory (median of
/// `plan.jit_runs`). Both sides exit 0 only when `main` computed the right sum.
fn clif_row(exe: &Path, cljit: &Path, dir: &Path, plan: &Plan) -> Row {
    let name = format!("CLIF {} functions: warm vs cranelift_jit", plan.lisp_defs);
    let (kind, target) = (Ratio::BaselineOverValue, Target::Report);
    let cache = dir.join("cache-clif");
    let warm = (|| -> Result<(PathBuf, Duration, Vec<u8>)> {
        let clif = write_clif(dir, plan.lisp_defs)?;
        let (warm, expected) = warm_median(exe, &cache, &clif, plan.warm_runs)?;
        Ok((clif, warm, expected))
    })();
    let (clif, warm, expected) = match warm {
        Ok(w) => w,
        Err(err) => return Row::skipped(3, name, "ms", kind, target, format!("{err:#}")),
    };
    let jit = measure_cljit(cljit, &clif, plan.jit_runs, &expected);
    let row = Row::new(
        3,
        name,
        "ms",
        (millis(warm), jit.as_ref().map_or(f64::NAN, |d| millis(*d))),
        "cranelift_jit::JITModule in memory, then main",
        kind,
        target,
    )
    .with_sizes(format!(
        "{} functions of a few instructions in one CLIF file (one cache unit), and main calling each; Cranelift opt_level=speed on both sides",
        plan.lisp_defs
    ))
    .with_runs(plan.warm_runs, plan.jit_runs)
    .with_notes("whole processes, spawn to exit".to_owned());
    row.peer_outcome(&jit)
}

/// One warm run of `program`, which must compile nothing and print `expected`.
pub(crate) fn warm_run(exe: &Path, cache: &Path, program: &Path, expected: &[u8]) -> Result<Run> {
    let run = run_once(exe, cache, program, false)?;
    ensure!(
        run.compiled == 0,
        "a warm run compiled {} units",
        run.compiled
    );
    ensure!(run.stdout == expected, "a warm run printed something else");
    Ok(run)
}

/// Runs `program` once cold (filling the cache), then `runs` times warm; returns the
/// median of the warm runs and what the cold run printed. Every warm run must compile
/// nothing and print the same.
pub(crate) fn warm_median(
    exe: &Path,
    cache: &Path,
    program: &Path,
    runs: usize,
) -> Result<(Duration, Vec<u8>)> {
    let cold = run_once(exe, cache, program, false)?;
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        times.push(warm_run(exe, cache, program, &cold.stdout)?.wall);
    }
    Ok((median(&mut times), cold.stdout))
}

/// The Lisp program's rows: warm against `cranelift_jit` and against `--no-cache`.
fn lisp_rows(exe: &Path, cljit: &Path, dir: &Path, plan: &Plan) -> Vec<Row> {
    let jit_name = format!("Lisp {} defs: warm vs cranelift_jit", plan.lisp_defs);
    let uncached_name = format!("Lisp {} defs: warm vs --no-cache", plan.lisp_defs);
    let skipped_all = |why: String| {
        vec![
            Row::skipped(
                3,
                jit_name.clone(),
                "ms",
                Ratio::BaselineOverValue,
                Target::AtLeast(10.0),
                why.clone(),
            ),
            Row::skipped(
                3,
                uncached_name.clone(),
                "ms",
                Ratio::BaselineOverValue,
                Target::Report,
                why,
            ),
        ]
    };
    let lisp = match write_lisp(dir, plan.lisp_defs) {
        Ok(path) => path,
        Err(err) => return skipped_all(format!("{err:#}")),
    };
    let cache = dir.join("cache");
    let s = match measure_program(exe, &cache, &lisp, plan.warm_runs, plan.uncached_runs) {
        Ok(s) => s,
        Err(err) => return skipped_all(format!("{err:#}")),
    };
    let bare = bare_process(exe, 9).ok();
    let expected = match run_once(exe, &cache, &lisp, false) {
        Ok(run) => run.stdout,
        Err(err) => return skipped_all(format!("{err:#}")),
    };
    let jit = measure_cljit(cljit, &lisp, plan.jit_runs, &expected);
    let mut notes = format!(
        "whole processes, spawn to exit; time until main from the warm runs' report {:.2} ms (uncached {:.1} ms)",
        millis(s.warm_load),
        millis(s.uncached_load),
    );
    if let Some(bare) = bare {
        notes.push_str(&format!(
            "; a bare `jitcache --version` process takes {:.2} ms",
            millis(bare)
        ));
    }
    let sizes = format!(
        "{} definitions, each one cache unit; Cranelift opt_level=speed on both sides",
        plan.lisp_defs
    );
    let jit_row = Row::new(
        3,
        jit_name,
        "ms",
        (
            millis(s.warm),
            jit.as_ref().map_or(f64::NAN, |d| millis(*d)),
        ),
        "cranelift_jit::JITModule in memory, then main",
        Ratio::BaselineOverValue,
        Target::AtLeast(10.0),
    )
    .with_sizes(sizes.clone())
    .with_runs(plan.warm_runs, plan.jit_runs)
    .with_notes(notes.clone());
    let jit_row = jit_row.peer_outcome(&jit);
    vec![
        jit_row,
        Row::new(
            3,
            uncached_name,
            "ms",
            (millis(s.warm), millis(s.uncached)),
            "--no-cache: an object per definition, jitcache's linker",
            Ratio::BaselineOverValue,
            Target::Report,
        )
        .with_sizes(sizes)
        .with_runs(plan.warm_runs, plan.uncached_runs),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::programs::{LISP_MIN_DEFS, c_program, write_c_program};
    use jitcache::{Config, JitCache};
    use jitcache_frontends::run::RunOptions;

    #[test]
    fn generated_lisp_program_runs_and_a_warm_run_compiles_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let program = dir.path().join("p.clj");
        std::fs::write(&program, lisp_program(120)).unwrap();
        let cache = JitCache::open(dir.path().join("cache"), Config::default());
        let cold = jitcache_frontends::run::run(&cache, &program, &RunOptions::default()).unwrap();
        assert_eq!(cold.exit, 0);
        assert_eq!(cold.units, 120);
        assert_eq!(cold.compiled.len(), 120);
        drop(cache);
        let cache = JitCache::open(dir.path().join("cache"), Config::default());
        let warm = jitcache_frontends::run::run(&cache, &program, &RunOptions::default()).unwrap();
        assert_eq!(warm.exit, 0);
        assert!(warm.compiled.is_empty(), "{:?}", warm.compiled);
        assert_eq!(warm.disk_hits, 120);
    }

    #[test]
    fn generated_c_program_runs() {
        let dir = tempfile::tempdir().unwrap();
        let program = dir.path().join("c");
        write_c_program(&program, 12).unwrap();
        let cache = JitCache::open(dir.path().join("cache"), Config::default());
        let report =
            jitcache_frontends::run::run(&cache, &program, &RunOptions::default()).unwrap();
        assert_eq!(report.exit, 0);
        assert_eq!(report.units, 12);
    }

    fn lisp_defs(source: &str) -> usize {
        source.matches("(defn ").count()
    }

    #[test]
    fn lisp_program_has_exactly_the_definitions_asked() {
        for defs in [
            LISP_MIN_DEFS,
            8,
            50,
            51,
            52,
            53,
            100,
            103,
            104,
            999,
            1000,
            1001,
        ] {
            assert_eq!(lisp_defs(&lisp_program(defs)), defs, "defs = {defs}");
        }
        assert_eq!(lisp_defs(&lisp_program(1)), LISP_MIN_DEFS);
    }

    #[test]
    fn programs_are_deterministic() {
        assert_eq!(lisp_program(300), lisp_program(300));
        assert_eq!(c_program(30), c_program(30));
    }

    #[test]
    fn c_program_has_the_units_asked_and_a_header() {
        let files = c_program(200);
        let c_files = files.iter().filter(|(n, _)| n.ends_with(".c")).count();
        assert_eq!(c_files, 200);
        assert!(files.iter().any(|(n, _)| n == "units.h"));
        let main = &files.iter().find(|(n, _)| n == "main.c").unwrap().1;
        assert_eq!(main.matches("sum = sum * 7u + u").count(), 199);
    }
}
