//! Host symbols, resolved in `cranelift_jit`'s order: the symbols given to
//! [`JITBuilder::symbol`](crate::JITBuilder::symbol) (the last definition of a name wins),
//! then the lookup functions of
//! [`JITBuilder::symbol_lookup_fn`](crate::JITBuilder::symbol_lookup_fn), the last added
//! first, then the process's global scope (`dlsym(RTLD_DEFAULT, ..)`). A name found is
//! remembered for the life of the module.
//!
//! `cranelift_jit` resolves through the one lookup function the drop-in gives it, so that
//! the drop-in can check before finalizing that every name resolves (`cranelift_jit`
//! panics on a name that does not).

use std::collections::HashMap;

/// A lookup function as `cranelift_jit` takes it.
pub(crate) type LookupFn = Box<dyn Fn(&str) -> Option<*const u8> + Send>;

/// The host's symbols of one module.
#[derive(Default)]
pub(crate) struct Resolver {
    /// Addresses given by the host, and names found by a lookup.
    known: HashMap<String, usize>,
    lookups: Vec<LookupFn>,
}

impl Resolver {
    /// Defines `name` at `ptr`, replacing an earlier definition.
    pub(crate) fn define(&mut self, name: String, ptr: *const u8) {
        self.known.insert(name, ptr.expose_provenance());
    }

    /// Adds a lookup function, consulted before those added earlier.
    pub(crate) fn add_lookup(&mut self, lookup: LookupFn) {
        self.lookups.push(lookup);
    }

    /// The address of `name`, if the host has it.
    pub(crate) fn resolve(&mut self, name: &str) -> Option<*const u8> {
        if let Some(&addr) = self.known.get(name) {
            return Some(std::ptr::with_exposed_provenance(addr));
        }
        let ptr = self
            .lookups
            .iter()
            .rev()
            .find_map(|lookup| lookup(name))
            .or_else(|| host_symbol(name))?;
        self.known.insert(name.to_owned(), ptr.expose_provenance());
        Some(ptr)
    }
}

/// The address of `name` in the process's global scope; `None` for a name with a NUL
/// byte.
#[cfg(unix)]
#[expect(
    unsafe_code,
    reason = "dlsym is how cranelift_jit finds the host's symbols"
)]
fn host_symbol(name: &str) -> Option<*const u8> {
    let name = std::ffi::CString::new(name).ok()?;
    // SAFETY: RTLD_DEFAULT is a valid pseudo-handle, and `name` is a NUL-terminated string
    // that outlives the call; dlsym only reads it.
    let ptr = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
    (!ptr.is_null()).then_some(ptr.cast_const().cast())
}

/// Without `dlsym`, the host has only the symbols it gives.
#[cfg(not(unix))]
fn host_symbol(_name: &str) -> Option<*const u8> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_is_symbols_then_lookups_newest_first_then_dlsym() {
        let mut resolver = Resolver::default();
        resolver.add_lookup(Box::new(|name| {
            (name == "a").then_some(0x1000 as *const u8)
        }));
        resolver.add_lookup(Box::new(|name| {
            matches!(name, "a" | "b").then_some(0x2000 as *const u8)
        }));
        resolver.define("b".into(), 0x3000 as *const u8);
        resolver.define("b".into(), 0x4000 as *const u8);
        assert_eq!(resolver.resolve("a"), Some(0x2000 as *const u8));
        assert_eq!(resolver.resolve("b"), Some(0x4000 as *const u8));
        assert!(resolver.resolve("strlen").is_some());
        assert_eq!(resolver.resolve("no such symbol, surely"), None);
        assert_eq!(resolver.resolve("with\0nul"), None);
    }
}
