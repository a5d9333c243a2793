//! The remote object format: one object per cache key, self-describing and verifiable.
//!
//! ```text
//! offset  size  field
//!      0     8  magic "JCREMOTE"
//!      8     4  format version (1), little-endian
//!     12     4  flags: bit 0 = signed; other bits must be 0
//!     16    32  the cache key the object was stored under
//!     48    32  BLAKE3 of the uncompressed object bytes
//!     80     8  uncompressed length
//!     88     2  name length N (at most 1024)
//!     90     N  the entry's name (UTF-8: "lisp/fib", "pack"), for `jitcache ls`
//!   90+N     8  compressed length C
//!   98+N     C  the object bytes, one zstd frame
//! 98+N+C    32  only when signed: BLAKE3 keyed hash of every byte before it, keyed with
//!               blake3::derive_key("jitcache remote object MAC v1", secret)
//! ```
//!
//! A reader checks, in order: magic, version, flags, lengths (nothing missing, nothing
//! after the end), that the embedded key is the key asked for, the MAC (with a secret
//! configured, an unsigned object is rejected), the declared length against its bound,
//! decompression within that length, and the BLAKE3 of the result. Any failure is a
//! [`Rejection`]: the caller treats it as a miss and never sees the bytes.

use jitcache_store::Key;

use crate::config::Secret;

/// The first bytes of every remote object.
pub const MAGIC: &[u8; 8] = b"JCREMOTE";
/// The envelope format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// The context string of the MAC key derivation.
pub const MAC_CONTEXT: &str = "jitcache remote object MAC v1";

const FLAG_SIGNED: u32 = 1;
const MAX_NAME: usize = 1024;
const MAC_LEN: usize = 32;

/// The key that signs and checks objects, derived from the shared secret.
#[derive(Clone)]
pub struct MacKey([u8; 32]);

impl MacKey {
    /// Derives the MAC key from the shared secret.
    pub fn derive(secret: &Secret) -> MacKey {
        MacKey(blake3::derive_key(MAC_CONTEXT, secret.as_bytes()))
    }

    fn mac(&self, bytes: &[u8]) -> blake3::Hash {
        blake3::keyed_hash(&self.0, bytes)
    }
}

impl std::fmt::Debug for MacKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MacKey(..)")
    }
}

/// Why a remote object was not accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// Shorter than its fields say, or bytes after its end.
    BadLength,
    /// Not a jitcache remote object.
    BadMagic,
    /// Written by another format version.
    UnsupportedVersion(u32),
    /// Flags this build does not know.
    UnknownFlags(u32),
    /// The name is longer than allowed or not UTF-8.
    BadName,
    /// Stored under one key but carrying another.
    WrongKey,
    /// A secret is configured and the object is not signed.
    Unsigned,
    /// The MAC does not match: another secret, or tampering.
    BadSignature,
    /// The declared length is over the configured bound.
    TooLarge(u64),
    /// The compressed bytes do not decompress to the declared length.
    Decompress,
    /// The bytes do not match their BLAKE3 hash.
    HashMismatch,
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rejection::BadLength => f.write_str("truncated or overlong object"),
            Rejection::BadMagic => f.write_str("not a jitcache remote object"),
            Rejection::UnsupportedVersion(v) => write!(f, "unsupported format version {v}"),
            Rejection::UnknownFlags(v) => write!(f, "unknown flags {v:#x}"),
            Rejection::BadName => f.write_str("malformed name"),
            Rejection::WrongKey => f.write_str("object carries another key"),
            Rejection::Unsigned => f.write_str("unsigned object, and signing is required"),
            Rejection::BadSignature => f.write_str("bad signature"),
            Rejection::TooLarge(n) => write!(f, "declared size {n} is over the limit"),
            Rejection::Decompress => f.write_str("compressed bytes are damaged"),
            Rejection::HashMismatch => f.write_str("bytes do not match their hash"),
        }
    }
}

/// An accepted object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Opened {
    /// The object bytes, verified against their hash (and signature, when required).
    pub bytes: Vec<u8>,
    /// The entry name recorded by the writer (empty when none).
    pub name: String,
}

/// Builds the remote object for `bytes` stored under `key`; signed when `mac` is given.
/// `name` is cut to 1,024 bytes (at a character boundary).
pub fn seal(key: &Key, name: &str, bytes: &[u8], mac: Option<&MacKey>) -> Vec<u8> {
    let mut cut = name.len().min(MAX_NAME);
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    let name = &name[..cut];
    // Level 3, like the local store. Compressing an in-memory buffer does not fail; were
    // it to, the empty frame would make every reader reject the object, never misread it.
    let compressed = zstd::bulk::compress(bytes, 3).unwrap_or_default();
    let mut out = Vec::with_capacity(98 + name.len() + compressed.len() + MAC_LEN);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    let flags = if mac.is_some() { FLAG_SIGNED } else { 0 };
    out.extend_from_slice(&flags.to_le_bytes());
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(blake3::hash(bytes).as_bytes());
    out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    out.extend_from_slice(&(name.len() as u16).to_le_bytes());
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(&(compressed.len() as u64).to_le_bytes());
    out.extend_from_slice(&compressed);
    if let Some(mac) = mac {
        let tag = mac.mac(&out);
        out.extend_from_slice(tag.as_bytes());
    }
    out
}

/// A cursor over the envelope that fails with [`Rejection::BadLength`] past the end.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Rejection> {
        let end = self.pos.checked_add(n).ok_or(Rejection::BadLength)?;
        let slice = self.bytes.get(self.pos..end).ok_or(Rejection::BadLength)?;
        self.pos = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], Rejection> {
        self.take(N)?.try_into().map_err(|_| Rejection::BadLength)
    }

    fn u16(&mut self) -> Result<u16, Rejection> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, Rejection> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, Rejection> {
        Ok(u64::from_le_bytes(self.array()?))
    }
}

/// Checks and opens the remote object `envelope` fetched for `key`. With `mac`, the
/// object must be signed with the same secret. `max_size` bounds the uncompressed size.
pub fn open(
    envelope: &[u8],
    key: &Key,
    mac: Option<&MacKey>,
    max_size: u64,
) -> Result<Opened, Rejection> {
    let mut r = Reader {
        bytes: envelope,
        pos: 0,
    };
    if r.take(MAGIC.len()).map_err(|_| Rejection::BadMagic)? != MAGIC {
        return Err(Rejection::BadMagic);
    }
    let version = r.u32()?;
    if version != FORMAT_VERSION {
        return Err(Rejection::UnsupportedVersion(version));
    }
    let flags = r.u32()?;
    if flags & !FLAG_SIGNED != 0 {
        return Err(Rejection::UnknownFlags(flags));
    }
    let stored_key: [u8; 32] = r.array()?;
    let hash: [u8; 32] = r.array()?;
    let size = r.u64()?;
    let name_len = usize::from(r.u16()?);
    if name_len > MAX_NAME {
        return Err(Rejection::BadName);
    }
    let name = r.take(name_len)?;
    let clen = usize::try_from(r.u64()?).map_err(|_| Rejection::BadLength)?;
    let compressed = r.take(clen)?;
    let signed_end = r.pos;
    let tag = if flags & FLAG_SIGNED != 0 {
        Some(r.array::<MAC_LEN>()?)
    } else {
        None
    };
    if r.pos != envelope.len() {
        return Err(Rejection::BadLength);
    }
    if stored_key != *key.as_bytes() {
        return Err(Rejection::WrongKey);
    }
    if let Some(mac) = mac {
        let tag = tag.ok_or(Rejection::Unsigned)?;
        // blake3::Hash compares in constant time.
        if mac.mac(&envelope[..signed_end]) != blake3::Hash::from_bytes(tag) {
            return Err(Rejection::BadSignature);
        }
    }
    let name = std::str::from_utf8(name).map_err(|_| Rejection::BadName)?;
    if size > max_size {
        return Err(Rejection::TooLarge(size));
    }
    let capacity = usize::try_from(size).map_err(|_| Rejection::TooLarge(size))?;
    let bytes = zstd::bulk::decompress(compressed, capacity).map_err(|_| Rejection::Decompress)?;
    if bytes.len() != capacity {
        return Err(Rejection::Decompress);
    }
    if blake3::hash(&bytes) != blake3::Hash::from_bytes(hash) {
        return Err(Rejection::HashMismatch);
    }
    Ok(Opened {
        bytes,
        name: name.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(n: u8) -> Key {
        Key::from_bytes([n; 32])
    }

    fn mac(secret: &str) -> MacKey {
        MacKey::derive(&Secret::new(secret).unwrap())
    }

    #[test]
    fn round_trips_signed_and_unsigned() {
        let bytes = b"\x7fELF and some code".repeat(50);
        let plain = seal(&key(1), "lisp/fib", &bytes, None);
        let opened = open(&plain, &key(1), None, 1 << 20).unwrap();
        assert_eq!(
            (opened.bytes.as_slice(), opened.name.as_str()),
            (&bytes[..], "lisp/fib")
        );

        let signed = seal(&key(1), "lisp/fib", &bytes, Some(&mac("s")));
        assert_eq!(
            open(&signed, &key(1), Some(&mac("s")), 1 << 20)
                .unwrap()
                .bytes,
            bytes
        );
        // A reader without a secret still checks the hash of a signed object.
        assert_eq!(open(&signed, &key(1), None, 1 << 20).unwrap().bytes, bytes);
    }

    #[test]
    fn signing_is_enforced_when_a_secret_is_configured() {
        let bytes = b"code".to_vec();
        let plain = seal(&key(1), "", &bytes, None);
        let other = seal(&key(1), "", &bytes, Some(&mac("other")));
        let good = mac("good");
        assert_eq!(
            open(&plain, &key(1), Some(&good), 64),
            Err(Rejection::Unsigned)
        );
        assert_eq!(
            open(&other, &key(1), Some(&good), 64),
            Err(Rejection::BadSignature)
        );
        // Stripping the signature and the flag does not help.
        let mut stripped = other[..other.len() - 32].to_vec();
        stripped[12] = 0;
        assert_eq!(
            open(&stripped, &key(1), Some(&good), 64),
            Err(Rejection::Unsigned)
        );
    }

    #[test]
    fn bounds_and_keys_are_checked() {
        let bytes = vec![7u8; 10_000];
        let sealed = seal(&key(2), "x", &bytes, None);
        assert_eq!(
            open(&sealed, &key(3), None, 1 << 20),
            Err(Rejection::WrongKey)
        );
        assert_eq!(
            open(&sealed, &key(2), None, 9_999),
            Err(Rejection::TooLarge(10_000))
        );
        assert_eq!(
            open(b"JCREMOT", &key(2), None, 64),
            Err(Rejection::BadMagic)
        );
        assert_eq!(open(b"", &key(2), None, 64), Err(Rejection::BadMagic));
        let mut longer = sealed.clone();
        longer.push(0);
        assert_eq!(
            open(&longer, &key(2), None, 1 << 20),
            Err(Rejection::BadLength)
        );
        let long_name = "é".repeat(1000);
        let sealed = seal(&key(2), &long_name, b"", None);
        let opened = open(&sealed, &key(2), None, 0).unwrap();
        assert!(opened.name.len() <= MAX_NAME && long_name.starts_with(&opened.name));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Any change to an envelope is rejected or still yields exactly the original
        /// bytes; signed envelopes reject every change.
        #[test]
        fn any_mutation_is_rejected_or_harmless(
            bytes in proptest::collection::vec(any::<u8>(), 0..2048),
            signed in any::<bool>(),
            edits in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4),
            cut in proptest::option::of(any::<prop::sample::Index>()),
        ) {
            let secret = mac("fleet secret");
            let mac = signed.then_some(&secret);
            let original = seal(&key(9), "lisp/f", &bytes, mac);
            let mut envelope = original.clone();
            for (at, xor) in &edits {
                let i = at.index(envelope.len());
                envelope[i] ^= xor;
            }
            if let Some(cut) = cut {
                envelope.truncate(cut.index(envelope.len()));
            }
            if let Ok(opened) = open(&envelope, &key(9), mac, 1 << 20) {
                prop_assert!(
                    !signed || envelope == original,
                    "a changed signed envelope was accepted"
                );
                prop_assert_eq!(opened.bytes, bytes);
            }
        }

        /// Another key or another secret never opens an object.
        #[test]
        fn another_key_or_secret_is_rejected(
            bytes in proptest::collection::vec(any::<u8>(), 0..512),
            k in any::<u8>(),
            other in any::<u8>(),
            secret in "[a-z]{1,12}",
            wrong in "[a-z]{1,12}",
        ) {
            prop_assume!(k != other && secret != wrong);
            let sealed = seal(&key(k), "", &bytes, Some(&mac(&secret)));
            prop_assert_eq!(open(&sealed, &key(other), Some(&mac(&secret)), 1 << 20), Err(Rejection::WrongKey));
            prop_assert_eq!(open(&sealed, &key(k), Some(&mac(&wrong)), 1 << 20), Err(Rejection::BadSignature));
            prop_assert_eq!(open(&sealed, &key(k), Some(&mac(&secret)), 1 << 20).map(|o| o.bytes), Ok(bytes));
        }
    }
}
