//! `jitcache-store`: a content-addressed, multi-process store of compiled objects.
//!
//! A JIT computes a [`Key`] from everything that can change the code it would compile
//! ([`KeyBuilder`]); on a miss it compiles and [`Store::put`]s the object bytes; every
//! later lookup, in this process or another, [`Store::get`]s them back, verified.
//!
//! # Map of the API
//!
//! | item | what it is |
//! | --- | --- |
//! | [`KeyBuilder`], [`Key`], [`FlagOrder`] | build a key from namespace, unit name and bytes, backend, flags, target, dependency interface hashes |
//! | [`KeyComponents`], [`KeyField`] | per-field digests of a key, to explain a miss ("flags changed") |
//! | [`Store::open`], [`StoreConfig`], [`Durability`], [`Clock`] | open (or create) a cache directory |
//! | [`Store::get`], [`Store::get_into`] | verified read: the bytes stored, or a miss; never wrong bytes |
//! | [`Store::put`], [`Store::put_with`], [`EntryMeta`] | store bytes under a key |
//! | [`Store::put_many`], [`PutEntry`] | store many entries in one index transaction, writing each distinct blob once |
//! | [`Store::put_background`], [`Store::flush_writes`] | hand a put to the bounded background writer; wait for it |
//! | [`Store::remove`], [`Store::clear`] | forget one entry, or all |
//! | [`Store::gc`], [`GcOptions`], [`GcReport`], [`Store::gc_steps`], [`GcRun`] | LRU eviction to a size cap; orphan and temp file removal; in short steps |
//! | [`Store::verify`], [`VerifyReport`], [`DamagedBlob`], [`Store::verify_steps`], [`VerifyRun`] | check every blob; optionally repair; in short steps |
//! | [`Store::record_backend`], [`Store::prune_foreign`], [`StoreConfig::foreign_after`] | foreign entries first: entries of backend identities this machine no longer uses are evicted before LRU |
//! | [`Store::max_size`], [`Store::set_max_size_setting`], [`MAX_SIZE_ENV`], [`StoreConfig::max_size`] | automatic size management: a trim in the background, at most once per interval across processes |
//! | [`Store::stats`], [`Stats`], [`Store::for_each_entry`], [`EntryInfo`] | what is in the cache, hit and miss counts |
//! | [`Store::last_unit`], [`UnitRecord`], [`UnitState`] | the last entry stored for a unit, to explain a miss |
//! | [`Store::lock_compile`], [`CompileLock`] | single flight: one compiler per missing key across processes |
//! | [`BlobId`], [`Damage`], [`Store::blob_path`] | blob names and what can be wrong with a blob file |
//! | [`ManualClock`], [`PausePoint`] | test hooks: a settable clock, a pause between the steps of a put |
//! | [`Progress`], [`NoProgress`] | progress reports for long work |
//! | [`Error`] | everything that can go wrong, each naming its path ([`Error::Busy`]: a bounded wait ran out) |
//!
//! # Example
//!
//! ```no_run
//! use jitcache_store::{FlagOrder, KeyBuilder, Store, StoreConfig};
//!
//! # fn main() -> Result<(), jitcache_store::Error> {
//! let store = Store::open("/tmp/my-cache", StoreConfig::default())?;
//! let key = KeyBuilder::new("c", "hello.c")
//!     .unit(b"int main(void) { return 0; }")
//!     .backend("cc", "gcc 14.2.0")
//!     .flags(["-O2", "-fPIC"], FlagOrder::Unordered)
//!     .target("x86_64-unknown-linux-gnu")
//!     .build();
//! let object = match store.get(&key)? {
//!     Some(bytes) => bytes,
//!     None => {
//!         let bytes = b"\x7fELF...".to_vec(); // compile here
//!         store.put(&key, &bytes)?;
//!         bytes
//!     }
//! };
//! # let _ = object;
//! # Ok(())
//! # }
//! ```
//!
//! # Guarantees
//!
//! - Every read checks the decompressed bytes against the BLAKE3 they are named by. A
//!   damaged, truncated or missing blob is a miss: the entry is evicted and the event
//!   counted.
//! - Blobs are written to `tmp/` and renamed into place before they are indexed, so a
//!   writer killed at any point leaves no half-written blob visible.
//! - A hit is not a write: last-access times and hit/miss counters are batched in
//!   memory ([`StoreConfig::access_flush_interval`], [`Store::flush`], drop).
//! - gc, verify and clear work in short steps, each holding for a few milliseconds a
//!   lock that writers take shared from writing a blob until it is indexed; readers take
//!   no lock.
//! - Every wait in a JIT's path is bounded: a lookup that cannot read the index within
//!   [`StoreConfig::lookup_timeout`] is a miss; a put that cannot be written within
//!   [`StoreConfig::write_timeout`] fails with [`Error::Busy`] and is counted; a flush
//!   of access times due during a lookup never waits on another process.
//!
//! The on-disk format (key encoding, schema, blob format, locking protocol) is
//! described in `docs/format.md`.

#![forbid(unsafe_code)]

mod blob;
mod checkpoint;
mod clock;
mod component_dir;
mod component_values;
mod config;
mod entry;
mod error;
mod filesystem;
mod flight;
mod foreign;
mod gc;
mod index;
mod key;
mod layout;
mod lock;
mod pause_point;
mod progress;
mod read_counters;
mod stats;
mod step;
mod store;
pub mod sync;
mod trim;
mod verify;
mod writer;

pub use blob::{BLOB_FORMAT_VERSION, BlobId, Damage, split_stored};
pub use clock::{Clock, ManualClock};
pub use config::{Durability, StoreConfig};
pub use entry::{EntryInfo, EntryMeta, PutEntry, UnitRecord, UnitState};
pub use error::Error;
pub use filesystem::FSTYPE_ENV;
pub use flight::CompileLock;
pub use gc::{GcOptions, GcReport, GcRun};
pub use index::SCHEMA_VERSION;
pub use key::{FlagOrder, KEY_FORMAT_VERSION, Key, KeyBuilder, KeyComponents, KeyField};
pub use layout::FORMAT_DIR;
pub use pause_point::{PAUSE_ENV, PausePoint};
pub use progress::{NoProgress, Progress};
pub use stats::Stats;
pub use store::Store;
pub use trim::{MAX_SIZE_ENV, parse_size};
pub use verify::{DamagedBlob, VerifyReport, VerifyRun};
