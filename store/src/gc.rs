//! Garbage collection: evict least-recently-used entries down to a size cap, and remove
//! blobs no entry points at and temp files of dead writers.

use crate::blob::BlobId;
use crate::entry::UnitState;
use crate::error::Error;
use crate::index::counter;
use crate::layout::remove_file_if_exists;
use crate::progress::Progress;
use crate::store::{PAGE, Store};

/// What [`Store::gc`] should do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GcOptions {
    /// Evict least-recently-used entries until the blobs take at most this many bytes
    /// on disk. `None`: evict nothing.
    pub max_size: Option<u64>,
    /// Remove blob files no entry points at, and stale temp files (default true).
    pub remove_orphans: bool,
}

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions {
            max_size: None,
            remove_orphans: true,
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
}

impl Store {
    /// Evicts least-recently-used entries until the blobs fit in `opts.max_size`, then
    /// (with `opts.remove_orphans`) deletes orphaned blobs and stale temp files.
    ///
    /// Holds the gc lock exclusively, so it waits for writers between writing a blob
    /// and indexing it, and they wait for it. Readers are not blocked: one whose blob
    /// is collected under it gets a miss. Access times batched in this process are
    /// flushed first, so the order reflects them.
    pub fn gc(&self, opts: &GcOptions, progress: &dyn Progress) -> Result<GcReport, Error> {
        if !self.writable {
            return Err(Error::ReadOnly {
                path: self.layout.dir.clone(),
            });
        }
        let _guard = self.gc_lock.exclusive()?;
        self.flush()?;
        let _unmapped = self.unmapped()?;
        let mut report = GcReport::default();
        let (entries, blobs, _, mut on_disk) = self.index().totals()?;
        if let Some(cap) = opts.max_size {
            progress.start(entries);
            let mut after = None;
            while on_disk > cap {
                let page = self.index().lru_after(after, PAGE)?;
                let Some(last) = page.last() else { break };
                after = Some((last.3, last.0));
                let mut unreferenced: Vec<(BlobId, u64)> = Vec::new();
                let mut inline_freed: Vec<u64> = Vec::new();
                let mut evicted = 0u64;
                self.index().in_transaction(|ix| {
                    for (key, blob, stored, _) in &page {
                        if on_disk <= cap {
                            break;
                        }
                        if ix.delete_entry(key)? {
                            ix.set_unit_state(key, UnitState::Evicted)?;
                            evicted += 1;
                        }
                        if ix.drop_inline_if_orphan(blob)? {
                            // Kept in the index: gone with this transaction.
                            on_disk = on_disk.saturating_sub(*stored);
                            inline_freed.push(*stored);
                        } else if !ix.blob_referenced(blob)?
                            && !unreferenced.iter().any(|(b, _)| b == blob)
                        {
                            on_disk = on_disk.saturating_sub(*stored);
                            unreferenced.push((*blob, *stored));
                        }
                    }
                    ix.add_counters(&[(counter::EVICTIONS, evicted as i64)])
                })?;
                report.removed_blobs += inline_freed.len() as u64;
                report.freed_bytes += inline_freed.iter().sum::<u64>();
                // Files go only after the index no longer points at them.
                for (blob, stored) in unreferenced {
                    if remove_file_if_exists(&self.layout.blob_path(&blob))? {
                        report.removed_blobs += 1;
                        report.freed_bytes += stored;
                    }
                }
                report.evicted_entries += evicted;
                progress.inc(page.len() as u64);
            }
        }
        if opts.remove_orphans {
            report.removed_orphans += self.index().delete_inline_orphans()?;
            let file_blobs = blobs.saturating_sub(self.index().inline_count()?);
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
                    let len = std::fs::metadata(path).map_or(0, |m| m.len());
                    if remove_file_if_exists(path)? {
                        report.removed_orphans += 1;
                        report.freed_bytes += len;
                    }
                }
                Ok(())
            })?;
            report.removed_tmp = self.layout.clean_tmp()?;
        }
        report.bytes_on_disk = self.index().totals()?.3;
        progress.finish();
        Ok(report)
    }
}
