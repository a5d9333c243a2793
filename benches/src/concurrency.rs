//! Target 4: 2, 4 and 8 processes doing mixed hits and puts on one cache. Total
//! throughput must not fall as processes are added, and no operation may fail with a
//! busy or locked error.
//!
//! Every worker opens the cache, waits for a common start time, then for a fixed time
//! does hits on entries filled beforehand and, every `put_every`-th operation, a put of
//! a new 1 KiB object under a new key (default configuration).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use jitcache::store::{Key, PutEntry, Store, StoreConfig};
use serde::{Deserialize, Serialize};

use crate::measure::{Rng, median_f64, object_bytes};
use crate::report::{Ratio, Row, Target};
use crate::scale::scale_key;
use crate::worker::{self, WorkerSpec};

/// What one worker does.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct MixedSpec {
    /// The cache root.
    pub dir: PathBuf,
    /// This worker's number (seeds its choices and its keys).
    pub worker: u64,
    /// How many workers run at once (part of the put keys).
    pub procs: u64,
    /// When to start, in milliseconds since the Unix epoch.
    pub start_ms: u64,
    /// How long to run.
    pub duration_ms: u64,
    /// Entries filled beforehand, keys `scale_key(0..keys)`: the hits.
    pub keys: u64,
    /// Every this-many-th operation is a put.
    pub put_every: u64,
    /// Round of the measurement (part of the put keys).
    pub round: u64,
    /// Stop after this many operations, if the time has not run out first (the
    /// criterion bench times a fixed amount of work).
    #[serde(default)]
    pub max_ops: Option<u64>,
}

/// What one worker did.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
pub struct MixedReport {
    /// Operations done in the time (failed ones included).
    pub ops: u64,
    /// Gets that returned bytes.
    pub hits: u64,
    /// Gets that found nothing.
    pub misses: u64,
    /// Puts that succeeded.
    pub puts: u64,
    /// Operations that failed with a busy or locked error from the index.
    pub busy_errors: u64,
    /// Operations that failed otherwise.
    pub other_errors: u64,
    /// The first error, as text.
    pub first_error: Option<String>,
}

impl MixedReport {
    /// Adds another worker's counts to these.
    pub fn add(&mut self, other: MixedReport) {
        self.ops += other.ops;
        self.hits += other.hits;
        self.misses += other.misses;
        self.puts += other.puts;
        self.busy_errors += other.busy_errors;
        self.other_errors += other.other_errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    fn failed(&mut self, err: &jitcache::store::Error) {
        let text = err.to_string();
        if is_busy(&text) {
            self.busy_errors += 1;
        } else {
            self.other_errors += 1;
        }
        self.first_error.get_or_insert(text);
    }
}

/// Whether an error's text is SQLite's "database is locked" (`SQLITE_BUSY`) or
/// "database table is locked" (`SQLITE_LOCKED`), the store's own bounded wait running
/// out (`Error::Busy`: "gave up after N ms waiting for ... held by another process"),
/// or any other busy report.
pub fn is_busy(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    t.contains("locked") || t.contains("busy") || t.contains("held by another process")
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The key of the `n`-th put of a worker.
fn put_key(spec: &MixedSpec, n: u64) -> Key {
    let mut h = blake3::Hasher::new();
    h.update(b"jitcache bench mixed put");
    for x in [spec.round, spec.procs, spec.worker, n] {
        h.update(&x.to_le_bytes());
    }
    Key::from_bytes(*h.finalize().as_bytes())
}

/// Child side: runs the mix described by `spec`.
pub fn mixed_worker(spec: &MixedSpec) -> Result<MixedReport> {
    let store = Store::open(&spec.dir, StoreConfig::default())?;
    let wait = spec.start_ms.saturating_sub(now_ms());
    std::thread::sleep(Duration::from_millis(wait));
    let deadline = Instant::now() + Duration::from_millis(spec.duration_ms);
    let mut rng = Rng::new(spec.worker * 7919 + spec.procs * 104_729 + spec.round);
    let mut report = MixedReport::default();
    let mut out = Vec::new();
    let mut bytes = object_bytes(spec.worker, 1024);
    let put_every = spec.put_every.max(1);
    let max_ops = spec.max_ops.unwrap_or(u64::MAX);
    while report.ops < max_ops && Instant::now() < deadline {
        report.ops += 1;
        if report.ops % put_every == 0 {
            let key = put_key(spec, report.ops);
            // New bytes for every put: a new blob, as a compile would produce.
            bytes[..32].copy_from_slice(key.as_bytes());
            match store.put(&key, &bytes) {
                Ok(()) => report.puts += 1,
                Err(err) => report.failed(&err),
            }
        } else {
            let key = scale_key(rng.below(spec.keys as usize) as u64);
            match store.get_into(&key, &mut out) {
                Ok(true) => report.hits += 1,
                Ok(false) => report.misses += 1,
                Err(err) => report.failed(&err),
            }
        }
    }
    if let Err(err) = store.flush() {
        report.failed(&err);
    }
    Ok(report)
}

/// Sizes of target 4.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// How long each measurement runs.
    pub duration: Duration,
    /// Measurements per process count (the median is kept).
    pub repeats: usize,
    /// Entries filled beforehand.
    pub keys: u64,
    /// Every this-many-th operation is a put.
    pub put_every: u64,
}

/// Process counts compared.
pub const PROCS: [u64; 3] = [2, 4, 8];

/// Throughput of one measurement with `procs` workers, and their reports.
fn measure_once(
    exe: &Path,
    dir: &Path,
    plan: &Plan,
    procs: u64,
    round: u64,
) -> Result<(f64, Vec<MixedReport>)> {
    // Late enough for every child to have started and opened the store.
    let start_ms = now_ms() + 300 + 40 * procs;
    let children = (0..procs)
        .map(|w| {
            let spec = WorkerSpec::Mixed(MixedSpec {
                dir: dir.to_path_buf(),
                worker: w,
                procs,
                start_ms,
                duration_ms: plan.duration.as_millis() as u64,
                keys: plan.keys,
                put_every: plan.put_every,
                round,
                max_ops: None,
            });
            worker::spawn(exe, &spec)
        })
        .collect::<Result<Vec<_>>>()?;
    let mut reports = Vec::with_capacity(children.len());
    for child in children {
        reports.push(serde_json::from_value::<MixedReport>(worker::finish(
            child,
        )?)?);
    }
    let ops: u64 = reports.iter().map(|r| r.ops).sum();
    Ok((ops as f64 / plan.duration.as_secs_f64(), reports))
}

/// Fills the cache at `dir` with `keys` entries of distinct 1 KiB objects.
fn prefill(dir: &Path, keys: u64) -> Result<()> {
    let store = Store::open(dir, StoreConfig::default())?;
    let bytes: Vec<Vec<u8>> = (0..keys).map(|i| object_bytes(i + 77, 1024)).collect();
    let batch: Vec<PutEntry<'_>> = bytes
        .iter()
        .enumerate()
        .map(|(i, b)| PutEntry::new(scale_key(i as u64), b))
        .collect();
    store.put_many(&batch)?;
    Ok(())
}

/// Medians of ops/s per process count, and the summed reports.
fn measure(exe: &Path, dir: &Path, plan: &Plan) -> Result<(Vec<f64>, MixedReport)> {
    let mut total = MixedReport::default();
    // First 8 processes creating the cache at once (their hits all miss): opening is an
    // operation that must not fail either. Counted in the errors, not in the rates.
    let race = Plan {
        duration: Duration::from_millis(300),
        ..*plan
    };
    let (_, reports) = measure_once(exe, &dir.join("fresh"), &race, 8, u64::MAX)?;
    reports.into_iter().for_each(|r| total.add(r));
    let dir = &dir.join("cache");
    prefill(dir, plan.keys)?;
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); PROCS.len()];
    for round in 0..plan.repeats {
        for (i, &procs) in PROCS.iter().enumerate() {
            let (rate, reports) = measure_once(exe, dir, plan, procs, round as u64)?;
            samples[i].push(rate);
            reports.into_iter().for_each(|r| total.add(r));
        }
    }
    let medians = samples.iter_mut().map(|s| median_f64(s)).collect();
    Ok((medians, total))
}

/// The rows of target 4.
pub fn rows(exe: &Path, dir: &Path, plan: &Plan) -> Vec<Row> {
    let names = [
        "throughput, 4 vs 2 processes",
        "throughput, 8 vs 2 processes",
        "busy/locked errors, 2-8 processes",
    ];
    let (rates, total) = match measure(exe, dir, plan) {
        Ok(m) => m,
        Err(err) => {
            let why = format!("{err:#}");
            return vec![
                Row::skipped(
                    4,
                    names[0],
                    "ops/s",
                    Ratio::ValueOverBaseline,
                    THROUGHPUT,
                    why.clone(),
                ),
                Row::skipped(
                    4,
                    names[1],
                    "ops/s",
                    Ratio::ValueOverBaseline,
                    THROUGHPUT,
                    why.clone(),
                ),
                Row::skipped(
                    4,
                    names[2],
                    "errors",
                    Ratio::ValueOverBaseline,
                    Target::AtMost(0.0),
                    why,
                ),
            ];
        }
    };
    let mix = format!(
        "hits on {} entries and 1 put in {} (a new 1 KiB object, default durability) for {:.1} s, median of {}; ops/s with 2, 4, 8 processes: {:.0}, {:.0}, {:.0}",
        plan.keys,
        plan.put_every,
        plan.duration.as_secs_f64(),
        plan.repeats,
        rates[0],
        rates[1],
        rates[2]
    );
    let mut errors = format!(
        "{} operations ({} hits, {} misses, {} puts), including a first round of 8 processes creating a fresh cache at once (their hits miss); errors other than busy/locked: {}",
        total.ops, total.hits, total.misses, total.puts, total.other_errors
    );
    if let Some(first) = &total.first_error {
        errors.push_str(&format!("; first error: {first}"));
    }
    vec![
        Row::new(
            4,
            names[0],
            "ops/s",
            (rates[1], rates[0]),
            "2 processes",
            Ratio::ValueOverBaseline,
            THROUGHPUT,
        )
        .with_notes(mix),
        Row::new(
            4,
            names[1],
            "ops/s",
            (rates[2], rates[0]),
            "2 processes",
            Ratio::ValueOverBaseline,
            THROUGHPUT,
        ),
        Row::new(
            4,
            names[2],
            "errors",
            (
                (total.busy_errors + total.other_errors) as f64,
                total.ops as f64,
            ),
            "operations",
            Ratio::ValueOverBaseline,
            Target::AtMost(0.0),
        )
        .with_notes(errors),
    ]
}

/// "Does not fall": the ratio of total throughput to that of 2 processes.
const THROUGHPUT: Target = Target::AtLeast(0.9);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_errors_are_recognised() {
        assert!(is_busy(
            "index.sqlite: index database error: database is locked"
        ));
        assert!(is_busy("database table is locked"));
        let store_busy = jitcache_store::Error::Busy {
            path: "/c/v1/index.sqlite".into(),
            what: "the index's write lock",
            waited_ms: 40,
        };
        assert!(is_busy(&store_busy.to_string()), "{store_busy}");
        assert!(!is_busy("no space left on device"));
    }

    #[test]
    fn a_short_mix_hits_and_puts_without_errors() {
        let dir = tempfile::tempdir().unwrap();
        prefill(dir.path(), 50).unwrap();
        let spec = MixedSpec {
            dir: dir.path().to_path_buf(),
            worker: 0,
            procs: 1,
            start_ms: 0,
            duration_ms: 50,
            keys: 50,
            put_every: 4,
            round: 0,
            max_ops: Some(1000),
        };
        let r = mixed_worker(&spec).unwrap();
        assert!(r.ops > 0);
        assert_eq!(r.misses, 0);
        assert_eq!(r.busy_errors + r.other_errors, 0, "{:?}", r.first_error);
        assert_eq!(r.hits + r.puts, r.ops);
        let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
        assert_eq!(store.stats().unwrap().entries, 50 + r.puts);
    }
}
