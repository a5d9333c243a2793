//! Target 6 (issue 16): maintenance never blocks the JIT.
//!
//! 8 processes do a mix of hits and compiles (a put of a new object) on a cache of
//! `entries` entries, first alone, then while this process runs gc and verify in a loop:
//! the p50, p99 and maximum latency of get and put, errors and wrong bytes, and
//! `verify` clean at the end. Then the cold start of a 1,000-unit program's puts:
//! synchronous puts against the background writer.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use jitcache::store::{EntryMeta, GcOptions, Key, NoProgress, PutEntry, Store, StoreConfig};
use serde::{Deserialize, Serialize};

use crate::measure::{Rng, object_bytes};
use crate::report::{Ratio, Row, Target};
use crate::scale::scale_key;
use crate::worker::{self, WorkerSpec};

/// The report's group of these rows.
const GROUP: u8 = 6;
/// Size of every object, prefilled or compiled.
const OBJECT: usize = 2048;

/// What one latency worker does.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct LatencySpec {
    /// The cache root.
    pub dir: std::path::PathBuf,
    /// This worker's number.
    pub worker: u64,
    /// When to start, ms since the Unix epoch.
    pub start_ms: u64,
    /// How long to run.
    pub duration_ms: u64,
    /// Entries filled beforehand (`scale_key(0..entries)`, bytes `object_bytes(i, OBJECT)`).
    pub entries: u64,
    /// Every this-many-th operation is a compile (a put of a new object).
    pub compile_every: u64,
    /// Phase number (part of the put keys).
    pub phase: u64,
}

/// What one latency worker saw.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
pub struct LatencyReport {
    /// Latency of every get, µs.
    pub gets_us: Vec<u32>,
    /// Latency of every put, µs.
    pub puts_us: Vec<u32>,
    /// Gets that missed (a bounded lookup that ran out is a miss).
    pub misses: u64,
    /// Operations that returned an error (a dropped put included).
    pub errors: u64,
    /// Hits whose bytes were not the ones stored.
    pub wrong_bytes: u64,
    /// The first error, as text.
    pub first_error: Option<String>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

/// Child side: the mix of `spec`.
pub fn latency_worker(spec: &LatencySpec) -> Result<LatencyReport> {
    let store = Store::open(&spec.dir, StoreConfig::default())?;
    std::thread::sleep(Duration::from_millis(
        spec.start_ms.saturating_sub(now_ms()),
    ));
    let deadline = Instant::now() + Duration::from_millis(spec.duration_ms);
    let mut rng = Rng::new(spec.worker * 7919 + spec.phase);
    let mut report = LatencyReport::default();
    let mut out = Vec::new();
    let mut n = 0u64;
    while Instant::now() < deadline {
        n += 1;
        if n.is_multiple_of(spec.compile_every.max(1)) {
            let mut h = blake3::Hasher::new();
            h.update(b"jitcache bench maintenance put");
            for x in [spec.phase, spec.worker, n] {
                h.update(&x.to_le_bytes());
            }
            let key = Key::from_bytes(*h.finalize().as_bytes());
            let mut bytes = object_bytes(n ^ (spec.worker << 40), OBJECT);
            bytes[..32].copy_from_slice(key.as_bytes());
            let began = Instant::now();
            let result = store.put(&key, &bytes);
            report.puts_us.push(micros(began.elapsed()));
            if let Err(e) = result {
                report.errors += 1;
                report.first_error.get_or_insert(e.to_string());
            }
        } else {
            let i = rng.below(spec.entries as usize) as u64;
            let began = Instant::now();
            let result = store.get_into(&scale_key(i), &mut out);
            report.gets_us.push(micros(began.elapsed()));
            match result {
                Ok(true) if out != object_bytes(i, OBJECT) => report.wrong_bytes += 1,
                Ok(true) => {}
                Ok(false) => report.misses += 1,
                Err(e) => {
                    report.errors += 1;
                    report.first_error.get_or_insert(e.to_string());
                }
            }
        }
    }
    Ok(report)
}

/// Sizes of target 6.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// Entries filled beforehand.
    pub entries: u64,
    /// Worker processes.
    pub procs: u64,
    /// How long each phase runs.
    pub duration: Duration,
    /// Every this-many-th operation of a worker is a compile.
    pub compile_every: u64,
    /// Units of the cold start.
    pub units: usize,
}

/// One phase's merged reports, and how many gc and verify runs overlapped it.
struct Phase {
    report: LatencyReport,
    maintenance_runs: u64,
}

fn prefill(dir: &Path, entries: u64) -> Result<()> {
    let store = Store::open(dir, StoreConfig::default())?;
    for start in (0..entries).step_by(2000) {
        let end = (start + 2000).min(entries);
        let bytes: Vec<Vec<u8>> = (start..end).map(|i| object_bytes(i, OBJECT)).collect();
        let batch: Vec<PutEntry<'_>> = (start..end)
            .zip(&bytes)
            .map(|(i, b)| PutEntry::new(scale_key(i), b))
            .collect();
        store.put_many(&batch)?;
    }
    Ok(())
}

/// Runs the workers once, with gc and verify looping in this process when `maintain`.
fn phase(exe: &Path, dir: &Path, plan: &Plan, number: u64, maintain: bool) -> Result<Phase> {
    let stop = Arc::new(AtomicBool::new(false));
    let maintenance = maintain.then(|| {
        let (dir, stop) = (dir.to_path_buf(), Arc::clone(&stop));
        std::thread::spawn(move || -> Result<u64> {
            let store = Store::open(&dir, StoreConfig::default())?;
            let mut runs = 0;
            while !stop.load(Ordering::Relaxed) {
                store.gc(&GcOptions::default(), &NoProgress)?;
                store.verify(false, &NoProgress)?;
                runs += 1;
            }
            Ok(runs)
        })
    });
    let start_ms = now_ms() + 300 + 40 * plan.procs;
    let children = (0..plan.procs)
        .map(|w| {
            let spec = WorkerSpec::Latency(LatencySpec {
                dir: dir.to_path_buf(),
                worker: w,
                start_ms,
                duration_ms: plan.duration.as_millis() as u64,
                entries: plan.entries,
                compile_every: plan.compile_every,
                phase: number,
            });
            worker::spawn(exe, &spec)
        })
        .collect::<Result<Vec<_>>>()?;
    let mut report = LatencyReport::default();
    for child in children {
        let r: LatencyReport = serde_json::from_value(worker::finish(child)?)?;
        report.gets_us.extend(r.gets_us);
        report.puts_us.extend(r.puts_us);
        report.misses += r.misses;
        report.errors += r.errors;
        report.wrong_bytes += r.wrong_bytes;
        if report.first_error.is_none() {
            report.first_error = r.first_error;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let maintenance_runs = match maintenance {
        Some(thread) => thread
            .join()
            .map_err(|_| anyhow::anyhow!("the maintenance thread panicked"))??,
        None => 0,
    };
    Ok(Phase {
        report,
        maintenance_runs,
    })
}

/// (p50, p99, max) of `us`, in ms.
fn percentiles(us: &mut [u32]) -> (f64, f64, f64) {
    if us.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    us.sort_unstable();
    let at = |q: f64| f64::from(us[((us.len() - 1) as f64 * q) as usize]) / 1000.0;
    (at(0.5), at(0.99), at(1.0))
}

/// Wall time of the puts of `units` objects: synchronous, then through the background
/// writer (returned when the last was queued, and when all were written), in ms.
fn cold_start(dir: &Path, units: usize) -> Result<(f64, f64, f64)> {
    let objects: Vec<(Key, Vec<u8>)> = (0..units as u64)
        .map(|i| {
            let mut bytes = object_bytes(i + 1_000_000, 24 << 10);
            bytes[..8].copy_from_slice(&i.to_le_bytes());
            (scale_key((i + 1) << 40), bytes)
        })
        .collect();
    let sync_dir = dir.join("sync");
    let store = Store::open(&sync_dir, StoreConfig::default())?;
    let began = Instant::now();
    for (key, bytes) in &objects {
        store.put(key, bytes)?;
    }
    let sync = began.elapsed();
    drop(store);
    let store = Store::open(dir.join("background"), StoreConfig::default())?;
    let began = Instant::now();
    for (key, bytes) in &objects {
        store.put_background(key, bytes.clone(), EntryMeta::default(), None)?;
    }
    let queued = began.elapsed();
    let left = store.flush_writes(Duration::from_secs(60));
    let written = began.elapsed();
    anyhow::ensure!(
        left == 0,
        "{left} background writes still queued after 60 s"
    );
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    Ok((ms(sync), ms(queued), ms(written)))
}

fn measure(exe: &Path, dir: &Path, plan: &Plan) -> Result<Vec<Row>> {
    let cache = dir.join("cache");
    prefill(&cache, plan.entries)?;
    let mut alone = phase(exe, &cache, plan, 0, false)?;
    let mut busy = phase(exe, &cache, plan, 1, true)?;
    let store = Store::open(&cache, StoreConfig::default())?;
    let verify = store.verify(false, &NoProgress)?;
    let (get_a, get_b) = (
        percentiles(&mut alone.report.gets_us),
        percentiles(&mut busy.report.gets_us),
    );
    let (put_a, put_b) = (
        percentiles(&mut alone.report.puts_us),
        percentiles(&mut busy.report.puts_us),
    );
    let mix = format!(
        "{} processes, {} entries of {} bytes, 1 compile (put of a new object) in {}, {:.1} s per phase; with maintenance: {} gc + verify runs in a loop",
        plan.procs,
        plan.entries,
        OBJECT,
        plan.compile_every,
        plan.duration.as_secs_f64(),
        busy.maintenance_runs
    );
    let figures = |(p50, p99, max): (f64, f64, f64)| {
        format!("p50 {p50:.3} ms, p99 {p99:.3} ms, max {max:.1} ms")
    };
    let worst = get_b.2.max(put_b.2);
    let failures = busy.report.errors + alone.report.errors;
    let mut failure_notes = format!(
        "errors {} alone, {} with maintenance; misses (bounded lookups that ran out) {} and {}",
        alone.report.errors, busy.report.errors, alone.report.misses, busy.report.misses
    );
    if let Some(first) = busy.report.first_error.or(alone.report.first_error) {
        failure_notes.push_str(&format!("; first error: {first}"));
    }
    let wrong = alone.report.wrong_bytes + busy.report.wrong_bytes;
    let (sync, queued, written) = cold_start(&dir.join("cold"), plan.units)?;
    let ops = (alone.report.gets_us.len() + alone.report.puts_us.len()) as f64;
    Ok(vec![
        Row::new(
            GROUP,
            "get p99 with gc+verify vs alone",
            "ms",
            (get_b.1, get_a.1),
            "alone",
            Ratio::ValueOverBaseline,
            Target::AtMost(2.0),
        )
        .with_notes(format!(
            "{mix}; get alone: {}; with maintenance: {}",
            figures(get_a),
            figures(get_b)
        )),
        Row::new(
            GROUP,
            "put p99 with gc+verify vs alone",
            "ms",
            (put_b.1, put_a.1),
            "alone",
            Ratio::ValueOverBaseline,
            Target::AtMost(2.0),
        )
        .with_notes(format!(
            "put alone: {}; with maintenance: {}",
            figures(put_a),
            figures(put_b)
        )),
        Row::new(
            GROUP,
            "slowest operation with gc+verify",
            "ms",
            (worst, 50.0),
            "50 ms",
            Ratio::ValueOverBaseline,
            Target::AtMost(1.0),
        ),
        Row::new(
            GROUP,
            "errors, both phases",
            "errors",
            (failures as f64, ops),
            "operations",
            Ratio::ValueOverBaseline,
            Target::AtMost(0.0),
        )
        .with_notes(failure_notes),
        Row::new(
            GROUP,
            "wrong bytes, both phases",
            "errors",
            (wrong as f64, ops),
            "operations",
            Ratio::ValueOverBaseline,
            Target::AtMost(0.0),
        ),
        Row::new(
            GROUP,
            "damaged entries found by verify at the end",
            "errors",
            (verify.damaged_entries as f64, plan.entries as f64),
            "entries",
            Ratio::ValueOverBaseline,
            Target::AtMost(0.0),
        ),
        Row::new(
            GROUP,
            format!("cold start puts of {} units, background vs sync", plan.units),
            "ms",
            (queued, sync),
            "synchronous puts",
            Ratio::ValueOverBaseline,
            Target::AtMost(1.0),
        )
        .with_notes(format!(
            "{} objects of 24 KiB: synchronous puts {sync:.1} ms; background writer: all queued after {queued:.1} ms, all written after {written:.1} ms",
            plan.units
        )),
    ])
}

/// The rows of target 6.
pub fn rows(exe: &Path, dir: &Path, plan: &Plan) -> Vec<Row> {
    match measure(exe, dir, plan) {
        Ok(rows) => rows,
        Err(err) => vec![Row::skipped(
            GROUP,
            "maintenance vs the JIT",
            "ms",
            Ratio::ValueOverBaseline,
            Target::AtMost(2.0),
            format!("{err:#}"),
        )],
    }
}
