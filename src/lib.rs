//! jitcache: a persistent, content-addressed cache of compiled machine code for language
//! JITs.
//!
//! A JIT describes a unit of code with [`KeyParts`] and asks [`JitCache::get_or_compile`]
//! for it, naming a [`Backend`](jitcache_backends::Backend) that can compile it. The answer
//! comes from this process's memory, from the persistent store (`jitcache-store`), or from
//! the backend, run once, whose object is stored for every later process; the in-process
//! linker (`jitcache-linker`) maps it and hands back symbol addresses.
//!
//! The crates underneath are re-exported: [`store`], [`backends`], [`linker`].

#![forbid(unsafe_code)]

mod cache;
mod error;

pub use cache::{
    CacheStats, Config, JitCache, KeyParts, LoadedUnit, ManifestCounts, MissReason, Origin,
};
pub use error::Error;
pub use jitcache_backends as backends;
pub use jitcache_linker as linker;
pub use jitcache_store as store;

#[doc = include_str!("../docs/integration.md")]
pub mod guide {}
