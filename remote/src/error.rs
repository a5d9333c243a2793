//! The crate's one error type: what can go wrong configuring or connecting the remote
//! tier. Remote failures at run time are never errors to the caller: they are counted
//! misses (see [`crate::RemoteStats`]).

use std::path::PathBuf;

/// A remote configuration that cannot be used. Each variant names what is wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The remote URL does not have the form `s3://bucket[/prefix][?param=value&...]`.
    #[error("invalid remote URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL given (credentials never appear in it).
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A query parameter of the remote URL is not one jitcache knows.
    #[error("invalid remote URL {url:?}: unknown parameter {name:?} (known: {known})")]
    UnknownParameter {
        /// The URL given.
        url: String,
        /// The parameter's name.
        name: String,
        /// The parameters that are understood.
        known: &'static str,
    },
    /// A query parameter of the remote URL has a value that cannot be used.
    #[error("invalid remote URL {url:?}: {name}={value:?}: {reason}")]
    InvalidParameter {
        /// The URL given.
        url: String,
        /// The parameter's name.
        name: String,
        /// Its value.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The shared secret for signing could not be read from its file.
    #[error("{}: cannot read the remote signing secret: {source}", path.display())]
    SecretFile {
        /// The file named by `JITCACHE_REMOTE_SECRET_FILE`.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The shared secret for signing is empty.
    #[error("the remote signing secret from {origin} is empty")]
    EmptySecret {
        /// Where it came from (an environment variable or a file).
        origin: String,
    },
    /// The object store client could not be set up (not a network failure: those happen
    /// later and are counted).
    #[error("cannot set up the remote {url:?}: {message}")]
    Client {
        /// The remote's URL.
        url: String,
        /// What the client library said.
        message: String,
    },
}
