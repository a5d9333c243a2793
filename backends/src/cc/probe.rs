//! Finding out exactly which compiler we run and for what target: path
//! resolution, content hash, `--version`, `-dumpmachine`, and the CPU that
//! `-march=native` and friends resolve to (from `-###`).

use std::ffi::OsStr;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use super::Language;
use crate::Error;

/// Environment variables read by GCC and Clang that change what a compile
/// produces. Their values (when set) are part of the identity.
pub const OUTPUT_ENV_VARS: &[&str] = &[
    "CPATH",
    "C_INCLUDE_PATH",
    "CPLUS_INCLUDE_PATH",
    "GCC_EXEC_PREFIX",
    "COMPILER_PATH",
    "SOURCE_DATE_EPOCH",
    "CCC_OVERRIDE_OPTIONS",
];

/// What the probes found out about a compiler.
#[derive(Clone, Debug)]
pub(crate) struct Probe {
    /// The path to run (as found in PATH, symlinks kept: drivers look at argv[0]).
    pub invoke: PathBuf,
    /// `invoke` with every symlink resolved.
    pub resolved: PathBuf,
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

fn is_executable(path: &Path) -> bool {
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

/// A query command for `compiler`, with a fixed locale so that the output
/// does not depend on the user's language settings.
fn query(compiler: &Path) -> Command {
    let mut cmd = Command::new(compiler);
    cmd.env("LC_ALL", "C")
        .stdin(Stdio::null())
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

/// Runs the three queries (in parallel) and hashes the binary.
pub(crate) fn probe(compiler: &Path, lang: Language, flags: &[String]) -> Result<Probe, Error> {
    let invoke = find_compiler(compiler)?;
    let resolved = std::fs::canonicalize(&invoke).map_err(|source| Error::Io {
        path: invoke.clone(),
        source,
    })?;

    let mut version = query(&invoke);
    version.arg("--version");
    let mut machine = query(&invoke);
    machine.arg("-dumpmachine");
    let mut dry_run = query(&invoke);
    dry_run.args(flags).args([
        "-###",
        "-x",
        lang.x_arg(),
        "-c",
        "/dev/null",
        "-o",
        "/dev/null",
    ]);

    let version = spawn(version, &invoke)?;
    let machine = spawn(machine, &invoke)?;
    let dry_run = spawn(dry_run, &invoke)?;
    // Hash while the compiler answers.
    let blake3 = hash_file(&resolved);

    let version = successful(wait(version, &invoke)?, &invoke, "--version")?;
    let machine = successful(wait(machine, &invoke)?, &invoke, "-dumpmachine")?;
    let dry_run = wait(dry_run, &invoke)?;
    let blake3 = blake3?;

    let cpu = if dry_run.status.success() {
        // GCC and Clang print the commands on stderr.
        let text = String::from_utf8_lossy(&dry_run.stderr);
        cpu_options(&text)
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

    Ok(Probe {
        invoke,
        resolved,
        blake3,
        version,
        machine,
        cpu,
        env,
    })
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
