//! Memory handed to the host: byte buffers (`jitcache_bytes`) and strings (`char *`),
//! each freed by the host with its free function.
//!
//! Every live allocation is recorded, so a double free, or freeing memory that jitcache
//! did not allocate, is an error status instead of heap corruption.

use std::collections::BTreeMap;
use std::ffi::{CString, c_char};
use std::sync::{Mutex, MutexGuard};

use jitcache_rs::store::sync::lock;

use crate::args::Out;
use crate::boundary::guard;
use crate::status::{ApiError, Status};

/// `jitcache_bytes`: a byte buffer owned by the host until it calls `jitcache_bytes_free`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Bytes {
    /// The bytes (NULL when `len` is 0).
    pub data: *mut u8,
    /// How many.
    pub len: usize,
}

impl Bytes {
    /// The empty buffer.
    pub(crate) const EMPTY: Bytes = Bytes {
        data: std::ptr::null_mut(),
        len: 0,
    };
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Allocation {
    Bytes(usize),
    String,
}

static LIVE: Mutex<BTreeMap<usize, Allocation>> = Mutex::new(BTreeMap::new());

fn live() -> MutexGuard<'static, BTreeMap<usize, Allocation>> {
    lock(&LIVE)
}

/// Hands `bytes` to the host.
pub(crate) fn give_bytes(bytes: Vec<u8>) -> Bytes {
    if bytes.is_empty() {
        return Bytes::EMPTY;
    }
    let len = bytes.len();
    let data = Box::into_raw(bytes.into_boxed_slice()).cast::<u8>();
    live().insert(data.addr(), Allocation::Bytes(len));
    Bytes { data, len }
}

/// Hands `text` to the host as a NUL-terminated string (NUL bytes in it are shown as
/// `\0`).
pub(crate) fn give_string(text: &str) -> *mut c_char {
    let string = CString::new(text.replace('\0', "\\0")).unwrap_or_default();
    let ptr = string.into_raw();
    live().insert(ptr.addr(), Allocation::String);
    ptr
}

/// Forgets a live allocation if it is `expected`; an error otherwise.
fn take(addr: usize, expected: Allocation, what: &str) -> Result<(), ApiError> {
    let mut live = live();
    match live.get(&addr) {
        Some(found) if *found == expected => {
            live.remove(&addr);
            Ok(())
        }
        Some(Allocation::Bytes(len)) if matches!(expected, Allocation::Bytes(_)) => {
            Err(ApiError::invalid(format!(
                "{what}: the length was changed (jitcache returned {len} bytes)"
            )))
        }
        _ => Err(ApiError::new(
            Status::InvalidHandle,
            format!("{what} was not returned by jitcache, or was freed already"),
        )),
    }
}

/// `jitcache_bytes_free`: frees a buffer returned by jitcache and sets it to
/// `{NULL, 0}`. NULL, or a buffer whose `data` is NULL, is a no-op.
///
/// # Safety
///
/// `bytes` is NULL or points to a `jitcache_bytes` the caller may read and write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn jitcache_bytes_free(bytes: *mut Bytes) -> Status {
    guard(|| {
        let Some(out) = Out::optional(bytes, "bytes")? else {
            return Ok(());
        };
        // SAFETY: not NULL and aligned (checked by Out), readable by the contract.
        let given = unsafe { bytes.read() };
        if given.data.is_null() {
            return Ok(());
        }
        take(
            given.data.addr(),
            Allocation::Bytes(given.len),
            "bytes.data",
        )?;
        // SAFETY: `data` and `len` are exactly what `give_bytes` got from
        // `Box::<[u8]>::into_raw` (the registry entry was live with this length, and is
        // now removed, so the box is rebuilt once).
        drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(given.data, given.len)) });
        // SAFETY: see `Out::write`; the pointer was checked above.
        unsafe { out.write(Bytes::EMPTY) };
        Ok(())
    })
}

/// `jitcache_string_free`: frees a string returned by jitcache. NULL is a no-op.
///
/// # Safety
///
/// `string` is NULL or any pointer; it is only compared with live allocations until it
/// is known to be one.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn jitcache_string_free(string: *mut c_char) -> Status {
    guard(|| {
        if string.is_null() {
            return Ok(());
        }
        take(string.addr(), Allocation::String, "the string")?;
        // SAFETY: the pointer is exactly what `give_string` got from `CString::into_raw`
        // (the registry entry was live, and is now removed, so it is rebuilt once).
        drop(unsafe { CString::from_raw(string) });
        Ok(())
    })
}
