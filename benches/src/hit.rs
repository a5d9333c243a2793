//! Target 1: an in-process persistent hit of a small unit against the floor of any
//! file-backed cache and against `dlopen`.
//!
//! The hit is what the facade does for a unit found on disk, without the facade's own
//! bookkeeping: [`Store::get_into`] (index lookup, read, decompression, BLAKE3
//! verification, batched access time), [`Linker::load`] of the object, and the address
//! of its symbol. The store keeps a blob this small in its index, so its hit reads no
//! file; the floor still reads one (the same stored bytes, from a store that keeps every
//! blob in a file), and the hit through that store is in the notes. The floor is
//! `open` + `read_exact` of the blob file, decompression
//! with a reused zstd context and a copy into memory already mapped and touched. The
//! `dlopen` figure is `dlopen`+`dlsym` of the same code built as a shared object, a
//! fresh copy of the file each time (`dlopen` of a path already open only counts a
//! reference). Unloading, `dlclose` and making the fresh copy are not timed.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use jitcache::linker::call::SharedObject;
use jitcache::linker::{Linker, MemoryStrategy, ObjectFile};
use jitcache::store::{BlobId, Key, KeyBuilder, Store, StoreConfig};

use crate::measure::{Step, interleaved, median, micros};
use crate::programs::{SMALL_C, SMALL_SYMBOL};
use crate::report::{Ratio, Row, Target};

/// A small unit compiled twice by the system C compiler: as an object and as a
/// shared object.
pub struct SmallUnit {
    /// The relocatable object (`cc -c`).
    pub object: Vec<u8>,
    /// The shared object (`cc -shared`).
    pub shared: PathBuf,
    dir: PathBuf,
}

/// Runs the C compiler with `args` in `dir`.
fn cc(dir: &Path, args: &[&str]) -> Result<()> {
    let out = Command::new("cc")
        .args(args)
        .current_dir(dir)
        .output()
        .context("running cc")?;
    if !out.status.success() {
        bail!(
            "cc {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

impl SmallUnit {
    /// Compiles [`SMALL_C`] in `dir` (needs `cc`).
    pub fn build(dir: &Path) -> Result<SmallUnit> {
        std::fs::write(dir.join("small.c"), SMALL_C).context("writing small.c")?;
        cc(dir, &["-O2", "-fPIC", "-c", "small.c", "-o", "small.o"])?;
        cc(
            dir,
            &["-O2", "-fPIC", "-shared", "small.c", "-o", "small.so"],
        )?;
        Ok(SmallUnit {
            object: std::fs::read(dir.join("small.o")).context("reading small.o")?,
            shared: dir.join("small.so"),
            dir: dir.to_path_buf(),
        })
    }

    /// A fresh copy of the shared object (a path `dlopen` has not seen).
    fn fresh_copy(&self, n: u64) -> Result<FreshCopy> {
        let path = self.dir.join(format!("small-{n}.so"));
        std::fs::copy(&self.shared, &path).context("copying small.so")?;
        Ok(FreshCopy(path))
    }
}

/// A copy of a shared object, removed when dropped.
struct FreshCopy(PathBuf);

impl Drop for FreshCopy {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A step timing a hit of `key` in `store` loaded by `linker`: `get_into`, load, symbol
/// (the unload after it is not timed). With `store_part`, the `get_into` part of each
/// hit is pushed there.
fn hit_step<'a>(
    store: &'a Store,
    mut linker: Linker,
    key: Key,
    mut store_part: Option<&'a mut Vec<Duration>>,
) -> Step<'a> {
    let mut object = Vec::new();
    Box::new(move || {
        let start = Instant::now();
        ensure!(
            store.get_into(&key, &mut object)?,
            "the unit is not in the store"
        );
        let read = start.elapsed();
        let id = linker.load(&[ObjectFile {
            name: "small.o",
            bytes: &object,
        }])?;
        let addr = linker.symbol(id, SMALL_SYMBOL);
        let spent = start.elapsed();
        ensure!(addr.is_some(), "{SMALL_SYMBOL} not found");
        linker.unload(id)?;
        if let Some(part) = store_part.as_deref_mut() {
            part.push(read);
        }
        Ok(spent)
    })
}

/// The three timings of target 1, medians of interleaved rounds.
pub struct HitTimes {
    /// Store hit + link + symbol.
    pub hit: Duration,
    /// The store's part of it: [`Store::get_into`].
    pub store: Duration,
    /// read_exact + decompress + copy.
    pub floor: Duration,
    /// dlopen + dlsym of a fresh copy.
    pub dlopen: Duration,
    /// The hit with the linker's arena turned off (one mapping per unit).
    pub mapping_per_unit: Duration,
    /// The hit with the blob in a file of its own (`StoreConfig::inline_max` 0).
    pub file_blob: Duration,
    /// Bytes of the object.
    pub object_len: usize,
    /// Bytes of its blob file.
    pub blob_len: u64,
}

/// Measures target 1 in `dir` over `rounds` interleaved rounds.
pub fn measure(dir: &Path, rounds: usize) -> Result<HitTimes> {
    let unit = SmallUnit::build(dir)?;
    let store = Store::open(dir.join("cache"), StoreConfig::default())?;
    let key: Key = KeyBuilder::new("bench", "small.c")
        .unit(SMALL_C.as_bytes())
        .build();
    store.put(&key, &unit.object)?;
    // The store keeps a blob this small in its index; the floor reads it from a file:
    // the same stored bytes, from a store that keeps every blob in a file. That store
    // also gives the hit with a file blob, for the notes.
    let file_store = Store::open(
        dir.join("cache-files"),
        StoreConfig {
            inline_max: 0,
            ..StoreConfig::default()
        },
    )?;
    file_store.put(&key, &unit.object)?;
    let blob_path = file_store.blob_path(&BlobId::of(&unit.object));
    let blob_len = std::fs::metadata(&blob_path)
        .with_context(|| format!("{}", blob_path.display()))?
        .len();

    // The store's part of each hit, to split the figure.
    let mut store_part = Vec::with_capacity(rounds);
    let hit = hit_step(&store, Linker::new(), key, Some(&mut store_part));

    // The floor's buffers: the file's bytes, the decompressed object, and memory it is
    // copied into, mapped and touched beforehand.
    let mut dctx = zstd::bulk::Decompressor::new().context("zstd context")?;
    let mut file_bytes = vec![0u8; usize::try_from(blob_len)?];
    let mut decompressed = Vec::with_capacity(unit.object.len());
    let mut mapped = vec![0u8; unit.object.len()];
    let floor: Step<'_> = Box::new(|| {
        let start = Instant::now();
        let mut file = File::open(&blob_path)?;
        file.read_exact(&mut file_bytes)?;
        drop(file);
        decompressed.clear();
        dctx.decompress_to_buffer(
            jitcache::store::split_stored(&file_bytes)
                .map_err(|damage| anyhow::anyhow!("the blob file: {damage}"))?
                .1,
            &mut decompressed,
        )?;
        mapped.copy_from_slice(&decompressed);
        let spent = start.elapsed();
        std::hint::black_box(&mapped);
        Ok(spent)
    });

    // The same hit with one mapping per unit (the linker's arena turned off), and with
    // the blob in a file.
    let strict_hit = hit_step(
        &store,
        Linker::with_memory(MemoryStrategy::MappingPerUnit),
        key,
        None,
    );
    let file_hit = hit_step(&file_store, Linker::new(), key, None);

    let mut copies = 0u64;
    let dlopen: Step<'_> = Box::new(|| {
        copies += 1;
        let copy = unit.fresh_copy(copies)?;
        let start = Instant::now();
        let so = SharedObject::open(&copy.0)?;
        let addr = so.symbol(SMALL_SYMBOL);
        let spent = start.elapsed();
        ensure!(
            addr.is_some(),
            "{SMALL_SYMBOL} not found in the shared object"
        );
        drop(so);
        Ok(spent)
    });

    let medians = interleaved(rounds, &mut [hit, floor, dlopen, strict_hit, file_hit])?;
    Ok(HitTimes {
        hit: medians[0],
        store: median(&mut store_part),
        floor: medians[1],
        dlopen: medians[2],
        mapping_per_unit: medians[3],
        file_blob: medians[4],
        object_len: unit.object.len(),
        blob_len,
    })
}

/// The rows of target 1.
pub fn rows(dir: &Path, rounds: usize) -> Vec<Row> {
    let floor_name = "floor: read_exact + zstd + copy";
    match measure(dir, rounds) {
        Ok(t) => {
            let what = format!(
                "hit = Store::get_into + Linker::load + symbol of a {}-byte object ({}-byte blob, kept in the index), of which get_into {:.2} µs (median); the floor reads the same blob bytes from a file; with the blob in a file of its own (inline_max 0) the hit takes {:.2} µs ({:.2}x the floor); with one mapping per unit instead of the linker's arena {:.2} µs; medians of {rounds} interleaved rounds",
                t.object_len,
                t.blob_len,
                micros(t.store),
                micros(t.file_blob),
                micros(t.file_blob) / micros(t.floor),
                micros(t.mapping_per_unit)
            );
            vec![
                Row::new(
                    1,
                    "persistent hit vs floor",
                    "µs",
                    (micros(t.hit), micros(t.floor)),
                    floor_name,
                    Ratio::ValueOverBaseline,
                    Target::AtMost(1.5),
                )
                .with_notes(what),
                Row::new(
                    1,
                    "persistent hit vs dlopen",
                    "µs",
                    (micros(t.hit), micros(t.dlopen)),
                    "dlopen+dlsym, fresh .so",
                    Ratio::BaselineOverValue,
                    Target::AtLeast(2.5),
                )
                .with_notes("ratio = how many times faster than dlopen+dlsym of the same code"),
            ]
        }
        Err(err) => {
            let why = format!("{err:#}");
            vec![
                Row::skipped(
                    1,
                    "persistent hit vs floor",
                    "µs",
                    Ratio::ValueOverBaseline,
                    Target::AtMost(1.5),
                    why.clone(),
                ),
                Row::skipped(
                    1,
                    "persistent hit vs dlopen",
                    "µs",
                    Ratio::BaselineOverValue,
                    Target::AtLeast(2.5),
                    why,
                ),
            ]
        }
    }
}
