//! Cache keys: a BLAKE3 hash over a canonical encoding of everything that can change the
//! compiled code.
//!
//! The encoding is two-level. Each field group (unit bytes, backend identity, flags,
//! target, dependencies) is hashed on its own under its own BLAKE3 derive-key context,
//! every variable-length item prefixed by its length as a little-endian `u64`. The key
//! then hashes, under the key context, the key-format version, the namespace and unit
//! name (length-prefixed) and the five group digests in a fixed order. The group
//! digests are kept in [`KeyComponents`], so a later miss can be explained field by
//! field ("flags changed") without storing the inputs themselves.
//!
//! `docs/format.md` gives the byte-level encoding; the golden test vector in
//! `store/tests` pins it.

use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

use crate::error::Error;

/// Version of the key encoding. Bumping it makes every existing key miss.
pub const KEY_FORMAT_VERSION: u32 = 1;

const CTX_KEY: &str = "jitcache 2025-01 key v1";
const CTX_UNIT: &str = "jitcache 2025-01 key v1 unit";
const CTX_BACKEND: &str = "jitcache 2025-01 key v1 backend";
const CTX_FLAGS: &str = "jitcache 2025-01 key v1 flags";
const CTX_TARGET: &str = "jitcache 2025-01 key v1 target";
const CTX_DEPS: &str = "jitcache 2025-01 key v1 deps";

// A derive-key hasher starts by hashing its context string: one compression per field per
// key. Each context's starting state is made once per process and cloned (the same bytes
// come out: the golden vector pins them).
static HASHER_KEY: LazyLock<blake3::Hasher> =
    LazyLock::new(|| blake3::Hasher::new_derive_key(CTX_KEY));
static HASHER_UNIT: LazyLock<blake3::Hasher> =
    LazyLock::new(|| blake3::Hasher::new_derive_key(CTX_UNIT));
static HASHER_BACKEND: LazyLock<blake3::Hasher> =
    LazyLock::new(|| blake3::Hasher::new_derive_key(CTX_BACKEND));
static HASHER_FLAGS: LazyLock<blake3::Hasher> =
    LazyLock::new(|| blake3::Hasher::new_derive_key(CTX_FLAGS));
static HASHER_TARGET: LazyLock<blake3::Hasher> =
    LazyLock::new(|| blake3::Hasher::new_derive_key(CTX_TARGET));
static HASHER_DEPS: LazyLock<blake3::Hasher> =
    LazyLock::new(|| blake3::Hasher::new_derive_key(CTX_DEPS));

/// A fresh hasher in the derive-key mode of one context.
fn hasher(start: &LazyLock<blake3::Hasher>) -> blake3::Hasher {
    (**start).clone()
}

/// A cache key: 32 bytes of BLAKE3. Displayed and parsed as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key([u8; 32]);

impl Key {
    /// The key's 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// A key from its 32 bytes (as stored, or as returned by [`Key::as_bytes`]).
    pub fn from_bytes(bytes: [u8; 32]) -> Key {
        Key(bytes)
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({self})")
    }
}

impl FromStr for Key {
    type Err = Error;

    fn from_str(text: &str) -> Result<Key, Error> {
        parse_hex32(text).map(Key).ok_or_else(|| Error::InvalidKey {
            text: text.to_owned(),
        })
    }
}

/// Writes `bytes` as lowercase hex.
pub(crate) fn write_hex(f: &mut impl fmt::Write, bytes: &[u8]) -> fmt::Result {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        f.write_char(char::from(DIGITS[usize::from(b >> 4)]))?;
        f.write_char(char::from(DIGITS[usize::from(b & 0xf)]))?;
    }
    Ok(())
}

/// Parses exactly 64 hex digits (either case).
pub(crate) fn parse_hex32(text: &str) -> Option<[u8; 32]> {
    let digits = text.as_bytes();
    if digits.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        let hi = char::from(pair[0]).to_digit(16)?;
        let lo = char::from(pair[1]).to_digit(16)?;
        *byte = u8::try_from(hi << 4 | lo).ok()?;
    }
    Some(out)
}

/// Whether the order of a flag list matters to the backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum FlagOrder {
    /// Order matters: the flags are hashed as given (`-O2 -O0` differs from `-O0 -O2`).
    Ordered,
    /// Order does not matter: the flags are sorted and duplicates dropped before hashing.
    #[default]
    Unordered,
}

/// The per-field digests a key is made of, so a miss can be explained field by field.
///
/// `namespace` and `name` are kept in clear (they identify the unit); the other fields
/// are BLAKE3 digests of their canonical encodings.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KeyComponents {
    /// The namespace (frontend or language).
    pub namespace: String,
    /// The unit's name.
    pub name: String,
    /// Digest of the unit's bytes (source or IR).
    pub unit: [u8; 32],
    /// Digest of the backend's name and version.
    pub backend: [u8; 32],
    /// Digest of the canonical flag list (and whether its order counts).
    pub flags: [u8; 32],
    /// Digest of the target description.
    pub target: [u8; 32],
    /// Digest of the sorted set of dependency interface hashes.
    pub deps: [u8; 32],
}

/// One field of a key, as reported by [`KeyComponents::differences`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyField {
    /// The namespace.
    Namespace,
    /// The unit name.
    Name,
    /// The unit's bytes (source or IR).
    Unit,
    /// The backend's name or version.
    Backend,
    /// The flags.
    Flags,
    /// The target.
    Target,
    /// The dependencies' interface hashes.
    Deps,
}

impl fmt::Display for KeyField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyField::Namespace => "namespace",
            KeyField::Name => "name",
            KeyField::Unit => "source",
            KeyField::Backend => "backend",
            KeyField::Flags => "flags",
            KeyField::Target => "target",
            KeyField::Deps => "dependencies",
        })
    }
}

impl KeyComponents {
    /// The identity of the backend that made the entry: a digest of the backend's
    /// name and version, flags and target digests. Entries of an identity this machine
    /// no longer uses are evicted first (see `store/src/foreign.rs`).
    pub fn backend_identity(&self) -> [u8; 32] {
        let mut hasher = blake3::Hasher::new();
        hasher.update(b"jitcache backend identity\0");
        hasher.update(&self.backend);
        hasher.update(&self.flags);
        hasher.update(&self.target);
        *hasher.finalize().as_bytes()
    }

    /// The key these components make.
    pub fn key(&self) -> Key {
        Digests {
            namespace: &self.namespace,
            name: &self.name,
            unit: self.unit,
            backend: self.backend,
            flags: self.flags,
            target: self.target,
            deps: self.deps,
        }
        .key()
    }

    /// The fields that differ between `self` and `other`, in key order. Empty when both
    /// make the same key.
    pub fn differences(&self, other: &KeyComponents) -> Vec<KeyField> {
        let mut out = Vec::new();
        if self.namespace != other.namespace {
            out.push(KeyField::Namespace);
        }
        if self.name != other.name {
            out.push(KeyField::Name);
        }
        let pairs = [
            (KeyField::Unit, &self.unit, &other.unit),
            (KeyField::Backend, &self.backend, &other.backend),
            (KeyField::Flags, &self.flags, &other.flags),
            (KeyField::Target, &self.target, &other.target),
            (KeyField::Deps, &self.deps, &other.deps),
        ];
        out.extend(
            pairs
                .into_iter()
                .filter(|(_, a, b)| a != b)
                .map(|(f, _, _)| f),
        );
        out
    }
}

/// Builds a [`Key`] from the inputs that can change the compiled code.
///
/// Fields not set are empty (empty unit bytes, empty backend name and version, no flags,
/// empty target, no dependencies). Setting a field again replaces it, except
/// [`KeyBuilder::dep`], which adds to a set.
///
/// ```
/// use jitcache_store::{FlagOrder, KeyBuilder};
///
/// let key = KeyBuilder::new("lisp", "fib")
///     .unit(b"(defun fib (n) ...)")
///     .backend("cranelift", "0.135.0")
///     .flags(["opt_level=speed"], FlagOrder::Unordered)
///     .target("x86_64-unknown-linux-gnu+avx2")
///     .build();
/// assert_eq!(key.to_string().len(), 64);
/// ```
#[derive(Clone, Debug)]
pub struct KeyBuilder {
    namespace: String,
    name: String,
    unit: [u8; 32],
    backend: [u8; 32],
    flags: [u8; 32],
    target: [u8; 32],
    deps: Vec<Vec<u8>>,
}

impl KeyBuilder {
    /// Starts a key for unit `name` in `namespace` (the frontend or language).
    pub fn new(namespace: &str, name: &str) -> Self {
        let mut b = KeyBuilder {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            unit: [0; 32],
            backend: [0; 32],
            flags: [0; 32],
            target: [0; 32],
            deps: Vec::new(),
        };
        b.unit(b"")
            .backend("", "")
            .flags(std::iter::empty::<&str>(), FlagOrder::Unordered)
            .target("");
        b
    }

    /// A builder for another unit with this one's backend, flags and target: the digests
    /// of those are reused, not recomputed, which matters when a batch of many units
    /// shares one backend with a long flag list. The unit bytes are empty and there are
    /// no dependencies until set.
    ///
    /// ```
    /// use jitcache_store::{FlagOrder, KeyBuilder};
    ///
    /// let mut backend = KeyBuilder::new("", "");
    /// backend.backend("cranelift", "0.135.8").flags(["opt_level=speed"], FlagOrder::Unordered);
    /// let fast = backend.for_unit("lisp", "fib").unit(b"(defn fib ...)").build();
    /// let slow = KeyBuilder::new("lisp", "fib")
    ///     .unit(b"(defn fib ...)")
    ///     .backend("cranelift", "0.135.8")
    ///     .flags(["opt_level=speed"], FlagOrder::Unordered)
    ///     .build();
    /// assert_eq!(fast, slow);
    /// ```
    pub fn for_unit(&self, namespace: &str, name: &str) -> KeyBuilder {
        let mut b = KeyBuilder {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            unit: [0; 32],
            backend: self.backend,
            flags: self.flags,
            target: self.target,
            deps: Vec::new(),
        };
        // The digest of no unit bytes, as `KeyBuilder::new` starts with; computed once.
        static EMPTY_UNIT: LazyLock<[u8; 32]> = LazyLock::new(|| unit_digest(b""));
        b.unit = *EMPTY_UNIT;
        b
    }

    /// The key of a unit compiled with this builder's backend, flags and target: the
    /// same key as `self.for_unit(namespace, name)` with `unit` and each of `deps`
    /// added then built, without the allocations of a builder (a warm start computes
    /// thousands of these before it can read anything).
    ///
    /// ```
    /// use jitcache_store::KeyBuilder;
    ///
    /// let mut backend = KeyBuilder::new("", "");
    /// backend.backend("cranelift", "0.135.8").target("x86_64-unknown-linux-gnu");
    /// let deps = [[2u8; 32], [1u8; 32]];
    /// let mut slow = backend.for_unit("lisp", "fib");
    /// slow.unit(b"(defn fib ...)");
    /// for d in &deps {
    ///     slow.dep(d);
    /// }
    /// assert_eq!(backend.key_of("lisp", "fib", b"(defn fib ...)", &deps), slow.build());
    /// ```
    pub fn key_of(&self, namespace: &str, name: &str, unit: &[u8], deps: &[[u8; 32]]) -> Key {
        // The dependencies are a set: sorted, duplicates dropped, as `dep` keeps them.
        let mut sorted: Vec<&[u8; 32]> = deps.iter().collect();
        sorted.sort_unstable();
        sorted.dedup();
        Digests {
            namespace,
            name,
            unit: unit_digest(unit),
            backend: self.backend,
            flags: self.flags,
            target: self.target,
            deps: deps_digest(sorted.iter().map(|d| d.as_slice())),
        }
        .key()
    }

    /// Sets the unit's bytes (source or IR). Only their digest is kept.
    pub fn unit(&mut self, bytes: &[u8]) -> &mut Self {
        self.unit = unit_digest(bytes);
        self
    }

    /// Sets the backend's identity: its name and version (a crate version, or a digest
    /// of the compiler binary's `--version` output).
    pub fn backend(&mut self, name: &str, version: &str) -> &mut Self {
        let mut h = hasher(&HASHER_BACKEND);
        field(&mut h, name.as_bytes());
        field(&mut h, version.as_bytes());
        self.backend = *h.finalize().as_bytes();
        self
    }

    /// Sets the backend flags. With [`FlagOrder::Unordered`] they are sorted and
    /// deduplicated first; with [`FlagOrder::Ordered`] they are kept as given. The order
    /// mode itself is part of the key.
    pub fn flags<I, S>(&mut self, flags: I, order: FlagOrder) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut list: Vec<S> = flags.into_iter().collect();
        if order == FlagOrder::Unordered {
            list.sort_by(|a, b| a.as_ref().cmp(b.as_ref()));
            list.dedup_by(|a, b| a.as_ref() == b.as_ref());
        }
        let mut h = hasher(&HASHER_FLAGS);
        h.update(&[match order {
            FlagOrder::Unordered => 0,
            FlagOrder::Ordered => 1,
        }]);
        h.update(&len64(list.len()));
        for flag in &list {
            field(&mut h, flag.as_ref().as_bytes());
        }
        self.flags = *h.finalize().as_bytes();
        self
    }

    /// Sets the target: triple plus resolved CPU features (never "native").
    pub fn target(&mut self, target: &str) -> &mut Self {
        let mut h = hasher(&HASHER_TARGET);
        field(&mut h, target.as_bytes());
        self.target = *h.finalize().as_bytes();
        self
    }

    /// Adds the interface hash of something the unit depends on at compile time. The
    /// dependencies are a set: order and duplicates do not change the key.
    pub fn dep(&mut self, interface_hash: &[u8]) -> &mut Self {
        if let Err(at) = self
            .deps
            .binary_search_by(|d| d.as_slice().cmp(interface_hash))
        {
            self.deps.insert(at, interface_hash.to_vec());
        }
        self
    }

    /// The key.
    pub fn build(&self) -> Key {
        self.digests().key()
    }

    /// The per-field digests making up the key.
    pub fn components(&self) -> KeyComponents {
        let d = self.digests();
        KeyComponents {
            namespace: d.namespace.to_owned(),
            name: d.name.to_owned(),
            unit: d.unit,
            backend: d.backend,
            flags: d.flags,
            target: d.target,
            deps: d.deps,
        }
    }

    fn digests(&self) -> Digests<'_> {
        Digests {
            namespace: &self.namespace,
            name: &self.name,
            unit: self.unit,
            backend: self.backend,
            flags: self.flags,
            target: self.target,
            deps: deps_digest(self.deps.iter().map(Vec::as_slice)),
        }
    }
}

/// What a key hashes: the namespace and unit name in clear, then the five field digests.
/// `KeyComponents::key`, `KeyBuilder::build` and `KeyBuilder::key_of` all make
/// their key with `Digests::key`, and their field digests with `unit_digest`,
/// `deps_digest` and the `KeyBuilder` setters, so the encoding is written once.
struct Digests<'a> {
    namespace: &'a str,
    name: &'a str,
    unit: [u8; 32],
    backend: [u8; 32],
    flags: [u8; 32],
    target: [u8; 32],
    deps: [u8; 32],
}

impl Digests<'_> {
    fn key(&self) -> Key {
        let mut h = hasher(&HASHER_KEY);
        h.update(&KEY_FORMAT_VERSION.to_le_bytes());
        field(&mut h, self.namespace.as_bytes());
        field(&mut h, self.name.as_bytes());
        h.update(&self.unit);
        h.update(&self.backend);
        h.update(&self.flags);
        h.update(&self.target);
        h.update(&self.deps);
        Key(*h.finalize().as_bytes())
    }
}

/// The digest of a unit's bytes.
fn unit_digest(bytes: &[u8]) -> [u8; 32] {
    let mut h = hasher(&HASHER_UNIT);
    field(&mut h, bytes);
    *h.finalize().as_bytes()
}

/// The digest of a dependency set, given sorted and without duplicates.
fn deps_digest<'a>(deps: impl ExactSizeIterator<Item = &'a [u8]>) -> [u8; 32] {
    let mut h = hasher(&HASHER_DEPS);
    h.update(&len64(deps.len()));
    for dep in deps {
        field(&mut h, dep);
    }
    *h.finalize().as_bytes()
}

fn len64(len: usize) -> [u8; 8] {
    // usize is at most 64 bits on every supported target.
    (len as u64).to_le_bytes()
}

/// Hashes one length-prefixed item.
fn field(h: &mut blake3::Hasher, bytes: &[u8]) {
    h.update(&len64(bytes.len()));
    h.update(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let key = KeyBuilder::new("a", "b").build();
        let text = key.to_string();
        assert_eq!(text.len(), 64);
        assert_eq!(text.parse::<Key>().ok(), Some(key));
        assert_eq!(text.to_uppercase().parse::<Key>().ok(), Some(key));
        assert!("xyz".parse::<Key>().is_err());
        assert!(text[..63].parse::<Key>().is_err());
        assert!(format!("{}g", &text[..63]).parse::<Key>().is_err());
        assert!(format!("{}é", &text[..62]).parse::<Key>().is_err());
    }

    #[test]
    fn differences_name_the_changed_fields() {
        let mut a = KeyBuilder::new("c", "main");
        a.unit(b"int main(){}").flags(["-O2"], FlagOrder::Unordered);
        let mut b = a.clone();
        b.flags(["-O3"], FlagOrder::Unordered);
        assert_eq!(
            a.components().differences(&b.components()),
            vec![KeyField::Flags]
        );
        b.unit(b"int main(){return 1;}");
        assert_eq!(
            a.components().differences(&b.components()),
            vec![KeyField::Unit, KeyField::Flags]
        );
        assert_eq!(KeyField::Unit.to_string(), "source");
    }
}
