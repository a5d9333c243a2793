//! Keys: `jitcache_key_parts` and `jitcache_backend_identity` read from C, and the key
//! functions.

use std::ffi::c_char;

use jitcache_rs::KeyParts;
use jitcache_rs::backends::BackendIdentity;

use crate::args::{Out, ref_arg, slice_arg, str_arg};
use crate::backend::backend_obj;
use crate::boundary::guard;
use crate::status::{ApiError, Status};

/// `jitcache_key`: a cache key, 32 bytes of BLAKE3.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct KeyC {
    /// The key's bytes.
    pub bytes: [u8; 32],
}

/// `jitcache_hash`: a 32-byte hash (a dependency's interface hash).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct HashC {
    /// The hash's bytes.
    pub bytes: [u8; 32],
}

/// `jitcache_key_parts`: what identifies a unit, apart from the backend.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct KeyPartsC {
    /// Namespace (the language or frontend), UTF-8.
    pub ns: *const c_char,
    /// The unit's name, UTF-8.
    pub name: *const c_char,
    /// The unit's bytes (source or IR).
    pub unit: *const u8,
    /// How many bytes `unit` has.
    pub unit_len: usize,
    /// Interface hashes of the unit's compile-time dependencies (a set).
    pub deps: *const HashC,
    /// How many `deps`.
    pub deps_count: usize,
}

/// `jitcache_backend_identity`: what describes a backend in keys.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct IdentityC {
    /// Backend name, UTF-8.
    pub name: *const c_char,
    /// Backend version, UTF-8.
    pub version: *const c_char,
    /// Flags, UTF-8 each.
    pub flags: *const *const c_char,
    /// How many flags.
    pub flags_count: usize,
    /// Nonzero when the flags' order matters.
    pub flags_ordered: i32,
    /// Target triple and CPU features, UTF-8.
    pub target: *const c_char,
}

/// Key parts read from C, borrowed for the length of a call.
pub(crate) struct Parts<'a> {
    pub(crate) ns: &'a str,
    pub(crate) name: &'a str,
    pub(crate) unit: &'a [u8],
    pub(crate) deps: Vec<[u8; 32]>,
}

impl Parts<'_> {
    /// The facade's view of these parts.
    pub(crate) fn key_parts(&self) -> KeyParts<'_> {
        KeyParts {
            namespace: self.ns,
            name: self.name,
            unit: self.unit,
            deps: &self.deps,
        }
    }
}

/// Reads key parts; `what` names them in errors (`parts`, `parts[3]`).
///
/// # Safety
///
/// The pointers in `raw` follow the header's contract for `jitcache_key_parts`.
pub(crate) unsafe fn read_parts<'a>(raw: &'a KeyPartsC, what: &str) -> Result<Parts<'a>, ApiError> {
    // SAFETY: forwarded contract of the struct's fields.
    let ns = unsafe { str_arg(raw.ns, &format!("{what}.ns")) }?;
    // SAFETY: as above.
    let name = unsafe { str_arg(raw.name, &format!("{what}.name")) }?;
    // SAFETY: as above.
    let unit = unsafe { slice_arg(raw.unit, raw.unit_len, &format!("{what}.unit")) }?;
    // SAFETY: as above.
    let deps = unsafe { slice_arg(raw.deps, raw.deps_count, &format!("{what}.deps")) }?;
    Ok(Parts {
        ns,
        name,
        unit,
        deps: deps.iter().map(|d| d.bytes).collect(),
    })
}

/// Reads (copies) a backend identity.
///
/// # Safety
///
/// `raw` is NULL or follows the header's contract for `jitcache_backend_identity`.
pub(crate) unsafe fn read_identity(raw: *const IdentityC) -> Result<BackendIdentity, ApiError> {
    // SAFETY: forwarded contract.
    let raw = unsafe { ref_arg(raw, "identity") }?;
    // SAFETY: forwarded contract of the struct's fields.
    let name = unsafe { str_arg(raw.name, "identity.name") }?;
    // SAFETY: as above.
    let version = unsafe { str_arg(raw.version, "identity.version") }?;
    // SAFETY: as above.
    let target = unsafe { str_arg(raw.target, "identity.target") }?;
    // SAFETY: as above.
    let flags = unsafe { string_array(raw.flags, raw.flags_count, "identity.flags") }?;
    Ok(BackendIdentity {
        name: name.to_owned(),
        version: version.to_owned(),
        flags,
        flags_ordered: raw.flags_ordered != 0,
        target: target.to_owned(),
    })
}

/// Reads (copies) an array of strings.
///
/// # Safety
///
/// `ptr` is NULL or points to `count` pointers, each NULL or a NUL-terminated string.
pub(crate) unsafe fn string_array(
    ptr: *const *const c_char,
    count: usize,
    what: &str,
) -> Result<Vec<String>, ApiError> {
    // SAFETY: forwarded contract.
    let items = unsafe { slice_arg(ptr, count, what) }?;
    items
        .iter()
        .enumerate()
        // SAFETY: forwarded contract: each item is NULL or a NUL-terminated string.
        .map(|(i, s)| unsafe { str_arg(*s, &format!("{what}[{i}]")) }.map(str::to_owned))
        .collect()
}

fn key_of(parts: &Parts<'_>, identity: &BackendIdentity) -> KeyC {
    KeyC {
        bytes: *parts.key_parts().components(identity).key().as_bytes(),
    }
}

/// `jitcache_key_build`: the key of `parts` compiled by a backend with `identity`; the
/// same key `jitcache_get_or_compile` uses with a callback backend of that identity.
///
/// # Safety
///
/// Pointers follow the header's contract.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn jitcache_key_build(
    parts: *const KeyPartsC,
    identity: *const IdentityC,
    out_key: *mut KeyC,
) -> Status {
    guard(|| {
        let out = Out::new(out_key, "out_key")?;
        // SAFETY: forwarded contract.
        let raw = unsafe { ref_arg(parts, "parts") }?;
        // SAFETY: forwarded contract.
        let parts = unsafe { read_parts(raw, "parts") }?;
        // SAFETY: forwarded contract.
        let identity = unsafe { read_identity(identity) }?;
        // SAFETY: checked by Out; writable by contract.
        unsafe { out.write(key_of(&parts, &identity)) };
        Ok(())
    })
}

/// `jitcache_backend_key`: the key `jitcache_get_or_compile` uses for `parts` with
/// `backend`.
///
/// # Safety
///
/// Pointers follow the header's contract.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn jitcache_backend_key(
    backend: *mut crate::backend::JitcacheBackend,
    parts: *const KeyPartsC,
    out_key: *mut KeyC,
) -> Status {
    guard(|| {
        let out = Out::new(out_key, "out_key")?;
        let backend = backend_obj(backend)?;
        // SAFETY: forwarded contract.
        let raw = unsafe { ref_arg(parts, "parts") }?;
        // SAFETY: forwarded contract.
        let parts = unsafe { read_parts(raw, "parts") }?;
        // SAFETY: checked by Out; writable by contract.
        unsafe { out.write(key_of(&parts, backend.identity())) };
        Ok(())
    })
}

/// `jitcache_hash_bytes`: BLAKE3 of `len` bytes, e.g. to make an interface hash.
///
/// # Safety
///
/// Pointers follow the header's contract.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn jitcache_hash_bytes(
    data: *const u8,
    len: usize,
    out_hash: *mut HashC,
) -> Status {
    guard(|| {
        let out = Out::new(out_hash, "out_hash")?;
        // SAFETY: forwarded contract.
        let data = unsafe { slice_arg(data, len, "data") }?;
        let hash = HashC {
            bytes: *blake3::hash(data).as_bytes(),
        };
        // SAFETY: checked by Out; writable by contract.
        unsafe { out.write(hash) };
        Ok(())
    })
}

/// `jitcache_key_to_hex`: writes the key as 64 lowercase hex digits and a NUL into
/// `out` (65 bytes).
///
/// # Safety
///
/// Pointers follow the header's contract.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn jitcache_key_to_hex(key: *const KeyC, out: *mut c_char) -> Status {
    guard(|| {
        // SAFETY: forwarded contract.
        let key = unsafe { ref_arg(key, "key") }?;
        if out.is_null() {
            return Err(ApiError::null("out"));
        }
        let hex = jitcache_rs::store::Key::from_bytes(key.bytes).to_string();
        let mut text = hex.into_bytes();
        text.push(0);
        // SAFETY: `out` is not NULL and, by contract, has room for 65 bytes; `text` is 65
        // bytes and cannot overlap memory the caller owns.
        unsafe { std::ptr::copy_nonoverlapping(text.as_ptr(), out.cast::<u8>(), text.len()) };
        Ok(())
    })
}
