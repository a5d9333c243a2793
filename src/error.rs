//! The facade's error type.

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
    /// The host's frontend could not produce the unit to compile (the error its closure
    /// returned, see [`Error::frontend`]).
    #[error("{unit}: {source}")]
    Frontend {
        /// The unit at fault.
        unit: String,
        /// What went wrong, as the frontend reported it.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A file the caller named could not be read ([`JitCache::file_digests`]).
    ///
    /// [`JitCache::file_digests`]: crate::JitCache::file_digests
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// Why it could not be read.
        source: std::io::Error,
    },
    /// A unit's closure was called a second time for the same batch entry.
    #[error("{unit}: unit requested twice")]
    UnitRequestedTwice {
        /// The unit.
        unit: String,
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

impl Error {
    /// The error of a frontend that could not produce `unit`: what a host's closure
    /// returns to [`JitCache::get_or_compile`](crate::JitCache::get_or_compile) when its
    /// own parser or lowering fails.
    ///
    /// ```
    /// let err = jitcache::Error::frontend("fib", "unbalanced parenthesis at line 3");
    /// assert_eq!(err.to_string(), "fib: unbalanced parenthesis at line 3");
    /// ```
    pub fn frontend(
        unit: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Error {
        Error::Frontend {
            unit: unit.into(),
            source: source.into(),
        }
    }
}
