//! A cache directory on a network file system is refused at open, naming the file
//! system, before anything is created in it. The detection is forced with the test hook
//! `JITCACHE_STORE_FSTYPE` in a child process (the variable is read at every open).

use std::path::Path;

use jitcache_store::{Error, FSTYPE_ENV, Store, StoreConfig};

use crate::common::spawn_child;

/// Runs the `open-fstype` child on `root` with the hook set to `fs`; returns its stderr
/// after asserting it succeeded.
fn open_as(root: &Path, fs: &str) -> String {
    let child = spawn_child("open-fstype", root, &[(FSTYPE_ENV, fs)]);
    let out = child.wait_with_output().expect("wait for child");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "child failed: {stderr}");
    stderr
}

#[test]
fn a_cache_on_nfs_is_refused_naming_the_file_system() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("cache");
    let stderr = open_as(&root, "nfs");
    assert!(stderr.contains("refused: nfs"), "{stderr}");
    assert!(
        !root.exists(),
        "nothing is created on a refused file system"
    );
}

#[test]
fn every_network_file_system_is_refused_and_others_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    for fs in ["cifs", "smb2", "ceph", "9p", "lustre", "gfs2"] {
        let stderr = open_as(&dir.path().join(fs), fs);
        assert!(stderr.contains(&format!("refused: {fs}")), "{fs}: {stderr}");
    }
    let stderr = open_as(&dir.path().join("fuse"), "fuse");
    assert!(stderr.contains("opened"), "fuse: {stderr}");
}

/// Child: opens the store at `root` and reports on stderr whether it was refused (and
/// as which file system) or opened.
pub fn child_open_fstype(root: &Path) {
    match Store::open(root, StoreConfig::default()) {
        Err(Error::NetworkFilesystem { path, fs }) => {
            assert_eq!(path, root);
            let message = Error::NetworkFilesystem {
                path,
                fs: fs.clone(),
            }
            .to_string();
            assert!(message.contains(&format!("({fs})")), "{message}");
            eprintln!("refused: {fs}");
        }
        Ok(_) => eprintln!("opened"),
        Err(e) => panic!("unexpected error: {e}"),
    }
}
