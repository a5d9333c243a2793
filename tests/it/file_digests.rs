//! File digests remembered by metadata: a warm C start examines its sources instead of
//! reading them, and a source whose contents changed is always noticed, even when its
//! size and modification time were put back.

use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::util;

/// Longer than the age metadata must have to stand in for contents (2 s).
const TRUST_AGE: Duration = Duration::from_millis(2100);

fn digest_records(cache: &Path) -> usize {
    util::entries_named(cache, "jitcache.file-digests/files")
}

fn mtime(path: &Path) -> SystemTime {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .expect("mtime")
}

#[test]
fn a_source_rewritten_with_its_old_size_and_mtime_is_still_compiled_again() {
    let dir = util::tempdir();
    let cache = dir.path().join("cache");
    let prog = dir.path().join("prog");
    let main = util::write(&prog, "main.c", "int main(void) { return 1; }\n");
    let cold = util::run(&cache, &prog, &[]);
    assert_eq!((cold.compiled(), cold.exit()), (1, 1), "{}", cold.stderr);
    // Written just now: its metadata cannot stand in for its contents yet.
    assert_eq!(digest_records(&cache), 0);

    std::thread::sleep(TRUST_AGE);
    let warm = util::run(&cache, &prog, &[]);
    assert_eq!((warm.compiled(), warm.exit()), (0, 1), "{}", warm.stderr);
    assert_eq!(digest_records(&cache), 1, "old enough: recorded");
    // The next start reads the record, the manifest and the object: three hits.
    let before = util::store_hits(&cache);
    let again = util::run(&cache, &prog, &[]);
    assert_eq!((again.compiled(), again.exit()), (0, 1), "{}", again.stderr);
    assert_eq!(util::store_hits(&cache) - before, 3);

    // Same size, and the old modification time put back: the change time still moved.
    let old = mtime(&main);
    std::fs::write(&main, "int main(void) { return 2; }\n").expect("rewrite");
    std::fs::File::options()
        .write(true)
        .open(&main)
        .and_then(|f| f.set_modified(old))
        .expect("set mtime");
    assert_eq!(mtime(&main), old);
    let edited = util::run(&cache, &prog, &[]);
    assert_eq!(
        (edited.compiled(), edited.exit()),
        (1, 2),
        "{}",
        edited.stderr
    );
    assert_eq!(edited.reason("main.c").as_deref(), Some("source changed"));
}
