//! `jitcache run`: run a Lisp, C or CLIF program through the cache.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use jitcache::{Config, JitCache};
use jitcache_frontends::run::{RunOptions, RunReport};
use serde_json::json;

/// Arguments of `jitcache run`.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// The program: a `.clj`/`.lisp`, `.c` or `.clif` file, or a directory of `.c` files.
    pub program: PathBuf,
    /// Compile every unit, neither reading nor writing the cache: the cache directory and
    /// the remote tier (--cache-dir, --remote) are bypassed.
    #[arg(long)]
    pub no_cache: bool,
    /// Print on stderr why each compiled unit missed.
    #[arg(long)]
    pub explain: bool,
    /// Print on stderr where the time went.
    #[arg(long)]
    pub timings: bool,
    /// Arguments passed to the program.
    #[arg(last = true)]
    pub args: Vec<String>,
}

/// Runs `jitcache run`: program output on stdout, reports on stderr, the program's exit
/// status as ours.
pub fn run(
    dir: &std::path::Path,
    args: &RunArgs,
    remote: Option<jitcache_remote::RemoteConfig>,
    json: bool,
) -> Result<ExitCode> {
    let config = Config {
        persistent: !args.no_cache,
        remote,
        ..Config::default()
    };
    let cache = JitCache::open(dir, config);
    let options = RunOptions {
        args: args.args.clone(),
        ..RunOptions::default()
    };
    let report = jitcache_frontends::run::run(&cache, &args.program, &options)?;
    // Uploads run in the background: wait for them (bounded) so the report counts them.
    cache.finish_uploads(REMOTE_DRAIN);
    let remote = cache.stats().remote;
    drop(cache);
    if args.explain {
        for (unit, reason) in &report.compiled {
            eprintln!("jitcache: compiled {unit}: {reason}");
        }
    }
    if args.timings {
        print_timings(&report);
        if let Some(remote) = &remote {
            print_remote(remote);
        }
    }
    if json {
        let mut value = report_json(&report);
        value["remote"] = remote.as_ref().map_or(serde_json::Value::Null, remote_json);
        eprintln!("{value}");
    }
    Ok(ExitCode::from((report.exit & 0xff) as u8))
}

/// How long `run` waits for queued uploads before it exits (the remote's own drop waits
/// as long again at most, for anything queued later).
const REMOTE_DRAIN: std::time::Duration = std::time::Duration::from_secs(2);

/// The remote counters as a JSON object (`{"hits": .., "bytes_up": .., ...}`).
pub fn remote_json(stats: &jitcache_remote::RemoteStats) -> serde_json::Value {
    stats
        .fields()
        .into_iter()
        .map(|(name, value)| (name.to_owned(), json!(value)))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

fn print_remote(r: &jitcache_remote::RemoteStats) {
    eprintln!(
        "jitcache: remote: {} hits, {} misses ({} errors, {} timeouts, {} rejected, {} skipped), {} uploads, {} B down, {} B up",
        r.hits,
        r.misses,
        r.errors,
        r.timeouts,
        r.rejected,
        r.breaker_skips,
        r.uploads,
        r.bytes_down,
        r.bytes_up
    );
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn print_timings(r: &RunReport) {
    eprintln!(
        "jitcache: {} units: {} compiled, {} from disk, {} from the remote, {} from memory",
        r.units,
        r.compiled.len(),
        r.disk_hits,
        r.remote_hits,
        r.memory_hits
    );
    eprintln!(
        "jitcache: frontend {:.2} ms, compile {:.2} ms, load {:.2} ms, run {:.2} ms",
        ms(r.frontend_time),
        ms(r.compile_time),
        ms(r.load_time),
        ms(r.run_time)
    );
}

/// The final JSON object of a run (`--json`).
pub fn report_json(r: &RunReport) -> serde_json::Value {
    json!({
        "units": r.units,
        "compiled": r.compiled.len(),
        "memory_hits": r.memory_hits,
        "disk_hits": r.disk_hits,
        "remote_hits": r.remote_hits,
        "frontend_ms": ms(r.frontend_time),
        "compile_ms": ms(r.compile_time),
        "load_ms": ms(r.load_time),
        "run_ms": ms(r.run_time),
        "exit": r.exit,
        "bypassed": r.bypassed,
        "explain": r.compiled.iter().map(|(u, why)| json!({"unit": u, "reason": why.to_string()})).collect::<Vec<_>>(),
    })
}
