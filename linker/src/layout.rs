//! Pass 4, lay out: every loaded section, the call stubs, the GOT and the COMMON symbols
//! get an offset in the unit's layout, grouped into three segments by permission:
//!
//! ```text
//! 0 → | text: .text*, call stubs, atexit thunk                   | read + execute
//!     | read-only: .rodata*, .eh_frame (+4 zero bytes per run),  | read-only
//!     |   .gcc_except_table, .data.rel.ro*, .init_array,         |
//!     |   .fini_array, .preinit_array, .tdata* (TLS template),   |
//!     |   GOT, TLS table (tls_index pairs, descriptors)          |
//!     | data: .data*, .bss*, COMMON                              | read + write
//! ```
//!
//! Thread-local sections also get an offset in the unit's TLS block (`Layout::tls`):
//! `.tdata*` first, back to back as they are placed in the template, then `.tbss*`, which
//! takes no memory in the unit (each thread's block is zero there).
//!
//! `.data.rel.ro`, the arrays and the GOT are written only by relocation, so they are
//! read-only once protected (what RELRO does for a shared object). Offsets honour each
//! section's alignment. The segments are placed apart at run time (pieces of the arena,
//! or page-aligned parts of one mapping, `memory.rs`), so each starts at an offset aligned
//! to what its sections need, and at least one byte after the previous one ends: an
//! offset one past a segment's end (a symbol at the end of its section) still names that
//! segment ([`Layout::segment_of`]).

use std::ops::Range;

use crate::error::Error;
use crate::memory::Segment;
use crate::parse::{Object, SectionKind};
use crate::per_object::PerObject;
use crate::symbols::FastMap;
use crate::x86_64::{ATEXIT_THUNK_SIZE, STUB_SIZE};

/// Largest unit accepted: PC-relative references inside a unit must stay within ±2 GiB.
const MAX_UNIT: u64 = 1 << 30;

/// Not placed (a skipped section).
pub(crate) const NOT_PLACED: u64 = u64::MAX;

/// Offsets of everything in the unit's layout.
pub(crate) struct Layout {
    /// `[object][section]`: offset, or [`NOT_PLACED`].
    pub sections: PerObject<u64>,
    /// Offset of each merged COMMON symbol.
    pub commons: Vec<u64>,
    /// Offset of the GOT (8 bytes per entry).
    pub got: u64,
    /// Offset of the first call stub.
    pub stubs: u64,
    /// Offset of the `atexit` thunk (meaningful when one was asked for).
    pub atexit_thunk: u64,
    /// Offset of the TLS table: the `tls_index` pairs and descriptors (8-aligned).
    pub tls_table: u64,
    /// The unit's TLS block, if it has thread-local sections.
    pub tls: Option<TlsBlock>,
    /// Offsets of the `.eh_frame` runs (sections back to back), each followed by a zero
    /// terminator: what is registered with the unwinder.
    pub eh_frames: Vec<u64>,
    /// Range of each segment ([`Segment`] order).
    pub segments: [Range<u64>; 3],
    /// Alignment each segment's start needs at run time.
    pub align: [u64; 3],
}

/// A unit's TLS block: its template in the read-only segment and its shape.
#[derive(Debug, Clone, Default)]
pub(crate) struct TlsBlock {
    /// Layout offset of the template (the `.tdata*` sections, back to back).
    pub template: u64,
    /// Bytes of the template; the rest of the block is zero.
    pub init_len: u64,
    /// Size of a block.
    pub size: u64,
    /// Alignment of a block (the largest of its sections').
    pub align: u64,
    /// `(object, section)` → offset of a thread-local section in the block.
    pub offsets: FastMap<(usize, usize), u64>,
}

impl TlsBlock {
    /// The offset in the block of a thread-local section.
    pub(crate) fn offset(&self, obj: usize, sec: usize) -> Option<u64> {
        self.offsets.get(&(obj, sec)).copied()
    }
}

struct Cursor {
    at: u64,
}

impl Cursor {
    fn place(&mut self, size: u64, align: u64) -> Result<u64, Error> {
        let offset = self
            .at
            .checked_next_multiple_of(align)
            .ok_or(Error::TooLarge { size: u64::MAX })?;
        let end = offset
            .checked_add(size)
            .ok_or(Error::TooLarge { size: u64::MAX })?;
        if end > MAX_UNIT {
            return Err(Error::TooLarge { size: end });
        }
        self.at = end;
        Ok(offset)
    }
}

/// The segment a kind of section goes to (`None`: not loaded).
fn segment(kind: SectionKind) -> Option<Segment> {
    match kind {
        SectionKind::Skip | SectionKind::TlsBss => None,
        SectionKind::Text => Some(Segment::Text),
        SectionKind::TlsData
        | SectionKind::ReadOnly
        | SectionKind::RelRo
        | SectionKind::EhFrame
        | SectionKind::InitArray(_)
        | SectionKind::FiniArray(_)
        | SectionKind::PreinitArray => Some(Segment::ReadOnly),
        SectionKind::Data | SectionKind::Bss => Some(Segment::Data),
    }
}

impl Layout {
    /// Lays out the unit. `commons` are (size, align) pairs. With `handle`, the text
    /// segment is at least one byte long: its start is the unit's `__dso_handle`, which
    /// must be an address no other live unit has. `tls_table` is the size in bytes of the
    /// TLS table.
    pub(crate) fn new(
        objects: &[Object<'_>],
        commons: &[(u64, u64)],
        got_entries: usize,
        stubs: usize,
        atexit_thunk: bool,
        handle: bool,
        tls_table: u64,
    ) -> Result<Layout, Error> {
        let mut sections: PerObject<u64> =
            PerObject::new(objects.iter().map(|o| o.sections.len()), NOT_PLACED);
        // One pass: each loaded section into its group (in placement order below), and
        // each segment's alignment, the largest of what it holds.
        let mut groups: [Vec<(usize, usize)>; 8] = Default::default();
        let mut align = [1_u64, 8, 1];
        for (oi, object) in objects.iter().enumerate() {
            for (si, s) in object.sections.iter().enumerate() {
                let group = match s.kind {
                    SectionKind::Skip => continue,
                    SectionKind::Text => 0,
                    SectionKind::ReadOnly | SectionKind::RelRo => 1,
                    SectionKind::EhFrame => 2,
                    SectionKind::InitArray(_)
                    | SectionKind::FiniArray(_)
                    | SectionKind::PreinitArray => 3,
                    SectionKind::Data => 4,
                    SectionKind::Bss => 5,
                    SectionKind::TlsData => 6,
                    SectionKind::TlsBss => 7,
                };
                groups[group].push((oi, si));
                if let Some(seg) = segment(s.kind) {
                    let a = &mut align[seg as usize];
                    *a = (*a).max(s.align);
                }
            }
        }
        align[Segment::Text as usize] = align[Segment::Text as usize].max(STUB_SIZE);
        for &(_, a) in commons {
            align[Segment::Data as usize] = align[Segment::Data as usize].max(a);
        }
        let section = |oi: usize, si: usize| objects.get(oi).and_then(|o| o.sections.get(si));

        let mut c = Cursor { at: 0 };
        let place_group = |c: &mut Cursor,
                           sections: &mut PerObject<u64>,
                           group: &[(usize, usize)]|
         -> Result<(), Error> {
            for &(oi, si) in group {
                if let (Some(s), Some(slot)) = (section(oi, si), sections.get_mut(oi, si)) {
                    *slot = c.place(s.size, s.align)?;
                }
            }
            Ok(())
        };
        // A segment starts at least one byte after the previous one ends, aligned.
        let start_segment = |c: &mut Cursor, seg: Segment| -> Result<u64, Error> {
            c.at += 1;
            c.place(0, align[seg as usize])
        };

        // Text.
        place_group(&mut c, &mut sections, &groups[0])?;
        let stubs_off = c.place(STUB_SIZE * stubs as u64, STUB_SIZE)?;
        let atexit_off = c.place(if atexit_thunk { ATEXIT_THUNK_SIZE } else { 0 }, 16)?;
        if handle && c.at == 0 {
            c.at = 1;
        }
        let text = 0..c.at;

        // Read-only.
        let ro_start = start_segment(&mut c, Segment::ReadOnly)?;
        place_group(&mut c, &mut sections, &groups[1])?;
        // `.eh_frame` sections back to back form a run, registered once and ended by a
        // zero terminator; a section that would need padding (which would read as a
        // terminator) starts a new run.
        let mut eh_frames = Vec::new();
        let mut run_end: Option<u64> = None;
        for &(oi, si) in &groups[2] {
            let (Some(s), Some(slot)) = (section(oi, si), sections.get_mut(oi, si)) else {
                continue;
            };
            if s.size == 0 {
                *slot = c.at;
                continue;
            }
            let off = match run_end {
                Some(end) if end % s.align == 0 => c.place(s.size, s.align)?,
                _ => {
                    if run_end.is_some() {
                        c.place(4, 1)?; // the previous run's terminator
                    }
                    let off = c.place(s.size, s.align)?;
                    eh_frames.push(off);
                    off
                }
            };
            *slot = off;
            run_end = Some(c.at);
        }
        if run_end.is_some() {
            c.place(4, 1)?;
        }
        place_group(&mut c, &mut sections, &groups[3])?;
        let tls = tls_block(&mut c, &mut sections, &groups[6], &groups[7], section)?;
        let got = c.place(8 * got_entries as u64, 8)?;
        let tls_table = c.place(tls_table, 8)?;
        let read_only = ro_start..c.at;

        // Data.
        let data_start = start_segment(&mut c, Segment::Data)?;
        place_group(&mut c, &mut sections, &groups[4])?;
        place_group(&mut c, &mut sections, &groups[5])?;
        let mut common_offsets = Vec::with_capacity(commons.len());
        for &(size, align) in commons {
            common_offsets.push(c.place(size, align)?);
        }
        let data = data_start..c.at;
        Ok(Layout {
            sections,
            commons: common_offsets,
            got,
            stubs: stubs_off,
            atexit_thunk: atexit_off,
            tls_table,
            tls,
            eh_frames,
            segments: [text, read_only, data],
            align,
        })
    }

    /// The segment an offset belongs to; an offset one past a segment's end belongs to
    /// that segment (see the module docs).
    pub(crate) fn segment_of(&self, offset: u64) -> Segment {
        if offset <= self.segments[Segment::Text as usize].end {
            Segment::Text
        } else if offset <= self.segments[Segment::ReadOnly as usize].end {
            Segment::ReadOnly
        } else {
            Segment::Data
        }
    }

    /// Offset of a section, if placed.
    pub(crate) fn section(&self, obj: usize, sec: usize) -> Option<u64> {
        self.sections
            .get(obj, sec)
            .copied()
            .filter(|&o| o != NOT_PLACED)
    }
}

/// Places the `.tdata*` sections (`data`) as one template at the cursor, with the offsets
/// they have in the TLS block, and gives the `.tbss*` sections (`bss`) their offsets after
/// them. `None` when the unit has no thread-local section.
fn tls_block<'o, 's: 'o>(
    c: &mut Cursor,
    sections: &mut PerObject<u64>,
    data: &[(usize, usize)],
    bss: &[(usize, usize)],
    section: impl Fn(usize, usize) -> Option<&'o crate::parse::Section<'s>>,
) -> Result<Option<TlsBlock>, Error> {
    if data.is_empty() && bss.is_empty() {
        return Ok(None);
    }
    let too_large = || Error::TooLarge { size: u64::MAX };
    let mut block = TlsBlock {
        template: c.at,
        align: 1,
        ..TlsBlock::default()
    };
    // Offsets in the block; the template is the block's first `init_len` bytes.
    let mut at = 0_u64;
    for (is_data, group) in [(true, data), (false, bss)] {
        for &(oi, si) in group {
            let Some(s) = section(oi, si) else {
                continue;
            };
            let offset = at.checked_next_multiple_of(s.align).ok_or_else(too_large)?;
            at = offset.checked_add(s.size).ok_or_else(too_large)?;
            if at > MAX_UNIT {
                return Err(Error::TooLarge { size: at });
            }
            block.align = block.align.max(s.align);
            block.offsets.insert((oi, si), offset);
            if is_data {
                c.at = block.template + offset;
                let placed = c.place(s.size, 1)?;
                if let Some(slot) = sections.get_mut(oi, si) {
                    *slot = placed;
                }
                block.init_len = at;
            }
        }
    }
    block.size = at;
    Ok(Some(block))
}
