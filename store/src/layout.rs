//! Where things live under the cache root, creating the directories, and refusing
//! directories that other users could write.
//!
//! ```text
//! <root>/v1/index.sqlite        the index (WAL mode: also -wal and -shm)
//! <root>/v1/blobs/xx/yy/<hex>   blobs, sharded by the first two bytes of their name
//! <root>/v1/tmp/                temp files being written (same file system as blobs/)
//! <root>/v1/gc.lock             shared by writers, exclusive for gc, verify and clear
//! <root>/v1/open.lock           exclusive while a corrupt index is being replaced
//! <root>/v1/read-counters       hits and misses of processes that wrote nothing else
//! ```

use std::fs::{self, DirBuilder};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::blob::BlobId;
use crate::error::{Error, io_err, write_err};

/// Name of the format-version directory under the root.
pub const FORMAT_DIR: &str = "v1";

/// The paths of one store.
#[derive(Clone, Debug)]
pub(crate) struct Layout {
    pub root: PathBuf,
    pub dir: PathBuf,
    pub index: PathBuf,
    pub blobs: PathBuf,
    pub tmp: PathBuf,
    pub gc_lock: PathBuf,
    /// Held shared by a writer waiting for `gc_lock` (see `lock.rs`).
    pub gc_waiters: PathBuf,
    pub open_lock: PathBuf,
    pub read_counters: PathBuf,
}

impl Layout {
    pub fn new(root: &Path) -> Layout {
        let dir = root.join(FORMAT_DIR);
        Layout {
            root: root.to_path_buf(),
            index: dir.join("index.sqlite"),
            blobs: dir.join("blobs"),
            tmp: dir.join("tmp"),
            gc_lock: dir.join("gc.lock"),
            gc_waiters: dir.join("gc.waiters"),
            open_lock: dir.join("open.lock"),
            read_counters: dir.join("read-counters"),
            dir,
        }
    }

    /// `blobs/xx/yy/<hex>` for `id`.
    pub fn blob_path(&self, id: &BlobId) -> PathBuf {
        let hex = id.to_string();
        let mut p = self.blobs.join(&hex[..2]);
        p.push(&hex[2..4]);
        p.push(hex);
        p
    }

    /// Creates the directories (mode 0700) and checks that neither the root nor the
    /// format directory can be written by another user. Returns false when the
    /// directories exist but the file system is read-only.
    pub fn prepare(&self) -> Result<bool, Error> {
        let euid = effective_uid()?;
        // Check an existing root before creating anything inside it.
        if self.root.exists() {
            check_private(&self.root, euid)?;
        }
        let mut writable = true;
        for dir in [&self.root, &self.dir, &self.blobs, &self.tmp] {
            match create_private_dir(dir) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EROFS) && dir.is_dir() => {
                    writable = false;
                }
                Err(e) => return Err(write_err(dir, e)),
            }
        }
        check_private(&self.root, euid)?;
        check_private(&self.dir, euid)?;
        Ok(writable)
    }

    /// Removes every file in `tmp/`. Only call this while holding the gc lock
    /// exclusively: writers hold it shared for as long as their temp file exists.
    pub fn clean_tmp(&self) -> Result<u64, Error> {
        let mut removed = 0;
        let entries = match fs::read_dir(&self.tmp) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(io_err(&self.tmp, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| io_err(&self.tmp, e))?;
            if remove_file_if_exists(&entry.path())? {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Counts the files in `tmp/`.
    pub fn count_tmp(&self) -> Result<u64, Error> {
        match fs::read_dir(&self.tmp) {
            Ok(entries) => Ok(entries.filter(|e| e.is_ok()).count() as u64),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(io_err(&self.tmp, e)),
        }
    }
}

/// Removes a file; a file already gone is fine. Returns whether it removed one.
pub(crate) fn remove_file_if_exists(path: &Path) -> Result<bool, Error> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) if e.kind() == io::ErrorKind::IsADirectory => {
            fs::remove_dir_all(path).map_err(|e| write_err(path, e))?;
            Ok(true)
        }
        Err(e) => Err(write_err(path, e)),
    }
}

/// Creates `dir` and any missing parents with mode 0700.
pub(crate) fn create_private_dir(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// Refuses a directory that is world-writable or owned by someone else.
fn check_private(dir: &Path, euid: u32) -> Result<(), Error> {
    let md = fs::metadata(dir).map_err(|e| io_err(dir, e))?;
    if !md.is_dir() {
        return Err(io_err(
            dir,
            io::Error::new(io::ErrorKind::NotADirectory, "not a directory"),
        ));
    }
    if md.mode() & 0o002 != 0 {
        return Err(Error::InsecureDirectory {
            path: dir.to_path_buf(),
            reason: format!("it is world-writable (mode {:o})", md.mode() & 0o7777),
        });
    }
    if md.uid() != euid {
        return Err(Error::InsecureDirectory {
            path: dir.to_path_buf(),
            reason: format!(
                "it is owned by uid {} but this process runs as uid {euid}",
                md.uid()
            ),
        });
    }
    Ok(())
}

/// The process's effective user id, read from `/proc/self/status` (no `unsafe` needed);
/// where /proc is not mounted, the owner of a fresh anonymous temp file.
fn effective_uid() -> Result<u32, Error> {
    let euid = fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("Uid:"))?;
            line.split_whitespace().nth(2)?.parse().ok()
        })
        .or_else(|| Some(tempfile::tempfile().ok()?.metadata().ok()?.uid()));
    euid.ok_or_else(|| {
        io_err(
            Path::new("/proc/self/status"),
            io::Error::other("cannot determine the effective user id"),
        )
    })
}
