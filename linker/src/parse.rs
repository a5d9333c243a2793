//! Pass 1, parse: the bytes of one ELF64 x86-64 relocatable object become sections,
//! symbols and relocations. Every offset, size and index is checked here (through
//! `object`'s bounds-checked readers and our own checks), so later passes index plain
//! vectors whose invariants are stated on the types below.

use std::ops::Range;

use object::elf;
use object::read::elf::{FileHeader, Rela, SectionHeader, SectionTable, Sym, SymbolTable};
use object::{LittleEndian, SectionIndex};

use crate::UnitId;
use crate::error::{Error, Location, Unsupported};
use crate::x86_64::{Refused, RelocKind};

type Header = elf::FileHeader64<LittleEndian>;
const LE: LittleEndian = LittleEndian;

/// Largest section alignment accepted (1 MiB).
const MAX_ALIGN: u64 = 1 << 20;

/// Where a section goes at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SectionKind {
    /// Not loaded: not `SHF_ALLOC`, `SHF_EXCLUDE`, notes.
    Skip,
    /// `.text*`: read + execute.
    Text,
    /// `.rodata*`, `.gcc_except_table`: read-only.
    ReadOnly,
    /// `.data.rel.ro*`: written by relocation, then read-only (RELRO).
    RelRo,
    /// `.data*`: read + write.
    Data,
    /// `.bss*` (`SHT_NOBITS`): zero-filled read + write.
    Bss,
    /// `.eh_frame`: read-only, registered with the unwinder.
    EhFrame,
    /// `.init_array[.PRIO]`: constructors, run after protection.
    InitArray(u32),
    /// `.fini_array[.PRIO]`: destructors, run at unload.
    FiniArray(u32),
    /// `.preinit_array`: run before `.init_array`.
    PreinitArray,
    /// `.tdata*` (`SHF_TLS`, `SHT_PROGBITS`): the initial bytes of the unit's TLS block,
    /// placed read-only as the template each thread's block is copied from.
    TlsData,
    /// `.tbss*` (`SHF_TLS`, `SHT_NOBITS`): the zero part of the TLS block; not placed.
    TlsBss,
}

/// One section of an object. Invariant: `data.len() == size` unless `kind` is `Bss`,
/// `TlsBss` or `Skip`; every relocation's field lies inside `0..size`.
pub(crate) struct Section<'a> {
    /// Empty for sections that are not loaded (see [`Object::at`] for their name).
    pub name: &'a str,
    pub kind: SectionKind,
    pub data: &'a [u8],
    pub size: u64,
    pub align: u64,
    /// Its relocations: a range of [`Object::relocs`].
    pub relocs: Range<usize>,
}

/// A symbol's binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bind {
    Local,
    Global,
    Weak,
}

/// What a symbol is defined as. Invariant: `Section::index` names a loaded section of
/// the same object and `value <= size` of that section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Def {
    Undefined,
    Section {
        index: usize,
        value: u64,
    },
    Absolute(u64),
    Common {
        size: u64,
        align: u64,
    },
    /// Defined in a section that is not loaded (debug info, say).
    NotLoaded,
    /// Defined in a COMDAT group that this unit does not load, because an earlier object
    /// of the unit (`None`) or an earlier unit (`Some`) already loaded the group.
    Discarded(Option<UnitId>),
}

/// One symbol-table entry.
pub(crate) struct Symbol<'a> {
    pub name: &'a str,
    pub bind: Bind,
    pub def: Def,
    /// `STT_FUNC`, or defined in an executable section.
    pub is_code: bool,
    /// Default or protected visibility: visible to later units.
    pub exported: bool,
    /// `STT_TLS`, or defined in a TLS section: a thread-local variable.
    pub tls: bool,
}

/// One relocation. Invariant: `symbol < symbols.len()`, `offset + width <= size`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reloc {
    pub offset: u64,
    pub kind: RelocKind,
    pub symbol: usize,
    pub addend: i64,
}

/// A COMDAT group: sections loaded at most once per process, keyed by the signature.
pub(crate) struct Group<'a> {
    pub signature: &'a str,
    /// Section indices, each `< sections.len()`.
    pub members: Vec<usize>,
}

/// A parsed object.
pub(crate) struct Object<'a> {
    pub name: &'a str,
    pub sections: Vec<Section<'a>>,
    pub symbols: Vec<Symbol<'a>>,
    pub groups: Vec<Group<'a>>,
    /// The relocations of all loaded sections, each section's in one range (one vector
    /// per object rather than one per section).
    pub relocs: Vec<Reloc>,
    /// The section table, for the names of sections that are not loaded (only read for
    /// messages).
    pub section_table: SectionTable<'a, Header, &'a [u8]>,
}

impl<'a> Object<'a> {
    /// The relocations of a section.
    pub(crate) fn relocs(&self, section: &Section<'a>) -> &[Reloc] {
        self.relocs.get(section.relocs.clone()).unwrap_or(&[])
    }

    /// A location in this object, for errors.
    pub(crate) fn at(&self, section: usize, offset: u64) -> Location {
        let section = match self.sections.get(section) {
            Some(s) if !s.name.is_empty() => s.name.to_owned(),
            Some(_) => self
                .section_table
                .section(SectionIndex(section))
                .and_then(|sh| self.section_table.section_name(LE, sh))
                .ok()
                .and_then(|n| std::str::from_utf8(n).ok())
                .filter(|n| !n.is_empty())
                .map_or_else(|| format!("#{section}"), str::to_owned),
            None => format!("#{section}"),
        };
        Location {
            object: self.name.to_owned(),
            section,
            offset,
        }
    }
}

/// Parses one object.
pub(crate) fn parse<'a>(name: &'a str, bytes: &'a [u8]) -> Result<Object<'a>, Error> {
    let malformed = |reason: &str| Error::Malformed {
        object: name.to_owned(),
        reason: reason.to_owned(),
    };
    let header = Header::parse(bytes).map_err(|e| malformed(&e.to_string()))?;
    if !header.is_little_endian() {
        return Err(wrong(name, "big-endian"));
    }
    if header.e_type(LE) != elf::ET_REL {
        return Err(wrong(
            name,
            &format!("e_type {} is not ET_REL", header.e_type(LE)),
        ));
    }
    if header.e_machine(LE) != elf::EM_X86_64 {
        return Err(wrong(
            name,
            &format!("e_machine {} is not EM_X86_64", header.e_machine(LE)),
        ));
    }
    let table = header
        .sections(LE, bytes)
        .map_err(|e| malformed(&e.to_string()))?;

    let mut sections = Vec::with_capacity(table.len());
    for (index, sh) in table.enumerate() {
        section(name, bytes, &table, index, sh, &mut sections)?;
    }
    let mut object = Object {
        name,
        sections,
        symbols: Vec::new(),
        groups: Vec::new(),
        relocs: Vec::new(),
        section_table: table,
    };

    // The symbol table (at most one in a relocatable object).
    let mut symtab_index = None;
    for (index, sh) in table.enumerate() {
        if sh.sh_type(LE) == elf::SHT_SYMTAB {
            if symtab_index.is_some() {
                return Err(malformed("more than one symbol table"));
            }
            symtab_index = Some(index);
            let symtab = SymbolTable::<Header, &[u8]>::parse(LE, bytes, &table, index, sh)
                .map_err(|e| malformed(&e.to_string()))?;
            object.symbols = symbols(&object, &symtab)?;
        }
    }

    // COMDAT groups.
    for (_, sh) in table.enumerate() {
        let Some((flags, members)) = sh.group(LE, bytes).map_err(|e| malformed(&e.to_string()))?
        else {
            continue;
        };
        if flags & elf::GRP_COMDAT == 0 {
            continue;
        }
        if Some(sh.link(LE)) != symtab_index {
            return Err(malformed("group section not linked to the symbol table"));
        }
        let signature = object
            .symbols
            .get(sh.sh_info(LE) as usize)
            .map(|s| s.name)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| malformed("group signature symbol out of range"))?;
        let mut indices = Vec::with_capacity(members.len());
        for m in members {
            let m = m.get(LE) as usize;
            if m >= object.sections.len() {
                return Err(malformed("group member out of range"));
            }
            indices.push(m);
        }
        object.groups.push(Group {
            signature,
            members: indices,
        });
    }

    // Relocations of loaded sections.
    let mut relocs: Vec<Reloc> = Vec::new();
    for (_, sh) in table.enumerate() {
        let sh_type = sh.sh_type(LE);
        if !matches!(sh_type, elf::SHT_RELA | elf::SHT_REL | elf::SHT_CREL) {
            continue;
        }
        let target = sh.sh_info(LE) as usize;
        let loaded = match object.sections.get(target) {
            Some(s) => s.kind != SectionKind::Skip,
            None => return Err(malformed("relocation section names no section")),
        };
        if !loaded {
            continue;
        }
        if sh_type != elf::SHT_RELA {
            return Err(Error::Unsupported {
                at: object.at(target, 0),
                kind: Unsupported::RelocationFormat(sh_type),
            });
        }
        if Some(sh.link(LE)) != symtab_index {
            return Err(malformed(
                "relocation section not linked to the symbol table",
            ));
        }
        let Some((relas, _)) = sh.rela(LE, bytes).map_err(|e| malformed(&e.to_string()))? else {
            continue;
        };
        let start = relocs.len();
        relocs.reserve(relas.len());
        for rela in relas {
            relocs.push(reloc(&object, target, rela)?);
        }
        if let Some(s) = object.sections.get_mut(target) {
            if s.relocs.is_empty() {
                s.relocs = start..relocs.len();
            } else {
                // A second relocation section for the same section (rare): both lists
                // move to the end, one after the other (what they left is never read).
                let earlier = relocs.get(s.relocs.clone()).unwrap_or(&[]).to_vec();
                let later: Vec<Reloc> = relocs.drain(start..).collect();
                let begin = relocs.len();
                relocs.extend(earlier);
                relocs.extend(later);
                s.relocs = begin..relocs.len();
            }
        }
    }
    object.relocs = relocs;
    Ok(object)
}

fn wrong(name: &str, reason: &str) -> Error {
    Error::WrongKind {
        object: name.to_owned(),
        reason: reason.to_owned(),
    }
}

/// Classifies one section and pushes it to `out`. (It pushes rather than returns: moving
/// the large `Result` out of the call cost a store-forwarding stall per section, ~8% of a
/// batch load.)
fn section<'a>(
    name: &'a str,
    bytes: &'a [u8],
    table: &SectionTable<'a, Header, &'a [u8]>,
    index: SectionIndex,
    sh: &'a elf::SectionHeader64<LittleEndian>,
    out: &mut Vec<Section<'a>>,
) -> Result<(), Error> {
    let malformed = |reason: String| Error::Malformed {
        object: name.to_owned(),
        reason,
    };
    let flags = sh.sh_flags(LE);
    let sh_type = sh.sh_type(LE);
    let size = sh.sh_size(LE);
    let align = sh.sh_addralign(LE).max(1);
    let alloc = flags & u64::from(elf::SHF_ALLOC) != 0;
    let exclude = flags & u64::from(elf::SHF_EXCLUDE) != 0;
    if !alloc || exclude || sh_type == elf::SHT_NOTE || sh_type == elf::SHT_NULL {
        // Not loaded: its name is only needed for messages, looked up then.
        out.push(Section {
            name: "",
            kind: SectionKind::Skip,
            data: &[],
            size,
            align,
            relocs: 0..0,
        });
        return Ok(());
    }
    let sec_name = table
        .section_name(LE, sh)
        .map_err(|e| malformed(e.to_string()))
        .and_then(|n| {
            std::str::from_utf8(n)
                .map_err(|_| malformed(format!("section {} name is not UTF-8", index.0)))
        })?;
    let at = |offset: u64| Location {
        object: name.to_owned(),
        section: sec_name.to_owned(),
        offset,
    };
    if !align.is_power_of_two() || align > MAX_ALIGN {
        return Err(malformed(format!(
            "section {sec_name}: alignment {align} not a power of two up to 1 MiB"
        )));
    }
    let tls = flags & u64::from(elf::SHF_TLS) != 0;
    if flags & u64::from(elf::SHF_COMPRESSED) != 0 {
        return Err(Error::Unsupported {
            at: at(0),
            kind: Unsupported::CompressedSection,
        });
    }
    if sec_name.starts_with(".ctors") || sec_name.starts_with(".dtors") {
        return Err(Error::Unsupported {
            at: at(0),
            kind: Unsupported::LegacyConstructors,
        });
    }
    let write = flags & u64::from(elf::SHF_WRITE) != 0;
    let exec = flags & u64::from(elf::SHF_EXECINSTR) != 0;
    let kind = match sh_type {
        elf::SHT_NOBITS if tls => SectionKind::TlsBss,
        elf::SHT_PROGBITS if tls => SectionKind::TlsData,
        _ if tls => {
            return Err(Error::Unsupported {
                at: at(0),
                kind: Unsupported::ThreadLocal(format!("section {sec_name} of type {sh_type:#x}")),
            });
        }
        elf::SHT_NOBITS => SectionKind::Bss,
        elf::SHT_INIT_ARRAY => SectionKind::InitArray(priority(sec_name)),
        elf::SHT_FINI_ARRAY => SectionKind::FiniArray(priority(sec_name)),
        elf::SHT_PREINIT_ARRAY => SectionKind::PreinitArray,
        elf::SHT_X86_64_UNWIND => SectionKind::EhFrame,
        elf::SHT_PROGBITS if sec_name == ".eh_frame" => SectionKind::EhFrame,
        elf::SHT_PROGBITS if exec => SectionKind::Text,
        elf::SHT_PROGBITS if write && sec_name.starts_with(".data.rel.ro") => SectionKind::RelRo,
        elf::SHT_PROGBITS if write => SectionKind::Data,
        elf::SHT_PROGBITS => SectionKind::ReadOnly,
        other => {
            return Err(Error::Unsupported {
                at: at(0),
                kind: Unsupported::SectionType(other),
            });
        }
    };
    let data: &[u8] = if matches!(kind, SectionKind::Bss | SectionKind::TlsBss) {
        &[]
    } else {
        let data = sh
            .data(LE, bytes)
            .map_err(|e| malformed(format!("section {sec_name}: {e}")))?;
        if data.len() as u64 != size {
            return Err(malformed(format!("section {sec_name}: size mismatch")));
        }
        data
    };
    out.push(Section {
        name: sec_name,
        kind,
        data,
        size,
        align,
        relocs: 0..0,
    });
    Ok(())
}

/// The priority of `.init_array.NNNNN` (lower runs first); plain `.init_array` is last.
fn priority(name: &str) -> u32 {
    name.rsplit_once('.')
        .and_then(|(_, n)| n.parse::<u32>().ok())
        .unwrap_or(65_536)
}

fn symbols<'a>(
    object: &Object<'a>,
    symtab: &SymbolTable<'a, Header, &'a [u8]>,
) -> Result<Vec<Symbol<'a>>, Error> {
    let malformed = |reason: String| Error::Malformed {
        object: object.name.to_owned(),
        reason,
    };
    let mut out = Vec::with_capacity(symtab.len());
    for (index, sym) in symtab.enumerate() {
        let name = symtab
            .symbol_name(LE, sym)
            .map_err(|e| malformed(e.to_string()))
            .and_then(|n| {
                std::str::from_utf8(n)
                    .map_err(|_| malformed(format!("symbol {} name is not UTF-8", index.0)))
            })?;
        let bind = match sym.st_bind() {
            elf::STB_LOCAL => Bind::Local,
            elf::STB_GLOBAL | elf::STB_GNU_UNIQUE => Bind::Global,
            elf::STB_WEAK => Bind::Weak,
            other => return Err(malformed(format!("symbol `{name}`: binding {other}"))),
        };
        let st_type = sym.st_type();
        let value = sym.st_value(LE);
        let def = match sym.st_shndx(LE) {
            elf::SHN_ABS => Def::Absolute(value),
            elf::SHN_COMMON => {
                let align = value.max(1);
                if !align.is_power_of_two() || align > MAX_ALIGN {
                    return Err(malformed(format!(
                        "common symbol `{name}`: alignment {align}"
                    )));
                }
                Def::Common {
                    size: sym.st_size(LE),
                    align,
                }
            }
            _ => match symtab
                .symbol_section(LE, sym, index)
                .map_err(|e| malformed(e.to_string()))?
            {
                None => Def::Undefined,
                Some(SectionIndex(i)) => match object.sections.get(i) {
                    None => return Err(malformed(format!("symbol `{name}`: section index {i}"))),
                    Some(s) if s.kind == SectionKind::Skip => Def::NotLoaded,
                    Some(s) if value > s.size => {
                        return Err(malformed(format!(
                            "symbol `{name}`: value beyond its section"
                        )));
                    }
                    Some(_) => Def::Section { index: i, value },
                },
            },
        };
        let in_tls_section = matches!(def, Def::Section { index, .. }
        if object.sections.get(index).is_some_and(|s| {
            matches!(s.kind, SectionKind::TlsData | SectionKind::TlsBss)
        }));
        if let Def::Section { index: i, value } = def {
            if st_type == elf::STT_TLS && !in_tls_section {
                return Err(malformed(format!(
                    "thread-local symbol `{name}` defined outside a TLS section"
                )));
            }
            if st_type == elf::STT_GNU_IFUNC {
                return Err(Error::Unsupported {
                    at: object.at(i, value),
                    kind: Unsupported::Ifunc(name.to_owned()),
                });
            }
        }
        if st_type == elf::STT_TLS && matches!(def, Def::Common { .. }) {
            return Err(Error::Unsupported {
                at: object.at(0, 0),
                kind: Unsupported::ThreadLocal(format!("common thread-local symbol `{name}`")),
            });
        }
        let is_code = st_type == elf::STT_FUNC
            || matches!(def, Def::Section { index, .. }
                if object.sections.get(index).is_some_and(|s| s.kind == SectionKind::Text));
        let visibility = sym.st_visibility();
        let exported = visibility == elf::STV_DEFAULT || visibility == elf::STV_PROTECTED;
        out.push(Symbol {
            name,
            bind,
            def,
            is_code,
            exported,
            tls: st_type == elf::STT_TLS || in_tls_section,
        });
    }
    Ok(out)
}

fn reloc(
    object: &Object<'_>,
    target: usize,
    rela: &elf::Rela64<LittleEndian>,
) -> Result<Reloc, Error> {
    let offset = rela.r_offset(LE);
    let r_type = rela.r_type(LE, false);
    let symbol = rela.r_sym(LE, false) as usize;
    let addend = rela.r_addend(LE);
    let kind = RelocKind::from_raw(r_type).map_err(|refused| Error::Unsupported {
        at: object.at(target, offset),
        kind: match refused {
            Refused::ThreadLocal(name) => Unsupported::ThreadLocal(format!("relocation {name}")),
            Refused::StaticTls(relocation, model) => Unsupported::StaticTls { model, relocation },
            Refused::Other(name) => Unsupported::Relocation { r_type, name },
        },
    })?;
    let malformed = |reason: &str| Error::Malformed {
        object: object.name.to_owned(),
        reason: format!(
            "{}: relocation at {offset:#x}: {reason}",
            object.at(target, offset).section
        ),
    };
    let Some(section) = object.sections.get(target) else {
        return Err(malformed("no such section"));
    };
    if matches!(section.kind, SectionKind::Bss | SectionKind::TlsBss) && kind != RelocKind::None {
        return Err(malformed("relocation in a section without contents"));
    }
    match offset.checked_add(kind.width()) {
        Some(end) if end <= section.size => {}
        _ => return Err(malformed("field outside its section")),
    }
    // Symbol 0 (no symbol) is allowed: its value is 0. Without a symbol table there is
    // no symbol 0 either, hence the `symbol != 0` case.
    if symbol != 0 && symbol >= object.symbols.len() {
        return Err(malformed("symbol index out of range"));
    }
    Ok(Reloc {
        offset,
        kind,
        symbol,
        addend,
    })
}
