//! The `jitcache` command-line tool: run programs through the cache, run objects
//! in-process, and administer a cache directory. The binary is [`main`]; each subcommand
//! lives in its own module.
//!
//! The library exists for the binary and for the benchmark report (`cargo run --release
//! -p jitcache-bench`), which reuses [`child`] (`jitcache run` in a child process, as the
//! demo runs it) and [`work_dir`].
//!
//! # Global options
//!
//! `--cache-dir`, `--json` and `--remote` are accepted before or after the subcommand,
//! and each command either honours one or refuses it: given on the command line to a
//! command that does not use it, an option is a usage error (one line, exit status 2),
//! never silently ignored. Values from the environment (`JITCACHE_DIR`,
//! `JITCACHE_REMOTE`) are ambient: used by the commands that use the option, ignored by
//! the others. [`GLOBAL_OPTIONS_HELP`] is the table of who uses what, shown by
//! `jitcache --help`; `run --no-cache` accepts `--cache-dir` and `--remote` and bypasses
//! both, so that a script turns caching off with one flag.

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
use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};

/// Which command uses which global option, as `jitcache --help` shows it.
pub const GLOBAL_OPTIONS_HELP: &str = "\
Global options: a command honours each of --cache-dir, --json and --remote or refuses it.
Given on the command line to a command that does not use it, an option is a usage error
(exit status 2); values from JITCACHE_DIR and JITCACHE_REMOTE are used where the option
is and ignored elsewhere.

  command                   --cache-dir  --json  --remote
  key                       -            yes     -
  put                       yes          yes     yes: uploads (mode=rw) and waits for it
  get                       yes          -       yes: read after a local miss, kept locally
  stats                     yes          yes     yes: shows it, its breaker and counters
  ls, gc, verify, clear     yes          yes     -
  max-size                  yes          yes     -
  run                       yes          yes     yes
  exec                      -            -       -
  demo                      -            yes     -

run --no-cache takes --cache-dir and --remote and uses neither. A put whose upload fails
is a warning, not an error: the entry is stored locally.";

/// jitcache: a persistent cache of compiled machine code for language JITs.
#[derive(Parser, Debug)]
#[command(name = "jitcache", version, about, after_help = GLOBAL_OPTIONS_HELP)]
pub struct Cli {
    /// Cache directory (default: $JITCACHE_DIR, else $XDG_CACHE_HOME/jitcache, else
    /// ~/.cache/jitcache). Not used by key, exec and demo.
    #[arg(long, global = true, env = "JITCACHE_DIR", value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Print the report as JSON on stdout, one value a line (on stderr for run, whose
    /// stdout is the program's). Not used by get and exec.
    #[arg(long, global = true)]
    pub json: bool,
    /// A remote tier shared by a fleet: `s3://bucket/prefix?endpoint=URL&region=R&mode=ro|rw`
    /// (credentials from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY; see docs/remote.md).
    /// Used by put, get, stats and run.
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
    /// Show or change the cache's maximum size, which a background trim keeps it under.
    MaxSize(admin::MaxSizeArgs),
    /// Run a Lisp (.clj), C (.c or a directory) or CLIF (.clif) program through the cache.
    Run(run::RunArgs),
    /// Link relocatable objects in-process and call their entry point.
    Exec(exec::ExecArgs),
    /// Show a cold and a cached run, with timings.
    Demo(demo::DemoArgs),
}

/// The global options: clap's id and the spelling on the command line.
const GLOBAL_OPTIONS: [(&str, &str); 3] = [
    ("cache_dir", "--cache-dir"),
    ("json", "--json"),
    ("remote", "--remote"),
];

impl Command {
    /// The subcommand's name on the command line.
    fn name(&self) -> &'static str {
        match self {
            Command::Key(_) => "key",
            Command::Put(_) => "put",
            Command::Get(_) => "get",
            Command::Stats => "stats",
            Command::Ls => "ls",
            Command::Gc(_) => "gc",
            Command::Verify(_) => "verify",
            Command::Clear => "clear",
            Command::MaxSize(_) => "max-size",
            Command::Run(_) => "run",
            Command::Exec(_) => "exec",
            Command::Demo(_) => "demo",
        }
    }

    /// Why the command does not use the global option `id` (a clap id of
    /// [`GLOBAL_OPTIONS`]), or `None` when it uses it. [`GLOBAL_OPTIONS_HELP`] shows the
    /// same table.
    fn unused(&self, id: &str) -> Option<&'static str> {
        match (self, id) {
            (Command::Key(_), "cache_dir" | "remote") => Some("it computes a key without a cache"),
            (Command::Get(_), "json") => Some("it writes the stored bytes as they are"),
            (
                Command::Ls
                | Command::Gc(_)
                | Command::Verify(_)
                | Command::Clear
                | Command::MaxSize(_),
                "remote",
            ) => Some("it works on the local cache only"),
            (Command::Exec(_), "cache_dir" | "remote") => Some("it links objects without a cache"),
            (Command::Exec(_), "json") => Some("it prints no report, only the program's output"),
            (Command::Demo(_), "cache_dir") => {
                Some("it makes caches of its own (--keep DIR keeps them)")
            }
            (Command::Demo(_), "remote") => Some("it measures the local cache only"),
            _ => None,
        }
    }
}

/// Whether the global option `id` was given on the command line (before or after the
/// subcommand), not taken from the environment or a default.
fn given(matches: &ArgMatches, id: &str) -> bool {
    let on_line = |m: &ArgMatches| m.value_source(id) == Some(ValueSource::CommandLine);
    on_line(matches) || matches.subcommand().is_some_and(|(_, sub)| on_line(sub))
}

/// The usage error for the first global option given on the command line that the
/// command does not use, if any.
fn refusal(cli: &Cli, matches: &ArgMatches) -> Option<String> {
    GLOBAL_OPTIONS.iter().find_map(|&(id, flag)| {
        let why = cli.command.unused(id)?;
        given(matches, id)
            .then(|| format!("{flag} cannot be used with `{}`: {why}", cli.command.name()))
    })
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

/// Where `demo` (and the benchmark report) put their programs and caches: `keep` if given
/// (created), else a temporary directory removed when the returned guard drops.
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
        Command::Put(args) => admin::put(&cache_dir(cli)?, args, remote_config(cli), json),
        Command::Get(args) => admin::get(&cache_dir(cli)?, args, remote_config(cli)),
        Command::Stats => admin::stats(&cache_dir(cli)?, remote_config(cli).as_ref(), json),
        Command::Ls => admin::ls(&cache_dir(cli)?, json),
        Command::Gc(args) => admin::gc(&cache_dir(cli)?, args, json),
        Command::Verify(args) => admin::verify(&cache_dir(cli)?, args, json),
        Command::Clear => admin::clear(&cache_dir(cli)?, json),
        Command::MaxSize(args) => admin::max_size(&cache_dir(cli)?, args, json),
        Command::Run(args) => run::run(&cache_dir(cli)?, args, remote_config(cli), json),
        Command::Exec(args) => exec::exec(args),
        Command::Demo(args) => demo::demo(args, json),
    }
}

/// Prints a usage error as one line and returns exit status 2.
fn usage_error(message: &str) -> ExitCode {
    eprintln!("jitcache: {message} (see jitcache --help)");
    ExitCode::from(2)
}

/// Parses the command line, refuses global options the command does not use, runs the
/// command and turns its outcome into an exit status: errors are one line on stderr and
/// exit status 2.
pub fn main() -> ExitCode {
    let parsed = Cli::command()
        .try_get_matches()
        .and_then(|matches| Ok((Cli::from_arg_matches(&matches)?, matches)));
    let (cli, matches) = match parsed {
        Ok(parsed) => parsed,
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
            return usage_error(&line);
        }
    };
    if let Some(message) = refusal(&cli, &matches) {
        return usage_error(&message);
    }
    match run(&cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("jitcache: {err:#}");
            ExitCode::from(2)
        }
    }
}
