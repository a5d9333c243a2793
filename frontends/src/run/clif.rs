//! The CLIF frontend's loader: a file of CLIF text is one unit, compiled by Cranelift.

use std::path::Path;

use jitcache::backends::{ClifUnit, CraneliftBackend};
use jitcache::{JitCache, KeyParts};

use super::c::call_c_main;
use super::{Loaded, RunOptions, find_symbol, read};
use crate::Error;

/// Loads the CLIF program at `path` and finds `main`.
pub(super) fn load(cache: &JitCache, path: &Path, options: &RunOptions) -> Result<Loaded, Error> {
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
