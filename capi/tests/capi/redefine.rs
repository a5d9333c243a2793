//! Redefinition through the C API (`hosts/redefine_host.c`): with the default binding
//! (stubs) a caller loaded earlier and an address handed out earlier both run the latest
//! definition, also after the old ones are unloaded; a handle of an unloaded unit is
//! `JITCACHE_ERR_STALE_HANDLE`; with `JITCACHE_BINDING_DIRECT` the first definition wins.

use crate::support::{Link, build_host, run, scratch, success};

#[test]
fn a_c_host_redefines_through_stubs_and_binds_directly_when_asked() {
    let exe = build_host("redefine_host.c", "cc", "-std=c11", Link::Shared);
    let tmp = scratch("redefine");
    let out = success(
        "redefine",
        &run(&exe, &[&tmp.path().join("cache"), &"cc"], &[]),
    );
    assert!(out.contains("stubs: g=5"), "{out}");
    assert!(out.contains("direct: kk=1"), "{out}");
}
