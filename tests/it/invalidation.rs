//! Invalidation, end to end: what a second run, an edit, another flag, another compiler or
//! a damaged blob makes `jitcache run` compile, and what `--explain` says about it.
//!
//! Each run is a new `jitcache` process on the test's own cache directory, except where a
//! setting is only reachable through the library (Cranelift and C flags, the compiler):
//! there a fresh [`JitCache`] per run plays the new process.

use std::collections::BTreeSet;
use std::path::Path;

use jitcache::backends::cc::{CcBackend, CcConfig};
use jitcache::backends::{CraneliftConfig, OptLevel, SourceUnit};
use jitcache::store::KeyField;
use jitcache::{Config, JitCache, KeyParts, MissReason, Origin};
use jitcache_frontends::lisp::runtime::capture_output;
use jitcache_frontends::run::{RunOptions, RunReport};

use crate::util::{self, Run, assert_output};

/// Seven definitions: a call graph with a leaf called from several places (`sq`), one with
/// a single caller (`add3`), a loop, and one nobody else calls (`unrelated`).
const PROGRAM: &str = "\
;; a small program
(defn sq [x] (* x x))
(defn cube [x] (* x (sq x)))
(defn add3 [a b c] (+ a b c))
(defn poly [x] (add3 (cube x) (sq x) 1))
(defn fact [n] (loop [i n acc 1] (if (<= i 1) acc (recur (- i 1) (* acc i)))))
(defn unrelated [] 7)
(defn main []
  (println (sq 7) (cube 3))
  (println (poly 2) (fact 10))
  (println (unrelated))
  (mod (poly 3) 256))
";

const OUTPUT: &str = "49 27\n13 3628800\n7\n";
const EXIT: i32 = 37;
const UNITS: u64 = 7;

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// Writes `PROGRAM` with `edits` (`from` → `to`, each must match) applied.
fn write_program(dir: &Path, edits: &[(&str, &str)]) -> std::path::PathBuf {
    let mut text = PROGRAM.to_owned();
    for (from, to) in edits {
        assert!(text.contains(from), "edit {from:?} does not apply");
        text = text.replacen(from, to, 1);
    }
    util::write(dir, "prog.clj", &text)
}

/// A cold run of `PROGRAM` that checks it compiled everything as new.
fn cold_run(cache: &Path, program: &Path) -> Run {
    let first = util::run(cache, program, &[]);
    assert_output(&first, OUTPUT, EXIT);
    assert_eq!(first.units(), UNITS);
    assert_eq!(first.compiled(), UNITS, "{}", first.stderr);
    assert_eq!(first.disk_hits(), 0);
    for (unit, reason) in first.explain() {
        assert_eq!(reason, "new unit", "unit {unit}");
    }
    first
}

#[test]
fn second_run_compiles_nothing_and_prints_the_same() {
    let dir = util::tempdir();
    let cache = dir.path().join("cache");
    let program = write_program(dir.path(), &[]);
    let first = cold_run(&cache, &program);
    assert_eq!(
        first.compiled_units(),
        names(&["sq", "cube", "add3", "poly", "fact", "unrelated", "main"])
    );

    let second = util::run(&cache, &program, &[]);
    assert_output(&second, &first.stdout, EXIT);
    assert_eq!(second.compiled(), 0, "{}", second.stderr);
    assert_eq!(second.disk_hits(), UNITS);
    assert!(second.explain().is_empty());
    assert_eq!(util::entries(&cache).len() as u64, UNITS);
}

#[test]
fn body_edit_recompiles_exactly_that_unit() {
    let dir = util::tempdir();
    let cache = dir.path().join("cache");
    let program = write_program(dir.path(), &[]);
    cold_run(&cache, &program);

    // A leaf with three callers: its callers call it through its symbol, so they stay.
    let program = write_program(
        dir.path(),
        &[("(defn sq [x] (* x x))", "(defn sq [x] (+ 0 (* x x)))")],
    );
    let run = util::run(&cache, &program, &[]);
    assert_output(&run, OUTPUT, EXIT);
    assert_eq!(run.compiled_units(), names(&["sq"]), "{}", run.stderr);
    assert_eq!(run.reason("sq").as_deref(), Some("source changed"));
    assert_eq!(run.disk_hits(), UNITS - 1);

    // A literal in a loop: the output changes, and only `fact` is compiled.
    let program = write_program(
        dir.path(),
        &[
            ("(defn sq [x] (* x x))", "(defn sq [x] (+ 0 (* x x)))"),
            ("acc 1]", "acc 2]"),
        ],
    );
    let run = util::run(&cache, &program, &[]);
    assert_output(&run, "49 27\n13 7257600\n7\n", EXIT);
    assert_eq!(run.compiled_units(), names(&["fact"]), "{}", run.stderr);
    assert_eq!(run.reason("fact").as_deref(), Some("source changed"));

    // Back to the original text: every version is still cached.
    let program = write_program(dir.path(), &[]);
    let run = util::run(&cache, &program, &[]);
    assert_output(&run, OUTPUT, EXIT);
    assert_eq!(run.compiled(), 0, "{}", run.stderr);
}

#[test]
fn arity_change_recompiles_the_callee_and_its_callers_only() {
    let dir = util::tempdir();
    let cache = dir.path().join("cache");
    let program = write_program(dir.path(), &[]);
    cold_run(&cache, &program);

    // `add3` gains a parameter; its one caller `poly` passes it. `main` calls `poly`, whose
    // arity did not change, so `main` stays.
    let program = write_program(
        dir.path(),
        &[
            (
                "(defn add3 [a b c] (+ a b c))",
                "(defn add3 [a b c d] (+ a b c d))",
            ),
            ("(add3 (cube x) (sq x) 1)", "(add3 (cube x) (sq x) 1 0)"),
        ],
    );
    let run = util::run(&cache, &program, &[]);
    assert_output(&run, OUTPUT, EXIT);
    assert_eq!(
        run.compiled_units(),
        names(&["add3", "poly"]),
        "{}",
        run.stderr
    );
    assert_eq!(run.reason("add3").as_deref(), Some("source changed"));
    let poly = run.reason("poly").unwrap_or_default();
    assert!(poly.contains("a dependency's interface"), "poly: {poly}");
    assert_eq!(run.disk_hits(), UNITS - 2);

    // `sq` loses its parameter: its three callers follow (`cube`, `poly`, `main`).
    let program = write_program(
        dir.path(),
        &[
            (
                "(defn add3 [a b c] (+ a b c))",
                "(defn add3 [a b c d] (+ a b c d))",
            ),
            ("(add3 (cube x) (sq x) 1)", "(add3 (cube x) (sq) 1 0)"),
            ("(defn sq [x] (* x x))", "(defn sq [] 4)"),
            ("(* x (sq x))", "(* x (sq))"),
            ("(println (sq 7)", "(println (sq)"),
        ],
    );
    let run = util::run(&cache, &program, &[]);
    // sq = 4; cube 3 = 12; poly 2 = add3(8, 4, 1, 0) = 13; poly 3 = 12 + 4 + 1 = 17.
    assert_output(&run, "4 12\n13 3628800\n7\n", 17);
    assert_eq!(
        run.compiled_units(),
        names(&["sq", "cube", "poly", "main"]),
        "{}",
        run.stderr
    );
    for unit in ["cube", "poly", "main"] {
        let why = run.reason(unit).unwrap_or_default();
        assert!(why.contains("a dependency's interface"), "{unit}: {why}");
    }
}

#[test]
fn reformatting_and_comments_recompile_nothing() {
    let dir = util::tempdir();
    let cache = dir.path().join("cache");
    let program = write_program(dir.path(), &[]);
    cold_run(&cache, &program);

    let reformatted = "\
; the same program, laid out differently
(defn sq [x]
  ; squares
  (* x
     x))


(defn cube [x] (*  x  (sq  x)))   ; cubes
(defn add3
  [a, b, c]
  (+ a b c))
(defn poly [x] (add3 (cube x) (sq x) +1))
(defn fact [n]
  (loop [i n
         acc 001]
    (if (<= i 1)
      acc
      (recur (- i 1) (* acc i)))))
(defn unrelated [] 0007) ;; still seven
(defn main [] (println (sq 7) (cube 3)) (println (poly 2) (fact 10)) (println (unrelated)) (mod (poly 3) 256))";
    let program = util::write(dir.path(), "prog.clj", reformatted);
    let run = util::run(&cache, &program, &[]);
    assert_output(&run, OUTPUT, EXIT);
    assert_eq!(run.compiled(), 0, "{}", run.stderr);
    assert_eq!(run.disk_hits(), UNITS);
}

/// Runs `path` through the library on a fresh `JitCache` on `cache` (a new process, as far
/// as the cache can tell), capturing Lisp output.
fn run_in_process(cache: &Path, path: &Path, options: &RunOptions) -> (RunReport, String) {
    let jit = JitCache::open(cache, Config::default());
    let (report, out) = capture_output(|| jitcache_frontends::run::run(&jit, path, options));
    let report = report.unwrap_or_else(|e| panic!("run {}: {e}", path.display()));
    assert!(jit.stats().bypassed.is_none(), "{:?}", jit.stats().bypassed);
    (report, String::from_utf8_lossy(&out).into_owned())
}

fn reasons(report: &RunReport) -> Vec<MissReason> {
    report.compiled.iter().map(|(_, why)| why.clone()).collect()
}

#[test]
fn another_cranelift_opt_level_or_flag_misses() {
    let dir = util::tempdir();
    let cache = dir.path().join("cache");
    let program = write_program(dir.path(), &[]);
    let units = UNITS as usize;
    let with = |opt_level, flags: &[&str]| RunOptions {
        cranelift: CraneliftConfig {
            opt_level,
            flags: flags.iter().map(|f| (*f).to_owned()).collect(),
            ..CraneliftConfig::default()
        },
        ..RunOptions::default()
    };
    let flags_changed = vec![MissReason::Changed(vec![KeyField::Flags]); units];

    let (cold, out) = run_in_process(&cache, &program, &with(OptLevel::Speed, &[]));
    assert_eq!((out.as_str(), cold.exit), (OUTPUT, EXIT));
    assert_eq!(reasons(&cold), vec![MissReason::NewUnit; units]);

    for (opt_level, flags) in [
        (OptLevel::None, &[][..]),
        (OptLevel::SpeedAndSize, &[][..]),
        (OptLevel::Speed, &["preserve_frame_pointers"][..]),
    ] {
        let options = with(opt_level, flags);
        let (report, out) = run_in_process(&cache, &program, &options);
        assert_eq!(
            (out.as_str(), report.exit),
            (OUTPUT, EXIT),
            "{opt_level:?} {flags:?}"
        );
        assert_eq!(reasons(&report), flags_changed, "{opt_level:?} {flags:?}");
        assert_eq!(report.disk_hits, 0);
        // The same setting again: everything from disk.
        let (again, out) = run_in_process(&cache, &program, &options);
        assert_eq!((out.as_str(), again.exit), (OUTPUT, EXIT));
        assert!(
            again.compiled.is_empty(),
            "{opt_level:?} {flags:?}: {:?}",
            again.compiled
        );
        assert_eq!(again.disk_hits, UNITS);
    }
    // The first setting's objects are still there.
    let (back, _) = run_in_process(&cache, &program, &with(OptLevel::Speed, &[]));
    assert!(back.compiled.is_empty(), "{:?}", back.compiled);
}

/// Two C files returning a value computed across them; no output, so they can run in the
/// test process.
fn write_c_dir(dir: &Path) -> std::path::PathBuf {
    let src = dir.join("csrc");
    std::fs::create_dir_all(&src).unwrap_or_else(|e| panic!("{e}"));
    util::write(&src, "lib.h", "long twice(long x);\n");
    util::write(
        &src,
        "lib.c",
        "#include \"lib.h\"\nlong twice(long x) { return 2 * x; }\n",
    );
    util::write(
        &src,
        "main.c",
        "#include \"lib.h\"\nint main(int argc, char **argv) { (void)argv; return (int)twice(20 + argc); }\n",
    );
    src
}

#[test]
fn another_c_flag_misses() {
    let dir = util::tempdir();
    let cache = dir.path().join("cache");
    let src = write_c_dir(dir.path());
    let options = |flags: Option<&[&str]>| RunOptions {
        cflags: flags.map(|f| f.iter().map(|s| (*s).to_owned()).collect()),
        ..RunOptions::default()
    };
    let expect = vec![MissReason::NewUnit; 2];
    let (cold, _) = run_in_process(&cache, &src, &options(None));
    assert_eq!(cold.exit, 42);
    assert_eq!(reasons(&cold), expect);

    for flags in [
        &["-O0", "-fPIC"][..],
        &["-O2", "-fPIC", "-DUNUSED=1"][..],
        &["-fPIC", "-O2"][..],
    ] {
        let (report, _) = run_in_process(&cache, &src, &options(Some(flags)));
        assert_eq!(report.exit, 42, "{flags:?}");
        assert_eq!(
            reasons(&report),
            vec![MissReason::Changed(vec![KeyField::Flags]); 2],
            "{flags:?}"
        );
        let (again, _) = run_in_process(&cache, &src, &options(Some(flags)));
        assert!(again.compiled.is_empty(), "{flags:?}: {:?}", again.compiled);
        assert_eq!(again.disk_hits, 2);
    }
    let (back, _) = run_in_process(&cache, &src, &options(None));
    assert!(back.compiled.is_empty(), "{:?}", back.compiled);
}

#[test]
fn a_compiler_with_another_identity_misses() {
    let dir = util::tempdir();
    let cache = dir.path().join("cache");
    // A wrapper that runs the system compiler but reports the version in version.txt.
    let wrapper = util::write(
        dir.path(),
        "wrapcc",
        "#!/bin/sh\nif [ \"$1\" = \"--version\" ]; then cat \"$(dirname \"$0\")/version.txt\"; exit 0; fi\nexec cc \"$@\"\n",
    );
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    util::write(dir.path(), "version.txt", "wrapcc 1.0\n");
    let source = b"long answer(void) { return 42; }\n";
    let parts = KeyParts {
        namespace: "c",
        name: "answer.c",
        unit: source,
        deps: &[],
    };
    let load = |compiler: &Path| {
        let config = CcConfig {
            compiler: compiler.to_path_buf(),
            ..CcConfig::c().with_flags(["-O2", "-fPIC"])
        };
        let backend = CcBackend::new(config).unwrap_or_else(|e| panic!("backend: {e}"));
        let jit = JitCache::open(&cache, Config::default());
        let unit = jit
            .get_or_compile(&parts, &backend, || {
                Ok(SourceUnit::new("answer.c", source.to_vec()))
            })
            .unwrap_or_else(|e| panic!("compile: {e}"));
        let answer = unit.require("answer").unwrap_or_else(|e| panic!("{e}"));
        let value = answer.call_i64(&[]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(value, 42);
        (unit.origin().clone(), backend.version_output().to_owned())
    };
    let backend_changed = Origin::Compiled(MissReason::Changed(vec![KeyField::Backend]));

    let (origin, version) = load(&wrapper);
    assert_eq!(origin, Origin::Compiled(MissReason::NewUnit));
    assert_eq!(version, "wrapcc 1.0");
    assert_eq!(load(&wrapper).0, Origin::Disk);

    // Same path, same bytes, another `--version`.
    util::write(dir.path(), "version.txt", "wrapcc 2.0\n");
    let (origin, version) = load(&wrapper);
    assert_eq!(version, "wrapcc 2.0");
    assert_eq!(origin, backend_changed);
    assert_eq!(load(&wrapper).0, Origin::Disk);

    // The real compiler is yet another identity.
    assert_eq!(load(Path::new("cc")).0, backend_changed);
    assert_eq!(load(Path::new("cc")).0, Origin::Disk);
    util::write(dir.path(), "version.txt", "wrapcc 1.0\n");
    assert_eq!(load(&wrapper).0, Origin::Disk);
}

#[test]
fn a_corrupted_blob_is_recompiled_and_the_output_stays_right() {
    let dir = util::tempdir();
    let cache = dir.path().join("cache");
    let program = write_program(dir.path(), &[]);
    cold_run(&cache, &program);
    assert_eq!(util::stats(&cache)["corrupt"].as_u64(), Some(0));

    util::damage_blob_of(&cache, "lisp/cube", util::flip_middle_byte);
    let run = util::run(&cache, &program, &[]);
    assert_output(&run, OUTPUT, EXIT);
    assert_eq!(run.compiled_units(), names(&["cube"]), "{}", run.stderr);
    assert_eq!(run.reason("cube").as_deref(), Some("corrupt blob"));
    assert_eq!(run.disk_hits(), UNITS - 1);
    assert_eq!(util::stats(&cache)["corrupt"].as_u64(), Some(1));

    // The recompiled object was stored again, sound.
    let run = util::run(&cache, &program, &[]);
    assert_output(&run, OUTPUT, EXIT);
    assert_eq!(run.compiled(), 0, "{}", run.stderr);
    let verify = util::admin(&cache, &["verify"]);
    assert!(verify.contains("\"clean\":true"), "{verify}");

    // Damage at the very start (the header) and at the end are caught too.
    for (unit, at_end) in [("lisp/main", false), ("lisp/fact", true)] {
        util::damage_blob_of(&cache, unit, |bytes| {
            let at = if at_end { bytes.len() - 1 } else { 0 };
            bytes[at] ^= 0x01;
        });
    }
    let run = util::run(&cache, &program, &[]);
    assert_output(&run, OUTPUT, EXIT);
    assert_eq!(
        run.compiled_units(),
        names(&["main", "fact"]),
        "{}",
        run.stderr
    );
    assert_eq!(run.reason("main").as_deref(), Some("corrupt blob"));
    assert_eq!(run.reason("fact").as_deref(), Some("corrupt blob"));
}

#[test]
fn explain_names_new_changed_dependency_and_evicted() {
    let dir = util::tempdir();
    let cache = dir.path().join("cache");
    let program = write_program(dir.path(), &[]);
    let cold = cold_run(&cache, &program);
    assert!(
        cold.stderr.contains("jitcache: compiled sq: new unit"),
        "{}",
        cold.stderr
    );

    let program = write_program(
        dir.path(),
        &[
            ("(defn unrelated [] 7)", "(defn unrelated [] 8)"),
            (
                "(defn add3 [a b c] (+ a b c))",
                "(defn add3 [a b] (+ a b 1))",
            ),
            ("(add3 (cube x) (sq x) 1)", "(add3 (cube x) (sq x))"),
        ],
    );
    let run = util::run(&cache, &program, &[]);
    assert_output(&run, "49 27\n13 3628800\n8\n", EXIT);
    let explain: BTreeSet<(String, String)> = run.explain().into_iter().collect();
    let expected: BTreeSet<(String, String)> = [
        ("unrelated", "source changed"),
        ("add3", "source changed"),
        ("poly", "source and a dependency's interface changed"),
    ]
    .into_iter()
    .map(|(u, r)| (u.to_owned(), r.to_owned()))
    .collect();
    assert_eq!(explain, expected, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("jitcache: compiled poly: source and a dependency's interface changed")
    );

    // gc down to nothing: every unit is evicted, and says so.
    let gc: serde_json::Value =
        serde_json::from_str(util::admin(&cache, &["gc", "--max-size", "1"]).trim())
            .unwrap_or_default();
    assert!(gc["evicted_entries"].as_u64().unwrap_or(0) >= UNITS, "{gc}");
    assert!(util::entries(&cache).is_empty());
    let run = util::run(&cache, &program, &[]);
    assert_output(&run, "49 27\n13 3628800\n8\n", EXIT);
    assert_eq!(run.compiled(), UNITS, "{}", run.stderr);
    for (unit, reason) in run.explain() {
        assert_eq!(reason, "evicted", "unit {unit}");
    }
    let run = util::run(&cache, &program, &[]);
    assert_eq!(run.compiled(), 0, "{}", run.stderr);
}

#[test]
fn clif_file_runs_and_its_second_run_is_a_disk_hit() {
    let dir = util::tempdir();
    let cache = dir.path().join("cache");
    let clif = util::write(
        dir.path(),
        "answer.clif",
        "function %helper(i32) -> i32 {
block0(v0: i32):
    v1 = iconst.i32 6
    v2 = imul v0, v1
    return v2
}

function %main(i32, i64) -> i32 {
    fn0 = %helper(i32) -> i32
block0(v0: i32, v1: i64):
    v2 = iconst.i32 7
    v3 = call fn0(v2)
    v4 = iadd v3, v0
    return v4
}
",
    );
    // argc is 1: 7 * 6 + 1.
    let first = util::run(&cache, &clif, &[]);
    assert_output(&first, "", 43);
    assert_eq!(
        (first.units(), first.compiled(), first.disk_hits()),
        (1, 1, 0)
    );
    assert_eq!(first.reason("answer.clif").as_deref(), Some("new unit"));
    let second = util::run(&cache, &clif, &["--", "x", "y"]);
    assert_output(&second, "", 45);
    assert_eq!(
        (second.units(), second.compiled(), second.disk_hits()),
        (1, 0, 1)
    );
}

#[test]
fn c_directory_runs_and_its_second_run_is_all_disk_hits() {
    let dir = util::tempdir();
    let cache = dir.path().join("cache");
    let src = dir.path().join("prog");
    std::fs::create_dir_all(&src).unwrap_or_else(|e| panic!("{e}"));
    util::write(
        &src,
        "shapes.h",
        "int area(int w, int h);\nint perimeter(int w, int h);\n",
    );
    util::write(
        &src,
        "area.c",
        "#include \"shapes.h\"\nint area(int w, int h) { return w * h; }\n",
    );
    util::write(
        &src,
        "perimeter.c",
        "#include \"shapes.h\"\nint perimeter(int w, int h) { return 2 * (w + h); }\n",
    );
    let main = "#include <stdio.h>\n#include \"shapes.h\"\nint main(void) {\n  printf(\"%d %d\\n\", area(3, 4), perimeter(3, 4));\n  return area(2, 5);\n}\n";
    util::write(&src, "main.c", main);

    let first = util::run(&cache, &src, &[]);
    assert_output(&first, "12 14\n", 10);
    assert_eq!(
        (first.units(), first.compiled(), first.disk_hits()),
        (3, 3, 0)
    );
    let second = util::run(&cache, &src, &[]);
    assert_output(&second, "12 14\n", 10);
    assert_eq!(
        (second.compiled(), second.disk_hits()),
        (0, 3),
        "{}",
        second.stderr
    );

    // One file edited: that unit alone.
    util::write(
        &src,
        "perimeter.c",
        "#include \"shapes.h\"\nint perimeter(int w, int h) { return w + w + h + h + 1; }\n",
    );
    let third = util::run(&cache, &src, &[]);
    assert_output(&third, "12 15\n", 10);
    assert_eq!(
        third.compiled_units(),
        names(&["perimeter.c"]),
        "{}",
        third.stderr
    );
    assert_eq!(
        third.reason("perimeter.c").as_deref(),
        Some("source changed")
    );

    // A header edited: any unit may include it, so every unit.
    util::write(
        &src,
        "shapes.h",
        "/* shapes */\nint area(int w, int h);\nint perimeter(int w, int h);\n",
    );
    let fourth = util::run(&cache, &src, &[]);
    assert_output(&fourth, "12 15\n", 10);
    assert_eq!(fourth.compiled(), 3, "{}", fourth.stderr);
}

/// A JIT that keeps one `JitCache` and reloads its program after an edit (a REPL
/// redefining a function) must run the new code. Only `g`'s body changes, so the keys of
/// `f` and `main` stay the same and they are memory hits; but the loaded copies of `f` and
/// `main` had their calls to `g` resolved to the old `g` when they were linked.
#[test]
fn same_process_reload_after_a_body_edit_runs_the_new_code() {
    let dir = util::tempdir();
    let cache = dir.path().join("cache");
    let jit = JitCache::open(&cache, Config::default());
    let run = |source: &str| {
        let path = util::write(dir.path(), "repl.clj", source);
        let (report, out) =
            capture_output(|| jitcache_frontends::run::run(&jit, &path, &RunOptions::default()));
        let report = report.unwrap_or_else(|e| panic!("run: {e}"));
        (report, String::from_utf8_lossy(&out).into_owned())
    };
    let program =
        |g: i64| format!("(defn g [] {g})\n(defn f [] (g))\n(defn main [] (println (f) (g)) 0)\n");

    let (first, out) = run(&program(1));
    assert_eq!(out, "1 1\n");
    assert_eq!(first.compiled.len(), 3);

    let (second, out) = run(&program(2));
    let compiled: Vec<&str> = second
        .compiled
        .iter()
        .map(|(name, _)| name.as_str())
        .collect();
    assert_eq!(compiled, ["g"]);
    assert_eq!(
        out, "2 2\n",
        "the edited `g` must be the one called, from `main` and from `f`"
    );

    // A new process (a fresh JitCache on the same directory) gets it right.
    let fresh = JitCache::open(&cache, Config::default());
    let path = dir.path().join("repl.clj");
    let (report, out) =
        capture_output(|| jitcache_frontends::run::run(&fresh, &path, &RunOptions::default()));
    assert!(report.is_ok_and(|r| r.compiled.is_empty()));
    assert_eq!(String::from_utf8_lossy(&out), "2 2\n");
}
