//! `jitcache exec` against natively linked executables.
//!
//! Every C program under `tests/c` is compiled once per test run (in parallel) with `cc`,
//! and with `clang` where installed, at `-O0`/`-O2` × `-fno-pic`/`-fPIC`/`-fPIC -fno-plt`;
//! each is linked natively and run, then run in-process with `jitcache exec`. Standard
//! output and exit status must be equal. One test per program, so a failure names it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, OnceLock};

/// A test program: its sources (first has `main`), libraries, and what it needs.
struct Program {
    name: &'static str,
    sources: &'static [&'static str],
    libs: &'static [&'static str],
    cflags: &'static [&'static str],
    /// Uses GNU-assembler syntax that clang's integrated assembler refuses.
    gcc_only: bool,
    /// Reads libc's `stdout` directly: without PIC that is a PC32/32S to host data, which
    /// must fail with a typed error rather than run.
    host_data: bool,
}

const fn program(name: &'static str, sources: &'static [&'static str]) -> Program {
    Program {
        name,
        sources,
        libs: &[],
        cflags: &[],
        gcc_only: false,
        host_data: false,
    }
}

const PROGRAMS: &[Program] = &[
    program("tables", &["tables"]),
    program("bss", &["bss"]),
    program("ctors", &["ctors"]),
    program("jump", &["jump"]),
    program("callbacks", &["callbacks"]),
    program("varargs", &["varargs"]),
    Program {
        libs: &["m"],
        ..program("mathlib", &["mathlib"])
    },
    Program {
        host_data: true,
        ..program("streams", &["streams"])
    },
    program("multi", &["multi_main", "multi_lib", "multi_fib"]),
    Program {
        cflags: &["-fcommon"],
        ..program("common", &["common_a", "common_b"])
    },
    program("sections", &["sections"]),
    Program {
        gcc_only: true,
        ..program("reloc_kinds", &["reloc_kinds"])
    },
];

const FLAGS: &[&[&str]] = &[
    &["-O0", "-fno-pic"],
    &["-O2", "-fno-pic"],
    &["-O0", "-fPIC"],
    &["-O2", "-fPIC"],
    &["-O0", "-fPIC", "-fno-plt"],
    &["-O2", "-fPIC", "-fno-plt"],
];

/// One compiled variant of a program.
struct Build {
    program: &'static Program,
    label: String,
    no_pic: bool,
    objects: Vec<PathBuf>,
    native: PathBuf,
}

fn c_dir() -> PathBuf {
    // The tests belong to `cli/`; the C programs are at the repository root.
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/c")
}

fn work_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("exec-c")
}

fn have(compiler: &str) -> bool {
    Command::new(compiler)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The compilers to test with: `cc`, and `clang` where installed.
fn compilers() -> Vec<&'static str> {
    let mut v = vec!["cc"];
    if have("clang") {
        v.push("clang");
    } else {
        eprintln!("note: clang is not installed; exec tests run with cc only");
    }
    v
}

fn run(cmd: &mut Command) -> Result<Output, String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(format!(
            "{cmd:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn build_one(program: &'static Program, compiler: &str, flags: &[&str]) -> Result<Build, String> {
    let label = format!("{compiler} {}", flags.join(" "));
    let dir = work_dir().join(program.name).join(label.replace(' ', "_"));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let mut objects = Vec::new();
    for src in program.sources {
        let obj = dir.join(format!("{src}.o"));
        run(Command::new(compiler)
            .args(flags)
            .args(program.cflags)
            .arg("-c")
            .arg(c_dir().join(format!("{src}.c")))
            .arg("-o")
            .arg(&obj))?;
        objects.push(obj);
    }
    let no_pic = flags.contains(&"-fno-pic");
    let native = dir.join("native");
    let mut link = Command::new(compiler);
    if no_pic {
        link.arg("-no-pie");
    }
    link.args(&objects).arg("-o").arg(&native);
    for lib in program.libs {
        link.arg(format!("-l{lib}"));
    }
    run(&mut link)?;
    Ok(Build {
        program,
        label,
        no_pic,
        objects,
        native,
    })
}

/// Compiles every variant once, on as many threads as there are cores.
fn builds() -> &'static [Build] {
    static BUILDS: OnceLock<Vec<Build>> = OnceLock::new();
    BUILDS.get_or_init(|| {
        let mut jobs = Vec::new();
        for compiler in compilers() {
            for program in PROGRAMS {
                if program.gcc_only && compiler == "clang" {
                    continue;
                }
                for flags in FLAGS {
                    jobs.push((program, compiler, *flags));
                }
            }
        }
        let jobs = Mutex::new(jobs);
        let results = Mutex::new(Vec::new());
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| {
                    loop {
                        let job = jobs.lock().expect("job queue").pop();
                        let Some((program, compiler, flags)) = job else {
                            break;
                        };
                        let built = build_one(program, compiler, flags);
                        results.lock().expect("results").push(built);
                    }
                });
            }
        });
        results
            .into_inner()
            .expect("results")
            .into_iter()
            .map(|r| r.unwrap_or_else(|e| panic!("building a C test program: {e}")))
            .collect()
    })
}

const ARGS: &[&str] = &["A", "b"];

fn jitcache_exec(objects: &[PathBuf], libs: &[&str], extra: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_jitcache"));
    cmd.arg("exec").args(objects);
    for lib in libs {
        cmd.args(["--lib", lib]);
    }
    cmd.args(extra);
    cmd.arg("--").args(ARGS);
    cmd.output().expect("run jitcache")
}

fn check(name: &str) {
    let variants: Vec<&Build> = builds().iter().filter(|b| b.program.name == name).collect();
    assert!(!variants.is_empty(), "no build of {name}");
    for b in variants {
        let native = Command::new(&b.native)
            .args(ARGS)
            .output()
            .expect("run native");
        let jit = jitcache_exec(&b.objects, b.program.libs, &[]);
        let stderr = String::from_utf8_lossy(&jit.stderr);
        if b.program.host_data && b.no_pic {
            // libc's `stdout` is data beyond ±2 GiB of low memory: a typed error, exit 2.
            assert_eq!(jit.status.code(), Some(2), "{name} [{}]: {stderr}", b.label);
            assert!(jit.stdout.is_empty(), "{name} [{}] ran", b.label);
            assert!(
                stderr.contains("`stdout`")
                    && stderr.contains("does not fit")
                    && stderr.lines().count() == 1,
                "{name} [{}]: {stderr}",
                b.label
            );
            continue;
        }
        assert_eq!(
            String::from_utf8_lossy(&jit.stdout),
            String::from_utf8_lossy(&native.stdout),
            "{name} [{}]: stdout differs; stderr: {stderr}",
            b.label
        );
        assert_eq!(
            jit.status.code(),
            native.status.code(),
            "{name} [{}]: status; stderr: {stderr}",
            b.label
        );
    }
}

macro_rules! program_tests {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                check(stringify!($name));
            }
        )*
    };
}

program_tests!(
    tables,
    bss,
    ctors,
    jump,
    callbacks,
    varargs,
    mathlib,
    streams,
    multi,
    common,
    sections,
    reloc_kinds
);

/// Compiles a one-off C source for the CLI tests below.
fn compile_snippet(name: &str, source: &str) -> PathBuf {
    let dir = work_dir().join("snippets");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let src = dir.join(format!("{name}.c"));
    std::fs::write(&src, source).expect("write source");
    let obj = dir.join(format!("{name}.o"));
    run(Command::new("cc")
        .args(["-O1", "-fPIC", "-c"])
        .arg(&src)
        .arg("-o")
        .arg(&obj))
    .expect("compile snippet");
    obj
}

#[test]
fn entry_argv0_and_status_masking() {
    let obj = compile_snippet(
        "entry",
        "#include <stdio.h>\nint start(int argc, char **argv) { printf(\"%s|%d|%s\\n\", argv[0], argc, argv[2]); return 300; }\n",
    );
    let out = jitcache_exec(std::slice::from_ref(&obj), &[], &["--entry", "start"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{}|3|b\n", obj.display())
    );
    assert_eq!(out.status.code(), Some(300 & 0xff));
}

#[test]
fn undefined_symbol_is_one_line_and_exit_2() {
    let obj = compile_snippet(
        "undefined",
        "int not_defined_anywhere(void);\nint main(void) { return not_defined_anywhere(); }\n",
    );
    let out = jitcache_exec(&[obj], &[], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("jitcache: ")
            && stderr.contains("undefined symbol `not_defined_anywhere`"),
        "{stderr}"
    );
}

#[test]
fn missing_entry_and_bad_object_exit_2() {
    let obj = compile_snippet("noentry", "int helper(void) { return 1; }\n");
    let out = jitcache_exec(&[obj], &[], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("entry symbol `main`"));

    let bogus = work_dir().join("snippets/bogus.o");
    std::fs::write(&bogus, b"\x7fELF but not really").expect("write");
    let out = jitcache_exec(&[bogus], &[], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr.contains("bogus.o") && stderr.contains("malformed"),
        "{stderr}"
    );
}

#[test]
fn libraries_by_short_name_soname_or_failure() {
    let b = builds()
        .iter()
        .find(|b| b.program.name == "mathlib" && !b.no_pic)
        .expect("mathlib build");
    // Without --lib m the libm functions resolve only if the host happens to link libm.
    let out = jitcache_exec(&b.objects, &[], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code() == Some(3)
            || (out.status.code() == Some(2) && stderr.contains("undefined symbol")),
        "{stderr}"
    );
    for lib in ["m", "libm.so.6"] {
        let out = jitcache_exec(&b.objects, &[lib], &[]);
        assert_eq!(
            out.status.code(),
            Some(3),
            "--lib {lib}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = jitcache_exec(&b.objects, &["no_such_library_here"], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr.contains("cannot open library `no_such_library_here`")
            && stderr.lines().count() == 1,
        "{stderr}"
    );
}
