//! Garbage collection: evict least-recently-used entries down to a size cap, and remove
//! blobs no entry points at and temp files of dead writers. Also `clear`, which is gc
//! of every entry. Both run in short steps (`step.rs`).

use crate::blob::BlobId;
use crate::entry::UnitState;
use crate::error::Error;
use crate::index::counter;
use crate::key::Key;
use crate::layout::{create_private_dir, remove_file_if_exists};
use crate::lock::LockGuard;
use crate::pause_point::PausePoint;
use crate::progress::Progress;
use crate::step::{BlobWalk, Budget, STEP_ITEMS};
use crate::store::{Store, Unmapped};

/// What [`Store::gc`] should do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GcOptions {
    /// Evict least-recently-used entries until the blobs take at most this many bytes
    /// on disk. `None`: evict nothing.
    pub max_size: Option<u64>,
    /// Remove blob files no entry points at, and stale temp files (default true).
    pub remove_orphans: bool,
    /// Look for orphans in every blob file (default false). Otherwise a run walks one
    /// sixteenth of the blob tree, the next slice in turn, so 16 runs check every file
    /// and a run costs what it evicts rather than what the cache holds. A run after the
    /// index was rebuilt (when every blob file may be an orphan) walks all of them
    /// anyway. [`Store::verify`] always walks all of them.
    pub full_orphan_walk: bool,
}

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions {
            max_size: None,
            remove_orphans: true,
            full_orphan_walk: false,
        }
    }
}

/// What [`Store::gc`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Entries evicted to respect the size cap.
    pub evicted_entries: u64,
    /// Blob files deleted because their last entry was evicted.
    pub removed_blobs: u64,
    /// Blob files deleted because no entry pointed at them (or not named like a blob).
    pub removed_orphans: u64,
    /// Temp files of dead writers deleted.
    pub removed_tmp: u64,
    /// Bytes of blob files deleted (evicted and orphaned).
    pub freed_bytes: u64,
    /// Bytes the indexed blobs take on disk afterwards.
    pub bytes_on_disk: u64,
    /// Steps the run took (each held the gc lock for a few milliseconds at most).
    pub steps: u64,
    /// Whether the orphan walk covered every blob file (false: one slice, or no walk).
    pub full_orphan_walk: bool,
}

/// Where a gc (or clear) run is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Sizes not read yet.
    Start,
    /// Evicting the entries of foreign backend identities (`foreign.rs`), one identity
    /// after the other in key order: all of them (prune) or until under the cap.
    Foreign,
    /// Evicting in least-recently-used order (gc) or every entry in key order (clear).
    Evict,
    /// Dropping blobs kept in the index that no entry points at.
    InlineOrphans,
    /// Walking blob files for orphans.
    Files,
    /// Removing temp files of dead writers (and, for clear, component files).
    Tmp,
    /// Nothing left to do.
    Done,
}

/// A gc in progress: [`GcRun::step`] does one bounded step of it. Made by
/// [`Store::gc_steps`]; [`Store::gc`] runs the steps back to back.
pub struct GcRun<'a> {
    store: &'a Store,
    opts: GcOptions,
    clear: bool,
    progress: &'a dyn Progress,
    phase: Phase,
    report: GcReport,
    on_disk: u64,
    lru_cursor: Option<(i64, Key)>,
    key_cursor: Option<Key>,
    inline_cursor: Option<BlobId>,
    walk: BlobWalk,
    /// Foreign identities whose entries are still to evict, the current one first.
    foreign: Vec<[u8; 32]>,
    /// Evict every entry of a foreign identity, whatever the cap.
    prune_foreign: bool,
    /// This run's marks in the full-walk-due counter whose files are deleted (a step
    /// that unindexes blob files adds one; the next write takes them off).
    marks_to_settle: u64,
    /// The full-walk-due count the orphan walk started from (taken off when it ends).
    due_at_walk: u64,
    _unmapped: Unmapped<'a>,
}

impl Drop for GcRun<'_> {
    /// A run stopped early (a background trim told to stop) still takes its settled
    /// marks off, so the next gc does not walk every file for nothing; if that write
    /// fails, the next gc walks every file, which is only slower.
    fn drop(&mut self) {
        let _ = self.settle_marks();
    }
}

impl std::fmt::Debug for GcRun<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GcRun")
            .field("phase", &self.phase)
            .field("report", &self.report)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Evicts least-recently-used entries until the blobs fit in `opts.max_size`, then
    /// (with `opts.remove_orphans`) deletes orphaned blobs and stale temp files.
    ///
    /// Runs in short steps ([`Store::gc_steps`]): each holds the gc lock exclusively for
    /// at most a few milliseconds or 256 items, so a writer waits for one step at most.
    /// Readers are never blocked: one whose blob is collected under it gets a miss.
    /// Access times batched in this process are flushed first, so the order reflects
    /// them; entries put or read while the run goes on may or may not be seen by it.
    pub fn gc(&self, opts: &GcOptions, progress: &dyn Progress) -> Result<GcReport, Error> {
        let mut run = self.gc_steps(opts, progress)?;
        while !run.step()? {
            self.pause_between_steps();
            self.pause_at(PausePoint::GcBetweenSteps);
        }
        Ok(run.into_report())
    }

    /// A gc that runs one step per [`GcRun::step`] call, for callers that interleave it
    /// with other work (a background trim, tests). Flushes this process's batched
    /// access times first.
    pub fn gc_steps<'a>(
        &'a self,
        opts: &GcOptions,
        progress: &'a dyn Progress,
    ) -> Result<GcRun<'a>, Error> {
        self.maintenance_run(opts.clone(), false, progress)
    }

    /// Removes every entry and blob (counters are kept), in steps like [`Store::gc`]:
    /// entries put while it runs may or may not survive it.
    pub fn clear(&self) -> Result<(), Error> {
        let opts = GcOptions {
            max_size: Some(0),
            remove_orphans: true,
            full_orphan_walk: true,
        };
        let mut run = self.maintenance_run(opts, true, &crate::progress::NoProgress)?;
        while !run.step()? {
            self.pause_between_steps();
        }
        Ok(())
    }

    /// Evicts every entry made by a foreign backend identity (one this machine has
    /// not used for [`StoreConfig::foreign_after`](crate::StoreConfig::foreign_after),
    /// or not since a newer identity of the same backend name appeared; see
    /// `store/src/foreign.rs`), then removes orphans, in steps like [`Store::gc`].
    pub fn prune_foreign(&self, progress: &dyn Progress) -> Result<GcReport, Error> {
        let opts = GcOptions {
            max_size: None,
            remove_orphans: true,
            full_orphan_walk: false,
        };
        let mut run = self.maintenance_run(opts, false, progress)?;
        run.prune_foreign = true;
        while !run.step()? {
            self.pause_between_steps();
        }
        Ok(run.into_report())
    }

    pub(crate) fn maintenance_run<'a>(
        &'a self,
        opts: GcOptions,
        clear: bool,
        progress: &'a dyn Progress,
    ) -> Result<GcRun<'a>, Error> {
        if !self.writable {
            return Err(Error::ReadOnly {
                path: self.layout.dir.clone(),
            });
        }
        self.flush()?;
        Ok(GcRun {
            store: self,
            opts,
            clear,
            progress,
            phase: Phase::Start,
            report: GcReport::default(),
            on_disk: 0,
            lru_cursor: None,
            key_cursor: None,
            inline_cursor: None,
            walk: BlobWalk::default(),
            foreign: Vec::new(),
            prune_foreign: false,
            marks_to_settle: 0,
            due_at_walk: 0,
            _unmapped: self.unmapped()?,
        })
    }
}

impl GcRun<'_> {
    /// Does one step: at most a few milliseconds of work or 256 items, holding the gc lock
    /// only within the step. Returns true when the run is over (further calls do
    /// nothing).
    pub fn step(&mut self) -> Result<bool, Error> {
        if self.phase == Phase::Done {
            return Ok(true);
        }
        self.report.steps += 1;
        match self.phase {
            Phase::Start => {
                // A read: no lock needed.
                let (entries, _, _, on_disk) = self.store.index().totals()?;
                self.on_disk = on_disk;
                if !self.clear && (self.prune_foreign || self.opts.max_size.is_some()) {
                    let now = self.store.config.clock.now_ms();
                    let age = crate::store::millis(self.store.config.foreign_after);
                    self.foreign = self
                        .store
                        .index()
                        .foreign_backends(now, crate::index::to_i64(age))?;
                }
                self.phase = if self.foreign.is_empty() {
                    Phase::Evict
                } else {
                    Phase::Foreign
                };
                if self.opts.max_size.is_some() {
                    self.progress.start(entries);
                }
            }
            Phase::Foreign => {
                let over = self.opts.max_size.is_some_and(|cap| self.on_disk > cap);
                if self.foreign.is_empty() || !(self.prune_foreign || over) {
                    self.key_cursor = None;
                    self.phase = Phase::Evict;
                } else {
                    self.evict_step(self.opts.max_size.unwrap_or(0))?;
                }
            }
            Phase::Evict => match self.opts.max_size {
                Some(cap) if self.on_disk > cap || self.clear => self.evict_step(cap)?,
                _ => self.phase = Phase::InlineOrphans,
            },
            Phase::InlineOrphans => {
                self.settle_marks()?;
                if !self.opts.remove_orphans {
                    self.phase = Phase::Done;
                } else if self.inline_step()? {
                    self.start_walk()?;
                    self.phase = Phase::Files;
                }
            }
            Phase::Files => {
                if self.files_step()? {
                    self.finish_walk()?;
                    self.phase = Phase::Tmp;
                }
            }
            Phase::Tmp => {
                let _guard = self.store.gc_lock.exclusive()?;
                self.report.removed_tmp = self.store.layout.clean_tmp()?;
                if self.clear {
                    let components = self.store.layout.dir.join("components");
                    match std::fs::remove_dir_all(&components) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(crate::error::write_err(&components, e)),
                    }
                    let blobs = &self.store.layout.blobs;
                    create_private_dir(blobs).map_err(|e| crate::error::write_err(blobs, e))?;
                }
                self.phase = Phase::Done;
            }
            Phase::Done => {}
        }
        if self.phase == Phase::Done {
            self.report.bytes_on_disk = self.store.index().totals()?.3;
            self.progress.finish();
            return Ok(true);
        }
        Ok(false)
    }

    /// Whether the run evicts down to a size cap (else it only removes orphans).
    pub fn is_capped(&self) -> bool {
        self.opts.max_size.is_some()
    }

    /// What the run has done so far.
    pub fn report(&self) -> &GcReport {
        &self.report
    }

    /// What the run did.
    pub fn into_report(mut self) -> GcReport {
        std::mem::take(&mut self.report)
    }

    /// One step of eviction: a page of entries, least recently used first (gc) or in key
    /// order (clear), deleted in one transaction; then the blob files no entry points
    /// at any more, still under the lock.
    fn evict_step(&mut self, cap: u64) -> Result<(), Error> {
        let store = self.store;
        let guard: LockGuard = store.gc_lock.exclusive()?;
        let foreign = self.phase == Phase::Foreign;
        let page: Vec<(Key, BlobId, u64, i64)> = if foreign {
            store.index().entries_of_backend(
                &self.foreign[0],
                self.key_cursor.as_ref(),
                STEP_ITEMS,
            )?
        } else if self.clear {
            store
                .index()
                .entries_after(self.key_cursor.as_ref(), STEP_ITEMS)?
                .into_iter()
                .map(|e| (e.key, e.blob, e.stored_size, 0))
                .collect()
        } else {
            store.index().lru_after(self.lru_cursor, STEP_ITEMS)?
        };
        if page.is_empty() && foreign {
            // This identity is done: the next one from the start.
            self.foreign.remove(0);
            self.key_cursor = None;
            return Ok(());
        }
        if page.is_empty() {
            self.phase = Phase::InlineOrphans;
            return Ok(());
        }
        let mut unreferenced: Vec<(BlobId, u64)> = Vec::new();
        let mut inline_freed: Vec<u64> = Vec::new();
        let mut evicted = 0u64;
        let mut done = 0usize;
        let mut on_disk = self.on_disk;
        let clear = self.clear;
        // Clear and a prune of foreign entries evict whatever the cap.
        let uncapped = clear || (foreign && self.prune_foreign);
        let settle = std::mem::take(&mut self.marks_to_settle);
        let lru = store.index().in_transaction(|ix| {
            // The previous step's files are deleted: its mark goes with this commit.
            ix.settle_counter(counter::FULL_ORPHAN_WALK_DUE, settle)?;
            let mut budget = Budget::new();
            for (key, blob, stored, _) in &page {
                if (!uncapped && on_disk <= cap) || budget.exhausted() {
                    break;
                }
                budget.spend();
                done += 1;
                if ix.delete_entry(key)? {
                    ix.set_unit_state(key, UnitState::Evicted)?;
                    evicted += 1;
                }
                if ix.drop_inline_if_orphan(blob)? {
                    // Kept in the index: gone with this transaction.
                    on_disk = on_disk.saturating_sub(*stored);
                    inline_freed.push(*stored);
                } else if !ix.blob_referenced(blob)? && !unreferenced.iter().any(|(b, _)| b == blob)
                {
                    on_disk = on_disk.saturating_sub(*stored);
                    unreferenced.push((*blob, *stored));
                }
            }
            if !clear {
                ix.add_counters(&[(counter::EVICTIONS, evicted as i64)])?;
            }
            if !unreferenced.is_empty() {
                // Should this step die before deleting the files, the next gc walks
                // every blob file and finds them.
                ix.add_counters(&[(counter::FULL_ORPHAN_WALK_DUE, 1)])?;
            }
            Ok(())
        });
        if lru.is_err() {
            self.marks_to_settle = settle;
        }
        lru?;
        let marked = !unreferenced.is_empty();
        self.on_disk = on_disk;
        // Rows past the budget are read again next step, from the last one done.
        if let Some((key, _, _, access)) = done.checked_sub(1).and_then(|i| page.get(i)) {
            self.key_cursor = Some(*key);
            if !foreign {
                self.lru_cursor = Some((*access, *key));
            }
        }
        store.pause_at(PausePoint::GcEvicted);
        self.report.removed_blobs += inline_freed.len() as u64;
        self.report.freed_bytes += inline_freed.iter().sum::<u64>();
        // Files go only after the index no longer points at them, under the lock.
        for (blob, stored) in unreferenced {
            if remove_file_if_exists(&store.layout.blob_path(&blob))? {
                self.report.removed_blobs += 1;
                self.report.freed_bytes += stored;
            }
        }
        drop(guard);
        self.marks_to_settle += u64::from(marked);
        self.report.evicted_entries += evicted;
        self.progress.inc(done as u64);
        if !uncapped && on_disk <= cap {
            self.phase = Phase::InlineOrphans;
        }
        Ok(())
    }

    /// One step over the blobs kept in the index: those no entry points at are dropped.
    /// Inline blobs go in the transaction that drops their last entry, so no lock is
    /// needed. Returns true when the phase is over.
    fn inline_step(&mut self) -> Result<bool, Error> {
        let mut index = self.store.index();
        let page = index.inline_page(self.inline_cursor.as_ref(), STEP_ITEMS)?;
        let Some((last, _)) = page.last() else {
            return Ok(true);
        };
        self.inline_cursor = Some(*last);
        let orphans: Vec<BlobId> = page.iter().filter(|(_, r)| !r).map(|(b, _)| *b).collect();
        if !orphans.is_empty() {
            let removed = index.in_transaction(|ix| {
                let mut n = 0;
                for blob in &orphans {
                    n += u64::from(ix.drop_inline_if_orphan(blob)?);
                }
                Ok(n)
            })?;
            self.report.removed_orphans += removed;
        }
        Ok(page.len() < STEP_ITEMS as usize)
    }

    /// Takes this run's marks off the full-walk-due counter once eviction is over (their
    /// files are deleted).
    fn settle_marks(&mut self) -> Result<(), Error> {
        if self.marks_to_settle > 0 {
            let n = std::mem::take(&mut self.marks_to_settle);
            self.store
                .index()
                .settle_counter(counter::FULL_ORPHAN_WALK_DUE, n)?;
        }
        Ok(())
    }

    /// Chooses what the orphan walk covers: every blob file when asked or when the index
    /// was rebuilt, else the slice whose turn it is.
    fn start_walk(&mut self) -> Result<(), Error> {
        let index = self.store.index();
        self.due_at_walk = index.counter(counter::FULL_ORPHAN_WALK_DUE)?;
        let full = self.opts.full_orphan_walk || self.due_at_walk > 0;
        self.walk = if full {
            BlobWalk::default()
        } else {
            BlobWalk::slice(index.counter(counter::ORPHAN_WALKS)?)
        };
        self.report.full_orphan_walk = full;
        Ok(())
    }

    /// Records a finished orphan walk: the next run walks the next slice, and a full walk
    /// that was due is done.
    fn finish_walk(&mut self) -> Result<(), Error> {
        let index = self.store.index();
        if self.report.full_orphan_walk {
            // Marks added since the walk began are another run's: they stay.
            index.settle_counter(counter::FULL_ORPHAN_WALK_DUE, self.due_at_walk)
        } else {
            index.add_counters(&[(counter::ORPHAN_WALKS, 1)])
        }
    }

    /// One step of the walk over blob files: each file no entry points at (or not named
    /// like a blob) is deleted, the check and the deletion under the lock. Returns true
    /// when the walk is over.
    fn files_step(&mut self) -> Result<bool, Error> {
        let store = self.store;
        let _guard = store.gc_lock.exclusive()?;
        let mut budget = Budget::new();
        while !budget.exhausted() {
            let Some((path, id)) = self.walk.next(&store.layout, &mut budget)? else {
                return Ok(true);
            };
            budget.spend();
            let orphan = match id {
                Some(id) => !store.index().blob_referenced(&id)?,
                None => true,
            };
            if orphan {
                store.pause_at(PausePoint::GcOrphan);
                let len = std::fs::metadata(&path).map_or(0, |m| m.len());
                if remove_file_if_exists(&path)? {
                    self.report.removed_orphans += 1;
                    self.report.freed_bytes += len;
                }
            }
        }
        Ok(false)
    }
}
