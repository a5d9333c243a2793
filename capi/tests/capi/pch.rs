//! A jank-like host whose generated C++ uses a precompiled header of its runtime
//! (`hosts/jank_pch.cpp`), through the C API's C++ backend with a base directory and
//! the probe kept in the cache: a second process runs no compiler at all; rebuilding the
//! PCH from a changed header recompiles the units that use it, and a header only one
//! unit includes recompiles exactly that unit. With GCC (`.gch`, found through
//! `-include`) and Clang (`-include-pch`).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{
    Link, Units, build_host, compiles_logged, run, scratch, settle, stats, success, units,
    write_input,
};

/// A C++ compiler and how its precompiled headers are built and used.
#[derive(Clone, Copy)]
enum Pch {
    /// `g++`: `prelude.hpp.gch`, used by `-include include/prelude.hpp` (and
    /// `-Werror=invalid-pch`, so a PCH GCC would not use fails the compile instead of
    /// being replaced by the header unnoticed).
    Gcc,
    /// `clang++`: `prelude.hpp.pch`, used by `-include-pch` (Clang refuses a PCH that
    /// does not fit).
    Clang,
}

impl Pch {
    fn compiler(self) -> &'static str {
        match self {
            Pch::Gcc => "g++",
            Pch::Clang => "clang++",
        }
    }

    fn output(self) -> &'static str {
        match self {
            Pch::Gcc => "include/prelude.hpp.gch",
            Pch::Clang => "include/prelude.hpp.pch",
        }
    }

    /// The flags of the units that use the PCH, besides the host's own.
    fn flags(self) -> &'static [&'static str] {
        match self {
            Pch::Gcc => &[
                "-include",
                "include/prelude.hpp",
                "-Winvalid-pch",
                "-Werror=invalid-pch",
            ],
            Pch::Clang => &["-include-pch", "include/prelude.hpp.pch"],
        }
    }

    /// Builds the PCH from include/prelude.hpp with the options the host compiles with.
    fn build(self, project: &Path) {
        let out = Command::new(self.compiler())
            .args([
                "-std=c++17",
                "-O2",
                "-fPIC",
                "-Iinclude",
                "-x",
                "c++-header",
            ])
            .arg("include/prelude.hpp")
            .arg("-o")
            .arg(self.output())
            .current_dir(project)
            .output()
            .expect("run the compiler");
        assert!(
            out.status.success(),
            "building the PCH with {} failed:\n{}",
            self.compiler(),
            String::from_utf8_lossy(&out.stderr)
        );
        settle();
    }
}

/// Whether `clang++` runs; on CI (`CI` set) its absence fails the test that needs it.
fn clang_or_fail() -> bool {
    let found = Command::new("clang++")
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "clang++ is not installed, and CI is set: this test needs it"
        );
        eprintln!("note: clang++ is not installed; skipping the Clang PCH test");
    }
    found
}

/// A compiler driver that logs every run to `$JITCACHE_TEST_RUN_LOG` and every compile
/// (`-c`, but not the `-###` dry run of the probe) to `$JITCACHE_TEST_COMPILE_LOG`.
fn logging_driver(dir: &Path, real: &str) -> PathBuf {
    let path = dir.join(format!("logging-{real}"));
    let script = format!(
        "#!/bin/sh\n\
         echo \"$*\" >> \"${{JITCACHE_TEST_RUN_LOG:-/dev/null}}\"\n\
         compiles=no\n\
         for arg in \"$@\"; do\n\
         \x20 case \"$arg\" in -c) compiles=yes ;; '-###') compiles=no; break ;; esac\n\
         done\n\
         if [ $compiles = yes ]; then echo \"$*\" >> \"${{JITCACHE_TEST_COMPILE_LOG:-/dev/null}}\"; fi\n\
         exec {real} \"$@\"\n"
    );
    std::fs::write(&path, script).expect("write compiler wrapper");
    let mut perms = std::fs::metadata(&path).expect("stat").permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&path, perms).expect("chmod");
    path
}

const CORE: &str = "#ifndef JANK_CORE_HPP\n#define JANK_CORE_HPP\n#define JANK_SCALE 1\n\
    namespace jank { inline long mul(long a, long b) { return a * b * JANK_SCALE; } }\n#endif\n";
const PRELUDE: &str = "#ifndef JANK_PRELUDE_HPP\n#define JANK_PRELUDE_HPP\n#include <string>\n\
    #include \"core.hpp\"\nnamespace jank {\n\
    inline std::string str(const char *s, long n) { return s + std::to_string(n); }\n}\n#endif\n";

/// Asserts that the run compiled exactly `compiled` (by unit name), every other unit
/// coming from the cache.
fn assert_compiled(run: &Units, all: usize, compiled: &[&str]) {
    assert_eq!(run.origin.len(), all, "{}", run.stdout);
    for (name, from) in &run.origin {
        if compiled.contains(&name.as_str()) {
            assert!(from.starts_with("compiled"), "{name}: {}", run.stdout);
        } else {
            assert_eq!(from, "disk", "{name}: {}", run.stdout);
        }
    }
    let stats = stats(&run.stdout);
    assert_eq!(stats.compiles, compiled.len() as u64, "{}", run.stdout);
    assert_eq!(
        stats.disk_hits,
        (all - compiled.len()) as u64,
        "{}",
        run.stdout
    );
}

/// The whole story with one compiler, the generated sources handed over in memory or
/// written to the project's gen/ and compiled in place.
fn jank_with_pch(pch: Pch, in_place: bool) {
    let exe = build_host("jank_pch.cpp", "c++", "-std=c++17", Link::Shared);
    let mode = if in_place { "in-place" } else { "memory" };
    let tmp = scratch(&format!("jank-pch-{}-{mode}", pch.compiler()));
    let dir = tmp.path();
    let cache = dir.join("cache");
    let project = dir.join("project");
    let (run_log, compile_log) = (dir.join("runs.log"), dir.join("compiles.log"));
    let cxx = logging_driver(dir, pch.compiler());
    let env = [
        ("JITCACHE_TEST_RUN_LOG", run_log.as_path()),
        ("JITCACHE_TEST_COMPILE_LOG", compile_log.as_path()),
    ];
    write_input(&project.join("include/core.hpp"), CORE);
    write_input(&project.join("include/prelude.hpp"), PRELUDE);
    write_input(
        &project.join("include/extra.hpp"),
        "#define EXTRA_FACTOR 5\n",
    );
    write_input(&project.join("gen/local.hpp"), "#define LOCAL_OFFSET 100\n");
    pch.build(&project);
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&cache, &project, &cxx, &mode];
    for flag in pch.flags() {
        args.push(flag);
    }
    let host = || units(success(pch.compiler(), &run(&exe, &args, &env)));
    let all = if in_place { 5 } else { 4 };
    let units_using_pch = vec!["user/square", "user/greeting", "user/describe"];

    // Cold: every definition compiles, the PCH'd ones with the PCH.
    let cold = host();
    let mut everything = units_using_pch.clone();
    everything.push("user/plain");
    if in_place {
        everything.push("user/local");
    }
    assert_compiled(&cold, all, &everything);
    assert_eq!(compiles_logged(&compile_log), all);
    assert_eq!(cold.value["user/square"], 9);
    assert_eq!(cold.value["user/greeting"], 3);
    assert_eq!(cold.value["user/describe"], 15);
    assert_eq!(cold.value["user/plain"], 4);
    if in_place {
        assert_eq!(cold.value["user/local"], 103);
    }

    // A second process compiles nothing, and with the probe in the cache does not run
    // the compiler at all.
    let runs_before = compiles_logged(&run_log);
    let warm = host();
    assert_compiled(&warm, all, &[]);
    assert_eq!(
        compiles_logged(&run_log),
        runs_before,
        "the warm run ran the compiler: {}",
        std::fs::read_to_string(&run_log).unwrap_or_default()
    );

    // A header the PCH is made of changes, and the PCH is rebuilt: the units using it
    // recompile (with the new code), the other ones stay.
    write_input(
        &project.join("include/core.hpp"),
        &CORE.replace("JANK_SCALE 1", "JANK_SCALE 2"),
    );
    pch.build(&project);
    let rebuilt = host();
    assert_compiled(&rebuilt, all, &units_using_pch);
    assert_eq!(rebuilt.value["user/square"], 18);
    assert_eq!(rebuilt.value["user/greeting"], 6);
    assert_eq!(rebuilt.value["user/describe"], 30);

    // A header only one unit includes: exactly that unit.
    write_input(
        &project.join("include/extra.hpp"),
        "#define EXTRA_FACTOR 7\n",
    );
    let extra = host();
    assert_compiled(&extra, all, &["user/describe"]);
    assert!(
        extra.origin["user/describe"].contains("include/extra.hpp changed"),
        "{}",
        extra.stdout
    );
    assert_eq!(extra.value["user/describe"], 42);

    if in_place {
        // The header next to a source compiled in place, found by its quoted include.
        write_input(&project.join("gen/local.hpp"), "#define LOCAL_OFFSET 200\n");
        let local = host();
        assert_compiled(&local, all, &["user/local"]);
        assert!(
            local.origin["user/local"].contains("gen/local.hpp changed"),
            "{}",
            local.stdout
        );
        assert_eq!(local.value["user/local"], 203);
    }
}

#[test]
fn jank_pch_gcc_units_recompile_with_the_headers_they_read() {
    jank_with_pch(Pch::Gcc, false);
}

#[test]
fn jank_pch_gcc_units_compiled_in_place() {
    jank_with_pch(Pch::Gcc, true);
}

#[test]
fn jank_pch_clang_units_recompile_with_the_headers_they_read() {
    if clang_or_fail() {
        jank_with_pch(Pch::Clang, false);
    }
}

#[test]
fn jank_pch_clang_units_compiled_in_place() {
    if clang_or_fail() {
        jank_with_pch(Pch::Clang, true);
    }
}
