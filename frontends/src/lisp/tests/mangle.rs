//! Symbol mangling.

use proptest::prelude::*;

use crate::lisp::runtime::SYMBOLS;
use crate::lisp::{demangle_symbol, entry_symbol, mangle_symbol};

#[test]
fn examples() {
    assert_eq!(mangle_symbol("fib", 1), "jitcache_lisp_fn1_fib");
    assert_eq!(mangle_symbol("fib-iter", 3), "jitcache_lisp_fn3_fib_2diter");
    assert_eq!(mangle_symbol("even?", 1), "jitcache_lisp_fn1_even_3f");
    assert_eq!(mangle_symbol("a_b", 0), "jitcache_lisp_fn0_a__b");
    assert_eq!(mangle_symbol("<=>", 12), "jitcache_lisp_fn12__3c_3d_3e");
    assert_eq!(entry_symbol(), "jitcache_lisp_fn0_main");
    let p = super::ok("(defn main [] 0)");
    assert_eq!(p.main().unwrap().symbol(), entry_symbol());
}

#[test]
fn demangle_rejects_what_mangle_never_produces() {
    for s in [
        "main",
        "printf",
        "jitcache_lisp_rt_print_i64",
        "jitcache_lisp_fn",
        "jitcache_lisp_fn_main",
        "jitcache_lisp_fnx_main",
        "jitcache_lisp_fn01_main",
        "jitcache_lisp_fn1_a_",
        "jitcache_lisp_fn1_a_4",
        "jitcache_lisp_fn1_a_41", // `A` is never escaped
        "jitcache_lisp_fn1_a_3F", // uppercase hex is never produced
        "jitcache_lisp_fn1_a-b",
    ] {
        assert_eq!(demangle_symbol(s), None, "{s}");
    }
}

#[test]
fn runtime_symbols_are_not_definition_symbols() {
    for s in SYMBOLS {
        assert!(s.starts_with("jitcache_lisp_rt_"));
        assert_eq!(demangle_symbol(s), None);
    }
}

proptest! {
    /// Mangling is injective (demangling inverts it), uses only
    /// `[A-Za-z0-9_]`, and keeps the fixed prefix.
    #[test]
    fn mangle_round_trips(name in "[a-zA-Z0-9*+!_?<>=/.%&$'-]{1,12}|\\PC{1,6}", arity in 0usize..100_000) {
        let s = mangle_symbol(&name, arity);
        prop_assert!(s.starts_with("jitcache_lisp_fn"));
        prop_assert!(s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'), "{}", s);
        prop_assert_eq!(demangle_symbol(&s), Some((name, arity)));
    }

    #[test]
    fn distinct_inputs_give_distinct_symbols(
        a in "[a-z_?-]{1,4}", b in "[a-z_?-]{1,4}", x in 0usize..20, y in 0usize..20
    ) {
        prop_assert_eq!(mangle_symbol(&a, x) == mangle_symbol(&b, y), a == b && x == y);
    }
}
