//! The unit's own symbol table: every global definition of the unit's objects, with the
//! ELF rules for a strong, weak or common definition meeting another, and the table of
//! names a loaded unit exports to later units.
//!
//! Rules (those of a static link): two strong definitions are an error; a strong one
//! replaces a weak or common one; commons merge (largest size, largest alignment); a weak
//! one never replaces anything. `STB_GNU_UNIQUE` counts as strong here: its uniqueness
//! comes from the COMDAT group it lives in, which is loaded once per process (`link.rs`).

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::hash::{BuildHasherDefault, Hasher};

use crate::error::Error;
use crate::parse::{Bind, Def, Object};

/// The Fx hash (as in rustc): a multiply-rotate over 8-byte words. Symbol tables are
/// hashed on every load, and SipHash's DoS resistance buys nothing against an object
/// that the caller is about to run anyway.
#[derive(Default, Clone, Copy)]
pub(crate) struct FxHasher(u64);

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0_u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0_u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A `HashMap` with [`FxHasher`].
pub(crate) type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// How a global definition ranks against another of the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Strength {
    Weak,
    Common,
    Strong,
}

/// Where a global of the unit is defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GlobalDef {
    /// Object index and symbol index of the defining entry.
    Symbol { obj: usize, sym: usize },
    /// A merged COMMON symbol: index into [`UnitSymbols::commons`].
    Common(usize),
}

/// A COMMON symbol after merging: the layout gives it space in `.bss`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Common {
    pub size: u64,
    pub align: u64,
}

struct Entry_ {
    def: GlobalDef,
    strength: Strength,
    obj: usize,
}

/// The global definitions of one unit.
pub(crate) struct UnitSymbols<'a> {
    map: FastMap<&'a str, Entry_>,
    /// Merged COMMON symbols.
    pub commons: Vec<Common>,
}

impl<'a> UnitSymbols<'a> {
    /// Collects the global definitions of all objects of a unit.
    pub(crate) fn build(objects: &[Object<'a>]) -> Result<UnitSymbols<'a>, Error> {
        let mut map: FastMap<&'a str, Entry_> = FastMap::default();
        // At most one entry per symbol; sized once rather than grown.
        map.reserve(objects.iter().map(|o| o.symbols.len()).sum());
        let mut commons: Vec<Common> = Vec::new();
        for (obj, object) in objects.iter().enumerate() {
            for (sym, symbol) in object.symbols.iter().enumerate() {
                if symbol.bind == Bind::Local || symbol.name.is_empty() {
                    continue;
                }
                let strength = match (symbol.def, symbol.bind) {
                    (Def::Undefined | Def::NotLoaded | Def::Discarded(_), _) => continue,
                    (Def::Common { .. }, _) => Strength::Common,
                    (_, Bind::Weak) => Strength::Weak,
                    _ => Strength::Strong,
                };
                let new_def = |commons: &mut Vec<Common>| match symbol.def {
                    Def::Common { size, align } => {
                        commons.push(Common { size, align });
                        GlobalDef::Common(commons.len() - 1)
                    }
                    _ => GlobalDef::Symbol { obj, sym },
                };
                match map.entry(symbol.name) {
                    Entry::Vacant(v) => {
                        let def = new_def(&mut commons);
                        v.insert(Entry_ { def, strength, obj });
                    }
                    Entry::Occupied(mut o) => {
                        let old = o.get_mut();
                        match (old.strength, strength) {
                            (Strength::Strong, Strength::Strong) => {
                                return Err(Error::DuplicateSymbol {
                                    symbol: symbol.name.to_owned(),
                                    first: objects
                                        .get(old.obj)
                                        .map(|o| o.name)
                                        .unwrap_or("?")
                                        .to_owned(),
                                    second: object.name.to_owned(),
                                });
                            }
                            (Strength::Common, Strength::Common) => {
                                if let (GlobalDef::Common(i), Def::Common { size, align }) =
                                    (old.def, symbol.def)
                                    && let Some(c) = commons.get_mut(i)
                                {
                                    c.size = c.size.max(size);
                                    c.align = c.align.max(align);
                                }
                            }
                            (old_strength, new_strength) if new_strength > old_strength => {
                                old.def = new_def(&mut commons);
                                old.strength = strength;
                                old.obj = obj;
                            }
                            _ => {}
                        }
                    }
                }
            }
        }
        Ok(UnitSymbols { map, commons })
    }

    /// The unit's definition of `name`, if any.
    pub(crate) fn get(&self, name: &str) -> Option<GlobalDef> {
        self.map.get(name).map(|e| e.def)
    }

    /// Number of global definitions.
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// Every global definition, for the exported table.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&'a str, GlobalDef)> + '_ {
        self.map.iter().map(|(name, e)| (*name, e.def))
    }
}

/// A name exported by a loaded unit, as later units see it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Export {
    pub addr: usize,
    pub is_code: bool,
    /// The unit that exports it.
    pub unit: crate::UnitId,
}

/// One global symbol of a loaded unit.
#[derive(Debug, Clone, Copy)]
pub(crate) struct UnitSymbol {
    pub addr: usize,
    pub is_code: bool,
    /// Visible to later units (default or protected visibility).
    pub exported: bool,
}
