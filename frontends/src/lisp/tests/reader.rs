//! The reader: tokens, positions, syntax errors.

use proptest::prelude::*;

use super::err_at;
use super::progen::{Rng, reformat};
use super::sexp::{Sexp, SexpKind, read_all};
use crate::lisp::LispErrorKind;
use crate::lisp::{MAX_DEPTH, Pos};

fn kinds(src: &str) -> Vec<SexpKind> {
    read_all(src).unwrap().into_iter().map(|s| s.kind).collect()
}

fn sym(s: &str) -> SexpKind {
    SexpKind::Sym(s.to_owned())
}

#[test]
fn reads_atoms_lists_and_vectors() {
    assert_eq!(
        kinds("42 -7 +3 007 -0 fib-iter even? x' a/b <= - + ->x"),
        vec![
            SexpKind::Int(42),
            SexpKind::Int(-7),
            SexpKind::Int(3),
            SexpKind::Int(7),
            SexpKind::Int(0),
            sym("fib-iter"),
            sym("even?"),
            sym("x'"),
            sym("a/b"),
            sym("<="),
            sym("-"),
            sym("+"),
            sym("->x"),
        ]
    );
    let forms = read_all("(f [a b] ; comment (\n  (+ a,b))").unwrap();
    assert_eq!(forms.len(), 1);
    let SexpKind::List(items) = &forms[0].kind else {
        panic!("not a list");
    };
    assert_eq!(items.len(), 3);
    assert!(matches!(&items[1].kind, SexpKind::Vector(v) if v.len() == 2));
    assert_eq!(items[2].pos, Pos::new(2, 3));
}

#[test]
fn integer_limits() {
    assert_eq!(
        kinds("-9223372036854775808 9223372036854775807"),
        vec![SexpKind::Int(i64::MIN), SexpKind::Int(i64::MAX)]
    );
    let src = "(defn main [] 9223372036854775808)";
    assert_eq!(
        err_at(src, 1, 15),
        LispErrorKind::IntegerOutOfRange("9223372036854775808".into())
    );
    let src = "(defn main []\n  (+ 1 -9223372036854775809))";
    assert!(matches!(
        err_at(src, 2, 8),
        LispErrorKind::IntegerOutOfRange(_)
    ));
}

#[test]
fn positions_count_lines_and_characters() {
    let forms = read_all("; héllo wörld\n\n  (a\n\t  bc)  [x]").unwrap();
    assert_eq!(forms[0].pos, Pos::new(3, 3));
    let SexpKind::List(items) = &forms[0].kind else {
        panic!()
    };
    assert_eq!(items[0].pos, Pos::new(3, 4));
    assert_eq!(items[1].pos, Pos::new(4, 4));
    assert_eq!(forms[1].pos, Pos::new(4, 9));
    // Columns count characters, not bytes.
    let forms = read_all("(é) x").unwrap_err();
    assert_eq!(forms.pos, Pos::new(1, 2));
    let forms = read_all(";ééé\n  x").unwrap();
    assert_eq!(forms[0].pos, Pos::new(2, 3));
}

#[test]
fn syntax_errors_name_their_position() {
    let cases: &[(&str, u32, u32, &str)] = &[
        ("(defn main [] (+ 1 2)", 1, 1, "never closed"),
        (
            "(defn main []\n  (let [x 1\n    x)",
            3,
            6,
            "does not match `[` at line 2, column 8",
        ),
        ("(defn main [] 0))", 1, 17, "unexpected `)`"),
        ("(defn main [] \"hi\")", 1, 15, "strings"),
        ("(defn main [] {1 2})", 1, 15, "maps"),
        ("(defn main [] '(1))", 1, 15, "reader macro"),
        ("(defn main [] #(1))", 1, 15, "reader macro"),
        ("(defn main [] :kw)", 1, 15, "unexpected character `:`"),
        (
            "(defn main []\n  (+ 1 x@y))",
            2,
            9,
            "unexpected character `@`",
        ),
        ("(defn main [] 12abc)", 1, 15, "invalid number"),
        ("(defn main [] -1x)", 1, 15, "invalid number"),
        ("(defn main [] (é))", 1, 16, "unexpected character `é`"),
        ("]", 1, 1, "unexpected `]`"),
    ];
    for &(src, line, column, needle) in cases {
        let kind = err_at(src, line, column);
        let LispErrorKind::Syntax(msg) = &kind else {
            panic!("{src}: not a syntax error: {kind:?}");
        };
        assert!(msg.contains(needle), "{src}: `{msg}` lacks `{needle}`");
    }
}

#[test]
fn nesting_depth_is_bounded() {
    let deep = |n: usize| format!("(defn main [] {}0{})", "(+ ".repeat(n), ")".repeat(n));
    // MAX_DEPTH levels in total are fine (the defn itself is one).
    super::ok(&deep(MAX_DEPTH - 1));
    let src = deep(MAX_DEPTH);
    let e = super::err(&src);
    assert_eq!(e.kind, LispErrorKind::TooDeep);
    assert_eq!(e.pos, Pos::new(1, 15 + 3 * (MAX_DEPTH as u32 - 1)));
    // Far deeper input is an error too, not a stack overflow.
    let e = super::err(&"(".repeat(1_000_000));
    assert_eq!(e.kind, LispErrorKind::TooDeep);
}

#[test]
fn deepest_accepted_program_compiles_and_verifies() {
    let n = MAX_DEPTH - 1;
    let src = format!("(defn main [] {}1{})", "(- ".repeat(n), ")".repeat(n));
    let p = super::ok(&src);
    super::codegen::verify_program(&p);
}

/// A random datum (positions are filled in by `strip`).
pub(super) fn datum() -> impl Strategy<Value = SexpKind> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(SexpKind::Int),
        "[a-z*+!_?<>=/.%&$-][a-z0-9*+!_?<>=/.%&$'-]{0,6}"
            .prop_filter("not a number", |s| {
                let b = s.as_bytes();
                !(matches!(b[0], b'+' | b'-') && b.get(1).is_some_and(u8::is_ascii_digit))
            })
            .prop_map(SexpKind::Sym),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        let item = inner.prop_map(|kind| Sexp {
            pos: Pos::new(0, 0),
            kind,
        });
        prop_oneof![
            prop::collection::vec(item.clone(), 0..6).prop_map(SexpKind::List),
            prop::collection::vec(item, 0..6).prop_map(SexpKind::Vector),
        ]
    })
}

/// The datum without positions.
fn strip(s: &Sexp) -> SexpKind {
    match &s.kind {
        SexpKind::List(v) => SexpKind::List(v.iter().map(zero).collect()),
        SexpKind::Vector(v) => SexpKind::Vector(v.iter().map(zero).collect()),
        k => k.clone(),
    }
}

fn zero(s: &Sexp) -> Sexp {
    Sexp {
        pos: Pos::new(0, 0),
        kind: strip(s),
    }
}

proptest! {
    /// Printing data with arbitrary whitespace, commas, comments and integer
    /// spellings and reading them back gives the same data.
    #[test]
    fn reformatting_round_trips(data in prop::collection::vec(datum(), 0..5), seed in any::<u64>()) {
        let forms: Vec<Sexp> = data.into_iter().map(|kind| zero(&Sexp { pos: Pos::new(0, 0), kind })).collect();
        let text = reformat(&forms, &mut Rng::new(seed));
        let back = read_all(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        let back: Vec<Sexp> = back.iter().map(zero).collect();
        prop_assert_eq!(back, forms);
    }

    /// The reader never panics, whatever the input.
    #[test]
    fn reader_never_panics(text in "[()\\[\\]{};a-z0-9 \n\"'#+-]{0,64}") {
        let _ = read_all(&text);
    }
}
