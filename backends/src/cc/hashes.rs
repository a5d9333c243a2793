//! Content hashes of toolchain files, computed once per version of a file.
//!
//! The identity names the driver and every program and library it runs by the BLAKE3
//! of its contents: tens to hundreds of megabytes (GCC's `cc1` is ~33 MB, Clang's
//! `libLLVM` ~110 MB). A hash is remembered with the file's device, inode, size,
//! modification and change times, in this process and, through the probe cache, on
//! disk; it is computed again only when one of those changed.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use super::probe::hash_file;
use crate::Error;

/// What says a file is unchanged: device, inode, size, modification and change times
/// (seconds and nanoseconds).
pub(crate) type FileStat = [u64; 7];

/// The [`FileStat`] of `path` (symbolic links followed).
pub(crate) fn stat(path: &Path) -> std::io::Result<FileStat> {
    let md = std::fs::metadata(path)?;
    Ok(stat_of(&md))
}

/// The [`FileStat`] of metadata.
pub(crate) fn stat_of(md: &std::fs::Metadata) -> FileStat {
    [
        md.dev(),
        md.ino(),
        md.size(),
        md.mtime() as u64,
        md.mtime_nsec() as u64,
        md.ctime() as u64,
        md.ctime_nsec() as u64,
    ]
}

type Memo = HashMap<PathBuf, (FileStat, String)>;

fn memo() -> &'static Mutex<Memo> {
    static MEMO: OnceLock<Mutex<Memo>> = OnceLock::new();
    MEMO.get_or_init(Mutex::default)
}

/// BLAKE3 (lowercase hex) of `path`'s contents, from the memo while the file's
/// [`FileStat`] is the one it was hashed with. The stat is taken before and after
/// hashing; a file that changed meanwhile is not remembered.
pub(crate) fn hash(path: &Path) -> Result<(FileStat, String), Error> {
    let io = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    let before = stat(path).map_err(io)?;
    if let Some((known, hash)) = memo().lock().ok().and_then(|m| m.get(path).cloned())
        && known == before
    {
        return Ok((known, hash));
    }
    let hash = hash_file(path)?;
    let after = stat(path).map_err(io)?;
    if after == before
        && let Ok(mut m) = memo().lock()
    {
        m.insert(path.to_owned(), (after, hash.clone()));
    }
    Ok((after, hash))
}

/// Hashes every path of `paths`, two at a time (the machines this runs on have few
/// cores, and the files are large).
pub(crate) fn hash_all(paths: &[PathBuf]) -> Result<Vec<(FileStat, String)>, Error> {
    let mut out = Vec::with_capacity(paths.len());
    for pair in paths.chunks(2) {
        let results: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = pair.iter().map(|p| s.spawn(|| hash(p))).collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .collect()
        });
        for r in results {
            out.push(r?);
        }
    }
    Ok(out)
}

/// Adds remembered hashes (from the probe cache) to this process's memo.
pub(crate) fn learn(entries: impl IntoIterator<Item = (PathBuf, FileStat, String)>) {
    if let Ok(mut m) = memo().lock() {
        for (path, stat, hash) in entries {
            m.entry(path).or_insert((stat, hash));
        }
    }
}

/// The libraries a dynamically linked program loads that can change its output: the
/// `DT_NEEDED` entries of its ELF dynamic section, found the way the dynamic loader
/// looks for them (`DT_RPATH` when there is no `DT_RUNPATH`, `LD_LIBRARY_PATH`,
/// `DT_RUNPATH`, the directories of `/etc/ld.so.conf`, then `/lib64`, `/usr/lib64`,
/// `/lib`, `/usr/lib`), `$ORIGIN` expanded; the C and C++ runtimes (`libc`, `libm`,
/// `libstdc++`, `libgcc_s`, the loader, ...) left out. For Clang these are
/// `libclang-cpp` and `libLLVM`, where the compiler is; for GCC's `cc1` the
/// arbitrary-precision and polyhedral libraries (`libmpfr`, `libgmp`, `libisl`, ...).
/// Not followed further (the libraries' own dependencies). A program that is not a
/// dynamically linked ELF file (a shell script, a static binary) has none.
pub(crate) fn needed_libraries(program: &Path) -> Vec<PathBuf> {
    // Read on demand: only the headers and the dynamic section, not the whole binary.
    let Ok(file) = std::fs::File::open(program) else {
        return Vec::new();
    };
    let cache = object::ReadCache::new(file);
    let Some(dynamic) = dynamic_entries(&cache) else {
        return Vec::new();
    };
    let origin = program.parent().unwrap_or(Path::new("/"));
    let expand = |list: &[String]| -> Vec<PathBuf> {
        list.iter()
            .flat_map(|l| l.split(':'))
            .filter(|d| !d.is_empty())
            .map(|d| {
                PathBuf::from(
                    d.replace("${ORIGIN}", "$ORIGIN")
                        .replace("$ORIGIN", &origin.to_string_lossy()),
                )
            })
            .collect()
    };
    let mut dirs = Vec::new();
    if dynamic.runpath.is_empty() {
        dirs.extend(expand(&dynamic.rpath));
    }
    if let Some(path) = std::env::var_os("LD_LIBRARY_PATH") {
        dirs.extend(std::env::split_paths(&path).filter(|d| !d.as_os_str().is_empty()));
    }
    dirs.extend(expand(&dynamic.runpath));
    dirs.extend(ld_so_conf_dirs());
    dirs.extend(["/lib64", "/usr/lib64", "/lib", "/usr/lib"].map(PathBuf::from));
    dynamic
        .needed
        .iter()
        .filter(|name| !is_runtime_library(name))
        .filter_map(|name| {
            dirs.iter()
                .map(|d| d.join(name))
                .find(|p| p.is_file())
                .and_then(|p| std::fs::canonicalize(p).ok())
        })
        .collect()
}

/// The C and C++ runtime libraries, which do not generate code.
fn is_runtime_library(name: &str) -> bool {
    const RUNTIME: &[&str] = &[
        "libc.so",
        "libm.so",
        "libstdc++.so",
        "libgcc_s.so",
        "libpthread.so",
        "libdl.so",
        "librt.so",
        "libc++.so",
        "libc++abi.so",
        "libunwind.so",
        "ld-linux",
    ];
    RUNTIME.iter().any(|r| name.starts_with(r))
}

struct Dynamic {
    needed: Vec<String>,
    rpath: Vec<String>,
    runpath: Vec<String>,
}

/// The `DT_NEEDED`, `DT_RPATH` and `DT_RUNPATH` strings of a 64-bit ELF file.
fn dynamic_entries<'data, R: object::ReadRef<'data>>(data: R) -> Option<Dynamic> {
    use object::elf;
    use object::read::elf::{Dyn, FileHeader};
    let header = elf::FileHeader64::<object::Endianness>::parse(data).ok()?;
    let endian = header.endian().ok()?;
    let sections = header.sections(endian, data).ok()?;
    let (entries, link) = sections.dynamic(endian, data).ok()??;
    let strings = sections.strings(endian, data, link).ok()?;
    let mut out = Dynamic {
        needed: Vec::new(),
        rpath: Vec::new(),
        runpath: Vec::new(),
    };
    for entry in entries {
        let list = match entry.tag(endian) {
            t if t == elf::DT_NEEDED => &mut out.needed,
            t if t == elf::DT_RPATH => &mut out.rpath,
            t if t == elf::DT_RUNPATH => &mut out.runpath,
            _ => continue,
        };
        if let Ok(s) = entry.string(endian, strings) {
            list.push(String::from_utf8_lossy(s).into_owned());
        }
    }
    Some(out)
}

/// The library directories listed in `/etc/ld.so.conf` and the files it includes
/// (`include /etc/ld.so.conf.d/*.conf`), in order.
fn ld_so_conf_dirs() -> Vec<PathBuf> {
    fn read(path: &Path, depth: usize, out: &mut Vec<PathBuf>) {
        let Ok(text) = std::fs::read_to_string(path) else {
            return;
        };
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("").trim();
            if let Some(pattern) = line.strip_prefix("include") {
                if depth < 4 {
                    for file in glob_files(pattern.trim()) {
                        read(&file, depth + 1, out);
                    }
                }
            } else if line.starts_with('/') {
                out.push(PathBuf::from(line));
            }
        }
    }
    let mut out = Vec::new();
    read(Path::new("/etc/ld.so.conf"), 0, &mut out);
    out
}

/// The files matching `dir/*suffix` (the only pattern `ld.so.conf` uses), sorted, or
/// `pattern` itself when it has no `*`.
fn glob_files(pattern: &str) -> Vec<PathBuf> {
    let path = Path::new(pattern);
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return Vec::new();
    };
    let Some((prefix, suffix)) = name.split_once('*') else {
        return vec![path.to_path_buf()];
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(prefix) && n.ends_with(suffix))
        })
        .map(|e| e.path())
        .collect();
    files.sort();
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_is_recomputed_when_the_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tool");
        std::fs::write(&file, b"one").unwrap();
        let (_, first) = hash(&file).unwrap();
        assert_eq!(first, blake3::hash(b"one").to_hex().as_str());
        assert_eq!(hash(&file).unwrap().1, first);
        std::fs::write(&file, b"two, longer").unwrap();
        assert_eq!(
            hash(&file).unwrap().1,
            blake3::hash(b"two, longer").to_hex().as_str()
        );
    }

    #[test]
    fn finds_the_libraries_of_a_dynamically_linked_program() {
        // The test binary itself links libc only (left out); a shell has no libraries
        // that generate code. What matters is that parsing works and runtimes are skipped.
        let me = std::env::current_exe().unwrap();
        let libs = needed_libraries(&me);
        assert!(libs.iter().all(|l| {
            let name = l.file_name().unwrap().to_string_lossy();
            !is_runtime_library(&name)
        }));
        assert!(needed_libraries(Path::new("/nonexistent")).is_empty());
        let script = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(script.path(), "#!/bin/sh\n").unwrap();
        assert!(needed_libraries(script.path()).is_empty());
    }
}
