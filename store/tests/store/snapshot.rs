//! Single lookups reuse a read snapshot for a few milliseconds: it never answers a miss,
//! never makes a hit wrong, and never stays open while the store is idle.

use std::time::{Duration, Instant};

use jitcache_store::FORMAT_DIR;

use crate::common::{key, noise, open};

#[test]
fn a_snapshot_never_answers_a_miss() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = (open(dir.path()), open(dir.path()));
    a.put(&key(1), b"one").expect("put");
    for round in 2..50u64 {
        // `a` has a snapshot open from its last hit; `b` (another connection, as another
        // process would be) puts a key that snapshot cannot have.
        assert!(a.get(&key(1)).expect("get").is_some());
        b.put(&key(round), &noise(round, 64)).expect("put");
        assert_eq!(
            a.get(&key(round)).expect("get"),
            Some(noise(round, 64)),
            "a key put after the snapshot began is found at once"
        );
    }
}

#[test]
fn a_hit_through_an_old_snapshot_is_never_wrong_bytes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = (open(dir.path()), open(dir.path()));
    let (old, new) = (noise(1, 3000), noise(2, 3000));
    for _ in 0..20 {
        a.put(&key(1), &old).expect("put");
        assert_eq!(a.get(&key(1)).expect("get"), Some(old.clone()));
        // Removed (its blob deleted) and replaced behind `a`'s snapshot.
        assert!(b.remove(&key(1)).expect("remove"));
        let got = a.get(&key(1)).expect("get");
        assert!(
            got.is_none() || got.as_ref() == Some(&old),
            "removed: a miss or the old bytes"
        );
        b.put(&key(1), &new).expect("put");
        let got = a.get(&key(1)).expect("get");
        assert!(
            got.as_ref() == Some(&old) || got.as_ref() == Some(&new),
            "replaced: the old or the new bytes"
        );
        b.clear().expect("clear");
        let got = a.get(&key(1)).expect("get");
        assert!(
            got.is_none() || got.as_ref() == Some(&old) || got.as_ref() == Some(&new),
            "cleared: a miss, or bytes once stored under the key"
        );
    }
}

#[test]
fn an_idle_snapshot_is_ended() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    store.put(&key(1), b"one").expect("put");
    // Hits in a burst (a lookup on its own opens no snapshot).
    for _ in 0..20 {
        assert!(store.get(&key(1)).expect("get").is_some());
    }
    // Another connection writes and asks for a full checkpoint, which cannot finish
    // while any read transaction is open. The store stays idle: only its reaper can end
    // the snapshot of the hits above.
    let index = dir
        .path()
        .join("cache")
        .join(FORMAT_DIR)
        .join("index.sqlite");
    let conn = rusqlite::Connection::open(&index).expect("open index");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        conn.execute(
            "INSERT INTO counters (name, value) VALUES ('test.idle', 1)
             ON CONFLICT (name) DO UPDATE SET value = value + 1",
            [],
        )
        .expect("write");
        let (busy, log): (i64, i64) = conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .expect("checkpoint");
        if busy == 0 && log == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a read snapshot was still open 10 s after the last lookup"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // And the store still works.
    assert!(store.get(&key(1)).expect("get").is_some());
}
