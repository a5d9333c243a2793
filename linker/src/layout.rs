//! Pass 4, lay out: every loaded section, the call stubs, the GOT and the COMMON symbols
//! get an offset in the unit's memory, grouped into three page-aligned segments by
//! permission:
//!
//! ```text
//! base → | text: .text*, call stubs                                  | read + execute
//!        | read-only: .rodata*, .eh_frame (+4 zero bytes each),      | read-only
//!        |   .gcc_except_table, .data.rel.ro*, .init_array,          |
//!        |   .fini_array, .preinit_array, GOT                        |
//!        | data: .data*, .bss*, COMMON                               | read + write
//! ```
//!
//! `.data.rel.ro`, the arrays and the GOT are written only by relocation, so they are
//! read-only once protected (what RELRO does for a shared object). Offsets honour each
//! section's alignment; the mapping's base is aligned to the largest of them.

use std::ops::Range;

use crate::error::Error;
use crate::memory::page_size;
use crate::parse::{Object, SectionKind};
use crate::x86_64::{ATEXIT_THUNK_SIZE, STUB_SIZE};

/// Largest unit accepted: PC-relative references inside a unit must stay within ±2 GiB.
const MAX_UNIT: u64 = 1 << 30;

/// Not placed (a skipped section).
pub(crate) const NOT_PLACED: u64 = u64::MAX;

/// Offsets of everything in the unit, relative to its base.
pub(crate) struct Layout {
    /// `[object][section]`: offset, or [`NOT_PLACED`].
    pub sections: Vec<Vec<u64>>,
    /// Offset of each merged COMMON symbol.
    pub commons: Vec<u64>,
    /// Offset of the GOT (8 bytes per entry).
    pub got: u64,
    /// Offset of the first call stub.
    pub stubs: u64,
    /// Offset of the `atexit` thunk (meaningful when one was asked for).
    pub atexit_thunk: u64,
    /// Offsets of the `.eh_frame` sections, each followed by a zero terminator.
    pub eh_frames: Vec<u64>,
    /// Read + execute range.
    pub text: Range<u64>,
    /// Read-only range.
    pub read_only: Range<u64>,
    /// Total bytes.
    pub size: u64,
    /// Alignment the base needs.
    pub align: u64,
}

struct Cursor {
    at: u64,
    align: u64,
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
        self.align = self.align.max(align);
        Ok(offset)
    }

    fn page(&mut self) -> Result<u64, Error> {
        self.place(0, page_size() as u64)
    }
}

impl Layout {
    /// Lays out the unit. `commons` are (size, align) pairs.
    pub(crate) fn new(
        objects: &[Object<'_>],
        commons: &[(u64, u64)],
        got_entries: usize,
        stubs: usize,
        atexit_thunk: bool,
    ) -> Result<Layout, Error> {
        let mut sections: Vec<Vec<u64>> = objects
            .iter()
            .map(|o| vec![NOT_PLACED; o.sections.len()])
            .collect();
        let mut c = Cursor { at: 0, align: 1 };
        let place_kind = |c: &mut Cursor,
                          sections: &mut Vec<Vec<u64>>,
                          want: &dyn Fn(SectionKind) -> bool,
                          extra: u64|
         -> Result<Vec<u64>, Error> {
            let mut placed = Vec::new();
            for (oi, object) in objects.iter().enumerate() {
                for (si, s) in object.sections.iter().enumerate() {
                    if want(s.kind) {
                        let size = s
                            .size
                            .checked_add(extra)
                            .ok_or(Error::TooLarge { size: u64::MAX })?;
                        let off = c.place(size, s.align)?;
                        if let Some(slot) = sections.get_mut(oi).and_then(|v| v.get_mut(si)) {
                            *slot = off;
                        }
                        placed.push(off);
                    }
                }
            }
            Ok(placed)
        };

        // Text.
        place_kind(&mut c, &mut sections, &|k| k == SectionKind::Text, 0)?;
        let stubs_off = c.place(STUB_SIZE * stubs as u64, STUB_SIZE)?;
        let atexit_off = c.place(if atexit_thunk { ATEXIT_THUNK_SIZE } else { 0 }, 16)?;
        let text = 0..c.at;

        // Read-only.
        let ro_start = c.page()?;
        place_kind(
            &mut c,
            &mut sections,
            &|k| matches!(k, SectionKind::ReadOnly | SectionKind::RelRo),
            0,
        )?;
        let eh_frames = place_kind(&mut c, &mut sections, &|k| k == SectionKind::EhFrame, 4)?;
        place_kind(
            &mut c,
            &mut sections,
            &|k| {
                matches!(
                    k,
                    SectionKind::InitArray(_)
                        | SectionKind::FiniArray(_)
                        | SectionKind::PreinitArray
                )
            },
            0,
        )?;
        let got = c.place(8 * got_entries as u64, 8)?;
        let read_only = ro_start..c.at;

        // Data.
        c.page()?;
        place_kind(&mut c, &mut sections, &|k| k == SectionKind::Data, 0)?;
        place_kind(&mut c, &mut sections, &|k| k == SectionKind::Bss, 0)?;
        let mut common_offsets = Vec::with_capacity(commons.len());
        for &(size, align) in commons {
            common_offsets.push(c.place(size, align)?);
        }
        let size = c.at;
        let eh_frames = eh_frames
            .into_iter()
            .zip(
                objects
                    .iter()
                    .flat_map(|o| o.sections.iter())
                    .filter(|s| s.kind == SectionKind::EhFrame),
            )
            .filter(|(_, s)| s.size > 0)
            .map(|(off, _)| off)
            .collect();
        Ok(Layout {
            sections,
            commons: common_offsets,
            got,
            stubs: stubs_off,
            atexit_thunk: atexit_off,
            eh_frames,
            text,
            read_only,
            size,
            align: c.align,
        })
    }

    /// Offset of a section, if placed.
    pub(crate) fn section(&self, obj: usize, sec: usize) -> Option<u64> {
        self.sections
            .get(obj)?
            .get(sec)
            .copied()
            .filter(|&o| o != NOT_PLACED)
    }
}
