//! The remote tier against a real S3-compatible server (SeaweedFS on loopback): machines
//! with separate local caches share one bucket; whatever goes wrong remotely (a damaged
//! or foreign object, a dead server, wrong credentials, a missing or wrong signature) is a
//! miss that compiles, never a failure and never unverified code.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use jitcache_remote::envelope::{self, MacKey};
use jitcache_remote::{Credentials, ObjectStore, RemoteConfig, S3Store, Secret, object_path};
use jitcache_store::Key;
use serde_json::Value;

use crate::seaweed::{self, Seaweed};
use crate::util;

/// A Lisp program of `n` definitions and a `main` that calls them (every third one when
/// there are many).
fn program(n: usize, salt: i64) -> String {
    let mut src = String::new();
    for i in 0..n {
        src.push_str(&format!("(defn f{i} [x] (+ x {}))\n", i as i64 * 3 + salt));
    }
    src.push_str("(defn main [] (println");
    for i in (0..n).step_by(if n > 12 { 3 } else { 1 }) {
        src.push_str(&format!(" (f{i} 1)"));
    }
    src.push_str(") 0)\n");
    src
}

/// How a test machine talks to the remote.
struct Machine<'a> {
    url: String,
    access: &'a str,
    secret_key: &'a str,
    signing: Option<&'a str>,
}

impl Machine<'_> {
    fn on(server: &Seaweed, prefix: &str, mode: &str) -> Machine<'static> {
        Machine {
            url: server.url(prefix, mode),
            access: seaweed::ACCESS_KEY,
            secret_key: seaweed::SECRET_KEY,
            signing: None,
        }
    }

    /// The environment of a `jitcache` process on this machine.
    fn env(&self, cmd: &mut Command) {
        for var in [
            "AWS_SESSION_TOKEN",
            "AWS_PROFILE",
            "AWS_ENDPOINT_URL",
            "JITCACHE_REMOTE_SECRET",
            "JITCACHE_REMOTE_SECRET_FILE",
            "HTTP_PROXY",
            "http_proxy",
        ] {
            cmd.env_remove(var);
        }
        cmd.env("JITCACHE_REMOTE", &self.url)
            .env("AWS_ACCESS_KEY_ID", self.access)
            .env("AWS_SECRET_ACCESS_KEY", self.secret_key)
            .env("AWS_REGION", "us-east-1");
        if let Some(secret) = self.signing {
            cmd.env("JITCACHE_REMOTE_SECRET", secret);
        }
    }

    /// `jitcache run` of `program` on the local cache `cache`.
    fn run(&self, cache: &Path, program: &Path) -> util::Run {
        let mut cmd = util::run_command(cache, program, &["--timings"]);
        self.env(&mut cmd);
        let output = cmd.output().unwrap_or_else(|e| panic!("cannot start: {e}"));
        util::Run::from_output(output)
    }

    /// `jitcache --json stats` of `cache` with this machine's remote.
    fn stats(&self, cache: &Path) -> Value {
        let mut cmd = util::command(cache, &["--json", "stats"]);
        self.env(&mut cmd);
        let output = cmd.output().unwrap_or_else(|e| panic!("cannot start: {e}"));
        assert!(output.status.success(), "{output:?}");
        serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("bad stats: {e}"))
    }

    /// `jitcache ARGS...` on the local cache `cache` with this machine's remote given on
    /// the command line (`--remote URL`), `JITCACHE_REMOTE` unset.
    fn explicit(&self, cache: &Path, args: &[&str]) -> Output {
        let mut cmd = util::command(cache, &["--remote", &self.url]);
        cmd.args(args);
        self.env(&mut cmd);
        cmd.env_remove("JITCACHE_REMOTE");
        cmd.output().unwrap_or_else(|e| panic!("cannot start: {e}"))
    }

    /// `jitcache ARGS...` on the local cache `cache` with this machine's remote in
    /// `JITCACHE_REMOTE`.
    fn ambient(&self, cache: &Path, args: &[&str]) -> Output {
        let mut cmd = util::command(cache, args);
        self.env(&mut cmd);
        cmd.output().unwrap_or_else(|e| panic!("cannot start: {e}"))
    }

    /// A client of the same bucket and prefix, to plant objects.
    fn client(&self) -> S3Store {
        let mut config = RemoteConfig::parse(&self.url).expect("test URL");
        config.credentials = Some(Credentials {
            access_key_id: self.access.to_owned(),
            secret_access_key: self.secret_key.to_owned(),
            session_token: None,
        });
        S3Store::new(&config).expect("client")
    }
}

/// A counter of the `remote` object of a run's report.
fn remote(run: &util::Run, field: &str) -> u64 {
    run.report["remote"][field]
        .as_u64()
        .unwrap_or_else(|| panic!("no remote.{field} in {}\n{}", run.report, run.stderr))
}

/// Objects this run put into the bucket: created, or found there by a retry of its own
/// write whose first attempt landed but timed out (a loaded machine does that).
fn stored(run: &util::Run) -> u64 {
    remote(run, "uploads") + remote(run, "uploads_existing")
}

fn remote_hits(run: &util::Run) -> u64 {
    run.report["remote_hits"].as_u64().unwrap_or(0)
}

/// The persisted remote counter `field` of `stats`.
fn counter(stats: &Value, field: &str) -> u64 {
    stats["remote_counters"][field]
        .as_u64()
        .unwrap_or_else(|| panic!("no remote counter {field} in {stats}"))
}

/// The key and object bytes of the entry named `name` in the local cache `cache`.
fn entry(cache: &Path, name: &str) -> (Key, Vec<u8>) {
    let entry = util::entries(cache)
        .into_iter()
        .find(|e| e["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no entry {name}"));
    let key: Key = entry["key"]
        .as_str()
        .unwrap_or_default()
        .parse()
        .expect("key");
    let output = util::command(cache, &["get", &key.to_string()])
        .env_remove("JITCACHE_REMOTE")
        .output()
        .unwrap_or_else(|e| panic!("cannot start: {e}"));
    assert!(output.status.success(), "{output:?}");
    (key, output.stdout)
}

#[test]
fn two_machines_share_what_one_compiled_through_one_bucket() {
    let Some(server) = Seaweed::start() else {
        return;
    };
    let dir = util::tempdir();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let ci = Machine::on(&server, "share", "rw");
    let dev = Machine::on(&server, "share", "ro");

    let small = util::write(dir.path(), "small.clj", &program(10, 0));
    let expected = util::run_uncached(&dir.path().join("ref"), &small).stdout;
    let first = ci.run(&a, &small);
    util::assert_output(&first, &expected, 0);
    assert_eq!(first.compiled(), 11, "{}", first.stderr);
    assert_eq!(stored(&first), 11, "uploaded before exit: {}", first.report);
    assert_eq!(first.warnings(), 0, "{}", first.stderr);

    // The other machine loads everything from the bucket, compiling nothing.
    let second = dev.run(&b, &small);
    util::assert_output(&second, &expected, 0);
    assert_eq!(
        (second.compiled(), remote_hits(&second)),
        (0, 11),
        "{}",
        second.stderr
    );
    assert_eq!(remote(&second, "hits"), 11);
    assert_eq!(
        remote(&second, "uploads"),
        0,
        "a read-only machine uploads nothing"
    );
    eprintln!(
        "remote: 11 units fetched and linked in {:.1} ms (load), whole run {}",
        second.report["load_ms"].as_f64().unwrap_or(-1.0),
        second
            .stderr
            .lines()
            .find(|l| l.contains("frontend"))
            .unwrap_or("")
    );
    // ... and keeps them: the next start is local.
    let third = dev.run(&b, &small);
    assert_eq!(
        (third.compiled(), third.disk_hits(), remote_hits(&third)),
        (0, 11, 0)
    );
    let stats = dev.stats(&b);
    assert_eq!(
        (counter(&stats, "hits"), counter(&stats, "misses")),
        (11, 0)
    );
    assert!(counter(&stats, "bytes_down") > 0);
    assert_eq!(stats["remote_breaker_open_s"], Value::Null);
    assert!(counter(&ci.stats(&a), "bytes_up") > 0);
    assert!(util::admin(&b, &["verify"]).contains("\"clean\":true"));

    // A batch of 64+ units travels as one pack object: one remote hit for 71 units.
    let big = util::write(dir.path(), "big.clj", &program(70, 1));
    let expected = util::run_uncached(&dir.path().join("ref"), &big).stdout;
    let packed = ci.run(&a, &big);
    assert_eq!((packed.compiled(), stored(&packed)), (71, 72));
    let fetched = dev.run(&b, &big);
    util::assert_output(&fetched, &expected, 0);
    assert_eq!((fetched.compiled(), remote_hits(&fetched)), (0, 71));
    assert_eq!(
        remote(&fetched, "hits"),
        1,
        "one object for the whole batch"
    );
}

#[test]
fn a_damaged_object_in_the_bucket_is_a_miss_and_never_reaches_the_local_store() {
    let Some(server) = Seaweed::start() else {
        return;
    };
    let dir = util::tempdir();
    let src = util::write(dir.path(), "p.clj", &program(8, 5));
    let reference = dir.path().join("ref");
    let expected = util::run(&reference, &src, &[]).stdout;
    let ci = Machine::on(&server, "damaged", "rw");
    let client = ci.client();

    // Plant damaged objects where two units will go: a flipped byte in the compressed
    // content, and a sound object of another unit under this unit's key. Create-only
    // uploads leave them there.
    let (key3, bytes3) = entry(&reference, "lisp/f3");
    let mut flipped = envelope::seal(&key3, "lisp/f3", &bytes3, None);
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x40;
    client
        .put_if_absent(&object_path(&key3), &flipped)
        .expect("plant");
    let (key5, _) = entry(&reference, "lisp/f5");
    let (key6, bytes6) = entry(&reference, "lisp/f6");
    let foreign = envelope::seal(&key6, "lisp/f5", &bytes6, None);
    client
        .put_if_absent(&object_path(&key5), &foreign)
        .expect("plant");

    let a = dir.path().join("a");
    let writer = ci.run(&a, &src);
    assert_eq!(
        (
            remote(&writer, "uploads"),
            remote(&writer, "uploads_existing")
        ),
        (7, 2)
    );

    let b = dir.path().join("b");
    let reader = Machine::on(&server, "damaged", "ro").run(&b, &src);
    util::assert_output(&reader, &expected, 0);
    assert_eq!(
        reader.compiled_units().into_iter().collect::<Vec<_>>(),
        ["f3", "f5"]
    );
    assert_eq!((remote_hits(&reader), remote(&reader, "rejected")), (7, 2));
    assert!(
        reader.stderr.contains("rejected the object"),
        "{}",
        reader.stderr
    );

    // The reader's local store holds only sound objects: verify is clean, every entry
    // equals what an uncached compile produces, and the next start compiles nothing.
    let verify = util::admin(&b, &["verify"]);
    assert!(verify.contains("\"clean\":true"), "{verify}");
    for name in ["lisp/f3", "lisp/f5", "lisp/f6"] {
        assert_eq!(entry(&b, name).1, entry(&reference, name).1, "{name}");
    }
    let again = util::run(&b, &src, &[]);
    assert_eq!((again.compiled(), again.disk_hits()), (0, 9));
}

#[test]
fn a_stopped_server_costs_bounded_time_and_opens_the_breaker_for_other_processes() {
    let Some(mut server) = Seaweed::start() else {
        return;
    };
    let dir = util::tempdir();
    let first = util::write(dir.path(), "first.clj", &program(12, 7));
    let second = util::write(dir.path(), "second.clj", &program(11, 8));
    let expected_first = util::run_uncached(&dir.path().join("ref"), &first).stdout;
    let expected_second = util::run_uncached(&dir.path().join("ref"), &second).stdout;
    let ci = Machine::on(&server, "dead", "rw");
    let warm = ci.run(&dir.path().join("a"), &first);
    assert_eq!(stored(&warm), 13);

    server.stop();
    let cache = dir.path().join("b");
    let start = Instant::now();
    let run = ci.run(&cache, &first);
    let elapsed = start.elapsed();
    util::assert_output(&run, &expected_first, 0);
    assert_eq!(run.compiled(), 13, "{}", run.stderr);
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
    assert!(remote(&run, "errors") + remote(&run, "timeouts") >= 3);
    assert_eq!(remote(&run, "breaker_opens"), 1, "{}", run.report);
    assert!(
        run.stderr.contains("skipping it for 30 s"),
        "{}",
        run.stderr
    );
    eprintln!("dead server: a run of 13 units took {elapsed:?} in all");
    let stats = ci.stats(&cache);
    assert!(
        stats["remote_breaker_open_s"].as_f64() > Some(1.0),
        "{stats}"
    );
    assert_eq!(counter(&stats, "breaker_opens"), 1);

    // Another process on the same cache skips the remote without trying it.
    let other = ci.run(&cache, &second);
    util::assert_output(&other, &expected_second, 0);
    assert_eq!(other.compiled(), 12);
    assert_eq!(
        (remote(&other, "errors"), remote(&other, "timeouts")),
        (0, 0)
    );
    assert!(remote(&other, "breaker_skips") >= 12, "{}", other.report);
}

#[test]
fn wrong_credentials_are_misses_with_a_clear_warning() {
    let Some(server) = Seaweed::start() else {
        return;
    };
    let dir = util::tempdir();
    let src = util::write(dir.path(), "p.clj", &program(6, 11));
    let expected = util::run_uncached(&dir.path().join("ref"), &src).stdout;
    let good = Machine::on(&server, "creds", "rw");
    assert_eq!(stored(&good.run(&dir.path().join("a"), &src)), 7);

    let wrong = Machine {
        secret_key: "not-the-secret-key",
        ..Machine::on(&server, "creds", "rw")
    };
    let run = wrong.run(&dir.path().join("b"), &src);
    util::assert_output(&run, &expected, 0);
    assert_eq!((run.compiled(), remote_hits(&run)), (7, 0));
    assert_eq!(remote(&run, "uploads"), 0);
    assert!(remote(&run, "errors") >= 1);
    let warnings: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("jitcache: warning: remote") && l.contains("access denied"))
        .collect();
    assert_eq!(warnings.len(), 1, "{}", run.stderr);
    assert!(
        warnings[0].contains("check the credentials"),
        "{}",
        warnings[0]
    );
}

#[test]
fn with_signing_on_unsigned_and_wrongly_signed_objects_are_never_loaded() {
    let Some(server) = Seaweed::start() else {
        return;
    };
    let dir = util::tempdir();
    let src = util::write(dir.path(), "p.clj", &program(9, 13));
    let reference = dir.path().join("ref");
    let expected = util::run(&reference, &src, &[]).stdout;
    let fleet = |mode: &str, signing: Option<&'static str>| Machine {
        signing,
        ..Machine::on(&server, "signed", mode)
    };

    // Signed uploads are read by holders of the secret only.
    let ci = fleet("rw", Some("fleet-secret"));
    assert_eq!(stored(&ci.run(&dir.path().join("a"), &src)), 10);
    let holder = fleet("ro", Some("fleet-secret")).run(&dir.path().join("b"), &src);
    util::assert_output(&holder, &expected, 0);
    assert_eq!((holder.compiled(), remote_hits(&holder)), (0, 10));
    let intruder = fleet("ro", Some("guessed-secret")).run(&dir.path().join("c"), &src);
    util::assert_output(&intruder, &expected, 0);
    assert_eq!(
        (intruder.compiled(), remote(&intruder, "rejected")),
        (10, 10)
    );

    // Someone who can write to the bucket but has no secret plants code of their own
    // (here: another program's f1 and f2, which print other numbers) under the keys of
    // this program's f1 (unsigned) and f2 (signed with a guessed key). The fleet's
    // create-only uploads leave those objects in place.
    let target = util::write(dir.path(), "target.clj", &program(4, 17));
    let evil = util::write(dir.path(), "evil.clj", &program(4, 19));
    let (target_ref, evil_ref) = (dir.path().join("ref-target"), dir.path().join("ref-evil"));
    let expected_target = util::run(&target_ref, &target, &[]).stdout;
    util::run(&evil_ref, &evil, &[]);
    let client = ci.client();
    let guessed = MacKey::derive(&Secret::new("guessed-secret").expect("secret"));
    for (name, mac) in [("lisp/f1", None), ("lisp/f2", Some(&guessed))] {
        let (key, _) = entry(&target_ref, name);
        let (_, code) = entry(&evil_ref, name);
        let planted = envelope::seal(&key, name, &code, mac);
        client
            .put_if_absent(&object_path(&key), &planted)
            .expect("plant");
    }
    let filled = ci.run(&dir.path().join("g"), &target);
    assert_eq!(
        (
            remote(&filled, "uploads"),
            remote(&filled, "uploads_existing")
        ),
        (3, 2)
    );

    // A machine with the secret never loads them: it compiles those two units itself.
    let checked = fleet("ro", Some("fleet-secret")).run(&dir.path().join("e"), &target);
    util::assert_output(&checked, &expected_target, 0);
    assert_eq!(
        checked.compiled_units().into_iter().collect::<Vec<_>>(),
        ["f1", "f2"]
    );
    assert_eq!(
        (remote_hits(&checked), remote(&checked, "rejected")),
        (3, 2)
    );
    assert!(util::admin(&dir.path().join("e"), &["verify"]).contains("\"clean\":true"));
    for name in ["lisp/f1", "lisp/f2"] {
        assert_eq!(
            entry(&dir.path().join("e"), name).1,
            entry(&target_ref, name).1
        );
    }

    // The documented risk of a fleet without a secret: the same reader without one takes
    // the planted objects (their hashes are sound) and runs the planter's code.
    let trusting = fleet("ro", None).run(&dir.path().join("f"), &target);
    assert_eq!((trusting.compiled(), remote_hits(&trusting)), (0, 5));
    assert_ne!(trusting.stdout, expected_target, "the planted code ran");
}

/// The JSON report of a `--json put`, checked to be one line ending in one newline.
fn put_report(out: &Output) -> Value {
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.ends_with("}\n") && text.lines().count() == 1,
        "one JSON line: {text:?}"
    );
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("bad report {text:?}: {e}"))
}

#[test]
fn put_uploads_and_get_reads_the_bucket_from_another_cache() {
    let Some(server) = Seaweed::start() else {
        return;
    };
    let dir = util::tempdir();
    let (a, b, c) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("c"),
    );
    let ci = Machine::on(&server, "admin", "rw");
    let dev = Machine::on(&server, "admin", "ro");
    let bytes: Vec<u8> = (0..50_000u32).map(|i| (i * 13 % 251) as u8).collect();
    let file = dir.path().join("obj.o");
    std::fs::write(&file, &bytes).expect("write");
    let file = file.to_str().expect("utf-8");
    let key = "9e".repeat(32);
    let parsed: Key = key.parse().expect("key");

    // put with --remote on the command line stores locally and uploads before it exits.
    let started = Instant::now();
    let report = put_report(&ci.explicit(&a, &["--json", "put", &key, file, "--name", "lisp/obj"]));
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(report["remote"]["upload"], "uploaded", "{report}");
    assert_eq!(report["remote"]["url"], ci.url.as_str());
    assert_eq!(report["bytes"], bytes.len());
    let object = ci
        .client()
        .get(&object_path(&parsed))
        .expect("bucket answers")
        .expect("the object was uploaded");
    let opened = envelope::open(&object, &parsed, None, u64::MAX).expect("a sound object");
    assert_eq!(opened.bytes, bytes);
    assert_eq!(opened.name, "lisp/obj");
    let stats = ci.stats(&a);
    assert_eq!(counter(&stats, "uploads"), 1, "{stats}");
    assert!(counter(&stats, "bytes_up") > 0);
    assert_eq!(util::entries(&a).len(), 1, "stored locally too");

    // get on another, empty cache reads the bucket ...
    let out = dev.explicit(&b, &["get", &key]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(out.stdout, bytes);
    let stats = dev.stats(&b);
    assert_eq!((counter(&stats, "hits"), counter(&stats, "misses")), (1, 0));
    // ... and keeps the object locally under its name: the next get needs no remote.
    let entries = util::entries(&b);
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["name"], "lisp/obj");
    assert_eq!(entry(&b, "lisp/obj").1, bytes);
    assert!(util::admin(&b, &["verify"]).contains("\"clean\":true"));

    // Without a remote, a third empty cache misses; with one, a key the bucket lacks is
    // a miss of both tiers.
    let out = util::command(&c, &["get", &key])
        .env_remove("JITCACHE_REMOTE")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let out = dev.explicit(&c, &["get", &"77".repeat(32)]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("locally or in the remote"), "{err}");

    // JITCACHE_REMOTE is honoured as --remote is: a put of the same key from the third
    // cache finds the object there and leaves it alone.
    let report = put_report(&ci.ambient(&c, &["--json", "put", &key, file]));
    assert_eq!(report["remote"]["upload"], "existed", "{report}");
    assert_eq!(counter(&ci.stats(&c), "uploads_existing"), 1);
    let out = dev.ambient(&dir.path().join("d"), &["get", &key]);
    assert_eq!((out.status.code(), out.stdout), (Some(0), bytes.clone()));

    // A read-only remote: put stores locally, uploads nothing, and says so.
    let other = "5c".repeat(32);
    let out = dev.explicit(&c, &["put", &other, file]);
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("not uploaded") && said.contains("read-only"),
        "{said}"
    );
    let report = put_report(&dev.explicit(&c, &["--json", "put", &other, file]));
    assert_eq!(report["remote"]["upload"], "read-only");
    let absent: Key = other.parse().expect("key");
    assert_eq!(
        ci.client().get(&object_path(&absent)).expect("answer"),
        None
    );
}

#[test]
fn two_checkouts_of_a_c_program_on_two_machines_compile_once() {
    let Some(server) = Seaweed::start() else {
        return;
    };
    let dir = util::tempdir();
    let checkout = |root: &Path| {
        let prog = root.join("src/prog");
        util::write(
            &prog,
            "main.c",
            "#include <stdio.h>\n#include \"inc/val.h\"\nint twice(int);\n\
             int main(void) { printf(\"%d\\n\", twice(VAL)); return 0; }\n",
        );
        util::write(
            &prog,
            "twice.c",
            "#include \"inc/val.h\"\nint twice(int x) { return x * SCALE; }\n",
        );
        util::write(&prog, "inc/val.h", "#define VAL 21\n#define SCALE 2\n");
        prog
    };
    let (a, b) = (
        checkout(&dir.path().join("ci/work")),
        checkout(&dir.path().join("home/dev/x")),
    );
    let ci = Machine::on(&server, "c-share", "rw");
    let dev = Machine::on(&server, "c-share", "ro");

    let first = ci.run(&dir.path().join("cache-a"), &a);
    util::assert_output(&first, "42\n", 0);
    assert_eq!(first.compiled(), 2, "{}", first.stderr);

    // Another machine, another local cache, the program at another path: every unit
    // (its manifest, then its object) comes from the bucket.
    let second = dev.run(&dir.path().join("cache-b"), &b);
    util::assert_output(&second, "42\n", 0);
    assert_eq!(second.compiled(), 0, "{}", second.stderr);
    assert_eq!(remote_hits(&second), 2, "{}", second.stderr);

    // A header edited in one checkout misses there, and only there.
    util::write(&b, "inc/val.h", "#define VAL 5\n#define SCALE 2\n");
    let edited = dev.run(&dir.path().join("cache-b"), &b);
    util::assert_output(&edited, "10\n", 0);
    assert_eq!(edited.compiled(), 2, "{}", edited.stderr);
    let again = ci.run(&dir.path().join("cache-a"), &a);
    util::assert_output(&again, "42\n", 0);
    assert_eq!(again.compiled(), 0, "{}", again.stderr);
}
