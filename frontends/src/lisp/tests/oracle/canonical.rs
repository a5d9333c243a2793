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

use super::reader::{Sexp, SexpKind};

/// Version of the code the frontend generates for a form. Bump it whenever
/// the generated code or the runtime interface changes, so that objects
/// cached by an older frontend are never reused.
pub const CODEGEN_VERSION: u32 = 1;

const HEADER: &[u8] = b"jitcache-lisp-form\0";

/// Encodes `form` canonically (see the module documentation).
pub(crate) fn encode(form: &Sexp) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(HEADER);
    out.extend_from_slice(&CODEGEN_VERSION.to_le_bytes());
    encode_into(form, &mut out);
    out
}

fn len_u64(n: usize) -> [u8; 8] {
    // usize is at most 64 bits on every supported target.
    u64::try_from(n).unwrap_or(u64::MAX).to_le_bytes()
}

fn encode_into(form: &Sexp, out: &mut Vec<u8>) {
    match &form.kind {
        SexpKind::Int(v) => {
            out.push(b'I');
            out.extend_from_slice(&v.to_le_bytes());
        }
        SexpKind::Sym(s) => {
            out.push(b'S');
            out.extend_from_slice(&len_u64(s.len()));
            out.extend_from_slice(s.as_bytes());
        }
        SexpKind::List(items) | SexpKind::Vector(items) => {
            out.push(if matches!(form.kind, SexpKind::List(_)) {
                b'L'
            } else {
                b'V'
            });
            out.extend_from_slice(&len_u64(items.len()));
            for item in items {
                encode_into(item, out);
            }
        }
    }
}
