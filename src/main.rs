//! The `jitcache` command-line tool.
fn main() {}
