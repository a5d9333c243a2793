//! The `jitcache` command-line tool: run programs with caching, run objects in-process,
//! and administer a cache directory.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    cli::main()
}
