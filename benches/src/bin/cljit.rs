//! `jitcache-bench-cljit PROGRAM`: runs a Lisp program (or a `.clif` file of CLIF text)
//! the way a Cranelift JIT without a cache does, compiling every definition in memory
//! with `cranelift_jit::JITModule` (see `jitcache_bench::lispjit`); the baseline of
//! target 3.

#![forbid(unsafe_code)]

use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(program) = std::env::args_os().nth(1) else {
        eprintln!("usage: jitcache-bench-cljit PROGRAM (a Lisp program, or a .clif file)");
        return ExitCode::from(2);
    };
    let program = Path::new(&program);
    let run = if program.extension().is_some_and(|e| e == "clif") {
        jitcache_bench::lispjit::run_clif
    } else {
        jitcache_bench::lispjit::run
    };
    match run(program) {
        Ok(status) => ExitCode::from(status),
        Err(err) => {
            eprintln!("jitcache-bench-cljit: {err:#}");
            ExitCode::from(2)
        }
    }
}
