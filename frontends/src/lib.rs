//! The demo frontends of jitcache, and the runner behind `jitcache run`.
//!
//! - [`lisp`]: a small Clojure-like Lisp; each `defn` is one unit, compiled to Cranelift
//!   IR and keyed by its canonical form and its callees' interfaces.
//! - [`run`]: turns a program file into units with their [`KeyParts`](jitcache::KeyParts),
//!   asks a [`JitCache`](jitcache::JitCache) for all of them in one batch and calls the
//!   program's `main`: the Lisp (through Cranelift), C (through the system compiler) and
//!   CLIF text (through Cranelift).
//!
//! None of this is needed to use jitcache from a JIT: the facade (`jitcache`) knows
//! nothing of these frontends. They are what the command-line tool runs, what the demo
//! shows, and what the tests and benchmarks exercise the whole stack with.

#![forbid(unsafe_code)]

mod error;
pub mod lisp;
pub mod run;

pub use error::Error;
