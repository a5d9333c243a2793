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
    /// The program: a `.clj`/`.lisp`, `.c`/`.cc`/`.cpp`/`.cxx` or `.clif` file, or a
    /// directory of C and C++ sources.
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
    /// C and C++ programs: add DIR to the include search path (a relative DIR is relative
    /// to the current directory).
    #[arg(short = 'I', value_name = "DIR")]
    pub include: Vec<String>,
    /// C and C++ programs: define a macro, `NAME` or `NAME=VALUE`.
    #[arg(short = 'D', value_name = "NAME[=VALUE]")]
    pub define: Vec<String>,
    /// C and C++ programs: the optimisation level (`0`, `1`, `2`, `3`, `s`, `z`, `g`).
    #[arg(short = 'O', value_name = "LEVEL")]
    pub opt: Option<String>,
    /// C and C++ programs: the language standard (`c11`, `gnu17`, `c++20`, ...).
    #[arg(long = "std", value_name = "STD")]
    pub std: Option<String>,
    /// C and C++ programs: any other compiler flag, as is (repeatable):
    /// `--cc-flag=-Wall --cc-flag=-march=native`.
    #[arg(long = "cc-flag", value_name = "FLAG", allow_hyphen_values = true)]
    pub cc_flags: Vec<String>,
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
        // Off: the program may end the process with exit() before the cache drops
        // (see `Config::background_writes`).
        background_writes: false,
        ..Config::default()
    };
    let cache = JitCache::open(dir, config);
    let options = RunOptions {
        args: args.args.clone(),
        cflags: Some(compiler_flags("CFLAGS", args)),
        cxxflags: Some(compiler_flags("CXXFLAGS", args)),
        cc: env_path("CC"),
        cxx: env_path("CXX"),
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

/// The flags of a C (`CFLAGS`) or C++ (`CXXFLAGS`) compile: the variable's words (else
/// `-O2`), `-fPIC` (the linker maps code anywhere), then the command line's `-I`, `-D`,
/// `-O`, `--std` and `--cc-flag`s, in that order, so a later flag overrides the
/// environment's.
fn compiler_flags(var: &str, args: &RunArgs) -> Vec<String> {
    let mut flags: Vec<String> = match std::env::var(var) {
        Ok(words) if !words.trim().is_empty() => {
            words.split_whitespace().map(str::to_owned).collect()
        }
        _ => vec!["-O2".to_owned()],
    };
    flags.push("-fPIC".to_owned());
    // Compiles run in the program's directory: an include directory given relative to
    // the current one is made absolute (the backend writes it relative to the program's
    // directory in keys, when it is inside it).
    flags.extend(args.include.iter().map(|dir| {
        let dir = std::path::absolute(dir).unwrap_or_else(|_| PathBuf::from(dir));
        format!("-I{}", dir.display())
    }));
    flags.extend(args.define.iter().map(|def| format!("-D{def}")));
    flags.extend(args.opt.iter().map(|level| format!("-O{level}")));
    flags.extend(args.std.iter().map(|std| format!("-std={std}")));
    flags.extend(args.cc_flags.iter().cloned());
    flags
}

/// A compiler named by an environment variable (`CC`, `CXX`), if set and not empty.
fn env_path(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// How long `run` waits at most for queued uploads before it exits (the remote's own drop
/// waits as long again at most, for anything queued later). Uploads of a small program
/// take milliseconds; the bound is for a slow or overloaded bucket.
const REMOTE_DRAIN: std::time::Duration = std::time::Duration::from_secs(10);

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
