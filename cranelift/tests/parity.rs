//! Test JITs written the way public `cranelift-jit` users write them (`jits/*.rs`), each
//! included twice: once with `use cranelift_jit::{JITBuilder, JITModule};`, once with
//! `use jitcache_cranelift::{JITBuilder, JITModule};`, and nothing else different.
//!
//! Each program runs in child processes (this binary with `--child <program>
//! <crate>`): with `cranelift_jit`, then with the drop-in on an empty cache directory
//! (cold), then with the drop-in again on the same directory (warm). All three must print
//! the same lines; the cold run must compile and store every function, the warm run must
//! compile none. The counters come from `JITCACHE_CRANELIFT_STATS`, which makes every
//! drop-in module print them on stderr when it is dropped.
//!
//! A last case runs a program without `JITCACHE_DIR` and checks that the cache is where
//! the `jitcache` tool looks for it (`$XDG_CACHE_HOME/jitcache`).
//!
//! `harness = false`: `cargo test -p jitcache-cranelift --test parity [filter]`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, ExitCode};

mod toy_with_cranelift_jit {
    use cranelift_jit::{JITBuilder, JITModule};
    include!("jits/toy.rs");
}
mod toy_with_jitcache {
    use jitcache_cranelift::{JITBuilder, JITModule};
    include!("jits/toy.rs");
}
mod data_with_cranelift_jit {
    use cranelift_jit::{JITBuilder, JITModule};
    include!("jits/data.rs");
}
mod data_with_jitcache {
    use jitcache_cranelift::{JITBuilder, JITModule};
    include!("jits/data.rs");
}
mod host_with_cranelift_jit {
    use cranelift_jit::{JITBuilder, JITModule};
    include!("jits/host.rs");
}
mod host_with_jitcache {
    use jitcache_cranelift::{JITBuilder, JITModule};
    include!("jits/host.rs");
}

/// A program's name and its two builds: with `cranelift_jit`, with the drop-in.
type Program = (&'static str, fn() -> Vec<String>, fn() -> Vec<String>);

const PROGRAMS: &[Program] = &[
    ("toy", toy_with_cranelift_jit::run, toy_with_jitcache::run),
    (
        "data",
        data_with_cranelift_jit::run,
        data_with_jitcache::run,
    ),
    (
        "host",
        host_with_cranelift_jit::run,
        host_with_jitcache::run,
    ),
];

/// The counters the drop-in printed, summed over its modules.
type Counters = BTreeMap<String, f64>;

/// What a child printed.
struct Run {
    lines: Vec<String>,
    counters: Counters,
}

/// Runs `program` with `krate` (`cranelift_jit` or `jitcache`) in a child process with
/// `env` set (and `remove` removed).
fn run_child(program: &str, krate: &str, env: &[(&str, &Path)], remove: &[&str]) -> Run {
    let exe = std::env::current_exe().expect("current_exe");
    let mut cmd = Command::new(exe);
    cmd.args(["--child", program, krate])
        .env(jitcache_cranelift::STATS_ENV, "1");
    for (name, value) in env {
        cmd.env(name, value);
    }
    for name in remove {
        cmd.env_remove(name);
    }
    let output = cmd.output().expect("run the child");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{program} with {krate} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    let mut counters = Counters::new();
    for line in stderr.lines() {
        let Some(stats) = line.strip_prefix("jitcache-cranelift: ") else {
            continue;
        };
        for (name, value) in stats.split_whitespace().filter_map(|kv| kv.split_once('=')) {
            if let Ok(value) = value.parse::<f64>() {
                *counters.entry(name.to_owned()).or_default() += value;
            } else {
                // Only `bypassed="..."` has a value that is not a number.
                *counters.entry(name.to_owned()).or_default() += 1.0;
            }
        }
    }
    Run {
        lines: stdout.lines().map(str::to_owned).collect(),
        counters,
    }
}

fn counter(run: &Run, name: &str) -> u64 {
    run.counters.get(name).copied().unwrap_or(0.0) as u64
}

/// The three runs of one program.
fn parity(program: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache: &Path = dir.path();
    let env = [("JITCACHE_DIR", cache)];
    let reference = run_child(program, "cranelift_jit", &env, &[]);
    assert!(
        reference.counters.is_empty(),
        "cranelift_jit prints no counters"
    );
    assert!(!reference.lines.is_empty());
    let cold = run_child(program, "jitcache", &env, &[]);
    let warm = run_child(program, "jitcache", &env, &[]);
    for (name, run) in [("cold", &cold), ("warm", &warm)] {
        assert_eq!(
            run.lines, reference.lines,
            "{program}: the drop-in ({name}) computes what cranelift_jit computes"
        );
        assert_eq!(
            counter(run, "bypassed"),
            0,
            "{program} {name}: {:?}",
            run.counters
        );
        assert_eq!(counter(run, "uncached"), 0);
        assert_eq!(counter(run, "recompiled"), 0);
    }
    let compiled = counter(&cold, "compiles");
    assert!(compiled > 0, "{program}: the cold run compiles");
    assert_eq!(counter(&cold, "hits"), 0, "{program}: {:?}", cold.counters);
    assert_eq!(counter(&cold, "misses"), compiled);
    assert_eq!(counter(&cold, "stored"), compiled, "{:?}", cold.counters);
    assert_eq!(
        counter(&warm, "compiles"),
        0,
        "{program}: the warm run compiles nothing: {:?}",
        warm.counters
    );
    assert_eq!(counter(&warm, "misses"), 0);
    assert_eq!(counter(&warm, "stored"), 0);
    assert_eq!(
        counter(&warm, "hits"),
        compiled,
        "{program}: {:?}",
        warm.counters
    );
    assert_eq!(
        counter(&warm, "data_objects"),
        counter(&cold, "data_objects")
    );
    println!(
        "    {program}: {} lines; cold compiles={compiled} stored={}; warm hits={} compiles=0",
        reference.lines.len(),
        counter(&cold, "stored"),
        counter(&warm, "hits"),
    );
}

/// Without `JITCACHE_DIR`, the cache is `$XDG_CACHE_HOME/jitcache`, as for the tool.
fn default_dir() {
    let xdg = tempfile::tempdir().expect("tempdir");
    let env = [("XDG_CACHE_HOME", xdg.path())];
    let cold = run_child("toy", "jitcache", &env, &["JITCACHE_DIR"]);
    let warm = run_child("toy", "jitcache", &env, &["JITCACHE_DIR"]);
    assert!(counter(&cold, "stored") > 0);
    assert_eq!(counter(&warm, "compiles"), 0);
    let store = jitcache_store::Store::open(
        xdg.path().join("jitcache"),
        jitcache_store::StoreConfig::default(),
    )
    .expect("the tool's cache directory");
    let mut names = Vec::new();
    store
        .for_each_entry(|entry| {
            names.push(entry.name.clone().unwrap_or_default());
            true
        })
        .expect("list");
    assert_eq!(names.len() as u64, counter(&cold, "stored"));
    assert!(
        names.iter().any(|n| n == "cranelift-jit/fib"),
        "entries are named after their functions: {names:?}"
    );
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--child") {
        let (Some(program), Some(krate)) = (args.get(1), args.get(2)) else {
            eprintln!("usage: parity --child <program> <cranelift_jit|jitcache>");
            return ExitCode::from(2);
        };
        let Some(&(_, reference, drop_in)) = PROGRAMS.iter().find(|p| p.0 == program) else {
            eprintln!("no program {program}");
            return ExitCode::from(2);
        };
        let lines = if krate == "cranelift_jit" {
            reference()
        } else {
            drop_in()
        };
        for line in lines {
            println!("{line}");
        }
        return ExitCode::SUCCESS;
    }
    let cases: Vec<(String, Box<dyn Fn()>)> = PROGRAMS
        .iter()
        .map(|&(name, _, _)| {
            (
                format!("parity::{name}"),
                Box::new(move || parity(name)) as _,
            )
        })
        .chain(std::iter::once((
            "parity::default_dir".to_owned(),
            Box::new(default_dir) as _,
        )))
        .collect();
    if args.iter().any(|a| a == "--list") {
        for (name, _) in &cases {
            println!("{name}: test");
        }
        return ExitCode::SUCCESS;
    }
    let filter = args.iter().find(|a| !a.starts_with('-'));
    let mut failed = Vec::new();
    let selected: Vec<_> = cases
        .iter()
        .filter(|(name, _)| filter.is_none_or(|f| name.contains(f.as_str())))
        .collect();
    println!("\nrunning {} tests", selected.len());
    for (name, case) in &selected {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(case));
        println!(
            "test {name} ... {}",
            if result.is_ok() { "ok" } else { "FAILED" }
        );
        if result.is_err() {
            failed.push(name.clone());
        }
    }
    println!(
        "\ntest result: {}. {} passed; {} failed",
        if failed.is_empty() { "ok" } else { "FAILED" },
        selected.len() - failed.len(),
        failed.len()
    );
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
