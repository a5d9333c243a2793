//! The frontends' error type.

use std::path::PathBuf;

/// Everything that can go wrong running a program through a frontend.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The cache (or the backend or linker behind it) failed.
    #[error(transparent)]
    Cache(#[from] jitcache::Error),
    /// A backend could not be set up.
    #[error(transparent)]
    Backend(#[from] jitcache::backends::Error),
    /// A Lisp program could not be read or compiled.
    #[error("{}: {source}", path.display())]
    Lisp {
        /// The program.
        path: PathBuf,
        /// What is wrong, and where.
        source: crate::lisp::LispError,
    },
    /// The program is not one the frontends can run (unknown kind, no sources, no `main`).
    #[error("{}: {message}", path.display())]
    Program {
        /// The program.
        path: PathBuf,
        /// What is wrong with it.
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
}
