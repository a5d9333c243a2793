//! Running programs of the three demo frontends through a [`JitCache`]: the Lisp (through
//! Cranelift), C (through the system compiler) and CLIF text (through Cranelift).
//!
//! Each frontend turns a file into units with their [`KeyParts`](jitcache::KeyParts), asks
//! the cache for all of them in one batch, and calls the program's `main`.

mod c;
mod clif;
mod lisp;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use jitcache::backends::CraneliftConfig;
use jitcache::{JitCache, LoadedUnit, MissReason, Origin};
use jitcache_linker::Symbol;

use crate::Error;

/// Which frontend a file belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Language {
    /// The Clojure-like Lisp (`.clj`, `.lisp`).
    Lisp,
    /// C and C++ (`.c`, `.cc`, `.cpp`, `.cxx`, or a directory of such sources).
    C,
    /// CLIF text (`.clif`).
    Clif,
}

impl Language {
    /// The frontend for `path`, by its extension (a directory is C).
    pub fn of(path: &Path) -> Result<Language, Error> {
        if path.is_dir() {
            return Ok(Language::C);
        }
        match path.extension().and_then(|e| e.to_str()) {
            Some("clj" | "lisp") => Ok(Language::Lisp),
            Some("c" | "cc" | "cpp" | "cxx" | "c++" | "C") => Ok(Language::C),
            Some("clif") => Ok(Language::Clif),
            _ => Err(Error::Program {
                path: path.to_path_buf(),
                message: "unknown kind of program: expected .clj, .lisp, .c, .cc, .cpp, .cxx, .clif or a directory of C and C++ sources".to_owned(),
            }),
        }
    }
}

/// Options of a run.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Arguments passed to the program after argv[0].
    pub args: Vec<String>,
    /// Flags for the C compiler (default `-O2 -fPIC`).
    pub cflags: Option<Vec<String>>,
    /// Flags for the C++ compiler (default `-O2 -fPIC`).
    pub cxxflags: Option<Vec<String>>,
    /// The C compiler (default `cc`).
    pub cc: Option<PathBuf>,
    /// The C++ compiler (default `c++`).
    pub cxx: Option<PathBuf>,
    /// Cranelift settings for the Lisp and CLIF frontends.
    pub cranelift: CraneliftConfig,
}

/// What a run did.
#[derive(Clone, Debug, Default)]
pub struct RunReport {
    /// Units the program consists of.
    pub units: usize,
    /// For every unit compiled in this run: its name and why it missed.
    pub compiled: Vec<(String, MissReason)>,
    /// Units found already loaded in this process.
    pub memory_hits: u64,
    /// Units read from the persistent cache.
    pub disk_hits: u64,
    /// Units fetched from the remote tier.
    pub remote_hits: u64,
    /// Time reading and parsing the program, and computing keys.
    pub frontend_time: Duration,
    /// Time spent compiling.
    pub compile_time: Duration,
    /// Time spent reading from the cache and linking.
    pub load_time: Duration,
    /// Time spent running `main`.
    pub run_time: Duration,
    /// `main`'s return value, as a process exit status.
    pub exit: i32,
    /// Why the persistent cache was bypassed, if it was.
    pub bypassed: Option<String>,
}

/// Runs the program at `path` (a file, or a directory of C files) and returns its report.
/// Program output goes to this process's stdout.
pub fn run(cache: &JitCache, path: &Path, options: &RunOptions) -> Result<RunReport, Error> {
    let before = cache.stats();
    let start = Instant::now();
    let (units, main, exit_of) = match Language::of(path)? {
        Language::Lisp => lisp::load(cache, path, options)?,
        Language::C => c::load(cache, path, options)?,
        Language::Clif => clif::load(cache, path, options)?,
    };
    let after = cache.stats();
    let compile_time = after.compile_time - before.compile_time;
    let load_time = after.load_time - before.load_time;
    let frontend_time = start.elapsed().saturating_sub(compile_time + load_time);

    let run_start = Instant::now();
    let exit = exit_of(&main, path, &options.args);
    let run_time = run_start.elapsed();

    Ok(RunReport {
        units: units.len(),
        compiled: units
            .iter()
            .filter_map(|u| match u.origin() {
                Origin::Compiled(reason) => Some((u.name().to_owned(), reason.clone())),
                _ => None,
            })
            .collect(),
        memory_hits: after.memory_hits - before.memory_hits,
        disk_hits: after.disk_hits - before.disk_hits,
        remote_hits: after.remote_hits - before.remote_hits,
        frontend_time,
        compile_time,
        load_time,
        run_time,
        exit,
        bypassed: cache.stats().bypassed,
    })
}

/// How a frontend calls its entry point: `main`, the program path, ARGS.
pub(crate) type EntryCall = fn(&Symbol, &Path, &[String]) -> i32;

/// Loaded units, `main`, and how to call it.
pub(crate) type Loaded = (Vec<LoadedUnit>, Symbol, EntryCall);

/// The text of the file at `path`.
pub(crate) fn read(path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// `symbol` of the loaded units.
pub(crate) fn find_symbol(
    units: &[LoadedUnit],
    symbol: &str,
    path: &Path,
) -> Result<Symbol, Error> {
    units
        .iter()
        .find_map(|u| u.symbol(symbol))
        .ok_or_else(|| Error::Program {
            path: path.to_path_buf(),
            message: format!("no symbol {symbol:?} in the loaded units"),
        })
}
