//! The facade's error type.

use std::path::PathBuf;

/// Everything that can go wrong in the `jitcache` crate. Errors of the store, the backends
/// and the linker are carried whole, so their messages still name the path, unit or symbol.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store failed in a way that matters to the caller (the facade itself turns most
    /// store failures into a bypassed cache instead).
    #[error(transparent)]
    Store(#[from] jitcache_store::Error),
    /// A backend could not compile a unit.
    #[error(transparent)]
    Backend(#[from] jitcache_backends::Error),
    /// The linker could not load a unit.
    #[error(transparent)]
    Link(#[from] jitcache_linker::Error),
    /// A Lisp program could not be read or compiled.
    #[error(transparent)]
    Lisp(#[from] crate::lisp::LispError),
    /// A frontend could not produce the unit to compile.
    #[error("{unit}: {message}")]
    Frontend {
        /// The unit at fault.
        unit: String,
        /// What went wrong.
        message: String,
    },
    /// A file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A symbol the caller asked for is not defined by the loaded units.
    #[error("symbol {symbol:?} is not defined by {unit}")]
    MissingSymbol {
        /// The symbol.
        symbol: String,
        /// The unit or program that should define it.
        unit: String,
    },
}
