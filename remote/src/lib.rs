//! `jitcache-remote`: a remote tier for jitcache on S3-compatible object storage (AWS
//! S3, SeaweedFS, MinIO, Garage, Ceph RGW), so a fleet compiles each unit once.
//!
//! The local store stays the source of truth: the cache reads locally, then from the
//! [`Remote`], then compiles; a remote hit is verified and copied into the local store;
//! what a read-write machine compiles is uploaded in the background.
//!
//! # Map of the API
//!
//! | item | what it is |
//! | --- | --- |
//! | [`RemoteConfig`], [`Mode`], [`Addressing`], [`Limits`], [`BreakerConfig`], [`Credentials`], [`Secret`] | configuration, from a URL (`s3://bucket/prefix?endpoint=...&mode=rw`) and the environment |
//! | [`Remote`], [`Fetched`] | lookups that return verified bytes or nothing; queued uploads |
//! | [`RemoteStats`] | hits, misses, errors, timeouts, rejected objects, uploads, bytes, breaker events |
//! | [`ObjectStore`], `S3Store`, [`MemoryStore`], [`Failure`], [`Put`] | the object store interface, on S3 (`opendal`, feature `s3`, on by default) or in memory |
//! | [`envelope`] | the remote object format: key, hash, zstd content, optional keyed-BLAKE3 MAC |
//! | [`breaker_open_until`], [`breaker_state_name`] | the circuit breaker's state in a local cache |
//! | [`Error`] | what can be wrong with a configuration |
//!
//! # Guarantees
//!
//! - A lookup never fails and never returns unverified bytes: an absent, corrupt,
//!   truncated, mis-keyed, unsigned (when a secret is configured) or wrongly signed
//!   object, an error, a 403 or a timeout is a miss, counted.
//! - Every call is bounded ([`Limits`]): a connect timeout, a per-attempt timeout, at
//!   most one retry after a short backoff, and an overall deadline.
//! - After [`BreakerConfig::threshold`] failures in a row the remote is skipped for
//!   [`BreakerConfig::cooldown`], by every process using the same local cache.
//! - Uploads are create-only: an object already there is left alone.
//!
//! The object format and the security model are described in `docs/remote.md`.

#![forbid(unsafe_code)]

mod breaker;
mod config;
mod counters;
pub mod envelope;
mod error;
mod object_store;
mod remote;
#[cfg(feature = "s3")]
mod s3;
mod upload;

pub use breaker::{breaker_open_until, breaker_state_name};
pub use config::{
    Addressing, BreakerConfig, Credentials, Limits, Mode, REMOTE_ENV, RemoteConfig, SECRET_ENV,
    SECRET_FILE_ENV, Secret,
};
pub use counters::RemoteStats;
pub use error::Error;
pub use object_store::{Failure, MemoryStore, ObjectStore, Put};
pub use remote::{Fetched, Remote, object_path};
#[cfg(feature = "s3")]
pub use s3::S3Store;
