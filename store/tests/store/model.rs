//! Model-based test: random sequences of put, background put (and waiting for the
//! writer), get, remove, gc, reopen, verify and blob damage against an in-memory model, with gc and verify also run one step at a
//! time, interleaved with everything else (a reopen abandons the runs in progress, as a
//! process that exits mid-gc does). The store may miss where the model allows it (after
//! damage or a size-capped gc), but never returns bytes the model does not hold for that
//! key, and never misses an entry nothing could have taken away.

use std::collections::HashMap;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use jitcache_store::{EntryMeta, GcOptions, GcRun, NoProgress, Store, StoreConfig, VerifyRun};
use proptest::prelude::*;

use crate::common::{blob_file, fast_config, key, noise};

/// How to damage a blob file.
#[derive(Clone, Copy, Debug)]
enum Damage {
    FlipByte(u16),
    Truncate(u16),
    Delete,
    Empty,
}

#[derive(Clone, Debug)]
enum Op {
    Put(u8, u8),
    Get(u8),
    GetMany(Vec<u8>),
    Remove(u8),
    Gc(Option<u32>),
    Reopen,
    Damage(u8, Damage),
    Verify(bool),
    Flush,
    /// A put handed to the background writer.
    PutBackground(u8, u8),
    /// Waiting for the background writer.
    FlushWrites,
    /// One step of a gc run (started, with this cap, when none is in progress).
    GcStep(Option<u32>),
    /// One step of a verify run (started, repairing or not, when none is in progress).
    VerifyStep(bool),
}

/// Content `i` of a small pool, so that keys share blobs. Sizes from empty to 64 KiB,
/// some compressible.
fn content(i: u8) -> Vec<u8> {
    match i % 6 {
        0 => Vec::new(),
        1 => b"x".to_vec(),
        2 => noise(u64::from(i), 100),
        3 => vec![i; 40_000],
        4 => noise(u64::from(i), 65_536),
        _ => {
            let mut v = noise(u64::from(i), 3_000);
            v.extend(std::iter::repeat_n(7u8, 3_000));
            v
        }
    }
}

fn op() -> impl Strategy<Value = Op> {
    let k = 0u8..8;
    prop_oneof![
        6 => (k.clone(), 0u8..9).prop_map(|(k, c)| Op::Put(k, c)),
        6 => k.clone().prop_map(Op::Get),
        2 => prop::collection::vec(k.clone(), 0..12).prop_map(Op::GetMany),
        1 => k.clone().prop_map(Op::Remove),
        1 => prop::option::of(0u32..150_000).prop_map(Op::Gc),
        1 => Just(Op::Reopen),
        2 => (k.clone(), prop_oneof![
            any::<u16>().prop_map(Damage::FlipByte),
            any::<u16>().prop_map(Damage::Truncate),
            Just(Damage::Delete),
            Just(Damage::Empty),
        ]).prop_map(|(k, d)| Op::Damage(k, d)),
        1 => any::<bool>().prop_map(Op::Verify),
        1 => Just(Op::Flush),
        4 => (k, 0u8..9).prop_map(|(k, c)| Op::PutBackground(k, c)),
        1 => Just(Op::FlushWrites),
        4 => prop::option::of(0u32..150_000).prop_map(Op::GcStep),
        4 => any::<bool>().prop_map(Op::VerifyStep),
    ]
}

/// What the model knows about a key: its content, and whether the store must still
/// hold it.
#[derive(Clone, Copy, Debug)]
struct Expect {
    content: u8,
    must_hit: bool,
}

fn damage_file(path: &Path, how: Damage) {
    let Ok(len) = std::fs::metadata(path).map(|m| m.len()) else {
        return;
    };
    match how {
        Damage::FlipByte(at) => {
            if len == 0 {
                return;
            }
            let at = u64::from(at) % len;
            let mut f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(path)
                .expect("open blob");
            let mut byte = [0u8];
            f.seek(SeekFrom::Start(at)).expect("seek");
            std::io::Read::read_exact(&mut f, &mut byte).expect("read");
            f.seek(SeekFrom::Start(at)).expect("seek");
            f.write_all(&[byte[0] ^ 0x5a]).expect("write");
        }
        Damage::Truncate(to) => {
            let to = u64::from(to) % len.max(1);
            std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .and_then(|f| f.set_len(to))
                .expect("truncate");
        }
        Damage::Delete => std::fs::remove_file(path).expect("delete"),
        Damage::Empty => std::fs::write(path, b"").expect("empty"),
    }
}

/// A verify run in progress, and whether a blob was damaged since it began (then a
/// repair may have missed it).
struct Verifying<'a> {
    run: VerifyRun<'a>,
    damaged_since: bool,
}

fn run(ops: &[Op]) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("cache");
    // Blob files, which the model damages (damage to blobs kept in the index is
    // `damage::every_inline_damage_is_a_counted_miss`).
    let config = StoreConfig {
        inline_max: 0,
        // The background writer competes with gc steps run here: a generous bound
        // keeps a loaded machine from dropping puts the model counts on.
        write_timeout: std::time::Duration::from_secs(5),
        ..fast_config()
    };
    let open = || Store::open(&root, config.clone()).expect("open");
    let mut model: HashMap<u8, Expect> = HashMap::new();
    let mut buf = Vec::new();
    // Each segment between reopens is one process's life.
    for segment in ops.split(|op| matches!(op, Op::Reopen)) {
        let store = open();
        let mut gc: Option<GcRun<'_>> = None;
        let mut verifying: Option<Verifying<'_>> = None;
        for op in segment {
            if std::env::var_os("MODEL_TRACE").is_some() {
                eprintln!("op {op:?}");
            }
            run_op(&store, op, &mut model, &mut buf, &mut gc, &mut verifying)?;
        }
        // The process ends with its runs unfinished, or finished: either way the next
        // one finds a sound store.
        drop((gc, verifying));
    }
    let store = open();
    // Whatever happened, a repair leaves a clean store that still holds every entry
    // nothing could have taken away.
    store.verify(true, &NoProgress).expect("repair");
    prop_assert!(store.verify(false, &NoProgress).expect("verify").is_clean());
    for (k, e) in &model {
        let got = store.get(&key((*k).into())).expect("get");
        match got {
            Some(bytes) => prop_assert!(bytes == content(e.content)),
            None => prop_assert!(!e.must_hit, "key {} lost", k),
        }
    }
    Ok(())
}

/// The model's answer to a read of `k` that returned `got`.
fn check_read(model: &HashMap<u8, Expect>, k: u8, got: Option<&[u8]>) -> Result<(), TestCaseError> {
    match (got, model.get(&k)) {
        (Some(bytes), Some(e)) => {
            prop_assert!(
                bytes == content(e.content),
                "wrong bytes for key {}: {} bytes, expected content {} ({} bytes)",
                k,
                bytes.len(),
                e.content,
                content(e.content).len()
            )
        }
        (Some(_), None) => prop_assert!(false, "hit on key {} the model does not hold", k),
        // A miss does not forget the content: a put of the same bytes under another
        // key rewrites a damaged blob they share, so a later read (even a later one in
        // the same `get_many`, reading the blob after the rewrite) may find it again.
        (None, Some(e)) => prop_assert!(!e.must_hit, "miss on key {} that must be there", k),
        (None, None) => {}
    }
    Ok(())
}

fn run_op<'a>(
    store: &'a Store,
    op: &Op,
    model: &mut HashMap<u8, Expect>,
    buf: &mut Vec<u8>,
    gc: &mut Option<GcRun<'a>>,
    verifying: &mut Option<Verifying<'a>>,
) -> Result<(), TestCaseError> {
    // A size-capped gc in progress may evict anything, including what is put meanwhile.
    let capped_gc = model_capped(gc);
    match *op {
        Op::Put(k, c) => {
            store.put(&key(k.into()), &content(c)).expect("put");
            model.insert(
                k,
                Expect {
                    content: c,
                    must_hit: !capped_gc,
                },
            );
        }
        Op::Get(k) => {
            let hit = store.get_into(&key(k.into()), buf).expect("get");
            check_read(model, k, hit.then_some(buf.as_slice()))?;
        }
        Op::GetMany(ref ks) => {
            let keys: Vec<_> = ks.iter().map(|k| key((*k).into())).collect();
            let found = store.get_many(&keys).expect("get_many");
            prop_assert_eq!(found.len(), ks.len());
            for (k, got) in ks.iter().zip(found) {
                check_read(model, *k, got.as_deref())?;
            }
        }
        Op::Remove(k) => {
            let removed = store.remove(&key(k.into())).expect("remove");
            let expected = model.remove(&k);
            if expected.is_some_and(|e| e.must_hit) {
                prop_assert!(removed);
            }
            if expected.is_none() {
                prop_assert!(!removed);
            }
        }
        Op::Gc(cap) => {
            let opts = GcOptions {
                max_size: cap.map(u64::from),
                ..GcOptions::default()
            };
            store.gc(&opts, &NoProgress).expect("gc");
            if cap.is_some() {
                for e in model.values_mut() {
                    e.must_hit = false;
                }
            }
        }
        Op::Reopen => unreachable!("segments are split at reopens"),
        Op::Damage(k, how) => {
            if let Some(e) = model.get(&k).copied() {
                damage_file(&blob_file(store, &content(e.content)), how);
                for other in model.values_mut() {
                    if content(other.content) == content(e.content) {
                        other.must_hit = false;
                    }
                }
                if let Some(v) = verifying.as_mut() {
                    v.damaged_since = true;
                }
            }
        }
        Op::Verify(repair) => {
            if repair {
                // A background write landing during the repair may replace an entry
                // and orphan its old blob after the repair looked: let the writer
                // finish first, so that the check after the repair holds.
                prop_assert_eq!(
                    store.flush_writes(std::time::Duration::from_secs(30)),
                    0,
                    "the writer is done"
                );
            }
            let report = store.verify(repair, &NoProgress).expect("verify");
            prop_assert!(report.index_problems.is_empty());
            if repair {
                // A background put mid-write has a blob not yet indexed, which verify
                // reports as an orphan (and leaves alone): let the writer finish first.
                prop_assert_eq!(
                    store.flush_writes(std::time::Duration::from_secs(30)),
                    0,
                    "the writer is done"
                );
                let again = store.verify(false, &NoProgress).expect("verify");
                prop_assert!(again.is_clean(), "{:?}", again);
                // A background put dropped after writing its blob (the cache stayed
                // busy past the write timeout) leaves it as an orphan for gc.
                let dropped = store.stats().expect("stats").writes_dropped;
                if dropped == 0 {
                    prop_assert_eq!(again.orphaned_blobs, 0, "orphans after a repair");
                }
            }
        }
        Op::Flush => store.flush().expect("flush"),
        Op::PutBackground(k, c) => {
            store
                .put_background(&key(k.into()), content(c), EntryMeta::default(), None)
                .expect("put_background");
            // A capped gc in progress, or started before the writer gets to it, may
            // evict it; the latter clears must_hit when it starts.
            model.insert(
                k,
                Expect {
                    content: c,
                    must_hit: !capped_gc,
                },
            );
        }
        Op::FlushWrites => {
            prop_assert_eq!(
                store.flush_writes(std::time::Duration::from_secs(30)),
                0,
                "the writer is done"
            );
        }
        Op::GcStep(cap) => {
            let run = match gc.take() {
                Some(run) => run,
                None => {
                    let opts = GcOptions {
                        max_size: cap.map(u64::from),
                        ..GcOptions::default()
                    };
                    if cap.is_some() {
                        for e in model.values_mut() {
                            e.must_hit = false;
                        }
                    }
                    store.gc_steps(&opts, &NoProgress).expect("gc run")
                }
            };
            let mut run = run;
            if !run.step().expect("gc step") {
                *gc = Some(run);
            }
        }
        Op::VerifyStep(repair) => {
            let mut v = match verifying.take() {
                Some(v) => v,
                None => Verifying {
                    run: store.verify_steps(repair, &NoProgress).expect("verify run"),
                    damaged_since: false,
                },
            };
            if v.run.step().expect("verify step") {
                let report = v.run.into_report();
                prop_assert!(report.index_problems.is_empty(), "{:?}", report);
                if report.repaired && !v.damaged_since {
                    // Nothing was damaged while it ran, and gc removes nothing sound:
                    // the repair left a clean store.
                    prop_assert_eq!(
                        store.flush_writes(std::time::Duration::from_secs(30)),
                        0,
                        "the writer is done"
                    );
                    let again = store.verify(false, &NoProgress).expect("verify");
                    prop_assert!(again.is_clean(), "{:?}", again);
                }
            } else {
                *verifying = Some(v);
            }
        }
    }
    Ok(())
}

/// Whether the gc run in progress has a size cap.
fn model_capped(gc: &Option<GcRun<'_>>) -> bool {
    gc.as_ref().is_some_and(GcRun::is_capped)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn store_agrees_with_model(ops in prop::collection::vec(op(), 1..60)) {
        run(&ops)?;
    }
}
