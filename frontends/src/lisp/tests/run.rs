//! End to end: each definition compiled to its own object by the Cranelift
//! backend (as the cache does), all loaded together by the linker with the
//! runtime as resolver, `main` called, output captured.

use std::process::Command;
use std::sync::OnceLock;

use jitcache_backends::{Backend, ClifUnit, CraneliftBackend, CraneliftConfig, OptLevel};
use jitcache_linker::{Linker, ObjectFile};
use proptest::prelude::*;

use super::interp::{self, Stop};
use super::{ok, progen};
use crate::lisp::{Def, Program, compile_def, def_id, entry_symbol, parse, runtime};

fn backend(opt: OptLevel) -> &'static CraneliftBackend {
    static SPEED: OnceLock<CraneliftBackend> = OnceLock::new();
    static NONE: OnceLock<CraneliftBackend> = OnceLock::new();
    let cell = if opt == OptLevel::None { &NONE } else { &SPEED };
    cell.get_or_init(|| {
        CraneliftBackend::new(CraneliftConfig {
            opt_level: opt,
            ..CraneliftConfig::default()
        })
        .expect("host backend")
    })
}

/// One object per definition; `source_of` picks which program each
/// definition is compiled from (to mix units of different versions).
fn objects<'p>(
    defs: impl IntoIterator<Item = (&'p Program, &'p Def)>,
    opt: OptLevel,
) -> Vec<(String, Vec<u8>)> {
    defs.into_iter()
        .map(|(p, d)| {
            let unit = ClifUnit {
                functions: compile_def(p, d).unwrap(),
            };
            let obj = backend(opt).compile(&unit).unwrap();
            assert_eq!(obj.symbols, [d.symbol()]);
            (d.symbol(), obj.bytes)
        })
        .collect()
}

/// Loads the objects as one unit and runs `main`: its value and the output.
fn run_objects(objs: &[(String, Vec<u8>)]) -> Result<(i64, String), jitcache_linker::Error> {
    let mut linker = Linker::new();
    linker.set_resolver(Box::new(runtime::resolve));
    let files: Vec<ObjectFile<'_>> = objs
        .iter()
        .map(|(name, bytes)| ObjectFile { name, bytes })
        .collect();
    let unit = linker.load(&files)?;
    let main = linker
        .symbol_handle(unit, &entry_symbol())
        .expect("main is exported");
    let (value, out) = runtime::capture_output(|| main.call_i64(&[]));
    Ok((value?, String::from_utf8(out).unwrap()))
}

fn run_with(p: &Program, opt: OptLevel) -> (i64, String) {
    run_objects(&objects(p.defs().iter().map(|d| (p, d)), opt)).unwrap()
}

fn run(src: &str) -> (i64, String) {
    run_with(&ok(src), OptLevel::Speed)
}

#[test]
fn hello() {
    assert_eq!(
        run("(defn main [] (println 1 2 3) (println) (println -4) 7)"),
        (7, "1 2 3\n\n-4\n".into())
    );
}

#[test]
fn recursion_loops_and_calls() {
    let src = "
        (defn main []
          (println (fib 20) (fact 20) (sum-to 100000) (count-down 10 0))
          (println (even? 101) (odd? 101) (ack 2 3))
          0)
        (defn fib [n] (if (< n 2) n (+ (fib (- n 1)) (fib (- n 2)))))
        (defn fact [n] (loop [i n acc 1] (if (<= i 1) acc (recur (- i 1) (* acc i)))))
        (defn sum-to [n] (loop [i 0 s 0] (if (> i n) s (recur (+ i 1) (+ s i)))))
        (defn count-down [n acc] (if (<= n 0) acc (recur (- n 1) (+ acc n))))
        (defn even? [n] (if (= n 0) 1 (odd? (- n 1))))
        (defn odd? [n] (if (= n 0) 0 (even? (- n 1))))
        (defn ack [m n]
          (if (= m 0) (+ n 1)
            (if (= n 0) (ack (- m 1) 1)
              (ack (- m 1) (ack m (- n 1))))))";
    assert_eq!(
        run(src),
        (0, "6765 2432902008176640000 5000050000 55\n0 1 9\n".into())
    );
}

#[test]
fn arithmetic_edge_cases() {
    let src = "
        (defn id [x] x)
        (defn main []
          (println (+ 9223372036854775807 1) (* 4611686018427387904 2) (- -9223372036854775808))
          (println (/ -9223372036854775808 -1) (/ -9223372036854775808 (id -1)) (mod -9223372036854775808 (id -1)))
          (println (/ 7 2) (/ -7 2) (/ 7 -2) (/ (id -7) (id -2)) (/ 100 2 5))
          (println (mod 7 2) (mod -7 2) (mod 7 -2) (mod -7 -2) (mod (id -7) (id 2)) (mod (id 7) (id -2)) (mod 6 3) (mod -6 3))
          (println (< 1 2 3) (< 1 3 2) (<= 1 1 2) (> 3 2 1) (>= 3 3 4) (= 2 2 2) (= 2 2 3) (< 5))
          (println (not 0) (not 5) (and) (and 1 2 3) (and 1 0 3) (or) (or 0 0) (or 0 4 5))
          (println (+) (*) (- 5) (- 10 1 2) (* 2 3 4) (+ 1 2 3 4))
          (println (if 0 1 2) (if -1 1 2) (if 0 1) (let [x 1 x (+ x 10)] x) (do) (do 1 2))
          0)";
    let expected = [
        "-9223372036854775808 -9223372036854775808 -9223372036854775808",
        "-9223372036854775808 -9223372036854775808 0",
        "3 -3 -3 3 10",
        "1 1 -1 -1 1 -1 0 0",
        "1 0 1 1 0 1 0 1",
        "1 0 1 3 0 0 0 4",
        "0 1 -5 7 24 10",
        "2 1 0 11 0 2",
    ];
    let (v, out) = run(src);
    assert_eq!(v, 0);
    assert_eq!(out.lines().collect::<Vec<_>>(), expected);
    // The interpreter agrees.
    let (r, iout) = interp::run_main(&ok(src));
    assert_eq!((r, iout), (Ok(0), out));
}

#[test]
fn evaluation_order_and_short_circuit() {
    let src = "
        (defn p [x] (println x) x)
        (defn main []
          (println (p 1) (println 2) (p 3))
          (and (p 4) (p 0) (p 5))
          (or (p 0) (p 6) (p 7))
          (- (p 8) (p 9) (p 10)))";
    assert_eq!(
        run(src),
        (-11, "1\n2\n3\n1 0 3\n4\n0\n0\n6\n8\n9\n10\n".into())
    );
}

#[test]
fn main_value_is_the_full_i64() {
    assert_eq!(
        run("(defn main [] -9223372036854775807)").0,
        -9223372036854775807
    );
    assert_eq!(run("(defn main [] (loop [] 42))").0, 42);
}

#[test]
fn unoptimized_code_agrees() {
    let p = ok("
        (defn f [n] (loop [i 0 acc 0] (if (< i n) (recur (+ i 1) (+ acc (mod (* i 7) 5) (/ i (+ 1 (mod i 3))))) acc)))
        (defn main [] (println (f 1000) (and (f 3) (or 0 (f 4)))) (f 10))");
    assert_eq!(run_with(&p, OptLevel::None), run_with(&p, OptLevel::Speed));
}

#[test]
fn units_compiled_separately_link_together() {
    // `main` compiled from one version of the program, `f` from another with a
    // different body: the call goes through the symbol, so the new body runs.
    let a = ok("(defn f [x] (+ x 1)) (defn main [] (println (f 10)) 0)");
    let b = ok("(defn f [x] (* x 7)) (defn main [] (println (f 10)) 0)");
    let objs = objects(
        [(&a, a.main().unwrap()), (&b, b.def("f").unwrap())],
        OptLevel::Speed,
    );
    assert_eq!(run_objects(&objs).unwrap(), (0, "70\n".into()));
    // A caller compiled against an older arity does not link with the new
    // callee: the arity is part of the symbol.
    let c = ok("(defn f [x y] (* x y)) (defn main [] (println (f 10 2)) 0)");
    let objs = objects(
        [(&a, a.main().unwrap()), (&c, c.def("f").unwrap())],
        OptLevel::Speed,
    );
    let e = run_objects(&objs).unwrap_err();
    assert!(e.to_string().contains("jitcache_lisp_fn1_f"), "{e}");
}

#[test]
fn output_is_captured_per_thread_and_nested() {
    let p = ok("(defn main [] (println 1) 0)");
    let objs = objects(p.defs().iter().map(|d| (&p, d)), OptLevel::Speed);
    let ((inner, outer_before), outer) = runtime::capture_output(|| {
        let before = run_objects(&objs).unwrap().1;
        let inner = runtime::capture_output(|| run_objects(&objs).unwrap());
        (inner, before)
    });
    assert_eq!(outer_before, "1\n");
    assert_eq!(inner.1, b"");
    assert_eq!(inner.0, (0, "1\n".into()));
    assert_eq!(outer, b"");
}

#[test]
fn division_message_uses_the_registered_source() {
    // Compiled from one layout, reported with the positions of the registered one.
    let compiled = ok("(defn dz-unique-f [x] (/ 10 x)) (defn main [] (dz-unique-f 0))");
    let current = ok(
        "(defn dz-unique-f [x]\n  ; reformatted\n  (/ 10\n     x))\n(defn main [] (dz-unique-f 0))",
    );
    let def = compiled.def("dz-unique-f").unwrap();
    let id = i64::from_ne_bytes(def_id(&def.symbol()).to_ne_bytes());
    assert_eq!(
        runtime::division_message(id, 0),
        format!(
            "error: division by zero (definition id {:016x}, site 0)",
            def_id(&def.symbol())
        )
    );
    runtime::register_program(&current);
    assert_eq!(
        runtime::division_message(id, 0),
        "error: division by zero in `dz-unique-f` at line 3, column 3"
    );
    assert_eq!(
        runtime::division_message(id, 7),
        "error: division by zero in `dz-unique-f`"
    );
}

const CHILD_ENV: &str = "JITCACHE_LISP_TEST_CHILD";

/// Runs this test binary's `name` test in a child process with `CHILD_ENV`
/// set: (status, stdout, stderr).
fn in_child(name: &str) -> (Option<i32>, String, String) {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(exe)
        .args(["--exact", name, "--nocapture", "--test-threads=1", "-q"])
        .env(CHILD_ENV, "1")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const DIV_SOURCE: &str =
    "(defn main []\n  (println 1 2)\n  (println (half 7) (half 0)))\n(defn half [n]\n  (/ 14 n))";

/// In a child process: runs a program that divides by zero (the process exits).
#[test]
fn child_divides_by_zero() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let p = ok(DIV_SOURCE);
    runtime::register_program(&p);
    let objs = objects(p.defs().iter().map(|d| (&p, d)), OptLevel::Speed);
    let mut linker = Linker::new();
    linker.set_resolver(Box::new(runtime::resolve));
    let files: Vec<_> = objs
        .iter()
        .map(|(n, b)| ObjectFile { name: n, bytes: b })
        .collect();
    let unit = linker.load(&files).unwrap();
    let main = linker.symbol_handle(unit, &entry_symbol()).unwrap();
    let _ = main.call_i64(&[]);
    unreachable!("division by zero must exit");
}

#[test]
fn division_by_zero_flushes_reports_and_exits_with_1() {
    let (status, stdout, stderr) = in_child("lisp::tests::run::child_divides_by_zero");
    assert_eq!(status, Some(1), "stdout: {stdout}\nstderr: {stderr}");
    assert!(
        stdout.contains("1 2\n"),
        "output before the error is flushed: {stdout}"
    );
    assert!(
        !stdout.contains('7'),
        "the interrupted println prints nothing: {stdout}"
    );
    assert!(
        stderr.contains("error: division by zero in `half` at line 5, column 3\n"),
        "{stderr}"
    );
    // The interpreter agrees on where it stops.
    let (r, out) = interp::run_main(&ok(DIV_SOURCE));
    assert_eq!(
        r,
        Err(Stop::DivByZero {
            def: "half".into(),
            site: 0
        })
    );
    assert_eq!(out, "1 2\n");
}

/// In a child process: prints through the process-wide buffer, then flushes.
#[test]
fn child_prints_and_flushes() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let p = ok(
        "(defn main [] (loop [i 0] (if (< i 20000) (do (println i (* i i)) (recur (+ i 1))) 0)))",
    );
    let objs = objects(p.defs().iter().map(|d| (&p, d)), OptLevel::Speed);
    let mut linker = Linker::new();
    linker.set_resolver(Box::new(runtime::resolve));
    let files: Vec<_> = objs
        .iter()
        .map(|(n, b)| ObjectFile { name: n, bytes: b })
        .collect();
    let unit = linker.load(&files).unwrap();
    let main = linker.symbol_handle(unit, &entry_symbol()).unwrap();
    assert_eq!(main.call_i64(&[]).unwrap(), 0);
    runtime::flush().unwrap();
    std::process::exit(3);
}

#[test]
fn buffered_output_is_complete_after_flush() {
    let (status, stdout, stderr) = in_child("lisp::tests::run::child_prints_and_flushes");
    assert_eq!(status, Some(3), "{stderr}");
    let lines: Vec<&str> = stdout
        .lines()
        .filter(|l| l.chars().all(|c| c.is_ascii_digit() || c == ' ') && !l.is_empty())
        .collect();
    assert_eq!(lines.len(), 20000);
    assert_eq!(lines[0], "0 0");
    assert_eq!(lines[19999], "19999 399960001");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Random programs print the same output and return the same value,
    /// compiled (optimized or not) and interpreted.
    #[test]
    fn compiled_programs_agree_with_the_interpreter(seed in any::<u64>()) {
        let src = progen::program(seed);
        let p = parse(&src).map_err(|e| TestCaseError::fail(format!("{e}\n{src}")))?;
        let (expected, expected_out) = interp::run_main(&p);
        let expected = expected.map_err(|e| TestCaseError::fail(format!("{e:?}\n{src}")))?;
        let opt = if seed % 2 == 0 { OptLevel::Speed } else { OptLevel::None };
        let (value, out) = run_with(&p, opt);
        prop_assert_eq!(&out, &expected_out, "{}", src);
        prop_assert_eq!(value, expected, "{}", src);
    }
}

/// The bundled examples and their expected output (checked against the
/// reference interpreter when they were generated).
const EXAMPLES: &[(&str, &str, &str)] = &[
    (
        "demo",
        include_str!("../../../../examples/lisp/demo.clj"),
        include_str!("../../../../examples/lisp/demo.out"),
    ),
    (
        "fib",
        include_str!("../../../../examples/lisp/fib.clj"),
        include_str!("../../../../examples/lisp/fib.out"),
    ),
    (
        "mutual",
        include_str!("../../../../examples/lisp/mutual.clj"),
        include_str!("../../../../examples/lisp/mutual.out"),
    ),
];

#[test]
fn examples_print_their_expected_output_and_return_0() {
    for &(name, src, expected) in EXAMPLES {
        let p = parse(src).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            run_with(&p, OptLevel::Speed),
            (0, expected.to_owned()),
            "{name}"
        );
    }
    let demo = ok(EXAMPLES[0].1);
    assert!(
        demo.defs().len() >= 300,
        "the demo has a few hundred definitions"
    );
}

#[test]
fn small_examples_agree_with_the_interpreter() {
    for &(name, src, expected) in &EXAMPLES[1..] {
        let (value, out) = interp::run_main(&ok(src));
        assert_eq!((value, out.as_str()), (Ok(0), expected), "{name}");
    }
}
