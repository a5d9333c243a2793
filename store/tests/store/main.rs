//! Integration tests of jitcache-store: one binary, one module per concern. Tests that
//! need other processes re-execute this binary with `JITCACHE_STORE_TEST_CHILD` set
//! (see `common::child_main`).

mod basic;
mod common;
