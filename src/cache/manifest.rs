//! Manifests: what a unit's object depends on besides the unit's own bytes.
//!
//! A C unit's object depends on every header the compiler read. Those are known only
//! after compiling, so the unit key (source bytes, flags, toolchain) cannot cover them.
//! For a unit whose backend reports inputs, the unit key therefore holds a *manifest*:
//! a short list of entries, newest first, each naming the object key of one compile and
//! the files that compile read with their content hashes (and the paths whose creation
//! would have changed what it read). A lookup takes the first entry whose files all still
//! have those contents and reads its object; none matching is a miss. The object key is
//! derived from the unit key and every input's path and hash, so it names exactly one
//! set of header contents.
//!
//! Hashing every header on every start would cost more than the lookup, so each input
//! also records the file's metadata (size, modification and change times, inode,
//! device) as it was when hashed. A file whose metadata is unchanged is taken to have the
//! recorded hash, but only if its timestamps were at least [`TRUST_AGE`] older than the
//! moment they were recorded: a file modified within the timestamp granularity of its
//! file system can change again without its metadata changing, so such a file is hashed
//! on every lookup until its timestamps are old enough.
//!
//! Paths inside the backend's base directory are recorded relative to it, so two
//! checkouts of a program at different paths share manifests and objects.

use std::collections::HashMap;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jitcache_store::Key;

/// The first bytes of a manifest. An object is an ELF file (`\x7fELF`), so the two can
/// share the unit key without ambiguity.
pub(crate) const MAGIC: &[u8; 4] = b"\0JCM";
/// The manifest format's version.
const VERSION: u8 = 1;
/// Entries kept per manifest: the contents of a unit's headers it has seen most recently.
pub(crate) const MAX_ENTRIES: usize = 8;
/// How much older than the moment it is recorded a file's timestamps must be for its
/// metadata to stand in for its contents: more than the coarsest timestamp granularity
/// of a common file system (FAT's 2 s; ext4 and XFS record nanoseconds from a clock that
/// ticks every few milliseconds).
pub(crate) const TRUST_AGE: Duration = Duration::from_secs(2);
/// A compile whose inputs were modified after it started (by the file system's clock,
/// which lags the wall clock by at most a tick, so a file written before the compile
/// never counts) may have read a mix of versions: its object is not stored. No margin:
/// a file written just before a compile is the common case (an edit, then a run).
pub(crate) const COMPILE_MARGIN: Duration = Duration::ZERO;

/// The store counter of units whose manifest named an object with unchanged files.
pub(crate) const HITS_COUNTER: &str = "manifest.hits";
/// The store counter of units whose manifest named none (or that had none).
pub(crate) const MISSES_COUNTER: &str = "manifest.misses";

/// Manifest lookups of every process that used a cache directory, as persisted in its
/// store's counters (each process adds its own at drop).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ManifestCounts {
    /// Units whose manifest named an object whose files are unchanged.
    pub hits: u64,
    /// Units whose manifest named none, or that had none yet.
    pub misses: u64,
}

impl ManifestCounts {
    /// The counts persisted in `store`.
    pub fn load(store: &jitcache_store::Store) -> Result<ManifestCounts, jitcache_store::Error> {
        Ok(ManifestCounts {
            hits: store.counter(HITS_COUNTER)?,
            misses: store.counter(MISSES_COUNTER)?,
        })
    }
}

/// A file's metadata, as far as it tells whether the file changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FileStat {
    size: u64,
    mtime_ns: i64,
    ctime_ns: i64,
    inode: u64,
    device: u64,
}

impl FileStat {
    pub(crate) fn of(md: &std::fs::Metadata) -> FileStat {
        FileStat {
            size: md.size(),
            mtime_ns: md.mtime() * 1_000_000_000 + md.mtime_nsec(),
            ctime_ns: md.ctime() * 1_000_000_000 + md.ctime_nsec(),
            inode: md.ino(),
            device: md.dev(),
        }
    }

    /// The later of the modification and change times.
    fn latest_ns(&self) -> i64 {
        self.mtime_ns.max(self.ctime_ns)
    }

    /// Appends its fields (what [`Reader::stat`] reads).
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.size.to_le_bytes());
        out.extend_from_slice(&self.mtime_ns.to_le_bytes());
        out.extend_from_slice(&self.ctime_ns.to_le_bytes());
        out.extend_from_slice(&self.inode.to_le_bytes());
        out.extend_from_slice(&self.device.to_le_bytes());
    }
}

/// One file a compile read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Input {
    /// Relative to the base directory when inside it, else absolute.
    pub path: PathBuf,
    /// Its metadata when it was hashed.
    pub stat: FileStat,
    /// BLAKE3 of its contents.
    pub hash: [u8; 32],
}

/// One compile of the unit: its object's key and what it read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    /// Where the object is stored.
    pub object: Key,
    /// When the inputs' metadata was taken (nanoseconds since the Unix epoch).
    pub recorded_ns: i64,
    /// The files read, sorted by path.
    pub inputs: Vec<Input>,
    /// Paths that did not exist and must not, for this entry to hold.
    pub absent: Vec<PathBuf>,
}

/// A unit's manifest: its entries, newest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Manifest {
    pub entries: Vec<Entry>,
}

/// Why no entry of a manifest holds, for the first (newest) entry: the input that
/// changed, or the path that appeared.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Mismatch {
    /// An input's contents differ (or it is gone).
    Changed(PathBuf),
    /// A path that was absent exists.
    Appeared(PathBuf),
    /// The manifest has no entries.
    Empty,
}

impl Mismatch {
    /// The reason a unit missed because of this mismatch; `None` for an empty manifest
    /// (the store's record explains that miss).
    pub(crate) fn reason(self) -> Option<crate::MissReason> {
        match self {
            Mismatch::Changed(path) => Some(crate::MissReason::InputChanged(path)),
            Mismatch::Appeared(path) => Some(crate::MissReason::InputAppeared(path)),
            Mismatch::Empty => None,
        }
    }
}

/// The outcome of checking a manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Check {
    /// Entry `index` holds: its object is the unit's.
    Holds {
        index: usize,
        /// Whether some input's metadata changed while its contents did not (or became
        /// old enough to trust): the manifest is worth writing again with fresh
        /// metadata, so later lookups need not hash the file.
        refresh: bool,
    },
    /// No entry holds.
    Stale(Mismatch),
}

/// What is known about files during one batch: each is stat'ed, and hashed, at most once
/// per batch however many units read it. A new batch starts afresh, so a header edited
/// between two batches of a long-lived process is noticed.
#[derive(Default)]
pub(crate) struct FileMemo {
    files: HashMap<PathBuf, Option<Known>>,
}

#[derive(Clone, Copy)]
struct Known {
    stat: FileStat,
    hash: Option<[u8; 32]>,
}

impl FileMemo {
    /// The metadata of `path`, `None` if it does not exist or cannot be examined.
    fn stat(&mut self, path: &Path) -> Option<FileStat> {
        self.known(path).map(|k| k.stat)
    }

    fn known(&mut self, path: &Path) -> Option<Known> {
        *self.files.entry(path.to_path_buf()).or_insert_with(|| {
            std::fs::metadata(path).ok().map(|md| Known {
                stat: FileStat::of(&md),
                hash: None,
            })
        })
    }

    /// The BLAKE3 of `path`'s contents and its metadata, read now (once per batch).
    pub(crate) fn hash(&mut self, path: &Path) -> io::Result<(FileStat, [u8; 32])> {
        if let Some(Some(Known {
            stat,
            hash: Some(hash),
        })) = self.files.get(path)
        {
            return Ok((*stat, *hash));
        }
        let bytes = std::fs::read(path)?;
        let md = std::fs::metadata(path)?;
        let stat = FileStat::of(&md);
        let hash = *blake3::hash(&bytes).as_bytes();
        self.files.insert(
            path.to_path_buf(),
            Some(Known {
                stat,
                hash: Some(hash),
            }),
        );
        Ok((stat, hash))
    }
}

impl Manifest {
    /// Checks the entries in order against the files as they are now; `base` resolves
    /// relative paths.
    pub(crate) fn check(&self, base: Option<&Path>, memo: &mut FileMemo) -> Check {
        let mut first_mismatch = None;
        for (index, entry) in self.entries.iter().enumerate() {
            match entry.check(base, memo) {
                Ok(refresh) => return Check::Holds { index, refresh },
                Err(mismatch) => {
                    first_mismatch.get_or_insert(mismatch);
                }
            }
        }
        Check::Stale(first_mismatch.unwrap_or(Mismatch::Empty))
    }

    /// This manifest with entry `index`'s metadata taken again from `memo` (which hashed
    /// the files whose metadata changed), or `None` when that would not spare later
    /// lookups any hashing: some input is still too recently modified to trust.
    pub(crate) fn refreshed(
        &self,
        index: usize,
        base: Option<&Path>,
        memo: &mut FileMemo,
    ) -> Option<Manifest> {
        let mut entry = self.entries.get(index)?.clone();
        entry.recorded_ns = unix_ns(SystemTime::now());
        entry.inputs = refreshed_inputs(&entry.inputs, entry.recorded_ns, base, memo)?;
        Some(self.with_newest(entry))
    }

    /// This manifest with `entry` first, dropping an older entry for the same object
    /// and the oldest beyond [`MAX_ENTRIES`].
    pub(crate) fn with_newest(&self, entry: Entry) -> Manifest {
        let mut entries = Vec::with_capacity(MAX_ENTRIES);
        let object = entry.object;
        entries.push(entry);
        entries.extend(
            self.entries
                .iter()
                .filter(|e| e.object != object)
                .take(MAX_ENTRIES - 1)
                .cloned(),
        );
        Manifest { entries }
    }

    /// The manifest's bytes.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        put_u32(&mut out, self.entries.len());
        for entry in &self.entries {
            out.extend_from_slice(entry.object.as_bytes());
            out.extend_from_slice(&entry.recorded_ns.to_le_bytes());
            put_files(&mut out, &entry.inputs, &entry.absent);
        }
        out
    }

    /// Parses a manifest; `None` for anything that is not a well-formed one (bytes
    /// that are damaged, truncated or of another version are a miss).
    pub(crate) fn decode(bytes: &[u8]) -> Option<Manifest> {
        let mut r = Reader(bytes);
        if r.take(4)? != MAGIC || r.take(1)? != [VERSION] {
            return None;
        }
        let count = r.u32()?;
        if count > MAX_ENTRIES {
            return None;
        }
        let mut entries = Vec::with_capacity(count);
        for _ in 0..count {
            let object = Key::from_bytes(r.array()?);
            let recorded_ns = i64::from_le_bytes(r.array()?);
            let (inputs, absent) = r.files()?;
            entries.push(Entry {
                object,
                recorded_ns,
                inputs,
                absent,
            });
        }
        r.0.is_empty().then_some(Manifest { entries })
    }
}

impl Entry {
    /// Whether every input still has its recorded contents and every absent path is
    /// still absent; `Ok(true)` when it holds but its metadata is worth refreshing.
    fn check(&self, base: Option<&Path>, memo: &mut FileMemo) -> Result<bool, Mismatch> {
        check_files(&self.inputs, &self.absent, self.recorded_ns, base, memo)
    }
}

/// Whether every one of `inputs`, recorded at `recorded_ns`, still has its recorded
/// contents and every `absent` path is still absent; `Ok(true)` when they hold but some
/// input's metadata is worth refreshing.
pub(crate) fn check_files(
    inputs: &[Input],
    absent: &[PathBuf],
    recorded_ns: i64,
    base: Option<&Path>,
    memo: &mut FileMemo,
) -> Result<bool, Mismatch> {
    let mut refresh = false;
    for input in inputs {
        let path = resolve(base, &input.path);
        let now = memo
            .stat(&path)
            .ok_or_else(|| Mismatch::Changed(input.path.clone()))?;
        if now == input.stat && trusted(&input.stat, recorded_ns) {
            continue;
        }
        let (_, hash) = memo
            .hash(&path)
            .map_err(|_| Mismatch::Changed(input.path.clone()))?;
        if hash != input.hash {
            return Err(Mismatch::Changed(input.path.clone()));
        }
        refresh = true;
    }
    for path in absent {
        if memo.stat(&resolve(base, path)).is_some() {
            return Err(Mismatch::Appeared(path.clone()));
        }
    }
    Ok(refresh)
}

/// `inputs` with the metadata `memo` has now (it hashes them), to be recorded at
/// `recorded_ns`; `None` when that would not spare later lookups any hashing: some
/// input's contents changed, or it is still too recently modified to trust.
pub(crate) fn refreshed_inputs(
    inputs: &[Input],
    recorded_ns: i64,
    base: Option<&Path>,
    memo: &mut FileMemo,
) -> Option<Vec<Input>> {
    let mut fresh = inputs.to_vec();
    for input in &mut fresh {
        let (stat, hash) = memo.hash(&resolve(base, &input.path)).ok()?;
        if hash != input.hash || !trusted(&stat, recorded_ns) {
            return None;
        }
        input.stat = stat;
    }
    Some(fresh)
}

/// Whether `stat`, recorded at `recorded_ns`, may stand in for the file's contents.
pub(crate) fn trusted(stat: &FileStat, recorded_ns: i64) -> bool {
    stat.latest_ns() < recorded_ns.saturating_sub(TRUST_AGE.as_nanos() as i64)
}

/// The object key of one compile of the unit `unit`: the unit key and every input's
/// (portable) path and contents, in path order.
pub(crate) fn object_key(unit: &Key, inputs: &[Input]) -> Key {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"jitcache manifest object\0");
    hasher.update(unit.as_bytes());
    for input in inputs {
        let path = input.path.as_os_str().as_encoded_bytes();
        hasher.update(&(path.len() as u64).to_le_bytes());
        hasher.update(path);
        hasher.update(&input.hash);
    }
    Key::from_bytes(*hasher.finalize().as_bytes())
}

/// Nanoseconds since the Unix epoch of `time`.
pub(crate) fn unix_ns(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// An entry for a compile that started at `started` and read `read`, with `absent`
/// paths, all absolute; `Err` names an input that cannot be hashed or was modified
/// while the compile ran (its object must not be stored).
pub(crate) fn record(
    unit: &Key,
    base: Option<&Path>,
    read: &[PathBuf],
    absent: &[PathBuf],
    started: SystemTime,
    memo: &mut FileMemo,
) -> Result<Entry, PathBuf> {
    let recorded_ns = unix_ns(SystemTime::now());
    let started_ns = unix_ns(started).saturating_sub(COMPILE_MARGIN.as_nanos() as i64);
    let mut inputs = Vec::with_capacity(read.len());
    for path in read {
        let (stat, hash) = memo.hash(path).map_err(|_| path.clone())?;
        if stat.latest_ns() >= started_ns {
            return Err(path.clone());
        }
        inputs.push(Input {
            path: portable(base, path),
            stat,
            hash,
        });
    }
    inputs.sort_by(|a, b| a.path.cmp(&b.path));
    inputs.dedup_by(|a, b| a.path == b.path);
    let mut absent: Vec<PathBuf> = absent.iter().map(|p| portable(base, p)).collect();
    absent.sort();
    absent.dedup();
    Ok(Entry {
        object: object_key(unit, &inputs),
        recorded_ns,
        inputs,
        absent,
    })
}

/// `path` relative to `base` when inside it, else as it is.
pub(crate) fn portable(base: Option<&Path>, path: &Path) -> PathBuf {
    match base.and_then(|b| path.strip_prefix(b).ok()) {
        Some(rel) if !rel.as_os_str().is_empty() => rel.to_path_buf(),
        _ => path.to_path_buf(),
    }
}

/// A recorded path made usable: relative ones are under `base`.
fn resolve(base: Option<&Path>, path: &Path) -> PathBuf {
    match base {
        Some(base) if path.is_relative() => base.join(path),
        _ => path.to_path_buf(),
    }
}

pub(crate) fn put_u32(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes());
}

fn put_path(out: &mut Vec<u8>, path: &Path) {
    let bytes = path.as_os_str().as_encoded_bytes();
    put_u32(out, bytes.len());
    out.extend_from_slice(bytes);
}

/// Writes `inputs` (path, metadata, hash) and the `absent` paths, each list after its
/// length.
pub(crate) fn put_files(out: &mut Vec<u8>, inputs: &[Input], absent: &[PathBuf]) {
    put_u32(out, inputs.len());
    for input in inputs {
        put_path(out, &input.path);
        input.stat.encode(out);
        out.extend_from_slice(&input.hash);
    }
    put_u32(out, absent.len());
    for path in absent {
        put_path(out, path);
    }
}

/// A cursor over a manifest's bytes; every read is bounds-checked.
pub(crate) struct Reader<'a>(pub &'a [u8]);

impl<'a> Reader<'a> {
    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    pub(crate) fn u32(&mut self) -> Option<usize> {
        usize::try_from(u32::from_le_bytes(self.array()?)).ok()
    }

    fn path(&mut self) -> Option<PathBuf> {
        let n = self.u32()?;
        let bytes = self.take(n)?;
        Some(PathBuf::from(std::ffi::OsStr::from_bytes(bytes)))
    }

    /// A [`FileStat`] as [`FileStat::encode`] wrote it.
    pub(crate) fn stat(&mut self) -> Option<FileStat> {
        Some(FileStat {
            size: u64::from_le_bytes(self.array()?),
            mtime_ns: i64::from_le_bytes(self.array()?),
            ctime_ns: i64::from_le_bytes(self.array()?),
            inode: u64::from_le_bytes(self.array()?),
            device: u64::from_le_bytes(self.array()?),
        })
    }

    /// The inputs and absent paths [`put_files`] wrote.
    pub(crate) fn files(&mut self) -> Option<(Vec<Input>, Vec<PathBuf>)> {
        let n = self.u32()?;
        let mut inputs = Vec::with_capacity(n.min(4096));
        for _ in 0..n {
            let path = self.path()?;
            let stat = self.stat()?;
            inputs.push(Input {
                path,
                stat,
                hash: self.array()?,
            });
        }
        let n = self.u32()?;
        let mut absent = Vec::with_capacity(n.min(4096));
        for _ in 0..n {
            absent.push(self.path()?);
        }
        Some((inputs, absent))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> Key {
        Key::from_bytes([n; 32])
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&path, text).unwrap();
        path
    }

    /// An entry recorded as if long after the files were written, so their metadata is
    /// trusted.
    fn aged(mut entry: Entry) -> Entry {
        entry.recorded_ns += 10 * TRUST_AGE.as_nanos() as i64;
        entry
    }

    fn started_before() -> SystemTime {
        SystemTime::now() + Duration::from_secs(1)
    }

    #[test]
    fn round_trips_and_rejects_damage() {
        let dir = tempfile::tempdir().unwrap();
        let h = write(dir.path(), "inc/val.h", "#define VAL 1\n");
        let entry = record(
            &key(1),
            Some(dir.path()),
            &[h],
            &[dir.path().join("a/val.h")],
            started_before(),
            &mut FileMemo::default(),
        )
        .unwrap();
        assert_eq!(entry.inputs[0].path, Path::new("inc/val.h"));
        assert_eq!(entry.absent, [PathBuf::from("a/val.h")]);
        let manifest = Manifest::default().with_newest(entry);
        let bytes = manifest.encode();
        assert_eq!(Manifest::decode(&bytes), Some(manifest));
        for cut in 0..bytes.len() {
            assert_eq!(Manifest::decode(&bytes[..cut]), None, "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(Manifest::decode(&longer), None);
        assert_eq!(Manifest::decode(b"\x7fELF...."), None);
    }

    #[test]
    fn a_changed_input_or_an_appearing_path_is_stale_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let h = write(dir.path(), "inc/val.h", "#define VAL 1\n");
        let entry = record(
            &key(1),
            Some(dir.path()),
            std::slice::from_ref(&h),
            &[dir.path().join("a/val.h")],
            started_before(),
            &mut FileMemo::default(),
        )
        .unwrap();
        let manifest = Manifest::default().with_newest(aged(entry));
        let base = Some(dir.path());
        assert_eq!(
            manifest.check(base, &mut FileMemo::default()),
            Check::Holds {
                index: 0,
                refresh: false
            }
        );
        // Same contents rewritten: metadata differs, the hash decides; worth a refresh.
        std::fs::write(&h, "#define VAL 1\n").unwrap();
        assert_eq!(
            manifest.check(base, &mut FileMemo::default()),
            Check::Holds {
                index: 0,
                refresh: true
            }
        );
        std::fs::write(&h, "#define VAL 2\n").unwrap();
        assert_eq!(
            manifest.check(base, &mut FileMemo::default()),
            Check::Stale(Mismatch::Changed("inc/val.h".into()))
        );
        std::fs::write(&h, "#define VAL 1\n").unwrap();
        write(dir.path(), "a/val.h", "#define VAL 3\n");
        assert_eq!(
            manifest.check(base, &mut FileMemo::default()),
            Check::Stale(Mismatch::Appeared("a/val.h".into()))
        );
        std::fs::remove_file(dir.path().join("a/val.h")).unwrap();
        std::fs::remove_file(&h).unwrap();
        assert_eq!(
            manifest.check(base, &mut FileMemo::default()),
            Check::Stale(Mismatch::Changed("inc/val.h".into()))
        );
    }

    /// Waits until files written now are old enough for their metadata to be trusted
    /// (their change time cannot be set back, so the test waits for it).
    fn wait_until_trusted() {
        std::thread::sleep(TRUST_AGE + Duration::from_millis(100));
    }

    #[test]
    fn a_same_bytes_rewrite_is_refreshed_once_old_enough() {
        let dir = tempfile::tempdir().unwrap();
        let h = write(dir.path(), "x.h", "int a;\n");
        let base = Some(dir.path());
        wait_until_trusted();
        let entry = record(
            &key(6),
            base,
            std::slice::from_ref(&h),
            &[],
            started_before(),
            &mut FileMemo::default(),
        )
        .unwrap();
        let manifest = Manifest::default().with_newest(entry);
        assert_eq!(
            manifest.check(base, &mut FileMemo::default()),
            Check::Holds {
                index: 0,
                refresh: false
            }
        );
        // The same bytes again, as a checkout writes them: the hash decides, and the
        // metadata is too recent to be worth recording yet.
        std::fs::write(&h, "int a;\n").unwrap();
        let mut memo = FileMemo::default();
        assert_eq!(
            manifest.check(base, &mut memo),
            Check::Holds {
                index: 0,
                refresh: true
            }
        );
        assert_eq!(manifest.refreshed(0, base, &mut memo), None);
        wait_until_trusted();
        let mut memo = FileMemo::default();
        let fresh = manifest
            .refreshed(0, base, &mut memo)
            .expect("old enough to trust");
        assert_eq!(fresh.entries.len(), 1);
        assert_eq!(
            fresh.check(base, &mut FileMemo::default()),
            Check::Holds {
                index: 0,
                refresh: false
            }
        );
    }

    #[test]
    fn recent_metadata_is_not_trusted() {
        // Same size, same metadata is possible within one timestamp tick: a file
        // modified just before it was recorded is hashed on every check.
        let dir = tempfile::tempdir().unwrap();
        let h = write(dir.path(), "x.h", "int a;\n");
        let entry = record(
            &key(2),
            Some(dir.path()),
            std::slice::from_ref(&h),
            &[],
            started_before(),
            &mut FileMemo::default(),
        )
        .unwrap();
        assert!(!trusted(&entry.inputs[0].stat, entry.recorded_ns));
        let mut forged = entry.clone();
        forged.inputs[0].hash = [0; 32];
        let manifest = Manifest::default().with_newest(forged);
        // Metadata matches exactly, yet the hash is checked and differs.
        assert_eq!(
            manifest.check(Some(dir.path()), &mut FileMemo::default()),
            Check::Stale(Mismatch::Changed("x.h".into()))
        );
    }

    #[test]
    fn an_input_modified_during_the_compile_is_not_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let h = write(dir.path(), "x.h", "int a;\n");
        let started = SystemTime::now() - Duration::from_secs(5);
        assert_eq!(
            record(
                &key(3),
                None,
                std::slice::from_ref(&h),
                &[],
                started,
                &mut FileMemo::default()
            ),
            Err(h)
        );
    }

    #[test]
    fn object_keys_are_portable_and_cover_contents() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let entry_at = |dir: &Path, text: &str| {
            let h = write(dir, "inc/val.h", text);
            record(
                &key(4),
                Some(dir),
                &[h],
                &[],
                started_before(),
                &mut FileMemo::default(),
            )
            .unwrap()
        };
        let one = entry_at(a.path(), "1");
        assert_eq!(one.object, entry_at(b.path(), "1").object);
        assert_ne!(one.object, entry_at(b.path(), "2").object);
        assert_ne!(one.object, object_key(&key(5), &one.inputs));
    }

    #[test]
    fn newest_entries_first_and_bounded() {
        let mut manifest = Manifest::default();
        for n in 0..(MAX_ENTRIES as u8 + 3) {
            manifest = manifest.with_newest(Entry {
                object: key(n),
                recorded_ns: 0,
                inputs: vec![],
                absent: vec![],
            });
        }
        assert_eq!(manifest.entries.len(), MAX_ENTRIES);
        assert_eq!(manifest.entries[0].object, key(MAX_ENTRIES as u8 + 2));
        let again = manifest.with_newest(manifest.entries[3].clone());
        assert_eq!(again.entries.len(), MAX_ENTRIES);
        assert_eq!(again.entries[0].object, manifest.entries[3].object);
    }
}
