//! `jitcache-bench`: the report of the performance targets. Runs every comparison in
//! one run and prints, for each, the figure, its baseline measured in the same run, the
//! ratio, the target and whether it is met (`--json`: one object per comparison).

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};

use clap::Parser;
use jitcache_bench::report::{self, Row};
use jitcache_bench::{concurrency, exe, hit, maintenance, memory, scale, startup};

/// Measures jitcache's performance targets, each against a baseline measured in the same
/// run.
#[derive(Parser, Debug)]
#[command(name = "jitcache-bench", version, about)]
struct BenchArgs {
    /// Print the rows as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Smaller sizes and fewer repetitions (a minute or so rather than several).
    #[arg(long)]
    quick: bool,
    /// Run only these targets (1 hit, 2 start-up, 3 scale, 4 concurrency, 5 memory,
    /// 6 maintenance).
    #[arg(long, value_delimiter = ',', value_name = "N,...")]
    only: Vec<u8>,
    /// Work in this directory (kept afterwards) instead of a temporary one.
    #[arg(long, value_name = "DIR")]
    keep: Option<PathBuf>,
}

/// Sizes and repetitions of one bench run.
#[derive(Clone, Copy, Debug)]
struct Plan {
    hit_rounds: usize,
    startup: startup::Plan,
    scale: scale::Plan,
    concurrency: concurrency::Plan,
    memory_units: usize,
    maintenance: maintenance::Plan,
}

impl Plan {
    fn new(quick: bool) -> Plan {
        let startup = startup::Plan {
            lisp_defs: 1000,
            c_units: 200,
            warm_runs: if quick { 3 } else { 9 },
            lisp_uncached_runs: if quick { 1 } else { 5 },
            c_uncached_runs: if quick { 1 } else { 3 },
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
            hit_rounds: if quick { 300 } else { 2000 },
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
        rows.extend(hit::rows(&dir, plan.hit_rounds));
    }
    if wanted(2) {
        let dir = section(2, "start-up in new processes, warm vs no cache")?;
        rows.extend(startup::rows(&jitcache, &dir, &plan.startup));
    }
    if wanted(3) {
        let dir = section(3, "scale: hit latency, iteration memory, gc")?;
        rows.extend(scale::rows(&worker, &dir, &plan.scale));
    }
    if wanted(4) {
        let dir = section(4, "concurrency: 2, 4, 8 processes")?;
        rows.extend(concurrency::rows(&worker, &dir, &plan.concurrency));
    }
    if wanted(5) {
        section(5, "memory per loaded unit")?;
        rows.extend(memory::rows(plan.memory_units));
    }

    if wanted(6) {
        let dir = section(6, "maintenance: gc and verify vs 8 JIT processes")?;
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
    Ok(ExitCode::SUCCESS)
}
