//! Store benches (filled in by the store work).
fn main() {}
