//! Blob files: a 16-byte header then one zstd frame; named by the BLAKE3 of the
//! uncompressed bytes.
//!
//! ```text
//! offset  size  field
//!      0     4  magic "JCB\0"
//!      4     2  blob format version, little-endian (1)
//!      6     2  reserved, zero
//!      8     8  uncompressed length, little-endian
//!     16     …  zstd frame of the uncompressed bytes
//! ```
//!
//! Reading verifies everything: the header, the decompressed length and the BLAKE3 of
//! the decompressed bytes against the file's name. Any mismatch is [`ReadFailure::Damaged`].

use std::cell::RefCell;
use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;
use std::str::FromStr;

use crate::error::Error;
use crate::key::{parse_hex32, write_hex};

/// Magic bytes at the start of every blob file.
pub(crate) const MAGIC: [u8; 4] = *b"JCB\0";
/// Blob file format version written in the header.
pub const BLOB_FORMAT_VERSION: u16 = 1;
/// Size of the header before the zstd frame.
pub(crate) const HEADER_LEN: usize = 16;
/// Scratch buffers larger than this are released after use.
const SCRATCH_KEEP: usize = 8 << 20;

/// The name of a blob: the BLAKE3 of its uncompressed bytes. Displayed as 64 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobId([u8; 32]);

impl BlobId {
    /// The id of a blob holding `bytes`.
    pub fn of(bytes: &[u8]) -> BlobId {
        BlobId(*blake3::hash(bytes).as_bytes())
    }

    /// The id's 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// An id from its 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> BlobId {
        BlobId(bytes)
    }
}

impl fmt::Display for BlobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for BlobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlobId({self})")
    }
}

impl FromStr for BlobId {
    type Err = Error;

    fn from_str(text: &str) -> Result<BlobId, Error> {
        parse_hex32(text)
            .map(BlobId)
            .ok_or_else(|| Error::InvalidKey {
                text: text.to_owned(),
            })
    }
}

/// What is wrong with a damaged blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Damage {
    /// The file is missing.
    Missing,
    /// The file is shorter than its header or its header is not a blob header.
    BadHeader,
    /// The header's length disagrees with the index.
    LengthMismatch,
    /// The zstd frame does not decompress to the recorded length.
    BadFrame,
    /// The decompressed bytes do not hash to the blob's name.
    HashMismatch,
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Damage::Missing => "missing",
            Damage::BadHeader => "bad header or truncated",
            Damage::LengthMismatch => "length differs from the index",
            Damage::BadFrame => "compressed data damaged",
            Damage::HashMismatch => "content does not match its hash",
        })
    }
}

/// Why a blob could not be read.
#[derive(Debug)]
pub(crate) enum ReadFailure {
    /// The blob is missing or damaged: a miss.
    Damaged(Damage),
    /// Some other I/O error (permissions, EIO): reported to the caller.
    Io(io::Error),
}

/// Per-thread reusable state for the read path: a zstd decompression context and the
/// buffer the compressed bytes are read into.
struct Scratch {
    dctx: Option<zstd::bulk::Decompressor<'static>>,
    compressed: Vec<u8>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = const {
        RefCell::new(Scratch { dctx: None, compressed: Vec::new() })
    };
}

fn header(len: u64) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..4].copy_from_slice(&MAGIC);
    h[4..6].copy_from_slice(&BLOB_FORMAT_VERSION.to_le_bytes());
    h[8..16].copy_from_slice(&len.to_le_bytes());
    h
}

/// Writes header + zstd frame of `bytes` to `out` (not flushed or synced).
pub(crate) fn encode(out: &mut File, bytes: &[u8], level: i32) -> io::Result<()> {
    let len = bytes.len() as u64;
    out.write_all(&header(len))?;
    let mut enc = zstd::stream::Encoder::new(out, level)?;
    enc.set_pledged_src_size(Some(len))?;
    enc.include_contentsize(true)?;
    enc.include_checksum(false)?;
    enc.write_all(bytes)?;
    enc.finish()?;
    Ok(())
}

/// Reads the blob at `path`, verifies it against `id` (and `expected_len`, when the
/// index knows it) and leaves the uncompressed bytes in `out` (replacing its contents).
/// On failure `out` is left empty.
pub(crate) fn read_verified(
    path: &Path,
    id: &BlobId,
    expected_len: Option<u64>,
    out: &mut Vec<u8>,
) -> Result<(), ReadFailure> {
    out.clear();
    let result = read_into(path, id, expected_len, out);
    if result.is_err() {
        out.clear();
    }
    result
}

fn read_into(
    path: &Path,
    id: &BlobId,
    expected_len: Option<u64>,
    out: &mut Vec<u8>,
) -> Result<(), ReadFailure> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(ReadFailure::Damaged(Damage::Missing));
        }
        Err(e) => return Err(ReadFailure::Io(e)),
    };
    let file_len = file.metadata().map_err(ReadFailure::Io)?.len();
    let mut head = [0u8; HEADER_LEN];
    match file.read_exact(&mut head) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            return Err(ReadFailure::Damaged(Damage::BadHeader));
        }
        Err(e) => return Err(ReadFailure::Io(e)),
    }
    if head[..4] != MAGIC || head[4..6] != BLOB_FORMAT_VERSION.to_le_bytes() || head[6..8] != [0, 0]
    {
        return Err(ReadFailure::Damaged(Damage::BadHeader));
    }
    let mut len8 = [0u8; 8];
    len8.copy_from_slice(&head[8..16]);
    let len = u64::from_le_bytes(len8);
    if expected_len.is_some_and(|e| e != len) {
        return Err(ReadFailure::Damaged(Damage::LengthMismatch));
    }
    let len = usize::try_from(len).map_err(|_| ReadFailure::Damaged(Damage::LengthMismatch))?;
    let compressed_len = file_len
        .checked_sub(HEADER_LEN as u64)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or(ReadFailure::Damaged(Damage::BadFrame))?;
    // zstd cannot expand data by more than this: a larger claim is a damaged header,
    // and must not make us allocate.
    if compressed_len == 0 || len / 32_768 > compressed_len {
        return Err(ReadFailure::Damaged(Damage::BadFrame));
    }
    SCRATCH.with(|cell| {
        let mut scratch = cell.borrow_mut();
        let Scratch { dctx, compressed } = &mut *scratch;
        compressed.resize(compressed_len, 0);
        match file.read_exact(compressed) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return Err(ReadFailure::Damaged(Damage::BadFrame));
            }
            Err(e) => return Err(ReadFailure::Io(e)),
        }
        let dctx = match dctx {
            Some(d) => d,
            None => dctx.insert(zstd::bulk::Decompressor::new().map_err(ReadFailure::Io)?),
        };
        out.reserve_exact(len);
        let n = dctx
            .decompress_to_buffer(compressed.as_slice(), out)
            .map_err(|_| ReadFailure::Damaged(Damage::BadFrame));
        if compressed.capacity() > SCRATCH_KEEP {
            *compressed = Vec::new();
        }
        if n? != len {
            return Err(ReadFailure::Damaged(Damage::BadFrame));
        }
        Ok(())
    })?;
    if blake3::hash(out).as_bytes() != id.as_bytes() {
        return Err(ReadFailure::Damaged(Damage::HashMismatch));
    }
    Ok(())
}
