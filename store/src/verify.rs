//! Verification: read every blob the index points at and check it, find orphans and
//! stale temp files, check the index itself; optionally repair.

use std::path::PathBuf;

use crate::blob::{self, BlobId, Damage, ReadFailure};
use crate::error::{Error, io_err};
use crate::layout::remove_file_if_exists;
use crate::lock::LockGuard;
use crate::progress::Progress;
use crate::step::{BlobWalk, Budget, STEP_ITEMS};
use crate::store::{Store, Unmapped};

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
    /// Steps the run took (each held the gc lock for a few milliseconds at most).
    pub steps: u64,
}

impl VerifyReport {
    /// True when no entry points at a missing or damaged blob and the index is sound.
    /// Orphans and stale temp files do not count: they hold no entry's bytes.
    pub fn is_clean(&self) -> bool {
        self.damaged.is_empty() && self.index_problems.is_empty()
    }
}

/// Where a verify run is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// The index's own check.
    Index,
    /// Reading and checking the blobs the index points at.
    Blobs,
    /// Counting blobs kept in the index that no entry points at.
    InlineOrphans,
    /// Walking blob files for orphans.
    Files,
    /// Counting (with repair, removing) temp files of dead writers.
    Tmp,
    /// Nothing left to do.
    Done,
}

/// A verify in progress: [`VerifyRun::step`] does one bounded step of it. Made by
/// [`Store::verify_steps`]; [`Store::verify`] runs the steps back to back.
pub struct VerifyRun<'a> {
    store: &'a Store,
    repair: bool,
    progress: &'a dyn Progress,
    phase: Phase,
    report: VerifyReport,
    blob_cursor: Option<BlobId>,
    inline_cursor: Option<BlobId>,
    file_blobs: u64,
    walk: BlobWalk,
    buf: Vec<u8>,
    _unmapped: Unmapped<'a>,
}

impl std::fmt::Debug for VerifyRun<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyRun")
            .field("phase", &self.phase)
            .field("report", &self.report)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Reads and checks every blob the index points at, counts orphans and stale temp
    /// files, and runs SQLite's `quick_check`. With `repair`, entries of damaged blobs
    /// are evicted (counted as corrupt), damaged blobs, orphans and stale temp files
    /// deleted, and malformed index rows dropped.
    ///
    /// Runs in short steps ([`Store::verify_steps`]), each holding the gc lock exclusively
    /// for at most a few milliseconds or 256 blobs (one blob at least), so that nothing
    /// collects a blob between reading its entry and checking it; writers wait for one
    /// step at most.
    pub fn verify(&self, repair: bool, progress: &dyn Progress) -> Result<VerifyReport, Error> {
        let mut run = self.verify_steps(repair, progress)?;
        while !run.step()? {
            self.pause_between_steps();
        }
        Ok(run.into_report())
    }

    /// A verify that runs one step per [`VerifyRun::step`] call. Flushes this process's
    /// batched access times first.
    pub fn verify_steps<'a>(
        &'a self,
        repair: bool,
        progress: &'a dyn Progress,
    ) -> Result<VerifyRun<'a>, Error> {
        if repair && !self.writable {
            return Err(Error::ReadOnly {
                path: self.layout.dir.clone(),
            });
        }
        if self.writable {
            self.flush()?;
        }
        Ok(VerifyRun {
            store: self,
            repair,
            progress,
            phase: Phase::Index,
            report: VerifyReport {
                repaired: repair,
                ..VerifyReport::default()
            },
            blob_cursor: None,
            inline_cursor: None,
            file_blobs: 0,
            walk: BlobWalk::default(),
            buf: Vec::new(),
            _unmapped: self.unmapped()?,
        })
    }
}

impl VerifyRun<'_> {
    /// Does one step, holding the gc lock only within it. Returns true when the run is
    /// over (further calls do nothing).
    pub fn step(&mut self) -> Result<bool, Error> {
        if self.phase == Phase::Done {
            return Ok(true);
        }
        self.report.steps += 1;
        match self.phase {
            Phase::Index => {
                // Reads (and with repair one write transaction): no gc lock needed.
                let index = self.store.index();
                self.report.index_problems = index.quick_check()?;
                let malformed = index.malformed_rows()?;
                if malformed > 0 {
                    self.report.index_problems.push(format!(
                        "{malformed} index rows with a malformed key or blob id"
                    ));
                    if self.repair {
                        self.report.evicted_entries += index.delete_malformed_rows()?;
                    }
                }
                let blobs = index.totals()?.1;
                drop(index);
                self.progress.start(blobs);
                self.phase = Phase::Blobs;
            }
            Phase::Blobs => {
                if self.blobs_step()? {
                    self.phase = Phase::InlineOrphans;
                }
            }
            Phase::InlineOrphans => {
                if self.inline_step()? {
                    if self.file_blobs > 0 {
                        self.progress.start(self.file_blobs);
                    }
                    self.phase = Phase::Files;
                }
            }
            Phase::Files => {
                if self.files_step()? {
                    self.phase = Phase::Tmp;
                }
            }
            Phase::Tmp => {
                let _guard = self.lock()?;
                self.report.stale_tmp = self.store.layout.count_tmp()?;
                if self.repair {
                    self.report.removed_files += self.store.layout.clean_tmp()?;
                }
                self.phase = Phase::Done;
            }
            Phase::Done => {}
        }
        if self.phase == Phase::Done {
            self.progress.finish();
            return Ok(true);
        }
        Ok(false)
    }

    /// What the run has found so far.
    pub fn report(&self) -> &VerifyReport {
        &self.report
    }

    /// What the run found (and repaired).
    pub fn into_report(self) -> VerifyReport {
        self.report
    }

    /// The gc lock, exclusively; none on a read-only store (nobody can change it).
    fn lock(&self) -> Result<Option<LockGuard>, Error> {
        if self.store.writable {
            self.store.gc_lock.exclusive().map(Some)
        } else {
            Ok(None)
        }
    }

    /// Checks a page of the blobs the index points at. Returns true when every blob is
    /// checked.
    fn blobs_step(&mut self) -> Result<bool, Error> {
        let store = self.store;
        let _guard = self.lock()?;
        let page = store
            .index()
            .blobs_after(self.blob_cursor.as_ref(), STEP_ITEMS)?;
        let mut budget = Budget::new();
        let mut done = 0usize;
        for row in &page {
            if budget.exhausted() {
                break;
            }
            budget.spend();
            done += 1;
            self.blob_cursor = Some(row.id);
            let (id, entries) = (&row.id, &row.entries);
            let path = match row.inline {
                Some(_) => store.layout.index.clone(),
                None => {
                    self.file_blobs += 1;
                    store.layout.blob_path(id)
                }
            };
            self.report.checked_blobs += 1;
            self.report.checked_entries += entries;
            let read = blob::read_stored(
                row.inline.as_deref(),
                &path,
                id,
                Some(row.size),
                &mut self.buf,
            );
            match read {
                Ok(()) => {}
                Err(ReadFailure::Io(e)) => return Err(io_err(&path, e)),
                Err(ReadFailure::Damaged(damage)) => {
                    if self.repair {
                        self.report.evicted_entries += store.index().evict_blob(id)?;
                        if row.inline.is_none() && remove_file_if_exists(&path)? {
                            self.report.removed_files += 1;
                        }
                    }
                    self.report.damaged_entries += entries;
                    self.report.damaged.push(DamagedBlob {
                        blob: *id,
                        path,
                        damage,
                        entries: *entries,
                    });
                }
            }
            self.progress.inc(1);
        }
        if self.buf.capacity() > 8 << 20 {
            self.buf = Vec::new();
        }
        Ok(done == page.len() && page.len() < STEP_ITEMS as usize)
    }

    /// Counts (with repair, drops) a page of blobs kept in the index that no entry
    /// points at. Returns true when the phase is over.
    fn inline_step(&mut self) -> Result<bool, Error> {
        let index = self.store.index();
        let page = index.inline_page(self.inline_cursor.as_ref(), STEP_ITEMS)?;
        let Some((last, _)) = page.last() else {
            return Ok(true);
        };
        self.inline_cursor = Some(*last);
        for (blob, referenced) in &page {
            if !referenced {
                self.report.orphaned_blobs += 1;
                if self.repair && index.drop_inline_if_orphan(blob)? {
                    self.report.removed_files += 1;
                }
            }
        }
        Ok(page.len() < STEP_ITEMS as usize)
    }

    /// One step of the walk over blob files, counting (with repair, deleting) orphans.
    /// Returns true when the walk is over.
    fn files_step(&mut self) -> Result<bool, Error> {
        let store = self.store;
        let _guard = self.lock()?;
        let mut budget = Budget::new();
        while !budget.exhausted() {
            let Some((path, id)) = self.walk.next(&store.layout, &mut budget)? else {
                return Ok(true);
            };
            budget.spend();
            self.progress.inc(1);
            let orphan = match id {
                Some(id) => !store.index().blob_referenced(&id)?,
                None => true,
            };
            if orphan {
                self.report.orphaned_blobs += 1;
                if self.repair && remove_file_if_exists(&path)? {
                    self.report.removed_files += 1;
                }
            }
        }
        Ok(false)
    }
}
