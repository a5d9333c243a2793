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
//!
//! The reader writes these bytes as it reads (the `open_*`, `int`, `symbol`
//! and `close_sequence` functions), and since they hold the whole form they
//! are also the tree the checker and the body builder walk, with a
//! [`Cursor`].

/// Version of the code the frontend generates for a form. Bump it whenever
/// the generated code or the runtime interface changes, so that objects
/// cached by an older frontend are never reused.
pub const CODEGEN_VERSION: u32 = 1;

const HEADER: &[u8] = b"jitcache-lisp-form\0";

/// The length of what precedes a form's datum: the header and the version.
pub(crate) const FORM_HEADER_LEN: usize = HEADER.len() + 4;

const INT: u8 = b'I';
const SYM: u8 = b'S';
/// The tag of a list.
pub(crate) const LIST: u8 = b'L';
/// The tag of a vector.
pub(crate) const VECTOR: u8 = b'V';

/// Starts the encoding of a top-level form: the header and the version.
/// Returns where the form's bytes start.
#[inline]
pub(crate) fn open_form(out: &mut Vec<u8>) -> usize {
    let start = out.len();
    out.extend_from_slice(HEADER);
    out.extend_from_slice(&CODEGEN_VERSION.to_le_bytes());
    start
}

/// An integer.
#[inline]
pub(crate) fn int(out: &mut Vec<u8>, v: i64) {
    out.push(INT);
    out.extend_from_slice(&v.to_le_bytes());
}

/// A symbol.
#[inline]
pub(crate) fn symbol(out: &mut Vec<u8>, name: &[u8]) {
    out.push(SYM);
    // usize is at most 64 bits on every supported target.
    out.extend_from_slice(&u64::try_from(name.len()).unwrap_or(u64::MAX).to_le_bytes());
    out.extend_from_slice(name);
}

/// Starts a list or vector (`tag`) whose elements follow; returns where its
/// element count goes, for [`close_sequence`].
#[inline]
pub(crate) fn open_sequence(out: &mut Vec<u8>, tag: u8) -> usize {
    out.push(tag);
    let at = out.len();
    out.extend_from_slice(&[0; 8]);
    at
}

/// Writes the element count `len` of the list or vector opened at `count_at`.
#[inline]
pub(crate) fn close_sequence(out: &mut [u8], count_at: usize, len: u64) {
    if let Some(slot) = out.get_mut(count_at..count_at + 8) {
        slot.copy_from_slice(&len.to_le_bytes());
    }
}

/// The head of a datum in a canonical encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Datum<'a> {
    /// An integer.
    Int(i64),
    /// A symbol's bytes (ASCII: the reader accepts nothing else in symbols).
    Sym(&'a [u8]),
    /// A list of this many elements, which follow.
    List(usize),
    /// A vector of this many elements, which follow.
    Vector(usize),
}

/// Reads canonical bytes datum by datum, in pre-order: the frontend's tree.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Cursor<'a> {
    bytes: &'a [u8],
    /// Where the next datum starts.
    pub at: usize,
}

impl<'a> Cursor<'a> {
    /// A cursor on the datum starting at `at` in `bytes`.
    pub fn new(bytes: &'a [u8], at: usize) -> Cursor<'a> {
        Cursor { bytes, at }
    }

    /// Reads the head of the next datum: an atom whole, a list or vector up
    /// to its first element. `None` if the bytes are not an encoding.
    #[inline]
    pub fn next(&mut self) -> Option<Datum<'a>> {
        let tag = *self.bytes.get(self.at)?;
        let payload: [u8; 8] = self.bytes.get(self.at + 1..self.at + 9)?.try_into().ok()?;
        let n = u64::from_le_bytes(payload);
        let datum = match tag {
            INT => Datum::Int(i64::from_le_bytes(payload)),
            SYM => {
                let len = usize::try_from(n).ok()?;
                let name = self
                    .bytes
                    .get(self.at + 9..(self.at + 9).checked_add(len)?)?;
                self.at += len;
                Datum::Sym(name)
            }
            LIST => Datum::List(usize::try_from(n).ok()?),
            VECTOR => Datum::Vector(usize::try_from(n).ok()?),
            _ => return None,
        };
        self.at += 9;
        Some(datum)
    }
}
