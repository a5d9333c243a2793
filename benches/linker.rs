//! Linker benches (filled in by the linker work).
fn main() {}
