//! Symbol mangling: a definition's (name, arity) to an ELF symbol.
//!
//! `jitcache_lisp_fn<ARITY>_<ESCAPED NAME>`, where the escaped name keeps
//! ASCII letters and digits, writes `_` as `__`, and writes any other byte as
//! `_` followed by two lowercase hex digits. So `fib-iter` of arity 3 is
//! `jitcache_lisp_fn3_fib_2diter` and `even?` of arity 1 is
//! `jitcache_lisp_fn1_even_3f`.
//!
//! The mapping is injective (after the fixed prefix, the decimal arity ends at
//! the first `_`; in the escaped name, `_` is always followed by `_` or a hex
//! pair), only uses `[A-Za-z0-9_]`, and cannot collide with C library names
//! or with the runtime's `jitcache_lisp_rt_*` symbols. The arity is part of
//! the symbol so that code compiled against an older arity of a callee fails
//! to link instead of calling it with the wrong number of arguments.

use std::fmt::Write as _;

/// Prefix of every definition's symbol.
pub(crate) const FN_PREFIX: &str = "jitcache_lisp_fn";

/// The ELF symbol of the definition `name` with `arity` parameters.
pub(crate) fn mangle(name: &str, arity: usize) -> String {
    let mut out = String::with_capacity(FN_PREFIX.len() + 4 + name.len() * 2);
    out.push_str(FN_PREFIX);
    // Writing to a String cannot fail.
    let _ = write!(out, "{arity}_");
    for b in name.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => out.push(char::from(b)),
            b'_' => out.push_str("__"),
            _ => {
                let _ = write!(out, "_{b:02x}");
            }
        }
    }
    out
}

/// The inverse of [`mangle`]: `Some((name, arity))` for a well-formed
/// definition symbol, `None` for anything else.
pub(crate) fn demangle(symbol: &str) -> Option<(String, usize)> {
    let rest = symbol.strip_prefix(FN_PREFIX)?;
    let (arity, escaped) = rest.split_once('_')?;
    if arity.is_empty() || !arity.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if arity.len() > 1 && arity.starts_with('0') {
        return None;
    }
    let arity: usize = arity.parse().ok()?;
    let mut name = Vec::with_capacity(escaped.len());
    let bytes = escaped.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'_' => match bytes.get(i + 1)? {
                b'_' => {
                    name.push(b'_');
                    i += 2;
                }
                _ => {
                    let hex = escaped.get(i + 1..i + 3)?;
                    if !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
                        return None;
                    }
                    let b = u8::from_str_radix(hex, 16).ok()?;
                    if b.is_ascii_alphanumeric() || b == b'_' {
                        return None; // never escaped by `mangle`
                    }
                    name.push(b);
                    i += 3;
                }
            },
            b if b.is_ascii_alphanumeric() => {
                name.push(b);
                i += 1;
            }
            _ => return None,
        }
    }
    Some((String::from_utf8(name).ok()?, arity))
}
