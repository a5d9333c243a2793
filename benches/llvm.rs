//! Target 4 on its own: LLVM JIT hosts with and without jitcache, against LLVM 19
//! (`jitcache_bench::llvm` says what each row compares). The report runs the same rows
//! (`cargo run --release -p jitcache-bench -- --only 4`).
//!
//! `cargo bench -p jitcache-bench --bench llvm` prints the rows as the report does
//! (`-- --json` for JSON, `-- --quick` for fewer rounds). Run as a test (`cargo test
//! --benches`) it only checks its arguments.

#![forbid(unsafe_code)]

use jitcache_bench::llvm;
use jitcache_bench::report;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--bench") {
        println!("llvm bench: run it with `cargo bench -p jitcache-bench --bench llvm`");
        return;
    }
    let json = args.iter().any(|a| a == "--json");
    let rounds = if args.iter().any(|a| a == "--quick") {
        llvm::QUICK_ROUNDS
    } else {
        llvm::ROUNDS
    };
    let dir = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(err) => {
            eprintln!("llvm bench: a temporary directory: {err}");
            std::process::exit(2);
        }
    };
    let rows = llvm::rows(dir.path(), rounds);
    if json {
        println!("{}", report::to_json(&rows));
    } else {
        println!("llvm bench: every ratio is measured in this run ({rounds} rounds)\n");
        print!("{}", report::table(&rows));
    }
}
