//! The store through the C API (`hosts/store_host.c`): background writes flushed and
//! seen by the next process; a cache directory on a network file system bypassed,
//! with the reason.

use crate::support::{Link, build_host, run, scratch, success};

#[test]
fn background_writes_are_flushed_for_the_next_process() {
    let exe = build_host("store_host.c", "cc", "-std=c11", Link::Shared);
    let tmp = scratch("c-background");
    let cache = tmp.path().join("cache");
    success(
        "background",
        &run(&exe, &[&"background", &cache, &"cc"], &[]),
    );
    let warm = success("warm", &run(&exe, &[&"warm", &cache, &"cc"], &[]));
    assert!(warm.contains("ok warm"), "{warm}");
}

#[test]
fn a_cache_on_nfs_is_bypassed_with_the_reason() {
    let exe = build_host("store_host.c", "cc", "-std=c11", Link::Shared);
    let tmp = scratch("c-nfs");
    let cache = tmp.path().join("cache");
    let mut cmd = std::process::Command::new(&exe);
    cmd.arg("bypassed")
        .arg(&cache)
        .env("JITCACHE_STORE_FSTYPE", "nfs");
    let out = cmd.output().expect("run host");
    let stdout = success("bypassed", &out);
    assert!(stdout.contains("ok bypassed"), "{stdout}");
}
