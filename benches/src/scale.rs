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

/// Median hit latencies on a store of `plan.small` entries and one of `plan.big`
/// entries, each entry its own blob.
struct Latency {
    /// Each store as a process opening it finds it: the filling store closed (which
    /// checkpoints and truncates its log), then opened again. The target's row.
    small: Duration,
    big: Duration,
    /// In the process that just filled them, before closing: the log still holds most
    /// of the fill (a checkpoint runs on its own thread meanwhile), so a lookup also
    /// searches the log's index and reads its pages with `pread`.
    after_fill_small: Duration,
    after_fill_big: Duration,
    /// How long the big fill took.
    fill: Duration,
    /// Bytes of the big store's write-ahead log when it was opened again.
    reopened_log: u64,
    /// The index's own lookup on the same files, opened again: the entry's row and its
    /// inline bytes read by bare SQLite (no hash check, no decompression).
    sql_small: Duration,
    sql_big: Duration,
}

/// Fills a small and a big store, measures hits in the filling process, closes both
/// and measures hits again on both opened anew, each pair interleaved.
fn hit_latency(dir: &Path, plan: &Plan) -> Result<Latency> {
    let (small_dir, big_dir) = (dir.join("small"), dir.join("big"));
    let small = open_fast(&small_dir)?;
    fill_distinct(&small, plan.small, HIT_OBJECT, 0)?;
    let big = open_fast(&big_dir)?;
    let fill_start = Instant::now();
    fill_distinct(&big, plan.big, HIT_OBJECT, 0)?;
    let fill = fill_start.elapsed();
    let after_fill = interleaved(
        plan.hit_rounds,
        &mut [hit_step(&small, plan.small, 1), hit_step(&big, plan.big, 2)],
    )?;
    drop((small, big));
    let (small, big) = (open_fast(&small_dir)?, open_fast(&big_dir)?);
    let mut log = index_path(&big_dir).into_os_string();
    log.push("-wal");
    let reopened_log = std::fs::metadata(log).map_or(0, |m| m.len());
    let reopened = interleaved(
        plan.hit_rounds,
        &mut [hit_step(&small, plan.small, 3), hit_step(&big, plan.big, 4)],
    )?;
    let (sql_small, sql_big) = (sql_lookups(&small_dir)?, sql_lookups(&big_dir)?);
    let sql = interleaved(
        plan.hit_rounds,
        &mut [
            sql_step(&sql_small, plan.small, 5),
            sql_step(&sql_big, plan.big, 6),
        ],
    )?;
    Ok(Latency {
        small: reopened[0],
        big: reopened[1],
        after_fill_small: after_fill[0],
        after_fill_big: after_fill[1],
        fill,
        reopened_log,
        sql_small: sql[0],
        sql_big: sql[1],
    })
}

/// The index database of the store at `dir`.
fn index_path(dir: &Path) -> PathBuf {
    dir.join(jitcache::store::FORMAT_DIR).join("index.sqlite")
}

/// A connection of its own to the index of the store at `dir`, reading through a
/// memory map as the store's do, in one read transaction held over all its lookups
/// (the store's hits in a row share one read snapshot the same way).
fn sql_lookups(dir: &Path) -> Result<rusqlite::Connection> {
    let path = index_path(dir);
    let conn =
        rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .with_context(|| format!("{}", path.display()))?;
    conn.pragma_update(None, "mmap_size", 1i64 << 30)?;
    conn.execute_batch("BEGIN")?;
    let _: i64 = conn.query_row("SELECT COUNT(*) FROM counters", [], |r| r.get(0))?;
    Ok(conn)
}

/// One timed lookup by bare SQLite in `conn` (an index of entries `0..n`) of a key
/// drawn at random from all of them: the store's own query, its inline bytes copied
/// out; computing the key is not timed.
fn sql_step(conn: &rusqlite::Connection, n: usize, seed: u64) -> Step<'_> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::new();
    Box::new(move || {
        let key = scale_key(rng.below(n) as u64);
        let start = Instant::now();
        let mut statement = conn.prepare_cached(crate::hit::INDEX_LOOKUP)?;
        let mut rows = statement.query([&key.as_bytes()[..]])?;
        let row = rows.next()?.context("a filled key is missing")?;
        out.clear();
        out.extend_from_slice(row.get_ref(3)?.as_blob()?);
        drop(rows);
        let spent = start.elapsed();
        ensure!(!out.is_empty(), "a filled key has no inline bytes");
        Ok(spent)
    })
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
    let after_fill_name = format!(
        "hit latency, {} vs {} entries, in the filling process",
        plan.big, plan.small
    );
    match hit_latency(&latency_dir, plan) {
        Ok(l) => {
            let sizes = format!(
                "{} and {} entries, each its own {HIT_OBJECT}-byte object (kept in the index)",
                plan.big, plan.small
            );
            // Big against small, in µs, on the same sizes and repetitions.
            let pair = |name: String, (big, small): (Duration, Duration), target, notes: String| {
                Row::new(
                    5,
                    name,
                    "µs",
                    (micros(big), micros(small)),
                    format!("{} entries", plan.small),
                    Ratio::ValueOverBaseline,
                    target,
                )
                .with_sizes(sizes.clone())
                .with_runs(plan.hit_rounds, plan.hit_rounds)
                .with_notes(notes)
            };
            rows.push(pair(
                hit_name,
                (l.big, l.small),
                Target::AtMost(1.5),
                format!(
                    "Store::get_into of a key drawn at random over the whole index at every hit, interleaved; each store closed after its fill and opened again, as a process opening the cache finds it (the big store's log then {} bytes); filling {} entries with put_many took {:.1} s",
                    l.reopened_log,
                    plan.big,
                    l.fill.as_secs_f64()
                ),
            ));
            rows.push(pair(
                after_fill_name,
                (l.after_fill_big, l.after_fill_small),
                Target::Report,
                "the same hits in the process that just filled both stores, before closing them: most of the fill is still in the write-ahead log, whose pages a lookup finds through the log's index and reads with pread".to_owned(),
            ));
            rows.push(pair(
                format!("SQLite's own lookup, {} vs {} entries", plan.big, plan.small),
                (l.sql_big, l.sql_small),
                Target::Report,
                format!(
                    "the floor of the hits above: the store's query run by bare SQLite on the same index files (a connection of its own, memory-mapped, one read transaction over all its lookups), keys drawn the same way, the inline bytes copied out; what a hit adds to it: {:.2} µs at {} entries, {:.2} µs at {}",
                    micros(l.small) - micros(l.sql_small),
                    plan.small,
                    micros(l.big) - micros(l.sql_big),
                    plan.big
                ),
            ));
        }
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
