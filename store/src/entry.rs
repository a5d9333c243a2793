//! What the store keeps about entries and units, as the API hands it out.

use crate::blob::BlobId;
use crate::key::{Key, KeyComponents};
#[cfg(doc)]
use crate::store::Store;

/// Optional metadata stored with an entry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EntryMeta {
    /// A human-readable name (shown by `jitcache ls`).
    pub name: Option<String>,
    /// The key's components; when given, the store remembers them as the last entry of
    /// the unit `(namespace, name)`, so a later miss can be explained
    /// ([`Store::last_unit`]).
    pub components: Option<KeyComponents>,
}

/// One entry of a [`Store::put_many`] batch: the key, the bytes and optional metadata.
#[derive(Clone, Copy, Debug)]
pub struct PutEntry<'a> {
    /// The key to store the bytes under.
    pub key: Key,
    /// The bytes (an object file, usually).
    pub bytes: &'a [u8],
    /// Metadata as for [`Store::put_with`].
    pub meta: Option<&'a EntryMeta>,
}

impl<'a> PutEntry<'a> {
    /// An entry without metadata.
    pub fn new(key: Key, bytes: &'a [u8]) -> PutEntry<'a> {
        PutEntry {
            key,
            bytes,
            meta: None,
        }
    }
}

/// One entry, as listed by [`Store::for_each_entry`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryInfo {
    /// The entry's key.
    pub key: Key,
    /// The blob holding its bytes.
    pub blob: BlobId,
    /// Uncompressed length.
    pub size: u64,
    /// Length of the blob file (shared with other entries holding the same bytes).
    pub stored_size: u64,
    /// The name given at put, if any.
    pub name: Option<String>,
    /// When it was stored, in milliseconds since the Unix epoch.
    pub created: u64,
    /// When it was last read (as of the last flush), in milliseconds since the epoch.
    pub last_access: u64,
}

/// What the store remembers about the last entry stored for a unit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnitRecord {
    /// The key of that entry.
    pub key: Key,
    /// Its components, to compare with the components of a key that missed.
    pub components: KeyComponents,
    /// Whether the entry is still there.
    pub state: UnitState,
}

/// State of a unit's last entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnitState {
    /// The entry is stored.
    Present,
    /// The entry was removed, evicted by gc, or cleared.
    Evicted,
    /// The entry's blob was found damaged and the entry evicted.
    Corrupt,
}

impl UnitState {
    pub(crate) fn code(self) -> i64 {
        match self {
            UnitState::Present => 0,
            UnitState::Evicted => 1,
            UnitState::Corrupt => 2,
        }
    }

    pub(crate) fn from_code(code: i64) -> UnitState {
        match code {
            0 => UnitState::Present,
            2 => UnitState::Corrupt,
            _ => UnitState::Evicted,
        }
    }
}
