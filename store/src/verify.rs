//! Verification: read every blob the index points at and check it, find orphans and
//! stale temp files, check the index itself; optionally repair.

use std::path::PathBuf;

use crate::blob::{self, BlobId, Damage, ReadFailure};
use crate::error::{Error, io_err};
use crate::layout::remove_file_if_exists;
use crate::progress::Progress;
use crate::store::{PAGE, Store};

/// A blob that failed verification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DamagedBlob {
    /// The blob's name.
    pub blob: BlobId,
    /// Its file: the blob file, or the index for a blob kept in it
    /// ([`StoreConfig::inline_max`](crate::StoreConfig::inline_max)).
    pub path: PathBuf,
    /// What is wrong.
    pub damage: Damage,
    /// How many entries point at it.
    pub entries: u64,
}

/// What [`Store::verify`] found (and, with repair, did).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Distinct blobs read and checked.
    pub checked_blobs: u64,
    /// Entries pointing at those blobs.
    pub checked_entries: u64,
    /// Entries pointing at a missing or damaged blob.
    pub damaged_entries: u64,
    /// Blobs missing or damaged.
    pub damaged: Vec<DamagedBlob>,
    /// Problems SQLite's `quick_check` found in the index, and malformed rows.
    pub index_problems: Vec<String>,
    /// Blobs no entry points at (files left by a crash between rename and index, or by
    /// a replaced index): housekeeping for gc, not damage.
    pub orphaned_blobs: u64,
    /// Temp files left by dead writers: housekeeping, not damage.
    pub stale_tmp: u64,
    /// Whether repair was asked for.
    pub repaired: bool,
    /// Entries evicted by the repair.
    pub evicted_entries: u64,
    /// Files (and orphaned blobs kept in the index) deleted by the repair (damaged
    /// blobs, orphans, stale temp files).
    pub removed_files: u64,
}

impl VerifyReport {
    /// True when no entry points at a missing or damaged blob and the index is sound.
    /// Orphans and stale temp files do not count: they hold no entry's bytes.
    pub fn is_clean(&self) -> bool {
        self.damaged.is_empty() && self.index_problems.is_empty()
    }
}

impl Store {
    /// Reads and checks every blob the index points at, counts orphans and stale temp
    /// files, and runs SQLite's `quick_check`. With `repair`, entries of damaged blobs
    /// are evicted (counted as corrupt), damaged blobs, orphans and stale temp files
    /// deleted, and malformed index rows dropped. Holds the gc lock exclusively.
    pub fn verify(&self, repair: bool, progress: &dyn Progress) -> Result<VerifyReport, Error> {
        if repair && !self.writable {
            return Err(Error::ReadOnly {
                path: self.layout.dir.clone(),
            });
        }
        let _guard = if self.writable {
            Some(self.gc_lock.exclusive()?)
        } else {
            None
        };
        self.flush()?;
        let _unmapped = self.unmapped()?;
        let mut report = VerifyReport {
            repaired: repair,
            ..VerifyReport::default()
        };
        {
            let index = self.index();
            report.index_problems = index.quick_check()?;
            let malformed = index.malformed_rows()?;
            if malformed > 0 {
                report.index_problems.push(format!(
                    "{malformed} index rows with a malformed key or blob id"
                ));
                if repair {
                    report.evicted_entries += index.delete_malformed_rows()?;
                }
            }
        }
        let blobs = self.index().totals()?.1;
        progress.start(blobs);
        let mut buf = Vec::new();
        let mut after: Option<BlobId> = None;
        let mut file_blobs = 0u64;
        loop {
            let page = self.index().blobs_after(after.as_ref(), PAGE)?;
            for row in &page {
                let (id, entries) = (&row.id, &row.entries);
                let path = match row.inline {
                    Some(_) => self.layout.index.clone(),
                    None => {
                        file_blobs += 1;
                        self.layout.blob_path(id)
                    }
                };
                report.checked_blobs += 1;
                report.checked_entries += entries;
                match blob::read_stored(row.inline.as_deref(), &path, id, Some(row.size), &mut buf)
                {
                    Ok(()) => {}
                    Err(ReadFailure::Io(e)) => return Err(io_err(&path, e)),
                    Err(ReadFailure::Damaged(damage)) => {
                        if repair {
                            report.evicted_entries += self.index().evict_blob(id)?;
                            if row.inline.is_none() && remove_file_if_exists(&path)? {
                                report.removed_files += 1;
                            }
                        }
                        report.damaged_entries += entries;
                        report.damaged.push(DamagedBlob {
                            blob: *id,
                            path,
                            damage,
                            entries: *entries,
                        });
                    }
                }
                progress.inc(1);
            }
            match page.last() {
                Some(last) if page.len() == PAGE as usize => after = Some(last.id),
                _ => break,
            }
        }
        drop(buf);
        {
            let index = self.index();
            let inline_orphans = index.inline_orphans()?;
            report.orphaned_blobs += inline_orphans;
            if repair && inline_orphans > 0 {
                report.removed_files += index.delete_inline_orphans()?;
            }
        }
        // The walk over blob files for orphans: its own progress, when there are files.
        if file_blobs > 0 {
            progress.start(file_blobs);
        }
        self.layout.walk_blobs(|path, id| {
            progress.inc(1);
            let orphan = match id {
                Some(id) => !self.index().blob_referenced(&id)?,
                None => true,
            };
            if orphan {
                report.orphaned_blobs += 1;
                if repair && remove_file_if_exists(path)? {
                    report.removed_files += 1;
                }
            }
            Ok(())
        })?;
        report.stale_tmp = self.layout.count_tmp()?;
        if repair {
            report.removed_files += self.layout.clean_tmp()?;
        }
        progress.finish();
        Ok(report)
    }
}
