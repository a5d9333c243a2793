//! One batch, as a straight list of levels. Each step leaves an invariant the next relies
//! on:
//!
//! 1. **keys** — every unit has its key; its components (needed only to store and
//!    explain a miss) are made for the misses alone.
//!
//!    **manifests** — for a backend whose compiles read files besides the unit (a C
//!    compiler reads headers), every unit whose manifest names a compile whose files are
//!    unchanged has that compile's object key; the others have none, and the reason.
//!    A large batch first reads its batch manifest: when its files are unchanged, it
//!    names every unit's object key at once. For other backends a unit's object is
//!    stored under its key.
//! 2. **memory** — every resident unit has its resident copy; when all of them are
//!    resident and were linked together, they are the answer.
//! 3. **read** — every other unit has its object if a tier holds it: from the batch's
//!    pack when there is one, else from the store, then the remote tier.
//! 4. **compile** — every unit has an object: resident, read, or compiled (under the
//!    key's single-flight lock when the store is usable, or read from the store when
//!    another process compiled it meanwhile).
//! 5. **link** — the whole batch is one link unit, resident units linked anew with it.
//! 6. **pack** — a packable batch that did not come from its pack has its pack written
//!    under the key of the objects it ended up with (none when an object could not be
//!    stored), and one whose batch manifest did not name its objects has that written.
//! 7. **record** — every unit is resident, bound to the new link unit, and the stats
//!    count the batch.
//!
//! An error in step 4 or 5 ends the call: what was compiled before it is stored, but the
//! batch is not packed, made resident or counted in the stats.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use jitcache_backends::{Backend, CompiledObject};
use jitcache_linker::{LoadOptions, ObjectFile, UnitId};
use jitcache_store::sync::lock;
use jitcache_store::{Key, KeyBuilder, KeyComponents};

use super::batch_manifest::{self, BatchManifest, Files};
use super::manifest::{self, Check, FileMemo, Manifest};
use super::{CacheStats, JitCache, KeyParts, LoadedUnit, MissReason, Origin, Resident, pack};
use crate::Error;

/// A batch's units and their keys, which every step reads.
struct Batch<'a> {
    parts: &'a [KeyParts<'a>],
    /// The builder holding the backend's part of every key.
    prototype: KeyBuilder,
    /// The key of each of `parts`, in order.
    keys: Vec<Key>,
    /// The key each unit's object is stored under: its key, or what its manifest names;
    /// `None` when its manifest names no compile whose files are unchanged.
    objects: Vec<Option<Key>>,
    /// Why a unit whose manifest holds no usable compile missed (the file that changed).
    stale: Vec<Option<MissReason>>,
    /// Whether the backend's compiles read files, so that units keep manifests.
    manifests: bool,
    /// The key (and components) of the batch's batch manifest, for a batch large enough
    /// to keep one.
    batch_manifest: Option<(Key, KeyComponents)>,
    /// The batch manifest that named the units' objects, when one did.
    held: Option<BatchManifest>,
}

/// A unit to compile, and what the compile needs to know about it.
struct Miss<'a> {
    key: &'a Key,
    components: &'a KeyComponents,
    /// Why its manifest holds no usable compile, when it has one.
    stale: Option<&'a MissReason>,
    /// Whether the unit keeps a manifest.
    manifests: bool,
}

/// A compile's object and the key it is stored under.
struct Compiled {
    bytes: Vec<u8>,
    origin: Origin,
    spent: Duration,
    /// The key the object is stored (or would be stored) under.
    object: Key,
    /// Whether the object could not be stored (it cannot be reused).
    not_stored: bool,
}

/// What the store and the remote tier hold of a batch's units that are not resident.
struct Read {
    /// One entry for each unit that is not resident, in batch order: its object and
    /// where it came from, if a tier holds it.
    found: Vec<Option<(pack::Object, Origin)>>,
    /// Whether the batch is packable and its pack was not read: the pack to write once
    /// the batch links (under the key of the objects it ends up with).
    write_pack: bool,
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
        let mut batch = Batch::new(parts, self.backend_builder(backend.identity()));
        batch.manifests = backend.may_read_files();

        // 1b. Manifests.
        let mut memo = FileMemo::default();
        let manifest_counts = self.resolve_objects(&mut batch, backend.base_dir(), &mut memo);

        // 2. Memory.
        let resident = self.residents(&batch.objects);
        if linked_together(&resident) {
            return Ok(self.answer_from_memory(resident, manifest_counts));
        }

        let load_start = Instant::now();
        // 3. Read: the pack, else the store, then the remote tier.
        let read = self.read_batch(&batch.objects, &resident);

        // 4. Compile the misses.
        let (objects, object_keys, mut counts) =
            self.compile_misses(&batch, resident, read.found, backend, &mut memo, unit)?;
        counts.manifest_hits = manifest_counts.manifest_hits;
        counts.manifest_misses = manifest_counts.manifest_misses;

        // 5. Link.
        let link = self.link_batch(parts, &objects)?;

        // 6. Pack (unless an object could not be stored: a pack must not keep it either).
        if read.write_pack && counts.not_stored == 0 {
            self.write_pack(&pack::pack_key(&object_keys), &objects);
        }
        self.write_batch_manifest(&batch, &object_keys);

        // 7. Record.
        let units = self.record_residents(&batch, &object_keys, objects, link);
        self.record_stats(counts, load_start);
        Ok(units)
    }

    // -----------------------------------------------------------------------------------
    // 1b. Manifests.

    /// For a batch whose units keep manifests: reads the manifests this process does not
    /// hold yet (one batch from the store, then the remote tier), checks each against the
    /// files as they are now, and sets every unit's object key, or its reason to miss.
    /// Manifests whose files' metadata changed without their contents are written again
    /// with fresh metadata. Returns the manifest hits and misses.
    fn resolve_objects(
        &self,
        batch: &mut Batch<'_>,
        base: Option<&Path>,
        memo: &mut FileMemo,
    ) -> CacheStats {
        let mut counts = CacheStats::default();
        if !batch.manifests {
            return counts;
        }
        if self.resolve_from_batch_manifest(batch, base, memo) {
            counts.manifest_hits = batch.keys.len() as u64;
            return counts;
        }
        let unknown: Vec<Key> = {
            let known = lock(&self.manifests);
            batch
                .keys
                .iter()
                .filter(|key| !known.contains_key(*key))
                .copied()
                .collect()
        };
        let read = self.read_many(&unknown);
        let mut known = lock(&self.manifests);
        for (key, found) in unknown.iter().zip(read) {
            if let Some(manifest) = found.and_then(|(bytes, _)| Manifest::decode(&bytes)) {
                known.insert(*key, manifest);
            }
        }
        let mut refreshed = Vec::new();
        for (i, key) in batch.keys.iter().enumerate() {
            let check = known.get(key).map(|m| (m.check(base, memo), m));
            batch.objects[i] = match check {
                Some((Check::Holds { index, refresh }, manifest)) => {
                    if refresh && let Some(fresh) = manifest.refreshed(index, base, memo) {
                        refreshed.push((*key, i, fresh));
                    }
                    counts.manifest_hits += 1;
                    Some(manifest.entries[index].object)
                }
                Some((Check::Stale(mismatch), _)) => {
                    batch.stale[i] = mismatch.reason();
                    counts.manifest_misses += 1;
                    None
                }
                None => {
                    counts.manifest_misses += 1;
                    None
                }
            };
        }
        for (key, _, fresh) in &refreshed {
            known.insert(*key, fresh.clone());
        }
        drop(known);
        if !refreshed.is_empty() {
            let encoded: Vec<(Key, Vec<u8>, KeyComponents)> = refreshed
                .into_iter()
                .map(|(key, i, fresh)| {
                    let components = batch.parts[i].components_with(&batch.prototype);
                    (key, fresh.encode(), components)
                })
                .collect();
            let entries: Vec<(Key, &[u8], Option<&KeyComponents>)> = encoded
                .iter()
                .map(|(key, bytes, components)| (*key, bytes.as_slice(), Some(components)))
                .collect();
            self.write_many(&entries);
        }
        counts
    }

    /// For a batch large enough to keep a batch manifest: reads it (from the store, then
    /// the remote tier), and when its files are unchanged sets every unit's object key
    /// from it and returns true. A batch manifest whose files' metadata changed without
    /// their contents is written again with fresh metadata.
    fn resolve_from_batch_manifest(
        &self,
        batch: &mut Batch<'_>,
        base: Option<&Path>,
        memo: &mut FileMemo,
    ) -> bool {
        if self.store.is_none() || batch.keys.len() < pack::PACK_MIN_UNITS {
            return false;
        }
        let (key, components) = batch_manifest::key(&batch.keys);
        let found = self
            .read_many(&[key])
            .pop()
            .flatten()
            .and_then(|(bytes, _)| BatchManifest::decode(&bytes, batch.keys.len()));
        batch.batch_manifest = Some((key, components));
        let Some(held) = found else {
            return false;
        };
        let Ok(refresh) = held.check(base, memo) else {
            return false;
        };
        if refresh && let Some(fresh) = held.refreshed(base, memo) {
            self.write(
                &key,
                &fresh.encode(),
                batch.batch_manifest.as_ref().map(|b| &b.1),
            );
        }
        batch.objects = held.objects.iter().copied().map(Some).collect();
        batch.held = Some(held);
        true
    }

    // -----------------------------------------------------------------------------------
    // 2. Memory.

    /// The resident copy of each unit whose object key is known, in order, if it has one
    /// (one lock of the resident map for the batch).
    fn residents(&self, objects: &[Option<Key>]) -> Vec<Option<Resident>> {
        let loaded = lock(&self.loaded);
        objects
            .iter()
            .map(|key| key.and_then(|key| loaded.get(&key).cloned()))
            .collect()
    }

    /// The answer to a batch linked together before: every unit as it is loaded, with
    /// origin [`Origin::Memory`], counted as memory hits (and `manifest_counts`).
    fn answer_from_memory(
        &self,
        resident: Vec<Option<Resident>>,
        manifest_counts: CacheStats,
    ) -> Vec<LoadedUnit> {
        let memory_hits = resident.iter().filter(|r| r.is_some()).count() as u64;
        let mut stats = lock(&self.stats);
        stats.memory_hits += memory_hits;
        stats.manifest_hits += manifest_counts.manifest_hits;
        drop(stats);
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
    ///
    /// `objects` are the units' object keys; a unit without one is a miss.
    fn read_batch(&self, objects: &[Option<Key>], resident: &[Option<Resident>]) -> Read {
        let not_resident: Vec<Option<Key>> = objects
            .iter()
            .zip(resident)
            .filter(|(_, r)| r.is_none())
            .map(|(k, _)| *k)
            .collect();
        // A large batch with nothing resident first tries its pack: one read for all.
        let all: Option<Vec<Key>> = objects.iter().copied().collect();
        let packable = self.store.is_some()
            && not_resident.len() == objects.len()
            && objects.len() >= pack::PACK_MIN_UNITS;
        let pack_key = all
            .filter(|_| packable)
            .map(|keys| (pack::pack_key(&keys), keys));
        if let Some((pack_key, keys)) = &pack_key
            && let Some(found) = self.read_pack(pack_key, keys)
        {
            return Read {
                found,
                write_pack: false,
            };
        }
        let wanted: Vec<Key> = not_resident.iter().flatten().copied().collect();
        let mut read = self.read_many(&wanted).into_iter();
        let found = not_resident
            .iter()
            .map(|key| {
                key.and_then(|_| read.next().flatten())
                    .map(|(bytes, origin)| (pack::Object::whole(bytes), origin))
            })
            .collect();
        Read {
            found,
            write_pack: packable,
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
    /// key each object is stored under, and the batch's counts: hits by level, misses,
    /// compiles and the time compiling.
    #[expect(clippy::type_complexity, reason = "three parallel results of one pass")]
    fn compile_misses<B>(
        &self,
        batch: &Batch<'_>,
        resident: Vec<Option<Resident>>,
        found: Vec<Option<(pack::Object, Origin)>>,
        backend: &B,
        memo: &mut FileMemo,
        mut unit: impl FnMut(usize) -> Result<B::Unit, Error>,
    ) -> Result<(Vec<(pack::Object, Origin)>, Vec<Key>, CacheStats), Error>
    where
        B: Backend,
        B::Unit: Sized,
    {
        let mut counts = CacheStats::default();
        let mut objects = Vec::with_capacity(batch.parts.len());
        let mut object_keys = Vec::with_capacity(batch.parts.len());
        // One entry for each unit that is not resident, taken in order.
        let mut found = found.into_iter();
        for (i, (key, resident)) in batch.keys.iter().zip(resident).enumerate() {
            if let Some(r) = resident {
                counts.memory_hits += 1;
                objects.push((r.object, Origin::Memory));
                object_keys.push(batch.objects[i].unwrap_or(*key));
                continue;
            }
            if let Some((object, origin)) = found.next().flatten() {
                if origin == Origin::Remote {
                    counts.remote_hits += 1;
                } else {
                    counts.disk_hits += 1;
                }
                objects.push((object, origin));
                object_keys.push(batch.objects[i].unwrap_or(*key));
                continue;
            }
            counts.misses += 1;
            let components = batch.parts[i].components_with(&batch.prototype);
            let miss = Miss {
                key,
                components: &components,
                stale: batch.stale[i].as_ref(),
                manifests: batch.manifests,
            };
            let compiled = self.compile_once(&miss, backend, memo, || unit(i))?;
            counts.compile_time += compiled.spent;
            counts.not_stored += u64::from(compiled.not_stored);
            if matches!(compiled.origin, Origin::Compiled(_)) {
                counts.compiles += 1;
            } else {
                counts.disk_hits += 1;
            }
            objects.push((pack::Object::whole(compiled.bytes), compiled.origin));
            object_keys.push(compiled.object);
        }
        Ok((objects, object_keys, counts))
    }

    /// Compiles the unit of a miss, unless another process compiles it first: the
    /// compile happens under the key's single-flight lock, and the store is checked again
    /// once the lock is held. Stores the object (with a manifest entry naming the files
    /// the compile read, for a backend whose compiles read files), unless it cannot be
    /// reused.
    fn compile_once<B>(
        &self,
        miss: &Miss<'_>,
        backend: &B,
        memo: &mut FileMemo,
        unit: impl FnOnce() -> Result<B::Unit, Error>,
    ) -> Result<Compiled, Error>
    where
        B: Backend,
        B::Unit: Sized,
    {
        let key = *miss.key;
        let Some(store) = &self.store else {
            let (object, spent) = compile(backend, unit)?;
            return Ok(Compiled {
                bytes: object.bytes,
                origin: Origin::Compiled(MissReason::Bypassed),
                spent,
                object: key,
                not_stored: false,
            });
        };
        let reason = match miss.stale {
            Some(reason) => reason.clone(),
            None => match store.last_unit(&miss.components.namespace, &miss.components.name) {
                Ok(last) => MissReason::explain(miss.components, last.as_ref()),
                Err(_) => MissReason::NewUnit,
            },
        };
        let guard = match store.lock_compile(&key, self.config.single_flight_timeout) {
            Ok(guard) => guard,
            Err(err) => {
                self.bypass(err.to_string());
                None
            }
        };
        if guard.is_some()
            && let Some((object, bytes)) = self.read_compiled_meanwhile(miss, backend, memo)
        {
            return Ok(Compiled {
                bytes,
                origin: Origin::Disk,
                spent: Duration::ZERO,
                object,
                not_stored: false,
            });
        }
        let started = SystemTime::now();
        let (object, spent) = compile(backend, unit)?;
        let stored_as = if miss.manifests {
            self.store_with_manifest(miss, backend.base_dir(), &object, started, memo)
        } else {
            self.write_holding(&key, &object.bytes, Some(miss.components), guard);
            Some(key)
        };
        Ok(Compiled {
            bytes: object.bytes,
            origin: Origin::Compiled(reason),
            spent,
            object: stored_as.unwrap_or(key),
            not_stored: stored_as.is_none(),
        })
    }

    /// The object another process stored for the unit of `miss` while this one waited
    /// for its single-flight lock, with the key it is stored under.
    fn read_compiled_meanwhile<B: Backend>(
        &self,
        miss: &Miss<'_>,
        backend: &B,
        memo: &mut FileMemo,
    ) -> Option<(Key, Vec<u8>)> {
        if !miss.manifests {
            return self.read_local(miss.key).map(|bytes| (*miss.key, bytes));
        }
        let manifest = Manifest::decode(&self.read_local(miss.key)?)?;
        let Check::Holds { index, .. } = manifest.check(backend.base_dir(), memo) else {
            return None;
        };
        let object = manifest.entries[index].object;
        let bytes = self.read_local(&object)?;
        lock(&self.manifests).insert(*miss.key, manifest);
        Some((object, bytes))
    }

    /// Stores a compile's object under the key its manifest entry names, and the unit's
    /// manifest with that entry first; returns the object's key, or `None` when the
    /// object must not be stored: the backend says it cannot be reused, or a file it read
    /// cannot be hashed or changed while it compiled (it may have read a mix of versions).
    fn store_with_manifest(
        &self,
        miss: &Miss<'_>,
        base: Option<&Path>,
        object: &CompiledObject,
        started: SystemTime,
        memo: &mut FileMemo,
    ) -> Option<Key> {
        self.store.as_ref()?;
        if object.inputs.uncacheable.is_some() {
            return None;
        }
        let entry = manifest::record(
            miss.key,
            base,
            &object.inputs.read,
            &object.inputs.absent,
            started,
            memo,
        )
        .ok()?;
        let object_key = entry.object;
        self.write(&object_key, &object.bytes, Some(miss.components));
        // Entries other processes added meanwhile are kept.
        let current = self
            .read_local(miss.key)
            .and_then(|bytes| Manifest::decode(&bytes))
            .unwrap_or_default();
        let manifest = current.with_newest(entry);
        self.write(miss.key, &manifest.encode(), Some(miss.components));
        lock(&self.manifests).insert(*miss.key, manifest);
        Some(object_key)
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
        let options = LoadOptions::default().binding(self.binding());
        Ok(lock(&self.linker).load_with(&files, &options)?)
    }

    // -----------------------------------------------------------------------------------
    // 6. Pack.

    /// Stores `objects` as the pack under `pack_key`: they linked fine, so they are worth
    /// keeping together for the next start.
    fn write_pack(&self, pack_key: &Key, objects: &[(pack::Object, Origin)]) {
        let bytes = pack::encode(objects.iter().map(|(object, _)| object.as_slice()));
        self.write(pack_key, &bytes, None);
    }

    /// Stores the batch manifest of a batch that keeps one, unless the one it read named
    /// exactly these objects: the union of the files of every unit's compile (the held
    /// batch manifest's files standing in for the units whose objects it named). Nothing
    /// is written when some unit has no such compile (its object could not be stored) or
    /// the compiles disagree about a file.
    fn write_batch_manifest(&self, batch: &Batch<'_>, object_keys: &[Key]) {
        let Some((key, components)) = &batch.batch_manifest else {
            return;
        };
        let held = batch.held.as_ref();
        if held.is_some_and(|h| h.objects == object_keys) {
            return;
        }
        let known = lock(&self.manifests);
        let mut files: Vec<Files<'_>> = held.map(BatchManifest::files).into_iter().collect();
        for (i, (unit, object)) in batch.keys.iter().zip(object_keys).enumerate() {
            if held.is_some_and(|h| h.objects[i] == *object) {
                continue;
            }
            let Some(entry) = known
                .get(unit)
                .and_then(|m| m.entries.iter().find(|e| e.object == *object))
            else {
                return;
            };
            files.push(Files {
                inputs: &entry.inputs,
                absent: &entry.absent,
                recorded_ns: entry.recorded_ns,
            });
        }
        let Some(fresh) = BatchManifest::union(object_keys.to_vec(), &files) else {
            return;
        };
        drop(known);
        self.write(key, &fresh.encode(), Some(components));
    }

    // -----------------------------------------------------------------------------------
    // 7. Record.

    /// Makes every unit of the batch resident under its object's key, bound to `link`
    /// and keeping its object for relinking (one lock of the resident map for the batch);
    /// returns the loaded units.
    fn record_residents(
        &self,
        batch: &Batch<'_>,
        object_keys: &[Key],
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
                object_keys[i],
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
        stats.manifest_hits += counts.manifest_hits;
        stats.manifest_misses += counts.manifest_misses;
        stats.not_stored += counts.not_stored;
        stats.compile_time += counts.compile_time;
        stats.load_time += load_time;
    }
}

impl<'a> Batch<'a> {
    /// The batch of `parts`, with the key of each made from `prototype`.
    fn new(parts: &'a [KeyParts<'a>], prototype: KeyBuilder) -> Batch<'a> {
        let keys: Vec<Key> = parts
            .iter()
            .map(|p| prototype.key_of(p.namespace, p.name, p.unit, p.deps))
            .collect();
        let objects = keys.iter().copied().map(Some).collect();
        Batch {
            parts,
            prototype,
            stale: vec![None; parts.len()],
            objects,
            keys,
            manifests: false,
            batch_manifest: None,
            held: None,
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
) -> Result<(CompiledObject, Duration), Error>
where
    B: Backend,
    B::Unit: Sized,
{
    let start = Instant::now();
    let unit = make()?;
    let object = backend.compile(&unit)?;
    Ok((object, start.elapsed()))
}
