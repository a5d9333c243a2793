//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong while building a backend or compiling a unit.
///
/// Every variant names what it is about: the function or symbol for Cranelift,
/// the compiler and the unit for the system compiler.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// CLIF text did not parse.
    #[error("CLIF parse error at line {line}: {message}")]
    ClifParse {
        /// 1-based line of the error in the parsed text (0: not tied to a line).
        line: usize,
        /// The parser's message.
        message: String,
    },

    /// A function's or external symbol's name cannot be used as a symbol.
    #[error("function {function}: {message}")]
    InvalidName {
        /// The function the name belongs to (as displayable as possible).
        function: String,
        /// What is wrong with the name.
        message: String,
    },

    /// Two functions of one unit define the same symbol.
    #[error("symbol {symbol} is defined more than once in the unit")]
    DuplicateSymbol {
        /// The symbol defined twice.
        symbol: String,
    },

    /// A symbol is declared in incompatible ways (signature mismatch, used
    /// both as a function and as data, ...).
    #[error("function {function}: symbol {symbol}: {message}")]
    Declaration {
        /// The function whose declaration conflicts.
        function: String,
        /// The symbol.
        symbol: String,
        /// What conflicts.
        message: String,
    },

    /// The Cranelift IR verifier rejected a function.
    #[error("function {function} failed verification:\n{errors}")]
    Verifier {
        /// The function's symbol.
        function: String,
        /// The verifier's report, with the offending instructions.
        errors: String,
    },

    /// Cranelift could not generate code for a function.
    #[error("function {function}: code generation failed: {message}")]
    Codegen {
        /// The function's symbol.
        function: String,
        /// Cranelift's message.
        message: String,
    },

    /// Writing the object file failed.
    #[error("emitting the object file failed: {message}")]
    Emit {
        /// The object writer's message.
        message: String,
    },

    /// Cranelift cannot generate code for this host.
    #[error("Cranelift does not support this host: {message}")]
    UnsupportedHost {
        /// Why.
        message: String,
    },

    /// A Cranelift setting was rejected (unknown name, bad value).
    #[error("Cranelift setting {setting:?}: {message}")]
    InvalidSetting {
        /// The setting as given (`name=value` or `name`).
        setting: String,
        /// Why it was rejected.
        message: String,
    },

    /// The configured compiler was not found.
    #[error("compiler {compiler:?} not found{}", if *.in_path { " in PATH" } else { "" })]
    CompilerNotFound {
        /// The compiler as configured.
        compiler: PathBuf,
        /// Whether `PATH` was searched (the name had no `/`).
        in_path: bool,
    },

    /// A process could not be started or waited for.
    #[error("running {program:?}: {source}")]
    Spawn {
        /// The program.
        program: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },

    /// Asking the compiler about itself (`--version`, `-dumpmachine`, `-###`) failed.
    #[error("compiler {compiler:?} {query} failed ({status}): {stderr}")]
    CompilerQuery {
        /// The compiler.
        compiler: PathBuf,
        /// The query, e.g. `--version`.
        query: String,
        /// How the process ended.
        status: String,
        /// What it printed on stderr.
        stderr: String,
    },

    /// The flags ask for the host CPU (`-march=native`, ...) but the compiler
    /// did not say which CPU that is, so the identity cannot be made exact.
    #[error(
        "compiler {compiler:?}: flag {flag:?} asks for the host CPU, but `-###` did not show what it resolves to"
    )]
    UnresolvedNative {
        /// The compiler.
        compiler: PathBuf,
        /// The flag that mentions `native`.
        flag: String,
    },

    /// The system compiler rejected a unit.
    #[error("compiling {unit} with {compiler:?} failed ({status}):\n{stderr}")]
    CompileFailed {
        /// The unit's name.
        unit: String,
        /// The compiler.
        compiler: PathBuf,
        /// How the compiler exited.
        status: String,
        /// The compiler's diagnostics.
        stderr: String,
    },

    /// The base directory of a C/C++ backend cannot be used.
    #[error("base directory {path:?}: {message}")]
    BaseDir {
        /// The directory as given.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },

    /// A file-system operation failed.
    #[error("{path:?}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },

    /// A produced object file could not be read back.
    #[error("object file for {unit}: {message}")]
    BadObject {
        /// The unit the object was compiled from.
        unit: String,
        /// What is wrong with it.
        message: String,
    },
}
