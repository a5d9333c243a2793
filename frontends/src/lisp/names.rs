//! A hash table from definition names to their indices, with the names kept
//! elsewhere (in the canonical bytes), so building it allocates once.

/// Open addressing with linear probing over a power-of-two number of slots,
/// at most half full; a slot holds a definition's index, or [`EMPTY`].
#[derive(Clone, Debug)]
pub(crate) struct NameTable {
    slots: Box<[u32]>,
}

const EMPTY: u32 = u32::MAX;

/// FNV-1a over the name's bytes, folded so the low bits depend on all of them.
fn hash(name: &[u8]) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in name {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h ^ (h >> 32)) as usize
}

impl NameTable {
    /// A table for at most `n` names.
    pub fn with_capacity(n: usize) -> NameTable {
        let slots = n.saturating_mul(2).max(8).next_power_of_two();
        NameTable {
            slots: vec![EMPTY; slots].into_boxed_slice(),
        }
    }

    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    /// The index of `name`, given the name of each index.
    pub fn get<'n>(&self, name: &[u8], name_of: impl Fn(u32) -> &'n [u8]) -> Option<u32> {
        let mask = self.mask();
        let mut i = hash(name) & mask;
        loop {
            match self.slots.get(i).copied() {
                None | Some(EMPTY) => return None,
                Some(index) if name_of(index) == name => return Some(index),
                Some(_) => i = (i + 1) & mask,
            }
        }
    }

    /// Adds `name` with `index`, or returns the index it already has. At
    /// most as many names as the capacity may be added.
    pub fn insert<'n>(
        &mut self,
        name: &[u8],
        index: u32,
        name_of: impl Fn(u32) -> &'n [u8],
    ) -> Result<(), u32> {
        let mask = self.mask();
        let mut i = hash(name) & mask;
        loop {
            match self.slots.get(i).copied() {
                Some(EMPTY) => {
                    if let Some(slot) = self.slots.get_mut(i) {
                        *slot = index;
                    }
                    return Ok(());
                }
                Some(other) if name_of(other) == name => return Err(other),
                Some(_) => i = (i + 1) & mask,
                // Unreachable: `i` is masked to the table's size.
                None => return Ok(()),
            }
        }
    }
}
