//! A small Clojure-like Lisp over 64-bit integers, compiled through Cranelift.
//!
//! Each top-level `defn` is one cache unit: [`parse`] reads and checks a
//! program, [`Def::canonical`] and [`Def::callees`] (with [`interface_hash`])
//! are the material of its cache key ([`Def::canonical_bytes`] and
//! [`Def::callee_hashes`] borrow them: they are computed once, by [`parse`]),
//! and [`compile_def`] turns it into one Cranelift IR function for the
//! Cranelift backend. Calls between definitions
//! go through symbols resolved when the code is loaded, so changing a
//! callee's body recompiles the callee alone, and changing its arity changes
//! its interface hash and so recompiles its callers too.
//!
//! ```
//! use jitcache_frontends::lisp;
//!
//! let program = lisp::parse("
//!     (defn square [x] (* x x))
//!     (defn main [] (println (square 7)) 0)  ; prints 49
//! ").unwrap();
//! let main = program.def("main").unwrap();
//! assert_eq!(main.callees(), vec![("square".to_string(), 1)]);
//! assert_eq!(main.symbol(), lisp::entry_symbol());
//! let functions = lisp::compile_def(&program, main).unwrap();
//! assert_eq!(functions.len(), 1);
//! ```
//!
//! # Language reference
//!
//! Every value is a 64-bit signed integer.
//!
//! **Lexical syntax.** Whitespace and commas separate tokens; `;` starts a
//! comment that runs to the end of the line. Integer literals are decimal
//! with an optional sign (`42`, `-7`, `+3`) and must fit in an `i64`. Symbols
//! are made of ASCII letters, digits and `* + ! - _ ? < > = / . % & $ '`,
//! and do not start with a digit (or a sign followed by a digit): `fib-iter`,
//! `even?`, `x'`. `( )` delimit forms and `[ ]` delimit parameter and binding
//! vectors. Strings, maps, keywords and reader macros (`'`, `#`, ...) are not
//! part of the language and are syntax errors.
//!
//! **Program.** A program is a sequence of `(defn name [params] body...)`
//! forms, and nothing else at top level. Definitions may call each other in
//! any order (a definition may call one further down the file, and mutual
//! recursion works). Each name is defined once. `(defn main [] ...)` must
//! exist and take no parameters: it is the entry point, and its value is the
//! process's exit status (truncated to 32 bits by the C `main` convention, then
//! to 8 bits by the operating system).
//!
//! **Forms.**
//!
//! | form | meaning |
//! | --- | --- |
//! | `(defn f [a b] body...)` | defines `f` of arity 2; the value is the last body expression (`0` if empty) |
//! | `(let [x e y f] body...)` | binds `x`, then `y` (which may use `x`), then evaluates the body; bindings may shadow |
//! | `(if c a b)` | `a` if `c` is not `0`, else `b`; `(if c a)` is `(if c a 0)` |
//! | `(do e...)` | evaluates in order, value of the last (`0` if empty) |
//! | `(loop [i 0 acc 1] body...)` | binds like `let`; a `(recur i' acc')` in tail position jumps back with new values |
//! | `(recur e...)` | in tail position only: rebinds the nearest enclosing `loop`'s bindings, or the function's parameters when there is no enclosing `loop`, and jumps back; needs exactly as many arguments as the target binds |
//! | `(f e...)` | calls the definition `f` with exactly its arity |
//! | `(+ e...)` `(* e...)` | sum (`0` for none) and product (`1` for none) |
//! | `(- a)` `(- a b...)` | negation; `a` minus each following argument |
//! | `(/ a b...)` | `a` divided by each following argument, truncating toward zero |
//! | `(mod a b)` | floored modulo, as in Clojure: the result has the sign of `b` (`(mod -7 2)` is `1`, `(mod 7 -2)` is `-1`) |
//! | `(< a b...)` `(<= ...)` `(> ...)` `(>= ...)` `(= ...)` | `1` if each adjacent pair compares true, else `0` (`1` for a single argument) |
//! | `(not e)` | `1` if `e` is `0`, else `0` |
//! | `(and e...)` | evaluates left to right and stops at the first `0` (value `0`); else the last value (`1` if empty) |
//! | `(or e...)` | evaluates left to right and stops at the first non-zero value (its value); else `0` |
//! | `(println e...)` | prints the values in decimal, separated by single spaces, then a newline; value `0` |
//!
//! `0` is false and every other integer is true. Arguments are evaluated
//! left to right, all of them before the operation (so `(println 1 (println 2))`
//! prints `2`, then `1 0`). Tail position is the last expression of a `defn`,
//! `let`, `do` or `loop` body and both branches of an `if`, when the form itself
//! is in tail position; a `loop` body's tail is always a tail position for
//! that loop. The arguments of `and` and `or` are never in tail position.
//! Locals shadow definitions of the same name; a local cannot be called and a
//! definition cannot be used as a value. The names of the special forms and
//! built-ins (and `&`) cannot be bound. Calls to definitions are ordinary
//! calls (only `recur` does not grow the stack); very deep recursion
//! overflows the native stack.
//!
//! **Arithmetic** wraps on overflow (two's complement, like Rust's
//! `wrapping_*`): `(+ 9223372036854775807 1)` is `-9223372036854775808`, and
//! `(/ -9223372036854775808 -1)` is `-9223372036854775808` (it does not trap).
//!
//! **Division by zero** (`/` or `mod` with a zero divisor) is a run-time
//! error: the output printed so far is flushed, `error: division by zero in
//! `f` at line L, column C` goes to standard error, and the process exits
//! with status 1 (see [`runtime`]).
//!
//! **Errors.** [`parse`] reports the first error as a [`LispError`] naming
//! its line and column: syntax errors, integer literals out of range, unknown
//! names, wrong arities (of definitions, built-ins and special forms),
//! duplicate definitions or parameters, `recur` outside tail position or with
//! the wrong number of arguments, malformed special forms, a missing or
//! parameterised `main`, and forms nested deeper than [`MAX_DEPTH`].
//!
//! # Code generation
//!
//! See [`compile_def`] for the shape of the generated functions,
//! [`mangle_symbol`] for symbol names and [`runtime`] for the functions
//! generated code calls.

mod ast;
mod canonical;
mod check;
mod codegen;
mod error;
mod mangle;
mod names;
mod program;
mod reader;
pub mod runtime;

#[cfg(test)]
mod tests;

use std::sync::OnceLock;

use blake3::hazmat::{ContextKey, HasherExt, hash_derive_key_context};

pub use canonical::CODEGEN_VERSION;
pub use error::{LispError, LispErrorKind, Pos};
pub use program::{Def, Program};

/// The deepest nesting of forms the frontend accepts (deeper input is a
/// [`LispErrorKind::TooDeep`] error rather than a stack overflow).
pub const MAX_DEPTH: usize = 256;

/// Parses and checks `source`: reads every form, then resolves every name
/// and checks every arity, every `recur` and the presence of `(defn main [] ...)`.
///
/// Returns the first error found, with its line and column.
pub fn parse(source: &str) -> Result<Program, LispError> {
    Program::parse(source)
}

/// The interface hash of the definition `name` with `arity` parameters:
/// BLAKE3 (in key-derivation mode, with the context
/// `"jitcache lisp interface v1"`) of the name's length as a little-endian
/// `u64`, the name's bytes and the arity as a little-endian `u64`.
///
/// A caller's compiled code depends on exactly this much of each callee
/// (the symbol it calls), so it is the dependency material of the caller's key.
pub fn interface_hash(name: &str, arity: usize) -> [u8; 32] {
    interface_hash_of(name.as_bytes(), arity)
}

/// [`interface_hash`] of a name given as bytes.
pub(crate) fn interface_hash_of(name: &[u8], arity: usize) -> [u8; 32] {
    static CONTEXT: OnceLock<ContextKey> = OnceLock::new();
    let context = CONTEXT.get_or_init(|| hash_derive_key_context("jitcache lisp interface v1"));
    // The same as `Hasher::new_derive_key` with that context, without
    // hashing the context again for every name.
    let mut h = blake3::Hasher::new_from_context_key(context);
    h.update(&u64::try_from(name.len()).unwrap_or(u64::MAX).to_le_bytes());
    h.update(name);
    h.update(&u64::try_from(arity).unwrap_or(u64::MAX).to_le_bytes());
    *h.finalize().as_bytes()
}

/// The mangled symbol of the definition `name` with `arity` parameters:
/// `jitcache_lisp_fn<ARITY>_<ESCAPED>`, where the escaped name keeps ASCII
/// letters and digits, doubles `_`, and writes any other byte as `_` and two
/// lowercase hex digits (`fib-iter`/3 is `jitcache_lisp_fn3_fib_2diter`).
///
/// The mapping is injective, uses only `[A-Za-z0-9_]`, and never collides
/// with C library names or the runtime's `jitcache_lisp_rt_*` symbols.
pub fn mangle_symbol(name: &str, arity: usize) -> String {
    mangle::mangle(name, arity)
}

/// The inverse of [`mangle_symbol`]: the `(name, arity)` a definition symbol
/// stands for, or `None` if `symbol` is not one.
pub fn demangle_symbol(symbol: &str) -> Option<(String, usize)> {
    mangle::demangle(symbol)
}

/// The symbol of the entry point `(defn main [] ...)`: `jitcache_lisp_fn0_main`.
///
/// It is an `extern "C" fn() -> i64` in the host's calling convention; its
/// value is the program's exit status. Calling it as a C `main`
/// (`int main(int, char **)`) also works on System V targets: the extra
/// arguments are ignored and the status is the low 32 bits. After it returns,
/// call [`runtime::flush`] before the process exits or writes to standard
/// output, and call [`runtime::register_program`] before running it so that a
/// division by zero is reported with its position.
pub fn entry_symbol() -> String {
    mangle::mangle("main", 0)
}

/// A 64-bit id of a definition, derived from its symbol; generated code
/// passes it to the runtime's division-by-zero reporter, which looks it up
/// among the definitions given to [`runtime::register_program`].
pub fn def_id(symbol: &str) -> u64 {
    static CONTEXT: OnceLock<ContextKey> = OnceLock::new();
    let context = CONTEXT.get_or_init(|| hash_derive_key_context("jitcache lisp definition id v1"));
    let mut h = blake3::Hasher::new_from_context_key(context);
    h.update(symbol.as_bytes());
    let bytes = h.finalize();
    let mut id = [0u8; 8];
    id.copy_from_slice(&bytes.as_bytes()[..8]);
    u64::from_le_bytes(id)
}

/// Compiles `def` (a definition of `program`) to Cranelift IR.
///
/// The result is one function named `UserFuncName::testcase(def.symbol())`
/// with the signature `(i64 × arity) -> i64` in the host's default calling
/// convention (System V on x86-64 Linux). Every call to another definition or
/// to the [`runtime`] goes through an imported function named
/// `ExternalName::testcase(symbol)`, not colocated: the object exports the
/// definition's symbol and imports its callees' symbols and the runtime's, to
/// be resolved at load time (runtime ones with [`runtime::resolve`]). No data
/// objects are used.
///
/// The generated code depends only on [`Def::canonical`] and the symbols of
/// [`Def::callees`], so those (with the backend identity) make a complete key.
pub fn compile_def(
    program: &Program,
    def: &Def,
) -> Result<Vec<cranelift_codegen::ir::Function>, LispError> {
    if program.def(def.name()).map(Def::arity) != Some(def.arity()) {
        return Err(LispError::new(
            def.pos(),
            LispErrorKind::Codegen(format!(
                "`{}` is not a definition of this program",
                def.name()
            )),
        ));
    }
    Ok(vec![codegen::compile(def)?])
}

/// The calling convention of the functions [`compile_def`] generates (the
/// host's default).
pub fn call_conv() -> Result<cranelift_codegen::isa::CallConv, LispError> {
    codegen::call_conv()
}
