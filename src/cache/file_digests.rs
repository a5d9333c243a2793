//! File digests remembered by metadata: the BLAKE3 of files a frontend keys units by
//! (a C program's sources), so that a warm start examines each file instead of reading
//! and hashing it.
//!
//! For a list of paths, one entry holds each file's digest with the metadata it had when
//! hashed (size, modification and change times, inode, device). A file whose metadata is
//! unchanged is taken to have the recorded digest, under the rule manifests use for
//! headers (`manifest.rs`): only if its timestamps were at least
//! [`TRUST_AGE`](super::manifest::TRUST_AGE) older than the moment they were recorded, and
//! only if the file's metadata was the same before and after it was hashed. Anything
//! else is read and hashed again. The entry is keyed by the paths, in order, and is an
//! addition like a pack: missing or damaged, every file is hashed. It describes this
//! machine's files (paths, inodes), so it stays in the local store: it is neither
//! uploaded to nor read from the remote tier.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use jitcache_store::{Key, KeyBuilder, KeyComponents};

use super::JitCache;
use super::manifest::{self, FileStat, Reader};
use crate::Error;

/// The first bytes of a digest memo.
const MAGIC: &[u8; 4] = b"\0JCD";
/// The format's version.
const VERSION: u8 = 1;

/// One file's digest, and the metadata that stands in for it, if any.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Known {
    /// `None` for a file too recently modified (or modified while hashed) to be trusted.
    stat: Option<FileStat>,
    digest: [u8; 32],
}

/// The digests of a list of files and when their metadata was taken.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Memo {
    recorded_ns: i64,
    files: Vec<Known>,
}

impl JitCache {
    /// The BLAKE3 digest of the contents of each file of `paths`, in order. A file whose
    /// metadata is what this cache recorded with its digest, and was old enough then, is
    /// not read (see the module `file_digests.rs`); the others are read and hashed, and
    /// the record is written again when that spares a later start some reading.
    ///
    /// A frontend that keys a unit by a file's digest rather than its bytes reads the
    /// file only to compile it, and must check then that it still has that digest.
    ///
    /// ```
    /// # fn main() -> Result<(), jitcache::Error> {
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("main.c");
    /// std::fs::write(&path, "int main(void) { return 0; }\n").unwrap();
    /// let cache = jitcache::JitCache::open(dir.path().join("cache"), Default::default());
    /// let digests = cache.file_digests(&[path.clone()])?;
    /// assert_eq!(digests[0], *blake3::hash(&std::fs::read(&path).unwrap()).as_bytes());
    /// # Ok(())
    /// # }
    /// ```
    pub fn file_digests(&self, paths: &[PathBuf]) -> Result<Vec<[u8; 32]>, Error> {
        let (key, components) = memo_key(paths);
        let memo = self
            .store
            .as_ref()
            .and_then(|_| self.read_local(&key))
            .and_then(|bytes| Memo::decode(&bytes, paths.len()));
        let now_ns = manifest::unix_ns(SystemTime::now());
        let mut fresh = Memo {
            recorded_ns: now_ns,
            files: Vec::with_capacity(paths.len()),
        };
        let mut worth_writing = false;
        for (i, path) in paths.iter().enumerate() {
            let stat = stat(path)?;
            let remembered = memo.as_ref().and_then(|m| {
                let known = m.files[i];
                (known.stat == Some(stat) && manifest::trusted(&stat, m.recorded_ns))
                    .then_some(known)
            });
            let known = match remembered {
                Some(known) => known,
                None => {
                    let known = hash(path, stat, now_ns)?;
                    worth_writing |= known.stat.is_some();
                    known
                }
            };
            fresh.files.push(known);
        }
        if worth_writing {
            self.write_local(&key, &fresh.encode(), &components);
        }
        Ok(fresh.files.iter().map(|k| k.digest).collect())
    }
}

/// The key of the digest memo of `paths`, in order, and its components (which name the
/// entry `jitcache.file-digests/files` in listings).
fn memo_key(paths: &[PathBuf]) -> (Key, KeyComponents) {
    let mut list = Vec::new();
    for path in paths {
        let bytes = path.as_os_str().as_encoded_bytes();
        list.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        list.extend_from_slice(bytes);
    }
    let mut builder = KeyBuilder::new("jitcache.file-digests", "files");
    builder.unit(&list);
    (builder.build(), builder.components())
}

fn stat(path: &Path) -> Result<FileStat, Error> {
    std::fs::metadata(path)
        .map(|md| FileStat::of(&md))
        .map_err(|source| io_error(path, source))
}

/// Reads and hashes `path`, whose metadata was `before`; the metadata is kept only when
/// it was the same after the read and old enough at `now_ns` to stand in for the digest.
fn hash(path: &Path, before: FileStat, now_ns: i64) -> Result<Known, Error> {
    let bytes = std::fs::read(path).map_err(|source| io_error(path, source))?;
    let after = stat(path)?;
    let digest = *blake3::hash(&bytes).as_bytes();
    let stat = (after == before && manifest::trusted(&after, now_ns)).then_some(after);
    Ok(Known { stat, digest })
}

fn io_error(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Memo {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(24 + self.files.len() * 80);
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        manifest::put_u32(&mut out, self.files.len());
        out.extend_from_slice(&self.recorded_ns.to_le_bytes());
        for file in &self.files {
            match &file.stat {
                Some(stat) => {
                    out.push(1);
                    stat.encode(&mut out);
                }
                None => out.push(0),
            }
            out.extend_from_slice(&file.digest);
        }
        out
    }

    /// The memo of `count` files; `None` for anything else.
    fn decode(bytes: &[u8], count: usize) -> Option<Memo> {
        let mut r = Reader(bytes);
        if r.take(4)? != MAGIC || r.take(1)? != [VERSION] || r.u32()? != count {
            return None;
        }
        let recorded_ns = i64::from_le_bytes(r.array()?);
        let mut files = Vec::with_capacity(count.min(1 << 20));
        for _ in 0..count {
            let stat = match r.take(1)? {
                [1] => Some(r.stat()?),
                [0] => None,
                _ => return None,
            };
            files.push(Known {
                stat,
                digest: r.array()?,
            });
        }
        r.0.is_empty().then_some(Memo { recorded_ns, files })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::manifest::TRUST_AGE;

    #[test]
    fn round_trips_and_refuses_anything_else() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.c");
        std::fs::write(&path, "int a;\n").unwrap();
        let stat = stat(&path).unwrap();
        let memo = Memo {
            recorded_ns: 42,
            files: vec![
                Known {
                    stat: Some(stat),
                    digest: [7; 32],
                },
                Known {
                    stat: None,
                    digest: [9; 32],
                },
            ],
        };
        let bytes = memo.encode();
        assert_eq!(Memo::decode(&bytes, 2), Some(memo));
        assert_eq!(Memo::decode(&bytes, 1), None, "another count");
        for cut in 0..bytes.len() {
            assert_eq!(Memo::decode(&bytes[..cut], 2), None, "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(Memo::decode(&longer, 2), None, "trailing bytes");
    }

    #[test]
    fn a_file_modified_now_is_hashed_without_trusting_its_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.c");
        std::fs::write(&path, "int a;\n").unwrap();
        let now_ns = manifest::unix_ns(SystemTime::now());
        let known = hash(&path, stat(&path).unwrap(), now_ns).unwrap();
        assert_eq!(known.digest, *blake3::hash(b"int a;\n").as_bytes());
        assert_eq!(known.stat, None, "written just now");
        let later = now_ns + 2 * TRUST_AGE.as_nanos() as i64;
        let known = hash(&path, stat(&path).unwrap(), later).unwrap();
        assert_eq!(known.stat, Some(stat(&path).unwrap()), "old enough later");
        let before = stat(&path).unwrap();
        std::fs::write(&path, "int a, b;\n").unwrap();
        let known = hash(&path, before, later).unwrap();
        assert_eq!(known.stat, None, "changed while hashed");
        assert_eq!(known.digest, *blake3::hash(b"int a, b;\n").as_bytes());
    }

    #[test]
    fn the_key_covers_every_path_in_order() {
        let (a, b) = (PathBuf::from("/p/a.c"), PathBuf::from("/p/b.c"));
        let key = |paths: &[PathBuf]| memo_key(paths).0;
        assert_ne!(key(&[a.clone(), b.clone()]), key(&[b.clone(), a.clone()]));
        assert_ne!(key(std::slice::from_ref(&a)), key(&[a.clone(), b.clone()]));
        // Lengths are part of the list: no two lists of paths run together.
        let ab = PathBuf::from("/p/a.c/p/b.c");
        assert_ne!(key(&[a, b]), key(&[ab]));
    }
}
