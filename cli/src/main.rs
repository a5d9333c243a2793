//! The `jitcache` command-line tool: run programs with caching, run objects in-process,
//! and administer a cache directory.

#![forbid(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    jitcache_cli::main()
}
