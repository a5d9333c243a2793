//! Links the `jitcache` binary as a position-dependent executable (`-no-pie`).
//!
//! A position-independent executable is relocated by the dynamic loader at every start:
//! this binary has about 27,000 relative relocations, and applying them copies every
//! page of its read-only-after-relocation data (about 100 pages) before `main`. Linked
//! at a fixed address it needs none of them: a bare `jitcache --version` takes
//! 1.25 ms instead of 1.6 ms and 136 page faults instead of 238, and every `jitcache
//! run` saves the same. The library crates are unaffected (a runtime embedding jitcache
//! links its own executable as it likes), and so are the load addresses of everything
//! else the process maps: libraries, heap, stacks and the code jitcache loads.
//!
//! Set `JITCACHE_CLI_PIE=1` when building to keep the default position-independent
//! executable (for a distribution whose policy requires one).

fn main() {
    println!("cargo:rerun-if-env-changed=JITCACHE_CLI_PIE");
    if std::env::var_os("JITCACHE_CLI_PIE").is_some_and(|v| v != "0") {
        return;
    }
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if target_os == "linux" {
        println!("cargo:rustc-link-arg-bin=jitcache=-no-pie");
    }
}
