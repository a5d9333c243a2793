//! Target 5 (scale): a big index. Hit latency with many entries against few, gc over
//! many entries against deleting the same files, and the memory of a process walking
//! every entry.
//!
//! The hit-latency stores hold a distinct blob per entry (small objects, kept in the
//! index), and each hit draws its key at random over the whole key space, so the big
//! index is read where it is cold as much as where it is warm. gc runs on a store whose
//! blobs are all files, and its floor is deleting the same files (the ones gc deleted)
//! from an identical store, measured in the same run.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use jitcache::store::{
    Durability, EntryInfo, GcOptions, Key, NoProgress, PutEntry, Store, StoreConfig,
};
use serde::{Deserialize, Serialize};

use crate::measure::{Rng, Step, interleaved, micros, object_bytes, status_bytes};
use crate::report::{Ratio, Row, Target};
use crate::worker::{self, WorkerSpec};

/// Entries per `put_many` transaction when filling.
const FILL_BATCH: usize = 100_000;
/// Bytes of each entry's object in the hit-latency stores (each its own blob).
const HIT_OBJECT: usize = 256;
/// Bytes of each entry's object in the gc stores (each its own blob file).
const GC_OBJECT: usize = 512;

/// Sizes of target 3.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// Entries of the small index.
    pub small: usize,
    /// Entries of the big index.
    pub big: usize,
    /// Hits measured on each (interleaved).
    pub hit_rounds: usize,
    /// Entries (each with its own blob) gc runs over.
    pub gc_entries: usize,
}

/// The key of entry `i` of a bench store.
pub fn scale_key(i: u64) -> Key {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"jitcache bench scale key");
    hasher.update(&i.to_le_bytes());
    Key::from_bytes(*hasher.finalize().as_bytes())
}

/// Fills `store` with entries `0..n` pointing at `blobs` in turn, `FILL_BATCH` per
/// transaction.
pub fn fill_shared(store: &Store, n: usize, blobs: &[Vec<u8>]) -> Result<()> {
    let mut start = 0;
    while start < n {
        let end = (start + FILL_BATCH).min(n);
        let batch: Vec<PutEntry<'_>> = (start..end)
            .map(|i| PutEntry::new(scale_key(i as u64), &blobs[i % blobs.len()]))
            .collect();
        store.put_many(&batch)?;
        start = end;
    }
    Ok(())
}

/// Fills `store` with entries `0..n`, each with its own blob of `len` object-like
/// bytes (seeded by `seed` and the entry), `FILL_BATCH / 10` per transaction.
pub fn fill_distinct(store: &Store, n: usize, len: usize, seed: u64) -> Result<()> {
    let mut start = 0;
    while start < n {
        let end = (start + FILL_BATCH / 10).min(n);
        let bytes: Vec<Vec<u8>> = (start..end)
            .map(|i| object_bytes(seed + i as u64, len))
            .collect();
        let batch: Vec<PutEntry<'_>> = (start..end)
            .zip(&bytes)
            .map(|(i, b)| PutEntry::new(scale_key(i as u64), b))
            .collect();
        store.put_many(&batch)?;
        start = end;
    }
    Ok(())
}

/// A store with Durability::None (nothing here tests durability; fills are faster).
fn open_fast(dir: &Path) -> Result<Store> {
    let config = StoreConfig {
        durability: Durability::None,
        ..StoreConfig::default()
    };
    Ok(Store::open(dir, config)?)
}

/// Median hit latency on a store of `plan.small` entries and one of `plan.big` entries,
/// each entry its own blob, and the time the big fill took.
fn hit_latency(dir: &Path, plan: &Plan) -> Result<(Duration, Duration, Duration)> {
    let small = open_fast(&dir.join("small"))?;
    fill_distinct(&small, plan.small, HIT_OBJECT, 0)?;
    let big = open_fast(&dir.join("big"))?;
    let fill_start = Instant::now();
    fill_distinct(&big, plan.big, HIT_OBJECT, 0)?;
    let fill = fill_start.elapsed();
    let medians = interleaved(
        plan.hit_rounds,
        &mut [hit_step(&small, plan.small, 1), hit_step(&big, plan.big, 2)],
    )?;
    Ok((medians[0], medians[1], fill))
}

/// One timed hit on `store` (holding entries `0..n`) of a key drawn at random from all
/// of them; computing the key is not timed.
fn hit_step(store: &Store, n: usize, seed: u64) -> Step<'_> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::new();
    Box::new(move || {
        let key = scale_key(rng.below(n) as u64);
        let start = Instant::now();
        let hit = store.get_into(&key, &mut out)?;
        let spent = start.elapsed();
        ensure!(hit, "a filled key missed");
        Ok(spent)
    })
}

/// What a gc over `n` entries did and how long it took, against deleting the same
/// files.
struct GcRun {
    time: Duration,
    floor: Duration,
    /// A second gc on the same store afterwards, evicting nothing and walking every
    /// blob file for orphans.
    full_walk: Duration,
    /// Whether the first gc walked every blob file (it walks one slice).
    first_walk_full: bool,
    fill: Duration,
    evicted: u64,
    removed: u64,
    deleted_files: usize,
}

/// The files under `root` (relative paths), but the index's own.
fn files_under(root: &Path) -> Result<BTreeSet<PathBuf>> {
    let mut out = BTreeSet::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).with_context(|| format!("{}", dir.display()))? {
            let entry = entry?;
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                dirs.push(path);
            } else if !entry.file_name().to_string_lossy().starts_with("index") {
                out.insert(path.strip_prefix(root)?.to_path_buf());
            }
        }
    }
    Ok(out)
}

/// A store at `dir` whose blobs are all files (`inline_max` 0), filled with `n`
/// entries, each its own blob.
fn gc_store(dir: &Path, n: usize) -> Result<Store> {
    let store = Store::open(
        dir,
        StoreConfig {
            durability: Durability::None,
            inline_max: 0,
            ..StoreConfig::default()
        },
    )?;
    fill_distinct(&store, n, GC_OBJECT, 1_000_000)?;
    Ok(store)
}

/// Fills two identical stores with `n` entries, each with its own blob file; runs gc
/// on the first with a cap of half the bytes on disk (about half the entries are
/// evicted and their blob files deleted, then one sixteenth of the blob tree is checked
/// for orphans), and deletes the same files from the second: the floor. Then times a
/// gc of the first that walks every remaining blob file for orphans.
fn gc_over(dir: &Path, n: usize) -> Result<GcRun> {
    let fill_start = Instant::now();
    let store = gc_store(&dir.join("gc"), n)?;
    let fill = fill_start.elapsed();
    let twin = gc_store(&dir.join("floor"), n)?;
    drop(twin);
    let before = files_under(&dir.join("gc"))?;
    let on_disk = store.stats()?.bytes_on_disk;
    let opts = GcOptions {
        max_size: Some(on_disk / 2),
        ..GcOptions::default()
    };
    let gc_start = Instant::now();
    let report = store.gc(&opts, &NoProgress)?;
    let time = gc_start.elapsed();
    let full = GcOptions {
        full_orphan_walk: true,
        ..GcOptions::default()
    };
    let walk_start = Instant::now();
    let walk = store.gc(&full, &NoProgress)?;
    let full_walk = walk_start.elapsed();
    ensure!(
        walk.full_orphan_walk && walk.removed_orphans == 0,
        "the full walk after gc: {walk:?}"
    );
    drop(store);
    let after = files_under(&dir.join("gc"))?;
    let deleted: Vec<&PathBuf> = before.difference(&after).collect();
    let floor_root = dir.join("floor");
    let floor_start = Instant::now();
    for path in &deleted {
        let path = floor_root.join(path);
        std::fs::remove_file(&path).with_context(|| format!("{}", path.display()))?;
    }
    let floor = floor_start.elapsed();
    Ok(GcRun {
        time,
        floor,
        full_walk,
        first_walk_full: report.full_orphan_walk,
        fill,
        evicted: report.evicted_entries,
        removed: report.removed_blobs,
        deleted_files: deleted.len(),
    })
}

/// What the iterating child reports.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct IterateReport {
    /// Entries visited.
    pub entries: u64,
    /// Peak resident memory (VmHWM) after opening the store.
    pub hwm_start: u64,
    /// Peak resident memory after the first half of the entries.
    pub hwm_half: u64,
    /// Peak resident memory at the end.
    pub hwm_end: u64,
    /// Microseconds the walk took.
    pub micros: u64,
}

/// Child side: walks every entry of the store at `dir` (expected to hold `entries`),
/// noting peak resident memory at the start, half way and the end.
pub fn iterate_worker(dir: &Path, entries: u64) -> Result<IterateReport> {
    let store = Store::open(dir, StoreConfig::default())?;
    let hwm = || status_bytes("VmHWM").unwrap_or(0);
    let hwm_start = hwm();
    let mut hwm_half = hwm_start;
    let mut seen = 0u64;
    let mut bytes = 0u64;
    let start = Instant::now();
    store.for_each_entry(|e: &EntryInfo| {
        seen += 1;
        bytes = bytes.wrapping_add(e.size);
        if seen == entries / 2 {
            hwm_half = hwm();
        }
        true
    })?;
    let micros = start.elapsed().as_micros() as u64;
    std::hint::black_box(bytes);
    Ok(IterateReport {
        entries: seen,
        hwm_start,
        hwm_half,
        hwm_end: hwm(),
        micros,
    })
}

/// The rows of target 5's scale part. `exe` runs the iterating child.
pub fn rows(exe: &Path, dir: &Path, plan: &Plan) -> Vec<Row> {
    let mut rows = Vec::new();
    let hit_name = format!("hit latency, {} vs {} entries", plan.big, plan.small);
    let latency_dir = dir.join("latency");
    match hit_latency(&latency_dir, plan) {
        Ok((small, big, fill)) => rows.push(
            Row::new(
                5,
                hit_name,
                "µs",
                (micros(big), micros(small)),
                format!("{} entries", plan.small),
                Ratio::ValueOverBaseline,
                Target::AtMost(1.5),
            )
            .with_sizes(format!(
                "{} and {} entries, each its own {HIT_OBJECT}-byte object (kept in the index)",
                plan.big, plan.small
            ))
            .with_runs(plan.hit_rounds, plan.hit_rounds)
            .with_notes(format!(
                "Store::get_into of a key drawn at random over the whole index at every hit, interleaved; filling {} entries with put_many took {:.1} s",
                plan.big,
                fill.as_secs_f64()
            )),
        ),
        Err(err) => rows.push(Row::skipped(
            5,
            hit_name,
            "µs",
            Ratio::ValueOverBaseline,
            Target::AtMost(1.5),
            format!("{err:#}"),
        )),
    }

    let iterate_name = format!("memory while iterating {} entries", plan.big);
    match iterate_child(exe, &latency_dir.join("big"), plan.big as u64) {
        Ok(r) => {
            let second_half = (r.entries - r.entries / 2) as f64;
            let kept = second_half * std::mem::size_of::<EntryInfo>() as f64;
            rows.push(
                Row::new(
                    5,
                    iterate_name,
                    "bytes",
                    (r.hwm_end.saturating_sub(r.hwm_half) as f64, kept),
                    "keeping those entries",
                    Ratio::ValueOverBaseline,
                    Target::AtMost(0.05),
                )
                .with_notes(format!(
                    "peak RSS (VmHWM) growth of a child walking every entry with for_each_entry, over the second half of the walk, against what keeping the second half's EntryInfo values would take; growth over the whole walk {} KiB, walk took {:.2} s",
                    r.hwm_end.saturating_sub(r.hwm_start) / 1024,
                    r.micros as f64 / 1e6
                )),
            );
        }
        Err(err) => rows.push(Row::skipped(
            5,
            iterate_name,
            "bytes",
            Ratio::ValueOverBaseline,
            Target::AtMost(0.05),
            format!("{err:#}"),
        )),
    }
    let _ = std::fs::remove_dir_all(&latency_dir);

    let gc_name = format!("gc over {} entries vs deleting the files", plan.gc_entries);
    let gc_dir = dir.join("gc");
    let walk_name = "full orphan walk of the files gc left vs deleting the files".to_owned();
    match gc_over(&gc_dir, plan.gc_entries) {
        Ok(g) => rows.extend([Row::new(
                5,
                gc_name,
                "s",
                (g.time.as_secs_f64(), g.floor.as_secs_f64()),
                "remove_file of the files gc deleted",
                Ratio::ValueOverBaseline,
                Target::AtMost(3.0),
            )
            .with_sizes(format!(
                "{} entries, each its own {GC_OBJECT}-byte object in a blob file of its own",
                plan.gc_entries
            ))
            .with_runs(1, 1)
            .with_notes(format!(
                "gc capped at half the bytes on disk evicted {} entries and removed {} blobs ({} files), then checked {} for orphans; the floor deletes the same {} files from an identical store; one fill took {:.1} s",
                g.evicted,
                g.removed,
                g.deleted_files,
                if g.first_walk_full { "every remaining blob file" } else { "one sixteenth of the blob tree (the slice whose turn it was; 16 runs check every file)" },
                g.deleted_files,
                g.fill.as_secs_f64()
            )),
            Row::new(
                5,
                walk_name,
                "s",
                (g.full_walk.as_secs_f64(), g.floor.as_secs_f64()),
                "remove_file of the files gc deleted",
                Ratio::ValueOverBaseline,
                Target::Report,
            )
            .with_sizes(format!("{} blob files left after the gc", plan.gc_entries as u64 - g.removed))
            .with_runs(1, 1)
            .with_notes("a second gc of the same store, evicting nothing, walks every blob file for orphans (GcOptions::full_orphan_walk, `jitcache gc --full`): what a gc costs after an index rebuild, or with --full".to_owned()),
        ]),
        Err(err) => rows.extend([(gc_name, Target::AtMost(3.0)), (walk_name, Target::Report)].map(
            |(name, target)| {
                Row::skipped(5, name, "s", Ratio::ValueOverBaseline, target, format!("{err:#}"))
            },
        )),
    }
    let _ = std::fs::remove_dir_all(&gc_dir);
    rows
}

/// Runs the iterating child on the store at `store_dir`.
fn iterate_child(exe: &Path, store_dir: &Path, entries: u64) -> Result<IterateReport> {
    let spec = WorkerSpec::Iterate {
        dir: PathBuf::from(store_dir),
        entries,
    };
    let out = worker::run_child(exe, &spec).context("iterating child")?;
    let report: IterateReport = serde_json::from_value(out)?;
    ensure!(
        report.entries == entries,
        "the child saw {} entries, expected {entries}",
        report.entries
    );
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_and_iterate_see_every_entry() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_fast(dir.path()).unwrap();
        let blobs = vec![b"one".to_vec(), b"two".to_vec()];
        fill_shared(&store, 1000, &blobs).unwrap();
        let stats = store.stats().unwrap();
        assert_eq!((stats.entries, stats.blobs), (1000, 2));
        assert_eq!(
            store.get(&scale_key(3)).unwrap().as_deref(),
            Some(&b"two"[..])
        );
        drop(store);
        let report = iterate_worker(dir.path(), 1000).unwrap();
        assert_eq!(report.entries, 1000);
        // VmHWM is read, not asserted monotonic: the kernel folds RSS into its high-water
        // mark lazily, so in a process with other threads the figure can step back.
        assert!(report.hwm_end > 0, "VmHWM is readable");
    }

    #[test]
    fn gc_deletes_files_and_the_floor_deletes_the_same_ones() {
        let dir = tempfile::tempdir().unwrap();
        let g = gc_over(dir.path(), 200).unwrap();
        assert!(g.evicted > 0 && g.evicted < 200, "evicted {}", g.evicted);
        assert_eq!(
            g.deleted_files as u64, g.removed,
            "one blob file per removed blob"
        );
        // Blob files only: gc also makes lock files (gc.waiters) the floor has no use for.
        let blobs = |root: &Path| -> BTreeSet<PathBuf> {
            files_under(root)
                .unwrap()
                .into_iter()
                .filter(|p| p.starts_with("v1/blobs"))
                .collect()
        };
        let left = blobs(&dir.path().join("floor"));
        let kept = blobs(&dir.path().join("gc"));
        assert!(!kept.is_empty(), "gc kept some blob files");
        assert_eq!(left, kept, "the floor deleted exactly the files gc deleted");
    }

    #[test]
    fn keys_are_distinct() {
        let keys: std::collections::HashSet<Key> = (0..10_000).map(scale_key).collect();
        assert_eq!(keys.len(), 10_000);
    }
}
