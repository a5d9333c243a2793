//! Canonical encoding of a top-level form (the cache key's unit bytes).
//!
//! Layout: the header `jitcache-lisp-form\0`, the codegen version as a
//! little-endian `u32`, then the form, each datum as a tag byte and a
//! payload:
//!
//! | datum | tag | payload |
//! | --- | --- | --- |
//! | integer | `I` | 8 bytes, little-endian two's complement |
//! | symbol | `S` | length as little-endian `u64`, then the UTF-8 bytes |
//! | list `(...)` | `L` | element count as little-endian `u64`, then the elements |
//! | vector `[...]` | `V` | element count as little-endian `u64`, then the elements |
//!
//! Positions, whitespace, comments and the spelling of integers (`+7`, `007`)
//! are not encoded, so reformatting leaves the bytes unchanged; the encoding is
//! prefix-free, so any change to the form's structure, names or values changes
//! them. The version makes every key miss when code generation changes.

/// Version of the code the frontend generates for a form. Bump it whenever
/// the generated code or the runtime interface changes, so that objects
/// cached by an older frontend are never reused.
pub const CODEGEN_VERSION: u32 = 1;

const HEADER: &[u8] = b"jitcache-lisp-form\0";

/// The tag of a list.
pub(crate) const LIST: u8 = b'L';
/// The tag of a vector.
pub(crate) const VECTOR: u8 = b'V';

fn len_u64(n: u64) -> [u8; 8] {
    n.to_le_bytes()
}

/// Starts the encoding of a top-level form: the header and the version.
/// Returns where the form's bytes start.
pub(crate) fn open_form(out: &mut Vec<u8>) -> usize {
    let start = out.len();
    out.extend_from_slice(HEADER);
    out.extend_from_slice(&CODEGEN_VERSION.to_le_bytes());
    start
}

/// An integer.
pub(crate) fn int(out: &mut Vec<u8>, v: i64) {
    out.push(b'I');
    out.extend_from_slice(&v.to_le_bytes());
}

/// A symbol.
pub(crate) fn symbol(out: &mut Vec<u8>, name: &str) {
    out.push(b'S');
    // usize is at most 64 bits on every supported target.
    out.extend_from_slice(&len_u64(u64::try_from(name.len()).unwrap_or(u64::MAX)));
    out.extend_from_slice(name.as_bytes());
}

/// Starts a list or vector (`tag`) whose elements follow; returns where its
/// element count goes, for [`close_sequence`].
pub(crate) fn open_sequence(out: &mut Vec<u8>, tag: u8) -> usize {
    out.push(tag);
    let at = out.len();
    out.extend_from_slice(&[0; 8]);
    at
}

/// Writes the element count `len` of the list or vector opened at `count_at`.
pub(crate) fn close_sequence(out: &mut [u8], count_at: usize, len: u32) {
    if let Some(slot) = out.get_mut(count_at..count_at + 8) {
        slot.copy_from_slice(&len_u64(u64::from(len)));
    }
}
