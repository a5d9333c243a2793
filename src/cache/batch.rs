//! One batch, as a straight list of levels. Each step leaves an invariant the next relies
//! on:
//!
//! 1. **keys** — every unit has its key; its components (needed only to store and
//!    explain a miss) are made for the misses alone.
//! 2. **memory** — every resident unit has its resident copy; when all of them are
//!    resident and were linked together, they are the answer.
//! 3. **read** — every other unit has its object if a tier holds it: from the batch's
//!    pack when there is one, else from the store, then the remote tier.
//! 4. **compile** — every unit has an object: resident, read, or compiled (under the
//!    key's single-flight lock when the store is usable, or read from the store when
//!    another process compiled it meanwhile).
//! 5. **link** — the whole batch is one link unit, resident units linked anew with it.
//! 6. **pack** — a packable batch that did not come from its pack has its pack written.
//! 7. **record** — every unit is resident, bound to the new link unit, and the stats
//!    count the batch.
//!
//! An error in step 4 or 5 ends the call: what was compiled before it is stored, but the
//! batch is not packed, made resident or counted in the stats.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jitcache_backends::Backend;
use jitcache_linker::{ObjectFile, UnitId};
use jitcache_store::sync::lock;
use jitcache_store::{Key, KeyBuilder, KeyComponents};

use super::{CacheStats, JitCache, KeyParts, LoadedUnit, MissReason, Origin, Resident, pack};
use crate::Error;

/// A batch's units and their keys, which every step reads.
struct Batch<'a> {
    parts: &'a [KeyParts<'a>],
    /// The builder holding the backend's part of every key.
    prototype: KeyBuilder,
    /// The key of each of `parts`, in order.
    keys: Vec<Key>,
}

/// What the store and the remote tier hold of a batch's units that are not resident.
struct Read {
    /// One entry for each unit that is not resident, in batch order: its object and
    /// where it came from, if a tier holds it.
    found: Vec<Option<(pack::Object, Origin)>>,
    /// The key of the batch's pack when the batch is packable and its pack was not read:
    /// the pack to write once the batch links.
    pack_to_write: Option<Key>,
}

impl JitCache {
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
        unit: impl FnMut(usize) -> Result<B::Unit, Error>,
    ) -> Result<Vec<LoadedUnit>, Error>
    where
        B: Backend,
        B::Unit: Sized,
    {
        // 1. Keys.
        let batch = Batch::new(parts, self.backend_builder(backend.identity()));

        // 2. Memory.
        let resident = self.residents(&batch.keys);
        if linked_together(&resident) {
            return Ok(self.answer_from_memory(resident));
        }

        let load_start = Instant::now();
        // 3. Read: the pack, else the store, then the remote tier.
        let read = self.read_batch(&batch.keys, &resident);

        // 4. Compile the misses.
        let (objects, counts) = self.compile_misses(&batch, resident, read.found, backend, unit)?;

        // 5. Link.
        let link = self.link_batch(parts, &objects)?;

        // 6. Pack.
        if let Some(pack_key) = read.pack_to_write {
            self.write_pack(&pack_key, &objects);
        }

        // 7. Record.
        let units = self.record_residents(&batch, objects, link);
        self.record_stats(counts, load_start);
        Ok(units)
    }

    // -----------------------------------------------------------------------------------
    // 2. Memory.

    /// The resident copy of each unit of `keys`, in order, if it has one (one lock of the
    /// resident map for the batch).
    fn residents(&self, keys: &[Key]) -> Vec<Option<Resident>> {
        let loaded = lock(&self.loaded);
        keys.iter().map(|key| loaded.get(key).cloned()).collect()
    }

    /// The answer to a batch linked together before: every unit as it is loaded, with
    /// origin [`Origin::Memory`], counted as memory hits.
    fn answer_from_memory(&self, resident: Vec<Option<Resident>>) -> Vec<LoadedUnit> {
        let memory_hits = resident.iter().filter(|r| r.is_some()).count() as u64;
        lock(&self.stats).memory_hits += memory_hits;
        resident
            .into_iter()
            .flatten()
            .map(|r| LoadedUnit {
                origin: Origin::Memory,
                ..r.unit
            })
            .collect()
    }

    // -----------------------------------------------------------------------------------
    // 3. Read.

    /// Reads the units that are not resident: from the batch's pack when the batch is
    /// packable (at least [`pack::PACK_MIN_UNITS`] units, none resident, a usable store)
    /// and its pack is found whole; otherwise from the store in one batch, then what
    /// it misses from the remote tier.
    fn read_batch(&self, keys: &[Key], resident: &[Option<Resident>]) -> Read {
        let wanted: Vec<Key> = keys
            .iter()
            .zip(resident)
            .filter(|(_, r)| r.is_none())
            .map(|(k, _)| *k)
            .collect();
        // A large batch with nothing resident first tries its pack: one read for all.
        let packable = self.store.is_some()
            && wanted.len() == keys.len()
            && keys.len() >= pack::PACK_MIN_UNITS;
        let pack_key = packable.then(|| pack::pack_key(keys));
        if let Some(pack_key) = &pack_key
            && let Some(found) = self.read_pack(pack_key, keys)
        {
            return Read {
                found,
                pack_to_write: None,
            };
        }
        let found = self
            .read_many(&wanted)
            .into_iter()
            .map(|found| found.map(|(bytes, origin)| (pack::Object::whole(bytes), origin)))
            .collect();
        Read {
            found,
            pack_to_write: pack_key,
        }
    }

    /// The objects of the pack of `keys`, each a piece of the pack's one buffer, or `None`
    /// unless the pack is found (in the store, else the remote tier) and is exactly the
    /// pack of `keys`. A hit refreshes the units' access times along with the pack's.
    fn read_pack(
        &self,
        pack_key: &Key,
        keys: &[Key],
    ) -> Option<Vec<Option<(pack::Object, Origin)>>> {
        let (bytes, origin) = self.read(pack_key)?;
        let ranges = pack::decode(&bytes, keys.len())?;
        let objects = pack::Object::pieces(bytes, ranges);
        if let Some(store) = &self.store {
            // The units' access times go with the pack's: refreshed when its was.
            store.touch_along(pack_key, keys);
        }
        Some(
            objects
                .into_iter()
                .map(|object| Some((object, origin.clone())))
                .collect(),
        )
    }

    // -----------------------------------------------------------------------------------
    // 4. Compile.

    /// The object of every unit of the batch, in order, with where it came from: the
    /// resident copy's, the one read, or else one from [`JitCache::compile_once`]. Units
    /// are compiled in batch order; the first error stops the batch. Also returns the
    /// batch's counts: hits by level, misses, compiles and the time compiling.
    fn compile_misses<B>(
        &self,
        batch: &Batch<'_>,
        resident: Vec<Option<Resident>>,
        found: Vec<Option<(pack::Object, Origin)>>,
        backend: &B,
        mut unit: impl FnMut(usize) -> Result<B::Unit, Error>,
    ) -> Result<(Vec<(pack::Object, Origin)>, CacheStats), Error>
    where
        B: Backend,
        B::Unit: Sized,
    {
        let mut counts = CacheStats::default();
        let mut objects = Vec::with_capacity(batch.parts.len());
        // One entry for each unit that is not resident, taken in order.
        let mut found = found.into_iter();
        for (i, (key, resident)) in batch.keys.iter().zip(resident).enumerate() {
            if let Some(r) = resident {
                counts.memory_hits += 1;
                objects.push((r.object, Origin::Memory));
                continue;
            }
            if let Some((object, origin)) = found.next().flatten() {
                if origin == Origin::Remote {
                    counts.remote_hits += 1;
                } else {
                    counts.disk_hits += 1;
                }
                objects.push((object, origin));
                continue;
            }
            counts.misses += 1;
            let components = batch.parts[i].components_with(&batch.prototype);
            let (bytes, origin, spent) =
                self.compile_once(key, &components, backend, || unit(i))?;
            counts.compile_time += spent;
            if matches!(origin, Origin::Compiled(_)) {
                counts.compiles += 1;
            } else {
                counts.disk_hits += 1;
            }
            objects.push((pack::Object::whole(bytes), origin));
        }
        Ok((objects, counts))
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

    // -----------------------------------------------------------------------------------
    // 5. Link.

    /// Links `objects` (one per unit of `parts`, named `namespace/name`) as one link unit,
    /// so that units of the batch resolve to each other's code from this link.
    fn link_batch(
        &self,
        parts: &[KeyParts<'_>],
        objects: &[(pack::Object, Origin)],
    ) -> Result<UnitId, Error> {
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
        Ok(lock(&self.linker).load(&files)?)
    }

    // -----------------------------------------------------------------------------------
    // 6. Pack.

    /// Stores `objects` as the pack under `pack_key`: they linked fine, so they are worth
    /// keeping together for the next start.
    fn write_pack(&self, pack_key: &Key, objects: &[(pack::Object, Origin)]) {
        let bytes = pack::encode(objects.iter().map(|(object, _)| object.as_slice()));
        self.write(pack_key, &bytes, None);
    }

    // -----------------------------------------------------------------------------------
    // 7. Record.

    /// Makes every unit of the batch resident, bound to `link` and keeping its object for
    /// relinking (one lock of the resident map for the batch); returns the loaded units.
    fn record_residents(
        &self,
        batch: &Batch<'_>,
        objects: Vec<(pack::Object, Origin)>,
        link: UnitId,
    ) -> Vec<LoadedUnit> {
        let mut units = Vec::with_capacity(batch.parts.len());
        let mut loaded = lock(&self.loaded);
        for (i, (object, origin)) in objects.into_iter().enumerate() {
            let unit = LoadedUnit {
                key: batch.keys[i],
                name: batch.parts[i].name.to_owned(),
                origin,
                link,
                linker: Arc::clone(&self.linker),
            };
            loaded.insert(
                batch.keys[i],
                Resident {
                    unit: unit.clone(),
                    object,
                },
            );
            units.push(unit);
        }
        units
    }

    /// Adds the batch's `counts` to the stats, with the time spent loading: since
    /// `load_start`, less the time compiling.
    fn record_stats(&self, counts: CacheStats, load_start: Instant) {
        let load_time = load_start.elapsed().saturating_sub(counts.compile_time);
        let mut stats = lock(&self.stats);
        stats.memory_hits += counts.memory_hits;
        stats.disk_hits += counts.disk_hits;
        stats.remote_hits += counts.remote_hits;
        stats.misses += counts.misses;
        stats.compiles += counts.compiles;
        stats.compile_time += counts.compile_time;
        stats.load_time += load_time;
    }
}

impl<'a> Batch<'a> {
    /// The batch of `parts`, with the key of each made from `prototype`.
    fn new(parts: &'a [KeyParts<'a>], prototype: KeyBuilder) -> Batch<'a> {
        let keys = parts
            .iter()
            .map(|p| prototype.key_of(p.namespace, p.name, p.unit, p.deps))
            .collect();
        Batch {
            parts,
            prototype,
            keys,
        }
    }
}

/// Whether every unit of a batch is resident and all were linked together: only then is
/// the batch answered from memory, since otherwise a resident unit could be bound to an
/// older version of a callee that this batch replaces. An empty batch is not.
fn linked_together(resident: &[Option<Resident>]) -> bool {
    let Some(Some(first)) = resident.first() else {
        return false;
    };
    resident
        .iter()
        .all(|r| r.as_ref().is_some_and(|r| r.unit.link == first.unit.link))
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
