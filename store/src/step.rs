//! Maintenance in short steps.
//!
//! gc, verify and clear never hold the gc lock for their whole run: each step takes it
//! exclusively, does at most [`STEP_ITEMS`] items or [`STEP_TIME`] of work (whichever
//! comes first, and always at least one item), and lets go. A writer that wants the lock
//! meanwhile waits for one step at most; between steps it gets the lock (the run
//! sleeps [`STEP_GAP`] first, longer than a waiter's poll). Every decision that needs
//! the lock (is this blob referenced? delete it) is made and acted on within one step,
//! so what the lock protects is the same as when a run held it throughout: a blob about
//! to be indexed is never collected, and a reader whose blob is collected under it gets
//! a miss.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::blob::BlobId;
use crate::error::{Error, io_err};
use crate::layout::Layout;

/// Most items (entries, blobs, files, directories) a step handles.
pub(crate) const STEP_ITEMS: u32 = 256;
/// Most time a step spends before it lets go of the lock.
pub(crate) const STEP_TIME: Duration = Duration::from_millis(4);
/// Pause between two steps of a run when no writer announced that it waits for the gc
/// lock (`gc.waiters`, see `lock.rs`): twice the longest pause of a waiter's poll
/// (`lock::poll_pause`), so that a waiter that could not announce itself still tries
/// within it. Short, since every step pays it: with steps of up to [`STEP_TIME`],
/// about 7 % of a run.
pub(crate) const STEP_GAP: Duration = Duration::from_micros(300);
/// Pause between two steps when a writer waits: long enough for it to be scheduled and
/// take the lock on a busy machine.
pub(crate) const STEP_GAP_WAITED: Duration = Duration::from_millis(1);

/// What one step may still spend.
pub(crate) struct Budget {
    started: Instant,
    items: u32,
}

impl Budget {
    pub fn new() -> Budget {
        Budget {
            started: Instant::now(),
            items: 0,
        }
    }

    /// Counts one item done.
    pub fn spend(&mut self) {
        self.items += 1;
    }

    /// Whether the step is over: [`STEP_ITEMS`] items done or [`STEP_TIME`] spent, once
    /// at least one item is done.
    pub fn exhausted(&self) -> bool {
        self.items > 0 && (self.items >= STEP_ITEMS || self.started.elapsed() >= STEP_TIME)
    }
}

/// Slices of the blob tree: a walk of one slice reads the shard directories whose name
/// starts with one hex digit (16 of the 256 first-level directories).
pub(crate) const SLICES: u64 = 16;

/// A walk over every file under `blobs/` (or one slice of them) that can stop after any
/// file and resume in a later step. Directories are read when reached, one at a time,
/// so memory stays flat; a file added behind the walk's position is not seen (it was
/// added after the run began, and the next run sees it).
#[derive(Default)]
pub(crate) struct BlobWalk {
    /// Walk only the first-level directories in this slice (below [`SLICES`]); every
    /// first-level name that is not a shard's (two hex digits) is in every slice.
    slice: Option<u8>,
    level1: Option<Vec<Listed>>,
    i: usize,
    level2: Vec<Listed>,
    j: usize,
    files: Vec<Listed>,
    k: usize,
}

impl BlobWalk {
    /// A walk over the first-level shard directories of slice `slice` (taken modulo
    /// [`SLICES`]) and whatever else lies in `blobs/`.
    pub fn slice(slice: u64) -> BlobWalk {
        BlobWalk {
            slice: Some((slice % SLICES) as u8),
            ..BlobWalk::default()
        }
    }

    /// Whether the first-level entry `path` is walked.
    fn in_slice(&self, path: &Path) -> bool {
        let Some(slice) = self.slice else {
            return true;
        };
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        match shard_slice(name) {
            Some(s) => s == slice,
            None => true,
        }
    }

    /// The next file and its id when its name is a well-formed blob name in the right
    /// shard (None for stray files); `Ok(None)` at the end. Reading a directory counts as
    /// an item of `budget`.
    pub fn next(
        &mut self,
        layout: &Layout,
        budget: &mut Budget,
    ) -> Result<Option<(PathBuf, Option<BlobId>)>, Error> {
        loop {
            if let Some((path, _)) = self.files.get(self.k) {
                self.k += 1;
                let id = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.parse::<BlobId>().ok())
                    .filter(|id| layout.blob_path(id) == *path);
                return Ok(Some((path.clone(), id)));
            }
            if let Some((dir, is_dir)) = self.level2.get(self.j).cloned() {
                self.j += 1;
                if !is_dir {
                    return Ok(Some((dir, None)));
                }
                budget.spend();
                self.files = read_dir(&dir)?;
                self.k = 0;
                continue;
            }
            let level1 = match &self.level1 {
                Some(level1) => level1,
                None => {
                    budget.spend();
                    self.level1 = Some(read_dir_sorted(&layout.blobs)?);
                    continue;
                }
            };
            let Some((dir, is_dir)) = level1.get(self.i).cloned() else {
                return Ok(None);
            };
            self.i += 1;
            if !self.in_slice(&dir) {
                continue;
            }
            if !is_dir {
                return Ok(Some((dir, None)));
            }
            budget.spend();
            self.level2 = read_dir_sorted(&dir)?;
            self.j = 0;
        }
    }
}

/// The slice of a first-level shard directory named `name` (two lowercase hex digits):
/// its first digit. None for any other name.
fn shard_slice(name: &str) -> Option<u8> {
    let hex = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    match name.as_bytes() {
        &[a, b] => hex(b).and(hex(a)),
        _ => None,
    }
}

/// A path found in a directory, and whether it is a directory itself (a symbolic link
/// is not: the walk never follows one).
type Listed = (PathBuf, bool);

/// The entries of `dir`; none when it is gone (a concurrent clear). Each entry's type
/// comes from the listing itself: a walk over a large cache reads thousands of shard
/// directories, and a `stat` of each would cost as much as reading it.
fn read_dir(dir: &Path) -> Result<Vec<Listed>, Error> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(dir, e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| io_err(dir, e))?;
        let is_dir = match entry.file_type() {
            Ok(kind) => kind.is_dir(),
            Err(_) => entry.path().is_dir(),
        };
        out.push((entry.path(), is_dir));
    }
    Ok(out)
}

/// [`read_dir`], sorted (a few hundred entries at most for shard directories).
fn read_dir_sorted(dir: &Path) -> Result<Vec<Listed>, Error> {
    let mut out = read_dir(dir)?;
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_waiter_polls_at_least_twice_within_the_gap_between_steps() {
        for tries in [0, 99, 100, u32::MAX] {
            assert!(
                STEP_GAP >= 2 * crate::lock::poll_pause(tries),
                "try {tries}"
            );
        }
    }

    #[test]
    fn shard_names_fall_in_the_slice_of_their_first_digit() {
        assert_eq!(shard_slice("00"), Some(0));
        assert_eq!(shard_slice("a7"), Some(10));
        assert_eq!(shard_slice("ff"), Some(15));
        for name in ["", "a", "abc", "A0", "g0", "0g", "zz"] {
            assert_eq!(shard_slice(name), None, "{name:?}");
        }
    }

    #[test]
    fn a_slice_walks_its_shards_and_every_stray_name() {
        let walk = BlobWalk::slice(16 + 10);
        assert!(walk.in_slice(Path::new("/c/blobs/a0")));
        assert!(walk.in_slice(Path::new("/c/blobs/af")));
        assert!(!walk.in_slice(Path::new("/c/blobs/b0")));
        assert!(!walk.in_slice(Path::new("/c/blobs/0a")));
        assert!(walk.in_slice(Path::new("/c/blobs/stray")));
        assert!(BlobWalk::default().in_slice(Path::new("/c/blobs/b0")));
    }
}
