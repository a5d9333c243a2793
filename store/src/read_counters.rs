//! Counters kept beside the index, for processes that have nothing else to write.
//!
//! A process that only reads (a warm start) would otherwise end with an index
//! transaction for its counts: the hit and miss counts, the facade's manifest counts,
//! the remote tier's counters. Its first write makes SQLite append pages to the
//! write-ahead log (about 12 KiB for a handful of counters), which the next opener
//! reads and a later checkpoint copies back with `fsync`s. Here it adds them to one
//! small file instead (open, lock, read, write: a few system calls).
//! [`Store::stats`](crate::Store::stats) and [`Store::counter`](crate::Store::counter)
//! add these to the index's counters.
//!
//! The file (`<root>/v1/read-counters`) is updated under an exclusive `flock`: the
//! magic `JCRC` and version 2 (u32 LE), the number of counters (u32 LE), then each
//! counter as a name length (u8), the name's bytes (UTF-8) and its value (i64 LE),
//! in name order. A version-1 file (24 bytes: hits and misses as u64 LE) is read as the
//! counters `hits` and `misses`. A file of any other shape (damaged, cut short) is
//! statistics lost, not an error: the counts restart from zero.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::index::counter;

const MAGIC_V1: [u8; 8] = *b"JCRC\x01\0\0\0";
const LEN_V1: usize = 24;
const MAGIC_V2: [u8; 8] = *b"JCRC\x02\0\0\0";
/// Largest file read: far more than the few dozen counters the store and its
/// components use; anything longer is damage.
const MAX_LEN: usize = 64 * 1024;

/// Named counters in a file beside the index; see the module's documentation.
#[derive(Clone, Debug)]
pub(crate) struct ReadCounters {
    path: PathBuf,
}

impl ReadCounters {
    pub fn new(path: &Path) -> ReadCounters {
        ReadCounters {
            path: path.to_path_buf(),
        }
    }

    /// Adds each `(name, n)` to the file's counters (creating it), waiting for another
    /// process's lock on it until `deadline` (then failing with `WouldBlock`). Names
    /// longer than 255 bytes are refused with `InvalidInput`.
    pub fn add(&self, deltas: &[(&str, i64)], deadline: Instant) -> io::Result<()> {
        if let Some((name, _)) = deltas.iter().find(|(name, _)| name.len() > 255) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("counter name of {} bytes: {name:.40}...", name.len()),
            ));
        }
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&self.path)?;
        if !crate::lock::poll_until(deadline, || file.try_lock())? {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let mut counters = parse(&read_bounded(&mut file)?).unwrap_or_default();
        for (name, n) in deltas {
            let value = counters.entry((*name).to_owned()).or_insert(0);
            *value = value.saturating_add(*n);
        }
        let out = encode(&counters);
        file.seek(SeekFrom::Start(0))?;
        file.write_all(&out)?;
        file.set_len(out.len() as u64)?;
        // Closing the file releases the lock.
        Ok(())
    }

    /// Every counter in the file; empty when the file is missing or damaged. Waits for
    /// a writer's lock on it until `deadline` (then fails with `WouldBlock`).
    pub fn read(&self, deadline: Instant) -> io::Result<BTreeMap<String, i64>> {
        let mut file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
            Err(e) => return Err(e),
        };
        if !crate::lock::poll_until(deadline, || file.try_lock_shared())? {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(parse(&read_bounded(&mut file)?).unwrap_or_default())
    }
}

/// The file's bytes, at most [`MAX_LEN`] + 1 of them (so that a longer file shows as
/// damaged rather than being read whole).
fn read_bounded(file: &mut File) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    file.take(MAX_LEN as u64 + 1).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// The counters of a well-formed file's bytes, version 2 or 1.
fn parse(bytes: &[u8]) -> Option<BTreeMap<String, i64>> {
    if bytes.len() == LEN_V1 && bytes[..8] == MAGIC_V1 {
        let hits = u64::from_le_bytes(bytes[8..16].try_into().ok()?);
        let misses = u64::from_le_bytes(bytes[16..24].try_into().ok()?);
        let as_i64 = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        return Some(BTreeMap::from([
            (counter::HITS.to_owned(), as_i64(hits)),
            (counter::MISSES.to_owned(), as_i64(misses)),
        ]));
    }
    if bytes.len() > MAX_LEN || bytes.get(..8)? != MAGIC_V2 {
        return None;
    }
    let count = u32::from_le_bytes(bytes.get(8..12)?.try_into().ok()?);
    let mut rest = &bytes[12..];
    let mut counters = BTreeMap::new();
    for _ in 0..count {
        let (&len, tail) = rest.split_first()?;
        let (name, tail) = tail.split_at_checked(usize::from(len))?;
        let (value, tail) = tail.split_at_checked(8)?;
        let name = std::str::from_utf8(name).ok()?.to_owned();
        counters.insert(name, i64::from_le_bytes(value.try_into().ok()?));
        rest = tail;
    }
    rest.is_empty().then_some(counters)
}

/// The version-2 bytes of `counters` (names are at most 255 bytes: `add` checks).
fn encode(counters: &BTreeMap<String, i64>) -> Vec<u8> {
    let mut out = MAGIC_V2.to_vec();
    out.extend_from_slice(
        &u32::try_from(counters.len())
            .unwrap_or(u32::MAX)
            .to_le_bytes(),
    );
    for (name, value) in counters {
        out.push(u8::try_from(name.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&value.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::Duration;

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(1)
    }

    impl ReadCounters {
        fn value(&self, name: &str) -> io::Result<i64> {
            Ok(self.read(soon())?.get(name).copied().unwrap_or(0))
        }
    }

    #[test]
    fn counters_add_up_over_writers_and_survive_damage() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("read-counters");
        let counters = ReadCounters::new(&path);
        assert!(
            counters.read(soon()).expect("read").is_empty(),
            "no file yet"
        );
        counters
            .add(&[("hits", 3), ("misses", 1)], soon())
            .expect("add");
        ReadCounters::new(&path)
            .add(
                &[("hits", 2), ("misses", 5), ("manifest.hits", 200)],
                soon(),
            )
            .expect("add");
        assert_eq!(counters.value("hits").expect("read"), 5);
        assert_eq!(counters.value("misses").expect("read"), 6);
        assert_eq!(counters.value("manifest.hits").expect("read"), 200);
        assert_eq!(counters.value("absent").expect("read"), 0);
        // A damaged file restarts the counts instead of failing.
        std::fs::write(&path, b"garbage").expect("damage");
        assert!(counters.read(soon()).expect("read").is_empty());
        counters.add(&[("hits", 1)], soon()).expect("add");
        assert_eq!(counters.value("hits").expect("read"), 1);
        // A file cut short is damage too, and the next write leaves a well-formed one.
        let whole = std::fs::read(&path).expect("bytes");
        std::fs::write(&path, &whole[..whole.len() - 1]).expect("cut");
        assert!(counters.read(soon()).expect("read").is_empty());
        counters.add(&[("misses", 2)], soon()).expect("add");
        assert_eq!(
            counters.read(soon()).expect("read"),
            BTreeMap::from([("misses".to_owned(), 2)])
        );
    }

    #[test]
    fn a_version_1_file_is_read_as_hits_and_misses() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("read-counters");
        let mut v1 = MAGIC_V1.to_vec();
        v1.extend_from_slice(&7u64.to_le_bytes());
        v1.extend_from_slice(&9u64.to_le_bytes());
        std::fs::write(&path, &v1).expect("write v1");
        let counters = ReadCounters::new(&path);
        assert_eq!(counters.value("hits").expect("read"), 7);
        assert_eq!(counters.value("misses").expect("read"), 9);
        counters.add(&[("hits", 1)], soon()).expect("add");
        assert_eq!(counters.value("hits").expect("read"), 8);
        assert_eq!(std::fs::read(&path).expect("bytes")[..8], MAGIC_V2);
    }

    #[test]
    fn a_name_too_long_is_refused_and_nothing_is_written() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("read-counters");
        let long = "x".repeat(256);
        let err = ReadCounters::new(&path)
            .add(&[("hits", 1), (&long, 1)], soon())
            .expect_err("too long");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(!path.exists());
    }

    #[test]
    fn a_held_lock_bounds_the_wait() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("read-counters");
        let counters = ReadCounters::new(&path);
        counters.add(&[("hits", 1)], soon()).expect("add");
        let holder = File::open(&path).expect("open");
        holder.lock().expect("lock");
        let started = Instant::now();
        let err = counters
            .add(&[("hits", 1)], Instant::now() + Duration::from_millis(30))
            .expect_err("lock held");
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        assert!(started.elapsed() < Duration::from_secs(5));
        // A reader waits for a writer's lock with a bound too.
        let err = counters
            .read(Instant::now() + Duration::from_millis(30))
            .expect_err("lock held");
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        assert!(started.elapsed() < Duration::from_secs(5));
        drop(holder);
        assert_eq!(counters.value("hits").expect("read"), 1, "nothing added");
    }

    proptest! {
        /// Whatever counters are written, reading gives them back; whatever bytes the
        /// file holds, reading never fails or panics.
        #[test]
        fn encoding_round_trips_and_any_bytes_parse_safely(
            counters in proptest::collection::btree_map("[a-z.]{0,40}", any::<i64>(), 0..20),
            junk in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            prop_assert_eq!(parse(&encode(&counters)), Some(counters));
            let _ = parse(&junk);
            let mut prefixed = MAGIC_V2.to_vec();
            prefixed.extend_from_slice(&junk);
            let _ = parse(&prefixed);
        }
    }
}
