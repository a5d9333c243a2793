//! The one owner of a unit's memory, with a published state.
//!
//! A unit's memory is three segments, each placed on its own: text (read + execute),
//! read-only data, and data (read + write). A [`Memory`] holds them either as pieces of
//! the linker's code arena ([`crate::arena`], the default: many units share pages, a load
//! makes no system call) or as one private mapping of its own
//! ([`crate::MemoryStrategy::MappingPerUnit`], the fallback when the arena cannot be set up).
//!
//! A [`Memory`] is created [`State::Writable`]: the copy and apply passes fill it through
//! an [`Image`] tied to `&mut self`. [`Memory::protect`] then makes the text executable
//! and the read-only data read-only, makes the instruction stream coherent, and moves to
//! [`State::Protected`], after which no `&mut` access exists. At no point is any mapping
//! writable and executable at once:
//!
//! - own mapping: read + write, never executable, while being filled; then the text goes
//!   RW → RX and the read-only data RW → R with one `mprotect` each;
//! - arena: the text and read-only data are filled in a buffer and written into the
//!   chunk's memory file with `pwrite` at `protect` (no writable view of code exists), or,
//!   with [`crate::MemoryStrategy::ArenaSharedAlias`], through a second, writable view of
//!   the same pages (never executable); they run through views that are never writable.
//!
//! Dropping the `Memory` unmaps the unit's mapping or returns its pieces to the arena
//! (the unit has run its destructors and deregistered its unwind info before, see
//! `unit.rs`).
//!
//! This module, `arena.rs` (the arena's mappings), `call.rs` (calls into foreign code)
//! and `unwind.rs` (the unwinders' registries) are the only ones with `unsafe`.

use std::io;
use std::ops::Range;
use std::ptr::NonNull;
use std::sync::OnceLock;

use crate::arena::{Arena, Pieces};

/// The state of a unit's memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// Being filled; nothing of the unit is executable.
    Writable,
    /// Text read + execute, read-only data read-only, data read + write.
    Protected,
}

/// The three segments of a unit, in layout order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Segment {
    /// Code, call stubs, the `atexit` thunk: read + execute.
    Text = 0,
    /// `.rodata`, `.eh_frame`, RELRO, constructor arrays, GOT: read-only once protected.
    ReadOnly = 1,
    /// `.data`, `.bss`, COMMON: read + write.
    Data = 2,
}

impl Segment {
    /// All three, in layout order.
    pub(crate) const ALL: [Segment; 3] = [Segment::Text, Segment::ReadOnly, Segment::Data];
}

/// Where to place a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placement {
    /// Wherever the kernel likes.
    Anywhere,
    /// In the low 2 GiB (`MAP_32BIT`), for `R_X86_64_32`/`32S`.
    Low32,
    /// Within ±2 GiB of every address in `lo..=hi` (host data that 32-bit PC-relative
    /// fields refer to), as far as the kernel honours a hint.
    Near { lo: u64, hi: u64 },
}

/// What a unit asks for: for each segment, a length and an alignment (a power of two),
/// and where the segment starts in the unit's layout (its offsets' origin).
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub segments: [Range<u64>; 3],
    pub align: [u64; 3],
    pub placement: Placement,
}

impl Request {
    pub(crate) fn len(&self, s: Segment) -> u64 {
        let r = &self.segments[s as usize];
        r.end - r.start
    }

    fn is_empty(&self) -> bool {
        Segment::ALL.iter().all(|&s| self.len(s) == 0)
    }
}

/// The memory of one unit.
pub(crate) struct Memory {
    backing: Backing,
    /// Unit-layout range of each segment.
    segments: [Range<u64>; 3],
    /// Run-time address of each segment's start.
    bases: [usize; 3],
    state: State,
}

enum Backing {
    /// A unit with no bytes at all.
    Empty,
    /// The unit's own private mapping: text, read-only and data at page-aligned offsets.
    Own {
        mapping: Mapping,
        /// Offsets of the segments in the mapping.
        offsets: [usize; 3],
    },
    /// Pieces of the linker's arena, and, without a writable alias, the text and
    /// read-only bytes being filled (written into the pieces at `protect`).
    Arena { pieces: Pieces, staging: Vec<u8> },
}

/// The system page size.
pub(crate) fn page_size() -> usize {
    static PAGE: OnceLock<usize> = OnceLock::new();
    *PAGE.get_or_init(|| {
        // SAFETY: sysconf has no preconditions.
        let v = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        usize::try_from(v)
            .ok()
            .filter(|p| p.is_power_of_two())
            .unwrap_or(4096)
    })
}

pub(crate) fn too_big() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "size overflows the address space",
    )
}

pub(crate) fn to_usize(v: u64) -> io::Result<usize> {
    usize::try_from(v).map_err(|_| too_big())
}

impl Memory {
    /// Memory for a unit: pieces of `arena` unless it is set to (or had to fall back to)
    /// one mapping per unit. Read + write where it will be written, never executable.
    pub(crate) fn allocate(arena: &mut Arena, request: &Request) -> io::Result<Memory> {
        let segments = request.segments.clone();
        if request.is_empty() {
            return Ok(Memory {
                backing: Backing::Empty,
                segments,
                bases: [0; 3],
                state: State::Writable,
            });
        }
        if let Some(pieces) = arena.pieces(request)? {
            let bases = Segment::ALL.map(|s| pieces.base(s));
            return Ok(Memory {
                backing: Backing::Arena {
                    pieces,
                    staging: Vec::new(),
                },
                segments,
                bases,
                state: State::Writable,
            });
        }
        // One private mapping: each segment page-aligned (and aligned as asked).
        let page = page_size() as u64;
        let mut offsets = [0_usize; 3];
        let mut at = 0_u64;
        let mut align = page;
        for s in Segment::ALL {
            let a = request.align[s as usize].max(page);
            align = align.max(a);
            at = at.checked_next_multiple_of(a).ok_or_else(too_big)?;
            offsets[s as usize] = to_usize(at)?;
            at = at.checked_add(request.len(s)).ok_or_else(too_big)?;
        }
        let mapping = Mapping::new(to_usize(at)?, to_usize(align)?, request.placement)?;
        let bases = offsets.map(|o| mapping.start + o);
        Ok(Memory {
            backing: Backing::Own { mapping, offsets },
            segments,
            bases,
            state: State::Writable,
        })
    }

    /// Run-time address of a segment's start.
    pub(crate) fn base(&self, s: Segment) -> usize {
        self.bases[s as usize]
    }

    /// Bytes the unit occupies: its pieces of the arena, or its whole mapping.
    pub(crate) fn len(&self) -> usize {
        match &self.backing {
            Backing::Empty => 0,
            Backing::Own { mapping, .. } => mapping.len,
            Backing::Arena { pieces, .. } => Segment::ALL.iter().map(|&s| pieces.len(s)).sum(),
        }
    }

    /// The read-only segment as it runs (its bytes and its address), once protected;
    /// empty before.
    pub(crate) fn read_only(&self) -> (&[u8], usize) {
        let base = self.base(Segment::ReadOnly);
        let r = &self.segments[Segment::ReadOnly as usize];
        let len = (r.end - r.start) as usize;
        if self.state != State::Protected || len == 0 || base == 0 {
            return (&[], base);
        }
        // SAFETY: `base..base+len` is the unit's read-only segment in its run view (its own
        // mapping, or its piece of the arena's read-only pool), mapped readable for as long
        // as `self` holds it. Once protected nothing writes these bytes (the copy and
        // apply passes are done; other units' pieces are other bytes), and the borrow is
        // tied to `&self`.
        let bytes = unsafe { std::slice::from_raw_parts(base as *const u8, len) };
        (bytes, base)
    }

    /// Whether the unit has its own mapping (rather than pieces of the arena).
    pub(crate) fn is_own_mapping(&self) -> bool {
        matches!(self.backing, Backing::Own { .. })
    }

    /// The current state.
    pub(crate) fn state(&self) -> State {
        self.state
    }

    /// The unit's bytes for filling, addressed by unit-layout offsets; `None` once
    /// protected. Bytes nothing writes read as zero (fresh pages, or reused pieces
    /// cleared here).
    pub(crate) fn image(&mut self) -> Option<Image<'_>> {
        if self.state != State::Writable {
            return None;
        }
        let segments = self.segments.clone();
        let lens = segments.clone().map(|r| (r.end - r.start) as usize);
        let slices: [&mut [u8]; 3] = match &mut self.backing {
            Backing::Empty => [&mut [], &mut [], &mut []],
            Backing::Own { mapping, offsets } => {
                let whole = mapping.bytes_mut();
                let (text, rest) = whole.split_at_mut(offsets[1]);
                let (ro, data) = rest.split_at_mut(offsets[2] - offsets[1]);
                [
                    text.get_mut(..lens[0])?,
                    ro.get_mut(..lens[1])?,
                    data.get_mut(..lens[2])?,
                ]
            }
            Backing::Arena { pieces, staging } => {
                let reused = Segment::ALL.map(|s| pieces.reused(s));
                let text_len = pieces.len(Segment::Text);
                if !pieces.has_alias() {
                    // Text and read-only data are filled here and written at `protect`.
                    staging.clear();
                    staging.resize(text_len + pieces.len(Segment::ReadOnly), 0);
                }
                let [text, ro, data] = pieces.views_mut();
                let (text, ro) = match (text, ro) {
                    (Some(text), Some(ro)) => (text, ro),
                    _ => staging.split_at_mut(text_len),
                };
                let mut slices = [text, ro, data?];
                for (slice, reused) in slices.iter_mut().zip(reused) {
                    if reused {
                        slice.fill(0);
                    }
                }
                // Pieces are whole granules; the image is exactly the segments.
                let [text, ro, data] = slices;
                [
                    text.get_mut(..lens[0])?,
                    ro.get_mut(..lens[1])?,
                    data.get_mut(..lens[2])?,
                ]
            }
        };
        let [text, ro, data] = slices;
        let [t, r, d] = segments;
        Some(Image {
            segments: [(t.start, text), (r.start, ro), (d.start, data)],
        })
    }

    /// Writable → Protected: text read + execute, read-only data read-only, data stays
    /// read + write; then the instruction stream is made coherent with what was written.
    pub(crate) fn protect(&mut self) -> io::Result<()> {
        if self.state != State::Writable {
            return Ok(());
        }
        match &mut self.backing {
            Backing::Empty => {}
            Backing::Own { mapping, offsets } => {
                let page = page_size();
                for (s, prot) in [
                    (Segment::ReadOnly, libc::PROT_READ),
                    (Segment::Text, libc::PROT_READ | libc::PROT_EXEC),
                ] {
                    let r = &self.segments[s as usize];
                    let len = to_usize(r.end - r.start)?;
                    if len == 0 {
                        continue;
                    }
                    let start = offsets[s as usize];
                    let len = len.checked_next_multiple_of(page).ok_or_else(too_big)?;
                    mapping.protect(start..start + len, prot)?;
                }
            }
            Backing::Arena { pieces, staging } => {
                // Without an alias, the text and read-only bytes go into the chunk's
                // memory file now; no mapping of them is ever writable.
                if !staging.is_empty() {
                    let (text, ro) = staging.split_at(pieces.len(Segment::Text));
                    pieces.write(Segment::Text, text)?;
                    pieces.write(Segment::ReadOnly, ro)?;
                    *staging = Vec::new();
                }
                // The run views already have their final protection. Code written over
                // code that may have run before (a reused piece) needs every core to
                // refetch, as the TLB shoot-down of a munmap/mprotect would force.
                if pieces.reused(Segment::Text) && pieces.len(Segment::Text) > 0 {
                    sync_cores();
                }
            }
        }
        let text = &self.segments[Segment::Text as usize];
        flush_icache(self.base(Segment::Text), (text.end - text.start) as usize);
        self.state = State::Protected;
        Ok(())
    }
}

/// A unit's bytes while it is being filled, addressed by offsets of the unit's layout.
/// Each segment is a separate slice (they live in different places at run time).
pub(crate) struct Image<'m> {
    /// For each segment: its start in the unit layout and its bytes.
    segments: [(u64, &'m mut [u8]); 3],
}

impl Image<'_> {
    fn locate(&self, offset: u64, len: usize) -> Option<(usize, usize)> {
        self.segments
            .iter()
            .enumerate()
            .find_map(|(i, (start, bytes))| {
                let rel = usize::try_from(offset.checked_sub(*start)?).ok()?;
                (rel.checked_add(len)? <= bytes.len()).then_some((i, rel))
            })
    }

    /// The `len` bytes at `offset`, if they lie inside one segment.
    pub(crate) fn get(&self, offset: u64, len: usize) -> Option<&[u8]> {
        let (i, rel) = self.locate(offset, len)?;
        self.segments[i].1.get(rel..rel + len)
    }

    /// Writes `data` at `offset`; `None` (and nothing written) unless it lies inside one
    /// segment.
    pub(crate) fn write(&mut self, offset: u64, data: &[u8]) -> Option<()> {
        let (i, rel) = self.locate(offset, data.len())?;
        self.segments[i]
            .1
            .get_mut(rel..rel + data.len())?
            .copy_from_slice(data);
        Some(())
    }
}

/// Makes every thread of the process refetch instructions before it runs code written
/// over code that may have run: `membarrier(PRIVATE_EXPEDITED_SYNC_CORE)` (Linux 4.16+),
/// registered on first use. Best effort: where the call is refused (old kernel,
/// seccomp) x86-64's coherent instruction fetch is what remains.
fn sync_cores() {
    const REGISTER_SYNC_CORE: libc::c_long = 1 << 6;
    const SYNC_CORE: libc::c_long = 1 << 5;
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let registered = *REGISTERED.get_or_init(|| {
        // SAFETY: membarrier's registration takes no pointers; an unknown command or an
        // old kernel returns an error, which we check.
        unsafe { libc::syscall(libc::SYS_membarrier, REGISTER_SYNC_CORE, 0, 0) == 0 }
    });
    if registered {
        // SAFETY: as above; the command only interrupts our own threads.
        unsafe {
            libc::syscall(libc::SYS_membarrier, SYNC_CORE, 0, 0);
        }
    }
}

/// Makes freshly written code visible to instruction fetch. x86-64 keeps instruction and
/// data caches coherent (and `mprotect` serializes), so this is a no-op there; aarch64
/// would call `__clear_cache(start, end)` here.
fn flush_icache(_start: usize, _len: usize) {
    #[cfg(not(target_arch = "x86_64"))]
    compile_error!("jitcache-linker: add the instruction-cache flush for this architecture");
}

/// A private anonymous mapping owned by one unit, created read + write (never executable).
pub(crate) struct Mapping {
    /// Start of the whole mapping (over-mapped for alignment).
    map: NonNull<u8>,
    map_len: usize,
    /// Aligned start of the unit inside the mapping.
    start: usize,
    /// Bytes of the unit (whole pages).
    len: usize,
}

// SAFETY: `Mapping` owns its mapping exclusively (no aliasing pointers are handed out
// except `&mut [u8]` tied to `&mut self`), and mmap'd memory may be used and unmapped
// from any thread.
unsafe impl Send for Mapping {}
// SAFETY: `&Mapping` only exposes addresses (integers); no access to the bytes goes
// through a shared reference.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps `len` bytes (rounded up to pages, `len > 0`) starting at an address aligned to
    /// `align` (a power of two), read + write, zero-filled.
    fn new(len: usize, align: usize, placement: Placement) -> io::Result<Mapping> {
        let page = page_size();
        let align = align.max(page);
        let rounded = len
            .max(1)
            .checked_next_multiple_of(page)
            .ok_or_else(too_big)?;
        // Over-map when the alignment exceeds a page, then start at the aligned address.
        let map_len = rounded.checked_add(align - page).ok_or_else(too_big)?;
        // (Not MAP_POPULATE: it is slower here, faulting in pages never touched too.)
        let mut flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
        let hint = match placement {
            Placement::Anywhere => 0,
            Placement::Low32 => {
                flags |= libc::MAP_32BIT;
                0
            }
            Placement::Near { lo, hi } => near_hint(lo, hi, map_len as u64),
        };
        // SAFETY: an anonymous private mapping without MAP_FIXED cannot replace existing
        // mappings; the hint is only a hint. We check the result for MAP_FAILED.
        let map = unsafe {
            libc::mmap(
                hint as *mut libc::c_void,
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                -1,
                0,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let Some(map) = NonNull::new(map.cast::<u8>()) else {
            return Err(io::Error::other("mmap returned address 0"));
        };
        let start = (map.as_ptr() as usize).next_multiple_of(align);
        Ok(Mapping {
            map,
            map_len,
            start,
            len: rounded,
        })
    }

    /// The whole unit.
    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: `start..start+len` lies inside our live mapping (`new` rounded and
        // aligned it inside `map..map+map_len`); callers only ask while the unit is
        // writable (before `protect`), and the borrow is tied to `&mut self`, so no other
        // reference to these bytes exists while it lives.
        unsafe { std::slice::from_raw_parts_mut(self.start as *mut u8, self.len) }
    }

    /// Changes the protection of `range` (page-aligned offsets inside the unit).
    fn protect(&mut self, range: Range<usize>, prot: libc::c_int) -> io::Result<()> {
        let page = page_size();
        if !range.start.is_multiple_of(page)
            || !range.end.is_multiple_of(page)
            || range.end > self.len
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "protect: range outside the unit",
            ));
        }
        // SAFETY: the range is page-aligned and inside our own mapping (checked above);
        // changing its protection affects only memory this `Mapping` owns. Write is
        // dropped before execute is added: the text goes RW → RX in one call.
        let rc = unsafe {
            libc::mprotect(
                (self.start + range.start) as *mut libc::c_void,
                range.end - range.start,
                prot,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `map..map+map_len` is the mapping we created in `new` and nothing else
        // unmaps it; the unit that owned it has run its destructors and deregistered its
        // unwind info before its memory is dropped (see `unit.rs`).
        unsafe {
            libc::munmap(self.map.as_ptr().cast(), self.map_len);
        }
    }
}

/// A placement hint for `size` bytes within reach of `lo..=hi`: below the targets, within
/// 1 GiB of all of them (mmap grows down from the libraries); 0 (no hint) when they are
/// too far apart.
pub(crate) fn near_hint(lo: u64, hi: u64, size: u64) -> usize {
    const GIB: u64 = 1 << 30;
    if hi - lo > GIB || size > GIB {
        return 0;
    }
    let hint = (lo / 2 + hi / 2).saturating_sub(GIB / 2 + size) & !0xfff;
    usize::try_from(hint).unwrap_or(0)
}
