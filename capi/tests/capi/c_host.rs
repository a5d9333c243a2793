//! The C host (`hosts/c_host.c`): a C JIT whose compiler is a compile callback.

use crate::support::{
    Link, Stats, build_host, compiles_logged, logging_compiler, run, scratch, stats, success,
};

fn callback_cold_then_warm(link: Link) {
    let exe = build_host("c_host.c", "cc", "-std=c11", link);
    let tmp = scratch("c-callback");
    let dir = tmp.path();
    let cache = dir.join("cache");
    let log = dir.join("compiles.log");
    let cc = logging_compiler(dir, "cc");
    let env = [("JITCACHE_TEST_COMPILE_LOG", log.as_path())];

    let cold = success("cold run", &run(&exe, &[&"callback", &cache, &cc], &env));
    assert_eq!(
        stats(&cold),
        Stats {
            memory_hits: 1,
            disk_hits: 0,
            misses: 3,
            compiles: 3
        },
        "{cold}"
    );
    assert!(cold.contains("callbacks=3"), "{cold}");
    assert!(cold.contains("origin hello=2"), "{cold}");
    assert_eq!(compiles_logged(&log), 3);

    // A new process: every unit from the cache, the callback never called.
    let warm = success("warm run", &run(&exe, &[&"callback", &cache, &cc], &env));
    assert_eq!(
        stats(&warm),
        Stats {
            memory_hits: 1,
            disk_hits: 3,
            misses: 0,
            compiles: 0
        },
        "{warm}"
    );
    assert!(warm.contains("callbacks=0"), "{warm}");
    assert!(warm.contains("origin hello=1"), "{warm}");
    assert_eq!(compiles_logged(&log), 3, "the warm run compiled");
}

#[test]
fn c_host_with_compile_callback_hits_the_cache_in_a_new_process() {
    callback_cold_then_warm(Link::Shared);
}

#[test]
fn c_host_linked_statically_hits_the_cache_in_a_new_process() {
    callback_cold_then_warm(Link::Static);
}

#[test]
fn c_host_raw_store_objects_resolver_libraries_unload() {
    let exe = build_host("c_host.c", "cc", "-std=c11", Link::Shared);
    let tmp = scratch("c-raw");
    let dir = tmp.path();
    let library = dir.join("libjctest.so");
    let out = std::process::Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&library)
        .arg(crate::support::hosts().join("jctest_lib.c"))
        .output()
        .expect("run cc");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    success(
        "raw",
        &run(&exe, &[&"raw", &dir.join("cache"), &"cc", &library], &[]),
    );
}

#[test]
fn c_host_threads_share_a_cache_and_compile_each_unit_once() {
    let exe = build_host("c_host.c", "cc", "-std=c11", Link::Shared);
    let tmp = scratch("c-threads");
    let dir = tmp.path();
    let out = success(
        "threads",
        &run(&exe, &[&"threads", &dir.join("cache"), &"cc"], &[]),
    );
    let stats = stats(&out);
    assert_eq!(stats.compiles, 4, "{out}");
    assert_eq!(
        stats.memory_hits + stats.disk_hits + stats.compiles,
        32,
        "{out}"
    );
    assert!(out.contains("callbacks=4"), "{out}");
}
