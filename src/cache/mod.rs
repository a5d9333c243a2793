//! The facade: [`JitCache`] answers "callable code for this unit" from memory, from the
//! store, or from a backend it runs once.
//!
//! A lookup's levels are the steps of `batch`; `local` and `remote` read and write the
//! two persistent tiers, `pack` holds a batch's objects as one entry, `manifest` what a
//! unit's object depends on besides the unit (a C unit's headers), `batch_manifest` the
//! same for a whole batch in one entry, `file_digests` the digests of files a frontend
//! keys units by, and `explain` says why a unit missed.

mod batch;
mod batch_manifest;
mod explain;
mod file_digests;
mod local;
mod manifest;
mod pack;
mod remote;
mod stats;
#[cfg(test)]
mod tests;

pub use explain::MissReason;
pub use manifest::ManifestCounts;
pub use stats::CacheStats;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use jitcache_backends::{Backend, BackendIdentity};
use jitcache_linker::{Binding, Linker, Symbol, UnitId};
use jitcache_remote::{Remote, RemoteConfig};
use jitcache_store::sync::lock;
use jitcache_store::{FlagOrder, Key, KeyBuilder, KeyComponents, Store, StoreConfig};

use crate::Error;

/// How a [`JitCache`] behaves.
#[derive(Clone, Debug)]
pub struct Config {
    /// The store's configuration (compression level, durability, ...).
    pub store: StoreConfig,
    /// Whether to use the persistent cache at all. `false` compiles every unit (what
    /// `jitcache run --no-cache` does); the in-process map still serves repeats.
    pub persistent: bool,
    /// How long a process waits for another one compiling the same key before it
    /// compiles the unit itself.
    pub single_flight_timeout: Duration,
    /// A remote tier shared by a fleet (S3-compatible object storage), consulted after a
    /// local miss and filled by read-write machines; see `docs/remote.md`. Used only
    /// with the persistent cache.
    pub remote: Option<RemoteConfig>,
    /// How loaded units' functions are reached (default [`Binding::Stubs`]): through a
    /// stub per exported name, so that a unit loaded later with a new definition of a
    /// name (a REPL redefining `f`) is what every earlier caller runs next; or
    /// [`Binding::Direct`], faster, where the first definition loaded wins. See
    /// "Redefinition" in `docs/linker.md`.
    pub binding: Binding,
    /// Whether compiled code is stored by the store's background writer
    /// ([`Store::put_background`]) instead of on the compiling thread (default true).
    ///
    /// A compile then costs a copy into a bounded queue instead of a compression, a
    /// blob write and an index commit; the code is usable in this process at once, and
    /// the compile lock is kept until the entry is written, so other processes wait
    /// for it rather than compile it again. A Rust program drops its `JitCache` (or
    /// calls [`JitCache::flush_writes`]), and the drop writes what is queued, waiting a
    /// bounded time; so it is the default here. `jitcache run` and the C API turn it
    /// off by default: a program run by them may end the process with `exit()` before
    /// anything is dropped, and queued writes would be lost (recompiled next time).
    pub background_writes: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            store: StoreConfig::default(),
            persistent: true,
            single_flight_timeout: Duration::from_secs(60),
            remote: None,
            binding: Binding::Stubs,
            background_writes: true,
        }
    }
}

/// What identifies a unit, apart from the backend: the key is made of these and the
/// backend's [`BackendIdentity`].
#[derive(Clone, Copy, Debug)]
pub struct KeyParts<'a> {
    /// The frontend or language (`lisp`, `c`, `clif`, `jank`, ...).
    pub namespace: &'a str,
    /// The unit's name, unique within the namespace for a program (used to explain misses).
    pub name: &'a str,
    /// The unit's canonical bytes: source, parsed form or IR.
    pub unit: &'a [u8],
    /// Interface hashes of what the unit depends on at compile time (a callee's arity, an
    /// inlined constant). A set: order does not matter.
    pub deps: &'a [[u8; 32]],
}

impl KeyParts<'_> {
    /// The key of these parts compiled by a backend with identity `backend`.
    pub fn components(&self, backend: &BackendIdentity) -> KeyComponents {
        self.components_with(&backend_builder(backend))
    }

    /// The key of these parts, given a builder that already holds the backend's part
    /// (see [`backend_builder`]).
    fn components_with(&self, backend: &KeyBuilder) -> KeyComponents {
        let mut builder = backend.for_unit(self.namespace, self.name);
        builder.unit(self.unit);
        for dep in self.deps {
            builder.dep(dep);
        }
        builder.components()
    }
}

/// A key builder holding the digests of a backend's identity: name and version, flags
/// (ordered or not, as the backend says) and target.
fn backend_builder(backend: &BackendIdentity) -> KeyBuilder {
    let order = if backend.flags_ordered {
        FlagOrder::Ordered
    } else {
        FlagOrder::Unordered
    };
    let mut builder = KeyBuilder::new("", "");
    builder
        .backend(&backend.name, &backend.version)
        .flags(&backend.flags, order)
        .target(&backend.target);
    builder
}

/// Where a unit's code came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Already loaded in this process.
    Memory,
    /// Read from the persistent store and linked.
    Disk,
    /// Fetched from the remote tier, verified, copied into the persistent store and linked.
    Remote,
    /// Compiled by the backend (and stored, unless the cache was bypassed), for this reason.
    Compiled(MissReason),
}

/// A loaded unit: its key, where it came from, and its symbols as handles.
#[derive(Clone)]
pub struct LoadedUnit {
    key: Key,
    name: String,
    origin: Origin,
    /// The link unit holding this unit's code (one per batch).
    link: UnitId,
    linker: Arc<Mutex<Linker>>,
}

impl std::fmt::Debug for LoadedUnit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedUnit")
            .field("key", &self.key)
            .field("name", &self.name)
            .field("origin", &self.origin)
            .field("link", &self.link)
            .finish()
    }
}

impl LoadedUnit {
    /// The unit's cache key.
    pub fn key(&self) -> Key {
        self.key
    }

    /// The unit's name, as given in its [`KeyParts`].
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where this unit's code came from in the call that returned it.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// A global symbol defined by this unit (or by a unit loaded in the same batch), as a
    /// handle that carries the unit's lifetime: its calls return
    /// [`jitcache_linker::Error::UnitUnloaded`] once the unit is unloaded. With
    /// [`Binding::Stubs`] a function's address is its stub, which runs the latest
    /// definition of the name. `None` if the unit does not define it or is unloaded.
    pub fn symbol(&self, name: &str) -> Option<Symbol> {
        lock(&self.linker).symbol_handle(self.link, name)
    }

    /// [`LoadedUnit::symbol`], or [`Error::MissingSymbol`].
    pub fn require(&self, name: &str) -> Result<Symbol, Error> {
        self.symbol(name).ok_or_else(|| Error::MissingSymbol {
            symbol: name.to_owned(),
            unit: self.name.clone(),
        })
    }

    /// The id of the link unit that holds this unit's code.
    pub fn link_unit(&self) -> UnitId {
        self.link
    }
}

/// A unit loaded in this process, with its object kept for relinking.
#[derive(Clone)]
struct Resident {
    unit: LoadedUnit,
    object: pack::Object,
}

/// A persistent cache of compiled code with a backend behind it.
///
/// `JitCache` never fails a compile because of the cache: if the cache directory is
/// unusable (read-only, full, refused for its permissions) it warns once on stderr,
/// compiles and loads without it, and [`CacheStats::bypassed`] says why.
///
/// ```no_run
/// use jitcache::{Config, JitCache, KeyParts};
/// use jitcache_backends::cranelift::{ClifUnit, CraneliftBackend, CraneliftConfig};
///
/// let cache = JitCache::open("/tmp/my-jit-cache", Config::default());
/// let backend = CraneliftBackend::new(CraneliftConfig::default())?;
/// let clif = "function %answer() -> i64 { block0: v0 = iconst.i64 42; return v0 }";
/// let parts = KeyParts { namespace: "clif", name: "answer", unit: clif.as_bytes(), deps: &[] };
/// let unit = cache.get_or_compile(&parts, &backend, || Ok(ClifUnit::parse(clif)?))?;
/// let answer = unit.require("answer")?.call_i64(&[])?;
/// assert_eq!(answer, 42);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct JitCache {
    dir: PathBuf,
    config: Config,
    store: Option<Arc<Store>>,
    /// The remote tier, when configured and the persistent store is usable.
    remote: Option<Remote>,
    linker: Arc<Mutex<Linker>>,
    /// How the next loads bind ([`Config::binding`], changed by [`JitCache::set_binding`]).
    binding: Mutex<Binding>,
    /// Units loaded in this process, by the key their object is stored under.
    loaded: Mutex<HashMap<Key, Resident>>,
    /// The manifests this process read or wrote, by unit key.
    manifests: Mutex<HashMap<Key, manifest::Manifest>>,
    stats: Mutex<CacheStats>,
    warned: AtomicBool,
    writes_failed: AtomicBool,
    /// Whether writes go to the store's background writer ([`Config::background_writes`]).
    background_writes: AtomicBool,
    /// Key builders holding the digests of the backends seen so far: a Cranelift identity
    /// has about a hundred flags, too many to hash again for every unit.
    backends: Mutex<Vec<(BackendIdentity, KeyBuilder)>>,
}

impl JitCache {
    /// Opens (or creates) the cache in `dir`. Never fails: an unusable directory gives a
    /// cache that compiles everything, with one warning.
    pub fn open(dir: impl AsRef<Path>, config: Config) -> JitCache {
        let dir = dir.as_ref().to_path_buf();
        let mut stats = CacheStats::default();
        let store = if config.persistent {
            match Store::open(&dir, config.store.clone()) {
                Ok(store) => Some(Arc::new(store)),
                Err(err) => {
                    stats.bypassed = Some(err.to_string());
                    None
                }
            }
        } else {
            stats.bypassed = Some("the persistent cache is disabled".to_owned());
            None
        };
        let remote = remote::connect(config.remote.as_ref(), store.as_ref());
        let cache = JitCache {
            dir,
            store,
            remote,
            linker: Arc::new(Mutex::new(Linker::new())),
            binding: Mutex::new(config.binding),
            loaded: Mutex::new(HashMap::new()),
            manifests: Mutex::new(HashMap::new()),
            stats: Mutex::new(stats),
            warned: AtomicBool::new(false),
            writes_failed: AtomicBool::new(false),
            background_writes: AtomicBool::new(config.background_writes),
            backends: Mutex::new(Vec::new()),
            config,
        };
        if cache.config.persistent && cache.store.is_none() {
            let reason = lock(&cache.stats).bypassed.clone().unwrap_or_default();
            cache.warn(&reason);
        }
        cache
    }

    /// The cache directory this cache was opened on.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The persistent store, unless the cache is bypassed.
    pub fn store(&self) -> Option<&Store> {
        self.store.as_deref()
    }

    /// Turns the background writer on or off for later writes
    /// ([`Config::background_writes`]); turning it off does not wait for queued writes
    /// (see [`JitCache::flush_writes`]).
    pub fn set_background_writes(&self, enabled: bool) {
        self.background_writes.store(enabled, Ordering::Relaxed);
    }

    /// Waits, at most `timeout`, until every write queued for the background writer is
    /// in the store, where other processes see it. Returns how many are still queued:
    /// 0 when all are written (or when nothing was queued, or the cache is bypassed).
    pub fn flush_writes(&self, timeout: Duration) -> usize {
        self.store
            .as_ref()
            .map_or(0, |store| store.flush_writes(timeout))
    }

    /// A private directory of the cache for a component's own files (see
    /// [`Store::component_dir`]); `None` when the cache is bypassed or the directory
    /// cannot be made.
    pub fn component_dir(&self, name: &str) -> Option<PathBuf> {
        self.store.as_ref()?.component_dir(name).ok()
    }

    /// How units loaded from now on bind their functions (initially [`Config::binding`]);
    /// units already loaded keep theirs.
    pub fn set_binding(&self, binding: Binding) {
        *lock(&self.binding) = binding;
    }

    /// How the next loads bind their functions.
    pub fn binding(&self) -> Binding {
        *lock(&self.binding)
    }

    /// The linker, to open shared libraries or set a symbol resolver before loading.
    pub fn linker(&self) -> MutexGuard<'_, Linker> {
        lock(&self.linker)
    }

    /// A snapshot of this process's statistics.
    pub fn stats(&self) -> CacheStats {
        let mut stats = lock(&self.stats).clone();
        stats.remote = self.remote.as_ref().map(Remote::stats);
        stats
    }

    /// Prints the one warning about an unusable cache.
    fn warn(&self, reason: &str) {
        if !self.warned.swap(true, Ordering::Relaxed) {
            eprintln!(
                "jitcache: warning: cache at {} is unusable, compiling without it: {reason}",
                self.dir.display()
            );
        }
    }

    /// Records that the cache could not be used for `reason`, and warns once.
    fn bypass(&self, reason: String) {
        self.warn(&reason);
        lock(&self.stats).bypassed.get_or_insert(reason);
    }

    /// Returns the loaded unit for `parts`, compiled by `backend` from what `unit` produces,
    /// from the first level that has it: this process, the store, the remote tier, the
    /// backend.
    ///
    /// `unit` runs only on a miss, so a frontend can defer lowering to IR until needed.
    pub fn get_or_compile<B>(
        &self,
        parts: &KeyParts<'_>,
        backend: &B,
        unit: impl FnOnce() -> Result<B::Unit, Error>,
    ) -> Result<LoadedUnit, Error>
    where
        B: Backend,
        B::Unit: Sized,
    {
        let mut unit = Some(unit);
        let loaded = self.get_or_compile_batch(std::slice::from_ref(parts), backend, |_| {
            // A batch of one asks for its unit at most once.
            unit.take().map_or_else(
                || {
                    Err(Error::UnitRequestedTwice {
                        unit: parts.name.to_owned(),
                    })
                },
                |make| make(),
            )
        })?;
        loaded
            .into_iter()
            .next()
            .ok_or_else(|| Error::MissingSymbol {
                symbol: String::new(),
                unit: parts.name.to_owned(),
            })
    }

    /// Unloads the link unit holding `unit` (and every other unit loaded in the same batch):
    /// runs its destructors, unmaps its memory and forgets it, so a later request loads it
    /// anew. Its symbol handles return [`jitcache_linker::Error::UnitUnloaded`] afterwards;
    /// raw addresses from it dangle. With [`Binding::Stubs`], stubs bound to it go back to
    /// the latest remaining definition of each name, or trap (never freed code); with
    /// [`Binding::Direct`], units loaded later that call into it must be unloaded first.
    /// While other running threads hold C++ `thread_local` objects of the unit
    /// ([`jitcache_linker::Error::ThreadLocalsInUse`]), or run calls through its handles
    /// ([`jitcache_linker::Error::UnitInUse`]), the linker refuses and the unit stays
    /// loaded and known here.
    pub fn unload(&self, unit: &LoadedUnit) -> Result<(), Error> {
        let link = unit.link;
        // Out of the map first, so that no lookup hands out a unit being unloaded; back in
        // if the linker keeps it.
        let removed: Vec<(Key, Resident)> = lock(&self.loaded)
            .extract_if(|_, resident| resident.unit.link == link)
            .collect();
        if let Err(e) = lock(&self.linker).unload(link) {
            lock(&self.loaded).extend(removed);
            return Err(e.into());
        }
        Ok(())
    }

    /// The key builder for `identity`, made once per backend per cache.
    fn backend_builder(&self, identity: &BackendIdentity) -> KeyBuilder {
        let mut known = lock(&self.backends);
        if let Some((_, builder)) = known.iter().find(|(id, _)| id == identity) {
            return builder.clone();
        }
        let builder = backend_builder(identity);
        if let Some(store) = &self.store {
            // The identity is in use here: its entries are not foreign (store/src/foreign.rs).
            store.record_backend(&identity.name, builder.components().backend_identity());
        }
        known.push((identity.clone(), builder.clone()));
        builder
    }
}

impl Drop for JitCache {
    fn drop(&mut self) {
        if let Some(store) = &self.store {
            // Last-access times and counters; a failure here loses only statistics.
            let stats = lock(&self.stats);
            let manifest_counts = [
                (manifest::HITS_COUNTER, stats.manifest_hits as i64),
                (manifest::MISSES_COUNTER, stats.manifest_misses as i64),
            ];
            if manifest_counts.iter().any(|(_, n)| *n > 0) {
                let _ = store.add_counters(&manifest_counts);
            }
            let _ = store.flush();
        }
    }
}
