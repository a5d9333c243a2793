//! The `backends` table: the backend identities this machine produces, and when each
//! was last used; the entries of the others ("foreign") are evicted first.

use rusqlite::{OptionalExtension, params};

use super::{Index, to_u64};
use crate::blob::BlobId;
use crate::error::Error;
use crate::key::Key;

impl Index {
    /// Records that the identities `(identity, name)` were used at `now_ms` (one
    /// transaction; the caller bounds the wait).
    pub fn record_backends(
        &mut self,
        used: &[([u8; 32], String)],
        now_ms: i64,
    ) -> Result<(), Error> {
        self.write(|tx| {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO backends (identity, name, first_seen_ms, last_seen_ms)
                 VALUES (?1, ?2, ?3, ?3)
                 ON CONFLICT (identity) DO UPDATE
                 SET last_seen_ms = max(last_seen_ms, excluded.last_seen_ms)",
            )?;
            for (identity, name) in used {
                stmt.execute(params![identity.as_slice(), name, now_ms])?;
            }
            Ok(())
        })
    }

    /// Those of `ids` whose last use is recorded at or after `since_ms`.
    pub fn backends_seen_since(
        &self,
        ids: &[[u8; 32]],
        since_ms: i64,
    ) -> Result<Vec<[u8; 32]>, Error> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT last_seen_ms FROM backends WHERE identity = ?1")
            .map_err(|e| self.err(e))?;
        let mut recent = Vec::new();
        for id in ids {
            let seen: Option<i64> = stmt
                .query_row([id.as_slice()], |r| r.get(0))
                .optional()
                .map_err(|e| self.err(e))?;
            if seen.is_some_and(|ms| ms >= since_ms) {
                recent.push(*id);
            }
        }
        Ok(recent)
    }

    /// The foreign identities at `now_ms`: recorded identities not used for `max_age_ms`,
    /// and those not used since a newer identity of the same backend name was first
    /// seen. Entries of identities never recorded (made elsewhere, or before the table
    /// existed) are not foreign until a put here records theirs.
    pub fn foreign_backends(&self, now_ms: i64, max_age_ms: i64) -> Result<Vec<[u8; 32]>, Error> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT identity FROM backends AS b
                 WHERE b.last_seen_ms < ?1 - ?2
                    OR EXISTS (SELECT 1 FROM backends AS newer
                               WHERE newer.name = b.name
                                 AND newer.identity <> b.identity
                                 AND newer.first_seen_ms > b.last_seen_ms)",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![now_ms, max_age_ms], |r| r.get::<_, Vec<u8>>(0))
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            if let Ok(id) = <[u8; 32]>::try_from(row.map_err(|e| self.err(e))?) {
                out.push(id);
            }
        }
        Ok(out)
    }

    /// Up to `limit` entries made by `identity`, in key order after `after`:
    /// `(key, blob, stored_size, 0)`, the shape of [`Index::lru_after`]'s rows.
    pub fn entries_of_backend(
        &self,
        identity: &[u8; 32],
        after: Option<&Key>,
        limit: u32,
    ) -> Result<Vec<(Key, BlobId, u64, i64)>, Error> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT key, blob, stored_size FROM entries
                 WHERE backend = ?1 AND key > ?2 ORDER BY key LIMIT ?3",
            )
            .map_err(|e| self.err(e))?;
        let after = after.map_or(Vec::new(), |k| k.as_bytes().to_vec());
        let rows = stmt
            .query_map(params![identity.as_slice(), after, limit], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (key, blob, stored) = row.map_err(|e| self.err(e))?;
            if let (Ok(key), Ok(blob)) = (<[u8; 32]>::try_from(key), <[u8; 32]>::try_from(blob)) {
                out.push((
                    Key::from_bytes(key),
                    BlobId::from_bytes(blob),
                    to_u64(stored),
                    0,
                ));
            }
        }
        Ok(out)
    }
}
