//! The cache administration commands of the `jitcache` binary: output, JSON, exit statuses,
//! the cache directory's resolution and one-line errors.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

use crate::util;

fn jc(cache: &Path, args: &[&str]) -> Output {
    util::command(cache, args)
        .env_remove("JITCACHE_REMOTE")
        .output()
        .expect("jitcache starts")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(out)))
}

/// An error is one line on stderr, exit status 2, no panic or backtrace.
fn assert_one_line_error(out: &Output, mentions: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    assert_eq!(err.lines().count(), 1, "one line expected: {err}");
    assert!(err.starts_with("jitcache: "), "{err}");
    assert!(
        err.contains(mentions),
        "{err:?} should mention {mentions:?}"
    );
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
}

/// Every blob file under the cache's `v1/blobs/`, sorted.
fn blob_files(cache: &Path) -> Vec<std::path::PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&cache.join("v1/blobs"), &mut out);
    out.sort();
    out
}

/// `jitcache ARGS...` with neither a cache directory nor a remote in the environment.
fn bare(args: &[&str]) -> Command {
    let mut cmd = Command::new(util::bin());
    cmd.env_remove("JITCACHE_DIR")
        .env_remove("JITCACHE_REMOTE")
        .args(args);
    cmd
}

fn key_of(source: &Path, extra: &[&str]) -> String {
    let src = source.to_str().expect("utf-8 path");
    let mut args = vec![
        "key",
        "--namespace",
        "ns",
        "--name",
        "unit",
        "--source",
        src,
    ];
    args.extend_from_slice(extra);
    let out = bare(&args).output().expect("jitcache starts");
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out).trim().to_owned()
}

#[test]
fn key_prints_64_hex_digits_that_change_with_every_part() {
    let dir = util::tempdir();
    let source = util::write(dir.path(), "unit.c", "int f(void) { return 1; }");
    let base = key_of(&source, &[]);
    assert_eq!(base.len(), 64);
    assert!(
        base.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    assert_eq!(base, key_of(&source, &[]), "same inputs, same key");
    let variants = [
        vec!["--backend", "cc"],
        vec!["--backend-version", "12"],
        vec!["--flag", "-O2"],
        vec!["--target", "x86_64-unknown-linux-gnu"],
        vec!["--dep", "00ff"],
    ];
    let mut seen = vec![base.clone()];
    for v in &variants {
        let k = key_of(&source, v);
        assert!(!seen.contains(&k), "{v:?} must change the key");
        seen.push(k);
    }
    // Flag order matters unless the flags are declared unordered.
    let ab = key_of(&source, &["--flag", "-a", "--flag", "-b"]);
    let ba = key_of(&source, &["--flag", "-b", "--flag", "-a"]);
    assert_ne!(ab, ba);
    let ab_set = key_of(
        &source,
        &["--flag", "-a", "--flag", "-b", "--unordered-flags"],
    );
    let ba_set = key_of(
        &source,
        &["--flag", "-b", "--flag", "-a", "--unordered-flags"],
    );
    assert_eq!(ab_set, ba_set);
    // Standard input works as a source.
    let mut child = bare(&[
        "key",
        "--namespace",
        "ns",
        "--name",
        "unit",
        "--source",
        "-",
    ])
    .stdin(std::process::Stdio::piped())
    .stdout(std::process::Stdio::piped())
    .spawn()
    .expect("spawn");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"int f(void) { return 1; }")
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    assert_eq!(stdout(&out).trim(), base);
}

#[test]
fn put_get_round_trip_and_exit_statuses() {
    let dir = util::tempdir();
    let cache = dir.path().join("cache");
    let bytes: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let file = dir.path().join("object.o");
    fs::write(&file, &bytes).expect("write");
    let key = "ab".repeat(32);

    let out = jc(
        &cache,
        &["put", &key, file.to_str().expect("utf-8"), "--name", "obj"],
    );
    assert!(out.status.success(), "{}", stderr(&out));

    let out = jc(&cache, &["get", &key]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(out.stdout, bytes, "get writes exactly the stored bytes");

    let copy = dir.path().join("copy.o");
    let out = jc(&cache, &["get", &key, "-o", copy.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(fs::read(&copy).expect("read"), bytes);

    let out = jc(&cache, &["get", &"cd".repeat(32)]);
    assert_eq!(out.status.code(), Some(1), "a miss exits 1");
    assert!(out.stdout.is_empty());

    assert_one_line_error(&jc(&cache, &["get", "xyz"]), "xyz");
    assert_one_line_error(
        &jc(
            &cache,
            &[
                "put",
                &key,
                dir.path().join("absent").to_str().expect("utf-8"),
            ],
        ),
        "absent",
    );

    let out = jc(&cache, &["ls"]);
    let listing = stdout(&out);
    assert_eq!(listing.lines().count(), 1);
    assert!(
        listing.contains(&key) && listing.contains("obj"),
        "{listing}"
    );
    let out = jc(&cache, &["--json", "ls"]);
    let row: Value = serde_json::from_str(stdout(&out).trim()).expect("one JSON object a line");
    assert_eq!(row["key"], key.as_str());
    assert_eq!(row["size"], bytes.len() as u64);
}

#[test]
fn stats_json_has_the_documented_fields_and_counts() {
    let dir = util::tempdir();
    let cache = dir.path().join("cache");
    let file = util::write(dir.path(), "a.o", "same bytes");
    for key in ["11".repeat(32), "22".repeat(32)] {
        assert!(
            jc(&cache, &["put", &key, file.to_str().expect("utf-8")])
                .status
                .success()
        );
    }
    assert_eq!(
        jc(&cache, &["get", &"11".repeat(32)]).status.code(),
        Some(0)
    );
    assert_eq!(
        jc(&cache, &["get", &"33".repeat(32)]).status.code(),
        Some(1)
    );
    let stats = json(&jc(&cache, &["--json", "stats"]));
    for field in [
        "entries",
        "blobs",
        "bytes_uncompressed",
        "bytes_on_disk",
        "hits",
        "misses",
        "evictions",
        "corrupt",
    ] {
        assert!(stats[field].is_u64(), "{field} missing in {stats}");
    }
    assert_eq!(stats["entries"], 2);
    assert_eq!(stats["blobs"], 1, "identical objects share one blob");
    assert_eq!(stats["hits"], 1, "counters persist across processes");
    assert_eq!(stats["misses"], 1);
    let human = stdout(&jc(&cache, &["stats"]));
    assert!(human.contains("entries") && human.contains("2"), "{human}");
}

#[test]
fn gc_verify_and_clear() {
    let dir = util::tempdir();
    let cache = dir.path().join("cache");
    let mut keys = Vec::new();
    for i in 0..6u8 {
        let bytes: Vec<u8> = (0..20_000u32)
            .map(|j| (j as u8) ^ i.wrapping_mul(37))
            .collect();
        let file = dir.path().join(format!("{i}.o"));
        fs::write(&file, &bytes).expect("write");
        let key = format!("{i:02x}").repeat(32);
        assert!(
            jc(&cache, &["put", &key, file.to_str().expect("utf-8")])
                .status
                .success()
        );
        keys.push(key);
    }
    let out = jc(&cache, &["verify"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(
        stderr(&out).is_empty(),
        "no progress bar when piped: {}",
        stderr(&out)
    );

    // Damage one blob: verify exits 1; --repair evicts it; then it is clean.
    let blobs = blob_files(&cache);
    assert_eq!(blobs.len(), 6);
    let mut bytes = fs::read(&blobs[0]).expect("read blob");
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    fs::write(&blobs[0], &bytes).expect("write blob");
    let report = json(&jc(&cache, &["--json", "verify"]));
    assert_eq!(report["clean"], false, "{report}");
    assert_eq!(jc(&cache, &["verify"]).status.code(), Some(1));
    assert_eq!(jc(&cache, &["verify", "--repair"]).status.code(), Some(1));
    assert_eq!(jc(&cache, &["verify"]).status.code(), Some(0));
    let stats = json(&jc(&cache, &["--json", "stats"]));
    assert_eq!(stats["entries"], 5);
    assert!(stats["corrupt"].as_u64().unwrap_or(0) >= 1, "{stats}");

    // gc down to a size cap keeps the most recently used entries.
    assert_eq!(jc(&cache, &["get", &keys[5]]).status.code(), Some(0));
    let out = jc(&cache, &["--json", "gc", "--max-size", "1K"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report = json(&out);
    assert!(
        report["evicted_entries"].as_u64().unwrap_or(0) >= 1,
        "{report}"
    );
    assert!(
        report["bytes_on_disk"].as_u64().unwrap_or(u64::MAX) <= 1024,
        "{report}"
    );
    assert_eq!(
        jc(&cache, &["get", &keys[5]]).status.code(),
        Some(0),
        "the most recently used entry survives"
    );
    assert_one_line_error(&jc(&cache, &["gc", "--max-size", "lots"]), "lots");

    // A plain gc checks one slice of the blob tree for orphans; --full checks them all.
    let stray = blob_files(&cache)[0].with_file_name("stray");
    fs::write(&stray, b"not a blob").expect("write stray");
    let report = json(&jc(&cache, &["--json", "gc"]));
    assert_eq!(report["full_orphan_walk"], false, "{report}");
    let report = json(&jc(&cache, &["--json", "gc", "--full"]));
    assert_eq!(report["full_orphan_walk"], true, "{report}");
    assert!(
        !stray.exists(),
        "gc --full removed the stray file: {report}"
    );

    let out = jc(&cache, &["clear"]);
    assert!(out.status.success());
    let stats = json(&jc(&cache, &["--json", "stats"]));
    assert_eq!(stats["entries"], 0);
    assert_eq!(stats["blobs"], 0);
    assert!(blob_files(&cache).is_empty());
}

#[test]
fn cache_dir_comes_from_flag_env_xdg_then_home() {
    let dir = util::tempdir();
    let file = util::write(dir.path(), "x.o", "bytes");
    let key = "5a".repeat(32);
    let put = |cmd: &mut Command| {
        let out = cmd
            .args(["put", &key, file.to_str().expect("utf-8")])
            .output()
            .expect("run");
        assert!(out.status.success(), "{}", stderr(&out));
    };
    let clean = || {
        let mut cmd = Command::new(util::bin());
        cmd.env_remove("JITCACHE_DIR")
            .env_remove("XDG_CACHE_HOME")
            .env_remove("HOME");
        cmd
    };
    let mut cmd = clean();
    cmd.env("HOME", dir.path().join("home"));
    put(&mut cmd);
    assert!(
        dir.path()
            .join("home/.cache/jitcache/v1/index.sqlite")
            .exists()
    );

    let mut cmd = clean();
    cmd.env("HOME", dir.path().join("home"))
        .env("XDG_CACHE_HOME", dir.path().join("xdg"));
    put(&mut cmd);
    assert!(dir.path().join("xdg/jitcache/v1/index.sqlite").exists());

    let mut cmd = clean();
    cmd.env("XDG_CACHE_HOME", dir.path().join("xdg"))
        .env("JITCACHE_DIR", dir.path().join("env"));
    put(&mut cmd);
    assert!(dir.path().join("env/v1/index.sqlite").exists());

    let mut cmd = clean();
    cmd.env("JITCACHE_DIR", dir.path().join("env"))
        .arg("--cache-dir")
        .arg(dir.path().join("flag"));
    put(&mut cmd);
    assert!(dir.path().join("flag/v1/index.sqlite").exists());

    let out = clean().args(["stats"]).output().expect("run");
    assert_one_line_error(&out, "cache directory");
}

#[test]
fn an_insecure_cache_directory_is_one_clear_error() {
    let dir = util::tempdir();
    let cache = dir.path().join("open-to-all");
    fs::create_dir(&cache).expect("mkdir");
    fs::set_permissions(&cache, fs::Permissions::from_mode(0o777)).expect("chmod");
    let out = jc(&cache, &["stats"]);
    assert_one_line_error(&out, "open-to-all");
    assert!(
        !cache.join("v1").exists(),
        "nothing is created in a refused directory"
    );
}

#[test]
fn gc_prune_foreign_keeps_entries_of_unknown_identity() {
    let dir = util::tempdir();
    let cache = dir.path().join("cache");
    let object = dir.path().join("o.bin");
    fs::write(&object, b"bytes of an object").expect("write");
    let key = "ab".repeat(32);
    let put = jc(&cache, &["put", &key, object.to_str().expect("utf-8")]);
    assert!(put.status.success(), "{}", stderr(&put));
    let out = jc(&cache, &["--json", "gc", "--prune-foreign"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(json(&out)["evicted_entries"], 0);
    let get = jc(&cache, &["get", &key]);
    assert!(
        get.status.success(),
        "an entry without an identity is never foreign"
    );
}

#[test]
fn a_cache_on_a_network_file_system_is_one_clear_error() {
    let dir = util::tempdir();
    let cache = dir.path().join("on-nfs");
    for args in [&["stats"][..], &["gc"][..], &["verify"][..]] {
        let out = util::command(&cache, args)
            .env_remove("JITCACHE_REMOTE")
            .env("JITCACHE_STORE_FSTYPE", "nfs")
            .output()
            .expect("jitcache starts");
        assert_one_line_error(&out, "network file system (nfs)");
    }
    assert!(
        !cache.exists(),
        "nothing is created on a refused file system"
    );
}

#[test]
fn run_exits_like_a_native_program() {
    // Destructors and atexit handlers run at exit, in a native program's order, with the
    // program's code still mapped (a handler into unloaded code would crash).
    let dir = util::tempdir();
    let cache = dir.path().join("cache");
    let src = util::write(
        dir.path(),
        "bye.c",
        "#include <stdio.h>\n#include <stdlib.h>\n\
         static void bye(void) { puts(\"atexit handler\"); }\n\
         static void bye_too(void) { puts(\"registered last, runs first\"); }\n\
         __attribute__((destructor)) static void fini(void) { puts(\"destructor\"); }\n\
         int main(void) { atexit(bye); atexit(bye_too); puts(\"main\"); return 3; }\n",
    );
    let native = dir.path().join("bye");
    let built = std::process::Command::new("cc")
        .arg(&src)
        .arg("-o")
        .arg(&native)
        .status()
        .expect("cc");
    assert!(built.success());
    let expected = std::process::Command::new(&native)
        .output()
        .expect("native");
    let expected_out = String::from_utf8_lossy(&expected.stdout).into_owned();
    assert_eq!(
        expected_out,
        "main\nregistered last, runs first\natexit handler\ndestructor\n"
    );
    for _ in 0..2 {
        // Cold (compiled), then warm (from the cache).
        let run = util::run(&cache, &src, &[]);
        util::assert_output(&run, &expected_out, 3);
    }
}

/// A remote URL whose endpoint refuses connections (a loopback port just freed).
fn dead_remote(mode: &str) -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    format!("s3://jitcache-test/cli?endpoint=http://127.0.0.1:{port}&region=us-east-1&mode={mode}")
}

/// Sets dummy credentials, so no AWS profile is looked up.
fn credentials(cmd: &mut Command) -> &mut Command {
    cmd.env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test-secret")
        .env_remove("AWS_PROFILE")
        .env_remove("JITCACHE_REMOTE_SECRET")
        .env_remove("JITCACHE_REMOTE_SECRET_FILE")
}

/// A relocatable object whose `main` returns 42, compiled by `cc`.
fn object_returning_42(dir: &Path) -> std::path::PathBuf {
    let src = util::write(dir, "ret.c", "int main(void) { return 42; }\n");
    let obj = dir.join("ret.o");
    let built = Command::new("cc")
        .arg("-c")
        .arg(&src)
        .arg("-o")
        .arg(&obj)
        .status()
        .expect("cc");
    assert!(built.success());
    obj
}

#[test]
fn global_options_a_command_does_not_use_are_refused() {
    let dir = util::tempdir();
    let cache = dir.path().join("cache");
    let file = util::write(dir.path(), "a.o", "object bytes");
    let obj = object_returning_42(dir.path());
    let key = "3c".repeat(32);
    assert!(
        jc(&cache, &["put", &key, file.to_str().expect("utf-8")])
            .status
            .success()
    );
    let c = cache.to_str().expect("utf-8");
    let unused = dir.path().join("unused");
    let u = unused.to_str().expect("utf-8");
    let (f, o) = (file.to_str().expect("utf-8"), obj.to_str().expect("utf-8"));
    let remote = dead_remote("rw");
    let r = remote.as_str();
    let key_args = ["key", "--namespace", "ns", "--name", "n", "--source", f];
    let cases: Vec<(Vec<&str>, &str, &str)> = vec![
        (
            vec!["--cache-dir", c, "--remote", r, "ls"],
            "--remote",
            "ls",
        ),
        (
            vec!["--cache-dir", c, "ls", "--remote", r],
            "--remote",
            "ls",
        ),
        (
            vec!["--cache-dir", c, "--remote", r, "gc"],
            "--remote",
            "gc",
        ),
        (
            vec!["--cache-dir", c, "verify", "--remote", r],
            "--remote",
            "verify",
        ),
        (
            vec!["--cache-dir", c, "--remote", r, "clear"],
            "--remote",
            "clear",
        ),
        (
            vec!["--cache-dir", c, "--json", "get", &key],
            "--json",
            "get",
        ),
        (
            vec!["--cache-dir", c, "get", &key, "--json"],
            "--json",
            "get",
        ),
        (vec!["--cache-dir", u, "demo"], "--cache-dir", "demo"),
        (vec!["--remote", r, "demo"], "--remote", "demo"),
        (vec!["--json", "exec", o], "--json", "exec"),
        (vec!["exec", o, "--cache-dir", u], "--cache-dir", "exec"),
        (vec!["--remote", r, "exec", o], "--remote", "exec"),
        (
            [&["--cache-dir", u][..], &key_args].concat(),
            "--cache-dir",
            "key",
        ),
        (
            [&key_args[..], &["--remote", r]].concat(),
            "--remote",
            "key",
        ),
    ];
    for (args, option, command) in &cases {
        let out = bare(args).output().expect("jitcache starts");
        assert_one_line_error(&out, option);
        assert!(
            stderr(&out).contains(&format!("`{command}`")),
            "{args:?}: {}",
            stderr(&out)
        );
        assert!(
            out.stdout.is_empty(),
            "{args:?} did something: {}",
            stdout(&out)
        );
    }
    // run --no-cache takes --cache-dir and --remote and bypasses both.
    let program = util::write(dir.path(), "p.clj", "(defn main [] (println 5) 0)\n");
    let p = program.to_str().expect("utf-8");
    let out = bare(&[
        "--cache-dir",
        u,
        "--remote",
        r,
        "--json",
        "run",
        "--no-cache",
        p,
    ])
    .output()
    .expect("jitcache starts");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "5\n");
    let report = json_lines(&out.stderr, "run --no-cache").remove(0);
    assert_eq!(report["remote"], Value::Null, "{report}");
    assert!(report["bypassed"].is_string(), "{report}");
    // Nothing ran: the entry is still there, and no unused directory was made.
    let out = jc(&cache, &["ls"]);
    assert!(stdout(&out).contains(&key), "{}", stdout(&out));
    assert!(!unused.exists());
}

#[test]
fn options_from_the_environment_are_ambient_and_never_refused() {
    let dir = util::tempdir();
    let cache = dir.path().join("cache");
    let env_dir = dir.path().join("env-dir");
    let file = util::write(dir.path(), "a.o", "object bytes");
    let obj = object_returning_42(dir.path());
    let remote = dead_remote("rw");
    let key = "4d".repeat(32);
    let ambient = |args: &[&str]| {
        let mut cmd = bare(args);
        credentials(&mut cmd)
            .env("JITCACHE_DIR", &env_dir)
            .env("JITCACHE_REMOTE", &remote);
        cmd.output().expect("jitcache starts")
    };
    let f = file.to_str().expect("utf-8");

    // key and exec use no cache: JITCACHE_DIR and JITCACHE_REMOTE are ignored.
    let out = ambient(&["key", "--namespace", "ns", "--name", "n", "--source", f]);
    assert!(out.status.success(), "{}", stderr(&out));
    let plain = bare(&["key", "--namespace", "ns", "--name", "n", "--source", f])
        .output()
        .expect("jitcache starts");
    assert_eq!(stdout(&out), stdout(&plain));
    assert_eq!(stdout(&out).trim().len(), 64);
    let out = ambient(&["exec", obj.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(42), "{}", stderr(&out));
    assert!(!env_dir.exists(), "key and exec made no cache");

    // ls, gc, verify and clear work on the local cache, leaving the remote alone.
    let c = cache.to_str().expect("utf-8");
    let mut put = bare(&["--cache-dir", c, "put", &key, f]);
    assert!(put.output().expect("put").status.success());
    let out = ambient(&["--cache-dir", c, "ls"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(&key));
    for args in [&["gc"][..], &["verify"], &["clear"]] {
        let out = ambient(&[&["--cache-dir", c][..], args].concat());
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).is_empty(),
            "{args:?} touched the remote: {}",
            stderr(&out)
        );
    }
    assert!(stdout(&jc(&cache, &["ls"])).is_empty(), "clear cleared");

    // stats uses the remote: it shows the ambient one.
    let out = ambient(&["--cache-dir", c, "--json", "stats"]);
    assert_eq!(json(&out)["remote"], remote.as_str());
    // JITCACHE_DIR is the cache where one is used.
    let out = ambient(&["--json", "stats"]);
    assert_eq!(
        json(&out)["cache_dir"],
        env_dir.display().to_string().as_str()
    );
}

/// The JSON objects of a `--json` output: one a line, the last line ending in exactly one
/// newline.
fn json_lines(text: &[u8], what: &str) -> Vec<Value> {
    let text = String::from_utf8_lossy(text);
    assert!(
        text.ends_with('\n') && !text.ends_with("\n\n"),
        "{what}: the output must end with exactly one newline: {text:?}"
    );
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{what}: {l:?}: {e}")))
        .collect()
}

#[test]
fn every_json_report_ends_with_exactly_one_newline() {
    let dir = util::tempdir();
    let cache = dir.path().join("cache");
    let file = util::write(dir.path(), "a.o", "object bytes");
    let f = file.to_str().expect("utf-8");
    let one = |args: &[&str], out: &Output| {
        assert!(out.status.success(), "{args:?}: {}", stderr(out));
        let rows = json_lines(&out.stdout, &format!("{args:?}"));
        assert_eq!(rows.len(), 1, "{args:?}: one object");
        rows.into_iter().next().unwrap_or_default()
    };

    let args = [
        "--json",
        "key",
        "--namespace",
        "ns",
        "--name",
        "n",
        "--source",
        f,
    ];
    assert_eq!(
        one(&args, &bare(&args).output().expect("run"))["key"]
            .as_str()
            .map(str::len),
        Some(64)
    );
    for key in ["01".repeat(32), "02".repeat(32)] {
        let args = ["--json", "put", &key, f];
        assert_eq!(one(&args, &jc(&cache, &args))["key"], key.as_str());
    }
    for args in [
        &["--json", "stats"][..],
        &["--json", "gc"],
        &["--json", "verify"],
    ] {
        one(args, &jc(&cache, args));
    }
    let out = jc(&cache, &["--json", "ls"]);
    assert_eq!(json_lines(&out.stdout, "ls").len(), 2, "one line an entry");
    // stats with a remote configured (it is not contacted).
    let remote = dead_remote("ro");
    let args = ["--remote", &remote, "--json", "stats"];
    let stats = one(
        &args,
        credentials(&mut util::command(&cache, &args))
            .output()
            .as_ref()
            .expect("run"),
    );
    assert_eq!(stats["remote"], remote.as_str());
    assert!(stats["remote_counters"].is_object(), "{stats}");

    // run writes its report on stderr (stdout is the program's).
    let program = util::write(dir.path(), "p.clj", "(defn main [] (println 7) 0)\n");
    let out = jc(&cache, &["--json", "run", program.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "7\n");
    let report = json_lines(&out.stderr, "run");
    assert_eq!(report.len(), 1, "{}", stderr(&out));
    assert_eq!(report[0]["units"], 1);

    let args = ["--json", "demo"];
    let demo = one(&args, &bare(&args).output().expect("run"));
    assert_eq!(demo.as_array().map(Vec::len), Some(2), "{demo}");

    one(&["--json", "clear"], &jc(&cache, &["--json", "clear"]));
    assert!(
        jc(&cache, &["--json", "ls"]).stdout.is_empty(),
        "an empty ls prints nothing"
    );
}

#[test]
fn put_and_get_with_an_unreachable_remote_warn_and_use_the_local_cache() {
    let dir = util::tempdir();
    let cache = dir.path().join("cache");
    let bytes: Vec<u8> = (0..10_000u32).map(|i| (i % 253) as u8).collect();
    let file = dir.path().join("a.o");
    fs::write(&file, &bytes).expect("write");
    let f = file.to_str().expect("utf-8");
    let remote = dead_remote("rw");
    let key = "6e".repeat(32);
    let with_remote = |args: &[&str]| {
        let mut cmd = util::command(&cache, &["--remote", &remote]);
        credentials(&mut cmd)
            .env_remove("JITCACHE_REMOTE")
            .args(args);
        cmd.output().expect("jitcache starts")
    };

    // put stores locally, waits a bounded time for the upload, and warns that it failed.
    let started = std::time::Instant::now();
    let out = with_remote(&["--json", "put", &key, f]);
    assert!(started.elapsed() < std::time::Duration::from_secs(15));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = json_lines(&out.stdout, "put").remove(0);
    assert_eq!(report["remote"]["upload"], "failed", "{report}");
    assert_eq!(report["remote"]["url"], remote.as_str());
    let warnings: Vec<String> = stderr(&out)
        .lines()
        .filter(|l| l.starts_with("jitcache: warning: remote"))
        .map(str::to_owned)
        .collect();
    assert!(
        warnings
            .iter()
            .any(|l| l.contains(&key) && l.contains("not uploaded")),
        "{warnings:?}"
    );
    let out = with_remote(&["put", &key, f]);
    assert!(stdout(&out).contains("not uploaded"), "{}", stdout(&out));
    let out = jc(&cache, &["get", &key]);
    assert_eq!((out.status.code(), out.stdout), (Some(0), bytes.clone()));

    // stats with the remote shows what the attempts did.
    let stats = json(&with_remote(&["--json", "stats"]));
    let counters = &stats["remote_counters"];
    assert!(counters["uploads_dropped"].as_u64() >= Some(2), "{stats}");
    assert_eq!(counters["uploads"], 0);

    // get reads the local store first: a local hit needs no remote.
    let out = with_remote(&["get", &key]);
    assert_eq!((out.status.code(), out.stdout), (Some(0), bytes));
    // A local miss asks the remote, which cannot answer: a miss, in bounded time.
    let started = std::time::Instant::now();
    let out = with_remote(&["get", &"7f".repeat(32)]);
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    assert!(
        stderr(&out).contains("locally or in the remote"),
        "{}",
        stderr(&out)
    );
}
