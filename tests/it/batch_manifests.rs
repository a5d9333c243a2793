//! Batch manifests: a large C program's object keys and the union of the headers its
//! units read, as one entry that a warm start reads instead of a manifest per unit. It
//! must never name an object whose headers changed: a stale or damaged one falls back
//! to the units' own manifests.

use std::path::{Path, PathBuf};

use crate::util;

/// Units of the program: enough for a batch manifest (64 units and more).
const UNITS: usize = 70;

/// A program of `UNITS` sources that include `shared.h`, of which `u5.c` alone also
/// includes `own.h`; `main.c` prints the sum of every unit's value.
fn program(root: &Path) -> PathBuf {
    let prog = root.join("prog");
    util::write(&prog, "shared.h", "#define K 3\n");
    util::write(&prog, "own.h", "#define OWN 100\n");
    let mut main = String::from("#include <stdio.h>\n");
    let mut sum = String::new();
    for i in 0..UNITS {
        let own = if i == 5 { "#include \"own.h\"\n" } else { "" };
        let extra = if i == 5 { " + OWN" } else { "" };
        util::write(
            &prog,
            &format!("u{i}.c"),
            &format!("#include \"shared.h\"\n{own}int f{i}(void) {{ return {i} * K{extra}; }}\n"),
        );
        main.push_str(&format!("int f{i}(void);\n"));
        sum.push_str(&format!(" + f{i}()"));
    }
    main.push_str(&format!(
        "int main(void) {{ printf(\"%d\\n\", 0{sum}); return 0; }}\n"
    ));
    util::write(&prog, "main.c", &main);
    prog
}

/// What the program prints with `K` = `k` and `OWN` = `own`.
fn expected(k: i64, own: i64) -> String {
    let sum: i64 = (0..UNITS as i64).map(|i| i * k).sum::<i64>() + own;
    format!("{sum}\n")
}

fn batch_manifests(cache: &Path) -> usize {
    util::entries_named(cache, "jitcache.batch-manifest/batch")
}

/// A run of `prog`, and the store hits it counted besides the record of its sources'
/// digests (which exists, and is read, once the sources are older than 2 s).
fn run_counting_hits(cache: &Path, prog: &Path) -> (util::Run, u64) {
    let digests = util::entries_named(cache, "jitcache.file-digests/files") as u64;
    let before = util::store_hits(cache);
    let run = util::run(cache, prog, &[]);
    (run, util::store_hits(cache) - before - digests)
}

#[test]
fn a_warm_start_reads_one_batch_manifest_that_never_names_stale_objects() {
    let dir = util::tempdir();
    let cache = dir.path().join("cache");
    let prog = program(dir.path());
    let units = UNITS as u64 + 1;

    let cold = util::run(&cache, &prog, &[]);
    util::assert_output(&cold, &expected(3, 100), 0);
    assert_eq!(cold.compiled(), units);
    assert_eq!(batch_manifests(&cache), 1, "written once the batch linked");

    // A warm start reads the batch manifest and the pack: two store hits, not a manifest
    // per unit.
    let (warm, hits) = run_counting_hits(&cache, &prog);
    util::assert_output(&warm, &expected(3, 100), 0);
    assert_eq!((warm.compiled(), warm.disk_hits()), (0, units));
    assert_eq!(hits, 2, "{}", warm.stderr);
    assert_eq!(
        util::stats(&cache)["manifest_hits"].as_u64(),
        Some(units),
        "every unit counts as a manifest hit"
    );

    // A header only one unit reads changes: the batch manifest no longer holds, the
    // units' own manifests say which unit to compile, and the batch manifest is written
    // again (under the same key: no source changed).
    util::write(&prog, "own.h", "#define OWN 200\n");
    let edited = util::run(&cache, &prog, &[]);
    util::assert_output(&edited, &expected(3, 200), 0);
    assert_eq!(
        edited.compiled_units().into_iter().collect::<Vec<_>>(),
        ["u5.c"]
    );
    assert_eq!(edited.reason("u5.c").as_deref(), Some("own.h changed"));
    assert_eq!(batch_manifests(&cache), 1);
    let (warm, hits) = run_counting_hits(&cache, &prog);
    util::assert_output(&warm, &expected(3, 200), 0);
    assert_eq!(warm.compiled(), 0, "{}", warm.stderr);
    assert_eq!(hits, 2, "the new batch manifest holds");

    // The shared header changes: every unit that reads it is compiled.
    util::write(&prog, "shared.h", "#define K 4\n");
    let shared = util::run(&cache, &prog, &[]);
    util::assert_output(&shared, &expected(4, 200), 0);
    assert_eq!(shared.compiled(), UNITS as u64, "every unit but main.c");

    // Back to the first headers: no batch manifest holds for them any more, but every
    // unit's own manifest still has that compile.
    util::write(&prog, "shared.h", "#define K 3\n");
    util::write(&prog, "own.h", "#define OWN 100\n");
    let back = util::run(&cache, &prog, &[]);
    util::assert_output(&back, &expected(3, 100), 0);
    assert_eq!(back.compiled(), 0, "{}", back.stderr);
}

#[test]
fn a_damaged_batch_manifest_is_a_miss_and_is_written_again() {
    let dir = util::tempdir();
    let cache = dir.path().join("cache");
    let prog = program(dir.path());
    util::assert_output(&util::run(&cache, &prog, &[]), &expected(3, 100), 0);

    util::damage_blob_of(
        &cache,
        "jitcache.batch-manifest/batch",
        util::flip_middle_byte,
    );
    let damaged = util::run(&cache, &prog, &[]);
    util::assert_output(&damaged, &expected(3, 100), 0);
    assert_eq!(damaged.compiled(), 0, "the units' manifests answer");
    assert!(util::stats(&cache)["corrupt"].as_u64() >= Some(1));
    assert_eq!(batch_manifests(&cache), 1, "written again");

    let (warm, hits) = run_counting_hits(&cache, &prog);
    util::assert_output(&warm, &expected(3, 100), 0);
    assert_eq!(hits, 2, "{}", warm.stderr);
}

#[test]
fn a_small_program_keeps_no_batch_manifest() {
    let dir = util::tempdir();
    let cache = dir.path().join("cache");
    let prog = dir.path().join("small");
    util::write(&prog, "v.h", "#define V 7\n");
    util::write(
        &prog,
        "main.c",
        "#include <stdio.h>\n#include \"v.h\"\nint main(void) { printf(\"%d\\n\", V); return 0; }\n",
    );
    util::assert_output(&util::run(&cache, &prog, &[]), "7\n", 0);
    util::assert_output(&util::run(&cache, &prog, &[]), "7\n", 0);
    assert_eq!(batch_manifests(&cache), 0);
}
