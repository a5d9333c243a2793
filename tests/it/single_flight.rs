//! Single flight across processes: eight `jitcache run` processes start together on a cold
//! cache; between them every unit is compiled exactly once, and each prints the right
//! output.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use crate::util::{self, Run};

const PROCESSES: usize = 8;

/// Starts `PROCESSES` runs of `program` on `cache` at once and waits for all of them.
fn run_together(cache: &Path, program: &Path) -> Vec<Run> {
    let children: Vec<_> = (0..PROCESSES)
        .map(|_| {
            util::run_command(cache, program, &[])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", util::bin()))
        })
        .collect();
    children
        .into_iter()
        .map(|child| {
            Run::from_output(
                child
                    .wait_with_output()
                    .unwrap_or_else(|e| panic!("wait: {e}")),
            )
        })
        .collect()
}

/// Checks that every process printed `stdout` and exited with `exit`, and that between
/// them each of the `units` units was compiled by exactly one process.
fn check(runs: &[Run], units: &[String], stdout: &str, exit: i32) {
    let mut compiled_by: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut total = 0;
    for (i, run) in runs.iter().enumerate() {
        util::assert_output(run, stdout, exit);
        assert_eq!(run.units(), units.len() as u64, "process {i}");
        assert_eq!(
            run.compiled() + run.disk_hits(),
            units.len() as u64,
            "process {i}: every unit compiled or read from disk\n{}",
            run.stderr
        );
        total += run.compiled();
        for (unit, reason) in run.explain() {
            assert_eq!(reason, "new unit", "process {i}, unit {unit}");
            compiled_by.entry(unit).or_default().push(i);
        }
    }
    let per_process: Vec<u64> = runs.iter().map(Run::compiled).collect();
    eprintln!("units compiled per process: {per_process:?}");
    let twice: Vec<_> = compiled_by.iter().filter(|(_, by)| by.len() > 1).collect();
    assert!(
        twice.is_empty(),
        "compiled by more than one process: {twice:?}"
    );
    let expected: Vec<&String> = {
        let mut v: Vec<&String> = units.iter().collect();
        v.sort();
        v
    };
    assert_eq!(
        compiled_by.keys().collect::<Vec<_>>(),
        expected,
        "units compiled"
    );
    assert_eq!(
        total,
        units.len() as u64,
        "sum of `compiled` over the processes"
    );
}

/// Arity of the Lisp definition `f{i}`.
fn arity(i: usize) -> usize {
    1 + i % 3
}

/// `(f{i} x x 0 ...)`: a call passing `x` first and zeros after it.
fn call(i: usize, x: &str) -> String {
    let mut s = format!("(f{i} {x}");
    for _ in 1..arity(i) {
        s.push_str(" 0");
    }
    s.push(')');
    s
}

/// What `(f{i} x ...)` evaluates to.
fn value(i: usize, x: i64) -> i64 {
    let mut v = x + 1;
    for k in 1..=i {
        v += x * k as i64 + if x < 10 { 1 } else { 2 };
    }
    v
}

#[test]
fn eight_processes_compile_each_lisp_unit_once() {
    const DEFS: usize = 30;
    let dir = util::tempdir();
    let cache = dir.path().join("cache");
    // main first: it calls definitions further down the file.
    let mut text = String::from("(defn main []\n");
    let mut expected = String::new();
    for row in (0..DEFS).collect::<Vec<_>>().chunks(6) {
        text.push_str("  (println");
        for (j, &i) in row.iter().enumerate() {
            let _ = write!(text, " {}", call(i, &i.to_string()));
            let _ = write!(
                expected,
                "{}{}",
                if j == 0 { "" } else { " " },
                value(i, i as i64)
            );
        }
        text.push_str(")\n");
        expected.push('\n');
    }
    let _ = writeln!(text, "  (mod {} 256))", call(DEFS - 1, "3"));
    text.push_str("(defn f0 [x] (+ x 1))\n");
    for i in 1..DEFS {
        let params: Vec<String> = (0..arity(i)).map(|p| format!("p{p}")).collect();
        let _ = writeln!(
            text,
            "(defn f{i} [{}] (+ {} (* p0 {i}) (if (< p0 10) 1 2)))",
            params.join(" "),
            call(i - 1, "p0")
        );
    }
    let program = util::write(dir.path(), "many.clj", &text);
    let exit = i32::try_from(value(DEFS - 1, 3).rem_euclid(256)).unwrap_or(-1);

    let reference = util::run_uncached(&dir.path().join("unused"), &program);
    util::assert_output(&reference, &expected, exit);

    let runs = run_together(&cache, &program);
    let mut units: Vec<String> = (0..DEFS).map(|i| format!("f{i}")).collect();
    units.push("main".to_owned());
    check(&runs, &units, &expected, exit);
    assert_eq!(util::entries(&cache).len(), units.len());

    // And all of them hit afterwards.
    let warm = util::run(&cache, &program, &[]);
    util::assert_output(&warm, &expected, exit);
    assert_eq!(warm.compiled(), 0);
}

#[test]
fn eight_processes_compile_each_c_unit_once() {
    let dir = util::tempdir();
    let cache = dir.path().join("cache");
    let src = dir.path().join("prog");
    std::fs::create_dir_all(&src).unwrap_or_else(|e| panic!("{e}"));
    let funcs = ["alpha", "beta", "gamma", "delta", "epsilon"];
    let mut header = String::new();
    for (k, f) in funcs.iter().enumerate() {
        let _ = writeln!(header, "long {f}(long x);");
        util::write(
            &src,
            &format!("{f}.c"),
            &format!(
                "#include \"lib.h\"\nlong {f}(long x) {{ long s = 0; for (long i = 0; i <= x; i++) s += i * {}; return s; }}\n",
                k + 1
            ),
        );
    }
    util::write(&src, "lib.h", &header);
    let mut main = String::from("#include <stdio.h>\n#include \"lib.h\"\nint main(void) {\n");
    let mut expected = String::new();
    let mut sum = 0;
    for (k, f) in funcs.iter().enumerate() {
        let _ = writeln!(main, "  printf(\"%s %ld\\n\", \"{f}\", {f}(10));");
        let value = 55 * (k as i64 + 1);
        sum += value;
        let _ = writeln!(expected, "{f} {value}");
    }
    main.push_str(
        "  return (int)((alpha(3) + beta(3) + gamma(3) + delta(3) + epsilon(3)) % 256);\n}\n",
    );
    util::write(&src, "main.c", &main);
    // Each f(3) is 6 * (k + 1): 6 * 15 = 90.
    let exit = 90;
    assert_eq!(sum, 55 * 15);

    let runs = run_together(&cache, &src);
    let mut units: Vec<String> = funcs.iter().map(|f| format!("{f}.c")).collect();
    units.push("main.c".to_owned());
    check(&runs, &units, &expected, exit);
    // Each C unit is two entries: its manifest (the headers it read) and its object.
    assert_eq!(util::entries(&cache).len(), 2 * units.len());
}
