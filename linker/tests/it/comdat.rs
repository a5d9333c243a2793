//! C++ COMDAT groups: an inline function (and its static local, an `STB_GNU_UNIQUE`
//! symbol in its own group) defined by two objects is loaded once, within a unit and
//! across units; the `.eh_frame` entries of the copy not loaded are hidden, and
//! exceptions still pass through the copy that is.

use jitcache_linker::{Linker, call};

use crate::common::{compile_with, have, obj};

fn source(tag: &str) -> String {
    format!(
        r#"
__attribute__((noinline)) inline int &counter() {{ static int n = 0; return n; }}
__attribute__((noinline)) inline int thrower(int x) {{ if (x) throw x; return 0; }}
extern "C" long bump_{tag}() {{ return ++counter(); }}
extern "C" long counter_{tag}() {{ return (long)&counter(); }}
extern "C" long catch_{tag}(long x) {{ try {{ return thrower((int)x); }} catch (int v) {{ return v + 1; }} }}
"#
    )
}

fn objects(flags: &[&str], tag: &str) -> Option<(Vec<u8>, Vec<u8>)> {
    if !have("c++") {
        eprintln!("note: no C++ compiler; skipping the COMDAT tests");
        return None;
    }
    Some((
        compile_with(
            "c++",
            &format!("comdat_first_{tag}"),
            "cc",
            &source("first"),
            flags,
        ),
        compile_with(
            "c++",
            &format!("comdat_second_{tag}"),
            "cc",
            &source("second"),
            flags,
        ),
    ))
}

fn check(linker: &Linker, first: jitcache_linker::UnitId, second: jitcache_linker::UnitId) {
    let f = |u, name: &str| linker.symbol(u, name).unwrap_or_else(|| panic!("{name}"));
    // SAFETY: a function of that C signature in a unit still loaded.
    let call0 = |addr| unsafe { call::call_i64(addr, &[]) }.expect("call");
    assert_eq!(
        call0(f(first, "counter_first")),
        call0(f(second, "counter_second")),
        "one copy of the static local"
    );
    assert_eq!(call0(f(first, "bump_first")), 1);
    assert_eq!(call0(f(second, "bump_second")), 2);
    assert_eq!(
        // SAFETY: a function of that C signature in a unit still loaded.
        unsafe { call::call_i64(f(first, "catch_first"), &[6]) }.expect("call"),
        7
    );
    assert_eq!(
        // SAFETY: a function of that C signature in a unit still loaded.
        unsafe { call::call_i64(f(second, "catch_second"), &[8]) }.expect("call"),
        9,
        "throws through the kept copy"
    );
}

#[test]
fn comdat_groups_load_once_within_a_unit() {
    for (tag, flags) in [
        ("in_o0", &["-O0", "-fPIC"][..]),
        ("in_o2", &["-O2", "-fPIC"][..]),
    ] {
        let Some((a, b)) = objects(flags, tag) else {
            return;
        };
        let mut linker = Linker::new();
        linker.open_library("stdc++").expect("libstdc++");
        let u = linker
            .load(&[obj("first.o", &a), obj("second.o", &b)])
            .expect("load");
        check(&linker, u, u);
    }
}

#[test]
fn comdat_groups_load_once_across_units() {
    for (tag, flags) in [
        ("across_o0", &["-O0", "-fPIC"][..]),
        ("across_o2", &["-O2", "-fPIC"][..]),
    ] {
        let Some((a, b)) = objects(flags, tag) else {
            return;
        };
        let mut linker = Linker::new();
        linker.open_library("stdc++").expect("libstdc++");
        let u1 = linker.load(&[obj("first.o", &a)]).expect("load first");
        let u2 = linker.load(&[obj("second.o", &b)]).expect("load second");
        check(&linker, u1, u2);
        // Once both are gone, the group is free again: a new unit gets its own copy.
        linker.unload(u2).expect("unload second");
        linker.unload(u1).expect("unload first");
        let u3 = linker.load(&[obj("second.o", &b)]).expect("reload second");
        let bump = linker.symbol(u3, "bump_second").expect("bump_second");
        assert_eq!(
            // SAFETY: a function of that C signature in a unit still loaded.
            unsafe { call::call_i64(bump, &[]) }.expect("call"),
            1,
            "a fresh static local"
        );
    }
}
