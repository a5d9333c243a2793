//! Probes remembered on disk: a compiler's identity is computed by running it four times
//! and hashing the driver and every program and library it runs, which a warm start of a
//! C program should not pay. A remembered probe is reused only while everything it
//! depended on is unchanged: the compiler found on `PATH`, its binary (device, inode,
//! size, modification and change times), the flags, the language, the base directory,
//! `PATH` and `LD_LIBRARY_PATH` (where programs and libraries are found), the
//! environment variables that change output, when a flag asks for the host CPU
//! (`-march=native`) the CPU, and the metadata of every program, library and
//! configuration file the probe hashed (and, for Clang, the set of `*.cfg` files next
//! to the driver).
//!
//! The identity itself holds the BLAKE3 of each file's contents: the file metadata only
//! decides whether to compute it again. Hashes are also remembered per file (`blake3s`),
//! so that a probe made again, for other flags or because one file changed, re-hashes
//! only the files whose metadata changed. The files live in a directory the caller
//! chooses (the facade uses a private directory of the cache), are written atomically,
//! and anything unreadable in them means "probe again".

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::Language;
use super::hashes::{self, FileStat};
use super::probe::{self, OUTPUT_ENV_VARS, Probe, SearchList, Tool, ToolKind};
use crate::Error;

const MAGIC: &[u8; 8] = b"JCPROBE2";
const HASHES_MAGIC: &[u8; 8] = b"JCHASH01";
const HASHES_FILE: &str = "blake3s";

/// The probe of `compiler` with these settings, from `dir` if remembered and still valid,
/// else computed (and remembered, if `dir` is writable).
pub(crate) fn load_or_probe(
    dir: &Path,
    compiler: &Path,
    lang: Language,
    flags: &[String],
    base_dir: Option<&Path>,
) -> Result<Probe, Error> {
    let invoke = probe::find_compiler(compiler)?;
    let Some(fingerprint) = fingerprint(&invoke, lang, flags, base_dir) else {
        return probe::probe(compiler, lang, flags, base_dir);
    };
    let file = dir.join(blake3::hash(&fingerprint).to_hex().as_str());
    if let Some(found) = fs::read(&file)
        .ok()
        .and_then(|bytes| decode(&bytes, &fingerprint))
        .filter(still_valid)
    {
        return Ok(found);
    }
    let memo = dir.join(HASHES_FILE);
    if let Ok(bytes) = fs::read(&memo) {
        hashes::learn(decode_hashes(&bytes).unwrap_or_default());
    }
    let probe = probe::probe(compiler, lang, flags, base_dir)?;
    // Remembering is an optimisation: a failure to write only costs the next start.
    let _ = remember(&file, &encode(&fingerprint, &probe));
    let _ = remember_hashes(&memo, &probe);
    Ok(probe)
}

/// Everything the probe depends on that can be checked before running anything, as
/// bytes; `None` if the binary cannot be examined.
fn fingerprint(
    invoke: &Path,
    lang: Language,
    flags: &[String],
    base_dir: Option<&Path>,
) -> Option<Vec<u8>> {
    let resolved = fs::canonicalize(invoke).ok()?;
    let stat = hashes::stat(&resolved).ok()?;
    let mut out = Vec::new();
    let mut put = |bytes: &[u8]| {
        out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        out.extend_from_slice(bytes);
    };
    put(invoke.as_os_str().as_encoded_bytes());
    put(resolved.as_os_str().as_encoded_bytes());
    for n in stat {
        put(&n.to_le_bytes());
    }
    put(lang.x_arg().as_bytes());
    for flag in flags {
        put(flag.as_bytes());
    }
    put(b"--base--");
    put(base_dir.map_or(&b"\0none"[..], |d| d.as_os_str().as_encoded_bytes()));
    put(b"--env--");
    for name in OUTPUT_ENV_VARS.iter().chain(&["PATH", "LD_LIBRARY_PATH"]) {
        let value = std::env::var_os(name);
        put(value
            .as_ref()
            .map_or(&b"\0unset"[..], |v| v.as_encoded_bytes()));
    }
    if flags.iter().any(|f| probe::mentions_native(f)) {
        put(&cpu_fingerprint()?);
    }
    Some(out)
}

/// Whether every file a remembered probe hashed still has the metadata it had, and no
/// configuration file appeared next to Clang or went away.
fn still_valid(probe: &Probe) -> bool {
    probe
        .tools
        .iter()
        .all(|t| hashes::stat(&t.path).is_ok_and(|s| s == t.stat))
        && probe
            .config_dirs
            .iter()
            .all(|(dir, names)| probe::cfg_files(dir) == *names)
}

/// The host CPU as `-march=native` sees it: model and feature flags of the first CPU.
fn cpu_fingerprint() -> Option<Vec<u8>> {
    let info = fs::read_to_string("/proc/cpuinfo").ok()?;
    let first = info.split("\n\n").next()?;
    let wanted = ["vendor_id", "cpu family", "model", "model name", "flags"];
    Some(
        first
            .lines()
            .filter(|l| {
                wanted
                    .iter()
                    .any(|w| l.split(':').next().is_some_and(|k| k.trim() == *w))
            })
            .collect::<Vec<_>>()
            .join("\n")
            .into_bytes(),
    )
}

fn remember(file: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = file.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.persist(file).map_err(|e| e.error)?;
    Ok(())
}

/// Adds the probe's hashes to the per-file memo in `file` (entries for files that no
/// longer have the remembered metadata are dropped).
fn remember_hashes(file: &Path, probe: &Probe) -> std::io::Result<()> {
    let mut entries = fs::read(file)
        .ok()
        .and_then(|b| decode_hashes(&b))
        .unwrap_or_default();
    let fresh = std::iter::once((probe.resolved.clone(), probe.stat, probe.blake3.clone())).chain(
        probe
            .tools
            .iter()
            .map(|t| (t.path.clone(), t.stat, t.blake3.clone())),
    );
    let mut changed = false;
    for (path, stat, hash) in fresh {
        match entries.iter_mut().find(|(p, _, _)| *p == path) {
            Some(e) if e.1 == stat && e.2 == hash => {}
            Some(e) => {
                *e = (path, stat, hash);
                changed = true;
            }
            None => {
                entries.push((path, stat, hash));
                changed = true;
            }
        }
    }
    if !changed {
        return Ok(());
    }
    entries.retain(|(p, s, _)| hashes::stat(p).is_ok_and(|now| now == *s));
    remember(file, &encode_hashes(&entries))
}

/// A length-prefixed writer.
struct Writer(Vec<u8>);

impl Writer {
    fn bytes(&mut self, b: &[u8]) {
        self.0.extend_from_slice(&(b.len() as u64).to_le_bytes());
        self.0.extend_from_slice(b);
    }
    fn count(&mut self, n: usize) {
        self.bytes(&(n as u64).to_le_bytes());
    }
    fn path(&mut self, p: &Path) {
        self.bytes(p.as_os_str().as_encoded_bytes());
    }
    fn stat(&mut self, s: &FileStat) {
        for n in s {
            self.bytes(&n.to_le_bytes());
        }
    }
    fn strings(&mut self, list: &[String]) {
        self.count(list.len());
        for s in list {
            self.bytes(s.as_bytes());
        }
    }
}

/// The reader of what [`Writer`] wrote; every method is `None` on damage.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(u64::from_le_bytes(self.0.get(..8)?.try_into().ok()?)).ok()?;
        let item = self.0.get(8..8usize.checked_add(len)?)?;
        self.0 = &self.0[8 + len..];
        Some(item)
    }
    fn count(&mut self) -> Option<usize> {
        let n = u64::from_le_bytes(self.bytes()?.try_into().ok()?);
        // A count can never exceed the bytes left: refuse before allocating.
        usize::try_from(n).ok().filter(|&n| n <= self.0.len())
    }
    fn text(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?.to_vec()).ok()
    }
    fn path(&mut self) -> Option<PathBuf> {
        self.text().map(PathBuf::from)
    }
    fn stat(&mut self) -> Option<FileStat> {
        let mut s = [0u64; 7];
        for n in &mut s {
            *n = u64::from_le_bytes(self.bytes()?.try_into().ok()?);
        }
        Some(s)
    }
    fn strings(&mut self) -> Option<Vec<String>> {
        let n = self.count()?;
        (0..n).map(|_| self.text()).collect()
    }
}

fn encode(fingerprint: &[u8], p: &Probe) -> Vec<u8> {
    let mut w = Writer(MAGIC.to_vec());
    w.bytes(fingerprint);
    w.path(&p.invoke);
    w.path(&p.resolved);
    w.stat(&p.stat);
    w.bytes(p.blake3.as_bytes());
    w.bytes(p.version.as_bytes());
    w.bytes(p.machine.as_bytes());
    w.strings(&p.cpu);
    w.strings(&p.env);
    w.count(p.tools.len());
    for t in &p.tools {
        w.bytes(t.kind.word().as_bytes());
        w.bytes(t.name.as_bytes());
        w.path(&t.path);
        w.stat(&t.stat);
        w.bytes(t.blake3.as_bytes());
    }
    w.count(p.config_dirs.len());
    for (dir, names) in &p.config_dirs {
        w.path(dir);
        w.strings(names);
    }
    w.strings(&p.search.missing);
    w.strings(&p.search.quote);
    w.strings(&p.search.bracket);
    w.0
}

/// Reads a remembered probe; `None` unless it is well formed and made for `fingerprint`.
fn decode(bytes: &[u8], fingerprint: &[u8]) -> Option<Probe> {
    let mut r = Reader(bytes.strip_prefix(MAGIC)?);
    if r.bytes()? != fingerprint {
        return None;
    }
    let invoke = r.path()?;
    let resolved = r.path()?;
    let stat = r.stat()?;
    let blake3 = r.text()?;
    let version = r.text()?;
    let machine = r.text()?;
    let cpu = r.strings()?;
    let env = r.strings()?;
    let n = r.count()?;
    let tools = (0..n)
        .map(|_| {
            let kind = match r.bytes()? {
                b"program" => ToolKind::Program,
                b"library" => ToolKind::Library,
                b"config" => ToolKind::Config,
                _ => return None,
            };
            Some(Tool {
                kind,
                name: r.text()?,
                path: r.path()?,
                stat: r.stat()?,
                blake3: r.text()?,
            })
        })
        .collect::<Option<Vec<_>>>()?;
    let n = r.count()?;
    let config_dirs = (0..n)
        .map(|_| Some((r.path()?, r.strings()?)))
        .collect::<Option<Vec<_>>>()?;
    let search = SearchList {
        missing: r.strings()?,
        quote: r.strings()?,
        bracket: r.strings()?,
    };
    r.0.is_empty().then_some(Probe {
        invoke,
        resolved,
        stat,
        blake3,
        version,
        machine,
        cpu,
        env,
        tools,
        config_dirs,
        search,
    })
}

type HashEntry = (PathBuf, FileStat, String);

fn encode_hashes(entries: &[HashEntry]) -> Vec<u8> {
    let mut w = Writer(HASHES_MAGIC.to_vec());
    w.count(entries.len());
    for (path, stat, hash) in entries {
        w.path(path);
        w.stat(stat);
        w.bytes(hash.as_bytes());
    }
    w.0
}

fn decode_hashes(bytes: &[u8]) -> Option<Vec<HashEntry>> {
    let mut r = Reader(bytes.strip_prefix(HASHES_MAGIC)?);
    let n = r.count()?;
    (0..n)
        .map(|_| Some((r.path()?, r.stat()?, r.text()?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Probe {
        Probe {
            invoke: PathBuf::from("/usr/bin/cc"),
            resolved: PathBuf::from("/usr/bin/x86_64-linux-gnu-gcc-12"),
            stat: [1, 2, 3, 4, 5, 6, 7],
            blake3: "ab".repeat(32),
            version: "cc (Debian 12.2.0-14) 12.2.0".to_owned(),
            machine: "x86_64-linux-gnu".to_owned(),
            cpu: vec!["-march=znver3".to_owned()],
            env: vec!["CPATH=/x".to_owned()],
            tools: vec![Tool {
                kind: ToolKind::Program,
                name: "cc1".to_owned(),
                path: PathBuf::from("/usr/lib/gcc/x86_64-linux-gnu/12/cc1"),
                stat: [7, 6, 5, 4, 3, 2, 1],
                blake3: "cd".repeat(32),
            }],
            config_dirs: vec![(PathBuf::from("/usr/bin"), vec!["clang.cfg".to_owned()])],
            search: SearchList {
                missing: vec!["nope".to_owned()],
                quote: vec![],
                bracket: vec!["/usr/include".to_owned()],
            },
        }
    }

    #[test]
    fn round_trips_and_rejects_another_fingerprint_or_damage() {
        let bytes = encode(b"fp", &sample());
        let back = decode(&bytes, b"fp").expect("decodes");
        assert_eq!(back.blake3, sample().blake3);
        assert_eq!(back.cpu, sample().cpu);
        assert_eq!(back.env, sample().env);
        assert_eq!(back.tools, sample().tools);
        assert_eq!(back.config_dirs, sample().config_dirs);
        assert_eq!(back.search, sample().search);
        assert!(decode(&bytes, b"other").is_none());
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut], b"fp").is_none(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode(&longer, b"fp").is_none());
    }

    #[test]
    fn hash_memo_round_trips() {
        let entries = vec![(PathBuf::from("/a"), [1; 7], "ef".repeat(32))];
        let bytes = encode_hashes(&entries);
        assert_eq!(decode_hashes(&bytes), Some(entries));
        for cut in 0..bytes.len() {
            assert!(decode_hashes(&bytes[..cut]).is_none(), "cut at {cut}");
        }
    }

    #[test]
    fn a_probe_whose_tool_changed_is_not_valid() {
        let dir = tempfile::tempdir().unwrap();
        let tool = dir.path().join("cc1");
        fs::write(&tool, b"x").unwrap();
        let mut p = sample();
        p.config_dirs.clear();
        p.tools[0].path = tool.clone();
        p.tools[0].stat = hashes::stat(&tool).unwrap();
        assert!(still_valid(&p));
        std::thread::sleep(std::time::Duration::from_millis(10));
        fs::write(&tool, b"xy").unwrap();
        assert!(!still_valid(&p));
        p.tools[0].stat = hashes::stat(&tool).unwrap();
        p.config_dirs = vec![(dir.path().to_path_buf(), Vec::new())];
        assert!(still_valid(&p));
        fs::write(dir.path().join("clang.cfg"), b"-O2").unwrap();
        assert!(
            !still_valid(&p),
            "a new configuration file next to the driver"
        );
    }
}
