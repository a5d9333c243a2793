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
/// buffer a blob file is read into.
struct Scratch {
    dctx: Option<zstd::bulk::Decompressor<'static>>,
    compressed: Vec<u8>,
}

/// Per-thread reusable state for the write path: a compression context (with its
/// level) and the buffer a frame is compressed into. Creating a zstd context costs
/// more than compressing a small object, so it is kept.
struct WriteScratch {
    cctx: Option<(i32, zstd::bulk::Compressor<'static>)>,
    frame: Vec<u8>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = const {
        RefCell::new(Scratch { dctx: None, compressed: Vec::new() })
    };
    static WRITE_SCRATCH: RefCell<WriteScratch> = const {
        RefCell::new(WriteScratch { cctx: None, frame: Vec::new() })
    };
}

fn header(len: u64) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..4].copy_from_slice(&MAGIC);
    h[4..6].copy_from_slice(&BLOB_FORMAT_VERSION.to_le_bytes());
    h[8..16].copy_from_slice(&len.to_le_bytes());
    h
}

/// Writes header + zstd frame of `bytes` to `out` (not synced).
pub(crate) fn encode(out: &mut File, bytes: &[u8], level: i32) -> io::Result<()> {
    with_frame(bytes, level, |header, frame| {
        out.write_all(header)?;
        out.write_all(frame)
    })
}

/// Header + zstd frame of `bytes`: what a blob file holds, kept in the index instead
/// for a small blob.
pub(crate) fn encode_to_vec(bytes: &[u8], level: i32) -> io::Result<Vec<u8>> {
    with_frame(bytes, level, |header, frame| Ok([header, frame].concat()))
}

/// Calls `f` with the header and the zstd frame of `bytes` (built in the thread's
/// write scratch).
fn with_frame<T>(
    bytes: &[u8],
    level: i32,
    f: impl FnOnce(&[u8], &[u8]) -> io::Result<T>,
) -> io::Result<T> {
    WRITE_SCRATCH.with(|cell| {
        let mut scratch = cell.borrow_mut();
        let WriteScratch { cctx, frame } = &mut *scratch;
        let level = level.clamp(
            *zstd::compression_level_range().start(),
            *zstd::compression_level_range().end(),
        );
        let cctx = match cctx {
            Some((l, c)) if *l == level => c,
            slot => &mut slot.insert((level, zstd::bulk::Compressor::new(level)?)).1,
        };
        frame.clear();
        frame.reserve(zstd::zstd_safe::compress_bound(bytes.len()));
        let result = cctx
            .compress_to_buffer(bytes, frame)
            .and_then(|_| f(&header(bytes.len() as u64), frame));
        if frame.capacity() > SCRATCH_KEEP {
            *frame = Vec::new();
        }
        result
    })
}

/// Reads and verifies a blob wherever it is kept: `inline` (its stored bytes, when the
/// index holds them) or else the file at `path`. See [`decode_verified`] and
/// [`read_verified`].
pub(crate) fn read_stored(
    inline: Option<&[u8]>,
    path: &Path,
    id: &BlobId,
    expected_len: Option<u64>,
    out: &mut Vec<u8>,
) -> Result<(), ReadFailure> {
    match inline {
        Some(stored) => decode_verified(stored, id, expected_len, out),
        None => read_verified(path, id, expected_len, out),
    }
}

/// Verifies the stored form of a blob kept in the index (header + zstd frame, as a file
/// would hold) against `id` and `expected_len`, leaving the uncompressed bytes in `out`
/// (replacing its contents). On failure `out` is left empty.
pub(crate) fn decode_verified(
    stored: &[u8],
    id: &BlobId,
    expected_len: Option<u64>,
    out: &mut Vec<u8>,
) -> Result<(), ReadFailure> {
    out.clear();
    let result = SCRATCH
        .with(|cell| decode(stored, expected_len, &mut cell.borrow_mut().dctx, out))
        .and_then(|()| check_hash(id, out));
    if result.is_err() {
        out.clear();
    }
    result
}

fn check_hash(id: &BlobId, bytes: &[u8]) -> Result<(), ReadFailure> {
    if blake3::hash(bytes).as_bytes() == id.as_bytes() {
        Ok(())
    } else {
        Err(ReadFailure::Damaged(Damage::HashMismatch))
    }
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
    SCRATCH.with(|cell| {
        let mut scratch = cell.borrow_mut();
        let Scratch {
            dctx,
            compressed: buf,
        } = &mut *scratch;
        read_whole(&mut file, expected_len, buf).map_err(ReadFailure::Io)?;
        if buf.len() < HEADER_LEN {
            return Err(ReadFailure::Damaged(Damage::BadHeader));
        }
        let result = decode(buf, expected_len, dctx, out);
        if buf.capacity() > SCRATCH_KEEP {
            *buf = Vec::new();
        }
        result
    })?;
    check_hash(id, out)
}

/// Reads all of `file` into `buf` (replacing its contents) without asking for its size:
/// the buffer starts large enough for any blob of `expected_len` uncompressed bytes, plus
/// one, so a sound blob is read by a single `read` that comes back short, which for a
/// regular file means the end of it. (`metadata` would cost a system call per hit.)
/// Reads whose buffer is larger than this go through `read_to_end` (see `read_whole`).
const BIG_READ: usize = 16 << 10;

fn read_whole(file: &mut File, expected_len: Option<u64>, buf: &mut Vec<u8>) -> io::Result<()> {
    buf.clear();
    let hint = expected_len
        .and_then(|len| usize::try_from(len).ok())
        .map_or(64 << 10, |len| {
            HEADER_LEN + zstd::zstd_safe::compress_bound(len.min(SCRATCH_KEEP)) + 1
        });
    buf.reserve(hint);
    if hint > BIG_READ {
        // Filling the spare capacity with zeros first (below) would cost more than the
        // extra `read` that finds the end: let the standard library read into it as is.
        return file.read_to_end(buf).map(drop);
    }
    loop {
        if buf.len() == buf.capacity() {
            buf.reserve(buf.capacity().max(4096));
        }
        let spare = buf.capacity() - buf.len();
        let start = buf.len();
        buf.resize(buf.capacity(), 0);
        let n = match file.read(&mut buf[start..]) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                buf.truncate(start);
                continue;
            }
            Err(e) => {
                buf.truncate(start);
                return Err(e);
            }
        };
        buf.truncate(start + n);
        if n == 0 || n < spare {
            return Ok(());
        }
    }
}

/// The uncompressed length a blob's stored form (the bytes of its file, or of its row in
/// the index) declares, and the zstd frame after its header, once the header is checked.
///
/// Nothing outside the store needs this to read a blob (`Store::get` verifies and
/// decompresses); it lets a benchmark decompress exactly the frame a hit decompresses.
///
/// ```
/// assert!(jitcache_store::split_stored(b"not a blob").is_err());
/// ```
pub fn split_stored(stored: &[u8]) -> Result<(u64, &[u8]), Damage> {
    let (Some(head), Some(frame)) = (stored.get(..HEADER_LEN), stored.get(HEADER_LEN..)) else {
        return Err(Damage::BadHeader);
    };
    if head[..4] != MAGIC || head[4..6] != BLOB_FORMAT_VERSION.to_le_bytes() || head[6..8] != [0, 0]
    {
        return Err(Damage::BadHeader);
    }
    let mut len8 = [0u8; 8];
    len8.copy_from_slice(&head[8..16]);
    Ok((u64::from_le_bytes(len8), frame))
}

/// Checks the header in `file` and decompresses the frame after it into `out`.
fn decode(
    file: &[u8],
    expected_len: Option<u64>,
    dctx: &mut Option<zstd::bulk::Decompressor<'static>>,
    out: &mut Vec<u8>,
) -> Result<(), ReadFailure> {
    let damaged = |d| Err(ReadFailure::Damaged(d));
    let (len, frame) = split_stored(file).map_err(ReadFailure::Damaged)?;
    if expected_len.is_some_and(|e| e != len) {
        return damaged(Damage::LengthMismatch);
    }
    // The file shrank while we read it, or zstd would have to expand the frame more
    // than it can: damaged, and no reason to allocate what the header claims.
    if frame.is_empty() || len / 32_768 > frame.len() as u64 {
        return damaged(Damage::BadFrame);
    }
    let Ok(len) = usize::try_from(len) else {
        return damaged(Damage::LengthMismatch);
    };
    let dctx = match dctx {
        Some(d) => d,
        None => dctx.insert(zstd::bulk::Decompressor::new().map_err(ReadFailure::Io)?),
    };
    out.try_reserve_exact(len)
        .map_err(|_| ReadFailure::Damaged(Damage::LengthMismatch))?;
    match dctx.decompress_to_buffer(frame, out) {
        Ok(n) if n == len => Ok(()),
        _ => damaged(Damage::BadFrame),
    }
}
