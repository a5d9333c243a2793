//! Packs: the objects of a whole batch stored as one more entry, so that a warm start of
//! a program of many units reads one blob instead of one per unit.
//!
//! A pack's key is made from the batch's unit keys, in order; its bytes are the objects,
//! each length-prefixed. The store verifies a pack like any blob, and the key covers
//! every unit key, so a pack can only ever hold exactly the objects those keys name: a
//! changed unit changes the pack key. Packs are an addition: a missing, evicted or damaged
//! pack falls back to reading the units one by one, and the next batch writes it again.

use std::ops::Range;
use std::sync::Arc;

use jitcache_store::{Key, KeyBuilder};

/// Batches with at least this many units read and write packs. Below it the per-unit
/// reads cost little, and a pack would only double what the store holds.
pub(super) const PACK_MIN_UNITS: usize = 64;

/// The key of the pack of a batch whose units have `keys`, in this order.
pub(super) fn pack_key(keys: &[Key]) -> Key {
    let mut list = Vec::with_capacity(keys.len() * 32);
    for key in keys {
        list.extend_from_slice(key.as_bytes());
    }
    KeyBuilder::new("jitcache.pack", "batch")
        .unit(&list)
        .build()
}

/// The pack of `objects`: a count, then each object's length and bytes (u64 LE).
pub(super) fn encode<'a>(objects: impl ExactSizeIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(objects.len() as u64).to_le_bytes());
    for object in objects {
        out.extend_from_slice(&(object.len() as u64).to_le_bytes());
        out.extend_from_slice(object);
    }
    out
}

/// Where the objects of a pack made for `count` units lie in `bytes`; `None` unless it
/// is exactly that.
pub(super) fn decode(mut bytes: &[u8], count: usize) -> Option<Vec<Range<usize>>> {
    let whole = bytes.len();
    let take_u64 = |bytes: &mut &[u8]| -> Option<usize> {
        let (head, rest) = bytes.split_first_chunk::<8>()?;
        *bytes = rest;
        usize::try_from(u64::from_le_bytes(*head)).ok()
    };
    if take_u64(&mut bytes)? != count {
        return None;
    }
    let mut objects = Vec::with_capacity(count);
    for _ in 0..count {
        let len = take_u64(&mut bytes)?;
        let start = whole - bytes.len();
        bytes = bytes.get(len..)?;
        objects.push(start..start + len);
    }
    bytes.is_empty().then_some(objects)
}

/// An object's bytes, shared: a whole buffer, or one object of a pack (whose buffer its
/// objects share instead of each being copied out).
#[derive(Clone, Debug)]
pub(super) struct Object {
    buf: Arc<Vec<u8>>,
    range: Range<usize>,
}

impl Object {
    /// All of `bytes`.
    pub fn whole(bytes: Vec<u8>) -> Object {
        Object {
            range: 0..bytes.len(),
            buf: Arc::new(bytes),
        }
    }

    /// The objects of a pack, from [`decode`]'s ranges.
    pub fn pieces(pack: Vec<u8>, ranges: Vec<Range<usize>>) -> Vec<Object> {
        let buf = Arc::new(pack);
        ranges
            .into_iter()
            .map(|range| Object {
                buf: Arc::clone(&buf),
                range,
            })
            .collect()
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        self.buf.get(self.range.clone()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_anything_else() {
        let objects: Vec<Vec<u8>> = vec![b"one".to_vec(), Vec::new(), vec![7; 300]];
        let bytes = encode(objects.iter().map(Vec::as_slice));
        let ranges = decode(&bytes, 3).expect("a pack of 3");
        let pieces = Object::pieces(bytes.clone(), ranges);
        let back: Vec<&[u8]> = pieces.iter().map(Object::as_slice).collect();
        assert_eq!(back, objects.iter().map(Vec::as_slice).collect::<Vec<_>>());
        assert_eq!(Object::whole(b"all".to_vec()).as_slice(), b"all");
        assert_eq!(decode(&bytes, 2), None, "made for another count");
        for cut in 0..bytes.len() {
            assert_eq!(decode(&bytes[..cut], 3), None, "truncated at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(decode(&longer, 3), None, "trailing bytes");
    }

    #[test]
    fn the_key_covers_every_unit_key_in_order() {
        let a = Key::from_bytes([1; 32]);
        let b = Key::from_bytes([2; 32]);
        assert_ne!(pack_key(&[a, b]), pack_key(&[b, a]));
        assert_ne!(pack_key(&[a]), pack_key(&[a, b]));
        assert_eq!(pack_key(&[a, b]), pack_key(&[a, b]));
        assert_ne!(
            pack_key(&[a]),
            KeyBuilder::new("jitcache.pack", "batch").build()
        );
    }
}
