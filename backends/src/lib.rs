//! Compiler backends for jitcache.
//!
//! A [`Backend`] turns a unit into an ELF relocatable object
//! ([`CompiledObject`]) and has a [`BackendIdentity`]: everything about it
//! that can change the object (name, version, flags, target and CPU
//! features), which a cache mixes into its keys. Two backends:
//!
//! - [`CraneliftBackend`] compiles [`ClifUnit`]s (Cranelift IR functions, built
//!   in memory or parsed from CLIF text) for the host CPU;
//! - [`CcBackend`] runs the system C or C++ compiler on a [`SourceUnit`].
//!
//! This crate knows nothing of the store or the linker: it produces bytes.
//! Every public item is re-exported at the crate root; the [`cranelift`] and
//! [`cc`] modules group them by backend.
//!
//! # Example
//!
//! ```
//! use jitcache_backends::{Backend, ClifUnit, CraneliftBackend, CraneliftConfig, OptLevel};
//!
//! let backend = CraneliftBackend::new(CraneliftConfig {
//!     opt_level: OptLevel::Speed,
//!     ..CraneliftConfig::default()
//! })?;
//! let unit = ClifUnit::parse(
//!     "function %square(i64) -> i64 {
//!      block0(v0: i64):
//!          v1 = imul v0, v0
//!          return v1
//!      }
//!
//!      function %main() -> i32 {
//!          fn0 = %square(i64) -> i64
//!          fn1 = %puts(i64) -> i32
//!      block0:
//!          v0 = iconst.i64 7
//!          v1 = call fn0(v0)
//!          v2 = ireduce.i32 v1
//!          return v2
//!      }",
//! )?;
//! let object = backend.compile(&unit)?;
//! assert_eq!(object.symbols, ["square", "main"]);
//!
//! let id = backend.identity();
//! assert_eq!(id.name, "cranelift");
//! assert!(id.flags.contains(&"opt_level=speed".to_owned()));
//! # Ok::<(), jitcache_backends::Error>(())
//! ```

#![forbid(unsafe_code)]

mod backend;
pub mod cc;
pub mod cranelift;
mod error;
mod symbols;

pub use backend::{Backend, BackendIdentity, CompiledObject, Inputs};
pub use cc::{CcBackend, CcBuilder, CcConfig, Language, OUTPUT_ENV_VARS, SourceUnit};
pub use cranelift::{ClifUnit, CraneliftBackend, CraneliftConfig, LOWERING_REVISION, OptLevel};
pub use error::Error;
pub use symbols::defined_symbols;

/// Re-export of the Cranelift IR crate this backend compiles, so frontends
/// build [`ClifUnit`] functions with exactly the same version.
pub use cranelift_codegen;
