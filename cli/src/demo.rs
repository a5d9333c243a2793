//! `jitcache demo`: runs the bundled example programs (a Lisp program of a few hundred
//! definitions, compiled by Cranelift, and a C program of several files, compiled by the
//! system compiler) three times each, every time in a new process: on an empty cache, on
//! the warm cache, and with the cache bypassed. Prints what loading cost each time.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::child::run_once;
use serde_json::{Value, json};

/// Arguments of `jitcache demo`.
#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Keep the demo's cache and programs in this directory instead of a temporary one.
    #[arg(long, value_name = "DIR")]
    pub keep: Option<PathBuf>,
}

/// The bundled programs, embedded so the demo runs from any directory.
const LISP_DEMO: &str = include_str!("../../examples/lisp/demo.clj");
const C_DEMO: &[(&str, &str)] = &[
    ("demo.h", include_str!("../../examples/c/demo.h")),
    ("main.c", include_str!("../../examples/c/main.c")),
    ("matrix.c", include_str!("../../examples/c/matrix.c")),
    ("numeric.c", include_str!("../../examples/c/numeric.c")),
    ("primes.c", include_str!("../../examples/c/primes.c")),
    ("sort.c", include_str!("../../examples/c/sort.c")),
    ("text.c", include_str!("../../examples/c/text.c")),
];

fn fmt_ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1e3;
    if ms < 10.0 {
        format!("{ms:.2} ms")
    } else {
        format!("{ms:.0} ms")
    }
}

/// Runs the demo.
pub fn demo(args: &DemoArgs, json_out: bool) -> Result<ExitCode> {
    let (_temp, root) = super::work_dir(args.keep.as_deref())?;
    let root: &Path = &root;
    let cache = root.join("cache");
    let lisp = root.join("demo.clj");
    std::fs::write(&lisp, LISP_DEMO).with_context(|| format!("writing {}", lisp.display()))?;
    let c_dir = root.join("c-demo");
    std::fs::create_dir_all(&c_dir).with_context(|| format!("creating {}", c_dir.display()))?;
    for (name, text) in C_DEMO {
        std::fs::write(c_dir.join(name), text)
            .with_context(|| format!("writing {}", c_dir.join(name).display()))?;
    }
    let exe = std::env::current_exe().context("locating the jitcache executable")?;

    let mut rows = Vec::new();
    for (label, program) in [("Lisp (Cranelift)", &lisp), ("C (cc)", &c_dir)] {
        let cold = run_once(&exe, &cache, program, false)?;
        let warm = run_once(&exe, &cache, program, false)?;
        let uncached = run_once(&exe, &cache, program, true)?;
        anyhow::ensure!(
            cold.stdout == warm.stdout && warm.stdout == uncached.stdout,
            "{label}: the cached run printed something else than the uncached one"
        );
        anyhow::ensure!(
            warm.compiled == 0,
            "{label}: the warm run compiled {} units",
            warm.compiled
        );
        rows.push((label, cold, warm, uncached));
    }

    if json_out {
        let rows: Vec<Value> = rows
            .iter()
            .map(|(label, cold, warm, uncached)| {
                let ms = |d: Duration| d.as_secs_f64() * 1e3;
                json!({
                    "program": label,
                    "units": cold.units,
                    "initial_load_ms": ms(cold.load),
                    "reload_cached_ms": ms(warm.load),
                    "reload_uncached_ms": ms(uncached.load),
                    "speedup": uncached.load.as_secs_f64() / warm.load.as_secs_f64().max(1e-9),
                    "process_ms": { "cold": ms(cold.wall), "warm": ms(warm.wall), "uncached": ms(uncached.wall) },
                })
            })
            .collect();
        println!("{}", Value::Array(rows));
        return Ok(ExitCode::SUCCESS);
    }
    println!("Each run is a new process; 'load' is the time until main is called.");
    println!(
        "{:<18} {:>6} {:>14} {:>14} {:>16} {:>9}",
        "program", "units", "initial load", "reload cached", "reload uncached", "speedup"
    );
    for (label, cold, warm, uncached) in &rows {
        println!(
            "{:<18} {:>6} {:>14} {:>14} {:>16} {:>8.0}x",
            label,
            cold.units,
            fmt_ms(cold.load),
            fmt_ms(warm.load),
            fmt_ms(uncached.load),
            uncached.load.as_secs_f64() / warm.load.as_secs_f64().max(1e-9)
        );
    }
    println!();
    println!("Whole processes (start, load, run, exit):");
    for (label, cold, warm, uncached) in &rows {
        println!(
            "{:<18} cold {:>10}   warm {:>10}   uncached {:>10}",
            label,
            fmt_ms(cold.wall),
            fmt_ms(warm.wall),
            fmt_ms(uncached.wall)
        );
    }
    if args.keep.is_some() {
        println!();
        println!("Cache kept in {}", cache.display());
    }
    Ok(ExitCode::SUCCESS)
}
