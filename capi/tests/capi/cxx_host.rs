//! The C++ hosts: `hosts/jank_like.cpp` (the example of docs/c-api.md) and
//! `hosts/cxx_features.cpp` (static constructors, exceptions, COMDAT).

use crate::support::{
    Link, Stats, build_host, compiles_logged, logging_compiler, repo, run, scratch, stats, success,
};

const DEFINITIONS: u64 = 5;

/// The C++ compilers to compile loaded code with: `c++`, and `clang++` where installed.
fn compilers() -> Vec<&'static str> {
    let mut found = vec!["c++"];
    let clang = std::process::Command::new("clang++")
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success());
    if clang {
        found.push("clang++");
    } else {
        eprintln!("note: clang++ is not installed; C++ units are compiled with c++ only");
    }
    found
}

#[test]
fn jank_like_host_gets_every_definition_from_the_cache_in_a_new_process() {
    let exe = build_host("jank_like.cpp", "c++", "-std=c++17", Link::Shared);
    for compiler in compilers() {
        let tmp = scratch("jank-like");
        let dir = tmp.path();
        let cache = dir.join("cache");
        let log = dir.join("compiles.log");
        let cxx = logging_compiler(dir, compiler);
        let env = [("JITCACHE_TEST_COMPILE_LOG", log.as_path())];

        let cold = success(compiler, &run(&exe, &[&cache, &cxx], &env));
        assert_eq!(
            stats(&cold),
            Stats {
                memory_hits: 1,
                disk_hits: 0,
                misses: DEFINITIONS,
                compiles: DEFINITIONS
            },
            "{compiler}: {cold}"
        );
        assert!(
            cold.contains("user/square            compiled: new unit"),
            "{cold}"
        );
        assert_eq!(compiles_logged(&log), DEFINITIONS as usize, "{compiler}");

        let warm = success(compiler, &run(&exe, &[&cache, &cxx], &env));
        assert_eq!(
            stats(&warm),
            Stats {
                memory_hits: 1,
                disk_hits: DEFINITIONS,
                misses: 0,
                compiles: 0
            },
            "{compiler}: {warm}"
        );
        assert!(warm.contains("user/median            disk"), "{warm}");
        assert_eq!(
            compiles_logged(&log),
            DEFINITIONS as usize,
            "{compiler}: the warm run invoked the compiler"
        );
    }
}

#[test]
fn docs_show_the_jank_like_host_verbatim() {
    let guide = std::fs::read_to_string(repo().join("docs/c-api.md")).expect("docs/c-api.md");
    let example = std::fs::read_to_string(crate::support::hosts().join("jank_like.cpp"))
        .expect("jank_like.cpp");
    assert!(
        guide.contains(&format!("```cpp\n{example}```")),
        "docs/c-api.md must contain capi/tests/hosts/jank_like.cpp verbatim in a ```cpp block"
    );
}

/// Runs a case of `cxx_features` cold, then warm in a new process, with each compiler.
fn cxx_feature(case: &str) {
    let exe = build_host("cxx_features.cpp", "c++", "-std=c++17", Link::Shared);
    for compiler in compilers() {
        let tmp = scratch(case);
        let cache = tmp.path().join("cache");
        let what = format!("{case} with {compiler}");
        let cold = success(&what, &run(&exe, &[&case, &cache, &compiler], &[]));
        assert!(cold.contains(&format!("ok {case}")), "{what}: {cold}");
        assert_eq!(stats(&cold).disk_hits, 0, "{what}: {cold}");
        let warm = success(&what, &run(&exe, &[&case, &cache, &compiler], &[]));
        assert!(warm.contains(&format!("ok {case}")), "{what}: {warm}");
        let warm_stats = stats(&warm);
        assert_eq!(warm_stats.compiles, 0, "{what}: {warm}");
        assert!(warm_stats.disk_hits > 0, "{what}: {warm}");
    }
}

#[test]
fn cxx_static_constructors_run_when_a_unit_loads() {
    cxx_feature("ctor");
}

#[test]
fn cxx_exception_thrown_in_loaded_code_is_caught_by_the_host() {
    cxx_feature("throw-out");
}

#[test]
fn cxx_exception_thrown_by_the_host_unwinds_through_loaded_code() {
    cxx_feature("throw-through");
}

#[test]
fn cxx_units_sharing_an_inline_function_use_one_copy() {
    cxx_feature("comdat");
}
