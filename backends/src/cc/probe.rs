//! Finding out exactly which compiler we run and for what target: path
//! resolution, the content hashes of the driver and of every program and library it
//! runs, `--version`, `-dumpmachine`, the CPU that `-march=native` and friends resolve
//! to (from `-###`), Clang's configuration files, and the include search list (from
//! `-E -v`).

use std::ffi::OsStr;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use super::hashes::{self, FileStat};
use super::{Language, without_dependency_flags};
use crate::Error;

/// Environment variables read by GCC and Clang that change what a compile
/// produces. Their values (when set) are part of the identity, and every compile
/// runs with the values the identity was made with.
///
/// `LIBRARY_PATH` only matters to linking and `TMPDIR` only to where temporary files
/// go, so neither is here. `DEPENDENCIES_OUTPUT` and `SUNPRO_DEPENDENCIES` (extra
/// dependency files) are not either: the backend removes them from the compiler's
/// environment. `CLANG_CONFIG_FILE_SYSTEM_DIR` and `CLANG_CONFIG_FILE_USER_DIR` are
/// settings of Clang's build, not environment variables; the configuration files Clang
/// reads are part of the identity by content instead.
pub const OUTPUT_ENV_VARS: &[&str] = &[
    "CPATH",
    "C_INCLUDE_PATH",
    "CPLUS_INCLUDE_PATH",
    "OBJC_INCLUDE_PATH",
    "OBJCPLUS_INCLUDE_PATH",
    "GCC_EXEC_PREFIX",
    "COMPILER_PATH",
    "SOURCE_DATE_EPOCH",
    "CCC_OVERRIDE_OPTIONS",
    "GCC_COMPARE_DEBUG",
    "CLANG_NO_DEFAULT_CONFIG",
];

/// Environment variables that make the compiler write files of its own (dependency
/// lists); removed from every probe and compile.
pub(crate) const REMOVED_ENV_VARS: &[&str] = &["DEPENDENCIES_OUTPUT", "SUNPRO_DEPENDENCIES"];

/// What a toolchain file is to the driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ToolKind {
    /// A program the driver runs for a compile (`cc1`, `as`; Clang's `-cc1`).
    Program,
    /// A shared library a program or the driver loads (`libLLVM`, `libmpfr`).
    Library,
    /// A Clang configuration file (`Configuration file: ...` in `-###`).
    Config,
}

impl ToolKind {
    /// The word for it in the identity.
    pub(crate) fn word(self) -> &'static str {
        match self {
            ToolKind::Program => "program",
            ToolKind::Library => "library",
            ToolKind::Config => "config",
        }
    }
}

/// A file of the toolchain, identified by content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Tool {
    /// Program, library or configuration file.
    pub kind: ToolKind,
    /// Its name as the driver uses it (`cc1`, `as`, `libLLVM-14.so.1`, `my.cfg`): what
    /// the identity shows, since the directory is machine-specific.
    pub name: String,
    /// The file, symbolic links resolved.
    pub path: PathBuf,
    /// Its metadata when hashed.
    pub stat: FileStat,
    /// BLAKE3 of its contents, lowercase hex.
    pub blake3: String,
}

/// The include search directories as `-E -v` prints them (relative ones as given).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct SearchList {
    /// `ignoring nonexistent directory "..."`: searched too once they exist, at a
    /// position the output does not tell.
    pub missing: Vec<String>,
    /// After `#include "..." search starts here:` (`-iquote`).
    pub quote: Vec<String>,
    /// After `#include <...> search starts here:` (`-I`, `CPATH`, `-isystem`, the
    /// compiler's own directories, `-idirafter`).
    pub bracket: Vec<String>,
}

/// What the probes found out about a compiler.
#[derive(Clone, Debug)]
pub(crate) struct Probe {
    /// The path to run (as found in PATH, symlinks kept: drivers look at argv[0]).
    pub invoke: PathBuf,
    /// `invoke` with every symlink resolved.
    pub resolved: PathBuf,
    /// The metadata of `resolved` when hashed.
    pub stat: FileStat,
    /// BLAKE3 of the resolved binary's contents, lowercase hex.
    pub blake3: String,
    /// Trimmed `--version` output.
    pub version: String,
    /// Trimmed `-dumpmachine` output.
    pub machine: String,
    /// Code-generation options of the compiler proper, as shown by `-###`
    /// (resolved `-march`/`-mtune`, target features, cache `--param`s).
    pub cpu: Vec<String>,
    /// `NAME=value` of the set [`OUTPUT_ENV_VARS`].
    pub env: Vec<String>,
    /// The programs the driver runs, the libraries they load, Clang's configuration
    /// files; by content.
    pub tools: Vec<Tool>,
    /// Directories whose `*.cfg` files Clang may read by default (where the driver and
    /// its binary are), with the names found there, sorted: a configuration file
    /// created later means another probe.
    pub config_dirs: Vec<(PathBuf, Vec<String>)>,
    /// The include search list.
    pub search: SearchList,
}

impl Probe {
    /// Whether the compiler is Clang (its `--version` says so).
    pub(crate) fn is_clang(&self) -> bool {
        self.version.contains("clang")
    }
}

/// Finds the compiler: a name with a `/` is a path; otherwise PATH is searched.
pub(crate) fn find_compiler(compiler: &Path) -> Result<PathBuf, Error> {
    let not_found = |in_path: bool| Error::CompilerNotFound {
        compiler: compiler.to_owned(),
        in_path,
    };
    if compiler.as_os_str().is_empty() {
        return Err(not_found(false));
    }
    // Compiles run in a temporary directory: a relative path (or a relative
    // PATH entry) must be made absolute first.
    let absolute =
        |path: PathBuf| std::path::absolute(&path).map_err(|source| Error::Io { path, source });
    if compiler.components().count() > 1 || compiler.is_absolute() {
        return if is_executable(compiler) {
            absolute(compiler.to_owned())
        } else {
            Err(not_found(false))
        };
    }
    let path = std::env::var_os("PATH").ok_or_else(|| not_found(true))?;
    let found = std::env::split_paths(&path)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(compiler))
        .find(|candidate| is_executable(candidate))
        .ok_or_else(|| not_found(true))?;
    absolute(found)
}

pub(crate) fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// BLAKE3 of a file's contents, lowercase hex.
pub(crate) fn hash_file(path: &Path) -> Result<String, Error> {
    let io = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = File::open(path).map_err(io)?;
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().to_hex().to_string())
}

/// A query command for `compiler` run in `cwd`, with a fixed locale so that the
/// output does not depend on the user's language settings.
fn query(compiler: &Path, cwd: &Path) -> Command {
    let mut cmd = Command::new(compiler);
    cmd.env("LC_ALL", "C").current_dir(cwd);
    for var in REMOVED_ENV_VARS {
        cmd.env_remove(var);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn spawn(mut cmd: Command, compiler: &Path) -> Result<Child, Error> {
    retry_busy(|| cmd.spawn()).map_err(|source| Error::Spawn {
        program: compiler.to_owned(),
        source,
    })
}

/// Runs `start` again while it fails with `ETXTBSY`: a compiler (or wrapper script) that
/// was just written is "busy" while any process still holds a write descriptor to it,
/// which includes a child forked by another thread between that thread's `fork` and
/// `exec`. The window is short; a few retries close it.
pub(crate) fn retry_busy<T>(mut start: impl FnMut() -> std::io::Result<T>) -> std::io::Result<T> {
    let mut pause = std::time::Duration::from_millis(1);
    for _ in 0..8 {
        match start() {
            Err(e) if e.raw_os_error() == Some(libc_etxtbsy()) => {
                std::thread::sleep(pause);
                pause *= 2;
            }
            other => return other,
        }
    }
    start()
}

/// `ETXTBSY` on Linux (the backends crate has no libc dependency).
const fn libc_etxtbsy() -> i32 {
    26
}

fn wait(child: Child, compiler: &Path) -> Result<Output, Error> {
    child.wait_with_output().map_err(|source| Error::Spawn {
        program: compiler.to_owned(),
        source,
    })
}

/// Output of a query that must succeed, trimmed.
fn successful(output: Output, compiler: &Path, what: &str) -> Result<String, Error> {
    if !output.status.success() {
        return Err(Error::CompilerQuery {
            compiler: compiler.to_owned(),
            query: what.to_owned(),
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// Whether a flag asks for "whatever this machine is" (`-march=native`,
/// `-mcpu=native`, `-mtune=native`, ...).
pub(crate) fn mentions_native(flag: &str) -> bool {
    flag.starts_with("-m") && flag.split_once('=').is_some_and(|(_, v)| v == "native")
}

/// Runs the four queries (in parallel, in `cwd`: the base directory, or an empty
/// temporary directory) and hashes the driver, then every program, library and
/// configuration file the dry run names.
pub(crate) fn probe(
    compiler: &Path,
    lang: Language,
    flags: &[String],
    cwd: Option<&Path>,
) -> Result<Probe, Error> {
    let invoke = find_compiler(compiler)?;
    let resolved = std::fs::canonicalize(&invoke).map_err(|source| Error::Io {
        path: invoke.clone(),
        source,
    })?;
    let empty;
    let cwd = match cwd {
        Some(dir) => dir,
        None => {
            empty = tempfile::Builder::new()
                .prefix("jitcache-cc-probe-")
                .tempdir()
                .map_err(|source| Error::Io {
                    path: std::env::temp_dir(),
                    source,
                })?;
            empty.path()
        }
    };
    let flags = without_dependency_flags(flags);

    let mut version = query(&invoke, cwd);
    version.arg("--version");
    let mut machine = query(&invoke, cwd);
    machine.arg("-dumpmachine");
    let mut dry_run = query(&invoke, cwd);
    dry_run.args(&flags).args([
        "-###",
        "-x",
        lang.x_arg(),
        "-c",
        "/dev/null",
        "-o",
        "/dev/null",
    ]);
    let mut search = query(&invoke, cwd);
    search.args(&flags).args([
        "-E",
        "-v",
        "-x",
        lang.x_arg(),
        "/dev/null",
        "-o",
        "/dev/null",
    ]);

    let version = spawn(version, &invoke)?;
    let machine = spawn(machine, &invoke)?;
    let dry_run = spawn(dry_run, &invoke)?;
    let search = spawn(search, &invoke)?;
    // Hash while the compiler answers.
    let driver = hashes::hash(&resolved);

    let version = successful(wait(version, &invoke)?, &invoke, "--version")?;
    let machine = successful(wait(machine, &invoke)?, &invoke, "-dumpmachine")?;
    let dry_run = wait(dry_run, &invoke)?;
    let search = wait(search, &invoke)?;
    let (stat, blake3) = driver?;

    // GCC and Clang print the commands on stderr.
    let dry_text = String::from_utf8_lossy(&dry_run.stderr);
    let cpu = if dry_run.status.success() {
        cpu_options(&dry_text)
    } else {
        Vec::new()
    };
    if let Some(flag) = flags.iter().find(|f| mentions_native(f)) {
        let resolved_cpu = cpu.iter().any(|o| {
            (o.starts_with("-march=") || o.starts_with("-mcpu=") || o.starts_with("-target-cpu="))
                && !o.ends_with("=native")
        });
        if !resolved_cpu {
            return Err(Error::UnresolvedNative {
                compiler: invoke,
                flag: flag.clone(),
            });
        }
    }

    let env = OUTPUT_ENV_VARS
        .iter()
        .filter_map(|name| {
            std::env::var_os(name).map(|value| format!("{name}={}", OsStr::to_string_lossy(&value)))
        })
        .collect();

    // The search list is printed before anything can fail; take what there is.
    let search = search_list(&String::from_utf8_lossy(&search.stderr));
    let clang = version.contains("clang");
    let tools = tools(&dry_text, &resolved, cwd)?;
    let config_dirs = if clang {
        config_dirs(&invoke, &resolved)
    } else {
        Vec::new()
    };

    Ok(Probe {
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

/// The include search list in `-E -v` output.
pub(crate) fn search_list(text: &str) -> SearchList {
    let mut list = SearchList::default();
    let mut section = None;
    for line in text.lines() {
        if let Some(dir) = line
            .strip_prefix("ignoring nonexistent directory \"")
            .and_then(|rest| rest.strip_suffix('"'))
        {
            list.missing.push(dir.to_owned());
        } else if line.starts_with("#include \"...\" search starts here") {
            section = Some(false);
        } else if line.starts_with("#include <...> search starts here") {
            section = Some(true);
        } else if line.starts_with("End of search list") {
            section = None;
        } else if let (Some(bracket), Some(dir)) = (section, line.strip_prefix(' ')) {
            let dir = dir.strip_suffix(" (framework directory)").unwrap_or(dir);
            if bracket {
                list.bracket.push(dir.to_owned());
            } else {
                list.quote.push(dir.to_owned());
            }
        }
    }
    list
}

/// The programs of `-###` output (the first word of each command line), the libraries
/// they and the driver load, and the configuration files Clang reports, resolved and
/// hashed. A bare program name is looked up as the driver does: in the directories of
/// the `COMPILER_PATH=` line GCC prints, then in `PATH`. Names that resolve to no file
/// are left out.
fn tools(dry_run: &str, driver: &Path, cwd: &Path) -> Result<Vec<Tool>, Error> {
    let compiler_path: Vec<PathBuf> = dry_run
        .lines()
        .find_map(|l| l.strip_prefix("COMPILER_PATH="))
        .map(|v| std::env::split_paths(v).collect())
        .unwrap_or_default();
    let mut wanted: Vec<(ToolKind, String, PathBuf)> = Vec::new();
    let add = |wanted: &mut Vec<(ToolKind, String, PathBuf)>, kind, name: String, path: PathBuf| {
        if path != driver && !wanted.iter().any(|(_, _, p)| *p == path) {
            wanted.push((kind, name, path));
        }
    };
    for line in dry_run.lines() {
        if let Some(file) = line.strip_prefix("Configuration file: ") {
            let path = cwd.join(file);
            if let Ok(real) = std::fs::canonicalize(&path) {
                let name = file_name(Path::new(file));
                add(&mut wanted, ToolKind::Config, name, real);
            }
            continue;
        }
        if !line.starts_with(' ') || line.starts_with(" (") {
            continue;
        }
        let Some(program) = split_command_line(line).into_iter().next() else {
            continue;
        };
        let found = if program.contains('/') {
            Some(cwd.join(&program))
        } else {
            let path = std::env::var_os("PATH").unwrap_or_default();
            compiler_path
                .iter()
                .cloned()
                .chain(std::env::split_paths(&path))
                .filter(|d| !d.as_os_str().is_empty())
                .map(|d| d.join(&program))
                .find(|p| is_executable(p))
        };
        if let Some(real) = found.and_then(|p| std::fs::canonicalize(p).ok()) {
            add(
                &mut wanted,
                ToolKind::Program,
                file_name(Path::new(&program)),
                real,
            );
        }
    }
    let programs: Vec<PathBuf> = std::iter::once(driver.to_path_buf())
        .chain(
            wanted
                .iter()
                .filter(|(k, _, _)| *k == ToolKind::Program)
                .map(|(_, _, p)| p.clone()),
        )
        .collect();
    for program in programs {
        for lib in hashes::needed_libraries(&program) {
            add(&mut wanted, ToolKind::Library, file_name(&lib), lib);
        }
    }
    let paths: Vec<PathBuf> = wanted.iter().map(|(_, _, p)| p.clone()).collect();
    let hashed = hashes::hash_all(&paths)?;
    Ok(wanted
        .into_iter()
        .zip(hashed)
        .map(|((kind, name, path), (stat, blake3))| Tool {
            kind,
            name,
            path,
            stat,
            blake3,
        })
        .collect())
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map_or_else(|| path.to_string_lossy(), |n| n.to_string_lossy())
        .into_owned()
}

/// The `*.cfg` files in the directories where Clang looks for default configuration
/// files without being asked (the directories of the driver as run and of its binary),
/// by directory, sorted.
pub(crate) fn config_dirs(invoke: &Path, resolved: &Path) -> Vec<(PathBuf, Vec<String>)> {
    let mut dirs: Vec<PathBuf> = [invoke, resolved]
        .iter()
        .filter_map(|p| p.parent().map(Path::to_path_buf))
        .collect();
    dirs.dedup();
    dirs.into_iter()
        .map(|dir| {
            let names = cfg_files(&dir);
            (dir, names)
        })
        .collect()
}

/// The names of the `*.cfg` files in `dir`, sorted.
pub(crate) fn cfg_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.ends_with(".cfg"))
        .collect();
    names.sort();
    names
}

/// Splits one line of `-###` output into arguments: words separated by
/// blanks, with `"..."` quoting and `\` escapes inside quotes.
pub(crate) fn split_command_line(line: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut current = String::new();
    let mut in_word = false;
    let mut quoted = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                quoted = !quoted;
                in_word = true;
            }
            '\\' if quoted => {
                if let Some(next) = chars.next() {
                    current.push(next);
                }
            }
            c if c.is_whitespace() && !quoted => {
                if in_word {
                    args.push(std::mem::take(&mut current));
                    in_word = false;
                }
            }
            c => {
                current.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        args.push(current);
    }
    args
}

/// The compiler-proper invocation lines of `-###` output: GCC's `cc1`/`cc1plus`
/// and Clang's `-cc1`.
fn is_compiler_proper(args: &[String]) -> bool {
    let Some(program) = args.first() else {
        return false;
    };
    let base = program.rsplit('/').next().unwrap_or(program);
    base == "cc1" || base == "cc1plus" || args.get(1).is_some_and(|a| a == "-cc1")
}

/// The code-generation options of the compiler-proper command lines in `-###`
/// output, in order: `-m...` options (GCC shows `-march=native` expanded to
/// the CPU and its features there), `--param` values, and Clang's
/// `-target-cpu`, `-tune-cpu` and `-target-feature` values (as `name=value`).
pub(crate) fn cpu_options(dry_run_output: &str) -> Vec<String> {
    let mut options = Vec::new();
    for line in dry_run_output.lines() {
        let args = split_command_line(line);
        if !is_compiler_proper(&args) {
            continue;
        }
        let mut iter = args.iter().skip(1);
        while let Some(arg) = iter.next() {
            match arg.as_str() {
                "--param" | "-target-cpu" | "-tune-cpu" | "-target-feature" | "-triple" => {
                    if let Some(value) = iter.next() {
                        options.push(format!("{arg}={value}"));
                    }
                }
                a if a.starts_with("-m") || a.starts_with("--param=") => options.push(a.to_owned()),
                _ => {}
            }
        }
    }
    options
}
