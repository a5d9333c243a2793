//! The host side of symbol resolution: the process's global scope and the libraries the
//! caller asked to open, with a cache of successful look-ups (a `dlsym` costs far more
//! than a hash look-up, and a hit only ever stays valid: libraries are opened `RTLD_LOCAL`
//! and searched after the global scope, and never closed).

use std::ffi::CString;

use crate::call::{self, Library};
use crate::error::Error;
use crate::symbols::FastMap;

/// Short names accepted by `--lib` / [`crate::Linker::open_library`].
const SHORT_NAMES: &[(&str, &str)] = &[
    ("m", "libm.so.6"),
    ("c", "libc.so.6"),
    ("dl", "libdl.so.2"),
    ("pthread", "libpthread.so.0"),
    ("rt", "librt.so.1"),
    ("stdc++", "libstdc++.so.6"),
    ("gcc_s", "libgcc_s.so.1"),
];

/// The libraries opened for the linker and the cache of what the host resolved.
#[derive(Default)]
pub(crate) struct HostSymbols {
    libs: Vec<Library>,
    cache: FastMap<String, usize>,
}

impl HostSymbols {
    /// Opens a library: a short name (`m`), a soname (`libm.so.6`) or a path.
    pub(crate) fn open(&mut self, name: &str) -> Result<(), Error> {
        let candidates: Vec<String> = if name.contains('/') || name.contains(".so") {
            vec![name.to_owned()]
        } else if let Some((_, soname)) = SHORT_NAMES.iter().find(|(short, _)| *short == name) {
            vec![(*soname).to_owned()]
        } else {
            vec![format!("lib{name}.so"), name.to_owned()]
        };
        let mut reason = String::new();
        for candidate in &candidates {
            match Library::open(candidate) {
                Ok(lib) => {
                    self.libs.push(lib);
                    return Ok(());
                }
                Err(e) => {
                    if reason.is_empty() {
                        reason = e;
                    }
                }
            }
        }
        Err(Error::Library {
            name: name.to_owned(),
            reason,
        })
    }

    /// The address of `name` in the process, else in the opened libraries in order.
    pub(crate) fn lookup(&mut self, name: &str) -> Option<usize> {
        if let Some(&addr) = self.cache.get(name) {
            return Some(addr);
        }
        let c = CString::new(name).ok()?;
        let addr =
            call::host_symbol(&c).or_else(|| self.libs.iter().find_map(|lib| lib.symbol(&c)))?;
        self.cache.insert(name.to_owned(), addr);
        Some(addr)
    }
}
