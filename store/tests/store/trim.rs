//! Automatic size management: a maximum size (configured, or the cache's own setting)
//! trims the cache in the background of a process that puts, at most once per interval
//! across every process sharing it.

use std::time::Duration;

use jitcache_store::{Clock, ManualClock, Store, StoreConfig};

use crate::common::{key, noise};

const HOUR_MS: i64 = 3_600_000;

fn config(clock: &ManualClock, max_size: Option<u64>) -> StoreConfig {
    StoreConfig {
        max_size,
        trim_interval: Duration::from_secs(3600),
        clock: Clock::Manual(clock.clone()),
        inline_max: 0,
        ..StoreConfig::default()
    }
}

/// Fills the cache at `root` with 20 entries of 10 KB, one second apart (oldest first).
fn fill(root: &std::path::Path, clock: &ManualClock) {
    let store = Store::open(root, config(clock, None)).expect("open");
    for k in 0..20 {
        store.put(&key(k), &noise(k, 10_000)).expect("put");
        clock.advance(1000);
    }
}

#[test]
fn a_put_over_the_maximum_trims_in_the_background_once_per_interval() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("cache");
    let clock = ManualClock::new(1_000 * HOUR_MS);
    fill(&root, &clock);
    let cap = 100_000;

    // A process with a maximum puts: it trims, in the background, to the maximum.
    let store = Store::open(&root, config(&clock, Some(cap))).expect("open");
    assert_eq!(store.max_size().expect("max"), Some(cap));
    store.put(&key(100), &noise(100, 10_000)).expect("put");
    store.wait_for_trim();
    let stats = store.stats().expect("stats");
    assert!(stats.bytes_on_disk <= cap, "{stats:?}");
    assert!(stats.evictions > 0, "{stats:?}");
    assert!(
        store.get(&key(100)).expect("get").is_some(),
        "the newest entry stays"
    );
    assert!(
        store.get(&key(0)).expect("get").is_none(),
        "the oldest entry goes"
    );
    drop(store);

    // Another process, within the interval: the trim is not due, nothing is evicted.
    fill(&root, &clock);
    let evictions = Store::open(&root, config(&clock, None))
        .expect("open")
        .stats()
        .expect("stats")
        .evictions;
    let other = Store::open(&root, config(&clock, Some(cap))).expect("open");
    other.put(&key(101), b"x").expect("put");
    other.wait_for_trim();
    let stats = other.stats().expect("stats");
    assert!(
        stats.bytes_on_disk > cap,
        "no second trim within the interval"
    );
    assert_eq!(stats.evictions, evictions);
    drop(other);

    // Once the interval has passed, the next process that puts trims again.
    clock.advance(HOUR_MS);
    let later = Store::open(&root, config(&clock, Some(cap))).expect("open");
    later.put(&key(102), b"y").expect("put");
    later.wait_for_trim();
    assert!(later.stats().expect("stats").bytes_on_disk <= cap);
    assert!(
        later
            .verify(false, &jitcache_store::NoProgress)
            .expect("verify")
            .is_clean()
    );
}

#[test]
fn the_cache_setting_is_shared_and_the_configuration_overrides_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("cache");
    let clock = ManualClock::new(1_000 * HOUR_MS);
    let a = Store::open(&root, config(&clock, None)).expect("open");
    assert_eq!(a.max_size_setting().expect("setting"), None);
    a.set_max_size_setting(Some(50_000)).expect("set");
    let b = Store::open(&root, config(&clock, None)).expect("open");
    assert_eq!(b.max_size_setting().expect("setting"), Some(50_000));
    if std::env::var_os(jitcache_store::MAX_SIZE_ENV).is_none() {
        assert_eq!(b.max_size().expect("max"), Some(50_000));
    }
    let c = Store::open(&root, config(&clock, Some(7))).expect("open");
    assert_eq!(
        c.max_size().expect("max"),
        Some(7),
        "the configuration wins"
    );
    b.set_max_size_setting(None).expect("unset");
    assert_eq!(a.max_size_setting().expect("setting"), None);

    // The setting alone triggers the trim, too.
    drop((a, b, c));
    fill(&root, &clock);
    let store = Store::open(&root, config(&clock, None)).expect("open");
    store.set_max_size_setting(Some(60_000)).expect("set");
    if std::env::var_os(jitcache_store::MAX_SIZE_ENV).is_none() {
        store.put(&key(100), b"z").expect("put");
        store.wait_for_trim();
        assert!(store.stats().expect("stats").bytes_on_disk <= 60_000);
    }
}
