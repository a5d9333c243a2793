//! The LLVM adapter (`include/jitcache_llvm.hpp`) against real LLVM: the LLJIT host
//! `hosts/llvm_host.cpp`, built at test time against the distribution's LLVM
//! (`llvm-config-19`, or `$LLVM_CONFIG`), runs a program of IR modules that call each
//! other and libc, in separate processes sharing a cache.
//!
//! A second process compiles nothing (the adapter's counters and the host's logging hook
//! on LLVM's code generation agree); a changed module, optimisation level, CPU or salt
//! misses; the same under `ConcurrentIRCompiler` with several threads and under MCJIT
//! (`ExecutionEngine::setObjectCache`); and through the no-LLVM path
//! (`jitcache::llvm::Loader`) a warm process neither parses IR nor runs LLVM's code
//! generator. The guide's example (`hosts/llvm_example.cpp`) runs both paths. Without
//! LLVM the tests skip, except when `CI` is set: then they fail.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use crate::support::{compiles_logged, lib, scratch, success};

/// How to compile and link against LLVM, from `llvm-config`.
pub struct Llvm {
    /// `--includedir`: passed with `-isystem`, so LLVM's own headers are not held to
    /// `-Werror`.
    pub include: PathBuf,
    /// `--libdir`.
    pub libdir: PathBuf,
    /// `--cxxflags` without its `-I` (the include directory is given with `-isystem`).
    pub cxxflags: Vec<String>,
    /// `--libs` (`-lLLVM-19` for the shared library).
    pub libs: Vec<String>,
}

fn llvm_config(config: &Path, arg: &[&str]) -> Option<String> {
    let out = Command::new(config).args(arg).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// LLVM as `$LLVM_CONFIG` or `llvm-config-19` describes it; `None` when it is not
/// installed (a failure when `CI` is set).
pub fn llvm() -> Option<&'static Llvm> {
    static LLVM: OnceLock<Option<Llvm>> = OnceLock::new();
    LLVM.get_or_init(|| {
        let candidates: Vec<PathBuf> = match std::env::var_os("LLVM_CONFIG") {
            Some(path) => vec![PathBuf::from(path)],
            None => vec![
                PathBuf::from("llvm-config-19"),
                PathBuf::from("/usr/lib/llvm-19/bin/llvm-config"),
            ],
        };
        let config = candidates
            .into_iter()
            .find(|c| llvm_config(c, &["--version"]).is_some())?;
        let include = PathBuf::from(llvm_config(&config, &["--includedir"])?);
        let libdir = PathBuf::from(llvm_config(&config, &["--libdir"])?);
        let cxxflags = llvm_config(&config, &["--cxxflags"])?
            .split_whitespace()
            .filter(|f| !f.starts_with("-I") && !f.starts_with("-std="))
            .map(str::to_owned)
            .collect();
        let libs = llvm_config(&config, &["--libs"])?
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        Some(Llvm {
            include,
            libdir,
            cxxflags,
            libs,
        })
    })
    .as_ref()
}

/// LLVM, or `None` with a note (tests then return early); with `CI` set, a failure.
pub fn llvm_or_fail() -> Option<&'static Llvm> {
    let found = llvm();
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "LLVM 19 (llvm-config-19, from llvm-19-dev) is not installed, and CI is set: \
             this test needs it"
        );
        eprintln!("note: llvm-config-19 not found; skipping the LLVM adapter test");
    }
    found
}

/// Compiles a C++ source against `include/jitcache_llvm.hpp`, libjitcache.so and LLVM,
/// with `-Wall -Wextra -Werror`, into `exe`.
pub fn build_llvm_program(source: &Path, exe: &Path, llvm: &Llvm) {
    let lib = lib();
    let building = exe.with_extension(format!("{}", std::process::id()));
    let out = Command::new("c++")
        .arg("-std=c++17")
        .args(["-Wall", "-Wextra", "-Werror", "-g", "-O1", "-pthread"])
        .args(&llvm.cxxflags)
        .arg("-isystem")
        .arg(&llvm.include)
        .arg("-I")
        .arg(&lib.include)
        .arg(source)
        .arg("-o")
        .arg(&building)
        .arg("-L")
        .arg(&lib.dir)
        .arg("-ljitcache")
        .arg(format!("-Wl,-rpath,{}", lib.dir.display()))
        .arg("-L")
        .arg(&llvm.libdir)
        .args(&llvm.libs)
        .arg(format!("-Wl,-rpath,{}", llvm.libdir.display()))
        .output()
        .expect("run c++");
    assert!(
        out.status.success(),
        "compiling {} failed:\n{}",
        source.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::rename(&building, exe).expect("rename the host into place");
}

/// The LLJIT host, built once per test process.
fn host(llvm: &Llvm) -> &'static Path {
    static HOST: OnceLock<PathBuf> = OnceLock::new();
    HOST.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("capi/hosts");
        std::fs::create_dir_all(&dir).expect("create hosts dir");
        let exe = dir.join("llvm_host");
        build_llvm_program(&crate::support::hosts().join("llvm_host.cpp"), &exe, llvm);
        exe
    })
}

/// What one run of the host printed.
#[derive(Debug, Default)]
struct Run {
    /// The program's own output and results (`entry:`, `entry=`, `host_value=`).
    program: Vec<String>,
    /// The adapter's counters: hits, misses, stores, uncacheable.
    adapter: Option<[u64; 4]>,
    /// Modules LLVM generated code for, and modules parsed from IR.
    codegen: u64,
    ir: u64,
    /// The cache's statistics (direct mode): memory hits, disk hits, misses, compiles.
    stats: Option<[u64; 4]>,
    stdout: String,
}

fn numbers<const N: usize>(line: &str) -> [u64; N] {
    let mut out = [0; N];
    for (slot, field) in out.iter_mut().zip(line.split_whitespace().skip(1)) {
        let (_, value) = field.split_once('=').expect("name=value");
        *slot = value.parse().expect("a number");
    }
    out
}

fn parse_run(stdout: String) -> Run {
    let mut run = Run::default();
    for line in stdout.lines() {
        if line.starts_with("adapter hits=") {
            run.adapter = Some(numbers(line));
        } else if line.starts_with("stats ") {
            run.stats = Some(numbers(line));
        } else if let Some(rest) = line.strip_prefix("codegen=") {
            let (codegen, ir) = rest.split_once(" ir=").expect("codegen=N ir=N");
            run.codegen = codegen.parse().expect("a number");
            run.ir = ir.parse().expect("a number");
        } else if !line.starts_with("adapter ") {
            run.program.push(line.to_owned());
        }
    }
    run.stdout = stdout;
    run
}

/// Runs the host; asserts it succeeded.
fn run_host(exe: &Path, args: &[&str], cache: Option<&Path>, log: &Path) -> Run {
    let mut cmd = Command::new(exe);
    cmd.arg(args[0]);
    if let Some(cache) = cache {
        cmd.arg(cache);
    }
    cmd.args(&args[1..]).env("JITCACHE_TEST_COMPILE_LOG", log);
    let out: Output = cmd.output().expect("run llvm_host");
    parse_run(success(&format!("llvm_host {args:?}"), &out))
}

/// What the program prints and returns, as the uncached baseline has it.
const PROGRAM: [&str; 3] = [
    "entry: fib=6765 square=144 describe=17 even=1 bump=18",
    "host_value=4242",
    "entry=205842405",
];

/// The cacheable modules of the program (the seventh, `hostaddr`, reads host memory
/// through its address and is marked uncacheable).
const MODULES: u64 = 6;

fn cold_then_warm(mode: &str) {
    let Some(llvm) = llvm_or_fail() else { return };
    let exe = host(llvm);
    let tmp = scratch(&format!("llvm-{mode}"));
    let cache = tmp.path().join("cache");
    let log = tmp.path().join("codegen.log");
    let args = [mode, "--threads", "4"];

    let baseline = run_host(exe, &["nocache"], None, &tmp.path().join("baseline.log"));
    assert_eq!(baseline.program, PROGRAM, "{}", baseline.stdout);

    let cold = run_host(exe, &args, Some(&cache), &log);
    assert_eq!(cold.program, PROGRAM, "{}", cold.stdout);
    assert_eq!(
        cold.adapter,
        Some([0, MODULES, MODULES, 1]),
        "{}",
        cold.stdout
    );
    assert_eq!(cold.codegen, MODULES + 1, "{}", cold.stdout);
    assert_eq!(compiles_logged(&log), 7);

    // A new process: every cacheable module from the cache; LLVM's code generator runs
    // for the uncacheable one alone.
    let warm = run_host(exe, &args, Some(&cache), &log);
    assert_eq!(warm.program, PROGRAM, "{}", warm.stdout);
    assert_eq!(warm.adapter, Some([MODULES, 0, 0, 1]), "{}", warm.stdout);
    assert_eq!(warm.codegen, 1, "{}", warm.stdout);
    let logged = std::fs::read_to_string(&log).expect("read the log");
    let warm_lines: Vec<&str> = logged.lines().skip(7).collect();
    assert_eq!(warm_lines, ["codegen hostaddr"], "{logged}");
}

#[test]
fn llvm_orc_second_process_compiles_nothing() {
    cold_then_warm("orc");
}

#[test]
fn llvm_orc_concurrent_compiler_second_process_compiles_nothing() {
    cold_then_warm("orc-concurrent");
}

#[test]
fn llvm_mcjit_second_process_compiles_nothing() {
    cold_then_warm("mcjit");
}

#[test]
fn llvm_orc_changed_module_opt_level_cpu_or_salt_miss() {
    let Some(llvm) = llvm_or_fail() else { return };
    let exe = host(llvm);
    let tmp = scratch("llvm-changes");
    let cache = tmp.path().join("cache");
    let log = tmp.path().join("codegen.log");
    let orc = |extra: &[&str]| {
        let mut args = vec!["orc", "--cpu", "x86-64-v2"];
        args.extend_from_slice(extra);
        run_host(exe, &args, Some(&cache), &log)
    };
    let adapter = |run: &Run| run.adapter.expect("adapter counters");

    let cold = orc(&[]);
    assert_eq!(adapter(&cold), [0, MODULES, MODULES, 1], "{}", cold.stdout);
    assert_eq!(adapter(&orc(&[])), [MODULES, 0, 0, 1]);

    // One definition changed: its module alone misses; the program sees the change.
    let changed = orc(&["--variant", "3"]);
    assert_eq!(
        adapter(&changed),
        [MODULES - 1, 1, 1, 1],
        "{}",
        changed.stdout
    );
    assert!(changed.stdout.contains("square=147"), "{}", changed.stdout);
    assert_eq!(adapter(&orc(&["--variant", "3"])), [MODULES, 0, 0, 1]);

    // Another optimisation level, another CPU, another salt: every module misses, and
    // the earlier entries are still there for the earlier settings.
    for extra in [
        &["--opt", "1"][..],
        &["--opt", "0"],
        &["--cpu", "x86-64"],
        &["--salt", "runtime-abi-2"],
    ] {
        let run = orc(extra);
        assert_eq!(
            adapter(&run),
            [0, MODULES, MODULES, 1],
            "{extra:?}:\n{}",
            run.stdout
        );
        assert_eq!(run.program[..1], PROGRAM[..1], "{extra:?}: {}", run.stdout);
        assert_eq!(adapter(&orc(extra)), [MODULES, 0, 0, 1], "{extra:?} again");
    }
    assert_eq!(adapter(&orc(&[])), [MODULES, 0, 0, 1]);
}

#[test]
fn llvm_simple_and_concurrent_compilers_share_entries() {
    let Some(llvm) = llvm_or_fail() else { return };
    let exe = host(llvm);
    let tmp = scratch("llvm-share");
    let cache = tmp.path().join("cache");
    let log = tmp.path().join("codegen.log");
    let cold = run_host(exe, &["orc"], Some(&cache), &log);
    assert_eq!(
        cold.adapter,
        Some([0, MODULES, MODULES, 1]),
        "{}",
        cold.stdout
    );
    let concurrent = run_host(
        exe,
        &["orc-concurrent", "--threads", "3"],
        Some(&cache),
        &log,
    );
    assert_eq!(
        concurrent.adapter,
        Some([MODULES, 0, 0, 1]),
        "{}",
        concurrent.stdout
    );
    assert_eq!(concurrent.program, PROGRAM);
}

#[test]
fn llvm_direct_path_warm_process_runs_no_llvm() {
    let Some(llvm) = llvm_or_fail() else { return };
    let exe = host(llvm);
    let tmp = scratch("llvm-direct");
    let cache = tmp.path().join("cache");
    let log = tmp.path().join("codegen.log");
    let direct = |extra: &[&str]| {
        let mut args = vec!["direct"];
        args.extend_from_slice(extra);
        run_host(exe, &args, Some(&cache), &log)
    };

    let cold = direct(&[]);
    assert_eq!(cold.program, [PROGRAM[0], PROGRAM[2]], "{}", cold.stdout);
    assert_eq!(
        cold.stats,
        Some([0, 0, MODULES, MODULES]),
        "{}",
        cold.stdout
    );
    assert_eq!(
        (cold.codegen, cold.ir),
        (MODULES, MODULES),
        "{}",
        cold.stdout
    );
    assert_eq!(compiles_logged(&log), 6);

    // A new process: every unit read from the cache and linked by jitcache's linker; no
    // IR is generated and LLVM's code generator never runs.
    let warm = direct(&[]);
    assert_eq!(warm.program, cold.program, "{}", warm.stdout);
    assert_eq!(warm.stats, Some([0, MODULES, 0, 0]), "{}", warm.stdout);
    assert_eq!((warm.codegen, warm.ir), (0, 0), "{}", warm.stdout);
    assert_eq!(compiles_logged(&log), 6, "the warm run generated code");

    // The host's own key: a changed definition is generated and compiled again, alone.
    let changed = direct(&["--variant", "3"]);
    assert_eq!((changed.codegen, changed.ir), (1, 1), "{}", changed.stdout);
    assert!(changed.stdout.contains("square=147"), "{}", changed.stdout);
    // So are all units for another optimisation level or salt.
    for extra in [&["--opt", "1"][..], &["--salt", "abi-2"]] {
        let run = direct(extra);
        assert_eq!(run.codegen, MODULES, "{extra:?}: {}", run.stdout);
        assert_eq!(run.program, cold.program, "{extra:?}");
    }
    assert_eq!(direct(&[]).codegen, 0);
}

#[test]
fn llvm_example_of_the_guide_runs_both_paths_from_the_cache() {
    let Some(llvm) = llvm_or_fail() else { return };
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("capi/hosts");
    std::fs::create_dir_all(&dir).expect("create hosts dir");
    let exe = dir.join("llvm_example");
    let source = crate::support::hosts().join("llvm_example.cpp");
    build_llvm_program(&source, &exe, llvm);
    let tmp = scratch("llvm-example");
    let run = |mode: &str| {
        let out = Command::new(&exe)
            .arg(mode)
            .arg(tmp.path().join(mode))
            .output()
            .expect("run llvm_example");
        let stdout = success(&format!("llvm_example {mode}"), &out);
        assert!(stdout.contains("sum of squares to 10: 385\n"), "{stdout}");
        stdout
    };
    assert!(run("orc").contains("hits=0 misses=3 stores=3"));
    assert!(run("orc").contains("hits=3 misses=0 stores=0"));
    assert!(run("direct").contains("codegen=3 disk_hits=0"));
    assert!(run("direct").contains("codegen=0 disk_hits=3"));

    // docs/integration.md shows the example as it is.
    let guide = std::fs::read_to_string(crate::support::repo().join("docs/integration.md"))
        .expect("docs/integration.md");
    let text = std::fs::read_to_string(&source).expect("read the example");
    assert!(
        guide.contains(&format!("```cpp\n{text}```")),
        "docs/integration.md must contain capi/tests/hosts/llvm_example.cpp verbatim in a ```cpp block"
    );
}

#[test]
fn llvm_orc_damaged_entries_are_misses() {
    let Some(llvm) = llvm_or_fail() else { return };
    let exe = host(llvm);
    let tmp = scratch("llvm-damage");
    let cache = tmp.path().join("cache");
    let log = tmp.path().join("codegen.log");
    let cold = run_host(exe, &["orc"], Some(&cache), &log);
    assert_eq!(
        cold.adapter,
        Some([0, MODULES, MODULES, 1]),
        "{}",
        cold.stdout
    );
    for damage in ["garbage", "truncate"] {
        let out = Command::new(exe)
            .arg("orc")
            .arg(&cache)
            .env("JITCACHE_TEST_COMPILE_LOG", &log)
            .env("JITCACHE_TEST_DAMAGE", damage)
            .output()
            .expect("run llvm_host");
        let run = parse_run(success(&format!("llvm_host with {damage} entries"), &out));
        // Every entry was damaged just before its lookup: every module misses, is
        // compiled and stored again, and the program runs as before.
        assert_eq!(run.program, PROGRAM, "{damage}: {}", run.stdout);
        assert_eq!(
            run.adapter,
            Some([0, MODULES, MODULES, 1]),
            "{damage}: {}",
            run.stdout
        );
        assert_eq!(run.codegen, MODULES + 1, "{damage}: {}", run.stdout);
        let again = run_host(exe, &["orc"], Some(&cache), &log);
        assert_eq!(
            again.adapter,
            Some([MODULES, 0, 0, 1]),
            "{damage}: {}",
            again.stdout
        );
    }
}
