//! Running programs of the three demo frontends through a [`JitCache`]: the Lisp (through
//! Cranelift), C (through the system compiler) and CLIF text (through Cranelift).
//!
//! Each frontend turns a file into units with their [`KeyParts`], asks the cache for all of
//! them in one batch, and calls the program's `main`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use jitcache_backends::{
    CcBackend, CcConfig, ClifUnit, CraneliftBackend, CraneliftConfig, SourceUnit,
};

use crate::{Error, JitCache, KeyParts, LoadedUnit, MissReason, Origin, lisp};

/// Which frontend a file belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Language {
    /// The Clojure-like Lisp (`.clj`, `.lisp`).
    Lisp,
    /// C (`.c`, or a directory of `.c` files).
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
            Some("c") => Ok(Language::C),
            Some("clif") => Ok(Language::Clif),
            _ => Err(Error::Frontend {
                unit: path.display().to_string(),
                message: "unknown kind of program: expected .clj, .lisp, .c, .clif or a directory of .c files".to_owned(),
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
        Language::Lisp => load_lisp(cache, path, options)?,
        Language::C => load_c(cache, path, options)?,
        Language::Clif => load_clif(cache, path, options)?,
    };
    let after = cache.stats();
    let compile_time = after.compile_time - before.compile_time;
    let load_time = after.load_time - before.load_time;
    let frontend_time = start.elapsed().saturating_sub(compile_time + load_time);

    let run_start = Instant::now();
    let exit = exit_of(main, path, &options.args);
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

/// How a frontend calls its entry point: the address of `main`, the program path, ARGS.
type EntryCall = fn(usize, &Path, &[String]) -> i32;

/// Loaded units, the address of `main`, and how to call it.
type Loaded = (Vec<LoadedUnit>, usize, EntryCall);

fn read(path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Calls a C-style `int main(int argc, char **argv)` with argv[0] = the program's path.
fn call_c_main(addr: usize, path: &Path, args: &[String]) -> i32 {
    let mut argv = Vec::with_capacity(args.len() + 1);
    argv.push(path.display().to_string());
    argv.extend(args.iter().cloned());
    jitcache_linker::call::call_main(addr, &argv)
}

/// Calls the Lisp's `(defn main [] ...)`; its value is the exit status.
fn call_lisp_main(addr: usize, _path: &Path, _args: &[String]) -> i32 {
    let value = jitcache_linker::call::call_i64(addr, &[]).unwrap_or(-1);
    let _ = lisp::runtime::flush();
    // As a shell sees it: the low byte.
    (value & 0xff) as i32
}

fn load_lisp(cache: &JitCache, path: &Path, options: &RunOptions) -> Result<Loaded, Error> {
    let source = read(path)?;
    let program = lisp::parse(&source).map_err(|err| Error::Frontend {
        unit: path.display().to_string(),
        message: err.to_string(),
    })?;
    let main = program.main().ok_or_else(|| Error::Frontend {
        unit: path.display().to_string(),
        message: "no (defn main [] ...)".to_owned(),
    })?;
    let main_symbol = main.symbol();
    lisp::runtime::register_program(&program);
    let backend = CraneliftBackend::new(options.cranelift.clone())?;
    cache
        .linker()
        .set_resolver(Box::new(lisp::runtime::resolve));
    let parts: Vec<KeyParts<'_>> = program
        .defs()
        .iter()
        .map(|def| KeyParts {
            namespace: "lisp",
            name: def.name(),
            unit: def.canonical_bytes(),
            deps: def.callee_hashes(),
        })
        .collect();
    let units = cache.get_or_compile_batch(&parts, &backend, |i| {
        let def = &program.defs()[i];
        let functions = lisp::compile_def(&program, def)?;
        Ok(ClifUnit::new(functions))
    })?;
    let entry = units
        .iter()
        .find_map(|u| u.symbol(&main_symbol))
        .ok_or_else(|| Error::MissingSymbol {
            symbol: main_symbol.clone(),
            unit: path.display().to_string(),
        })?;
    Ok((units, entry, call_lisp_main))
}

/// The `.c` files of a C program (a file, or every `.c` file of a directory, sorted) and
/// the bytes every unit's key covers besides its own source: the directory's headers.
fn c_sources(path: &Path) -> Result<(Vec<PathBuf>, Vec<u8>), Error> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = if path.is_dir() {
        path.to_path_buf()
    } else {
        path.parent().map(Path::to_path_buf).unwrap_or_default()
    };
    let mut files: Vec<PathBuf> = Vec::new();
    let mut headers: Vec<PathBuf> = Vec::new();
    let listing = std::fs::read_dir(if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        &dir
    })
    .map_err(io)?;
    for entry in listing {
        let entry_path = entry.map_err(io)?.path();
        match entry_path.extension().and_then(|e| e.to_str()) {
            Some("c") if path.is_dir() => files.push(entry_path),
            Some("h") => headers.push(entry_path),
            _ => {}
        }
    }
    if !path.is_dir() {
        files.push(path.to_path_buf());
    }
    files.sort();
    headers.sort();
    if files.is_empty() {
        return Err(Error::Frontend {
            unit: path.display().to_string(),
            message: "no .c files".to_owned(),
        });
    }
    // Headers next to the sources can be included by any unit: each one's name and
    // contents go into every unit's key, length-prefixed so boundaries cannot shift.
    let mut context = Vec::new();
    for header in &headers {
        let bytes = std::fs::read(header).map_err(|source| Error::Io {
            path: header.clone(),
            source,
        })?;
        let name = header
            .file_name()
            .map(|n| n.as_encoded_bytes())
            .unwrap_or_default();
        context.extend_from_slice(&(name.len() as u64).to_le_bytes());
        context.extend_from_slice(name);
        context.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        context.extend_from_slice(&bytes);
    }
    Ok((files, context))
}

fn load_c(cache: &JitCache, path: &Path, options: &RunOptions) -> Result<Loaded, Error> {
    let (files, context) = c_sources(path)?;
    let flags = options
        .cflags
        .clone()
        .unwrap_or_else(|| vec!["-O2".to_owned(), "-fPIC".to_owned()]);
    let include_dir = files[0]
        .parent()
        .and_then(|dir| std::fs::canonicalize(dir).ok())
        .unwrap_or_default();
    let mut config_flags = flags;
    if !include_dir.as_os_str().is_empty() {
        // Sources are compiled from standard input, so quoted includes need the directory.
        // Its path is a flag (and so in the key); the headers' contents are in each unit.
        config_flags.push(format!("-I{}", include_dir.display()));
    }
    let config = CcConfig::c().with_flags(&config_flags);
    // A remembered compiler probe spares a warm start three compiler processes.
    let backend = match cache.component_dir("cc-probes") {
        Some(dir) => CcBackend::with_probe_cache(config, &dir)?,
        None => CcBackend::new(config)?,
    };
    // The headers are one dependency of every unit: hashed once, not once per unit.
    let headers = [*blake3::hash(&context).as_bytes()];
    let mut sources = Vec::with_capacity(files.len());
    let mut names = Vec::with_capacity(files.len());
    for file in &files {
        sources.push(std::fs::read(file).map_err(|source| Error::Io {
            path: file.clone(),
            source,
        })?);
        names.push(
            file.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        );
    }
    let parts: Vec<KeyParts<'_>> = sources
        .iter()
        .zip(&names)
        .map(|(source, name)| KeyParts {
            namespace: "c",
            name,
            unit: source,
            deps: &headers,
        })
        .collect();
    let units = cache.get_or_compile_batch(&parts, &backend, |i| {
        Ok(SourceUnit::new(
            files[i].display().to_string(),
            sources[i].clone(),
        ))
    })?;
    let entry = find_symbol(&units, "main", path)?;
    Ok((units, entry, call_c_main))
}

fn load_clif(cache: &JitCache, path: &Path, options: &RunOptions) -> Result<Loaded, Error> {
    let text = read(path)?;
    let backend = CraneliftBackend::new(options.cranelift.clone())?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let parts = KeyParts {
        namespace: "clif",
        name: &name,
        unit: text.as_bytes(),
        deps: &[],
    };
    let unit = cache.get_or_compile(&parts, &backend, || Ok(ClifUnit::parse(&text)?))?;
    let units = vec![unit];
    let entry = find_symbol(&units, "main", path)?;
    Ok((units, entry, call_c_main))
}

fn find_symbol(units: &[LoadedUnit], symbol: &str, path: &Path) -> Result<usize, Error> {
    units
        .iter()
        .find_map(|u| u.symbol(symbol))
        .ok_or_else(|| Error::MissingSymbol {
            symbol: symbol.to_owned(),
            unit: path.display().to_string(),
        })
}
