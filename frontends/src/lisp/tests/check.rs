//! The checker: names, arities, `recur`, definitions, and what it accepts.

use super::{err, err_at, ok};
use crate::lisp::{LispErrorKind, Pos};

fn bad_form(kind: LispErrorKind, needle: &str) {
    match kind {
        LispErrorKind::BadForm(msg) => assert!(msg.contains(needle), "`{msg}` lacks `{needle}`"),
        other => panic!("expected a malformed-form error, got {other:?}"),
    }
}

fn arity(kind: LispErrorKind, name: &str, expected: &str, got: usize) {
    assert_eq!(
        kind,
        LispErrorKind::Arity {
            name: name.into(),
            expected: expected.into(),
            got
        }
    );
}

const MAIN: &str = "\n(defn main [] 0)";

#[test]
fn accepts_forward_references_mutual_recursion_and_shadowing() {
    let p = ok("
        (defn main [] (println (even? 10) (odd? 7)) (helper 1 2))
        (defn even? [n] (if (= n 0) 1 (odd? (- n 1))))
        (defn odd? [n] (if (= n 0) 0 (even? (- n 1))))
        ; a local may shadow a definition's name and is then a value
        (defn helper [even? b] (let [b (+ b even?) b (* b 2)] (+ even? b)))
    ");
    assert_eq!(
        p.defs().iter().map(|d| d.name()).collect::<Vec<_>>(),
        ["main", "even?", "odd?", "helper"]
    );
    assert_eq!(p.def("helper").unwrap().arity(), 2);
    assert_eq!(p.def("helper").unwrap().pos(), Pos::new(6, 15));
    assert_eq!(
        p.def("main").unwrap().callees(),
        vec![
            ("even?".into(), 1),
            ("helper".into(), 2),
            ("odd?".into(), 1)
        ]
    );
    assert_eq!(p.def("even?").unwrap().callees(), vec![("odd?".into(), 1)]);
    assert!(p.def("helper").unwrap().callees().is_empty());
    assert!(p.def("nope").is_none());
    assert_eq!(p.main().unwrap().name(), "main");
}

#[test]
fn callees_are_sorted_and_deduplicated() {
    let p = ok("
        (defn main [] (z) (a 1) (z) (m (a 2) (a 3)) (a (z)))
        (defn z [] 1) (defn a [x] x) (defn m [x y] (+ x y))");
    assert_eq!(
        p.def("main").unwrap().callees(),
        vec![("a".into(), 1), ("m".into(), 2), ("z".into(), 0)]
    );
    let hashes = p.def("main").unwrap().callee_interface_hashes();
    assert_eq!(hashes[0], crate::lisp::interface_hash("a", 1));
    assert_eq!(hashes[2], p.def("z").unwrap().interface_hash());
}

#[test]
fn accepts_recur_in_every_tail_position() {
    ok("
        (defn f [n acc] (if (<= n 0) acc (let [m (- n 1)] (do (recur m (+ acc n))))))
        (defn g [n] (if (> n 0) (recur (- n 1))))
        (defn h [] (loop [i 0 acc 0] (if (< i 10) (let [j (+ i 1)] (recur j (+ acc i))) acc)))
        (defn k []
          ; a loop that is not in tail position still has its own tail positions
          (+ 1 (loop [i 0] (if (< i 3) (recur (+ i 1)) (loop [j i] (if (< j 9) (recur (+ j 1)) j))))))
        (defn main [] (f 3 0) (g 2) (h) (k))");
}

#[test]
fn recur_outside_tail_position_is_rejected() {
    let cases: &[(&str, u32, u32)] = &[
        ("(defn f [n] (+ 1 (recur n)))", 1, 18),
        ("(defn f [n] (if (recur n) 1 2))", 1, 17),
        ("(defn f [n] (let [x (recur n)] x))", 1, 21),
        ("(defn f [n] (do (recur n) 2))", 1, 17),
        ("(defn f [n] (and 1 (recur n)))", 1, 20),
        ("(defn f [n] (or (recur n)))", 1, 17),
        ("(defn f [n] (println (recur n)))", 1, 22),
        ("(defn f [n] (f (recur n)))", 1, 16),
        ("(defn f [n] (loop [i (recur n)] i))", 1, 22),
        ("(defn f [n] (recur (recur n)))", 1, 20),
        (
            "(defn f [n]\n  (loop [i 0]\n    (recur (+ i 1))\n    i))",
            3,
            5,
        ),
    ];
    for &(src, line, column) in cases {
        let src = format!("{src}{MAIN}");
        assert_eq!(
            err_at(&src, line, column),
            LispErrorKind::RecurNotInTail,
            "{src}"
        );
    }
}

#[test]
fn recur_arity_must_match_its_target() {
    let src = format!("(defn f [a b] (if a (recur 1) b)){MAIN}");
    assert_eq!(
        err_at(&src, 1, 21),
        LispErrorKind::RecurArity {
            expected: 2,
            got: 1
        }
    );
    let src = format!("(defn f [a] (loop [i 0 j 1] (recur 1 2 3))){MAIN}");
    assert_eq!(
        err_at(&src, 1, 29),
        LispErrorKind::RecurArity {
            expected: 2,
            got: 3
        }
    );
    // The innermost loop is the target.
    let src = format!("(defn f [] (loop [i 0] (loop [a 1 b 2] (recur 1)))){MAIN}");
    assert_eq!(
        err_at(&src, 1, 40),
        LispErrorKind::RecurArity {
            expected: 2,
            got: 1
        }
    );
}

#[test]
fn unknown_names_point_at_the_symbol() {
    let src = "(defn main []\n  (let [x 1]\n    (+ x y)))";
    assert_eq!(err_at(src, 3, 10), LispErrorKind::UnknownName("y".into()));
    let src = "(defn main [] (frob 1 2))";
    assert_eq!(
        err_at(src, 1, 16),
        LispErrorKind::UnknownName("frob".into())
    );
    // A let binding is not visible in its own init, nor after the let.
    let src = "(defn main [] (let [x x] 0))";
    assert_eq!(err_at(src, 1, 23), LispErrorKind::UnknownName("x".into()));
    let src = "(defn main [] (let [x 1] x) x)";
    assert_eq!(err_at(src, 1, 29), LispErrorKind::UnknownName("x".into()));
    // Parameters of one definition are not visible in another.
    let src = "(defn f [a] a)\n(defn main [] a)";
    assert_eq!(err_at(src, 2, 15), LispErrorKind::UnknownName("a".into()));
    // Unsupported Clojure forms are unknown names.
    let src = "(defn main [] (cond 1 2))";
    assert_eq!(
        err_at(src, 1, 16),
        LispErrorKind::UnknownName("cond".into())
    );
}

#[test]
fn wrong_arities_point_at_the_form() {
    let src = "(defn f [a b] a)\n(defn main []\n  (f 1))";
    arity(err_at(src, 3, 3), "f", "2", 1);
    let src = "(defn main [] (main 1))";
    arity(err_at(src, 1, 15), "main", "0", 1);
    let cases: &[(&str, &str, &str, usize)] = &[
        ("(mod 1)", "mod", "2", 1),
        ("(mod 1 2 3)", "mod", "2", 3),
        ("(/ 1)", "/", "at least 2", 1),
        ("(-)", "-", "at least 1", 0),
        ("(not)", "not", "1", 0),
        ("(not 1 2)", "not", "1", 2),
        ("(<)", "<", "at least 1", 0),
        ("(= )", "=", "at least 1", 0),
        ("(if 1)", "if", "2 or 3", 1),
        ("(if 1 2 3 4)", "if", "2 or 3", 4),
    ];
    for &(form, name, expected, got) in cases {
        let src = format!("(defn main [] {form})");
        arity(err_at(&src, 1, 15), name, expected, got);
    }
}

#[test]
fn definitions_are_checked() {
    let src = "(defn f [] 1)\n(defn g [] 2)\n(defn f [x] x)\n(defn main [] 0)";
    assert_eq!(
        err_at(src, 3, 7),
        LispErrorKind::DuplicateDefinition {
            name: "f".into(),
            first: Pos::new(1, 7)
        }
    );
    let src = "(defn main [] 0)\n(defn f [a b a] 0)";
    assert_eq!(
        err_at(src, 2, 14),
        LispErrorKind::DuplicateParameter("a".into())
    );
    for name in [
        "if", "let", "+", "println", "mod", "recur", "defn", "and", "&",
    ] {
        let src = format!("(defn main [] 0) (defn {name} [] 0)");
        assert_eq!(
            err_at(&src, 1, 24),
            LispErrorKind::ReservedName(name.into())
        );
        let src = format!("(defn main [] 0) (defn f [x {name}] 0)");
        assert_eq!(
            err_at(&src, 1, 29),
            LispErrorKind::ReservedName(name.into())
        );
        let src = format!("(defn main [] (let [{name} 1] 0))");
        assert_eq!(
            err_at(&src, 1, 21),
            LispErrorKind::ReservedName(name.into())
        );
    }
}

#[test]
fn main_is_required_and_takes_nothing() {
    let src = "(defn f [] 1)\n; no main here\n";
    assert_eq!(err_at(src, 3, 1), LispErrorKind::NoMain);
    assert_eq!(err_at("", 1, 1), LispErrorKind::NoMain);
    let src = "(defn f [] 1)\n(defn main [argc argv] 0)";
    assert_eq!(err_at(src, 2, 7), LispErrorKind::MainArity(2));
}

#[test]
fn malformed_forms_are_explained() {
    let cases: &[(&str, u32, u32, &str)] = &[
        ("42", 1, 1, "only `(defn"),
        ("(def x 1)", 1, 1, "only `(defn"),
        ("[defn main [] 0]", 1, 1, "only `(defn"),
        ("()", 1, 1, "only `(defn"),
        ("(defn)", 1, 1, "needs a name"),
        ("(defn 5 [] 0)", 1, 7, "must be a symbol"),
        ("(defn f)", 1, 1, "parameter vector"),
        ("(defn f (x) x)", 1, 9, "parameter vector"),
        ("(defn f [1] 1)", 1, 10, "must be a symbol"),
        (
            "(defn main [] (defn g [] 1))",
            1,
            15,
            "only allowed at top level",
        ),
        ("(defn main [] ())", 1, 15, "empty list"),
        ("(defn main [] [1 2])", 1, 15, "vector"),
        ("(defn main [] ((main)))", 1, 16, "first element"),
        ("(defn main [] (1 2))", 1, 16, "first element"),
        ("(defn main [] (let))", 1, 15, "binding vector"),
        ("(defn main [] (let x 1))", 1, 20, "binding vector"),
        ("(defn main [] (let [x] x))", 1, 20, "pairs"),
        ("(defn main [] (let [1 2] 3))", 1, 21, "must be a symbol"),
        ("(defn main [] (loop (i 0) 1))", 1, 21, "binding vector"),
        ("(defn main [] (loop [i] 1))", 1, 21, "pairs"),
    ];
    for &(src, line, column, needle) in cases {
        bad_form(err_at(src, line, column), needle);
    }
}

#[test]
fn values_and_functions_are_distinct() {
    let src = "(defn g [] 1)\n(defn main [] (+ g 1))";
    assert_eq!(err_at(src, 2, 18), LispErrorKind::NotAValue("g".into()));
    let src = "(defn main [] (+ + 1))";
    assert_eq!(err_at(src, 1, 18), LispErrorKind::NotAValue("+".into()));
    let src = "(defn main [] (let [f 1] (f)))";
    assert_eq!(err_at(src, 1, 27), LispErrorKind::NotAFunction("f".into()));
    // A local shadowing a definition cannot be called either.
    let src = "(defn g [] 1)\n(defn main [] (let [g 2] (g)))";
    assert_eq!(err_at(src, 2, 27), LispErrorKind::NotAFunction("g".into()));
}

#[test]
fn the_first_error_is_reported() {
    // Syntax errors anywhere come before any other error.
    let e = err("(defn main [] (nope))\n(defn f [] \"s\")");
    assert!(matches!(e.kind, LispErrorKind::Syntax(_)));
    // Definition headers are checked before bodies.
    let e = err("(defn main [] (nope))\n(defn main [] 0)");
    assert!(matches!(e.kind, LispErrorKind::DuplicateDefinition { .. }));
    // Bodies in source order.
    let e = err("(defn main [] (a))\n(defn f [] (b))");
    assert_eq!(e.kind, LispErrorKind::UnknownName("a".into()));
}

#[test]
fn errors_display_line_and_column() {
    let e = err("(defn main []\n  (foo))");
    assert_eq!(e.to_string(), "line 2, column 4: unknown name `foo`");
    assert_eq!((e.line(), e.column()), (2, 4));
    let e = err("(defn f [a] a)\n(defn main [] (f))");
    assert_eq!(
        e.to_string(),
        "line 2, column 15: wrong number of arguments to `f`: expected 1, got 0"
    );
}

#[test]
fn division_sites_are_numbered_in_source_order() {
    let p = ok("(defn main []\n  (+ (/ 6 (mod 7 2))\n     (/ 1 1 1)))");
    assert_eq!(
        p.main().unwrap().division_sites(),
        [Pos::new(2, 6), Pos::new(2, 11), Pos::new(3, 6)]
    );
}
