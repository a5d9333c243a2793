//! LLVM JIT hosts with and without jitcache, against LLVM 19 (`llvm-config-19`):
//!
//! 1. Loading N cached objects and looking up every symbol they define, with jitcache
//!    (the no-LLVM path: the store and jitcache's linker, `jitcache_get_or_compile_batch`)
//!    and with jitcache's linker alone (`jitcache_load_objects` of the files), against
//!    ORC (`LLJIT::addObjectFile` of each file, then `LLJIT::lookup` of every symbol).
//!    Objects: the 200 C units of the bench's C program (`cc -O2 -fPIC`) and the 1,000
//!    Cranelift objects of the bench's Lisp program. Each figure is the median of the
//!    host's own timing (`benches/llvm/load_objects.cpp`), from after its set-up
//!    (libLLVM loaded and the JIT created, or the cache opened) to after the last
//!    lookup: the load net of fixed costs. The notes add whole processes, each mode's
//!    fastest net of the same process loading nothing. Target: at least 5x.
//! 2. A warm start of the LLJIT host (`capi/tests/hosts/llvm_host.cpp`) running the C
//!    program as 200 IR modules (`clang-19 -O2 -S -emit-llvm`): with the adapter
//!    (`jitcache::llvm::ObjectCache`; LLVM still parses and optimizes, code generation
//!    is skipped) and through `jitcache::llvm::Loader` (no LLVM at all), against LLJIT
//!    with no cache.
//!
//! The report runs these rows as target 4 (`jitcache-bench --only 4`), and so does the
//! bench `cargo bench -p jitcache-bench --bench llvm`. Without LLVM 19 (or `clang-19`,
//! for part 2) the rows say so.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::exe::{workspace_binary, workspace_library};
use crate::measure::{median, median_f64, millis};
use crate::programs::{c_program, lisp_program};
use crate::report::{Ratio, Row, Target};
use anyhow::{Context, Result, ensure};

/// The report group of these rows: target 4.
const GROUP: u8 = 4;

/// Units of the C program (199 units and `main.c`).
const C_UNITS: usize = 200;

/// Definitions of the Lisp program.
const LISP_DEFS: usize = 1000;

/// Rounds of each comparison (every mode's process once per round).
pub const ROUNDS: usize = 21;

/// Rounds with `--quick`.
pub const QUICK_ROUNDS: usize = 5;

/// LLVM's compile and link flags, from `llvm-config-19`.
struct Llvm {
    include: String,
    libdir: String,
    cxxflags: Vec<String>,
    libs: Vec<String>,
}

fn llvm_config(args: &[&str]) -> Option<String> {
    let config = std::env::var("LLVM_CONFIG").unwrap_or_else(|_| "llvm-config-19".to_owned());
    let out = Command::new(config).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn llvm() -> Option<Llvm> {
    Some(Llvm {
        include: llvm_config(&["--includedir"])?,
        libdir: llvm_config(&["--libdir"])?,
        cxxflags: llvm_config(&["--cxxflags"])?
            .split_whitespace()
            .filter(|f| !f.starts_with("-I") && !f.starts_with("-std="))
            .map(str::to_owned)
            .collect(),
        libs: llvm_config(&["--libs"])?
            .split_whitespace()
            .map(str::to_owned)
            .collect(),
    })
}

/// The repository's root (the hosts' sources live in it).
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from(".."), Path::to_path_buf)
}

/// Compiles a C++ host against libjitcache and LLVM with -O2.
fn build_host(source: &Path, exe: &Path, lib: &Path, llvm: &Llvm) -> Result<()> {
    let out = Command::new("c++")
        .args(["-std=c++17", "-O2", "-Wall", "-Wextra", "-pthread"])
        .args(&llvm.cxxflags)
        .arg("-isystem")
        .arg(&llvm.include)
        .arg("-I")
        .arg(repo().join("include"))
        .arg(source)
        .arg("-o")
        .arg(exe)
        .arg("-L")
        .arg(lib)
        .arg("-ljitcache")
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .arg("-L")
        .arg(&llvm.libdir)
        .args(&llvm.libs)
        .arg(format!("-Wl,-rpath,{}", llvm.libdir))
        .output()
        .context("running c++")?;
    ensure!(
        out.status.success(),
        "compiling {}:\n{}",
        source.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

fn run(cmd: &mut Command, what: &str) -> Result<String> {
    let out = cmd.output().with_context(|| format!("running {what}"))?;
    ensure!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// One object of a set: its path and the global symbols it defines.
struct Object {
    path: PathBuf,
    defined: Vec<String>,
    undefined: Vec<String>,
}

/// What `nm -P -g` says an object defines and needs.
fn symbols(path: &Path) -> Result<Object> {
    let out = run(Command::new("nm").args(["-P", "-g"]).arg(path), "nm")?;
    let mut object = Object {
        path: path.to_owned(),
        defined: Vec::new(),
        undefined: Vec::new(),
    };
    for line in out.lines() {
        let mut fields = line.split_whitespace();
        let (Some(name), Some(kind)) = (fields.next(), fields.next()) else {
            continue;
        };
        match kind {
            "U" => object.undefined.push(name.to_owned()),
            "T" | "D" | "B" | "R" | "C" => object.defined.push(name.to_owned()),
            _ => {}
        }
    }
    Ok(object)
}

/// Writes the list `load_objects` reads: one line per object, then the names no object
/// defines.
fn write_list(objects: &[Object], list: &Path) -> Result<()> {
    let defined: BTreeSet<&str> = objects
        .iter()
        .flat_map(|o| o.defined.iter().map(String::as_str))
        .collect();
    let undefined: BTreeSet<&str> = objects
        .iter()
        .flat_map(|o| o.undefined.iter().map(String::as_str))
        .filter(|n| !defined.contains(n))
        .collect();
    let mut text = String::new();
    for object in objects {
        text.push_str(&object.path.display().to_string());
        for name in &object.defined {
            text.push(' ');
            text.push_str(name);
        }
        text.push('\n');
    }
    text.push_str("undefined");
    for name in undefined {
        text.push(' ');
        text.push_str(name);
    }
    text.push('\n');
    std::fs::write(list, text).with_context(|| format!("writing {}", list.display()))
}

/// The C program's objects, compiled with `cc -O2 -fPIC`.
fn c_objects(dir: &Path) -> Result<Vec<Object>> {
    std::fs::create_dir_all(dir)?;
    let mut objects = Vec::new();
    for (name, text) in c_program(C_UNITS) {
        std::fs::write(dir.join(&name), text)?;
        if let Some(stem) = name.strip_suffix(".c") {
            let object = dir.join(format!("{stem}.o"));
            run(
                Command::new("cc")
                    .args(["-O2", "-fPIC", "-c", &name, "-o"])
                    .arg(&object)
                    .current_dir(dir),
                "cc",
            )?;
            objects.push(symbols(&object)?);
        }
    }
    Ok(objects)
}

/// The Lisp program's objects, as `jitcache run` compiled and stored them.
fn lisp_objects(dir: &Path) -> Result<Vec<Object>> {
    let jitcache = workspace_binary("jitcache-cli", "jitcache")?;
    std::fs::create_dir_all(dir)?;
    let program = dir.join("program.clj");
    std::fs::write(&program, lisp_program(LISP_DEFS))?;
    let cache = dir.join("cache");
    let cache_arg = ["--cache-dir".as_ref(), cache.as_os_str()];
    run(
        Command::new(&jitcache)
            .args(cache_arg)
            .arg("run")
            .arg(&program),
        "jitcache run",
    )?;
    let listing = run(
        Command::new(&jitcache)
            .args(cache_arg)
            .args(["--json", "ls"]),
        "jitcache ls",
    )?;
    let mut objects = Vec::new();
    for line in listing.lines() {
        let entry: serde_json::Value = serde_json::from_str(line).context("ls --json")?;
        let (Some(key), Some(name)) = (entry["key"].as_str(), entry["name"].as_str()) else {
            continue;
        };
        let Some(def) = name.strip_prefix("lisp/") else {
            continue;
        };
        let path = dir.join(format!("{def}.o"));
        run(
            Command::new(&jitcache)
                .args(cache_arg)
                .args(["get", key, "-o"])
                .arg(&path),
            "jitcache get",
        )?;
        objects.push(symbols(&path)?);
    }
    ensure!(
        objects.len() >= LISP_DEFS,
        "the Lisp program stored {} objects",
        objects.len()
    );
    Ok(objects)
}

/// Wall time of one process, and the microseconds it reported.
fn timed(cmd: &mut Command, what: &str) -> Result<(Duration, f64)> {
    let start = Instant::now();
    let stdout = run(cmd, what)?;
    let wall = start.elapsed();
    let us = stdout
        .split_whitespace()
        .find_map(|f| f.strip_prefix("us="))
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN);
    Ok((wall, us))
}

/// The rows comparing loading one set of objects.
fn load_rows(
    host: &Path,
    dir: &Path,
    what: &str,
    objects: &[Object],
    rounds: usize,
) -> Result<Vec<Row>> {
    std::fs::create_dir_all(dir)?;
    let list = dir.join("list.txt");
    write_list(objects, &list)?;
    let cache = dir.join("jitcache");
    let mode = |m: &str| {
        let mut cmd = Command::new(host);
        cmd.arg(m).arg(&list).arg(&cache);
        cmd
    };
    run(&mut mode("fill"), "load_objects fill")?;
    let modes = [
        "jitcache",
        "jitcache-empty",
        "linker",
        "linker-empty",
        "orc",
        "orc-empty",
    ];
    let mut walls: Vec<Vec<Duration>> = vec![Vec::new(); modes.len()];
    let mut inner: Vec<Vec<f64>> = vec![Vec::new(); modes.len()];
    for _ in 0..rounds {
        for (i, m) in modes.iter().enumerate() {
            let (wall, us) = timed(&mut mode(m), m)?;
            walls[i].push(wall);
            inner[i].push(us);
        }
    }
    // The figures are the host's own timings, from after its set-up (libLLVM loaded and
    // the JIT created, or the cache opened) to after the last lookup: the load net of
    // each side's fixed costs, timed the same way on both sides. Whole processes are in
    // the notes: each mode's fastest net of its empty process (a difference of two
    // few-millisecond processes, which moves by a millisecond between runs here).
    let fastest: Vec<f64> = walls
        .iter()
        .map(|w| millis(w.iter().copied().min().unwrap_or_default()))
        .collect();
    let inner_med: Vec<f64> = inner.iter_mut().map(|v| median_f64(v) / 1000.0).collect();
    let net = |i: usize| (fastest[i] - fastest[i + 1]).max(0.0);
    let n = objects.len();
    let symbols: usize = objects.iter().map(|o| o.defined.len()).sum();
    let sizes = format!(
        "{n} objects, {symbols} symbols looked up, the undefined names resolved to one dummy function on both sides"
    );
    let notes = |i: usize| {
        format!(
            "in-process medians, from after set-up to after the last lookup; whole processes (the fastest of {rounds}) net of the same process loading nothing: {:.2} ms vs ORC {:.2} ms (the empty processes {:.1} ms and {:.1} ms)",
            net(i),
            net(4),
            fastest[i + 1],
            fastest[5],
        )
    };
    // jitcache's mode `i` against ORC, in ms.
    let against_orc = |name: String, i: usize, how: &str| {
        Row::new(
            GROUP,
            name,
            "ms",
            (inner_med[i], inner_med[4]),
            "LLJIT::addObjectFile + LLJIT::lookup",
            Ratio::BaselineOverValue,
            Target::AtLeast(5.0),
        )
        .with_sizes(sizes.clone())
        .with_runs(rounds, rounds)
        .with_notes(format!("{how}; {}", notes(i)))
    };
    Ok(vec![
        against_orc(
            format!("{what}: load {n} cached objects + lookups, jitcache vs ORC addObjectFile"),
            0,
            "jitcache: store + linker (every object a hit)",
        ),
        against_orc(
            format!("{what}: link {n} object files + lookups, jitcache linker vs ORC"),
            2,
            "jitcache_load_objects of the files, read with llvm::MemoryBuffer::getFile as ORC's side reads them",
        ),
    ])
}

/// The warm-start rows of the LLJIT host.
fn startup_rows(host: &Path, dir: &Path, c_dir: &Path, rounds: usize) -> Result<Vec<Row>> {
    let ir = dir.join("ir");
    std::fs::create_dir_all(&ir)?;
    for entry in std::fs::read_dir(c_dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "c") {
            let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("unit");
            run(
                Command::new("clang-19")
                    .args(["-O2", "-fPIC", "-S", "-emit-llvm", "-I"])
                    .arg(c_dir)
                    .arg(&path)
                    .arg("-o")
                    .arg(ir.join(format!("{stem}.ll"))),
                "clang-19 -emit-llvm",
            )?;
        }
    }
    let orc_cache = dir.join("orc-cache");
    let direct_cache = dir.join("direct-cache");
    let mode = |m: &str, cache: Option<&Path>| {
        let mut cmd = Command::new(host);
        cmd.arg(m);
        if let Some(cache) = cache {
            cmd.arg(cache);
        }
        cmd.arg("--ir-dir").arg(&ir);
        cmd
    };
    let checksum = |out: &str| {
        out.lines()
            .filter(|l| l.starts_with("checksum") || l.starts_with("entry="))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let expected = checksum(&run(&mut mode("nocache", None), "llvm_host nocache")?);
    for (m, cache) in [("orc", &orc_cache), ("direct", &direct_cache)] {
        let cold = run(&mut mode(m, Some(cache)), m)?;
        ensure!(checksum(&cold) == expected, "llvm_host {m}: another result");
    }
    let mut times: [Vec<Duration>; 3] = Default::default();
    for _ in 0..rounds {
        for (i, (m, cache)) in [
            ("nocache", None),
            ("orc", Some(orc_cache.as_path())),
            ("direct", Some(direct_cache.as_path())),
        ]
        .into_iter()
        .enumerate()
        {
            let start = Instant::now();
            let out = run(&mut mode(m, cache), m)?;
            times[i].push(start.elapsed());
            ensure!(checksum(&out) == expected, "llvm_host {m}: another result");
            if i > 0 {
                ensure!(
                    out.contains("codegen=0 "),
                    "a warm {m} run generated code:\n{out}"
                );
            }
        }
    }
    let [nocache, orc, direct] = times.map(|mut t| millis(median(&mut t)));
    Ok(vec![
        Row::new(
            GROUP,
            "LLJIT host, 200 IR modules: warm start with the ObjectCache adapter vs no cache",
            "ms",
            (orc, nocache),
            "LLJIT, no cache",
            Ratio::BaselineOverValue,
            Target::AtLeast(1.5),
        )
        .with_notes("whole processes; LLVM still parses and optimizes every module, code generation is skipped"),
        Row::new(
            GROUP,
            "LLJIT host, 200 IR modules: warm start through jitcache::llvm::Loader vs no cache",
            "ms",
            (direct, nocache),
            "LLJIT, no cache",
            Ratio::BaselineOverValue,
            Target::AtLeast(5.0),
        )
        .with_notes("whole processes; keyed by the host's source: no IR, no LLVM, jitcache's linker"),
    ])
}

/// Target 4's rows, measured in `dir`: loading the C program's 200 objects and the
/// Lisp program's 1,000 with jitcache and with LLJIT, and a warm start of the LLJIT host;
/// each comparison over `rounds` rounds. A side that cannot run is a row saying why:
/// without LLVM 19 or `clang-19` the peer's, otherwise jitcache's.
pub fn rows(dir: &Path, rounds: usize) -> Vec<Row> {
    let skip = |name: &str, why: String| {
        Row::skipped(
            GROUP,
            name,
            "ms",
            Ratio::BaselineOverValue,
            Target::AtLeast(5.0),
            why,
        )
    };
    let Some(llvm) = llvm() else {
        return vec![
            skip(
                "LLVM hosts",
                "llvm-config-19 not found (apt-get install llvm-19-dev)".to_owned(),
            )
            .by_peer(),
        ];
    };
    match measure(&llvm, dir, rounds) {
        Ok(rows) => rows,
        Err(err) => vec![skip("LLVM hosts", format!("{err:#}"))],
    }
}

/// Builds the hosts and measures every row.
fn measure(llvm: &Llvm, root: &Path, rounds: usize) -> Result<Vec<Row>> {
    let lib = workspace_library("jitcache-capi", "libjitcache.so")?;
    let lib = lib.parent().context("libjitcache.so has no directory")?;
    let load_host = root.join("load_objects");
    build_host(
        &repo().join("benches/llvm/load_objects.cpp"),
        &load_host,
        lib,
        llvm,
    )?;
    let llvm_host = root.join("llvm_host");
    build_host(
        &repo().join("capi/tests/hosts/llvm_host.cpp"),
        &llvm_host,
        lib,
        llvm,
    )?;

    eprintln!("jitcache-bench: target 4: loading {C_UNITS} C objects");
    let c_dir = root.join("c");
    let mut rows = load_rows(
        &load_host,
        &root.join("load-c"),
        "C 200 units",
        &c_objects(&c_dir)?,
        rounds,
    )?;
    eprintln!("jitcache-bench: target 4: loading the Lisp program's objects");
    let lisp = lisp_objects(&root.join("lisp"))?;
    rows.extend(load_rows(
        &load_host,
        &root.join("load-lisp"),
        "Lisp 1000 defs",
        &lisp,
        rounds,
    )?);
    eprintln!("jitcache-bench: target 4: warm start of the LLJIT host");
    let clang = Command::new("clang-19").arg("--version").output();
    if clang.is_ok_and(|o| o.status.success()) {
        rows.extend(startup_rows(
            &llvm_host,
            &root.join("startup"),
            &c_dir,
            rounds,
        )?);
    } else {
        rows.push(
            Row::skipped(
                GROUP,
                "LLJIT host warm start",
                "ms",
                Ratio::BaselineOverValue,
                Target::AtLeast(5.0),
                "clang-19 not found (apt-get install clang-19)",
            )
            .by_peer(),
        );
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(path: &str, defined: &[&str], undefined: &[&str]) -> Object {
        Object {
            path: PathBuf::from(path),
            defined: defined.iter().map(|s| s.to_string()).collect(),
            undefined: undefined.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn the_list_names_each_object_and_only_the_names_no_object_defines() {
        let dir = tempfile::tempdir().unwrap();
        let list = dir.path().join("list.txt");
        let objects = [
            object("/a.o", &["f", "g"], &["h", "printf"]),
            object("/b.o", &["h"], &["f", "printf", "abort"]),
        ];
        write_list(&objects, &list).unwrap();
        assert_eq!(
            std::fs::read_to_string(&list).unwrap(),
            "/a.o f g\n/b.o h\nundefined abort printf\n"
        );
    }
}
