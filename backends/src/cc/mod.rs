//! The system C/C++ compiler backend: runs `cc -c` (or `c++ -c`) on a source
//! unit and returns the object, with every file the compile read.

mod depfile;
mod hashes;
mod inputs;
mod paths;
mod probe;
mod probe_cache;

use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

pub use probe::OUTPUT_ENV_VARS;

use crate::{Backend, BackendIdentity, CompiledObject, Error, Inputs, defined_symbols};

/// The source language, passed to the compiler as `-x c` or `-x c++`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Language {
    /// C (`-x c`, default compiler `cc`).
    #[default]
    C,
    /// C++ (`-x c++`, default compiler `c++`).
    Cpp,
}

impl Language {
    /// The argument of `-x` for this language.
    pub fn x_arg(self) -> &'static str {
        match self {
            Language::C => "c",
            Language::Cpp => "c++",
        }
    }

    /// The conventional compiler driver for this language: `cc` or `c++`.
    pub fn default_compiler(self) -> &'static str {
        match self {
            Language::C => "cc",
            Language::Cpp => "c++",
        }
    }

    /// The file extension the temporary source file gets.
    fn extension(self) -> &'static str {
        match self {
            Language::C => "c",
            Language::Cpp => "cpp",
        }
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.x_arg())
    }
}

/// How [`CcBackend`] runs the compiler.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CcConfig {
    /// The compiler: a name looked up in `PATH` (`"cc"`), or a path (anything
    /// with a `/`).
    pub compiler: PathBuf,
    /// The source language.
    pub lang: Language,
    /// Flags, passed before `-x <lang> -c <file> -o <object>`, in this order
    /// (dependency-output options such as `-MD` and `-MF` are left out: the backend
    /// writes its own depfile).
    pub flags: Vec<String>,
}

impl CcConfig {
    /// `cc` compiling C, no flags.
    pub fn c() -> CcConfig {
        CcConfig::for_language(Language::C)
    }

    /// `c++` compiling C++, no flags.
    pub fn cpp() -> CcConfig {
        CcConfig::for_language(Language::Cpp)
    }

    /// The default compiler for `lang`, no flags.
    pub fn for_language(lang: Language) -> CcConfig {
        CcConfig {
            compiler: PathBuf::from(lang.default_compiler()),
            lang,
            flags: Vec::new(),
        }
    }

    /// The same configuration with `flags`.
    pub fn with_flags<I, S>(mut self, flags: I) -> CcConfig
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.flags = flags.into_iter().map(Into::into).collect();
        self
    }
}

impl Default for CcConfig {
    fn default() -> Self {
        CcConfig::c()
    }
}

/// One translation unit for the system compiler.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SourceUnit {
    /// The unit's name, used in error messages and, for a unit without a
    /// [`path`](Self::path), reduced to its last path component, as the name of the
    /// temporary source file the compiler sees (`dir/prog.c` is compiled as `prog.c`).
    pub name: String,
    /// The source text: what the cache keys the unit by. For a unit with a path, the
    /// file's contents as the frontend read them.
    pub source: Vec<u8>,
    /// The source file on disk, if the unit is one. The compiler then compiles that
    /// file in place (so quoted `#include`s are found next to it, as in a build), and a
    /// compile during which the file's bytes stopped being [`source`](Self::source) is
    /// not cacheable. `None`: the source is written to a temporary file.
    pub path: Option<PathBuf>,
}

impl SourceUnit {
    /// A unit named `name` with `source`, compiled from a temporary copy.
    pub fn new(name: impl Into<String>, source: impl Into<Vec<u8>>) -> SourceUnit {
        SourceUnit {
            name: name.into(),
            source: source.into(),
            path: None,
        }
    }

    /// The unit of the file at `path`, whose contents are `source`; named by the path.
    pub fn at(path: impl Into<PathBuf>, source: impl Into<Vec<u8>>) -> SourceUnit {
        let path = path.into();
        SourceUnit {
            name: path.display().to_string(),
            source: source.into(),
            path: Some(path),
        }
    }

    /// The same unit, compiled from the file at `path` (whose contents are the unit's
    /// source) rather than from a temporary copy.
    pub fn with_path(mut self, path: impl Into<PathBuf>) -> SourceUnit {
        self.path = Some(path.into());
        self
    }
}

/// Builds a [`CcBackend`] with the settings that are not part of [`CcConfig`]: the base
/// directory and the probe cache. From [`CcBackend::builder`].
#[derive(Clone, Debug)]
pub struct CcBuilder {
    config: CcConfig,
    base_dir: Option<PathBuf>,
    probe_cache: Option<PathBuf>,
}

impl CcBuilder {
    /// Compiles in `dir` and keys portably relative to it: compiles run with `dir` as
    /// their current directory (relative flags such as `-Iinc` are relative to it),
    /// `-ffile-prefix-map=<dir>=.` keeps the directory out of `__FILE__` and debug
    /// info, and the identity writes paths under `dir` relative to it
    /// (`-I<dir>/inc` is `-I./inc`), so that two checkouts of a project at different
    /// paths share keys. [`Backend::base_dir`] returns it: the cache records input
    /// paths under it relative to it. A relative `dir` is taken relative to the
    /// current directory.
    pub fn base_dir(mut self, dir: impl Into<PathBuf>) -> CcBuilder {
        self.base_dir = Some(dir.into());
        self
    }

    /// Remembers the probe in `dir` (see [`CcBackend::with_probe_cache`]).
    pub fn probe_cache(mut self, dir: impl Into<PathBuf>) -> CcBuilder {
        self.probe_cache = Some(dir.into());
        self
    }

    /// Finds the compiler, probes it (or reuses a remembered probe) and computes the
    /// identity.
    ///
    /// # Errors
    ///
    /// As [`CcBackend::new`]; [`Error::BaseDir`] if the base directory is not an
    /// existing directory, or its path is not UTF-8 or contains `=` (it becomes part of
    /// a `-ffile-prefix-map=` option).
    pub fn build(self) -> Result<CcBackend, Error> {
        let base_dir = self.base_dir.map(|d| checked_base_dir(&d)).transpose()?;
        let config = self.config;
        let probe = match &self.probe_cache {
            Some(dir) => probe_cache::load_or_probe(
                dir,
                &config.compiler,
                config.lang,
                &config.flags,
                base_dir.as_deref(),
            )?,
            None => probe::probe(
                &config.compiler,
                config.lang,
                &config.flags,
                base_dir.as_deref(),
            )?,
        };
        let identity = identity(&config, &probe, base_dir.as_deref());
        Ok(CcBackend {
            inner: Arc::new(Inner {
                config,
                probe,
                identity,
                base_dir,
            }),
        })
    }
}

/// The base directory made absolute and normalized, if it can be one.
fn checked_base_dir(dir: &Path) -> Result<PathBuf, Error> {
    let bad = |message: &str| Error::BaseDir {
        path: dir.to_owned(),
        message: message.to_owned(),
    };
    let cwd = std::env::current_dir().map_err(|source| Error::Io {
        path: PathBuf::from("."),
        source,
    })?;
    let abs = paths::normalize(&cwd, dir);
    let text = abs.to_str().ok_or_else(|| bad("the path is not UTF-8"))?;
    if text.contains('=') {
        return Err(bad("the path contains `=`"));
    }
    if !abs.is_dir() {
        return Err(bad("not an existing directory"));
    }
    Ok(abs)
}

/// Compiles C or C++ with the system compiler (`cc`, `c++`, or a configured
/// driver that understands GCC-style options).
///
/// # Identity
///
/// Computed once, when the backend is built (it runs the compiler four times, in
/// parallel, and hashes the toolchain by content, each file once per version of it):
///
/// - `name`: `cc/c` or `cc/c++`;
/// - `version`: the BLAKE3 of the driver's contents (with the name it is run by, since
///   drivers look at `argv[0]`) and of every program the driver runs for a compile
///   (the `-###` command lines: GCC's `cc1`/`cc1plus` and `as`; Clang compiles in
///   process), the shared libraries those load (Clang's `libclang-cpp` and `libLLVM`,
///   GCC's `libmpfr`, `libgmp`, `libisl`, ...; not the C and C++ runtimes) and the
///   configuration files Clang reads; the `--version` output (in the `C` locale,
///   without Clang's `InstalledDir:` line); whether a base directory is mapped; and
///   the set values of [`OUTPUT_ENV_VARS`] (path lists relative to the base
///   directory). No absolute path of the machine is in it;
/// - `flags`: the configured flags, in order (`flags_ordered` = true), with the paths
///   of path options (`-I`, `-isystem`, `-iquote`, `-idirafter`, `-include`,
///   `--sysroot`, `-B`, ...) under the base directory written relative to it
///   (`-I./inc`);
/// - `target`: `-dumpmachine`, then the code-generation options the driver
///   passes to the compiler proper according to `-###` (where GCC shows
///   `-march=native` resolved to the CPU and its features, and Clang its
///   `-target-cpu` and `-target-feature`s). If a flag asks for `native` and
///   `-###` does not show what it resolves to, construction fails with
///   [`Error::UnresolvedNative`] rather than produce an inexact identity.
///
/// Headers are not in the identity: each compiled object lists what it read in
/// [`CompiledObject::inputs`], for the cache to check on lookup.
///
/// # Compiling
///
/// A unit with a [`path`](SourceUnit::path) is compiled in place, with the base
/// directory (or, without one, the file's directory) as the current directory and the
/// source named relative to it; a unit without one is written to a temporary
/// directory as `<last component of the unit name>.<c|cpp>` and compiled there (or in
/// the base directory). The object and the dependency file go to a temporary
/// directory:
///
/// ```text
/// <compiler> [-ffile-prefix-map=<base_dir>=.] <flags> -MD -MF <tmp>/unit.d [-H]
///            -x <c|c++> -c <source> -o <tmp>/<name>.o
/// ```
///
/// (`-H`, GCC's include trace, because GCC's depfile omits the precompiled headers
/// it uses; the configured flags without dependency-output options such as `-MD`,
/// `-MF`; the environment variables of [`OUTPUT_ENV_VARS`] set as when the identity
/// was made.) With a base directory, neither `__FILE__` nor debug info carries the
/// checkout's absolute path, so two checkouts give byte-identical objects, with `-g`
/// too. Warnings of successful compiles are dropped.
///
/// The object's [`inputs`](CompiledObject::inputs): every file the depfile and the
/// include trace name and the flags name (`-include`, `-imacros`, `-include-pch`,
/// `-specs=`, `-fplugin=`, `--config`, `@file`, ...), absolute and normalized; the
/// paths whose creation would shadow a header the compile used (an earlier search
/// directory, the includer's directory, a `.gch` GCC would prefer; a missing
/// directory stands for everything below it); and
/// [`uncacheable`](Inputs::uncacheable) when the object must not be stored: the source
/// or a header changed during the compile, the compiler wrote no depfile, or
/// `__DATE__`, `__TIME__` or `__TIMESTAMP__` is used while `SOURCE_DATE_EPOCH` is unset.
///
/// # Examples
///
/// ```no_run
/// use jitcache_backends::{Backend, CcBackend, CcConfig, SourceUnit};
///
/// let backend = CcBackend::new(CcConfig::c().with_flags(["-O2"]))?;
/// let object = backend.compile(&SourceUnit::new("add.c", "int add(int a, int b) { return a + b; }"))?;
/// assert_eq!(object.symbols, ["add"]);
/// assert!(object.inputs.uncacheable.is_none());
///
/// // A project's file, compiled in place, keyed portably across checkouts.
/// let project = CcBackend::builder(CcConfig::c().with_flags(["-O2", "-Iinclude"]))
///     .base_dir("/home/me/project")
///     .build()?;
/// let path = "/home/me/project/src/main.c";
/// let object = project.compile(&SourceUnit::at(path, std::fs::read(path).unwrap()))?;
/// println!("read {:?}", object.inputs.read);
/// # Ok::<(), jitcache_backends::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct CcBackend {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: CcConfig,
    probe: probe::Probe,
    identity: BackendIdentity,
    base_dir: Option<PathBuf>,
}

/// The name of the dependency file in a compile's temporary directory.
const DEPFILE: &str = "unit.d";

impl CcBackend {
    /// Finds the compiler and computes its identity, without a base directory.
    ///
    /// This runs processes: build the backend once and clone it (clones
    /// share everything and are cheap).
    ///
    /// # Errors
    ///
    /// [`Error::CompilerNotFound`], [`Error::Spawn`], [`Error::Io`] (hashing
    /// the toolchain), [`Error::CompilerQuery`] if `--version` or `-dumpmachine`
    /// fails, [`Error::UnresolvedNative`].
    pub fn new(config: CcConfig) -> Result<CcBackend, Error> {
        CcBackend::builder(config).build()
    }

    /// A builder, for a base directory or a probe cache.
    pub fn builder(config: CcConfig) -> CcBuilder {
        CcBuilder {
            config,
            base_dir: None,
            probe_cache: None,
        }
    }

    /// Like [`CcBackend::new`], remembering the probe in `dir` and reusing it while the
    /// compiler binary (device, inode, size, modification and change times), the flags,
    /// `PATH`, `LD_LIBRARY_PATH`, the output-changing environment, for `-march=native` the
    /// CPU, and the metadata of every program, library and configuration file hashed are
    /// unchanged: a warm start then runs no process and hashes nothing. The identity is
    /// the same as `new` computes.
    ///
    /// # Errors
    ///
    /// As [`CcBackend::new`]; an unreadable or unwritable `dir` is not an error.
    pub fn with_probe_cache(config: CcConfig, dir: &Path) -> Result<CcBackend, Error> {
        CcBackend::builder(config).probe_cache(dir).build()
    }

    /// The configuration the backend was built with.
    pub fn config(&self) -> &CcConfig {
        &self.inner.config
    }

    /// The compiler path that is run (found in `PATH`, symlinks kept).
    pub fn compiler_path(&self) -> &Path {
        &self.inner.probe.invoke
    }

    /// The compiler binary with every symlink resolved.
    pub fn resolved_path(&self) -> &Path {
        &self.inner.probe.resolved
    }

    /// BLAKE3 of the compiler binary's contents (lowercase hex).
    pub fn binary_hash(&self) -> &str {
        &self.inner.probe.blake3
    }

    /// The compiler's `--version` output, trimmed.
    pub fn version_output(&self) -> &str {
        &self.inner.probe.version
    }

    /// The programs, libraries and configuration files of the toolchain that the
    /// identity names by content, besides the driver: `(path, BLAKE3 in lowercase hex)`,
    /// in the identity's order.
    pub fn toolchain_files(&self) -> Vec<(&Path, &str)> {
        self.inner
            .probe
            .tools
            .iter()
            .map(|t| (t.path.as_path(), t.blake3.as_str()))
            .collect()
    }

    /// Runs the compiler on `unit`, with the object and depfile in `tmp`.
    fn run(&self, unit: &SourceUnit, tmp: &Path) -> Result<CompiledObject, Error> {
        let config = &self.inner.config;
        let probe = &self.inner.probe;
        let compiler = &probe.invoke;
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| Error::Io { path, source }
        };
        let base = self.inner.base_dir.as_deref();
        let stem = file_stem(&unit.name);

        // Where the compiler runs and how it names the source.
        let (cwd, source_arg, source_abs, temporary) = match &unit.path {
            Some(path) => {
                let process_cwd = std::env::current_dir().map_err(io(Path::new(".")))?;
                let abs = paths::normalize(&process_cwd, path);
                let cwd = match base {
                    Some(b) => b.to_path_buf(),
                    None => abs.parent().unwrap_or(Path::new("/")).to_path_buf(),
                };
                let arg = relative_path(&cwd, &abs);
                (cwd, arg, abs, false)
            }
            None => {
                let file = tmp.join(format!("{stem}.{}", config.lang.extension()));
                std::fs::write(&file, &unit.source).map_err(io(&file))?;
                let file = paths::normalize(tmp, &file);
                match base {
                    Some(b) => (b.to_path_buf(), file.clone(), file, true),
                    None => (
                        tmp.to_path_buf(),
                        PathBuf::from(file.file_name().unwrap_or_default()),
                        file,
                        true,
                    ),
                }
            }
        };
        let object_path = tmp.join(format!("{stem}.o"));
        let depfile = tmp.join(DEPFILE);
        // A file written now carries the file system's idea of "now": a header whose
        // modification or change time is later changed during the compile.
        let marker = tmp.join("started");
        std::fs::write(&marker, b"").map_err(io(&marker))?;
        let started = std::fs::metadata(&marker).map_err(io(&marker))?;
        let started = (started.mtime(), started.mtime_nsec());

        let gcc = !probe.is_clang();
        let mut command = Command::new(compiler);
        if let Some(b) = base {
            command.arg(format!("-ffile-prefix-map={}=.", b.display()));
            if temporary {
                command.arg(format!("-ffile-prefix-map={}=.", tmp.display()));
            }
        }
        command
            .args(without_dependency_flags(&config.flags))
            .arg("-MD")
            .arg("-MF")
            .arg(&depfile);
        if gcc {
            command.arg("-H");
        }
        command
            .args(["-x", config.lang.x_arg(), "-c"])
            .arg(&source_arg)
            .arg("-o")
            .arg(&object_path)
            .current_dir(&cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for var in OUTPUT_ENV_VARS.iter().chain(probe::REMOVED_ENV_VARS) {
            command.env_remove(var);
        }
        for var in &probe.env {
            if let Some((name, value)) = var.split_once('=') {
                command.env(name, value);
            }
        }
        let output = probe::retry_busy(|| command.output()).map_err(|source| Error::Spawn {
            program: compiler.clone(),
            source,
        })?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() {
            let mut stderr = if gcc {
                depfile::without_include_trace(&stderr)
            } else {
                stderr.trim_end().to_owned()
            };
            let stdout = String::from_utf8_lossy(&output.stdout);
            if !stdout.trim().is_empty() {
                stderr.push('\n');
                stderr.push_str(stdout.trim_end());
            }
            return Err(Error::CompileFailed {
                unit: unit.name.clone(),
                compiler: compiler.clone(),
                status: output.status.to_string(),
                stderr: stderr.trim_end().to_owned(),
            });
        }
        let bytes = std::fs::read(&object_path).map_err(io(&object_path))?;
        let symbols = defined_symbols(&bytes, &unit.name)?;

        let trace = if gcc {
            depfile::include_trace(&stderr)
        } else {
            depfile::IncludeTrace::default()
        };
        let inputs = self.inputs(InputsOf {
            unit,
            cwd: &cwd,
            source: &source_abs,
            temporary,
            depfile: &depfile,
            trace: &trace,
            started,
            tmp,
        });
        Ok(CompiledObject {
            bytes,
            symbols,
            inputs,
        })
    }

    /// The [`Inputs`] of a finished compile.
    fn inputs(&self, of: InputsOf<'_>) -> Inputs {
        let probe = &self.inner.probe;
        let mut uncacheable = None;
        let mut why = |reason: String| {
            uncacheable.get_or_insert(reason);
        };

        // The source must still be what the key says.
        if !of.temporary {
            match std::fs::read(of.source) {
                Ok(now) if now == of.unit.source => {}
                Ok(_) => why(format!(
                    "the source changed while it compiled ({})",
                    of.source.display()
                )),
                Err(e) => why(format!(
                    "the source could not be read again ({}: {e})",
                    of.source.display()
                )),
            }
        }

        // What the compiler says it read.
        let headers: Vec<PathBuf> = match std::fs::read_to_string(of.depfile) {
            Ok(text) => depfile::prerequisites(&text)
                .iter()
                .map(|p| paths::normalize(of.cwd, Path::new(p)))
                .filter(|p| p != of.source)
                .collect(),
            Err(_) => {
                why("the compiler wrote no dependency file".to_owned());
                Vec::new()
            }
        };
        let flag_files = inputs::flag_files(&self.inner.config.flags, of.cwd);
        let mut read = headers.clone();
        read.extend(
            of.trace
                .pch
                .iter()
                .map(|p| paths::normalize(of.cwd, Path::new(p))),
        );
        read.extend(flag_files.read.iter().cloned());
        let mut absent = Vec::new();
        for include in &flag_files.includes {
            for pch in inputs::pch_variants(include) {
                if pch.is_file() {
                    read.push(pch);
                } else {
                    absent.push(pch);
                }
            }
        }
        // The temporary directory (the unit's copy, the depfile) is gone after the compile.
        read.retain(|p| p != of.source && !p.starts_with(of.tmp));
        read.sort();
        read.dedup();

        // What could have been read instead.
        let mut user_dirs = flag_files.user_dirs.clone();
        user_dirs.extend(inputs::cpath_dirs(&probe.env, of.cwd));
        let (search, unplaced) = inputs::search_dirs(&probe.search, of.cwd, &user_dirs);
        let mut pch_able: Vec<PathBuf> = Vec::new();
        if !probe.is_clang() {
            pch_able.extend(
                of.trace
                    .direct
                    .iter()
                    .map(|p| paths::normalize(of.cwd, Path::new(p))),
            );
            pch_able.extend(flag_files.includes.iter().cloned());
        }
        absent.extend(inputs::shadowing(
            &headers, &pch_able, of.source, &search, unplaced,
        ));
        absent.retain(|p| read.binary_search(p).is_err() && !p.starts_with(of.tmp) && !p.exists());
        absent.sort();
        absent.dedup();

        // Time macros make the object depend on the clock.
        if !probe
            .env
            .iter()
            .any(|v| v.starts_with("SOURCE_DATE_EPOCH="))
        {
            let source = std::iter::once((of.unit.name.clone(), of.unit.source.clone()));
            let files = headers
                .iter()
                .filter(|h| !is_precompiled(h))
                .filter_map(|h| std::fs::read(h).ok().map(|b| (h.display().to_string(), b)));
            for (name, text) in source.chain(files) {
                if let Some(m) = inputs::time_macro(&text) {
                    why(format!("{name} uses {m}, and SOURCE_DATE_EPOCH is not set"));
                    break;
                }
            }
        }

        // A header written during the compile may have been read half old, half new.
        for file in &read {
            let Ok(md) = std::fs::metadata(file) else {
                why(format!("{} went away while it compiled", file.display()));
                continue;
            };
            let changed = (md.mtime(), md.mtime_nsec()).max((md.ctime(), md.ctime_nsec()));
            if changed > of.started {
                why(format!("{} changed while it compiled", file.display()));
            }
        }

        Inputs {
            read,
            absent,
            uncacheable,
        }
    }
}

/// What [`CcBackend::inputs`] looks at.
struct InputsOf<'a> {
    unit: &'a SourceUnit,
    /// The compile's current directory.
    cwd: &'a Path,
    /// The source file compiled, absolute.
    source: &'a Path,
    /// Whether the source is the backend's temporary copy.
    temporary: bool,
    depfile: &'a Path,
    trace: &'a depfile::IncludeTrace,
    /// The file system's time when the compile started (seconds, nanoseconds).
    started: (i64, i64),
    /// The compile's temporary directory, removed afterwards: nothing in it is an input.
    tmp: &'a Path,
}

/// Whether `path` is a precompiled header (binary; not scanned for time macros).
fn is_precompiled(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "gch" || e == "pch")
}

/// `path` relative to `dir` (both absolute and normalized), with `..` where needed.
fn relative_path(dir: &Path, path: &Path) -> PathBuf {
    let dir: Vec<_> = dir.components().collect();
    let file: Vec<_> = path.components().collect();
    let common = dir.iter().zip(&file).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..dir.len() {
        out.push("..");
    }
    for c in &file[common..] {
        out.push(c);
    }
    out
}

/// The flags without dependency-output options (`-M`, `-MM`, `-MD`, `-MMD`, `-MP`, `-MG`,
/// `-MF`/`-MT`/`-MQ`/`-MJ` and their argument), which change no object: the backend
/// writes its own depfile.
pub(crate) fn without_dependency_flags(flags: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(flags.len());
    let mut iter = flags.iter();
    while let Some(flag) = iter.next() {
        match flag.as_str() {
            "-M" | "-MM" | "-MD" | "-MMD" | "-MP" | "-MG" => {}
            "-MF" | "-MT" | "-MQ" | "-MJ" => {
                iter.next();
            }
            f if ["-MF", "-MT", "-MQ", "-MJ"]
                .iter()
                .any(|o| f.starts_with(o)) => {}
            _ => out.push(flag.clone()),
        }
    }
    out
}

/// The identity of `config` run with the probed compiler, with paths under `base_dir`
/// relative to it.
fn identity(config: &CcConfig, probe: &probe::Probe, base_dir: Option<&Path>) -> BackendIdentity {
    let base = base_dir.and_then(Path::to_str);
    let driver = probe
        .invoke
        .file_name()
        .map_or_else(|| "?".into(), |n| n.to_string_lossy());
    let mut version = format!("driver {driver} blake3={}", probe.blake3);
    for tool in &probe.tools {
        version.push_str(&format!(
            "\n{} {} blake3={}",
            tool.kind.word(),
            tool.name,
            tool.blake3
        ));
    }
    // Clang's `InstalledDir:` is where this machine has it; the hashes say what it is.
    let described: Vec<&str> = probe
        .version
        .lines()
        .filter(|l| !l.starts_with("InstalledDir:"))
        .collect();
    version.push_str("\nversion=");
    version.push_str(&described.join("\n"));
    if base.is_some() {
        version.push_str("\nfile-prefix-map=<base_dir>=.");
    }
    for var in &probe.env {
        version.push_str("\nenv ");
        version.push_str(&paths::relative_env(base, var));
    }
    let mut target = probe.machine.clone();
    for option in &probe.cpu {
        target.push(' ');
        target.push_str(option);
    }
    BackendIdentity {
        name: format!("cc/{}", config.lang),
        version,
        flags: paths::relative_flags(base, &config.flags),
        flags_ordered: true,
        target,
    }
}

/// A safe file stem from a unit name: its last path component without a
/// C/C++ extension, with anything outside `[A-Za-z0-9._-]` replaced by `_`.
fn file_stem(name: &str) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let stem = [".c", ".cc", ".cpp", ".cxx", ".c++", ".C"]
        .iter()
        .find_map(|ext| last.strip_suffix(ext))
        .unwrap_or(last);
    let mut out: String = stem
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    // Keep the name from being empty, hidden, or read as an option.
    if out.is_empty() || out.starts_with(['.', '-']) {
        out.insert_str(0, "unit");
    }
    out
}

impl Backend for CcBackend {
    type Unit = SourceUnit;

    fn identity(&self) -> &BackendIdentity {
        &self.inner.identity
    }

    fn may_read_files(&self) -> bool {
        true
    }

    fn base_dir(&self) -> Option<&Path> {
        self.inner.base_dir.as_deref()
    }

    fn compile(&self, unit: &SourceUnit) -> Result<CompiledObject, Error> {
        let dir = tempfile::Builder::new()
            .prefix("jitcache-cc-")
            .tempdir()
            .map_err(|source| Error::Io {
                path: std::env::temp_dir(),
                source,
            })?;
        self.run(unit, dir.path())
    }
}

#[cfg(test)]
mod tests {
    use super::probe::{cpu_options, mentions_native, search_list, split_command_line};
    use super::{file_stem, relative_path, without_dependency_flags};
    use std::path::Path;

    #[test]
    fn relative_paths_climb_where_needed() {
        let rel = |d: &str, p: &str| relative_path(Path::new(d), Path::new(p));
        assert_eq!(
            rel("/b/proj", "/b/proj/src/main.c"),
            Path::new("src/main.c")
        );
        assert_eq!(
            rel("/b/proj/src", "/b/proj/src/main.c"),
            Path::new("main.c")
        );
        assert_eq!(rel("/b/proj", "/b/other/x.c"), Path::new("../other/x.c"));
    }

    #[test]
    fn dependency_flags_are_dropped() {
        let flags: Vec<String> = [
            "-O2", "-MD", "-MF", "x.d", "-MTobj", "-MMD", "-MP", "-I", "inc",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(without_dependency_flags(&flags), ["-O2", "-I", "inc"]);
    }

    #[test]
    fn search_list_of_gcc_and_clang() {
        let gcc = "ignoring nonexistent directory \"/usr/local/include/x86_64-linux-gnu\"\n\
                   ignoring nonexistent directory \"nope\"\n\
                   ignoring duplicate directory \"/p/d2\"\n\
                   #include \"...\" search starts here:\n q\n\
                   #include <...> search starts here:\n d1\n d2\n /usr/include\n\
                   End of search list.\n # 0 \"/dev/null\"\n";
        let list = search_list(gcc);
        assert_eq!(
            list.missing,
            ["/usr/local/include/x86_64-linux-gnu", "nope"]
        );
        assert_eq!(list.quote, ["q"]);
        assert_eq!(list.bracket, ["d1", "d2", "/usr/include"]);
        let mac = "#include <...> search starts here:\n /S/Frameworks (framework directory)\nEnd of search list.\n";
        assert_eq!(search_list(mac).bracket, ["/S/Frameworks"]);
    }

    #[test]
    fn file_stems_are_safe() {
        assert_eq!(file_stem("dir/prog.c"), "prog");
        assert_eq!(file_stem("a b$c.cpp"), "a_b_c");
        assert_eq!(file_stem(""), "unit");
        assert_eq!(file_stem("-rf"), "unit-rf");
        assert_eq!(file_stem("../.."), "unit..");
        assert_eq!(file_stem("x/"), "unit");
    }

    #[test]
    fn native_flags_are_recognized() {
        assert!(mentions_native("-march=native"));
        assert!(mentions_native("-mtune=native"));
        assert!(mentions_native("-mcpu=native"));
        assert!(!mentions_native("-march=x86-64-v3"));
        assert!(!mentions_native("-DX=native"));
    }

    #[test]
    fn command_lines_split_with_quotes() {
        assert_eq!(
            split_command_line(
                r#" /usr/lib/cc1 -quiet "-march=znver3" --param "l1-cache-size=48" "a \"b\"""#
            ),
            [
                "/usr/lib/cc1",
                "-quiet",
                "-march=znver3",
                "--param",
                "l1-cache-size=48",
                "a \"b\""
            ]
        );
    }

    #[test]
    fn gcc_dry_run_gives_resolved_cpu() {
        let out = "Using built-in specs.\nCOLLECT_GCC_OPTIONS='-march=native' '-c'\n \
            /usr/lib/gcc/x86_64-linux-gnu/12/cc1 -quiet -imultiarch x86_64-linux-gnu /dev/null \
            \"-march=znver3\" -mmmx -mno-sse4a --param \"l1-cache-size=48\" \"-mtune=znver3\" \
            -quiet -dumpbase null -o /tmp/ccFe2R08.s\n as --64 -o /dev/null /tmp/ccFe2R08.s\n";
        assert_eq!(
            cpu_options(out),
            [
                "-march=znver3",
                "-mmmx",
                "-mno-sse4a",
                "--param=l1-cache-size=48",
                "-mtune=znver3"
            ]
        );
    }

    #[test]
    fn clang_dry_run_gives_target_cpu_and_features() {
        let out = " \"/usr/lib/llvm-14/bin/clang\" \"-cc1\" \"-triple\" \"x86_64-pc-linux-gnu\" \
            \"-emit-obj\" \"-target-cpu\" \"znver3\" \"-target-feature\" \"+avx2\" \
            \"-target-feature\" \"-avx512pf\" \"-o\" \"/dev/null\"\n";
        assert_eq!(
            cpu_options(out),
            [
                "-triple=x86_64-pc-linux-gnu",
                "-target-cpu=znver3",
                "-target-feature=+avx2",
                "-target-feature=-avx512pf"
            ]
        );
    }
}
