//! The write-ahead log is checkpointed by a thread of the store, not inside a put's
//! commit: with the store still open (so no close-time checkpoint), the pages of a log
//! past the mark reach the database file.

use std::time::{Duration, Instant};

use jitcache_store::{Store, StoreConfig};

use crate::common::{key, noise};

#[test]
fn a_long_log_is_checkpointed_while_the_store_stays_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("cache");
    let store = Store::open(&root, StoreConfig::default()).expect("open");
    let db = root.join("v1/index.sqlite");
    let db_len = || std::fs::metadata(&db).map_or(0, |m| m.len());
    let before = db_len();
    // 8 MiB of objects kept in the index: the log passes the 4 MiB mark.
    for k in 0..640 {
        store.put(&key(k), &noise(k, 13_000)).expect("put");
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while db_len() < before + (4 << 20) {
        assert!(
            Instant::now() < deadline,
            "no checkpoint: the database file stayed at {} bytes",
            db_len()
        );
        // A put after the checkpoint thread finished starts the next one.
        store.put(&key(10_000), b"tick").expect("put");
        std::thread::sleep(Duration::from_millis(20));
    }
    for k in [0, 320, 639] {
        assert_eq!(store.get(&key(k)).expect("get"), Some(noise(k, 13_000)));
    }
}
