//! The C frontend's loader: one unit per `.c` file, compiled by the system C compiler.

use std::path::{Path, PathBuf};

use jitcache::backends::{CcBackend, CcConfig, SourceUnit};
use jitcache::{JitCache, KeyParts};

use super::{Loaded, RunOptions, find_symbol};
use crate::Error;

/// Calls a C-style `int main(int argc, char **argv)` with argv[0] = the program's path.
pub(super) fn call_c_main(addr: usize, path: &Path, args: &[String]) -> i32 {
    let mut argv = Vec::with_capacity(args.len() + 1);
    argv.push(path.display().to_string());
    argv.extend(args.iter().cloned());
    jitcache_linker::call::call_main(addr, &argv)
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
        return Err(Error::Program {
            path: path.to_path_buf(),
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

/// Loads the C program at `path` (a file, or a directory of `.c` files) and finds `main`.
pub(super) fn load(cache: &JitCache, path: &Path, options: &RunOptions) -> Result<Loaded, Error> {
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
        // The backend compiles a copy of each source in a scratch directory, so quoted
        // includes need the program's directory. Its path is a flag (and so in the key);
        // the headers' contents are in each unit's key.
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
