//! The generated IR of a fixed program, against a golden copy: code generation must not
//! change without [`CODEGEN_VERSION`] changing, or a cache would hand out objects of the
//! old code generator under the new one's keys.
//!
//! When the IR changes on purpose: bump `CODEGEN_VERSION` in `canonical.rs`, then run
//! `JITCACHE_UPDATE_GOLDEN=1 cargo test -p jitcache-frontends golden` to rewrite the file.

use std::fmt::Write;

use crate::lisp::{CODEGEN_VERSION, compile_def};

use super::ok;

/// Every form and built-in of the language at least once (see the reference in
/// `lisp/mod.rs`).
const PROGRAM: &str = "
(defn square [x] (* x x))
(defn fact [n acc] (if (<= n 1) acc (recur (- n 1) (* acc n))))
(defn sum-to [n] (loop [i 0 s 0] (if (> i n) s (recur (+ i 1) (+ s i)))))
(defn even? [n] (if (= n 0) 1 (odd? (- n 1))))
(defn odd? [n] (if (= n 0) 0 (even? (- n 1))))
(defn arith [a b] (let [q (/ a b) r (mod a b) d (- a) e (- a b 1)] (+ q r d e)))
(defn logic [a b] (do (and a b) (or a b 0) (not a) (< a b 3) (>= a b) (> a b)))
(defn shown [] (println) (println 1 (square 2)) 0)
(defn main [] (println (fact 5 1) (sum-to 10) (even? 4) (arith 7 -2) (logic 1 0)) (shown))
";
const GOLDEN_PATH: &str = "src/lisp/tests/golden/forms.clif";

/// The golden file's first line, naming the version it was made with.
fn header(version: u32) -> String {
    format!(";; CODEGEN_VERSION {version}\n")
}

/// The CLIF of every definition of [`PROGRAM`], in order.
fn generated_ir() -> String {
    let program = ok(PROGRAM);
    let mut out = header(CODEGEN_VERSION);
    for def in program.defs() {
        for function in compile_def(&program, def).expect("compile") {
            writeln!(out, "{}", function.display()).expect("write to a string");
        }
    }
    out
}

#[test]
fn generated_ir_changes_only_with_the_codegen_version() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(GOLDEN_PATH);
    let ir = generated_ir();
    let golden = std::fs::read_to_string(&path).unwrap_or_default();
    if ir == golden {
        return;
    }
    let golden_version = golden
        .lines()
        .next()
        .and_then(|line| line.strip_prefix(";; CODEGEN_VERSION "))
        .and_then(|v| v.parse::<u32>().ok());
    assert_ne!(
        golden_version,
        Some(CODEGEN_VERSION),
        "the Lisp frontend's generated IR changed but CODEGEN_VERSION is still \
         {CODEGEN_VERSION}: bump it (canonical.rs), then update {GOLDEN_PATH}"
    );
    if std::env::var_os("JITCACHE_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &ir).expect("write the golden file");
        return;
    }
    panic!(
        "{GOLDEN_PATH} was made with CODEGEN_VERSION {golden_version:?}, the code is at \
         {CODEGEN_VERSION}: rewrite it with JITCACHE_UPDATE_GOLDEN=1"
    );
}

#[test]
fn the_golden_program_covers_every_definition_kind() {
    // A golden copy of a trivial program would not notice most changes.
    let program = ok(PROGRAM);
    assert_eq!(program.defs().len(), 9);
    let ir = generated_ir();
    for needle in [
        "call fn", "brif", "jump", "srem", "sdiv", "icmp", "imul", "ineg",
    ] {
        assert!(ir.contains(needle), "the golden IR has no `{needle}`");
    }
}
