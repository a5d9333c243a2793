//! `jitcache bench`: runs every comparison of the performance targets in one run and
//! prints, for each, the figure, its baseline measured in the same run, the ratio, the
//! target and whether it is met (`--json`: one object per comparison).
//!
//! | target | module | compares |
//! | --- | --- | --- |
//! | 1 | `hit` | an in-process persistent hit with the floor and with `dlopen` |
//! | 2 | `startup` | new processes of `jitcache run`, warm cache against no cache |
//! | 3 | `scale` | hit latency with many entries against few; gc; memory while iterating |
//! | 4 | `concurrency` | 2, 4, 8 processes of mixed hits and puts |
//! | 5 | `memory` | bytes mapped per loaded small unit |
//!
//! Where a target is about processes the bench spawns itself (`--worker`, hidden) or
//! `jitcache run`.

mod concurrency;
mod hit;
mod measure;
mod memory;
mod programs;
mod report;
mod scale;
pub(super) mod startup;
mod worker;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};

use report::Row;

/// Arguments of `jitcache bench`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Smaller sizes and fewer repetitions (a minute or so rather than several).
    #[arg(long)]
    pub quick: bool,
    /// Run only these targets (1 hit, 2 start-up, 3 scale, 4 concurrency, 5 memory).
    #[arg(long, value_delimiter = ',', value_name = "N,...")]
    pub only: Vec<u8>,
    /// Work in this directory (kept afterwards) instead of a temporary one.
    #[arg(long, value_name = "DIR")]
    pub keep: Option<PathBuf>,
    /// Play a child process of the bench (internal).
    #[arg(long, hide = true, value_name = "SPEC")]
    pub worker: Option<String>,
}

/// Sizes and repetitions of one bench run.
#[derive(Clone, Copy, Debug)]
struct Plan {
    hit_rounds: usize,
    startup: startup::Plan,
    scale: scale::Plan,
    concurrency: concurrency::Plan,
    memory_units: usize,
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
        }
    }
}

/// Runs `jitcache bench`.
pub fn bench(args: &BenchArgs, json: bool) -> Result<ExitCode> {
    if let Some(spec) = &args.worker {
        worker::main(spec)?;
        return Ok(ExitCode::SUCCESS);
    }
    let (_temp, root) = super::work_dir(args.keep.as_deref())?;
    let root: &Path = &root;
    let exe = std::env::current_exe().context("locating the jitcache executable")?;
    let plan = Plan::new(args.quick);
    let wanted = |n: u8| args.only.is_empty() || args.only.contains(&n);
    let section = |n: u8, what: &str| -> Result<PathBuf> {
        eprintln!("jitcache bench: target {n}: {what}");
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
        rows.extend(startup::rows(&exe, &dir, &plan.startup));
    }
    if wanted(3) {
        let dir = section(3, "scale: hit latency, iteration memory, gc")?;
        rows.extend(scale::rows(&exe, &dir, &plan.scale));
    }
    if wanted(4) {
        let dir = section(4, "concurrency: 2, 4, 8 processes")?;
        rows.extend(concurrency::rows(&exe, &dir, &plan.concurrency));
    }
    if wanted(5) {
        section(5, "memory per loaded unit")?;
        rows.extend(memory::rows(plan.memory_units));
    }

    if json {
        println!("{}", report::to_json(&rows));
    } else {
        println!(
            "jitcache bench{}: every ratio is measured in this run ({} CPUs)\n",
            if args.quick { " --quick" } else { "" },
            std::thread::available_parallelism().map_or(1, |n| n.get())
        );
        print!("{}", report::table(&rows));
    }
    Ok(ExitCode::SUCCESS)
}
