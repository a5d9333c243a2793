//! The C and C++ frontend's loader: one unit per source file, `.c` through the C
//! compiler and `.cc`, `.cpp`, `.cxx` through the C++ compiler, each compiled in place
//! from the program's directory, as a build would.
//!
//! A unit's key is its source's BLAKE3 digest (from [`JitCache::file_digests`], which
//! reads only the sources whose metadata changed since it last hashed them), the
//! compiler's identity and flags; the headers it includes are what the compiler reports
//! it read, kept in the unit's manifest by the cache (see `docs/backends.md`). A source
//! is read in full only to compile it, and must then still have the digest its key
//! names. The program's directory is the backend's base
//! directory, so keys do not depend on where the program is checked out.

use std::path::{Path, PathBuf};

use jitcache::backends::{
    Backend, BackendIdentity, CcBackend, CcConfig, CompiledObject, Language, SourceUnit,
};
use jitcache::{JitCache, KeyParts};
use jitcache_linker::Symbol;

use super::{Loaded, RunOptions, find_symbol};
use crate::Error;

/// File extensions of C++ sources.
const CXX_EXTENSIONS: &[&str] = &["cc", "cpp", "cxx", "c++", "C"];

/// Calls a C-style `int main(int argc, char **argv)` with argv[0] = the program's path;
/// -1 if its unit is no longer loaded.
pub(super) fn call_c_main(main: &Symbol, path: &Path, args: &[String]) -> i32 {
    let mut argv = Vec::with_capacity(args.len() + 1);
    argv.push(path.display().to_string());
    argv.extend(args.iter().cloned());
    main.call_main(&argv).unwrap_or(-1)
}

/// The language of a source file, by its extension; `None` for anything else.
fn language_of(path: &Path) -> Option<Language> {
    match path.extension()?.to_str()? {
        "c" => Some(Language::C),
        ext if CXX_EXTENSIONS.contains(&ext) => Some(Language::Cpp),
        _ => None,
    }
}

/// The sources of a program: the file itself, or every C and C++ source directly in the
/// directory, sorted; with the program's directory (made absolute).
fn sources(path: &Path) -> Result<(PathBuf, Vec<(PathBuf, Language)>), Error> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let absolute = std::fs::canonicalize(path).map_err(io)?;
    let (base, mut files) = if absolute.is_dir() {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(&absolute).map_err(io)? {
            let entry = entry.map_err(io)?;
            let file = entry.path();
            if let Some(lang) = language_of(&file).filter(|_| is_file(&entry)) {
                files.push((file, lang));
            }
        }
        (absolute, files)
    } else {
        let lang = language_of(&absolute).ok_or_else(|| Error::Program {
            path: path.to_path_buf(),
            message: "not a C or C++ source (.c, .cc, .cpp, .cxx)".to_owned(),
        })?;
        let base = absolute.parent().map(Path::to_path_buf).unwrap_or_default();
        (base, vec![(absolute, lang)])
    };
    files.sort_by(|a, b| a.0.cmp(&b.0));
    if files.is_empty() {
        return Err(Error::Program {
            path: path.to_path_buf(),
            message: "no C or C++ sources (.c, .cc, .cpp, .cxx)".to_owned(),
        });
    }
    Ok((base, files))
}

/// Whether a directory entry is a regular file, or a link to one. The type comes from
/// the directory listing itself, so only a symbolic link costs a `stat`: a warm start
/// lists hundreds of sources.
fn is_file(entry: &std::fs::DirEntry) -> bool {
    match entry.file_type() {
        Ok(kind) if kind.is_symlink() => entry.path().is_file(),
        Ok(kind) => kind.is_file(),
        Err(_) => entry.path().is_file(),
    }
}

/// The bytes of a source file: `open`, `read` until end of file, `close`. A source is
/// small, so a first read into a 64 KiB buffer usually holds it all, and the size
/// query that `std::fs::read` makes first would be one more system call per unit.
fn read_source(path: &Path) -> Result<Vec<u8>, Error> {
    use std::io::Read;
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 64 * 1024];
    loop {
        match file.read(&mut chunk) {
            Ok(0) => return Ok(bytes),
            Ok(n) => bytes.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io(e)),
        }
    }
}

/// Loads the C or C++ program at `path` (a file, or a directory of sources) and finds
/// `main`.
pub(super) fn load(cache: &JitCache, path: &Path, options: &RunOptions) -> Result<Loaded, Error> {
    let (base, files) = sources(path)?;
    let backend = Compilers::new(cache, options, &base, &files)?;
    if backend.cxx.is_some() {
        // C++ code calls into the C++ runtime (operator new, exceptions, the library).
        cache
            .linker()
            .open_library("stdc++")
            .map_err(jitcache::Error::from)?;
    }
    let paths: Vec<PathBuf> = files.iter().map(|(file, _)| file.clone()).collect();
    let digests = cache.file_digests(&paths)?;
    let names: Vec<String> = paths
        .iter()
        .map(|file| {
            file.strip_prefix(&base)
                .unwrap_or(file)
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    let parts: Vec<KeyParts<'_>> = digests
        .iter()
        .zip(&names)
        .zip(&files)
        .map(|((digest, name), (_, lang))| KeyParts {
            namespace: match lang {
                Language::C => "c",
                Language::Cpp => "c++",
            },
            name,
            unit: digest,
            deps: &[],
        })
        .collect();
    let units = cache.get_or_compile_batch(&parts, &backend, |i| {
        let source = read_source(&paths[i]).map_err(|e| jitcache::Error::frontend(&names[i], e))?;
        if *blake3::hash(&source).as_bytes() != digests[i] {
            // The key names the contents hashed a moment ago: compiling others under it
            // would store an object for the wrong source.
            return Err(jitcache::Error::frontend(
                &names[i],
                "the source changed while the program was loading; run it again",
            ));
        }
        Ok((files[i].1, SourceUnit::at(&paths[i], source)))
    })?;
    let entry = find_symbol(&units, "main", path)?;
    Ok((units, entry, call_c_main))
}

/// The C compiler, the C++ compiler, or both (a program that mixes the two languages is
/// one batch, so its units call each other however they like): one backend whose identity
/// is the one compiler's, or both compilers' for a mixed program.
struct Compilers {
    c: Option<CcBackend>,
    cxx: Option<CcBackend>,
    identity: BackendIdentity,
}

impl Compilers {
    /// The compilers `files` need, configured from `options`, with `base` as their base
    /// directory and their probes remembered in the cache.
    fn new(
        cache: &JitCache,
        options: &RunOptions,
        base: &Path,
        files: &[(PathBuf, Language)],
    ) -> Result<Compilers, Error> {
        let default_flags = || vec!["-O2".to_owned(), "-fPIC".to_owned()];
        let probes = cache.component_dir("cc-probes");
        let make = |lang: Language| -> Result<Option<CcBackend>, Error> {
            if !files.iter().any(|(_, l)| *l == lang) {
                return Ok(None);
            }
            let (compiler, flags) = match lang {
                Language::C => (&options.cc, &options.cflags),
                Language::Cpp => (&options.cxx, &options.cxxflags),
            };
            let mut config = CcConfig::for_language(lang)
                .with_flags(flags.clone().unwrap_or_else(default_flags));
            if let Some(compiler) = compiler {
                config.compiler = compiler.clone();
            }
            let mut builder = CcBackend::builder(config).base_dir(base);
            if let Some(dir) = &probes {
                // A remembered compiler probe spares a warm start three compiler processes.
                builder = builder.probe_cache(dir);
            }
            Ok(Some(builder.build()?))
        };
        let c = make(Language::C)?;
        let cxx = make(Language::Cpp)?;
        let identity = match (&c, &cxx) {
            (Some(one), None) | (None, Some(one)) => one.identity().clone(),
            (Some(c), Some(cxx)) => combined(c.identity(), cxx.identity()),
            (None, None) => {
                return Err(Error::Program {
                    path: base.to_path_buf(),
                    message: "no C or C++ sources".to_owned(),
                });
            }
        };
        Ok(Compilers { c, cxx, identity })
    }

    fn backend(&self, lang: Language) -> Result<&CcBackend, jitcache::backends::Error> {
        match lang {
            Language::C => self.c.as_ref(),
            Language::Cpp => self.cxx.as_ref(),
        }
        // Every unit's language is one of the program's, so this does not happen.
        .ok_or_else(|| jitcache::backends::Error::CompilerNotFound {
            compiler: PathBuf::from(lang.default_compiler()),
            in_path: false,
        })
    }
}

/// The identity of a C and a C++ compiler used together: both, so that a change to
/// either compiler or its flags changes every key of the program.
fn combined(c: &BackendIdentity, cxx: &BackendIdentity) -> BackendIdentity {
    let mut flags = c.flags.clone();
    flags.push("--c++".to_owned());
    flags.extend(cxx.flags.iter().cloned());
    BackendIdentity {
        name: format!("{}+{}", c.name, cxx.name),
        version: format!("{}\n--c++\n{}", c.version, cxx.version),
        flags,
        flags_ordered: true,
        target: format!("{}\n--c++\n{}", c.target, cxx.target),
    }
}

impl Backend for Compilers {
    type Unit = (Language, SourceUnit);

    fn identity(&self) -> &BackendIdentity {
        &self.identity
    }

    fn compile(
        &self,
        (lang, unit): &(Language, SourceUnit),
    ) -> Result<CompiledObject, jitcache::backends::Error> {
        self.backend(*lang)?.compile(unit)
    }

    fn may_read_files(&self) -> bool {
        true
    }

    fn base_dir(&self) -> Option<&Path> {
        self.c.as_ref().or(self.cxx.as_ref())?.base_dir()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_source_returns_every_byte_of_small_empty_and_large_files() {
        let dir = tempfile::tempdir().unwrap();
        // 200 KiB spans several 64 KiB reads, with a last read that is not full.
        let large: Vec<u8> = (0..200 * 1024 + 7).map(|i| (i * 31 % 251) as u8).collect();
        for (name, bytes) in [
            ("empty.c", Vec::new()),
            ("small.c", b"int x;\n".to_vec()),
            ("large.c", large),
        ] {
            let path = dir.path().join(name);
            std::fs::write(&path, &bytes).unwrap();
            assert_eq!(read_source(&path).unwrap(), bytes, "{name}");
        }
    }

    #[test]
    fn read_source_names_a_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("gone.c");
        match read_source(&missing) {
            Err(Error::Io { path, source }) => {
                assert_eq!(path, missing);
                assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
            }
            other => panic!("expected an I/O error naming the file, got {other:?}"),
        }
    }

    #[test]
    fn sources_take_files_and_links_to_files_but_not_directories_or_dangling_links() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("a.c"), "int a;").unwrap();
        std::fs::write(root.join("elsewhere.txt"), "int b;").unwrap();
        std::os::unix::fs::symlink(root.join("elsewhere.txt"), root.join("b.c")).unwrap();
        std::os::unix::fs::symlink(root.join("nothing"), root.join("dangling.c")).unwrap();
        std::fs::create_dir(root.join("dir.c")).unwrap();
        let (_, files) = sources(root).unwrap();
        let names: Vec<_> = files
            .iter()
            .map(|(path, _)| path.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["a.c", "b.c"]);
    }
}
