//! Queries on entries and the blobs they point at.

use rusqlite::{OptionalExtension, params};

use super::{Index, NewEntry, bump, counter, set_unit_state, to_i64, to_u64};
use crate::blob::BlobId;
use crate::entry::{EntryInfo, UnitState};
use crate::error::{Error, sql_err};
use crate::key::{Key, KeyComponents};

/// What the index records for a key that a read needs.
#[derive(Clone, Debug)]
pub(crate) struct Found {
    pub blob: BlobId,
    /// Uncompressed length.
    pub size: u64,
    /// When the entry was last recorded as used (ms since the epoch).
    pub last_access_ms: i64,
    /// The stored blob (header + zstd frame) when it is kept in the index; `None` when
    /// it is a file.
    pub inline: Option<Vec<u8>>,
}

/// The blob, uncompressed length, last access and inline bytes of `key`, through
/// `conn` (a connection or a transaction on it).
///
/// The inline bytes come from a correlated subquery, not a `LEFT JOIN`: SQLite
/// re-prepared the join form at every step (the bound key takes part in its planning),
/// which cost ~5 µs a lookup here.
pub(super) fn lookup_in(conn: &rusqlite::Connection, key: &Key) -> rusqlite::Result<Option<Found>> {
    let row = conn
        .prepare_cached(
            "SELECT blob, size, last_access_ms,
                    (SELECT data FROM inline_blobs i WHERE i.blob = entries.blob)
             FROM entries WHERE key = ?1",
        )?
        .query_row([key.as_bytes().as_slice()], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, Option<Vec<u8>>>(3)?,
            ))
        })
        .optional()?;
    Ok(row.and_then(|(blob, size, last_access_ms, inline)| {
        let blob: [u8; 32] = blob.try_into().ok()?;
        Some(Found {
            blob: BlobId::from_bytes(blob),
            size: u64::try_from(size).ok()?,
            last_access_ms,
            inline,
        })
    }))
}

impl Index {
    /// What is recorded for `key`.
    pub fn lookup(&self, key: &Key) -> Result<Option<Found>, Error> {
        lookup_in(&self.conn, key).map_err(|e| self.err(e))
    }

    /// [`Index::lookup`] of many keys in one read transaction: the database's shared lock
    /// is taken once for the batch rather than once per key.
    pub fn lookup_many(&mut self, keys: &[Key]) -> Result<Vec<Option<Found>>, Error> {
        let path = self.path.clone();
        let err = |e| sql_err(&path, e);
        let tx = self.conn.transaction().map_err(err)?;
        let found = keys
            .iter()
            .map(|key| lookup_in(&tx, key))
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(found)
    }

    /// Records `key → blob` (replacing any previous entry for the key) and, when given,
    /// the unit's components; one IMMEDIATE transaction.
    pub fn insert(&mut self, row: &NewEntry<'_>) -> Result<(), Error> {
        self.insert_many(std::slice::from_ref(row))
    }

    /// [`Index::insert`] of many rows in one IMMEDIATE transaction, in the order given
    /// (a key given twice keeps its last row). The puts counter grows by the number of
    /// rows.
    pub fn insert_many(&mut self, rows: &[NewEntry<'_>]) -> Result<(), Error> {
        self.write(|tx| {
            let mut entry = tx.prepare_cached(
                "INSERT OR REPLACE INTO entries
                 (key, blob, size, stored_size, name, created_ms, last_access_ms, backend)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7)",
            )?;
            let mut seen = tx.prepare_cached(
                "UPDATE backends SET last_seen_ms = max(last_seen_ms, ?2) WHERE identity = ?1",
            )?;
            let mut previous = tx.prepare_cached("SELECT blob FROM entries WHERE key = ?1")?;
            // Blobs that replaced entries pointed at: dropped at the end if nothing else
            // does, once every row of the batch is in.
            let mut replaced: Vec<Vec<u8>> = Vec::new();
            for row in rows {
                let old: Option<Vec<u8>> = previous
                    .query_row([row.key.as_bytes().as_slice()], |r| r.get(0))
                    .optional()?;
                entry.execute(params![
                    row.key.as_bytes().as_slice(),
                    row.blob.as_bytes().as_slice(),
                    to_i64(row.size),
                    to_i64(row.stored_size),
                    row.name,
                    row.now_ms,
                    row.components.map(|c| c.backend_identity().to_vec()),
                ])?;
                if let Some(c) = row.components {
                    seen.execute(params![c.backend_identity().as_slice(), row.now_ms])?;
                }
                if let Some(old) = old.filter(|old| old.as_slice() != row.blob.as_bytes()) {
                    replaced.push(old);
                }
                if let Some(c) = row.components {
                    insert_unit(tx, row.key, c, row.now_ms)?;
                }
            }
            // Each inline blob once, however many rows share it.
            let mut inline = tx.prepare_cached(
                "INSERT OR REPLACE INTO inline_blobs (blob, data) VALUES (?1, ?2)",
            )?;
            let mut written: std::collections::HashSet<&BlobId> = std::collections::HashSet::new();
            for row in rows {
                if let Some(data) = row.inline
                    && written.insert(row.blob)
                {
                    inline.execute(params![row.blob.as_bytes().as_slice(), data])?;
                }
            }
            replaced.sort_unstable();
            replaced.dedup();
            for old in &replaced {
                drop_inline_if_orphan(tx, old)?;
            }
            bump(tx, counter::PUTS, to_i64(rows.len() as u64))
        })
    }

    /// Deletes the entry `key` if it still points at `blob` (a concurrent writer may
    /// have replaced it), marks its unit `state` and bumps `counter_name`. Returns
    /// whether an entry was deleted.
    pub fn evict(
        &mut self,
        key: &Key,
        blob: Option<&BlobId>,
        state: UnitState,
        counter_name: Option<&str>,
    ) -> Result<bool, Error> {
        self.write(|tx| {
            let gone: Option<Vec<u8>> = match blob {
                Some(blob) => tx
                    .prepare_cached(
                        "DELETE FROM entries WHERE key = ?1 AND blob = ?2 RETURNING blob",
                    )?
                    .query_row(
                        params![key.as_bytes().as_slice(), blob.as_bytes().as_slice()],
                        |r| r.get(0),
                    )
                    .optional()?,
                None => tx
                    .prepare_cached("DELETE FROM entries WHERE key = ?1 RETURNING blob")?
                    .query_row([key.as_bytes().as_slice()], |r| r.get(0))
                    .optional()?,
            };
            let n = usize::from(gone.is_some());
            if let Some(gone) = &gone {
                drop_inline_if_orphan(tx, gone)?;
            }
            if n > 0 {
                set_unit_state(tx, key, state)?;
                if let Some(name) = counter_name {
                    bump(tx, name, 1)?;
                }
            }
            Ok(n > 0)
        })
    }

    /// Deletes every entry that points at `blob` (a damaged blob), marking their units
    /// corrupt and counting one corrupt blob. Returns the number of entries deleted.
    pub fn evict_blob(&mut self, blob: &BlobId) -> Result<u64, Error> {
        self.write(|tx| {
            tx.execute(
                "UPDATE units SET state = ?2 WHERE key IN (SELECT key FROM entries WHERE blob = ?1)",
                params![blob.as_bytes().as_slice(), UnitState::Corrupt.code()],
            )?;
            let n = tx.execute(
                "DELETE FROM entries WHERE blob = ?1",
                [blob.as_bytes().as_slice()],
            )?;
            tx.execute(
                "DELETE FROM inline_blobs WHERE blob = ?1",
                [blob.as_bytes().as_slice()],
            )?;
            bump(tx, counter::CORRUPT, 1)?;
            Ok(n as u64)
        })
    }

    /// Whether any entry points at `blob`.
    pub fn blob_referenced(&self, blob: &BlobId) -> Result<bool, Error> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT 1 FROM entries WHERE blob = ?1 LIMIT 1")
            .map_err(|e| self.err(e))?;
        stmt.exists([blob.as_bytes().as_slice()])
            .map_err(|e| self.err(e))
    }

    /// (entries, blobs, bytes uncompressed, bytes on disk); blobs counted once however
    /// many entries share them.
    pub fn totals(&self) -> Result<(u64, u64, u64, u64), Error> {
        let entries: i64 = self
            .conn
            .prepare_cached("SELECT COUNT(*) FROM entries")
            .and_then(|mut s| s.query_row([], |r| r.get(0)))
            .map_err(|e| self.err(e))?;
        let (blobs, raw, disk): (i64, i64, i64) = self
            .conn
            .prepare_cached(
                "SELECT COUNT(*), COALESCE(SUM(size), 0), COALESCE(SUM(stored_size), 0)
                 FROM (SELECT MAX(size) AS size, MAX(stored_size) AS stored_size
                       FROM entries GROUP BY blob)",
            )
            .and_then(|mut s| s.query_row([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))))
            .map_err(|e| self.err(e))?;
        Ok((to_u64(entries), to_u64(blobs), to_u64(raw), to_u64(disk)))
    }

    /// Up to `limit` entries with keys greater than `after`, in key order.
    pub fn entries_after(&self, after: Option<&Key>, limit: u32) -> Result<Vec<EntryInfo>, Error> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT key, blob, size, stored_size, name, created_ms, last_access_ms
                 FROM entries WHERE key > ?1 ORDER BY key LIMIT ?2",
            )
            .map_err(|e| self.err(e))?;
        let after = after.map_or(&[][..], |k| k.as_bytes().as_slice());
        let rows = stmt
            .query_map(params![after, limit], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, Option<String>>(4)?,
                    r.get::<_, i64>(5)?,
                    r.get::<_, i64>(6)?,
                ))
            })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (key, blob, size, stored, name, created, access) = row.map_err(|e| self.err(e))?;
            let (Ok(key), Ok(blob)) = (<[u8; 32]>::try_from(key), <[u8; 32]>::try_from(blob))
            else {
                continue;
            };
            out.push(EntryInfo {
                key: Key::from_bytes(key),
                blob: BlobId::from_bytes(blob),
                size: to_u64(size),
                stored_size: to_u64(stored),
                name,
                created: to_u64(created),
                last_access: to_u64(access),
            });
        }
        Ok(out)
    }

    /// Up to `limit` entries in least-recently-used order, after the cursor
    /// `(last_access_ms, key)`: `(key, blob, stored_size, last_access_ms)`.
    pub fn lru_after(
        &self,
        after: Option<(i64, Key)>,
        limit: u32,
    ) -> Result<Vec<(Key, BlobId, u64, i64)>, Error> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT key, blob, stored_size, last_access_ms FROM entries
                 WHERE (last_access_ms, key) > (?1, ?2)
                 ORDER BY last_access_ms, key LIMIT ?3",
            )
            .map_err(|e| self.err(e))?;
        let (ms, key) = after.map_or((i64::MIN, Vec::new()), |(ms, k)| {
            (ms, k.as_bytes().to_vec())
        });
        let rows = stmt
            .query_map(params![ms, key, limit], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (key, blob, stored, access) = row.map_err(|e| self.err(e))?;
            if let (Ok(key), Ok(blob)) = (<[u8; 32]>::try_from(key), <[u8; 32]>::try_from(blob)) {
                out.push((
                    Key::from_bytes(key),
                    BlobId::from_bytes(blob),
                    to_u64(stored),
                    access,
                ));
            }
        }
        Ok(out)
    }

    /// Up to `limit` distinct blobs greater than `after` with their recorded
    /// uncompressed length and the number of entries pointing at them.
    pub fn blobs_after(&self, after: Option<&BlobId>, limit: u32) -> Result<Vec<BlobRow>, Error> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT e.blob, MAX(e.size), COUNT(*),
                        (SELECT data FROM inline_blobs i WHERE i.blob = e.blob)
                 FROM entries e WHERE e.blob > ?1
                 GROUP BY e.blob ORDER BY e.blob LIMIT ?2",
            )
            .map_err(|e| self.err(e))?;
        let after = after.map_or(&[][..], |b| b.as_bytes().as_slice());
        let rows = stmt
            .query_map(params![after, limit], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, Option<Vec<u8>>>(3)?,
                ))
            })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (blob, size, n, inline) = row.map_err(|e| self.err(e))?;
            if let Ok(blob) = <[u8; 32]>::try_from(blob) {
                out.push(BlobRow {
                    id: BlobId::from_bytes(blob),
                    size: to_u64(size),
                    entries: to_u64(n),
                    inline,
                });
            }
        }
        Ok(out)
    }

    /// Deletes the inline blob `blob` if no entry points at it; returns whether it did.
    pub fn drop_inline_if_orphan(&self, blob: &BlobId) -> Result<bool, Error> {
        drop_inline_if_orphan(&self.conn, blob.as_bytes()).map_err(|e| self.err(e))
    }

    /// Up to `limit` blobs kept in the index with ids greater than `after`, in id order,
    /// with whether any entry points at each.
    pub fn inline_page(
        &self,
        after: Option<&BlobId>,
        limit: u32,
    ) -> Result<Vec<(BlobId, bool)>, Error> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT blob, EXISTS (SELECT 1 FROM entries e WHERE e.blob = i.blob)
                 FROM inline_blobs i WHERE blob > ?1 ORDER BY blob LIMIT ?2",
            )
            .map_err(|e| self.err(e))?;
        let after = after.map_or(&[][..], |b| b.as_bytes().as_slice());
        let rows = stmt
            .query_map(params![after, limit], |r| {
                Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, bool>(1)?))
            })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (blob, referenced) = row.map_err(|e| self.err(e))?;
            // A malformed id sorts like any other; it is skipped (verify reports it).
            if let Ok(blob) = <[u8; 32]>::try_from(blob) {
                out.push((BlobId::from_bytes(blob), referenced));
            }
        }
        Ok(out)
    }

    /// Entries pointing at a blob whose id is not 32 bytes (only a damaged index has
    /// them): removed by `verify --repair`.
    pub fn malformed_rows(&self) -> Result<u64, Error> {
        self.conn
            .query_row(
                "SELECT COUNT(*) FROM entries WHERE length(blob) != 32 OR length(key) != 32",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(to_u64)
            .map_err(|e| self.err(e))
    }

    /// Deletes the rows counted by [`Index::malformed_rows`].
    pub fn delete_malformed_rows(&self) -> Result<u64, Error> {
        self.conn
            .execute(
                "DELETE FROM entries WHERE length(blob) != 32 OR length(key) != 32",
                [],
            )
            .map(|n| n as u64)
            .map_err(|e| self.err(e))
    }

    /// Deletes one entry unconditionally (used by gc, which holds the gc lock).
    pub fn delete_entry(&self, key: &Key) -> Result<bool, Error> {
        self.conn
            .prepare_cached("DELETE FROM entries WHERE key = ?1")
            .and_then(|mut s| s.execute([key.as_bytes().as_slice()]))
            .map(|n| n > 0)
            .map_err(|e| self.err(e))
    }
}

/// Records `key` as the last entry of the unit `components` names.
fn insert_unit(
    conn: &rusqlite::Connection,
    key: &Key,
    c: &KeyComponents,
    now_ms: i64,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO units
         (namespace, name, key, unit, backend, flags, target, deps, state, updated_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0, ?9)",
    )?
    .execute(params![
        c.namespace,
        c.name,
        key.as_bytes().as_slice(),
        c.unit.as_slice(),
        c.backend.as_slice(),
        c.flags.as_slice(),
        c.target.as_slice(),
        c.deps.as_slice(),
        now_ms,
    ])?;
    Ok(())
}

/// A blob the index points at, for verify: its id, uncompressed length, how many entries
/// share it, and its stored bytes when it is kept in the index.
pub(crate) struct BlobRow {
    pub id: BlobId,
    pub size: u64,
    pub entries: u64,
    pub inline: Option<Vec<u8>>,
}

/// Deletes the inline blob `blob` if no entry points at it.
fn drop_inline_if_orphan(conn: &rusqlite::Connection, blob: &[u8]) -> rusqlite::Result<bool> {
    conn.prepare_cached(
        "DELETE FROM inline_blobs WHERE blob = ?1
         AND NOT EXISTS (SELECT 1 FROM entries WHERE blob = ?1)",
    )?
    .execute([blob])
    .map(|n| n > 0)
}
