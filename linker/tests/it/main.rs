//! Integration tests of `jitcache-linker`, one binary with a module per area.

mod arena;
mod comdat;
mod common;
mod cranelift;
mod errors;
mod mutation;
mod redefine;
mod tls;
mod units;
mod unwind;
