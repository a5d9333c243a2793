//! Bad input through the C API (`hosts/bad_input.c`): every case runs in its own process,
//! so a crash or an abort fails the test instead of hiding behind an error status.

use crate::support::{Link, build_host, run, scratch, success};

fn case(name: &str) {
    let exe = build_host("bad_input.c", "cc", "-std=c11", Link::Shared);
    let tmp = scratch(name);
    let dir = tmp.path();
    let out = run(&exe, &[&name, &dir.join("cache"), &"cc"], &[]);
    let stdout = success(name, &out);
    assert!(stdout.contains(&format!("ok {name}")), "{stdout}");
}

macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                case(stringify!($name));
            }
        )*
    };
}

cases!(
    null_arguments,
    invalid_utf8,
    forged_handles,
    stale_handles,
    closed_cache,
    callback_failures,
    compile_errors,
    link_errors,
    bad_values,
    bad_frees,
    reentrant,
    not_found,
    inputs,
);
