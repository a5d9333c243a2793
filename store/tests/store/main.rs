//! Integration tests of jitcache-store: one binary, one module per concern. Tests that
//! need other processes re-execute this binary as a child (see `common::child_main`).

mod bad_states;
mod basic;
mod bulk;
mod checkpoint;
mod common;
mod damage;
mod eviction;
mod faults;
mod foreign;
mod key;
mod model;
mod multiprocess;
mod network_fs;
mod snapshot;
mod trim;
mod writer;

/// Entry point of child processes: does nothing in a normal run; when this binary is
/// re-executed with `JITCACHE_STORE_TEST_CHILD` set, plays that role and exits.
#[test]
fn child_process_entry() {
    common::child_main();
}
