//! Tests of the Lisp frontend.
//!
//! - `reader`, `check`: positions, every error kind, accepted forms;
//! - `canonical`, `mangle`: the cache-key material and symbols (proptests);
//! - `codegen`: every generated function passes the Cranelift verifier and
//!   compiles for the host; shape of names, signatures and imports;
//! - `progen` and `interp`: a random program generator and a reference
//!   interpreter over the checked AST, used by `codegen` and `run`;
//! - `run`: end to end through the Cranelift backend and the linker;
//! - `sexp`: read data as owned trees, and the canonical encoding written
//!   from its documented layout, as references for the reader;
//! - `differential` and `oracle`: the frontend against a frozen copy of the
//!   one it replaced (tree reader, eager checker): same errors, key material
//!   and bodies on generated and randomly edited programs;
//! - `golden`: the generated IR of a fixed program, pinned with the codegen version;
//! - `perf`: timings of the warm path, printed (run by hand, in release).

mod canonical;
mod check;
mod codegen;
mod differential;
mod golden;
mod interp;
mod mangle;
mod oracle;
mod perf;
mod progen;
mod reader;
mod run;
mod sexp;

use super::{LispError, LispErrorKind, Pos, Program, parse};

/// Parses a program that must be valid.
#[track_caller]
fn ok(source: &str) -> Program {
    match parse(source) {
        Ok(p) => p,
        Err(e) => panic!("unexpected error: {e}\n{source}"),
    }
}

/// Parses a program that must be invalid, returning the error.
#[track_caller]
fn err(source: &str) -> LispError {
    match parse(source) {
        Ok(_) => panic!("expected an error:\n{source}"),
        Err(e) => e,
    }
}

/// Asserts the error of `source` is at `line`:`column` and returns its kind.
#[track_caller]
fn err_at(source: &str, line: u32, column: u32) -> LispErrorKind {
    let e = err(source);
    assert_eq!(
        e.pos,
        Pos::new(line, column),
        "wrong position for error `{e}` in:\n{source}"
    );
    e.kind
}
