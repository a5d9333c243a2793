//! `jitcache-bench`: the report of the performance targets. Runs every comparison in
//! one run and prints, for each, the figure, its baseline measured in the same run, the
//! ratio, the target and whether it is met (`--json`: one object per comparison).
//! Exits 1 when a target is missed (see [`report::Row::fails`]), 2 when the bench
//! itself fails.

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};

use clap::Parser;
use jitcache_bench::report::{self, Row};
use jitcache_bench::{concurrency, cstart, exe, hit, llvm, maintenance, memory, scale, startup};

/// Measures jitcache's performance targets, each against a baseline measured in the same
/// run.
#[derive(Parser, Debug)]
#[command(name = "jitcache-bench", version, about)]
struct BenchArgs {
    /// Print the rows as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Smaller sizes and fewer repetitions (about three minutes here rather than about
    /// ten; most of the difference is target 5 at 1,000,000 entries).
    #[arg(long)]
    quick: bool,
    /// Run only these targets (1 hit, 2 C start-up, 3 Lisp start-up, 4 loading against
    /// LLVM's LLJIT, 5 scale and memory, 6 concurrency, with gc and verify running too).
    #[arg(long, value_delimiter = ',', value_name = "N,...")]
    only: Vec<u8>,
    /// Work in this directory (kept afterwards) instead of a temporary one.
    #[arg(long, value_name = "DIR")]
    keep: Option<PathBuf>,
}

/// Sizes and repetitions of one bench run.
#[derive(Clone, Copy, Debug)]
struct Plan {
    hit: hit::Plan,
    cstart: cstart::Plan,
    startup: startup::Plan,
    scale: scale::Plan,
    concurrency: concurrency::Plan,
    memory_units: usize,
    maintenance: maintenance::Plan,
    /// Rounds of target 4's comparisons.
    llvm_rounds: usize,
}

impl Plan {
    fn new(quick: bool) -> Plan {
        let cstart = cstart::Plan {
            units: 200,
            runs: if quick { 5 } else { 11 },
            ccache_runs: if quick { 3 } else { 5 },
            uncached_runs: if quick { 1 } else { 3 },
        };
        let startup = startup::Plan {
            lisp_defs: 1000,
            warm_runs: if quick { 5 } else { 11 },
            jit_runs: if quick { 3 } else { 7 },
            uncached_runs: if quick { 1 } else { 3 },
        };
        let scale = scale::Plan {
            small: 1000,
            big: if quick { 100_000 } else { 1_000_000 },
            hit_rounds: if quick { 5_000 } else { 20_000 },
            gc_entries: if quick { 10_000 } else { 100_000 },
        };
        let concurrency = concurrency::Plan {
            duration: Duration::from_millis(if quick { 1000 } else { 2000 }),
            repeats: if quick { 1 } else { 3 },
            keys: 2000,
            put_every: 10,
        };
        Plan {
            hit: hit::Plan {
                burst_rounds: if quick { 40 } else { 200 },
                fresh_rounds: if quick { 300 } else { 2000 },
                isolated_rounds: if quick { 60 } else { 300 },
            },
            cstart,
            startup,
            scale,
            concurrency,
            memory_units: 1000,
            maintenance: maintenance::Plan {
                entries: if quick { 10_000 } else { 100_000 },
                procs: 8,
                duration: Duration::from_millis(if quick { 1500 } else { 5000 }),
                compile_every: 20,
                units: 1000,
            },
            llvm_rounds: if quick {
                llvm::QUICK_ROUNDS
            } else {
                llvm::ROUNDS
            },
        }
    }
}

fn main() -> ExitCode {
    let args = BenchArgs::parse();
    match bench(&args) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("jitcache-bench: {err:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs the targets `args` asks for and prints the report.
fn bench(args: &BenchArgs) -> Result<ExitCode> {
    let json = args.json;
    let (_temp, root) = jitcache_cli::work_dir(args.keep.as_deref())?;
    let root: &Path = &root;
    let jitcache = exe::workspace_binary("jitcache-cli", "jitcache")?;
    let worker = exe::workspace_binary("jitcache-bench", "jitcache-bench-worker")?;
    let cljit = exe::workspace_binary("jitcache-bench", "jitcache-bench-cljit")?;
    let plan = Plan::new(args.quick);
    let wanted = |n: u8| args.only.is_empty() || args.only.contains(&n);
    let section = |n: u8, what: &str| -> Result<PathBuf> {
        eprintln!("jitcache-bench: target {n}: {what}");
        let dir = root.join(format!("target{n}"));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(dir)
    };

    let mut rows: Vec<Row> = Vec::new();
    if wanted(1) {
        let dir = section(1, "persistent hit vs floor and dlopen")?;
        rows.extend(hit::rows(&dir, &plan.hit));
    }
    if wanted(2) {
        let dir = section(
            2,
            "C start-up: warm jitcache run vs .so, ccache, native, build",
        )?;
        rows.extend(cstart::rows(&jitcache, &dir, &plan.cstart));
    }
    if wanted(3) {
        let dir = section(3, "Lisp start-up: warm jitcache run vs cranelift_jit")?;
        rows.extend(startup::rows(&jitcache, &cljit, &dir, &plan.startup));
    }
    if wanted(4) {
        let dir = section(4, "loading objects: jitcache vs LLVM's LLJIT")?;
        rows.extend(llvm::rows(&dir, plan.llvm_rounds));
    }
    if wanted(5) {
        let dir = section(
            5,
            "scale: hit latency, iteration memory, gc; memory per unit",
        )?;
        rows.extend(scale::rows(&worker, &dir, &plan.scale));
        rows.extend(memory::rows(plan.memory_units));
    }
    if wanted(6) {
        let dir = section(6, "concurrency: 2, 4, 8 processes")?;
        rows.extend(
            concurrency::rows(&worker, &dir, &plan.concurrency)
                .into_iter()
                .map(|r| r.in_group(6)),
        );
    }

    if wanted(6) {
        let dir = section(6, "maintenance: gc and verify vs 8 JIT processes")?.join("maintenance");
        rows.extend(maintenance::rows(&worker, &dir, &plan.maintenance));
    }

    if json {
        println!("{}", report::to_json(&rows));
    } else {
        println!(
            "jitcache-bench{}: every ratio is measured in this run ({} CPUs)\n",
            if args.quick { " --quick" } else { "" },
            std::thread::available_parallelism().map_or(1, |n| n.get())
        );
        print!("{}", report::table(&rows));
    }
    let ci = report::under_ci();
    let failing = report::failures(&rows, ci);
    if failing.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    let names: Vec<&str> = failing.iter().map(|r| r.name.as_str()).collect();
    eprintln!(
        "jitcache-bench: {} of {} comparisons missed their target{}: {}",
        failing.len(),
        rows.len(),
        if ci {
            " (under CI, rows not run count)"
        } else {
            ""
        },
        names.join("; ")
    );
    Ok(ExitCode::from(1))
}
