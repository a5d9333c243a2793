//! Refusing cache directories on network file systems.
//!
//! The index is SQLite in WAL mode: its readers and writers coordinate through a
//! shared-memory file (`index.sqlite-shm`) mapped by every process and through POSIX
//! byte-range locks, and the gc lock is a `flock`. Network file systems (NFS, CIFS/SMB,
//! AFS, Ceph, 9p, Lustre, GFS2, ...) do not give either reliably across machines: two
//! hosts can both believe they hold the write lock and corrupt the index, or a lock can
//! hang on a lost server. So [`Store::open`](crate::Store::open) refuses such a directory
//! with [`Error::NetworkFilesystem`] naming the file system, before it creates anything.
//!
//! The file system is found with `statfs(2)`'s `f_type` on the cache root, or on its
//! nearest existing ancestor when the root does not exist yet. FUSE is not refused: it
//! is as often local (an overlay, an encrypted home) as remote, and `f_type` cannot tell.
//!
//! Test hook: `JITCACHE_STORE_FSTYPE=<name>` ([`FSTYPE_ENV`]) makes the store take the
//! file system to be `<name>` (e.g. `nfs`; any name of the table below is refused,
//! anything else counts as local), so tests can exercise the refusal without a server.

use std::path::Path;

use crate::error::Error;

/// Environment variable overriding the detected file system type (a test hook).
pub const FSTYPE_ENV: &str = "JITCACHE_STORE_FSTYPE";

/// `statfs` magic numbers of file systems whose locks do not hold across machines,
/// with the names used in errors and by [`FSTYPE_ENV`].
const NETWORK: [(u64, &str); 16] = [
    (0x6969, "nfs"),
    (0x517B, "smb"),
    (0xFF53_4D42, "cifs"),
    (0xFE53_4D42, "smb2"),
    (0x5346_414F, "afs"),
    (0x6B41_4653, "kafs"),
    (0x00C3_6400, "ceph"),
    (0x0102_1997, "9p"),
    (0x0BD0_0BD0, "lustre"),
    (0x0116_1970, "gfs2"),
    (0x7461_636F, "ocfs2"),
    (0x564C, "ncp"),
    (0x7375_7245, "coda"),
    (0x4750_4653, "gpfs"),
    (0x1983_0326, "beegfs"),
    (0xAAD7_AAEA, "panfs"),
];

/// Fails with [`Error::NetworkFilesystem`] when `root` is on a network file system.
pub(crate) fn refuse_network(root: &Path) -> Result<(), Error> {
    match network_fs(root) {
        Some(fs) => Err(Error::NetworkFilesystem {
            path: root.to_path_buf(),
            fs,
        }),
        None => Ok(()),
    }
}

/// The name of the network file system `root` is on, if it is on one.
fn network_fs(root: &Path) -> Option<String> {
    if let Ok(forced) = std::env::var(FSTYPE_ENV) {
        let forced = forced.trim().to_ascii_lowercase();
        return NETWORK
            .iter()
            .any(|(_, name)| *name == forced)
            .then_some(forced);
    }
    let magic = fs_magic(root)?;
    name_of(magic).map(str::to_owned)
}

/// The network file system with `statfs` magic `magic`, if it is one.
fn name_of(magic: u64) -> Option<&'static str> {
    NETWORK
        .iter()
        .find(|(m, _)| *m == magic)
        .map(|(_, name)| *name)
}

/// `f_type` of the file system holding `path`, or of its nearest existing ancestor.
/// None when no ancestor can be examined (then the open goes on and fails, if it must,
/// on the directory itself).
fn fs_magic(path: &Path) -> Option<u64> {
    path.ancestors()
        .filter(|p| !p.as_os_str().is_empty())
        .find_map(|p| rustix::fs::statfs(p).ok())
        // f_type is signed on some targets; the magic numbers are 32-bit patterns.
        .map(|st| u64::from(st.f_type as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_magic_numbers_name_their_file_systems() {
        assert_eq!(name_of(0x6969), Some("nfs"));
        assert_eq!(name_of(0xFF53_4D42), Some("cifs"));
        assert_eq!(name_of(0x0102_1997), Some("9p"));
        // ext4, tmpfs, FUSE: local (FUSE cannot be told apart).
        assert_eq!(name_of(0xEF53), None);
        assert_eq!(name_of(0x0102_1994), None);
        assert_eq!(name_of(0x6573_5546), None);
    }

    #[test]
    fn a_temp_directory_is_local() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(fs_magic(&dir.path().join("not/yet/there")).is_some());
        if std::env::var_os(FSTYPE_ENV).is_none() {
            assert_eq!(network_fs(dir.path()), None);
        }
    }
}
