//! Batch manifests: for a large batch of units that keep manifests (a C program's
//! sources), one entry naming every unit's object key and the union of the files their
//! compiles read, so that a warm start reads and checks one record instead of one
//! manifest per unit.
//!
//! Its key is made from the batch's unit keys, in order, so it answers for exactly those
//! units: an edited source changes a unit key and so the batch manifest's key. The files
//! are checked as a unit's manifest entry is (`manifest.rs`): metadata standing in for
//! contents once old enough, contents hashed otherwise. Every unit's inputs are among the
//! union, so when the union holds, every unit's object is the one its own manifest would
//! name. A path two compiles read with different contents cannot hold at once, so such a
//! batch gets no batch manifest.
//!
//! A batch manifest is an addition, like a pack: one that is missing, damaged or stale
//! falls back to the units' own manifests (which keep older compiles too), and the batch
//! writes a fresh one once it has linked.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use jitcache_store::{Key, KeyBuilder, KeyComponents};

use super::manifest::{self, FileMemo, Input, Mismatch, Reader};

/// The first bytes of a batch manifest (a unit manifest starts `\0JCM`, an object
/// `\x7fELF`, a pack with its count).
const MAGIC: &[u8; 4] = b"\0JCW";
/// The format's version.
const VERSION: u8 = 1;

/// The key of the batch manifest of a batch whose units have `keys`, in this order, and
/// its components (which name the entry `jitcache.batch-manifest/batch` in listings).
pub(super) fn key(keys: &[Key]) -> (Key, KeyComponents) {
    let mut list = Vec::with_capacity(keys.len() * 32);
    for key in keys {
        list.extend_from_slice(key.as_bytes());
    }
    let mut builder = KeyBuilder::new("jitcache.batch-manifest", "batch");
    builder.unit(&list);
    (builder.build(), builder.components())
}

/// The files one compile (or one batch manifest) read, as recorded.
#[derive(Clone, Copy, Debug)]
pub(super) struct Files<'a> {
    pub inputs: &'a [Input],
    pub absent: &'a [PathBuf],
    pub recorded_ns: i64,
}

/// A batch's object keys and the files its units' compiles read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct BatchManifest {
    /// The object key of each unit, in batch order.
    pub objects: Vec<Key>,
    /// When the inputs' metadata was taken: the earliest of the compiles' records, so
    /// that metadata is trusted only if it would be in every one of them.
    pub recorded_ns: i64,
    /// Every file read, sorted by path, once.
    pub inputs: Vec<Input>,
    /// Every path that must stay absent, sorted, once.
    pub absent: Vec<PathBuf>,
}

impl BatchManifest {
    /// The batch manifest of `objects` whose compiles read `files`; `None` when two of
    /// them read one path with different contents.
    pub(super) fn union(objects: Vec<Key>, files: &[Files<'_>]) -> Option<BatchManifest> {
        let mut inputs: BTreeMap<&Path, &Input> = BTreeMap::new();
        let mut absent: Vec<PathBuf> = Vec::new();
        let mut recorded_ns = i64::MAX;
        for set in files {
            recorded_ns = recorded_ns.min(set.recorded_ns);
            for input in set.inputs {
                match inputs.get(input.path.as_path()) {
                    Some(seen) if seen.hash != input.hash => return None,
                    // The same contents: either record's metadata stands in for them.
                    Some(_) => {}
                    None => {
                        inputs.insert(&input.path, input);
                    }
                }
            }
            absent.extend(set.absent.iter().cloned());
        }
        absent.sort();
        absent.dedup();
        if absent
            .iter()
            .any(|path| inputs.contains_key(path.as_path()))
        {
            // One compile read a file another needed absent: they cannot both hold.
            return None;
        }
        Some(BatchManifest {
            objects,
            recorded_ns: if files.is_empty() { 0 } else { recorded_ns },
            inputs: inputs.into_values().cloned().collect(),
            absent,
        })
    }

    /// What it records, as one set of files.
    pub(super) fn files(&self) -> Files<'_> {
        Files {
            inputs: &self.inputs,
            absent: &self.absent,
            recorded_ns: self.recorded_ns,
        }
    }

    /// Whether every file still has its recorded contents and every absent path is still
    /// absent; `Ok(true)` when it holds but its metadata is worth refreshing.
    pub(super) fn check(&self, base: Option<&Path>, memo: &mut FileMemo) -> Result<bool, Mismatch> {
        manifest::check_files(&self.inputs, &self.absent, self.recorded_ns, base, memo)
    }

    /// This batch manifest with its metadata taken again (see
    /// [`manifest::refreshed_inputs`]), or `None` when that would spare no hashing.
    pub(super) fn refreshed(&self, base: Option<&Path>, memo: &mut FileMemo) -> Option<Self> {
        let recorded_ns = manifest::unix_ns(SystemTime::now());
        Some(BatchManifest {
            inputs: manifest::refreshed_inputs(&self.inputs, recorded_ns, base, memo)?,
            recorded_ns,
            ..self.clone()
        })
    }

    /// Its bytes.
    pub(super) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.objects.len() * 32);
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        manifest::put_u32(&mut out, self.objects.len());
        for object in &self.objects {
            out.extend_from_slice(object.as_bytes());
        }
        out.extend_from_slice(&self.recorded_ns.to_le_bytes());
        manifest::put_files(&mut out, &self.inputs, &self.absent);
        out
    }

    /// Parses the batch manifest of a batch of `count` units; `None` for anything else
    /// (damaged, truncated, another version, another count).
    pub(super) fn decode(bytes: &[u8], count: usize) -> Option<BatchManifest> {
        let mut r = Reader(bytes);
        if r.take(4)? != MAGIC || r.take(1)? != [VERSION] || r.u32()? != count {
            return None;
        }
        let mut objects = Vec::with_capacity(count.min(1 << 20));
        for _ in 0..count {
            objects.push(Key::from_bytes(r.array()?));
        }
        let recorded_ns = i64::from_le_bytes(r.array()?);
        let (inputs, absent) = r.files()?;
        r.0.is_empty().then_some(BatchManifest {
            objects,
            recorded_ns,
            inputs,
            absent,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::manifest::{TRUST_AGE, record};

    fn object(n: u8) -> Key {
        Key::from_bytes([n; 32])
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// A compile of unit `n` that read `read` and needed `absent` absent, recorded as if
    /// long after the files were written (so their metadata is trusted).
    fn compile(
        dir: &Path,
        n: u8,
        read: &[PathBuf],
        absent: &[PathBuf],
        memo: &mut FileMemo,
    ) -> manifest::Entry {
        let started = SystemTime::now() + std::time::Duration::from_secs(1);
        let mut entry = record(&object(n), Some(dir), read, absent, started, memo).unwrap();
        entry.recorded_ns += 10 * TRUST_AGE.as_nanos() as i64;
        entry
    }

    fn files(entry: &manifest::Entry) -> Files<'_> {
        Files {
            inputs: &entry.inputs,
            absent: &entry.absent,
            recorded_ns: entry.recorded_ns,
        }
    }

    #[test]
    fn the_union_holds_until_any_units_file_changes_or_appears() {
        let dir = tempfile::tempdir().unwrap();
        let shared = write(dir.path(), "shared.h", "int x;\n");
        let own = write(dir.path(), "own.h", "int y;\n");
        let mut memo = FileMemo::default();
        let a = compile(dir.path(), 1, std::slice::from_ref(&shared), &[], &mut memo);
        let b = compile(
            dir.path(),
            2,
            &[shared.clone(), own.clone()],
            &[dir.path().join("sys/own.h")],
            &mut memo,
        );
        let batch =
            BatchManifest::union(vec![object(1), object(2)], &[files(&a), files(&b)]).unwrap();
        assert_eq!(batch.inputs.len(), 2, "the shared header once");
        assert_eq!(batch.recorded_ns, a.recorded_ns.min(b.recorded_ns));
        let base = Some(dir.path());
        assert_eq!(batch.check(base, &mut FileMemo::default()), Ok(false));

        // A file only the second unit read changes: the whole batch is stale.
        std::fs::write(&own, "int y, z;\n").unwrap();
        assert_eq!(
            batch.check(base, &mut FileMemo::default()),
            Err(Mismatch::Changed(PathBuf::from("own.h")))
        );
        std::fs::write(&own, "int y;\n").unwrap();
        // Same contents, new metadata: it holds, and is worth refreshing.
        assert_eq!(batch.check(base, &mut FileMemo::default()), Ok(true));

        // A path one unit needed absent appears.
        std::fs::create_dir(dir.path().join("sys")).unwrap();
        write(dir.path(), "sys/own.h", "");
        assert_eq!(
            batch.check(base, &mut FileMemo::default()),
            Err(Mismatch::Appeared(PathBuf::from("sys/own.h")))
        );
    }

    #[test]
    fn compiles_that_disagree_about_a_file_have_no_union() {
        let dir = tempfile::tempdir().unwrap();
        let header = write(dir.path(), "v.h", "1\n");
        let a = compile(
            dir.path(),
            1,
            std::slice::from_ref(&header),
            &[],
            &mut FileMemo::default(),
        );
        std::fs::write(&header, "2\n").unwrap();
        let b = compile(
            dir.path(),
            2,
            std::slice::from_ref(&header),
            &[],
            &mut FileMemo::default(),
        );
        assert_eq!(
            BatchManifest::union(vec![object(1), object(2)], &[files(&a), files(&b)]),
            None,
            "one path, two contents"
        );
        let c = compile(dir.path(), 3, &[], &[header], &mut FileMemo::default());
        assert_eq!(
            BatchManifest::union(vec![object(2), object(3)], &[files(&b), files(&c)]),
            None,
            "read by one, absent for the other"
        );
    }

    #[test]
    fn round_trips_and_refuses_anything_else() {
        let dir = tempfile::tempdir().unwrap();
        let header = write(dir.path(), "v.h", "1\n");
        let a = compile(
            dir.path(),
            1,
            &[header],
            &[dir.path().join("gone.h")],
            &mut FileMemo::default(),
        );
        let batch = BatchManifest::union(vec![object(1), object(9)], &[files(&a)]).unwrap();
        let bytes = batch.encode();
        assert_eq!(BatchManifest::decode(&bytes, 2), Some(batch.clone()));
        assert_eq!(BatchManifest::decode(&bytes, 3), None, "another count");
        for cut in 0..bytes.len() {
            assert_eq!(
                BatchManifest::decode(&bytes[..cut], 2),
                None,
                "cut at {cut}"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(BatchManifest::decode(&longer, 2), None, "trailing bytes");
        let unit_manifest = manifest::Manifest::default().with_newest(a).encode();
        assert_eq!(BatchManifest::decode(&unit_manifest, 1), None);
    }

    #[test]
    fn the_key_covers_every_unit_key_in_order() {
        let (a, b) = (object(1), object(2));
        let k = |keys: &[Key]| key(keys).0;
        assert_ne!(k(&[a, b]), k(&[b, a]));
        assert_ne!(k(&[a]), k(&[a, b]));
        assert_eq!(k(&[a, b]), k(&[a, b]));
        assert_ne!(k(&[a, b]), super::super::pack::pack_key(&[a, b]));
        let (key, components) = key(&[a, b]);
        assert_eq!(components.key(), key, "the components name the same key");
    }
}
