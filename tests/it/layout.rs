//! The workspace's layout as a JIT author sees it: depending on `jitcache` brings the
//! facade and the crates under it, never the command-line tool, a frontend or the
//! benchmarks; `libjitcache` (the C API) links no frontend either.

use std::path::Path;
use std::process::Command;

/// The crates (by package name) in the normal dependency tree of `package`.
fn normal_dependencies(package: &str, extra: &[&str]) -> Vec<String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let out = Command::new(cargo)
        .args([
            "tree",
            "--offline",
            "-e",
            "normal",
            "--prefix",
            "none",
            "-p",
            package,
        ])
        .args(extra)
        .arg("--manifest-path")
        .arg(&manifest)
        .output()
        .expect("run cargo tree");
    assert!(
        out.status.success(),
        "cargo tree -p {package}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

const NEVER_IN_A_LIBRARY: &[&str] = &[
    "clap",
    "indicatif",
    "jitcache-frontends",
    "jitcache-cli",
    "jitcache-bench",
    "criterion",
];

fn assert_none_of(deps: &[String], forbidden: &[&str], what: &str) {
    assert!(
        deps.iter().any(|d| d.starts_with("jitcache")),
        "{what}: cargo tree listed nothing: {deps:?}"
    );
    for name in forbidden {
        assert!(
            !deps.iter().any(|d| d == name),
            "{what} depends on {name}: {deps:?}"
        );
    }
}

#[test]
fn the_facade_brings_no_cli_frontend_or_bench() {
    let deps = normal_dependencies("jitcache", &[]);
    assert_none_of(&deps, NEVER_IN_A_LIBRARY, "jitcache");
    assert!(deps.iter().any(|d| d == "jitcache-store"), "{deps:?}");
    assert!(deps.iter().any(|d| d == "jitcache-linker"), "{deps:?}");
}

#[test]
fn the_facade_without_the_s3_client_brings_no_json() {
    let deps = normal_dependencies("jitcache", &["--no-default-features"]);
    assert_none_of(
        &deps,
        &[NEVER_IN_A_LIBRARY, &["serde_json", "opendal"]].concat(),
        "jitcache --no-default-features",
    );
}

#[test]
fn the_c_library_brings_no_cli_or_frontend() {
    let deps = normal_dependencies("jitcache-capi", &[]);
    assert_none_of(
        &deps,
        &[NEVER_IN_A_LIBRARY, &["opendal"]].concat(),
        "jitcache-capi",
    );
}
