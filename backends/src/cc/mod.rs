//! The system C/C++ compiler backend: runs `cc -c` (or `c++ -c`) on a source
//! unit and returns the object.

mod probe;
mod probe_cache;

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

pub use probe::OUTPUT_ENV_VARS;

use crate::{Backend, BackendIdentity, CompiledObject, Error, defined_symbols};

/// The source language, passed to the compiler as `-x c` or `-x c++`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
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
    /// Flags, passed before `-x <lang> -c <file> -o <object>`, in this order.
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
    /// The unit's name, used in error messages and, reduced to its last path
    /// component, as the name of the source file the compiler sees
    /// (`dir/prog.c` is compiled as `prog.c`).
    pub name: String,
    /// The source text.
    pub source: Vec<u8>,
}

impl SourceUnit {
    /// A unit named `name` with `source`.
    pub fn new(name: impl Into<String>, source: impl Into<Vec<u8>>) -> SourceUnit {
        SourceUnit {
            name: name.into(),
            source: source.into(),
        }
    }
}

/// Compiles C or C++ with the system compiler (`cc`, `c++`, or a configured
/// driver that understands GCC-style options).
///
/// # Identity
///
/// Computed once by [`CcBackend::new`] (it runs the compiler three times,
/// in parallel, and hashes its binary):
///
/// - `name`: `cc/c` or `cc/c++`;
/// - `version`: the path run, its canonical path (symlinks resolved), the
///   BLAKE3 of that file's contents, the `--version` output (in the `C`
///   locale), and the set values of [`OUTPUT_ENV_VARS`];
/// - `flags`: the configured flags, in order (`flags_ordered` = true);
/// - `target`: `-dumpmachine`, then the code-generation options the driver
///   passes to the compiler proper according to `-###` (where GCC shows
///   `-march=native` resolved to the CPU and its features, and Clang its
///   `-target-cpu` and `-target-feature`s). If a flag asks for `native` and
///   `-###` does not show what it resolves to, construction fails with
///   [`Error::UnresolvedNative`] rather than produce an inexact identity.
///
/// Only the driver binary is hashed, not the compiler proper (`cc1`) or the
/// headers it reads; a compiler upgrade changes the driver and its version
/// string, and header contents are the frontend's dependencies to key.
///
/// # Compiling
///
/// Each compile writes the source to a fresh temporary directory as
/// `<last component of the unit name>.<c|cpp>` (so diagnostics name the
/// unit's file) and runs, in that directory,
/// `<compiler> <flags> -x <lang> -c <file> -o <file>.o`. Quoted `#include`s
/// are therefore not found next to the original file: pass `-I<dir>`. With
/// `-g` the debug info records the temporary directory, so objects are
/// correct but not byte-identical between compiles. Warnings of successful
/// compiles are dropped.
///
/// # Examples
///
/// ```no_run
/// use jitcache_backends::{Backend, CcBackend, CcConfig, SourceUnit};
///
/// let backend = CcBackend::new(CcConfig::c().with_flags(["-O2"]))?;
/// let object = backend.compile(&SourceUnit::new("add.c", "int add(int a, int b) { return a + b; }"))?;
/// assert_eq!(object.symbols, ["add"]);
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
}

impl CcBackend {
    /// Finds the compiler and computes its identity.
    ///
    /// This runs processes: build the backend once and clone it (clones
    /// share everything and are cheap).
    ///
    /// # Errors
    ///
    /// [`Error::CompilerNotFound`], [`Error::Spawn`], [`Error::Io`] (hashing
    /// the binary), [`Error::CompilerQuery`] if `--version` or `-dumpmachine`
    /// fails, [`Error::UnresolvedNative`].
    pub fn new(config: CcConfig) -> Result<CcBackend, Error> {
        let probe = probe::probe(&config.compiler, config.lang, &config.flags)?;
        Ok(CcBackend::from_probe(config, probe))
    }

    fn from_probe(config: CcConfig, probe: probe::Probe) -> CcBackend {
        let identity = identity(&config, &probe);
        CcBackend {
            inner: Arc::new(Inner {
                config,
                probe,
                identity,
            }),
        }
    }

    /// Like [`CcBackend::new`], remembering the probe in `dir` and reusing it while the
    /// compiler binary (device, inode, size, modification and change times), the flags,
    /// the output-changing environment and, for `-march=native`, the CPU are unchanged:
    /// a warm start then runs no process. The identity is the same as `new` computes.
    ///
    /// # Errors
    ///
    /// As [`CcBackend::new`]; an unreadable or unwritable `dir` is not an error.
    pub fn with_probe_cache(config: CcConfig, dir: &Path) -> Result<CcBackend, Error> {
        let probe = probe_cache::load_or_probe(dir, &config.compiler, config.lang, &config.flags)?;
        Ok(CcBackend::from_probe(config, probe))
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

    /// Runs the compiler on `unit` inside `dir`.
    fn run(&self, unit: &SourceUnit, dir: &Path) -> Result<Vec<u8>, Error> {
        let config = &self.inner.config;
        let compiler = &self.inner.probe.invoke;
        let file = format!("{}.{}", file_stem(&unit.name), config.lang.extension());
        let object = format!("{file}.o");
        let source_path = dir.join(&file);
        std::fs::write(&source_path, &unit.source).map_err(|source| Error::Io {
            path: source_path.clone(),
            source,
        })?;

        let mut command = Command::new(compiler);
        command
            .args(&config.flags)
            .args(["-x", config.lang.x_arg(), "-c", &file, "-o", &object])
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let output = probe::retry_busy(|| command.output()).map_err(|source| Error::Spawn {
            program: compiler.clone(),
            source,
        })?;
        if !output.status.success() {
            let mut stderr = String::from_utf8_lossy(&output.stderr)
                .trim_end()
                .to_owned();
            let stdout = String::from_utf8_lossy(&output.stdout);
            if !stdout.trim().is_empty() {
                stderr.push('\n');
                stderr.push_str(stdout.trim_end());
            }
            return Err(Error::CompileFailed {
                unit: unit.name.clone(),
                compiler: compiler.clone(),
                status: output.status.to_string(),
                stderr,
            });
        }
        let object_path = dir.join(&object);
        std::fs::read(&object_path).map_err(|source| Error::Io {
            path: object_path,
            source,
        })
    }
}

/// The identity of `config` run with the probed compiler.
fn identity(config: &CcConfig, probe: &probe::Probe) -> BackendIdentity {
    let mut version = format!(
        "path={}\nresolved={}\nblake3={}\nversion={}",
        probe.invoke.display(),
        probe.resolved.display(),
        probe.blake3,
        probe.version
    );
    for var in &probe.env {
        version.push_str("\nenv ");
        version.push_str(var);
    }
    let mut target = probe.machine.clone();
    for option in &probe.cpu {
        target.push(' ');
        target.push_str(option);
    }
    BackendIdentity {
        name: format!("cc/{}", config.lang),
        version,
        flags: config.flags.clone(),
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

    fn compile(&self, unit: &SourceUnit) -> Result<CompiledObject, Error> {
        let dir = tempfile::Builder::new()
            .prefix("jitcache-cc-")
            .tempdir()
            .map_err(|source| Error::Io {
                path: std::env::temp_dir(),
                source,
            })?;
        let bytes = self.run(unit, dir.path())?;
        let symbols = defined_symbols(&bytes, &unit.name)?;
        Ok(CompiledObject::new(bytes, symbols))
    }
}

#[cfg(test)]
mod tests {
    use super::file_stem;
    use super::probe::{cpu_options, mentions_native, split_command_line};

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
