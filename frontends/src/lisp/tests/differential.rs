//! The frontend against the one it replaced (`oracle`): same errors, same
//! definitions, same key material and bodies, on generated programs and on
//! random edits of them.

use proptest::prelude::*;

use super::oracle;
use super::progen::{self, Rng};
use crate::lisp::{Program, interface_hash, parse, runtime};

/// Tokens random edits insert.
const TOKENS: &[&str] = &[
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    " ",
    "\n",
    ",",
    ";c\n",
    "; é\n",
    "\u{a0}",
    "\u{2028}",
    "é",
    "\"",
    "'",
    "#",
    "`",
    "~",
    "@",
    "^",
    "\\",
    "|",
    ":",
    "\t",
    "\r",
    "\x0b",
    "\x0c",
    "0",
    "-1",
    "+7",
    "007",
    "1x",
    "-x",
    "+",
    "-",
    "*",
    "/",
    "mod",
    "<",
    "<=",
    "=",
    "not",
    "and",
    "or",
    "println",
    "defn",
    "let",
    "if",
    "do",
    "loop",
    "recur",
    "&",
    "x",
    "a",
    "f0",
    "f1",
    "main",
    "ev?",
    "9223372036854775808",
    "-9223372036854775809",
    "x'",
    "(defn",
    "(defn g [] 1)",
    "(defn main [] 0)",
    "[x 1]",
    "(recur)",
    "(recur 1)",
    "(loop [i 0] (recur 1))",
    "(defn main [x] 0)",
    "(defn f [x x] 0)",
    "(let [if 1] 0)",
    "(defn + [] 0)",
    "[x x]",
];

/// A random edit of `src`: deletes a range, inserts tokens, or both.
fn edit(src: &str, rng: &mut Rng) -> String {
    let chars: Vec<char> = src.chars().collect();
    let mut out: Vec<char> = chars.clone();
    for _ in 0..=rng.below(3) {
        let at = rng.below(out.len() + 1);
        match rng.below(3) {
            0 => {
                let len = rng.below(8).min(out.len() - at);
                out.drain(at..at + len);
            }
            _ => {
                let token = TOKENS[rng.below(TOKENS.len())];
                out.splice(at..at, token.chars());
            }
        }
    }
    out.into_iter().collect()
}

/// Checks that both frontends agree on `src`.
fn agree(src: &str) -> Result<(), TestCaseError> {
    let old = oracle::program::Program::parse(src);
    let new = parse(src);
    let (old, new) = match (old, new) {
        (Err(a), Err(b)) => {
            prop_assert_eq!(a, b, "{}", src);
            return Ok(());
        }
        (Ok(a), Ok(b)) => (a, b),
        (a, b) => {
            return Err(TestCaseError::fail(format!(
                "old {:?}\nnew {:?}\n{src}",
                a.map(|_| ()),
                b.map(|_| ())
            )));
        }
    };
    same_program(&old, &new, src)
}

fn same_program(
    old: &oracle::program::Program,
    new: &Program,
    src: &str,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(old.defs().len(), new.defs().len());
    for (a, b) in old.defs().iter().zip(new.defs()) {
        prop_assert_eq!(a.name(), b.name());
        prop_assert_eq!(a.arity(), b.arity());
        prop_assert_eq!(a.pos(), b.pos());
        prop_assert_eq!(a.symbol(), b.symbol());
        prop_assert_eq!(a.canonical(), b.canonical());
        prop_assert_eq!(a.canonical(), b.canonical_bytes());
        prop_assert_eq!(a.callees(), b.callees());
        prop_assert_eq!(a.callee_interface_hashes(), b.callee_interface_hashes());
        prop_assert_eq!(a.callee_interface_hashes(), b.callee_hashes());
        prop_assert_eq!(a.interface_hash(), b.interface_hash());
        prop_assert_eq!(a.division_sites(), b.division_sites());
        prop_assert_eq!(
            format!("{:?}", a.body),
            format!("{:?}", b.body().unwrap()),
            "{}",
            src
        );
        let found = new.def(b.name()).map(|d| (d.name(), d.arity()));
        prop_assert_eq!(found, Some((b.name(), b.arity())));
    }
    prop_assert_eq!(old.main().map(|d| d.name()), new.main().map(|d| d.name()));
    prop_assert!(new.def("no such name").is_none());
    Ok(())
}

/// The interface hash as first written: a fresh key-derivation hasher.
fn interface_hash_reference(name: &str, arity: usize) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key("jitcache lisp interface v1");
    h.update(&(name.len() as u64).to_le_bytes());
    h.update(name.as_bytes());
    h.update(&(arity as u64).to_le_bytes());
    *h.finalize().as_bytes()
}

/// The definition id as first written.
fn def_id_reference(symbol: &str) -> u64 {
    let mut h = blake3::Hasher::new_derive_key("jitcache lisp definition id v1");
    h.update(symbol.as_bytes());
    u64::from_le_bytes(h.finalize().as_bytes()[..8].try_into().unwrap())
}

#[test]
fn bundled_examples_agree() {
    for src in [
        include_str!("../../../../examples/lisp/demo.clj"),
        include_str!("../../../../examples/lisp/big.clj"),
        include_str!("../../../../examples/lisp/fib.clj"),
        include_str!("../../../../examples/lisp/mutual.clj"),
    ] {
        agree(src).unwrap();
    }
}

#[test]
fn nesting_limits_agree() {
    for depth in [255, 256, 257, 300] {
        for (open, close) in [("(", ")"), ("[", "]"), ("(do ", ")")] {
            let body = format!("{}1{}", open.repeat(depth), close.repeat(depth));
            agree(&format!("(defn main [] {body})")).unwrap();
            agree(&body).unwrap();
        }
    }
}

#[test]
fn division_reports_name_the_registered_source() {
    let src = "(defn f [x]\n  (/ 10 x))\n(defn g [x] (mod x (f x)))\n(defn main [] 0)";
    let p = parse(src).unwrap();
    runtime::register_program(&p);
    let id = |name: &str, arity| {
        let symbol = crate::lisp::mangle_symbol(name, arity);
        assert_eq!(crate::lisp::def_id(&symbol), def_id_reference(&symbol));
        i64::from_ne_bytes(def_id_reference(&symbol).to_ne_bytes())
    };
    assert_eq!(
        runtime::division_message(id("f", 1), 0),
        "error: division by zero in `f` at line 2, column 3"
    );
    assert_eq!(
        runtime::division_message(id("g", 1), 0),
        "error: division by zero in `g` at line 3, column 13"
    );
    assert_eq!(
        runtime::division_message(id("g", 1), 1),
        "error: division by zero in `g`"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn generated_programs_agree(seed in any::<u64>()) {
        agree(&progen::program(seed))?;
    }

    #[test]
    fn edited_programs_agree(seed in any::<u64>(), edit_seed in any::<u64>()) {
        let src = progen::program(seed);
        let mut rng = Rng::new(edit_seed);
        let mut text = src;
        for _ in 0..=rng.below(4) {
            text = edit(&text, &mut rng);
            agree(&text)?;
        }
    }

    #[test]
    fn token_soup_agrees(tokens in prop::collection::vec(0..TOKENS.len(), 0..40)) {
        let src: String = tokens.iter().map(|&t| TOKENS[t]).collect();
        agree(&src)?;
        agree(&format!("(defn main [] {src})"))?;
        agree(&format!("(defn f [x] {src}) (defn main [] (f 1))"))?;
    }

    #[test]
    fn interface_hashes_are_unchanged(name in "\\PC{0,12}", arity in 0usize..1000) {
        prop_assert_eq!(interface_hash(&name, arity), interface_hash_reference(&name, arity));
    }
}
