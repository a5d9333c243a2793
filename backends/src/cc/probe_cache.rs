//! Probes remembered on disk: a compiler's identity is computed by running it three times
//! and hashing its binary (a few milliseconds), which a warm start of a C program should
//! not pay. A remembered probe is reused only while everything it depended on is
//! unchanged: the compiler found on `PATH`, its binary (device, inode, size, modification
//! and change times), the flags, the language, the environment variables that change
//! output and, when a flag asks for the host CPU (`-march=native`), the CPU.
//!
//! The identity itself still holds the BLAKE3 of the binary's contents: the file metadata
//! only decides whether to compute it again. The file lives in a directory the caller
//! chooses (the facade uses a private directory of the cache), is written atomically, and
//! anything unreadable in it means "probe again".

use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::Language;
use super::probe::{self, OUTPUT_ENV_VARS, Probe};
use crate::Error;

const MAGIC: &[u8; 8] = b"JCPROBE1";

/// The probe of `compiler` with these settings, from `dir` if remembered and still valid,
/// else computed (and remembered, if `dir` is writable).
pub(crate) fn load_or_probe(
    dir: &Path,
    compiler: &Path,
    lang: Language,
    flags: &[String],
) -> Result<Probe, Error> {
    let invoke = probe::find_compiler(compiler)?;
    let Some(fingerprint) = fingerprint(&invoke, lang, flags) else {
        return probe::probe(compiler, lang, flags);
    };
    let file = dir.join(blake3::hash(&fingerprint).to_hex().as_str());
    if let Some(found) = fs::read(&file)
        .ok()
        .and_then(|bytes| decode(&bytes, &fingerprint))
    {
        return Ok(found);
    }
    let probe = probe::probe(compiler, lang, flags)?;
    // Remembering is an optimisation: a failure to write only costs the next start.
    let _ = remember(&file, &fingerprint, &probe);
    Ok(probe)
}

/// Everything the probe depends on, as bytes; `None` if the binary cannot be examined.
fn fingerprint(invoke: &Path, lang: Language, flags: &[String]) -> Option<Vec<u8>> {
    let resolved = fs::canonicalize(invoke).ok()?;
    let md = fs::metadata(&resolved).ok()?;
    let mut out = Vec::new();
    let mut put = |bytes: &[u8]| {
        out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        out.extend_from_slice(bytes);
    };
    put(invoke.as_os_str().as_encoded_bytes());
    put(resolved.as_os_str().as_encoded_bytes());
    for n in [
        md.dev(),
        md.ino(),
        md.size(),
        md.mtime() as u64,
        md.mtime_nsec() as u64,
        md.ctime() as u64,
        md.ctime_nsec() as u64,
    ] {
        put(&n.to_le_bytes());
    }
    put(lang.x_arg().as_bytes());
    for flag in flags {
        put(flag.as_bytes());
    }
    put(b"--env--");
    for name in OUTPUT_ENV_VARS {
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

fn remember(file: &Path, fingerprint: &[u8], probe: &Probe) -> std::io::Result<()> {
    let dir = file.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(&encode(fingerprint, probe))?;
    tmp.persist(file).map_err(|e| e.error)?;
    Ok(())
}

fn encode(fingerprint: &[u8], p: &Probe) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    let mut put = |bytes: &[u8]| {
        out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        out.extend_from_slice(bytes);
    };
    put(fingerprint);
    put(p.invoke.as_os_str().as_encoded_bytes());
    put(p.resolved.as_os_str().as_encoded_bytes());
    put(p.blake3.as_bytes());
    put(p.version.as_bytes());
    put(p.machine.as_bytes());
    put(&(p.cpu.len() as u64).to_le_bytes());
    for o in &p.cpu {
        put(o.as_bytes());
    }
    put(&(p.env.len() as u64).to_le_bytes());
    for e in &p.env {
        put(e.as_bytes());
    }
    out
}

/// Reads a remembered probe; `None` unless it is well formed and made for `fingerprint`.
fn decode(bytes: &[u8], fingerprint: &[u8]) -> Option<Probe> {
    let mut rest = bytes.strip_prefix(MAGIC)?;
    let mut take = || -> Option<&[u8]> {
        let len = usize::try_from(u64::from_le_bytes(rest.get(..8)?.try_into().ok()?)).ok()?;
        let item = rest.get(8..8usize.checked_add(len)?)?;
        rest = &rest[8 + len..];
        Some(item)
    };
    if take()? != fingerprint {
        return None;
    }
    let text = |b: &[u8]| String::from_utf8(b.to_vec()).ok();
    let path = |b: &[u8]| text(b).map(PathBuf::from);
    let invoke = path(take()?)?;
    let resolved = path(take()?)?;
    let blake3 = text(take()?)?;
    let version = text(take()?)?;
    let machine = text(take()?)?;
    let count = |b: &[u8]| Some(u64::from_le_bytes(b.try_into().ok()?));
    let n = count(take()?)?;
    let cpu = (0..n).map(|_| text(take()?)).collect::<Option<Vec<_>>>()?;
    let n = count(take()?)?;
    let env = (0..n).map(|_| text(take()?)).collect::<Option<Vec<_>>>()?;
    Some(Probe {
        invoke,
        resolved,
        blake3,
        version,
        machine,
        cpu,
        env,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Probe {
        Probe {
            invoke: PathBuf::from("/usr/bin/cc"),
            resolved: PathBuf::from("/usr/bin/x86_64-linux-gnu-gcc-12"),
            blake3: "ab".repeat(32),
            version: "cc (Debian 12.2.0-14) 12.2.0".to_owned(),
            machine: "x86_64-linux-gnu".to_owned(),
            cpu: vec!["-march=znver3".to_owned()],
            env: vec!["CPATH=/x".to_owned()],
        }
    }

    #[test]
    fn round_trips_and_rejects_another_fingerprint_or_damage() {
        let bytes = encode(b"fp", &sample());
        let back = decode(&bytes, b"fp").expect("decodes");
        assert_eq!(back.blake3, sample().blake3);
        assert_eq!(back.cpu, sample().cpu);
        assert_eq!(back.env, sample().env);
        assert!(decode(&bytes, b"other").is_none());
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut], b"fp").is_none(), "cut at {cut}");
        }
    }
}
