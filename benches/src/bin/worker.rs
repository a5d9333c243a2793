//! `jitcache-bench-worker SPEC`: one child process of the benchmarks, playing the role
//! its JSON spec names and printing one JSON report on stdout (see
//! `jitcache_bench::worker`).

#![forbid(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(spec) = std::env::args().nth(1) else {
        eprintln!("usage: jitcache-bench-worker SPEC (a JSON worker spec)");
        return ExitCode::from(2);
    };
    match jitcache_bench::worker::main(&spec) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("jitcache-bench-worker: {err:#}");
            ExitCode::from(2)
        }
    }
}
