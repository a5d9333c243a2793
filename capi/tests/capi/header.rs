//! `include/jitcache.h` and the library's exports agree, and the header compiles on its
//! own as strict C and C++.

use std::collections::BTreeSet;
use std::process::Command;

use crate::support::{lib, scratch};

/// Function names the header declares: `JITCACHE_API <type> <name>(`.
fn declared() -> BTreeSet<String> {
    let header = std::fs::read_to_string(lib().include.join("jitcache.h")).expect("read header");
    // Join continuation lines: a declaration may wrap after its opening parenthesis.
    let mut names = BTreeSet::new();
    for decl in header.split("JITCACHE_API").skip(1) {
        let Some(before_paren) = decl.split('(').next() else {
            continue;
        };
        if decl.trim_start().starts_with('\n') || before_paren.contains('#') {
            continue; // the macro's own definition
        }
        let name = before_paren
            .trim()
            .rsplit(|c: char| c.is_whitespace() || c == '*')
            .next()
            .unwrap_or_default();
        if name.starts_with("jitcache_") {
            names.insert(name.to_owned());
        }
    }
    names
}

/// Defined global functions named `jitcache_*` that `nm` lists for `args`.
fn exported(args: &[&str], file: &std::path::Path) -> BTreeSet<String> {
    let out = Command::new("nm")
        .args(args)
        .arg(file)
        .output()
        .expect("run nm");
    assert!(
        out.status.success(),
        "nm failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace().rev();
            let name = fields.next()?;
            let kind = fields.next()?;
            (kind == "T" && name.starts_with("jitcache_")).then(|| name.to_owned())
        })
        .collect()
}

fn assert_same(header: &BTreeSet<String>, library: &BTreeSet<String>, what: &str) {
    let missing: Vec<_> = header.difference(library).collect();
    let undeclared: Vec<_> = library.difference(header).collect();
    assert!(
        missing.is_empty() && undeclared.is_empty(),
        "header and {what} disagree:\n declared but not exported: {missing:?}\n exported but not declared: {undeclared:?}"
    );
}

#[test]
fn header_declares_exactly_the_shared_library_exports() {
    let header = declared();
    assert!(
        header.len() >= 30,
        "too few declarations parsed: {header:?}"
    );
    let so = exported(&["-D", "--defined-only"], &lib().dir.join("libjitcache.so"));
    assert_same(&header, &so, "libjitcache.so");
}

#[test]
fn header_declares_exactly_the_static_library_exports() {
    let header = declared();
    let a = exported(&["--defined-only"], &lib().dir.join("libjitcache.a"));
    assert_same(&header, &a, "libjitcache.a");
}

#[test]
fn shared_library_exports_nothing_else() {
    let out = Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(lib().dir.join("libjitcache.so"))
        .output()
        .expect("run nm");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let foreign: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .filter(|name| !name.starts_with("jitcache_"))
        .collect();
    assert!(foreign.is_empty(), "unexpected exports: {foreign:?}");
}

#[test]
fn header_compiles_alone_as_strict_c_and_cpp() {
    let tmp = scratch("header");
    let dir = tmp.path();
    let unit = dir.join("only_header.c");
    std::fs::write(
        &unit,
        "#include <jitcache.h>\nint main(void) { return JITCACHE_OK; }\n",
    )
    .expect("write");
    let cases: [(&str, &[&str]); 4] = [
        ("cc", &["-std=c99", "-pedantic-errors"]),
        ("cc", &["-std=c11", "-pedantic-errors"]),
        ("c++", &["-std=c++11", "-pedantic-errors", "-x", "c++"]),
        ("c++", &["-std=c++20", "-pedantic-errors", "-x", "c++"]),
    ];
    for (compiler, flags) in cases {
        let out = Command::new(compiler)
            .args(flags)
            .args(["-Wall", "-Wextra", "-Werror", "-fsyntax-only", "-I"])
            .arg(&lib().include)
            .arg(&unit)
            .output()
            .expect("run compiler");
        assert!(
            out.status.success(),
            "{compiler} {flags:?} rejects the header:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
