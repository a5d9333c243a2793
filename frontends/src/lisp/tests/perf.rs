//! Timings of the frontend's warm path (what `jitcache run` does with a Lisp
//! program before looking its units up: parse, `main`'s symbol,
//! `register_program`, each definition's canonical bytes, callee interface
//! hashes and name), printed, never asserted:
//!
//! ```text
//! CARGO_TARGET_DIR=... cargo test --release -p jitcache --lib lisp::tests::perf -- --ignored --nocapture --test-threads 1
//! ```
//!
//! `frontend_warm_path_timings` repeats it in one process (the steady state);
//! `frontend_cold_process_timing` runs it once in a fresh process, where
//! every page the frontend touches is a page fault: run it on its own
//! (`--exact lisp::tests::perf::frontend_cold_process_timing`). Both use
//! `examples/lisp/big.clj` (1,000 definitions).

use std::hint::black_box;
use std::time::{Duration, Instant};

use crate::lisp::{parse, runtime};

const BIG: &str = include_str!("../../../../examples/lisp/big.clj");

/// Runs `f` `rounds` times and returns the fastest and the median time.
fn time<R>(rounds: usize, mut f: impl FnMut() -> R) -> (Duration, Duration) {
    let mut times: Vec<Duration> = (0..rounds)
        .map(|_| {
            let start = Instant::now();
            black_box(f());
            start.elapsed()
        })
        .collect();
    times.sort();
    (times[0], times[rounds / 2])
}

/// Everything the caller does per start-up, through the owning API.
fn warm_path(source: &str) -> usize {
    let program = parse(source).unwrap();
    let main = program.main().unwrap();
    let mut n = main.symbol().len();
    runtime::register_program(&program);
    for def in program.defs() {
        n += def.canonical().len();
        n += def.callee_interface_hashes().len();
        n += def.name().len();
    }
    n
}

/// The same through the borrowing accessors.
fn warm_path_borrowed(source: &str) -> usize {
    let program = parse(source).unwrap();
    let main = program.main().unwrap();
    let mut n = main.symbol().len();
    runtime::register_program(&program);
    for def in program.defs() {
        n += def.canonical_bytes().len();
        n += def.callee_hashes().len();
        n += def.name().len();
    }
    n
}

#[test]
#[ignore = "timings, run by hand in release"]
fn frontend_warm_path_timings() {
    let program = parse(BIG).unwrap();
    let defs = program.defs().len();
    let rounds = 200;
    let report = |what: &str, (min, median): (Duration, Duration)| {
        let per = |d: Duration| d.as_secs_f64() * 1e6 / defs as f64;
        println!(
            "{what:<40} min {:>8.3} ms  median {:>8.3} ms  = {:.3} / {:.3} µs per definition",
            min.as_secs_f64() * 1e3,
            median.as_secs_f64() * 1e3,
            per(min),
            per(median),
        );
    };
    println!("{defs} definitions, {} bytes", BIG.len());
    report("parse", time(rounds, || parse(BIG).unwrap()));
    report(
        "  read",
        time(rounds, || crate::lisp::reader::read(BIG).unwrap()),
    );
    let forms = crate::lisp::reader::read(BIG).unwrap();
    println!("{} canonical bytes", forms.canon.len());
    report(
        "  check",
        time(rounds, || {
            crate::lisp::check::check_program(BIG, &forms)
                .map(|c| c.defs.len())
                .unwrap()
        }),
    );
    report(
        "register_program",
        time(rounds, || runtime::register_program(&program)),
    );
    report(
        "canonical (all)",
        time(rounds, || {
            program
                .defs()
                .iter()
                .map(|d| d.canonical().len())
                .sum::<usize>()
        }),
    );
    report(
        "callee_interface_hashes (all)",
        time(rounds, || {
            program
                .defs()
                .iter()
                .map(|d| d.callee_interface_hashes().len())
                .sum::<usize>()
        }),
    );
    report(
        "interface_hash per definition",
        time(rounds, || {
            program
                .defs()
                .iter()
                .map(|d| d.interface_hash()[0])
                .fold(0u8, |a, b| a ^ b)
        }),
    );
    let callees: usize = program.defs().iter().map(|d| d.callee_hashes().len()).sum();
    println!("{callees} callee references");
    report("warm path (owning API)", time(rounds, || warm_path(BIG)));
    report(
        "warm path (borrowing API)",
        time(rounds, || warm_path_borrowed(BIG)),
    );
}

/// One parse in a fresh process (run it alone: its memory is not yet mapped).
#[test]
#[ignore = "timings, run by hand in release"]
fn frontend_cold_process_timing() {
    let start = Instant::now();
    let n = warm_path_borrowed(BIG);
    let elapsed = start.elapsed();
    let start = Instant::now();
    let n2 = warm_path_borrowed(BIG);
    let second = start.elapsed();
    println!(
        "first warm path in this process: {:.3} ms, second {:.3} ms ({n}, {n2})",
        elapsed.as_secs_f64() * 1e3,
        second.as_secs_f64() * 1e3
    );
}
