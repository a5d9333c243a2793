//! Packs: a large batch's objects are also stored as one entry, read in one go on the next
//! start. A pack must never serve stale or damaged code: it falls back to the units.

use std::path::Path;

use crate::util;

/// A program of `n` definitions (enough for a pack); `bump` changes one body.
fn program(n: usize, bump: i64) -> String {
    let mut src = String::new();
    for i in 0..n {
        let k = if i == 7 { 100 + bump } else { i as i64 };
        src.push_str(&format!("(defn f{i} [x] (+ x {k}))\n"));
    }
    src.push_str("(defn main [] (println");
    for i in (0..n).step_by(7) {
        src.push_str(&format!(" (f{i} 1)"));
    }
    src.push_str(") 0)\n");
    src
}

fn packs(cache: &Path) -> usize {
    util::entries_named(cache, "pack")
}

#[test]
fn a_large_batch_is_packed_and_a_damaged_or_stale_pack_is_never_used() {
    let dir = util::tempdir();
    let cache = dir.path().join("cache");
    let path = util::write(dir.path(), "big.clj", &program(80, 0));
    let expected = util::run_uncached(&cache, &path).stdout;

    let cold = util::run(&cache, &path, &[]);
    assert_eq!(cold.compiled(), 81);
    assert_eq!(packs(&cache), 1, "the first full load writes the pack");
    let warm = util::run(&cache, &path, &[]);
    assert_eq!((warm.compiled(), warm.disk_hits()), (0, 81));
    assert_eq!(warm.stdout, expected);

    // A damaged pack is a miss: the units are read one by one, the output is right, and
    // the pack is written again.
    util::damage_blob_of(&cache, "pack", util::flip_middle_byte);
    let healed = util::run(&cache, &path, &[]);
    assert_eq!((healed.compiled(), healed.disk_hits()), (0, 81));
    assert_eq!(healed.stdout, expected);
    assert!(util::stats(&cache)["corrupt"].as_u64() >= Some(1));
    assert_eq!(packs(&cache), 1);

    // An edited unit changes the pack's key: the old pack cannot answer for the program.
    let edited = util::write(dir.path(), "big.clj", &program(80, 5));
    let expected = util::run_uncached(&cache, &edited).stdout;
    let after = util::run(&cache, &edited, &[]);
    assert_eq!(
        after.compiled_units().into_iter().collect::<Vec<_>>(),
        ["f7"]
    );
    assert_eq!(after.stdout, expected);
    assert_eq!(packs(&cache), 2, "a pack for the new version");
    let again = util::run(&cache, &edited, &[]);
    assert_eq!((again.compiled(), again.disk_hits()), (0, 81));
    assert_eq!(again.stdout, expected);
}

#[test]
fn small_batches_are_not_packed() {
    let dir = util::tempdir();
    let cache = dir.path().join("cache");
    let path = util::write(dir.path(), "small.clj", &program(10, 0));
    assert_eq!(util::run(&cache, &path, &[]).compiled(), 11);
    assert_eq!(util::run(&cache, &path, &[]).compiled(), 0);
    assert_eq!(packs(&cache), 0);
}
