//! End to end: compile with the Cranelift backend, load with the linker, run.
