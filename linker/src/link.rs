//! One load, as a straight list of passes. Each pass leaves an invariant the next relies on:
//!
//! 1. **parse** — every object's sections, symbols and relocations, bounds-checked;
//!    then COMDAT groups already loaded (by an earlier object or unit) are dropped.
//! 2. **scan relocations** — which symbols need a GOT entry, which calls may need a
//!    stub, whether absolute 32-bit fields need low memory.
//! 3. **resolve** — every referenced symbol has a target: the unit itself, earlier units,
//!    the caller's resolver, then the host and opened libraries. (This runs before
//!    allocation, not after copying: it needs no address of ours, an undefined symbol
//!    then fails before any system call, and the placement can aim at the host data that
//!    PC-relative fields must reach.)
//! 4. **lay out** — every section, stub, GOT entry and COMMON symbol has an offset.
//! 5. **allocate** — a piece of the code arena for each segment (or the unit's own
//!    mapping), writable only through a view that is never executable, placed as needed.
//! 6. **copy** — section contents into it (`.bss` and COMMON stay zero).
//! 7. **apply** — GOT entries, stubs, the TLS table, and every relocation with
//!    range-checked writes.
//! 8. **protect** — text read + execute, read-only data read-only; icache flush.
//! 9. **register unwind info** — each `.eh_frame` with `__register_frame`.
//!
//! Constructors (the 10th pass) run in [`crate::Linker::load`] once the unit is owned by
//! the linker, so a failure of any earlier pass leaves nothing behind.

use std::sync::Arc;

use crate::arena::Arena;
use crate::error::{Error, Location};
use crate::host_symbols::HostSymbols;
use crate::layout::{Layout, TlsBlock};
use crate::memory::{Image, Memory, Placement, Request, Segment};
use crate::parse::{self, Bind, Def, Object, SectionKind};
use crate::per_object::PerObject;
use crate::symbols::{Export, FastMap, GlobalDef, UnitSymbol, UnitSymbols};
use crate::tls::{self, TlsSymbol, UnitTls};
use crate::unit::Unit;
use crate::x86_64::{self, Field, Inputs, RelocKind, STUB_SIZE};
use crate::{ObjectFile, Resolver, UnitId};

/// What the passes need from the linker that owns earlier units.
pub(crate) struct Env<'l> {
    pub exports: &'l FastMap<Arc<str>, Export>,
    pub resolver: Option<&'l Resolver>,
    pub host: &'l mut HostSymbols,
    /// COMDAT groups loaded by earlier units: signature → unit.
    pub groups: &'l FastMap<Arc<str>, UnitId>,
    /// The units loaded so far (for symbols of groups they own, hidden ones included).
    pub units: &'l [Unit],
    /// Where the unit's memory comes from.
    pub arena: &'l mut Arena,
}

/// A linked, protected unit whose constructors have not run yet.
pub(crate) struct Linked {
    pub memory: Memory,
    pub symbols: FastMap<Arc<str>, UnitSymbol>,
    pub frames: Vec<usize>,
    pub init: Vec<usize>,
    pub fini: Vec<usize>,
    pub dso_handle: Option<usize>,
    /// Signatures of the COMDAT groups this unit loaded.
    pub groups: Vec<Arc<str>>,
    /// The unit's TLS module and thread-local variables, if it has any.
    pub tls: Option<UnitTls>,
}

/// Runs passes 1–8 (9 is done by the unit's owner so deregistration pairs with it).
pub(crate) fn link(inputs: &[ObjectFile<'_>], mut env: Env<'_>) -> Result<Linked, Error> {
    // 1. Parse.
    let mut objects = inputs
        .iter()
        .map(|o| parse::parse(o.name, o.bytes))
        .collect::<Result<Vec<_>, _>>()?;
    // COMDAT groups already loaded (by an earlier object or unit) are dropped here, so
    // that every later pass sees only what is loaded.
    let groups = comdat(&mut objects, env.groups);
    let unit = UnitSymbols::build(&objects)?;

    // 2. Scan relocations.
    let scan = scan(&objects, &unit);

    // 3. Resolve.
    let resolved = resolve(&objects, &unit, &mut env)?;

    // 4. Lay out.
    let commons: Vec<(u64, u64)> = unit.commons.iter().map(|c| (c.size, c.align)).collect();
    let layout = Layout::new(
        &objects,
        &commons,
        scan.got_len,
        scan.stub_len,
        resolved.cxa_atexit.is_some(),
        resolved.uses_dso_handle,
        scan.tls.bytes(),
    )?;

    // 5. Allocate.
    let request = Request {
        segments: layout.segments.clone(),
        align: layout.align,
        placement: placement(&scan, &resolved),
    };
    let mut memory = Memory::allocate(env.arena, &request)
        .map_err(|source| Error::Memory { op: "mmap", source })?;
    let mut addresses = Addresses {
        bases: Segment::ALL.map(|s| memory.base(s) as u64),
        layout: &layout,
        tls_module: 0,
    };
    let handle = addresses.at(0);
    // The unit's TLS module: a slot in the process-wide registry (freed again if a later
    // pass fails, when `module` drops).
    let module = match &layout.tls {
        Some(block) => Some(register_tls(block, &addresses)?),
        None => None,
    };
    addresses.tls_module = module.as_ref().map_or(0, tls::Module::word);
    if scan.tls.desc_len > 0 {
        tls::prepare_descriptors();
    }

    let Some(mut image) = memory.image() else {
        return Err(internal("fresh memory is not writable"));
    };
    let (init, fini) = fill(&mut image, &objects, &scan, &resolved, &addresses)?;

    // 8. Protect.
    memory.protect().map_err(|source| Error::Memory {
        op: "mprotect",
        source,
    })?;

    let (symbols, tls_symbols) = unit_symbols(&objects, &unit, &addresses);
    let frames = layout
        .eh_frames
        .iter()
        .map(|&off| addresses.at(off) as usize)
        .collect();
    let dso_handle = resolved
        .uses_dso_handle
        .then_some(handle as usize)
        .filter(|&b| b != 0);
    Ok(Linked {
        memory,
        symbols,
        frames,
        init,
        fini,
        dso_handle,
        groups: groups.into_iter().map(Arc::from).collect(),
        tls: module.map(|module| UnitTls::new(module, tls_symbols)),
    })
}

/// Registers the unit's TLS block, whose template is in the unit's memory.
fn register_tls(block: &TlsBlock, addresses: &Addresses<'_>) -> Result<tls::Module, Error> {
    let size = |v: u64| usize::try_from(v).map_err(|_| Error::TooLarge { size: v });
    let template = tls::Template {
        addr: addresses.at(block.template) as usize,
        init_len: size(block.init_len)?,
        size: size(block.size)?,
        align: size(block.align)?,
    };
    tls::Module::register(template).ok_or_else(|| internal("TLS module"))
}

/// Passes 6 and 7: copies the sections into the unit's memory and applies the GOT,
/// stubs, the `atexit` thunk and every relocation. Returns the constructor and
/// destructor entries, read back from the relocated arrays.
fn fill(
    bytes: &mut Image<'_>,
    objects: &[Object<'_>],
    scan: &Scan,
    resolved: &Resolved,
    addresses: &Addresses<'_>,
) -> Result<(Vec<usize>, Vec<usize>), Error> {
    let layout = addresses.layout;
    let handle = addresses.at(0);
    // 6. Copy.
    for (oi, object) in objects.iter().enumerate() {
        for (si, s) in object.sections.iter().enumerate() {
            if s.kind == SectionKind::Bss {
                continue;
            }
            if let Some(off) = layout.section(oi, si) {
                write(bytes, off, s.data)?;
            }
        }
    }

    // 7. Apply: GOT entries and stubs first, then every relocation.
    for (oi, slots) in scan.got_slot.rows() {
        for (si, slot) in slots.iter().enumerate() {
            if let (Some(slot), Some(Some(r))) = (slot, resolved.targets.get(oi, si)) {
                let value = addresses.of(r.target);
                write(
                    bytes,
                    layout.got + 8 * u64::from(*slot),
                    &value.to_le_bytes(),
                )?;
            }
        }
    }
    for (oi, slots) in scan.stub_slot.rows() {
        for (si, slot) in slots.iter().enumerate() {
            if let (Some(slot), Some(Some(r))) = (slot, resolved.targets.get(oi, si)) {
                let stub = x86_64::stub(addresses.of(r.target));
                write(bytes, layout.stubs + STUB_SIZE * u64::from(*slot), &stub)?;
            }
        }
    }
    tls_table(bytes, scan, resolved, addresses)?;
    if let Some(cxa_atexit) = resolved.cxa_atexit {
        let at = addresses.at(layout.atexit_thunk);
        let thunk =
            x86_64::atexit_thunk(at, handle, cxa_atexit).ok_or_else(|| internal("atexit thunk"))?;
        write(bytes, layout.atexit_thunk, &thunk)?;
    }
    for (oi, object) in objects.iter().enumerate() {
        for (si, s) in object.sections.iter().enumerate() {
            let Some(off) = layout.section(oi, si) else {
                continue;
            };
            for r in object.relocs(s) {
                apply(bytes, objects, oi, si, off, r, scan, resolved, addresses)?;
            }
        }
    }
    arrays(bytes, objects, layout)
}

/// Writes the TLS table: the unit's `tls_index` pair for `TLSLD` (offset 0), a pair per
/// `TLSGD` symbol, a descriptor `{resolver, module, offset}` per `TLSDESC` symbol. An
/// entry whose symbol is not thread-local stays zero; its relocation reports it.
fn tls_table(
    bytes: &mut Image<'_>,
    scan: &Scan,
    resolved: &Resolved,
    addresses: &Addresses<'_>,
) -> Result<(), Error> {
    let slots = &scan.tls;
    let base = addresses.layout.tls_table;
    let pair = |module: u64, offset: u64| {
        let mut b = [0_u8; 16];
        b[..8].copy_from_slice(&module.to_le_bytes());
        b[8..].copy_from_slice(&offset.to_le_bytes());
        b
    };
    if slots.ld {
        write(bytes, base, &pair(addresses.tls_module, 0))?;
    }
    let target_of = |&(oi, sym): &(usize, usize)| {
        resolved
            .targets
            .get(oi, sym)
            .copied()
            .flatten()
            .and_then(|r| addresses.tls_of(r.target))
    };
    for (key, &slot) in &slots.gd {
        if let Some((module, offset)) = target_of(key) {
            write(bytes, base + slots.gd_offset(slot), &pair(module, offset))?;
        }
    }
    let resolver = tls::tlsdesc_resolver as *const () as u64;
    for (key, &slot) in &slots.desc {
        if let Some((module, offset)) = target_of(key) {
            let at = base + slots.desc_offset(slot);
            write(bytes, at, &resolver.to_le_bytes())?;
            write(bytes, at + 8, &pair(module, offset))?;
        }
    }
    Ok(())
}

fn internal(what: &str) -> Error {
    Error::Malformed {
        object: "<unit>".to_owned(),
        reason: format!("internal: {what}"),
    }
}

/// Bounds-checked copy into the unit's bytes (inside one segment).
/// Writes a computed relocation field at `offset`. An overflow is
/// [`Error::OutOfRange`], at the place, relocation and symbol `describe` gives.
fn write_field(
    bytes: &mut Image<'_>,
    offset: u64,
    field: Field,
    describe: impl FnOnce() -> (Location, &'static str, String),
) -> Result<(), Error> {
    match field {
        Field::Nothing => Ok(()),
        Field::Bytes4(b) => write(bytes, offset, &b),
        Field::Bytes8(b) => write(bytes, offset, &b),
        Field::Overflow { value, bits } => {
            let (at, relocation, symbol) = describe();
            Err(Error::OutOfRange {
                at,
                relocation,
                symbol,
                value: i64::try_from(value).unwrap_or(if value < 0 { i64::MIN } else { i64::MAX }),
                bits,
            })
        }
    }
}

fn write(bytes: &mut Image<'_>, offset: u64, data: &[u8]) -> Result<(), Error> {
    bytes
        .write(offset, data)
        .ok_or_else(|| internal("write outside the unit"))
}

// ---------------------------------------------------------------------------------------
// 1b. COMDAT groups.

/// Keeps the first copy of every COMDAT group (first in load order across units, then in
/// object order): the members of later copies become `Skip` and their symbols
/// `Discarded`, so references resolve to the kept copy by name. Returns the signatures
/// this unit keeps.
///
/// `DW.ref.*` groups (a pointer to the personality routine, referenced PC-relatively from
/// `.eh_frame`) hold no state and are kept per unit, so that the reference stays in reach.
fn comdat<'a>(objects: &mut [Object<'a>], loaded: &FastMap<Arc<str>, UnitId>) -> Vec<&'a str> {
    let mut kept: FastMap<&'a str, ()> = FastMap::default();
    let mut order = Vec::new();
    for object in objects.iter_mut() {
        if object.groups.is_empty() {
            continue;
        }
        let mut owner_of: Vec<Option<Option<UnitId>>> = vec![None; object.sections.len()];
        for g in &object.groups {
            if g.signature.starts_with("DW.ref.") {
                continue;
            }
            let owner = if let Some(&u) = loaded.get(g.signature) {
                Some(u)
            } else if kept.contains_key(g.signature) {
                None
            } else {
                kept.insert(g.signature, ());
                order.push(g.signature);
                continue;
            };
            for &m in &g.members {
                if let Some(slot) = owner_of.get_mut(m) {
                    *slot = Some(owner);
                }
            }
        }
        for (section, owner) in object.sections.iter_mut().zip(&owner_of) {
            if owner.is_some() {
                section.kind = SectionKind::Skip;
            }
        }
        for symbol in &mut object.symbols {
            if let Def::Section { index, .. } = symbol.def
                && let Some(Some(owner)) = owner_of.get(index)
            {
                symbol.def = Def::Discarded(*owner);
            }
        }
    }
    order
}

/// Turns the FDE that contains `at` (an offset in an `.eh_frame` section placed at
/// `section_off`) into a record the unwinder skips, by zeroing its CIE pointer: libgcc
/// treats a record whose CIE pointer is 0 as a CIE and passes over it when it searches
/// FDEs. Used for FDEs of functions in discarded COMDAT groups.
fn tombstone_fde(bytes: &mut Image<'_>, section_off: u64, size: u64, at: u64) -> Result<(), Error> {
    let read32 = |bytes: &Image<'_>, off: u64| -> Option<u64> {
        let b = bytes.get(off, 4)?;
        Some(u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])))
    };
    let mut record = 0_u64;
    while record + 8 <= size {
        let Some(length) = read32(bytes, section_off + record) else {
            break;
        };
        if length == 0 || length == 0xffff_ffff {
            break; // terminator, or 64-bit DWARF (which libgcc does not read either)
        }
        let end = record + 4 + length;
        if (record..end).contains(&at) {
            return write(bytes, section_off + record + 4, &[0; 4]);
        }
        record = end;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// 2. Scan relocations.

/// What the relocations need: GOT slots, stub slots, low memory.
struct Scan {
    /// `[object][symbol]`: GOT slot of the symbol.
    got_slot: PerObject<Option<u32>>,
    got_len: usize,
    /// `[object][symbol]`: stub slot, for `PLT32` calls to symbols the unit does not define.
    stub_slot: PerObject<Option<u32>>,
    stub_len: usize,
    /// Some field is an absolute 32-bit address: the unit must live in the low 2 GiB.
    low32: bool,
    /// Entries of the TLS table.
    tls: TlsSlots,
}

/// The TLS table's entries: one `tls_index` pair for the unit's `TLSLD` relocations
/// (offset 0), one pair per symbol of `TLSGD` relocations, one descriptor (a resolver and
/// a pair) per symbol of `GOTPC32_TLSDESC` relocations. Pairs come first, then
/// descriptors. Maps rather than per-object tables: most units have no TLS relocation.
#[derive(Default)]
struct TlsSlots {
    ld: bool,
    /// `(object, symbol)` → pair index (globals of the same name share one).
    gd: FastMap<(usize, usize), u32>,
    gd_len: u32,
    /// `(object, symbol)` → descriptor index.
    desc: FastMap<(usize, usize), u32>,
    desc_len: u32,
}

impl TlsSlots {
    /// Bytes of the table.
    fn bytes(&self) -> u64 {
        16 * (u64::from(self.ld) + u64::from(self.gd_len))
            + tls::DESCRIPTOR_SIZE * u64::from(self.desc_len)
    }

    /// Notes the entry a TLS relocation at `(object, symbol)` needs.
    fn note<'a>(
        &mut self,
        kind: RelocKind,
        at: (usize, usize),
        key: SlotKey<'a>,
        gd_keys: &mut FastMap<SlotKey<'a>, u32>,
        desc_keys: &mut FastMap<SlotKey<'a>, u32>,
    ) {
        let (keys, slots) = match kind {
            RelocKind::TlsLd => {
                self.ld = true;
                return;
            }
            RelocKind::TlsGd => (gd_keys, &mut self.gd),
            RelocKind::GotPc32TlsDesc => (desc_keys, &mut self.desc),
            _ => return,
        };
        let next = u32::try_from(keys.len()).unwrap_or(u32::MAX);
        slots.insert(at, *keys.entry(key).or_insert(next));
    }

    /// Table offset of pair `slot` (the `TLSLD` pair is at 0).
    fn gd_offset(&self, slot: u32) -> u64 {
        16 * (u64::from(self.ld) + u64::from(slot))
    }

    /// Table offset of descriptor `slot`.
    fn desc_offset(&self, slot: u32) -> u64 {
        self.gd_offset(self.gd_len) + tls::DESCRIPTOR_SIZE * u64::from(slot)
    }
}

/// Key of a GOT entry or stub: globals share one per name, locals have their own.
#[derive(Hash, PartialEq, Eq)]
enum SlotKey<'a> {
    Global(&'a str),
    Local(usize, usize),
}

fn scan(objects: &[Object<'_>], unit: &UnitSymbols<'_>) -> Scan {
    let mut got_keys: FastMap<SlotKey<'_>, u32> = FastMap::default();
    let mut stub_keys: FastMap<SlotKey<'_>, u32> = FastMap::default();
    let mut got_slot: PerObject<Option<u32>> =
        PerObject::new(objects.iter().map(|o| o.symbols.len()), None);
    let mut stub_slot = got_slot.clone();
    let mut low32 = false;
    let mut tls = TlsSlots::default();
    let mut gd_keys: FastMap<SlotKey<'_>, u32> = FastMap::default();
    let mut desc_keys: FastMap<SlotKey<'_>, u32> = FastMap::default();
    for (oi, object) in objects.iter().enumerate() {
        for s in object
            .sections
            .iter()
            .filter(|s| s.kind != SectionKind::Skip)
        {
            for r in object.relocs(s) {
                low32 |= r.kind.is_abs32();
                let Some(sym) = object.symbols.get(r.symbol) else {
                    continue;
                };
                let key = if sym.bind == Bind::Local {
                    SlotKey::Local(oi, r.symbol)
                } else {
                    SlotKey::Global(sym.name)
                };
                if r.kind.is_tls() {
                    tls.note(r.kind, (oi, r.symbol), key, &mut gd_keys, &mut desc_keys);
                    continue;
                }
                if r.kind.needs_got_entry() {
                    if let Some(s @ None) = got_slot.get_mut(oi, r.symbol) {
                        let next = u32::try_from(got_keys.len()).unwrap_or(u32::MAX);
                        *s = Some(*got_keys.entry(key).or_insert(next));
                    }
                } else if r.kind == RelocKind::Plt32
                    && sym.bind != Bind::Local
                    && matches!(sym.def, Def::Undefined | Def::Discarded(Some(_)))
                    && let Some(s @ None) = stub_slot.get_mut(oi, r.symbol)
                    && unit.get(sym.name).is_none()
                {
                    let next = u32::try_from(stub_keys.len()).unwrap_or(u32::MAX);
                    *s = Some(*stub_keys.entry(key).or_insert(next));
                }
            }
        }
    }
    tls.gd_len = u32::try_from(gd_keys.len()).unwrap_or(u32::MAX);
    tls.desc_len = u32::try_from(desc_keys.len()).unwrap_or(u32::MAX);
    Scan {
        got_slot,
        got_len: got_keys.len(),
        stub_slot,
        stub_len: stub_keys.len(),
        low32,
        tls,
    }
}

// ---------------------------------------------------------------------------------------
// 3. Resolve.

/// What a referenced symbol stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// In this unit: a section of an object, plus an offset.
    Section { obj: usize, sec: usize, value: u64 },
    /// A merged COMMON symbol of this unit.
    Common(usize),
    /// An address outside the unit (or an absolute value).
    Address(u64),
    /// `_GLOBAL_OFFSET_TABLE_`.
    GotBase,
    /// `__dso_handle`: this unit's handle for `__cxa_atexit`.
    DsoHandle,
    /// `atexit`: the unit's synthesized thunk (see [`x86_64::atexit_thunk`]).
    AtExit,
    /// A local symbol of a discarded COMDAT group (only `.eh_frame` may refer to one).
    Discarded,
    /// A thread-local variable of this unit: in a TLS section of an object, plus an offset.
    Tls { obj: usize, sec: usize, value: u64 },
    /// `_TLS_MODULE_BASE_`: offset 0 of this unit's TLS block.
    TlsBase,
    /// A thread-local variable of an earlier unit: its module word and offset.
    ForeignTls { module: u64, offset: u64 },
}

impl Target {
    fn in_unit(self) -> bool {
        !matches!(self, Target::Address(_))
    }

    fn is_tls(self) -> bool {
        matches!(
            self,
            Target::Tls { .. } | Target::TlsBase | Target::ForeignTls { .. }
        )
    }
}

#[derive(Debug, Clone, Copy)]
struct Resolution {
    target: Target,
    is_code: bool,
}

struct Resolved {
    /// `[object][symbol]`: the target of every referenced symbol.
    targets: PerObject<Option<Resolution>>,
    /// Addresses outside the unit that 32-bit PC-relative fields must reach.
    near: Vec<u64>,
    uses_dso_handle: bool,
    /// `__cxa_atexit`'s address when the unit needs an `atexit` thunk.
    cxa_atexit: Option<u64>,
}

fn resolve(
    objects: &[Object<'_>],
    unit: &UnitSymbols<'_>,
    env: &mut Env<'_>,
) -> Result<Resolved, Error> {
    let mut targets: PerObject<Option<Resolution>> =
        PerObject::new(objects.iter().map(|o| o.symbols.len()), None);
    let mut near = Vec::new();
    let mut uses_dso_handle = false;
    let mut cxa_atexit = None;
    for (oi, object) in objects.iter().enumerate() {
        for (si, s) in object.sections.iter().enumerate() {
            if s.kind == SectionKind::Skip {
                continue;
            }
            for r in object.relocs(s) {
                let Some(slot) = targets.get_mut(oi, r.symbol) else {
                    return Err(internal("symbol index"));
                };
                let resolution = match slot {
                    Some(done) => *done,
                    None => {
                        let at = || object.at(si, r.offset);
                        let tls = r.kind.is_tls();
                        let done = resolve_one(objects, unit, oi, r.symbol, tls, env, at)?;
                        uses_dso_handle |=
                            matches!(done.target, Target::DsoHandle | Target::AtExit);
                        if done.target == Target::AtExit && cxa_atexit.is_none() {
                            let Some(addr) = env.host.lookup("__cxa_atexit") else {
                                return Err(Error::UndefinedSymbol {
                                    at: at(),
                                    symbol: "__cxa_atexit".to_owned(),
                                });
                            };
                            cxa_atexit = Some(addr as u64);
                        }
                        *slot = Some(done);
                        done
                    }
                };
                let pc32_to_data = r.kind == RelocKind::Pc32
                    || (r.kind == RelocKind::Plt32 && !resolution.is_code);
                if pc32_to_data && let Target::Address(a) = resolution.target {
                    near.push(a);
                }
            }
        }
    }
    Ok(Resolved {
        targets,
        near,
        uses_dso_handle,
        cxa_atexit,
    })
}

/// The target of one symbol; `tls` when a TLS relocation refers to it (a thread-local
/// symbol is looked for among the thread-locals of units only).
fn resolve_one(
    objects: &[Object<'_>],
    unit: &UnitSymbols<'_>,
    obj: usize,
    sym: usize,
    tls: bool,
    env: &mut Env<'_>,
    at: impl Fn() -> Location,
) -> Result<Resolution, Error> {
    let object = objects.get(obj).ok_or_else(|| internal("object index"))?;
    if sym == 0 {
        return Ok(Resolution {
            target: Target::Address(0),
            is_code: false,
        });
    }
    let symbol = object
        .symbols
        .get(sym)
        .ok_or_else(|| internal("symbol index"))?;
    let from_def = |object: &Object<'_>,
                    obj: usize,
                    def: Def,
                    is_code: bool|
     -> Result<Resolution, Error> {
        let target = match def {
            Def::Section { index, value } if is_tls_section(object, index) => Target::Tls {
                obj,
                sec: index,
                value,
            },
            Def::Section { index, value } => Target::Section {
                obj,
                sec: index,
                value,
            },
            Def::Absolute(v) => Target::Address(v),
            Def::Discarded(_) => Target::Discarded,
            Def::NotLoaded => {
                return Err(Error::Malformed {
                    object: object.name.to_owned(),
                    reason: format!("{}: relocation against a section that is not loaded", at()),
                });
            }
            Def::Undefined | Def::Common { .. } => {
                return Err(Error::UndefinedSymbol {
                    at: at(),
                    symbol: symbol.name.to_owned(),
                });
            }
        };
        Ok(Resolution { target, is_code })
    };
    if symbol.bind == Bind::Local {
        return from_def(object, obj, symbol.def, symbol.is_code);
    }
    let name = symbol.name;
    // The unit itself.
    match unit.get(name) {
        Some(GlobalDef::Symbol { obj: o, sym: s }) => {
            let (def_obj, def_sym) = objects
                .get(o)
                .and_then(|ob| ob.symbols.get(s).map(|sy| (ob, sy)))
                .ok_or_else(|| internal("definition index"))?;
            return from_def(def_obj, o, def_sym.def, def_sym.is_code);
        }
        Some(GlobalDef::Common(i)) => {
            return Ok(Resolution {
                target: Target::Common(i),
                is_code: false,
            });
        }
        None => {}
    }
    if tls || symbol.tls {
        return thread_local(name, symbol.def, env, at);
    }
    // A COMDAT group kept by an earlier unit: that unit's copy, hidden or not.
    if let Def::Discarded(Some(owner)) = symbol.def
        && let Some(s) = env
            .units
            .iter()
            .find(|u| u.id == owner)
            .and_then(|u| u.symbols.get(name))
    {
        return Ok(Resolution {
            target: Target::Address(s.addr as u64),
            is_code: s.is_code,
        });
    }
    if let Some(r) = outside(name, env) {
        return Ok(r);
    }
    if symbol.bind == Bind::Weak {
        // An undefined weak symbol is 0. Taken as code so that a guarded call
        // (`if (f) f();`) still links: the PLT32 goes through a stub to 0, as a PLT would.
        return Ok(Resolution {
            target: Target::Address(0),
            is_code: true,
        });
    }
    Err(Error::UndefinedSymbol {
        at: at(),
        symbol: name.to_owned(),
    })
}

fn is_tls_section(object: &Object<'_>, index: usize) -> bool {
    object
        .sections
        .get(index)
        .is_some_and(|s| matches!(s.kind, SectionKind::TlsData | SectionKind::TlsBss))
}

/// A thread-local global that the unit does not define: `_TLS_MODULE_BASE_` (the unit's
/// own block), the copy of the earlier unit that kept its COMDAT group, or the first
/// earlier unit that exports it. Thread-locals of the host process are not reachable
/// (they live in the C library's TLS blocks, not in ours).
fn thread_local(
    name: &str,
    def: Def,
    env: &mut Env<'_>,
    at: impl Fn() -> Location,
) -> Result<Resolution, Error> {
    let found = |module: u64, offset: u64| Resolution {
        target: Target::ForeignTls { module, offset },
        is_code: false,
    };
    if name == "_TLS_MODULE_BASE_" {
        return Ok(Resolution {
            target: Target::TlsBase,
            is_code: false,
        });
    }
    if let Def::Discarded(Some(owner)) = def
        && let Some((module, offset)) = env
            .units
            .iter()
            .find(|u| u.id == owner)
            .and_then(|u| u.thread_local(name, true))
    {
        return Ok(found(module, offset));
    }
    if let Some((module, offset)) = env.units.iter().find_map(|u| u.thread_local(name, false)) {
        return Ok(found(module, offset));
    }
    if env.host.lookup(name).is_some() {
        return Err(Error::Unsupported {
            at: at(),
            kind: crate::error::Unsupported::ThreadLocal(format!(
                "`{name}` is a thread-local variable of the host process or a library, \
                 outside the loaded units"
            )),
        });
    }
    Err(Error::UndefinedSymbol {
        at: at(),
        symbol: name.to_owned(),
    })
}

/// A global that the unit does not define: the GOT base, the unit's handle, units
/// loaded before, the caller's resolver, the `atexit` thunk, then the host and the
/// opened libraries.
fn outside(name: &str, env: &mut Env<'_>) -> Option<Resolution> {
    if name == "_GLOBAL_OFFSET_TABLE_" {
        return Some(Resolution {
            target: Target::GotBase,
            is_code: false,
        });
    }
    if name == "__dso_handle" {
        return Some(Resolution {
            target: Target::DsoHandle,
            is_code: false,
        });
    }
    // Loaded units' thread-locals are served by this crate, not by the C library.
    let tls_function = match name {
        "__tls_get_addr" => Some(tls::tls_get_addr_entry as *const () as usize),
        "__cxa_thread_atexit" | "__cxa_thread_atexit_impl" => {
            Some(tls::thread_atexit as *const () as usize)
        }
        _ => None,
    };
    if let Some(addr) = tls_function {
        return Some(Resolution {
            target: Target::Address(addr as u64),
            is_code: true,
        });
    }
    // Units loaded before this one.
    if let Some(e) = env.exports.get(name) {
        return Some(Resolution {
            target: Target::Address(e.addr as u64),
            is_code: e.is_code,
        });
    }
    // The caller's resolver, then the host and the opened libraries. Their kind is
    // unknown: taken as code, which only matters for a PLT32 out of reach (a stub).
    if let Some(addr) = env.resolver.and_then(|r| r(name)) {
        return Some(Resolution {
            target: Target::Address(addr as u64),
            is_code: true,
        });
    }
    // glibc keeps `atexit` out of libc.so (it is `__cxa_atexit(f, NULL, __dso_handle)` in
    // libc_nonshared.a); loaded code gets a per-unit thunk doing the same.
    if name == "atexit" {
        return Some(Resolution {
            target: Target::AtExit,
            is_code: true,
        });
    }
    if let Some(addr) = env.host.lookup(name) {
        return Some(Resolution {
            target: Target::Address(addr as u64),
            is_code: true,
        });
    }
    None
}

// ---------------------------------------------------------------------------------------
// 5. Allocate: where to map.

fn placement(scan: &Scan, resolved: &Resolved) -> Placement {
    if scan.low32 {
        return Placement::Low32;
    }
    match (resolved.near.iter().min(), resolved.near.iter().max()) {
        (Some(&lo), Some(&hi)) => Placement::Near { lo, hi },
        _ => Placement::Anywhere,
    }
}

// ---------------------------------------------------------------------------------------
// 7. Apply.

/// Run-time addresses of layout offsets: each segment has its own base.
struct Addresses<'a> {
    bases: [u64; 3],
    layout: &'a Layout,
    /// The unit's TLS module word (0 when it has no TLS block).
    tls_module: u64,
}

impl Addresses<'_> {
    /// The address of a layout offset.
    fn at(&self, offset: u64) -> u64 {
        let s = self.layout.segment_of(offset) as usize;
        self.bases[s].wrapping_add(offset.wrapping_sub(self.layout.segments[s].start))
    }

    fn of(&self, target: Target) -> u64 {
        let off = match target {
            Target::Section { obj, sec, value } => {
                self.layout.section(obj, sec).map(|o| o.wrapping_add(value))
            }
            Target::Common(i) => self.layout.commons.get(i).copied(),
            Target::Address(a) => return a,
            Target::GotBase => Some(self.layout.got),
            Target::DsoHandle => Some(0),
            Target::AtExit => Some(self.layout.atexit_thunk),
            Target::Discarded
            | Target::Tls { .. }
            | Target::TlsBase
            | Target::ForeignTls { .. } => None,
        };
        off.map_or(0, |o| self.at(o))
    }

    /// The module word and block offset of a thread-local target.
    fn tls_of(&self, target: Target) -> Option<(u64, u64)> {
        match target {
            Target::Tls { obj, sec, value } => {
                let block = self.layout.tls.as_ref()?.offset(obj, sec)?;
                Some((self.tls_module, block.wrapping_add(value)))
            }
            Target::TlsBase => self.layout.tls.as_ref().map(|_| (self.tls_module, 0)),
            Target::ForeignTls { module, offset } => Some((module, offset)),
            _ => None,
        }
    }
}

#[expect(
    clippy::too_many_arguments,
    reason = "the apply pass's whole context, kept explicit"
)]
fn apply(
    bytes: &mut Image<'_>,
    objects: &[Object<'_>],
    oi: usize,
    si: usize,
    section_off: u64,
    r: &parse::Reloc,
    scan: &Scan,
    resolved: &Resolved,
    addresses: &Addresses<'_>,
) -> Result<(), Error> {
    if r.kind == RelocKind::None {
        return Ok(());
    }
    let object = objects.get(oi).ok_or_else(|| internal("object index"))?;
    let resolution = resolved
        .targets
        .get(oi, r.symbol)
        .copied()
        .flatten()
        .ok_or_else(|| internal("unresolved symbol"))?;
    if resolution.target == Target::Discarded {
        let section = object
            .sections
            .get(si)
            .ok_or_else(|| internal("section index"))?;
        if section.kind == SectionKind::EhFrame {
            // The FDE of a function whose COMDAT copy was not loaded: hide it.
            return tombstone_fde(bytes, section_off, section.size, r.offset);
        }
        return Err(Error::Unsupported {
            at: object.at(si, r.offset),
            kind: crate::error::Unsupported::DiscardedSection(symbol_name(object, r.symbol)),
        });
    }
    let offset_in_unit = section_off
        .checked_add(r.offset)
        .ok_or_else(|| internal("offset"))?;
    if r.kind.is_tls() || resolution.target.is_tls() {
        let place = (object, oi, si, offset_in_unit);
        return apply_tls(bytes, place, r, resolution.target, &scan.tls, addresses);
    }
    let got_slot = scan.got_slot.get(oi, r.symbol).copied().flatten();
    let stub_slot = scan.stub_slot.get(oi, r.symbol).copied().flatten();
    let layout = addresses.layout;
    let mut inputs = Inputs {
        s: addresses.of(resolution.target),
        a: r.addend,
        p: addresses.at(offset_in_unit),
        got: addresses.at(layout.got),
        got_entry: got_slot.map_or(0, |g| addresses.at(layout.got + 8 * u64::from(g))),
    };
    let mut field = x86_64::compute(r.kind, &inputs);
    // A call out of reach goes through its stub; a PLT32 to data never does.
    if r.kind == RelocKind::Plt32
        && matches!(field, Field::Overflow { .. })
        && resolution.is_code
        && !resolution.target.in_unit()
        && let Some(stub) = stub_slot
    {
        inputs.s = addresses.at(layout.stubs + STUB_SIZE * u64::from(stub));
        field = x86_64::compute(r.kind, &inputs);
    }
    write_field(bytes, offset_in_unit, field, || {
        (
            object.at(si, r.offset),
            r.kind.name(),
            symbol_name(object, r.symbol),
        )
    })
}

/// Applies a thread-local relocation (or refuses a non-TLS one against a thread-local):
/// `S` is the symbol's offset in its block, the entry is its `tls_index` pair or
/// descriptor in the TLS table. `place` is the object, the section and the field's
/// offset in the unit.
fn apply_tls(
    bytes: &mut Image<'_>,
    (object, oi, si, offset_in_unit): (&Object<'_>, usize, usize, u64),
    r: &parse::Reloc,
    target: Target,
    slots: &TlsSlots,
    addresses: &Addresses<'_>,
) -> Result<(), Error> {
    let refuse = |what: String| Error::Unsupported {
        at: object.at(si, r.offset),
        kind: crate::error::Unsupported::ThreadLocal(what),
    };
    let name = || symbol_name(object, r.symbol);
    if r.kind == RelocKind::TlsDescCall {
        return Ok(());
    }
    if !r.kind.is_tls() {
        return Err(refuse(format!(
            "relocation {} against thread-local `{}`",
            r.kind.name(),
            name()
        )));
    }
    let Some((module, offset)) = addresses.tls_of(target) else {
        return Err(refuse(format!(
            "relocation {} against `{}`, which is not thread-local",
            r.kind.name(),
            name()
        )));
    };
    let own = || {
        if module == addresses.tls_module {
            Ok(())
        } else {
            Err(refuse(format!(
                "relocation {} against `{}` of another unit",
                r.kind.name(),
                name()
            )))
        }
    };
    let key = (oi, r.symbol);
    let table = addresses.layout.tls_table;
    let entry = match r.kind {
        RelocKind::TlsGd => slots.gd.get(&key).map(|&g| table + slots.gd_offset(g)),
        RelocKind::GotPc32TlsDesc => slots.desc.get(&key).map(|&d| table + slots.desc_offset(d)),
        RelocKind::TlsLd => {
            own()?;
            Some(table)
        }
        _ => {
            own()?;
            Some(0)
        }
    };
    let entry = entry.ok_or_else(|| internal("TLS table entry"))?;
    let inputs = Inputs {
        s: offset,
        a: r.addend,
        p: addresses.at(offset_in_unit),
        got: 0,
        got_entry: addresses.at(entry),
    };
    write_field(
        bytes,
        offset_in_unit,
        x86_64::compute(r.kind, &inputs),
        || (object.at(si, r.offset), r.kind.name(), name()),
    )
}

/// A symbol's name for messages: section symbols are named after their section.
fn symbol_name(object: &Object<'_>, sym: usize) -> String {
    match object.symbols.get(sym) {
        Some(s) if !s.name.is_empty() => s.name.to_owned(),
        Some(s) => match s.def {
            Def::Section { index, .. } => object.at(index, 0).section,
            _ => format!("#{sym}"),
        },
        None => format!("#{sym}"),
    }
}

/// The constructor and destructor entries, read back from the relocated arrays:
/// `.preinit_array`, then `.init_array` by priority (stable across objects); destructors
/// are returned in array order, to be run in reverse.
fn arrays(
    bytes: &Image<'_>,
    objects: &[Object<'_>],
    layout: &Layout,
) -> Result<(Vec<usize>, Vec<usize>), Error> {
    let mut init: Vec<(u32, u64, u64)> = Vec::new();
    let mut fini: Vec<(u32, u64, u64)> = Vec::new();
    for (oi, object) in objects.iter().enumerate() {
        for (si, s) in object.sections.iter().enumerate() {
            let Some(off) = layout.section(oi, si) else {
                continue;
            };
            let list = match s.kind {
                SectionKind::PreinitArray => (&mut init, 0),
                SectionKind::InitArray(p) => (&mut init, p.saturating_add(1)),
                SectionKind::FiniArray(p) => (&mut fini, p),
                _ => continue,
            };
            if s.size % 8 != 0 {
                return Err(Error::Malformed {
                    object: object.name.to_owned(),
                    reason: format!("{}: size is not a multiple of 8", s.name),
                });
            }
            list.0.push((list.1, off, s.size));
        }
    }
    init.sort_by_key(|e| e.0);
    fini.sort_by_key(|e| e.0);
    let read = |list: Vec<(u32, u64, u64)>| -> Result<Vec<usize>, Error> {
        let mut out = Vec::new();
        for (_, off, size) in list {
            let len = usize::try_from(size).map_err(|_| internal("size"))?;
            let words = bytes
                .get(off, len)
                .ok_or_else(|| internal("array outside the unit"))?;
            for w in words.chunks_exact(8) {
                let mut b = [0_u8; 8];
                b.copy_from_slice(w);
                out.push(u64::from_le_bytes(b) as usize);
            }
        }
        Ok(out)
    };
    Ok((read(init)?, read(fini)?))
}

/// Every global of the unit with its address, and apart, its thread-local globals with
/// their offsets in the unit's TLS block (they have an address per thread).
fn unit_symbols(
    objects: &[Object<'_>],
    unit: &UnitSymbols<'_>,
    addresses: &Addresses<'_>,
) -> (FastMap<Arc<str>, UnitSymbol>, FastMap<Arc<str>, TlsSymbol>) {
    let mut out = FastMap::default();
    let mut tls_out = FastMap::default();
    out.reserve(unit.len());
    for (name, def) in unit.iter() {
        let (target, is_code, exported) = match def {
            GlobalDef::Common(i) => (Target::Common(i), false, true),
            GlobalDef::Symbol { obj, sym } => {
                let Some(s) = objects.get(obj).and_then(|o| o.symbols.get(sym)) else {
                    continue;
                };
                let target = match s.def {
                    Def::Section { index, value } => Target::Section {
                        obj,
                        sec: index,
                        value,
                    },
                    Def::Absolute(v) => Target::Address(v),
                    _ => continue,
                };
                if let (Target::Section { obj, sec, value }, Some(o)) = (target, objects.get(obj))
                    && is_tls_section(o, sec)
                {
                    if let Some((_, offset)) = addresses.tls_of(Target::Tls { obj, sec, value }) {
                        let exported = s.exported;
                        tls_out.insert(Arc::from(name), TlsSymbol { offset, exported });
                    }
                    continue;
                }
                (target, s.is_code, s.exported)
            }
        };
        out.insert(
            Arc::from(name),
            UnitSymbol {
                addr: addresses.of(target) as usize,
                is_code,
                exported,
            },
        );
    }
    (out, tls_out)
}
