//! Command-line parsing and dispatch. Each subcommand lives in its own module.

mod exec;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// jitcache: a persistent cache of compiled machine code for language JITs.
#[derive(Parser, Debug)]
#[command(name = "jitcache", version, about)]
pub struct Cli {
    /// Cache directory (default: $JITCACHE_DIR, else $XDG_CACHE_HOME/jitcache, else ~/.cache/jitcache).
    #[arg(long, global = true, env = "JITCACHE_DIR", value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Print every report as JSON on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Link relocatable objects in-process and call their entry point.
    Exec(exec::ExecArgs),
}

/// Parses the command line, runs the command and turns its outcome into an exit status.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Exec(args) => exec::exec(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("jitcache: {err:#}");
            ExitCode::from(2)
        }
    }
}
