//! The Lisp frontend's loader: one unit per definition, compiled by Cranelift.

use std::path::Path;

use jitcache::backends::{ClifUnit, CraneliftBackend};
use jitcache::{JitCache, KeyParts};
use jitcache_linker::Symbol;

use super::{Loaded, RunOptions, read};
use crate::{Error, lisp};

/// Calls the Lisp's `(defn main [] ...)`; its value is the exit status.
fn call_lisp_main(main: &Symbol, _path: &Path, _args: &[String]) -> i32 {
    let value = main.call_i64(&[]).unwrap_or(-1);
    let _ = lisp::runtime::flush();
    // As a shell sees it: the low byte.
    (value & 0xff) as i32
}

/// Parses the program at `path`, loads its definitions in one batch and finds `main`.
pub(super) fn load(cache: &JitCache, path: &Path, options: &RunOptions) -> Result<Loaded, Error> {
    let source = read(path)?;
    let program = lisp::parse(&source).map_err(|source| Error::Lisp {
        path: path.to_path_buf(),
        source,
    })?;
    let main = program.main().ok_or_else(|| Error::Program {
        path: path.to_path_buf(),
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
        let functions = lisp::compile_def(&program, def)
            .map_err(|err| jitcache::Error::frontend(def.name(), err))?;
        Ok(ClifUnit::new(functions))
    })?;
    let entry = units
        .iter()
        .find_map(|u| u.symbol(&main_symbol))
        .ok_or_else(|| Error::Program {
            path: path.to_path_buf(),
            message: format!("no symbol {main_symbol:?} in the loaded units"),
        })?;
    Ok((units, entry, call_lisp_main))
}
