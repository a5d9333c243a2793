//! The facade: [`JitCache`] answers "callable code for this unit" from memory, from the
//! store, or from a backend it runs once.

mod explain;
mod pack;
mod remote;
mod stats;

pub use explain::MissReason;
pub use stats::CacheStats;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use jitcache_backends::{Backend, BackendIdentity};
use jitcache_linker::{Linker, ObjectFile, UnitId};
use jitcache_remote::{Remote, RemoteConfig};
use jitcache_store::{EntryMeta, FlagOrder, Key, KeyBuilder, KeyComponents, Store, StoreConfig};

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
}

impl Default for Config {
    fn default() -> Config {
        Config {
            store: StoreConfig::default(),
            persistent: true,
            single_flight_timeout: Duration::from_secs(60),
            remote: None,
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

/// Object bytes read for a batch: from its pack, or one read each.
enum Loaded {
    Piece(pack::Object),
    Whole(Vec<u8>),
}

/// The keys of every unit of a batch, in order. (Their components, needed only to store
/// and explain a miss, are made for the misses.)
fn keys_of(parts: &[KeyParts<'_>], prototype: &KeyBuilder) -> Vec<Key> {
    parts
        .iter()
        .map(|p| prototype.key_of(p.namespace, p.name, p.unit, p.deps))
        .collect()
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

/// A loaded unit: its key, where it came from, and its symbols' addresses.
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

    /// The address of a global symbol defined by this unit (or by a unit loaded in the same
    /// batch).
    pub fn symbol(&self, name: &str) -> Option<usize> {
        lock(&self.linker).symbol(self.link, name)
    }

    /// The address of `name`, or [`Error::MissingSymbol`].
    pub fn require(&self, name: &str) -> Result<usize, Error> {
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
/// let answer = jitcache_linker::call::call_i64(unit.require("answer")?, &[])?;
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
    loaded: Mutex<HashMap<Key, Resident>>,
    stats: Mutex<CacheStats>,
    warned: AtomicBool,
    writes_failed: AtomicBool,
    /// Key builders holding the digests of the backends seen so far: a Cranelift identity
    /// has about a hundred flags, too many to hash again for every unit.
    backends: Mutex<Vec<(BackendIdentity, KeyBuilder)>>,
}

/// Locks a mutex, recovering the data if a panicking thread poisoned it (every critical
/// section here leaves its data consistent).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
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
            loaded: Mutex::new(HashMap::new()),
            stats: Mutex::new(stats),
            warned: AtomicBool::new(false),
            writes_failed: AtomicBool::new(false),
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

    /// A private directory of the cache for a component's own files (see
    /// [`Store::component_dir`]); `None` when the cache is bypassed or the directory
    /// cannot be made.
    pub fn component_dir(&self, name: &str) -> Option<PathBuf> {
        self.store.as_ref()?.component_dir(name).ok()
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
    /// from the first level that has it: this process, the store, the backend.
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

    /// Loads many units in one call: one lookup each, and one link for the whole batch, so
    /// units of a batch may call each other in any order and always call each other's
    /// current versions. `unit(i)` produces the unit of `parts[i]` on a miss.
    ///
    /// A batch whose units are all already loaded together is answered from memory.
    /// Otherwise every unit of the batch is linked anew (resident ones from the object
    /// bytes kept in memory, without reading the store): a resident caller must not stay
    /// bound to the old version of a callee this batch replaces. Units loaded in separate
    /// calls stay bound to whatever their symbols resolved to when they were linked.
    pub fn get_or_compile_batch<B>(
        &self,
        parts: &[KeyParts<'_>],
        backend: &B,
        mut unit: impl FnMut(usize) -> Result<B::Unit, Error>,
    ) -> Result<Vec<LoadedUnit>, Error>
    where
        B: Backend,
        B::Unit: Sized,
    {
        let prototype = self.backend_builder(backend.identity());
        let keys = keys_of(parts, &prototype);

        // Level 1: this process. A batch is answered from memory only when every unit is
        // resident and all of them were linked together: otherwise a resident unit could
        // be bound to an older version of a callee that this batch replaces.
        let resident: Vec<Option<Resident>> = {
            let loaded = lock(&self.loaded);
            keys.iter().map(|key| loaded.get(key).cloned()).collect()
        };
        let memory_hits = resident.iter().filter(|r| r.is_some()).count() as u64;
        if let Some(first) = resident.first().and_then(Option::as_ref)
            && resident
                .iter()
                .all(|r| r.as_ref().is_some_and(|r| r.unit.link == first.unit.link))
        {
            lock(&self.stats).memory_hits += memory_hits;
            return Ok(resident
                .into_iter()
                .flatten()
                .map(|r| LoadedUnit {
                    origin: Origin::Memory,
                    ..r.unit
                })
                .collect());
        }

        // Levels 2 and 3: the store, then the backend. Resident units are linked again
        // with the rest, from the object bytes kept in memory.
        let load_start = Instant::now();
        let mut compile_time = Duration::ZERO;
        let mut objects: Vec<(pack::Object, Origin)> = Vec::with_capacity(parts.len());
        let mut counts = CacheStats::default();
        let wanted: Vec<Key> = keys
            .iter()
            .zip(&resident)
            .filter(|(_, r)| r.is_none())
            .map(|(k, _)| *k)
            .collect();
        // A large batch with nothing resident first tries its pack: one read for all.
        let packable = self.store.is_some()
            && wanted.len() == keys.len()
            && keys.len() >= pack::PACK_MIN_UNITS;
        let pack_key = packable.then(|| pack::pack_key(&keys));
        let packed = pack_key
            .and_then(|key| self.read(&key))
            .and_then(|(bytes, origin)| {
                let ranges = pack::decode(&bytes, keys.len())?;
                Some((pack::Object::pieces(bytes, ranges), origin))
            });
        let from_pack = packed.is_some();
        if let (true, Some(store), Some(pack_key)) = (from_pack, &self.store, &pack_key) {
            // The units' access times go with the pack's: refreshed when its was.
            store.touch_along(pack_key, &keys);
        }
        let mut from_disk = match packed {
            Some((objects, origin)) => objects
                .into_iter()
                .map(|object| Some((Loaded::Piece(object), origin.clone())))
                .collect::<Vec<_>>(),
            None => self
                .read_many(&wanted)
                .into_iter()
                .map(|found| found.map(|(bytes, origin)| (Loaded::Whole(bytes), origin)))
                .collect(),
        }
        .into_iter();
        for (i, key) in keys.iter().enumerate() {
            if let Some(r) = &resident[i] {
                objects.push((r.object.clone(), Origin::Memory));
                continue;
            }
            if let Some((bytes, origin)) = from_disk.next().flatten() {
                let bytes = match bytes {
                    Loaded::Piece(object) => object,
                    Loaded::Whole(bytes) => pack::Object::whole(bytes),
                };
                if origin == Origin::Remote {
                    counts.remote_hits += 1;
                } else {
                    counts.disk_hits += 1;
                }
                objects.push((bytes, origin));
                continue;
            }
            counts.misses += 1;
            let (bytes, origin, spent) =
                self.compile_once(key, &parts[i].components_with(&prototype), backend, || {
                    unit(i)
                })?;
            compile_time += spent;
            if matches!(origin, Origin::Compiled(_)) {
                counts.compiles += 1;
            } else {
                counts.disk_hits += 1;
            }
            objects.push((pack::Object::whole(bytes), origin));
        }

        let names: Vec<String> = parts
            .iter()
            .map(|p| format!("{}/{}", p.namespace, p.name))
            .collect();
        let files: Vec<ObjectFile<'_>> = objects
            .iter()
            .zip(&names)
            .map(|((object, _), name)| ObjectFile {
                name,
                bytes: object.as_slice(),
            })
            .collect();
        let link = lock(&self.linker).load(&files)?;
        if let Some(key) = pack_key.filter(|_| !from_pack) {
            // Linked fine, so worth keeping together for the next start.
            let bytes = pack::encode(objects.iter().map(|(object, _)| object.as_slice()));
            self.write(&key, &bytes, None);
        }
        let mut results = Vec::with_capacity(parts.len());
        {
            let mut loaded = lock(&self.loaded);
            for (i, (object, origin)) in objects.into_iter().enumerate() {
                let unit = LoadedUnit {
                    key: keys[i],
                    name: parts[i].name.to_owned(),
                    origin,
                    link,
                    linker: Arc::clone(&self.linker),
                };
                loaded.insert(
                    keys[i],
                    Resident {
                        unit: unit.clone(),
                        object,
                    },
                );
                results.push(unit);
            }
        }
        let load_time = load_start.elapsed().saturating_sub(compile_time);
        {
            let mut stats = lock(&self.stats);
            stats.memory_hits += memory_hits;
            stats.disk_hits += counts.disk_hits;
            stats.remote_hits += counts.remote_hits;
            stats.misses += counts.misses;
            stats.compiles += counts.compiles;
            stats.compile_time += compile_time;
            stats.load_time += load_time;
        }
        Ok(results)
    }

    /// Unloads the link unit holding `unit` (and every other unit loaded in the same batch):
    /// runs its destructors, unmaps its memory and forgets it, so a later request loads it
    /// anew. Addresses from it are dangling afterwards; units loaded later that call into it
    /// must be unloaded first.
    pub fn unload(&self, unit: &LoadedUnit) -> Result<(), Error> {
        let link = unit.link;
        lock(&self.loaded).retain(|_, resident| resident.unit.link != link);
        lock(&self.linker).unload(link)?;
        Ok(())
    }

    /// The key builder for `identity`, made once per backend per cache.
    fn backend_builder(&self, identity: &BackendIdentity) -> KeyBuilder {
        let mut known = lock(&self.backends);
        if let Some((_, builder)) = known.iter().find(|(id, _)| id == identity) {
            return builder.clone();
        }
        let builder = backend_builder(identity);
        known.push((identity.clone(), builder.clone()));
        builder
    }

    /// Reads `keys` from the store in one batch, then what it misses from the remote
    /// tier; any store error makes them all local misses (and a warning).
    fn read_many(&self, keys: &[Key]) -> Vec<Option<(Vec<u8>, Origin)>> {
        let Some(store) = self.store.as_ref().filter(|_| !keys.is_empty()) else {
            return vec![None; keys.len()];
        };
        let mut found: Vec<Option<(Vec<u8>, Origin)>> = match store.get_many(keys) {
            Ok(found) => found
                .into_iter()
                .map(|bytes| bytes.map(|b| (b, Origin::Disk)))
                .collect(),
            Err(err) => {
                self.bypass(err.to_string());
                vec![None; keys.len()]
            }
        };
        self.fetch_remote_many(keys, &mut found);
        found
    }

    /// Stores `bytes` under `key` (with the unit's components, when it is a unit). The
    /// first failure (read-only, full) warns once and stops further writes.
    fn write(&self, key: &Key, bytes: &[u8], components: Option<&KeyComponents>) {
        let Some(store) = &self.store else {
            return;
        };
        self.upload(key, bytes, components);
        if self.writes_failed.load(Ordering::Relaxed) {
            return;
        }
        let meta = EntryMeta {
            name: Some(match components {
                Some(c) => format!("{}/{}", c.namespace, c.name),
                None => "pack".to_owned(),
            }),
            components: components.cloned(),
        };
        if let Err(err) = store.put_with(key, bytes, &meta) {
            self.writes_failed.store(true, Ordering::Relaxed);
            self.bypass(err.to_string());
        }
    }

    /// Reads `key` from the store, else from the remote tier.
    fn read(&self, key: &Key) -> Option<(Vec<u8>, Origin)> {
        match self.read_local(key) {
            Some(bytes) => Some((bytes, Origin::Disk)),
            None => self.fetch_remote(key).map(|bytes| (bytes, Origin::Remote)),
        }
    }

    /// Reads `key` from the store; any store error is a miss (and a warning).
    fn read_local(&self, key: &Key) -> Option<Vec<u8>> {
        let store = self.store.as_ref()?;
        match store.get(key) {
            Ok(found) => found,
            Err(err) => {
                self.bypass(err.to_string());
                None
            }
        }
    }

    /// Compiles the unit of `key`, unless another process compiles it first: the compile
    /// happens under the key's single-flight lock, and the store is checked again once
    /// the lock is held. Returns the object, where it came from and the time compiling.
    fn compile_once<B>(
        &self,
        key: &Key,
        components: &KeyComponents,
        backend: &B,
        unit: impl FnOnce() -> Result<B::Unit, Error>,
    ) -> Result<(Vec<u8>, Origin, Duration), Error>
    where
        B: Backend,
        B::Unit: Sized,
    {
        let Some(store) = &self.store else {
            let (bytes, spent) = compile(backend, unit)?;
            return Ok((bytes, Origin::Compiled(MissReason::Bypassed), spent));
        };
        let reason = match store.last_unit(&components.namespace, &components.name) {
            Ok(last) => MissReason::explain(components, last.as_ref()),
            Err(_) => MissReason::NewUnit,
        };
        let guard = match store.lock_compile(key, self.config.single_flight_timeout) {
            Ok(guard) => guard,
            Err(err) => {
                self.bypass(err.to_string());
                None
            }
        };
        if guard.is_some()
            && let Some(bytes) = self.read_local(key)
        {
            return Ok((bytes, Origin::Disk, Duration::ZERO));
        }
        let (bytes, spent) = compile(backend, unit)?;
        self.write(key, &bytes, Some(components));
        drop(guard);
        Ok((bytes, Origin::Compiled(reason), spent))
    }
}

/// Runs the backend on the unit `make` produces; returns the object and the time spent.
fn compile<B>(
    backend: &B,
    make: impl FnOnce() -> Result<B::Unit, Error>,
) -> Result<(Vec<u8>, Duration), Error>
where
    B: Backend,
    B::Unit: Sized,
{
    let start = Instant::now();
    let unit = make()?;
    let object = backend.compile(&unit)?;
    Ok((object.bytes, start.elapsed()))
}

impl Drop for JitCache {
    fn drop(&mut self) {
        if let Some(store) = &self.store {
            // Last-access times and counters; a failure here loses only statistics.
            let _ = store.flush();
        }
    }
}
