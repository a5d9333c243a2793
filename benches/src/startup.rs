//! Target 2: start-up of a program in a new process, warm cache against no cache.
//!
//! Each run is a whole `jitcache --json run PROGRAM` process (wall time from spawn to
//! exit, median of several); the in-process time until `main` (frontend, compiles,
//! reads and links, from the run's JSON report) is reported alongside.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};

use jitcache_cli::child::{Run, run_once};

use crate::measure::{median, millis};
use crate::programs::{lisp_program, write_c_program};
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

/// Sizes and repetitions of target 2.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// Definitions of the Lisp program.
    pub lisp_defs: usize,
    /// Files of the C program.
    pub c_units: usize,
    /// Warm runs per program.
    pub warm_runs: usize,
    /// Uncached runs of the Lisp program.
    pub lisp_uncached_runs: usize,
    /// Uncached runs of the C program (each compiles every file).
    pub c_uncached_runs: usize,
}

/// The generated programs in `dir`: the Lisp file and the C directory.
pub fn write_programs(dir: &Path, plan: &Plan) -> Result<(PathBuf, PathBuf)> {
    let lisp = dir.join(format!("defs{}.clj", plan.lisp_defs));
    std::fs::write(&lisp, lisp_program(plan.lisp_defs))
        .with_context(|| format!("writing {}", lisp.display()))?;
    let c = dir.join(format!("c{}", plan.c_units));
    write_c_program(&c, plan.c_units).with_context(|| format!("writing {}", c.display()))?;
    Ok((lisp, c))
}

/// The rows of target 2.
pub fn rows(exe: &Path, dir: &Path, plan: &Plan) -> Vec<Row> {
    let lisp_name = format!("Lisp {} defs: start-up, warm vs no cache", plan.lisp_defs);
    let c_name = format!("C {} files: start-up, warm vs no cache", plan.c_units);
    let (lisp, c) = match write_programs(dir, plan) {
        Ok(paths) => paths,
        Err(err) => {
            let why = format!("{err:#}");
            return vec![
                skipped(lisp_name, Target::AtLeast(10.0), why.clone()),
                skipped(c_name, Target::AtLeast(500.0), why),
            ];
        }
    };
    let bare = bare_process(exe, 9).ok();
    let cache = dir.join("cache");
    let one = |name: String, program: &Path, uncached_runs: usize, target: f64, compiler: &str| {
        match measure_program(exe, &cache, program, plan.warm_runs, uncached_runs) {
            Ok(s) => {
                let mut notes = format!(
                    "whole processes, medians of {} warm and {uncached_runs} uncached runs ({compiler} without the cache); time until main from the run's report: warm {:.2} ms, uncached {:.1} ms ({:.0}×)",
                    plan.warm_runs,
                    millis(s.warm_load),
                    millis(s.uncached_load),
                    s.uncached_load.as_secs_f64() / s.warm_load.as_secs_f64().max(1e-9),
                );
                if let Some(bare) = bare {
                    notes.push_str(&format!(
                        "; a bare `jitcache --version` process takes {:.2} ms",
                        millis(bare)
                    ));
                }
                Row::new(
                    2,
                    name,
                    "ms",
                    (millis(s.warm), millis(s.uncached)),
                    "--no-cache",
                    Ratio::BaselineOverValue,
                    Target::AtLeast(target),
                )
                .with_notes(notes)
            }
            Err(err) => skipped(name, Target::AtLeast(target), format!("{err:#}")),
        }
    };
    vec![
        one(lisp_name, &lisp, plan.lisp_uncached_runs, 10.0, "Cranelift"),
        one(c_name, &c, plan.c_uncached_runs, 500.0, "cc"),
    ]
}

fn skipped(name: String, target: Target, why: String) -> Row {
    Row::skipped(2, name, "ms", Ratio::BaselineOverValue, target, why)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::programs::{LISP_MIN_DEFS, c_program};
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
