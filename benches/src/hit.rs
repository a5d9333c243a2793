//! Target 1: an in-process persistent hit of a small unit against floors of the same
//! storage, and against `dlopen`.
//!
//! The hit is what the facade does for a unit found on disk, without the facade's own
//! bookkeeping: [`Store::get_into`] (index lookup, read, decompression, BLAKE3
//! verification, batched access time), [`Linker::load`] of the object, and the address
//! of its symbol. Each kind of hit has its own floor, like for like:
//!
//! - the store keeps a blob this small in its index: the **index floor** reads the same
//!   stored bytes from a row of an SQLite database of the same shape (an `entries`
//!   table keyed by the key, an `inline_blobs` table keyed by the blob hash, the same
//!   correlated subquery, WAL, memory-mapped reads), one autocommit `SELECT` each;
//! - a store with `inline_max` 0 keeps the blob in a file: the **file floor** is `open`
//!   + `read_exact` of that blob file.
//!
//! Both floors then decompress with a reused zstd context and copy into memory already
//! mapped and touched. Every pair is measured **isolated** (a pause longer than the
//! store's snapshot reuse window before each call, so the hit opens its read
//! transaction, and the floor finds its caches as cold) and **in bursts** (32 calls of
//! one side back to back, as a JIT hits a batch of units, the hit reusing the open
//! snapshot; the bursts of the four steps take turns, and a burst's time is its mean
//! per call).
//!
//! The `dlopen` comparison loads into fresh memory on both sides: `dlopen`+`dlsym` of a
//! fresh copy of the shared object (`dlopen` of a path already open only counts a
//! reference) against the hit into a new [`Linker`], whose arena maps a new chunk.
//! Unloading, `dlclose`, making the fresh copy and the new linker are not timed.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use jitcache::linker::call::SharedObject;
use jitcache::linker::{Linker, ObjectFile};
use jitcache::store::{BlobId, Key, KeyBuilder, Store, StoreConfig};
use rusqlite::Connection;

use crate::measure::{Step, interleaved, micros};
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

/// A pause longer than the store's snapshot reuse window (10 ms): a call after it opens
/// a read transaction of its own.
const PAUSE: Duration = Duration::from_millis(15);

/// Calls in one burst: a JIT loading a batch of units hits them back to back.
const BURST: u32 = 32;

/// How a step makes its calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Calls {
    /// One call after [`PAUSE`].
    Isolated,
    /// [`BURST`] calls back to back; the step's time is their mean.
    Burst,
}

impl Calls {
    /// Runs `call` (which returns the time of its timed part) as this mode says and
    /// gives the time of one call.
    fn time(self, mut call: impl FnMut() -> Result<Duration>) -> Result<Duration> {
        match self {
            Calls::Isolated => {
                std::thread::sleep(PAUSE);
                call()
            }
            Calls::Burst => {
                let mut total = Duration::ZERO;
                for _ in 0..BURST {
                    total += call()?;
                }
                Ok(total / BURST)
            }
        }
    }
}

/// Sizes and repetitions of target 1.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// Interleaved rounds of the bursts (each of [`BURST`] calls).
    pub burst_rounds: usize,
    /// Interleaved rounds of the fresh-memory hit and `dlopen`.
    pub fresh_rounds: usize,
    /// Interleaved rounds of the isolated calls (each after [`PAUSE`]).
    pub isolated_rounds: usize,
}

/// Loads `object` into `linker` and takes the address of [`SMALL_SYMBOL`].
fn load_small(linker: &mut Linker, object: &[u8]) -> Result<()> {
    let id = linker.load(&[ObjectFile {
        name: "small.o",
        bytes: object,
    }])?;
    ensure!(
        linker.symbol(id, SMALL_SYMBOL).is_some(),
        "{SMALL_SYMBOL} not found"
    );
    Ok(())
}

/// A step timing a hit of `key` in `store` into one linker kept across calls: get_into,
/// load, symbol, its calls made as `calls` says. The units stay loaded, as a JIT's do
/// (unloading each would make the next load reuse its piece, which costs a
/// `membarrier` a load into fresh bytes does not pay).
fn hit_step(store: &Store, key: Key, calls: Calls) -> Step<'_> {
    let mut linker = Linker::new();
    let mut object = Vec::new();
    Box::new(move || {
        calls.time(|| {
            let start = Instant::now();
            ensure!(
                store.get_into(&key, &mut object)?,
                "the unit is not in the store"
            );
            load_small(&mut linker, &object)?;
            Ok(start.elapsed())
        })
    })
}

/// A step timing a hit of `key` in `store` into a new linker each call (fresh memory);
/// making and dropping the linker is not timed.
fn fresh_hit_step(store: &Store, key: Key) -> Step<'_> {
    let mut object = Vec::new();
    Box::new(move || {
        let mut linker = Linker::new();
        let start = Instant::now();
        ensure!(
            store.get_into(&key, &mut object)?,
            "the unit is not in the store"
        );
        load_small(&mut linker, &object)?;
        let spent = start.elapsed();
        drop(linker);
        Ok(spent)
    })
}

/// What both floors do after reading the stored bytes: decompress with a reused zstd
/// context and copy into memory already mapped and touched.
struct FloorTail {
    dctx: zstd::bulk::Decompressor<'static>,
    decompressed: Vec<u8>,
    mapped: Vec<u8>,
}

impl FloorTail {
    fn new(object_len: usize) -> Result<FloorTail> {
        Ok(FloorTail {
            dctx: zstd::bulk::Decompressor::new().context("zstd context")?,
            decompressed: Vec::with_capacity(object_len),
            mapped: vec![0u8; object_len],
        })
    }

    /// Decompresses `stored` (a blob file's bytes: header and zstd frame) and copies
    /// the object into the mapped memory.
    fn finish(&mut self, stored: &[u8]) -> Result<()> {
        self.decompressed.clear();
        let frame = jitcache::store::split_stored(stored)
            .map_err(|damage| anyhow::anyhow!("the stored blob: {damage}"))?
            .1;
        self.dctx
            .decompress_to_buffer(frame, &mut self.decompressed)?;
        ensure!(
            self.decompressed.len() == self.mapped.len(),
            "the stored blob decompresses to {} bytes, not {}",
            self.decompressed.len(),
            self.mapped.len()
        );
        self.mapped.copy_from_slice(&self.decompressed);
        std::hint::black_box(&self.mapped);
        Ok(())
    }
}

/// The file floor: `open` + `read_exact` of the blob file at `path`, then the tail.
fn file_floor_step(
    path: &Path,
    stored_len: usize,
    object_len: usize,
    calls: Calls,
) -> Result<Step<'_>> {
    let mut tail = FloorTail::new(object_len)?;
    let mut stored = vec![0u8; stored_len];
    Ok(Box::new(move || {
        calls.time(|| {
            let start = Instant::now();
            let mut file = File::open(path)?;
            file.read_exact(&mut stored)?;
            drop(file);
            tail.finish(&stored)?;
            Ok(start.elapsed())
        })
    }))
}

/// The store's lookup of one entry and its inline bytes (its 4th column), as the index
/// floors run it on a database of the index's shape.
pub const INDEX_LOOKUP: &str = "SELECT blob, size, last_access_ms,
        (SELECT data FROM inline_blobs i WHERE i.blob = entries.blob)
     FROM entries WHERE key = ?1";

/// An SQLite database of the store's index shape holding one entry and its inline blob:
/// what the index floor reads.
pub struct IndexFloor {
    conn: Connection,
    key: Key,
}

impl IndexFloor {
    /// Creates the database at `path` with the entry `key` → `blob`, whose stored bytes
    /// (header and zstd frame) are `stored`.
    pub fn create(
        path: &Path,
        key: Key,
        blob: &BlobId,
        size: usize,
        stored: &[u8],
    ) -> Result<IndexFloor> {
        let conn = Connection::open(path).with_context(|| format!("{}", path.display()))?;
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "wal", |r| r.get(0))?;
        ensure!(
            mode == "wal",
            "the floor's database is not in WAL mode: {mode}"
        );
        conn.pragma_update(None, "mmap_size", 1i64 << 30)?;
        conn.execute_batch(
            "CREATE TABLE entries (
                 key BLOB PRIMARY KEY NOT NULL, blob BLOB NOT NULL, size INTEGER NOT NULL,
                 stored_size INTEGER NOT NULL, name TEXT, created_ms INTEGER NOT NULL,
                 last_access_ms INTEGER NOT NULL
             ) WITHOUT ROWID;
             CREATE TABLE inline_blobs (blob BLOB PRIMARY KEY NOT NULL, data BLOB NOT NULL);",
        )?;
        let blob_hash: &[u8] = blob.as_bytes();
        conn.execute(
            "INSERT INTO entries VALUES (?1, ?2, ?3, ?4, NULL, 0, 0)",
            rusqlite::params![
                &key.as_bytes()[..],
                blob_hash,
                size as i64,
                stored.len() as i64
            ],
        )?;
        conn.execute(
            "INSERT INTO inline_blobs VALUES (?1, ?2)",
            rusqlite::params![blob_hash, stored],
        )?;
        Ok(IndexFloor { conn, key })
    }

    /// Reads the entry's stored bytes into `out` (one autocommit `SELECT`: a read
    /// transaction of its own).
    pub fn read(&self, out: &mut Vec<u8>) -> Result<()> {
        let mut statement = self.conn.prepare_cached(INDEX_LOOKUP)?;
        let mut rows = statement.query([&self.key.as_bytes()[..]])?;
        let row = rows.next()?.context("the floor's entry is missing")?;
        let data = row.get_ref(3)?.as_blob()?;
        out.clear();
        out.extend_from_slice(data);
        Ok(())
    }
}

/// The index floor: the entry's row read from `floor`, then the tail.
fn index_floor_step(floor: &IndexFloor, object_len: usize, calls: Calls) -> Result<Step<'_>> {
    let mut tail = FloorTail::new(object_len)?;
    let mut stored = Vec::new();
    Ok(Box::new(move || {
        calls.time(|| {
            let start = Instant::now();
            floor.read(&mut stored)?;
            tail.finish(&stored)?;
            Ok(start.elapsed())
        })
    }))
}

/// Medians of one pair (a hit and its floor), isolated and in bursts.
#[derive(Clone, Copy, Debug)]
pub struct Pair {
    /// The hit, isolated.
    pub hit_isolated: Duration,
    /// Its floor, isolated.
    pub floor_isolated: Duration,
    /// The hit, in bursts.
    pub hit_burst: Duration,
    /// Its floor, in bursts.
    pub floor_burst: Duration,
}

/// The timings of target 1, medians of interleaved rounds.
pub struct HitTimes {
    /// The store keeps the blob in its index; against the index floor.
    pub inline: Pair,
    /// The store keeps the blob in a file; against the file floor.
    pub file: Pair,
    /// The inline hit into a new linker (fresh memory), in bursts.
    pub fresh_hit: Duration,
    /// `dlopen` + `dlsym` of a fresh copy.
    pub dlopen: Duration,
    /// Bytes of the object.
    pub object_len: usize,
    /// Bytes of its stored blob (header and zstd frame).
    pub blob_len: usize,
}

/// Measures target 1 in `dir`.
pub fn measure(dir: &Path, plan: &Plan) -> Result<HitTimes> {
    let unit = SmallUnit::build(dir)?;
    let key: Key = KeyBuilder::new("bench", "small.c")
        .unit(SMALL_C.as_bytes())
        .build();
    let store = Store::open(dir.join("cache"), StoreConfig::default())?;
    store.put(&key, &unit.object)?;
    let file_store = Store::open(
        dir.join("cache-files"),
        StoreConfig {
            inline_max: 0,
            ..StoreConfig::default()
        },
    )?;
    file_store.put(&key, &unit.object)?;
    let blob = BlobId::of(&unit.object);
    let blob_path = file_store.blob_path(&blob);
    let stored = std::fs::read(&blob_path).with_context(|| format!("{}", blob_path.display()))?;
    let index_floor = IndexFloor::create(
        &dir.join("floor.sqlite"),
        key,
        &blob,
        unit.object.len(),
        &stored,
    )?;
    let len = unit.object.len();

    let isolated = interleaved(
        plan.isolated_rounds,
        &mut [
            hit_step(&store, key, Calls::Isolated),
            index_floor_step(&index_floor, len, Calls::Isolated)?,
            hit_step(&file_store, key, Calls::Isolated),
            file_floor_step(&blob_path, stored.len(), len, Calls::Isolated)?,
        ],
    )?;

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
    let bursts = interleaved(
        plan.burst_rounds,
        &mut [
            hit_step(&store, key, Calls::Burst),
            index_floor_step(&index_floor, len, Calls::Burst)?,
            hit_step(&file_store, key, Calls::Burst),
            file_floor_step(&blob_path, stored.len(), len, Calls::Burst)?,
        ],
    )?;
    let fresh = interleaved(
        plan.fresh_rounds,
        &mut [fresh_hit_step(&store, key), dlopen],
    )?;
    Ok(HitTimes {
        inline: Pair {
            hit_isolated: isolated[0],
            floor_isolated: isolated[1],
            hit_burst: bursts[0],
            floor_burst: bursts[1],
        },
        file: Pair {
            hit_isolated: isolated[2],
            floor_isolated: isolated[3],
            hit_burst: bursts[2],
            floor_burst: bursts[3],
        },
        fresh_hit: fresh[0],
        dlopen: fresh[1],
        object_len: len,
        blob_len: stored.len(),
    })
}

/// The names and targets of target 1's rows, in order.
const ROWS: [(&str, &str, Ratio, Target); 5] = [
    (
        "inline hit vs index floor, isolated",
        "index floor: SQLite row + zstd + copy",
        Ratio::ValueOverBaseline,
        Target::AtMost(1.5),
    ),
    (
        "inline hit vs index floor, bursts",
        "index floor: SQLite row + zstd + copy",
        Ratio::ValueOverBaseline,
        Target::AtMost(1.5),
    ),
    (
        "file-blob hit vs file floor, isolated",
        "file floor: open + read + zstd + copy",
        Ratio::ValueOverBaseline,
        Target::AtMost(1.5),
    ),
    (
        "file-blob hit vs file floor, bursts",
        "file floor: open + read + zstd + copy",
        Ratio::ValueOverBaseline,
        Target::AtMost(1.5),
    ),
    (
        "hit vs dlopen, fresh memory both",
        "dlopen+dlsym, fresh .so",
        Ratio::BaselineOverValue,
        Target::AtLeast(2.5),
    ),
];

/// The rows of target 1.
pub fn rows(dir: &Path, plan: &Plan) -> Vec<Row> {
    let t = match measure(dir, plan) {
        Ok(t) => t,
        Err(err) => {
            let why = format!("{err:#}");
            return ROWS
                .iter()
                .map(|&(name, _, kind, target)| {
                    Row::skipped(1, name, "µs", kind, target, why.clone())
                })
                .collect();
        }
    };
    let figures = [
        (
            t.inline.hit_isolated,
            t.inline.floor_isolated,
            plan.isolated_rounds,
        ),
        (t.inline.hit_burst, t.inline.floor_burst, plan.burst_rounds),
        (
            t.file.hit_isolated,
            t.file.floor_isolated,
            plan.isolated_rounds,
        ),
        (t.file.hit_burst, t.file.floor_burst, plan.burst_rounds),
        (t.fresh_hit, t.dlopen, plan.fresh_rounds),
    ];
    let notes = [
        format!("hit = Store::get_into + Linker::load + symbol, the blob kept in the index; each call after a {} ms pause (the store's read snapshot has ended, so the hit opens a read transaction)", PAUSE.as_millis()),
        format!("bursts of {BURST} calls back to back, each burst's mean per call; the medians are over bursts (the hit reuses the store's open read snapshot; the floor's SELECT is a read transaction of its own each time)"),
        format!("the store keeps the blob in a file (inline_max 0); each call after a {} ms pause", PAUSE.as_millis()),
        format!("bursts of {BURST} calls back to back, each burst's mean per call"),
        "ratio = how many times faster than dlopen+dlsym of the same code; the hit loads into a new Linker each time (its arena maps a new chunk), dlopen maps a fresh copy of the file".to_owned(),
    ];
    let sizes = format!(
        "a {}-byte object, {}-byte stored blob",
        t.object_len, t.blob_len
    );
    ROWS.iter()
        .zip(figures)
        .zip(notes)
        .map(
            |((&(name, baseline_name, kind, target), (value, baseline, runs)), notes)| {
                Row::new(
                    1,
                    name,
                    "µs",
                    (micros(value), micros(baseline)),
                    baseline_name,
                    kind,
                    target,
                )
                .with_sizes(sizes.clone())
                .with_runs(runs, runs)
                .with_notes(notes)
            },
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::object_bytes;

    #[test]
    fn both_floors_read_back_the_stored_object() {
        let dir = tempfile::tempdir().unwrap();
        let object = object_bytes(5, 1500);
        let key = KeyBuilder::new("bench", "floor").unit(b"x").build();
        let store = Store::open(
            dir.path().join("files"),
            StoreConfig {
                inline_max: 0,
                ..StoreConfig::default()
            },
        )
        .unwrap();
        store.put(&key, &object).unwrap();
        let blob = BlobId::of(&object);
        let path = store.blob_path(&blob);
        let stored = std::fs::read(&path).unwrap();

        let floor = IndexFloor::create(
            &dir.path().join("floor.sqlite"),
            key,
            &blob,
            object.len(),
            &stored,
        )
        .unwrap();
        let mut read = Vec::new();
        floor.read(&mut read).unwrap();
        assert_eq!(read, stored, "the row holds the blob file's bytes");
        let mut tail = FloorTail::new(object.len()).unwrap();
        tail.finish(&read).unwrap();
        assert_eq!(tail.mapped, object);

        let mut file_floor =
            file_floor_step(&path, stored.len(), object.len(), Calls::Burst).unwrap();
        file_floor().unwrap();
        let mut short = FloorTail::new(object.len() - 1).unwrap();
        assert!(
            short.finish(&stored).is_err(),
            "a size mismatch is an error"
        );
    }
}
