//! The `jitcache` command-line tool: run programs through the cache, run objects
//! in-process, and administer a cache directory. The binary is [`main`]; each subcommand
//! lives in its own module.
//!
//! The library exists for the binary and for [`child`], which runs `jitcache run` in a
//! child process as the demo and the start-up benchmarks do.

#![forbid(unsafe_code)]

mod admin;
pub mod child;
mod demo;
mod exec;
mod progress;
mod run;
mod size;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// jitcache: a persistent cache of compiled machine code for language JITs.
#[derive(Parser, Debug)]
#[command(name = "jitcache", version, about)]
pub struct Cli {
    /// Cache directory (default: $JITCACHE_DIR, else $XDG_CACHE_HOME/jitcache, else
    /// ~/.cache/jitcache).
    #[arg(long, global = true, env = "JITCACHE_DIR", value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Print every report as JSON on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    /// A remote tier shared by a fleet: `s3://bucket/prefix?endpoint=URL&region=R&mode=ro|rw`
    /// (credentials from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY; see docs/remote.md).
    #[arg(long, global = true, env = "JITCACHE_REMOTE", value_name = "URL")]
    pub remote: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Print the key of a unit as 64 hex digits.
    Key(admin::KeyArgs),
    /// Store a file's bytes under a key.
    Put(admin::PutArgs),
    /// Write the bytes stored under a key (exit status 1 on a miss).
    Get(admin::GetArgs),
    /// Show what the cache holds and how it has been used.
    Stats,
    /// List the entries.
    Ls,
    /// Evict least recently used entries down to a size; remove orphaned blobs.
    Gc(admin::GcArgs),
    /// Check every blob against its hash (exit status 1 if anything is damaged).
    Verify(admin::VerifyArgs),
    /// Remove every entry and blob.
    Clear,
    /// Run a Lisp (.clj), C (.c or a directory) or CLIF (.clif) program through the cache.
    Run(run::RunArgs),
    /// Link relocatable objects in-process and call their entry point.
    Exec(exec::ExecArgs),
    /// Show a cold and a cached run, with timings.
    Demo(demo::DemoArgs),
}

/// The cache directory: `--cache-dir`, else `$JITCACHE_DIR` (both through clap), else
/// `$XDG_CACHE_HOME/jitcache`, else `~/.cache/jitcache`.
pub fn cache_dir(cli: &Cli) -> Result<PathBuf> {
    if let Some(dir) = &cli.cache_dir {
        return Ok(dir.clone());
    }
    let nonempty = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(xdg) = nonempty("XDG_CACHE_HOME") {
        return Ok(PathBuf::from(xdg).join("jitcache"));
    }
    if let Some(home) = nonempty("HOME") {
        return Ok(PathBuf::from(home).join(".cache").join("jitcache"));
    }
    anyhow::bail!(
        "no cache directory: pass --cache-dir, or set JITCACHE_DIR, XDG_CACHE_HOME or HOME"
    )
}

/// The remote tier of `--remote` / `$JITCACHE_REMOTE`, with credentials and the signing
/// secret from the environment. A remote that cannot be used is a warning, never an
/// error: the cache works without it.
fn remote_config(cli: &Cli) -> Option<jitcache_remote::RemoteConfig> {
    let url = cli.remote.as_deref().filter(|u| !u.trim().is_empty())?;
    match jitcache_remote::RemoteConfig::from_env(url) {
        Ok(config) => Some(config),
        Err(err) => {
            eprintln!("jitcache: warning: {err}; going on without the remote");
            None
        }
    }
}

/// Where `demo` puts its programs and caches: `keep` if given (created), else a temporary
/// directory removed when the returned guard drops.
pub fn work_dir(keep: Option<&std::path::Path>) -> Result<(Option<tempfile::TempDir>, PathBuf)> {
    use anyhow::Context;
    match keep {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            Ok((None, dir.to_path_buf()))
        }
        None => {
            let temp = tempfile::tempdir().context("creating a temporary directory")?;
            let path = temp.path().to_path_buf();
            Ok((Some(temp), path))
        }
    }
}

fn run(cli: &Cli) -> Result<ExitCode> {
    let json = cli.json;
    match &cli.command {
        Command::Key(args) => admin::key(args, json),
        Command::Put(args) => admin::put(&cache_dir(cli)?, args, json),
        Command::Get(args) => admin::get(&cache_dir(cli)?, args),
        Command::Stats => admin::stats(&cache_dir(cli)?, remote_config(cli).as_ref(), json),
        Command::Ls => admin::ls(&cache_dir(cli)?, json),
        Command::Gc(args) => admin::gc(&cache_dir(cli)?, args, json),
        Command::Verify(args) => admin::verify(&cache_dir(cli)?, args, json),
        Command::Clear => admin::clear(&cache_dir(cli)?, json),
        Command::Run(args) => run::run(&cache_dir(cli)?, args, remote_config(cli), json),
        Command::Exec(args) => exec::exec(args),
        Command::Demo(args) => demo::demo(args, json),
    }
}

/// Parses the command line, runs the command and turns its outcome into an exit status:
/// errors are one line on stderr and exit status 2.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) if !err.use_stderr() => {
            // --help and --version: clap's own output, success.
            let _ = err.print();
            return ExitCode::SUCCESS;
        }
        Err(err) => {
            // A usage error: one line, like every other error.
            let text = err.kind().to_string();
            let rendered = err.render().to_string();
            let line = rendered
                .lines()
                .find(|l| !l.trim().is_empty())
                .map(|l| l.trim_start_matches("error: ").to_owned())
                .unwrap_or(text);
            eprintln!("jitcache: {line} (see jitcache --help)");
            return ExitCode::from(2);
        }
    };
    match run(&cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("jitcache: {err:#}");
            ExitCode::from(2)
        }
    }
}
