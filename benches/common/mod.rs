//! What the criterion benches share: the harness's fixtures (`jitcache_bench`), and
//! whether criterion runs for real.

#![allow(
    dead_code,
    unused_imports,
    reason = "each bench uses a different subset"
)]

pub use jitcache_bench::hit::SmallUnit;
pub use jitcache_bench::measure::{Rng, object_bytes};
pub use jitcache_bench::programs;
pub use jitcache_bench::scale::scale_key as key;

/// Whether criterion runs for real (`cargo bench`), rather than once per bench as a
/// test (`cargo test --benches`): fixtures are smaller in the second case.
pub fn bench_mode() -> bool {
    std::env::args().any(|a| a == "--bench")
}
