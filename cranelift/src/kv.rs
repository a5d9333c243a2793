//! [`PersistentKvStore`]: Cranelift's incremental-cache storage on jitcache's store.

use std::borrow::Cow;
use std::cell::Cell;
use std::path::{Path, PathBuf};

use cranelift_codegen::incremental_cache::CacheKvStore;
use jitcache_store::KeyBuilder;

use crate::key::{self, KV_NAMESPACE};
use crate::tier::{Location, Tier};

/// What a [`PersistentKvStore`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KvStats {
    /// `get` calls that found an entry.
    pub hits: u64,
    /// `get` calls that found none.
    pub misses: u64,
    /// `insert` calls.
    pub inserts: u64,
    /// Entries written to the store (inserts are written in batches).
    pub stored: u64,
    /// Why the store is not used, when it is not.
    pub bypassed: Option<String>,
}

/// A persistent implementation of Cranelift's `incremental_cache::CacheKvStore`, for
/// embedders that call `Context::compile_with_cache` themselves.
///
/// Entries live in jitcache's store, with everything else in the cache directory: each
/// read is verified against its hash (a damaged entry is a miss), any number of
/// processes share the directory, and `jitcache gc` evicts entries in least recently
/// used order with the rest. Inserts are queued and written in one transaction by
/// [`PersistentKvStore::flush`], when many are queued, and on drop; a `get` sees the
/// queued ones.
///
/// Cranelift's keys cover the function's stencil and the ISA with its flags; the store's
/// key adds Cranelift's version and [`CACHE_REVISION`](crate::CACHE_REVISION). Opening
/// never fails: an unusable directory gives a store that misses every `get` and writes
/// nothing, with one warning on stderr.
///
/// ```
/// use cranelift_codegen::control::ControlPlane;
/// use cranelift_codegen::ir::{types, AbiParam, Function, InstBuilder, Signature, UserFuncName};
/// use cranelift_codegen::isa::CallConv;
/// use cranelift_codegen::{Context, settings};
/// use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
/// use jitcache_cranelift::PersistentKvStore;
///
/// let isa = cranelift_native::builder()?.finish(settings::Flags::new(settings::builder()))?;
/// let mut sig = Signature::new(CallConv::SystemV);
/// sig.returns.push(AbiParam::new(types::I64));
/// let mut func = Function::with_name_signature(UserFuncName::default(), sig);
/// let mut fctx = FunctionBuilderContext::new();
/// let mut b = FunctionBuilder::new(&mut func, &mut fctx);
/// let block = b.create_block();
/// b.switch_to_block(block);
/// let v = b.ins().iconst(types::I64, 42);
/// b.ins().return_(&[v]);
/// b.seal_all_blocks();
/// b.finalize(isa.frontend_config());
///
/// let dir = tempfile::tempdir()?;
/// for expect_hit in [false, true] {
///     // A new store each time, as a new process would open it.
///     let mut store = PersistentKvStore::open(dir.path());
///     let mut ctx = Context::for_function(func.clone());
///     let (_, hit) = ctx
///         .compile_with_cache(&*isa, &mut store, &mut ControlPlane::default())
///         .map_err(|e| e.inner)?;
///     assert_eq!(hit, expect_hit);
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct PersistentKvStore {
    tier: Tier,
    prototype: KeyBuilder,
    hits: Cell<u64>,
    misses: Cell<u64>,
    inserts: u64,
    stored: u64,
}

impl std::fmt::Debug for PersistentKvStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PersistentKvStore")
            .field("dir", &self.tier.dir())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl PersistentKvStore {
    /// Opens the store in `dir` (created, mode 0700, if needed).
    pub fn open(dir: impl Into<PathBuf>) -> PersistentKvStore {
        PersistentKvStore::at(&Location::Dir(dir.into()))
    }

    /// Opens the store where the `jitcache` tool keeps its cache
    /// ([`default_cache_dir`](crate::default_cache_dir)).
    pub fn open_default() -> PersistentKvStore {
        PersistentKvStore::at(&Location::Default)
    }

    fn at(location: &Location) -> PersistentKvStore {
        PersistentKvStore {
            tier: Tier::open(location),
            prototype: key::kv_prototype(),
            hits: Cell::new(0),
            misses: Cell::new(0),
            inserts: 0,
            stored: 0,
        }
    }

    /// The cache directory, when one was found.
    pub fn dir(&self) -> Option<&Path> {
        self.tier.dir()
    }

    /// Writes the queued inserts now, in one transaction.
    pub fn flush(&mut self) {
        self.stored += self.tier.flush();
    }

    /// What the store did so far.
    pub fn stats(&self) -> KvStats {
        KvStats {
            hits: self.hits.get(),
            misses: self.misses.get(),
            inserts: self.inserts,
            stored: self.stored,
            bypassed: self.tier.bypassed(),
        }
    }

    fn key(&self, key: &[u8]) -> jitcache_store::Key {
        self.prototype.key_of(KV_NAMESPACE, "", key, &[])
    }
}

impl CacheKvStore for PersistentKvStore {
    fn get(&self, key: &[u8]) -> Option<Cow<'_, [u8]>> {
        let found = self.tier.get(&self.key(key));
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.set(counter.get() + 1);
        found.map(Cow::Owned)
    }

    fn insert(&mut self, key: &[u8], val: Vec<u8>) {
        self.inserts += 1;
        let key = self.key(key);
        self.stored += self
            .tier
            .put_later(key, val, format!("{KV_NAMESPACE}/function"));
    }
}
