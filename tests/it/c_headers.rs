//! C and C++ programs keyed by every file the compiler read: a header in a subfolder, a
//! header on `-I`, a header that appears earlier in the search path; the same program at
//! two paths sharing one cache; C++ sources; compiler flags on the command line.

use std::path::Path;

use crate::util;

/// `prog/main.c` printing `VAL=<VAL>` from `prog/inc/val.h`.
fn val_program(root: &Path, val: u32) -> std::path::PathBuf {
    let prog = root.join("prog");
    util::write(
        &prog,
        "main.c",
        "#include <stdio.h>\n#include \"inc/val.h\"\nint main(void) { printf(\"VAL=%d\\n\", VAL); return 0; }\n",
    );
    util::write(&prog, "inc/val.h", &format!("#define VAL {val}\n"));
    prog
}

/// The `val_program` under `root` with `VAL` 1, run cold and then warm through the cache
/// `root/cache` (both print `VAL=1`); returns the cache and the program.
fn cached_val_program(root: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let cache = root.join("cache");
    let prog = val_program(root, 1);
    let cold = util::run(&cache, &prog, &[]);
    util::assert_output(&cold, "VAL=1\n", 0);
    let warm = util::run(&cache, &prog, &[]);
    util::assert_output(&warm, "VAL=1\n", 0);
    assert_eq!(warm.compiled(), 0, "{}", warm.stderr);
    (cache, prog)
}

#[test]
fn a_header_in_a_subfolder_is_in_the_key() {
    let dir = util::tempdir();
    let (cache, prog) = cached_val_program(dir.path());

    util::write(&prog, "inc/val.h", "#define VAL 2\n");
    let edited = util::run(&cache, &prog, &[]);
    util::assert_output(&edited, "VAL=2\n", 0);
    assert_eq!(
        edited.reason("main.c").as_deref(),
        Some("inc/val.h changed"),
        "{}",
        edited.stderr
    );
    // The old contents come back: the manifest still has that compile.
    util::write(&prog, "inc/val.h", "#define VAL 1\n");
    let back = util::run(&cache, &prog, &[]);
    util::assert_output(&back, "VAL=1\n", 0);
    assert_eq!(back.compiled(), 0, "{}", back.stderr);
    // Four runs of one unit: the cold and the edited one missed, the other two hit.
    let stats = util::stats(&cache);
    assert_eq!(stats["manifest_hits"], 2, "{stats}");
    assert_eq!(stats["manifest_misses"], 2, "{stats}");
}

#[test]
fn a_header_that_appears_earlier_in_the_search_path_is_noticed() {
    let dir = util::tempdir();
    let cache = dir.path().join("cache");
    let prog = dir.path().join("prog");
    util::write(
        &prog,
        "main.c",
        "#include <stdio.h>\n#include \"v.h\"\nint main(void) { printf(\"%d\\n\", V); return 0; }\n",
    );
    let first = dir.path().join("first");
    let second = dir.path().join("second");
    std::fs::create_dir_all(&first).unwrap_or_else(|e| panic!("{e}"));
    util::write(&second, "v.h", "#define V 2\n");
    let flags = [
        "-I",
        first.to_str().unwrap_or_default(),
        "-I",
        second.to_str().unwrap_or_default(),
    ];
    util::assert_output(&util::run(&cache, &prog, &flags), "2\n", 0);
    let warm = util::run(&cache, &prog, &flags);
    assert_eq!(warm.compiled(), 0, "{}", warm.stderr);
    util::write(&first, "v.h", "#define V 1\n");
    let shadowed = util::run(&cache, &prog, &flags);
    util::assert_output(&shadowed, "1\n", 0);
    assert_eq!(shadowed.compiled(), 1, "{}", shadowed.stderr);
}

#[test]
fn two_checkouts_at_different_paths_share_their_keys() {
    let dir = util::tempdir();
    let cache = dir.path().join("cache");
    let a = val_program(&dir.path().join("a"), 7);
    let b = val_program(&dir.path().join("elsewhere/b"), 7);
    util::assert_output(&util::run(&cache, &a, &[]), "VAL=7\n", 0);
    let other = util::run(&cache, &b, &[]);
    util::assert_output(&other, "VAL=7\n", 0);
    assert_eq!(other.compiled(), 0, "{}", other.stderr);
}

#[test]
fn flags_on_the_command_line_and_in_cflags_reach_the_compiler() {
    let dir = util::tempdir();
    let cache = dir.path().join("cache");
    let prog = dir.path().join("prog");
    util::write(
        &prog,
        "main.c",
        "#include <stdio.h>\n#include \"extra.h\"\nint main(void) { printf(\"%d %d\\n\", N, EXTRA); return 0; }\n",
    );
    util::write(&dir.path().join("include"), "extra.h", "#define EXTRA 5\n");
    let include = dir.path().join("include");
    let flags = [
        "-I",
        include.to_str().unwrap_or_default(),
        "-D",
        "N=3",
        "-O",
        "1",
    ];
    util::assert_output(&util::run(&cache, &prog, &flags), "3 5\n", 0);
    let other_define = [
        "-I",
        include.to_str().unwrap_or_default(),
        "-D",
        "N=4",
        "-O",
        "1",
    ];
    let run = util::run(&cache, &prog, &other_define);
    util::assert_output(&run, "4 5\n", 0);
    assert_eq!(run.compiled(), 1);

    let output = util::run_command(&cache, &prog, &["-I", include.to_str().unwrap_or_default()])
        .env("CFLAGS", "-O0 -DN=9")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    util::assert_output(&util::Run::from_output(output), "9 5\n", 0);
}

#[test]
fn a_program_mixing_c_and_cxx_links_as_one() {
    let dir = util::tempdir();
    let cache = dir.path().join("cache");
    let prog = dir.path().join("prog");
    util::write(
        &prog,
        "main.c",
        "#include <stdio.h>\nlong sum_squares(long n);\nlong twice(long x) { return 2 * x; }\n\
         int main(void) { printf(\"%ld\\n\", sum_squares(4)); return 0; }\n",
    );
    util::write(
        &prog,
        "squares.cpp",
        "#include <numeric>\n#include <vector>\nextern \"C\" long twice(long x);\n\
         extern \"C\" long sum_squares(long n) {\n  std::vector<long> v;\n  \
         for (long i = 1; i <= n; i++) v.push_back(i * i);\n  \
         return twice(std::accumulate(v.begin(), v.end(), 0L)) / 2;\n}\n",
    );
    let cold = util::run(&cache, &prog, &[]);
    util::assert_output(&cold, "30\n", 0);
    assert_eq!(cold.units(), 2);
    let warm = util::run(&cache, &prog, &[]);
    util::assert_output(&warm, "30\n", 0);
    assert_eq!(warm.compiled(), 0, "{}", warm.stderr);
}

/// A warm run that compiles nothing writes nothing to the index: its counts (hits,
/// manifest hits) go to the counters file beside it, its backends were seen a moment
/// ago, so the write-ahead log is byte for byte what it was.
#[test]
fn a_warm_run_leaves_the_index_as_it_was() {
    let dir = util::tempdir();
    let (cache, prog) = cached_val_program(dir.path());
    let index = cache.join("v1");
    let files = || {
        ["index.sqlite", "index.sqlite-wal"]
            .map(|f| std::fs::read(index.join(f)).unwrap_or_default())
    };
    let before = files();
    let again = util::run(&cache, &prog, &[]);
    util::assert_output(&again, "VAL=1\n", 0);
    assert_eq!(again.compiled(), 0, "{}", again.stderr);
    assert!(files() == before, "a warm run wrote to the index");
    // Its counts still add up.
    let stats = util::stats(&cache);
    assert_eq!(stats["manifest_hits"], 2, "{stats}");
    assert_eq!(
        stats["hits"].as_u64().map(|h| h >= 2),
        Some(true),
        "{stats}"
    );
}
