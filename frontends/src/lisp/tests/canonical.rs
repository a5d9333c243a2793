//! Canonical encodings and interface hashes: the cache-key material.

use proptest::prelude::*;

use super::ok;
use super::progen::{self, Rng, reformat};
use super::reader::datum;
use super::sexp::{Sexp, encode, read_all};
use crate::lisp::Pos;
use crate::lisp::{CODEGEN_VERSION, Program, interface_hash};

fn canon(p: &Program, name: &str) -> Vec<u8> {
    p.def(name).unwrap().canonical()
}

const BASE: &str = "
(defn helper [a b] (+ a (* b 2)))
(defn main [] (println (helper 1 2)) 0)
";

#[test]
fn layout_is_as_documented() {
    let p = ok("(defn main [] -2)");
    let mut expected = b"jitcache-lisp-form\0".to_vec();
    expected.extend_from_slice(&CODEGEN_VERSION.to_le_bytes());
    expected.push(b'L');
    expected.extend_from_slice(&4u64.to_le_bytes());
    for s in ["defn", "main"] {
        expected.push(b'S');
        expected.extend_from_slice(&(s.len() as u64).to_le_bytes());
        expected.extend_from_slice(s.as_bytes());
    }
    expected.push(b'V');
    expected.extend_from_slice(&0u64.to_le_bytes());
    expected.push(b'I');
    expected.extend_from_slice(&(-2i64).to_le_bytes());
    assert_eq!(canon(&p, "main"), expected);
}

#[test]
fn reformatting_and_comments_do_not_change_it() {
    let a = ok(BASE);
    let b = ok(
        "; a header comment\n\n(defn helper\n  [a, b]\n  ; doubles b\n  (+ a\n     (* b +2)))\n\n\n(defn main []\n\t(println (helper 001 2))   0) ; trailing\n",
    );
    // Moving definitions around does not change them either.
    let c = ok("(defn main [] (println (helper 1 2)) 0) (defn helper [a b] (+ a (* b 2)))");
    for name in ["helper", "main"] {
        assert_eq!(canon(&a, name), canon(&b, name));
        assert_eq!(canon(&a, name), canon(&c, name));
    }
}

#[test]
fn every_edit_of_the_form_changes_it() {
    let base = ok(BASE);
    let edits = [
        "(defn helper [a b] (+ a (* b 3)))",   // a literal
        "(defn helper [a b] (- a (* b 2)))",   // an operator
        "(defn helper [b a] (+ a (* b 2)))",   // parameter order
        "(defn helper [a c] (+ a (* c 2)))",   // a parameter's name
        "(defn helper [a b] (+ (* b 2) a))",   // argument order
        "(defn helper [a b] (+ a (* b 2) 0))", // an extra argument
        "(defn helper [a b] (+ a (* b 2)) 0)", // an extra body form
        "(defn helper [a b] (+ a (* b -2)))",  // sign
        "(defn helper [a b] (+ a (do (* b 2))))",
    ];
    for edit in edits {
        let edited = ok(&format!("{edit}\n(defn main [] (println (helper 1 2)) 0)"));
        assert_ne!(canon(&base, "helper"), canon(&edited, "helper"), "{edit}");
        assert_eq!(canon(&base, "main"), canon(&edited, "main"), "{edit}");
    }
    // Renaming a definition changes it.
    let renamed =
        ok("(defn helper2 [a b] (+ a (* b 2)))\n(defn main [] (println (helper2 1 2)) 0)");
    assert_ne!(canon(&base, "helper"), canon(&renamed, "helper2"));
    assert_ne!(canon(&base, "main"), canon(&renamed, "main"));
}

#[test]
fn callee_interface_changes_are_visible_only_through_callees() {
    // A callee's body change leaves the caller's form and dependencies alone;
    // an arity change alters the caller's form (the call) and its callees.
    let a = ok("(defn f [x] (+ x 1)) (defn main [] (f 1))");
    let b = ok("(defn f [x] (* x 7)) (defn main [] (f 1))");
    let c = ok("(defn f [x y] (* x y)) (defn main [] (f 1 2))");
    assert_eq!(canon(&a, "main"), canon(&b, "main"));
    assert_eq!(a.main().unwrap().callees(), b.main().unwrap().callees());
    assert_ne!(a.main().unwrap().callees(), c.main().unwrap().callees());
    assert_ne!(
        a.main().unwrap().callee_interface_hashes(),
        c.main().unwrap().callee_interface_hashes()
    );
}

#[test]
fn interface_hashes_separate_name_and_arity() {
    assert_eq!(interface_hash("f", 1), interface_hash("f", 1));
    assert_ne!(interface_hash("f", 1), interface_hash("f", 2));
    assert_ne!(interface_hash("f", 1), interface_hash("g", 1));
    assert_ne!(interface_hash("", 0), interface_hash("\0", 0));
    // The name's length is encoded: no ambiguity with the arity bytes.
    assert_ne!(interface_hash("a\x01", 0), interface_hash("a", 1));
}

proptest! {
    /// The encoding is injective: two forms encode alike exactly when they
    /// are the same datum (positions aside).
    #[test]
    fn encoding_is_injective(a in datum(), b in datum()) {
        let wrap = |kind| Sexp { pos: Pos::new(1, 1), kind };
        let (a, b) = (wrap(a), wrap(b));
        prop_assert_eq!(encode(&a) == encode(&b), a == b);
        prop_assert_eq!(encode(&a), encode(&a.clone()));
    }

    /// Reformatting whole generated programs keeps every definition's
    /// canonical bytes, callees and symbol.
    #[test]
    fn canonical_is_invariant_under_reformatting(seed in any::<u64>(), fmt_seed in any::<u64>()) {
        let src = progen::program(seed);
        let a = ok(&src);
        let forms = read_all(&src).unwrap();
        let text = reformat(&forms, &mut Rng::new(fmt_seed));
        let b = ok(&text);
        prop_assert_eq!(a.defs().len(), b.defs().len());
        for (x, y) in a.defs().iter().zip(b.defs()) {
            prop_assert_eq!(x.canonical(), y.canonical());
            prop_assert_eq!(x.callees(), y.callees());
            prop_assert_eq!(x.symbol(), y.symbol());
        }
    }

    /// Changing one integer literal of a generated program changes exactly
    /// the canonical bytes of the definition containing it.
    #[test]
    fn canonical_changes_with_any_literal(seed in any::<u64>(), pick in any::<usize>(), delta in 1i64..1000) {
        let src = progen::program(seed);
        let a = ok(&src);
        // Find the integer tokens (not inside names like `f1` or `p0`).
        let bytes = src.as_bytes();
        let mut ints = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            let starts = i == 0 || matches!(bytes[i - 1], b' ' | b'(' | b'[' | b'\n');
            let digit_at = |j: usize| bytes.get(j).is_some_and(u8::is_ascii_digit);
            if starts && (digit_at(i) || (bytes[i] == b'-' && digit_at(i + 1))) {
                let mut j = i + 1;
                while digit_at(j) { j += 1; }
                ints.push((i, j));
                i = j;
            } else {
                i += 1;
            }
        }
        prop_assume!(!ints.is_empty());
        let (s, e) = ints[pick % ints.len()];
        let old: i64 = src[s..e].parse().unwrap();
        let new = old.wrapping_add(delta);
        let edited = format!("{}{}{}", &src[..s], new, &src[e..]);
        // A changed literal may make a bounded argument unbounded, but the
        // program stays valid: only its key material matters here.
        let b = ok(&edited);
        let changed: Vec<&str> = a.defs().iter().zip(b.defs())
            .filter(|(x, y)| x.canonical() != y.canonical())
            .map(|(x, _)| x.name())
            .collect();
        prop_assert_eq!(changed.len(), 1, "edit at {}..{}: {:?}", s, e, changed);
    }
}
