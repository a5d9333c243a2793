//! Helpers shared by the store tests, and the dispatcher for child processes.

#![allow(dead_code, reason = "each test module uses a different subset")]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use jitcache_store::{BlobId, Durability, Key, KeyBuilder, Store, StoreConfig};

/// Environment variable telling a re-executed test binary which child role to play.
pub const CHILD_ENV: &str = "JITCACHE_STORE_TEST_CHILD";
/// Environment variable carrying the child's argument (a path, usually).
pub const ARG_ENV: &str = "JITCACHE_STORE_TEST_ARG";
/// Exit status of a child that could not set up its environment (skip, not fail).
pub const SKIP_STATUS: i32 = 77;

/// A store in a fresh temporary directory (cache root is `<tmp>/cache`).
pub fn fresh() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    (dir, store)
}

/// A store in a fresh temporary directory that keeps every blob in a file of its own
/// (`inline_max` 0), for tests that damage blob files.
pub fn fresh_files() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = StoreConfig {
        inline_max: 0,
        ..StoreConfig::default()
    };
    let store = Store::open(dir.path().join("cache"), config).expect("open store");
    (dir, store)
}

/// Opens the store under `<dir>/cache` with the default config.
pub fn open(dir: &Path) -> Store {
    Store::open(dir.join("cache"), StoreConfig::default()).expect("open store")
}

/// A config that skips fsync, for tests that do many puts.
pub fn fast_config() -> StoreConfig {
    StoreConfig {
        durability: Durability::None,
        ..StoreConfig::default()
    }
}

/// A key derived from a small integer.
pub fn key(n: u64) -> Key {
    KeyBuilder::new("test", &n.to_string()).build()
}

/// Deterministic pseudo-random bytes (xorshift), incompressible.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Bytes that say which (key, version) they were made for, so a reader can check it
/// got exactly what some writer put: a 16-byte header (key, version, length) then
/// content derived from them, half compressible.
pub fn tagged(key: u64, version: u64, len: usize) -> Vec<u8> {
    let len = len.max(16);
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&(key as u32).to_le_bytes());
    out.extend_from_slice(&(version as u32).to_le_bytes());
    out.extend_from_slice(&(len as u64).to_le_bytes());
    let body = len - 16;
    out.extend(noise(key << 32 | version, body / 2));
    out.resize(len, (key ^ version) as u8);
    out
}

/// Checks bytes made by [`tagged`] for `key`: returns the version when they are exactly
/// what `tagged(key, version, len)` makes.
pub fn check_tagged(key: u64, bytes: &[u8]) -> Option<u64> {
    let k = u32::from_le_bytes(bytes.get(0..4)?.try_into().ok()?);
    let v = u32::from_le_bytes(bytes.get(4..8)?.try_into().ok()?);
    let len = u64::from_le_bytes(bytes.get(8..16)?.try_into().ok()?);
    if u64::from(k) != key || len != bytes.len() as u64 {
        return None;
    }
    (tagged(key, u64::from(v), bytes.len()) == bytes).then_some(u64::from(v))
}

/// The blob file holding `bytes` in `store`.
pub fn blob_file(store: &Store, bytes: &[u8]) -> PathBuf {
    store.blob_path(&BlobId::of(bytes))
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Asserts that every file under `<root>/v1/blobs` is a complete blob: its header,
/// zstd frame and BLAKE3 agree with its name. (A half-written blob would fail this.)
pub fn assert_blob_files_sound(root: &Path) {
    for path in files_under(&root.join("v1").join("blobs")) {
        let bytes = std::fs::read(&path).expect("read blob file");
        assert!(
            bytes.len() >= 16,
            "{}: shorter than a header",
            path.display()
        );
        assert_eq!(&bytes[..4], b"JCB\0", "{}: bad magic", path.display());
        let len = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes"));
        let raw = zstd::decode_all(&bytes[16..]).expect("zstd frame decodes");
        assert_eq!(raw.len() as u64, len, "{}: length", path.display());
        let name = path.file_name().and_then(|n| n.to_str()).expect("name");
        assert_eq!(
            blake3::hash(&raw).to_hex().as_str(),
            name,
            "{}: hash",
            path.display()
        );
    }
}

/// A command re-running this test binary as a child in `role`.
pub fn child_command(role: &str, arg: &Path) -> Command {
    let exe = std::env::current_exe().expect("current_exe");
    let mut cmd = Command::new(exe);
    child_args(&mut cmd, role, arg);
    cmd
}

/// Adds the arguments and environment that make the test binary run `role`.
pub fn child_args(cmd: &mut Command, role: &str, arg: &Path) {
    cmd.args([
        "--exact",
        "child_process_entry",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CHILD_ENV, role)
    .env(ARG_ENV, arg)
    .stdin(Stdio::null());
}

/// Spawns a child in `role` with stdin, stdout and stderr piped.
pub fn spawn_child(role: &str, arg: &Path, envs: &[(&str, &str)]) -> Child {
    let mut cmd = child_command(role, arg);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.spawn().expect("spawn child test process")
}

/// Whether `unshare -m` works here (it needs CAP_SYS_ADMIN); prints why not.
pub fn mount_namespaces_available() -> bool {
    match Command::new("unshare")
        .args(["-m", "--propagation", "private", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
    {
        Ok(out) if out.status.success() => true,
        Ok(out) => {
            eprintln!(
                "SKIP: `unshare -m` is not permitted here: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            false
        }
        Err(e) => {
            eprintln!("SKIP: cannot run `unshare`: {e}");
            false
        }
    }
}

/// Runs this test binary as a child in `role` inside a private mount namespace, so the
/// mounts it makes vanish with it. Returns None (after printing why) when mounting is
/// not permitted here; otherwise asserts the child succeeded.
pub fn run_in_mount_namespace(role: &str, arg: &Path) -> Option<()> {
    if !mount_namespaces_available() {
        return None;
    }
    let mut cmd = Command::new("unshare");
    cmd.args(["-m", "--propagation", "private", "--"])
        .arg(std::env::current_exe().expect("current_exe"));
    child_args(&mut cmd, role, arg);
    let out = cmd.output().expect("run child in mount namespace");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    if out.status.code() == Some(SKIP_STATUS) {
        eprintln!("SKIP: {role}: {}", stderr.trim());
        return None;
    }
    assert!(
        out.status.success(),
        "child {role} failed: {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    Some(())
}

/// Runs `mount` with `args`. In a child: exits with [`SKIP_STATUS`] when mounting is
/// not permitted here (printing why); any other failure fails the test.
pub fn mount_or_skip(args: &[&str]) {
    let out = Command::new("mount")
        .args(args)
        .output()
        .expect("run mount");
    if out.status.success() {
        return;
    }
    let why = String::from_utf8_lossy(&out.stderr).to_lowercase();
    let not_permitted = ["permission denied", "not permitted", "must be superuser"]
        .iter()
        .any(|m| why.contains(m));
    assert!(not_permitted, "mount {} failed: {why}", args.join(" "));
    eprintln!(
        "mount {} is not permitted here: {}",
        args.join(" "),
        why.trim()
    );
    std::process::exit(SKIP_STATUS);
}

/// The child side: runs the role named by [`CHILD_ENV`] and exits; returns at once in a
/// normal test run.
pub fn child_main() {
    let Ok(role) = std::env::var(CHILD_ENV) else {
        return;
    };
    let arg = PathBuf::from(std::env::var_os(ARG_ENV).unwrap_or_default());
    match role.as_str() {
        "keys" => crate::key::child_keys(&arg),
        "mp-worker" => crate::multiprocess::child_worker(&arg),
        "fault-put" => crate::faults::child_put(&arg),
        "fault-gc" => crate::faults::child_gc(&arg),
        "read-only" => crate::bad_states::child_read_only(&arg),
        "disk-full" => crate::bad_states::child_disk_full(&arg),
        "bg-read" => crate::writer::child_read(&arg),
        "bg-bound" => crate::writer::child_bound(&arg),
        "bg-put" => crate::writer::child_put(&arg),
        "bg-locked" => crate::writer::child_locked(&arg),
        "open-fstype" => crate::network_fs::child_open_fstype(&arg),
        other => panic!("unknown child role {other}"),
    }
    std::process::exit(0);
}

/// Another connection to the index of the cache at `root` holding its write lock (an
/// open `BEGIN IMMEDIATE` transaction), as another process's commit would; `COMMIT` on
/// it, or dropping it, lets go.
pub fn hold_write_lock(root: &Path) -> rusqlite::Connection {
    let locker = rusqlite::Connection::open(root.join("v1/index.sqlite")).expect("locker");
    locker
        .execute_batch("BEGIN IMMEDIATE")
        .expect("take the write lock");
    locker
}
