//! jitcache: a persistent, content-addressed cache of compiled machine code for language JITs.

pub mod lisp;

pub use jitcache_store as store;
