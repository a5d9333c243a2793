//! Bookkeeping: batched access times, counters, unit records, integrity check, and
//! explicit transactions.

use rusqlite::{OptionalExtension, params};

use super::{Index, bump, set_unit_state, to_i64, to_u64};
use crate::entry::{UnitRecord, UnitState};
use crate::error::{Error, sql_err};
use crate::key::{Key, KeyComponents};

impl Index {
    /// Applies batched last-access times and counter increments in one transaction.
    pub fn flush(
        &mut self,
        accesses: &mut dyn Iterator<Item = (Key, i64)>,
        counters: &[(&str, i64)],
        resolution_ms: i64,
    ) -> Result<(), Error> {
        self.write(|tx| {
            let mut stmt = tx.prepare_cached(
                "UPDATE entries SET last_access_ms = ?2
                 WHERE key = ?1 AND last_access_ms < ?2 - ?3",
            )?;
            for (key, ms) in accesses {
                stmt.execute(params![key.as_bytes().as_slice(), ms, resolution_ms])?;
            }
            for (name, n) in counters {
                if *n != 0 {
                    bump(tx, name, *n)?;
                }
            }
            Ok(())
        })
    }

    /// Claims a periodic job: in one IMMEDIATE transaction, if the time recorded under
    /// `name` is at least `interval_ms` before `now_ms` (or none is recorded), records
    /// `now_ms` and returns true; otherwise changes nothing and returns false. Of
    /// processes claiming at once, one wins.
    pub fn claim_periodic(
        &mut self,
        name: &str,
        now_ms: i64,
        interval_ms: i64,
    ) -> Result<bool, Error> {
        self.write(|tx| {
            let last: Option<i64> = tx
                .prepare_cached("SELECT value FROM counters WHERE name = ?1")?
                .query_row([name], |r| r.get(0))
                .optional()?;
            if last.is_some_and(|last| now_ms.saturating_sub(last) < interval_ms && last <= now_ms)
            {
                return Ok(false);
            }
            tx.prepare_cached(
                "INSERT INTO counters (name, value) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            )?
            .execute(params![name, now_ms])?;
            Ok(true)
        })
    }

    /// Adds to persisted counters in one transaction.
    pub fn add_counters(&self, counters: &[(&str, i64)]) -> Result<(), Error> {
        for (name, n) in counters {
            bump(&self.conn, name, *n).map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    /// Takes `n` off a persisted counter, stopping at 0.
    pub fn settle_counter(&self, name: &str, n: u64) -> Result<(), Error> {
        self.conn
            .prepare_cached("UPDATE counters SET value = MAX(0, value - ?2) WHERE name = ?1")
            .and_then(|mut s| s.execute(params![name, to_i64(n)]))
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The persisted value of a counter (0 when never counted).
    pub fn counter(&self, name: &str) -> Result<u64, Error> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT value FROM counters WHERE name = ?1")
            .map_err(|e| self.err(e))?;
        let v: Option<i64> = stmt
            .query_row([name], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(e))?;
        Ok(v.map_or(0, to_u64))
    }

    /// `PRAGMA quick_check`: empty when the database is sound, else SQLite's findings
    /// (at most 10).
    pub fn quick_check(&self) -> Result<Vec<String>, Error> {
        let mut stmt = self
            .conn
            .prepare("PRAGMA quick_check(10)")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let line = row.map_err(|e| self.err(e))?;
            if line != "ok" {
                out.push(line);
            }
        }
        Ok(out)
    }

    /// The last unit recorded under `(namespace, name)`.
    pub fn last_unit(&self, namespace: &str, name: &str) -> Result<Option<UnitRecord>, Error> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT key, unit, backend, flags, target, deps, state FROM units
                 WHERE namespace = ?1 AND name = ?2",
            )
            .map_err(|e| self.err(e))?;
        let row = stmt
            .query_row([namespace, name], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                    r.get::<_, Vec<u8>>(3)?,
                    r.get::<_, Vec<u8>>(4)?,
                    r.get::<_, Vec<u8>>(5)?,
                    r.get::<_, i64>(6)?,
                ))
            })
            .optional()
            .map_err(|e| self.err(e))?;
        let Some((key, unit, backend, flags, target, deps, state)) = row else {
            return Ok(None);
        };
        let d = |v: Vec<u8>| <[u8; 32]>::try_from(v).ok();
        let (Some(key), Some(unit), Some(backend), Some(flags), Some(target), Some(deps)) =
            (d(key), d(unit), d(backend), d(flags), d(target), d(deps))
        else {
            return Ok(None);
        };
        Ok(Some(UnitRecord {
            key: Key::from_bytes(key),
            components: KeyComponents {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                unit,
                backend,
                flags,
                target,
                deps,
            },
            state: UnitState::from_code(state),
        }))
    }

    /// Marks the unit recorded for `key` (if any) with `state`.
    pub fn set_unit_state(&self, key: &Key, state: UnitState) -> Result<(), Error> {
        set_unit_state(&self.conn, key, state).map_err(|e| self.err(e))
    }

    /// Runs `f` in an IMMEDIATE transaction on this index.
    pub fn in_transaction<T>(
        &mut self,
        f: impl FnOnce(&Index) -> Result<T, Error>,
    ) -> Result<T, Error> {
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| sql_err(&self.path, e))?;
        match f(self) {
            Ok(v) => {
                if let Err(e) = self.conn.execute_batch("COMMIT") {
                    let _ = self.conn.execute_batch("ROLLBACK");
                    return Err(sql_err(&self.path, e));
                }
                Ok(v)
            }
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }
}
