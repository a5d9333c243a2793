//! The code arena: memory mapped once per chunk and handed out in pieces, so that many
//! small units share pages and a load makes no system call. Part of the memory path, with
//! `memory.rs` (this module, `memory.rs`, `call.rs` and `unwind.rs` are the only ones with
//! `unsafe`).
//!
//! # A chunk
//!
//! ```text
//! run views (one reservation, within ±2 GiB of itself):
//!   run → | text pool      memfd[0..T]     MAP_SHARED  r-x  (never writable)
//!         | read-only pool memfd[T..T+R]   MAP_SHARED  r--  (never writable)
//!         | data pool      anonymous       MAP_PRIVATE rw-  (never executable)
//! alias (only with ArenaSharedAlias; elsewhere, randomized by the kernel):
//!         | memfd[0..T+R]                  MAP_SHARED  rw-  (never executable)
//! ```
//!
//! A unit takes one piece of each pool of one chunk (so its segments are within reach of
//! each other) and runs its code through the run views, which were mapped with their
//! final protection when the chunk was made and never change it. Its text and read-only
//! data are written into the memfd with `pwrite` (two calls per load) or, with
//! [`MemoryStrategy::ArenaSharedAlias`], through the alias (no call at all). Loading,
//! relocating and unloading a unit make no `mmap`, `mprotect` or `munmap` call; only
//! making a chunk does (about eight calls, ~15 µs here).
//!
//! # W^X, precisely
//!
//! No mapping of the process is ever writable and executable at once. By default no
//! mapping of code is writable at all (`/proc/self/maps` shows `r-xs` and `r--s` of
//! `memfd:jitcache-code`): changing loaded code takes a `pwrite` on the chunk's
//! descriptor, as changing a per-unit mapping takes an `mprotect`. The shared alias
//! (`memfd:jitcache-code-alias`, `rw-s`) gives that up: code stays writable *through
//! another address* while the chunk lives.
//!
//! # Freed code
//!
//! A unit's text piece is filled with `int3` (0xCC) when it is freed, before the pool
//! can hand it out again, so a stale pointer into it traps; a piece that could not be
//! filled is never reused. Chunks frozen by `fork` are not filled (see below).
//!
//! # Pieces, reuse, placement
//!
//! Pieces come from fresh bytes first, then first fit, in 16-byte granules (`pool.rs`);
//! unloading returns them. A piece
//! that reuses text bytes (code may have run there) is followed by
//! `membarrier(SYNC_CORE)` before the unit is handed out, and a reused piece is cleared
//! before it is filled. Units with absolute 32-bit fields get pieces of low chunks
//! (`MAP_32BIT`); units whose PC-relative fields reach host data get a chunk within
//! ±2 GiB of it (a new one, placed by hint, if no chunk is). A unit larger than a pool
//! gets a chunk sized for it. Empty chunks are unmapped, except one spare per kind.
//!
//! # fork
//!
//! The text and read-only pools are shared memory, so after `fork` parent and child
//! would see each other's writes. A `pthread_atfork` handler therefore freezes every
//! existing chunk, in both processes: its pieces stay valid, but nothing is allocated in
//! it any more (freed pieces are not reused), and new loads get new chunks. The data pool
//! is private: globals of loaded code fork copy-on-write, as for any program. (A child
//! made without the C library's `fork`, e.g. a raw `clone`, is not seen.)

use std::io;
use std::ops::Range;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Once};

use crate::memory::{Placement, Request, Segment, near_hint, page_size, to_usize, too_big};
use crate::pool::{GRANULE, Pool};

/// Bytes of each pool of a regular chunk. Address space only: pages are backed when
/// first written.
const POOL_LEN: usize = 256 << 10;

/// Largest distance between host data and any byte of a chunk for the chunk to serve a
/// unit whose 32-bit PC-relative fields refer to that data (2 GiB less a margin for
/// addends).
const REACH: u64 = (1 << 31) - (16 << 20);

/// How a [`crate::Linker`] maps the units it loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum MemoryStrategy {
    /// Units share the pages of a code arena: memory mapped in chunks and handed out in
    /// 16-byte granules, and no mapping of code is ever writable: text and read-only
    /// data are written into the chunk's memory file with `pwrite` (two system calls per
    /// load), and run from views that are never writable. The default. If the arena
    /// cannot be set up (no `memfd_create`, executable shared mappings refused), the
    /// linker falls back to [`MemoryStrategy::MappingPerUnit`].
    #[default]
    Arena,
    /// The arena, with code written through a second, writable view of each chunk's
    /// text and read-only pools, kept for the chunk's life: a load makes no system call
    /// once a chunk exists, but loaded code stays writable through that other address
    /// (see `docs/linker.md`, W^X). An opt-in for programs that load many small units
    /// and accept that.
    ArenaSharedAlias,
    /// Each unit gets a private mapping of its own (at least one page per segment),
    /// filled read + write, then `mprotect`ed: code is never writable through any
    /// mapping once protected. Costs an `mmap`, two `mprotect` and a `munmap` per unit.
    MappingPerUnit,
}

impl MemoryStrategy {
    /// Whether units share a code arena.
    fn is_arena(self) -> bool {
        matches!(
            self,
            MemoryStrategy::Arena | MemoryStrategy::ArenaSharedAlias
        )
    }
}

/// Memory of a [`crate::Linker`], from [`crate::Linker::arena_stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ArenaStats {
    /// Units loaded.
    pub units: usize,
    /// Chunks of the arena.
    pub chunks: usize,
    /// Address space mapped to run units: every chunk's run views (its text, read-only
    /// and data pools) plus the mappings of units that have their own.
    pub mapped_bytes: usize,
    /// Address space of the chunks' writable views (only with
    /// [`MemoryStrategy::ArenaSharedAlias`]): the same pages as the text and read-only
    /// pools, mapped a second time (no memory of their own).
    pub alias_bytes: usize,
    /// Pages that can hold memory: each pool up to the highest byte ever handed out, and
    /// whole mappings of units that have their own. An upper bound of what is resident;
    /// pages above are never touched.
    pub touched_bytes: usize,
    /// Bytes of the loaded units: the sum of [`crate::Linker::mapped_bytes`].
    pub used_bytes: usize,
    /// Bytes mapped for the indirect stubs of [`crate::Binding::Stubs`] (a code page and a
    /// data page per 512 names; never freed while the linker lives), not counted above.
    pub stub_bytes: usize,
}

/// Kind of chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Normal,
    /// Mapped with `MAP_32BIT`.
    Low32,
}

/// Bumped in both processes by `fork` (see the module docs).
static GENERATION: AtomicU64 = AtomicU64::new(0);

extern "C" fn before_fork() {
    GENERATION.fetch_add(1, Ordering::SeqCst);
}

fn watch_forks() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: `before_fork` is an `extern "C" fn()` with static lifetime that only
        // touches an atomic (async-signal-safe, as a fork handler must be).
        // If registration fails (ENOMEM) chunks are not frozen at fork; nothing else
        // depends on it.
        unsafe {
            libc::pthread_atfork(Some(before_fork), None, None);
        }
    });
}

/// The arena of one linker: its chunks, and whether to use them at all.
pub(crate) struct Arena {
    strategy: MemoryStrategy,
    /// The arena could not be set up here: units get their own mappings.
    unavailable: bool,
    chunks: Vec<Arc<Chunk>>,
}

impl Arena {
    pub(crate) fn new(strategy: MemoryStrategy) -> Arena {
        Arena {
            strategy,
            unavailable: false,
            chunks: Vec::new(),
        }
    }

    /// The strategy in effect (after any fallback).
    pub(crate) fn strategy(&self) -> MemoryStrategy {
        if self.unavailable {
            MemoryStrategy::MappingPerUnit
        } else {
            self.strategy
        }
    }

    /// Pieces for a unit, or `None` when units get their own mappings (by choice, or
    /// because no chunk could be made for this request).
    pub(crate) fn pieces(&mut self, request: &Request) -> io::Result<Option<Pieces>> {
        if !self.strategy().is_arena() {
            return Ok(None);
        }
        let shared_alias = self.strategy == MemoryStrategy::ArenaSharedAlias;
        let class = match request.placement {
            Placement::Low32 => Class::Low32,
            _ => Class::Normal,
        };
        let align = request.align.iter().copied().fold(GRANULE, u64::max);
        let mut lens = [0_u64; 3];
        for s in Segment::ALL {
            lens[s as usize] = request.len(s);
        }
        let generation = GENERATION.load(Ordering::SeqCst);
        for chunk in &self.chunks {
            if chunk.class == class
                && chunk.generation == generation
                && chunk.align as u64 >= align
                && chunk.reaches(request.placement)
                && let Some(pieces) = Chunk::alloc(chunk, &lens, &request.align)
            {
                return Ok(Some(pieces));
            }
        }
        let page = page_size();
        let chunk_align = to_usize(align)?.max(page);
        let mut pool_len = [0_usize; 3];
        for s in Segment::ALL {
            let need = to_usize(lens[s as usize])?;
            pool_len[s as usize] = need
                .max(POOL_LEN)
                .checked_next_multiple_of(chunk_align)
                .ok_or_else(too_big)?;
        }
        let chunk = match Chunk::create(
            class,
            pool_len,
            chunk_align,
            request.placement,
            shared_alias,
        ) {
            Ok(chunk) => Arc::new(chunk),
            Err(e) => {
                // Refused for good (no memfd, no executable shared mapping): stop trying.
                // Anything else (out of memory, out of low address space): this unit
                // gets its own mapping, which reports the error if it fails too.
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EPERM | libc::EACCES | libc::ENOSYS | libc::EINVAL)
                ) {
                    self.unavailable = true;
                }
                return Ok(None);
            }
        };
        let pieces = Chunk::alloc(&chunk, &lens, &request.align)
            .ok_or_else(|| io::Error::other("a new chunk cannot hold the unit it was made for"))?;
        self.chunks.push(chunk);
        Ok(Some(pieces))
    }

    /// Unmaps chunks that hold nothing, keeping one spare regular chunk per kind (so that
    /// a load after an unload does not pay for a new chunk).
    pub(crate) fn trim(&mut self) {
        let generation = GENERATION.load(Ordering::SeqCst);
        let mut spare = [false; 2];
        self.chunks.retain(|chunk| {
            if chunk.lock().live > 0 {
                return true;
            }
            let regular = chunk.pool_len.iter().all(|&l| l == POOL_LEN);
            let slot = &mut spare[chunk.class as usize];
            if chunk.generation != generation || !regular || *slot {
                return false;
            }
            *slot = true;
            true
        });
    }

    /// Chunks, mapped, alias and touched bytes of the arena.
    pub(crate) fn stats(&self) -> ArenaStats {
        let page = page_size() as u64;
        let mut stats = ArenaStats {
            chunks: self.chunks.len(),
            ..ArenaStats::default()
        };
        for chunk in &self.chunks {
            stats.mapped_bytes += chunk.pool_len.iter().sum::<usize>();
            stats.alias_bytes += chunk.alias.as_ref().map_or(0, |a| a.len);
            let state = chunk.lock();
            for pool in &state.pools {
                stats.touched_bytes += pool.high_water().next_multiple_of(page) as usize;
            }
        }
        stats
    }
}

/// An owned range of address space, unmapped when dropped.
struct Region {
    addr: usize,
    len: usize,
}

impl Drop for Region {
    fn drop(&mut self) {
        if self.len == 0 {
            return;
        }
        // SAFETY: `addr..addr+len` was mapped by `map` for this region alone (the views
        // mapped over a reservation belong to it), and the chunk that owns it is dropped
        // only when no piece of it is left (pieces hold an `Arc`).
        unsafe {
            libc::munmap(self.addr as *mut libc::c_void, self.len);
        }
    }
}

/// `mmap` that returns a `Region` (or, with `MAP_FIXED`, maps over part of one).
fn map(
    hint: usize,
    len: usize,
    prot: libc::c_int,
    flags: libc::c_int,
    fd: libc::c_int,
    offset: usize,
) -> io::Result<Region> {
    let offset = libc::off_t::try_from(offset).map_err(|_| too_big())?;
    // SAFETY: every caller either maps without MAP_FIXED (the kernel picks free address
    // space; the hint is only a hint) or maps with MAP_FIXED over a reservation that the
    // calling chunk owns and that nothing else uses yet. The result is checked.
    let addr = unsafe { libc::mmap(hint as *mut libc::c_void, len, prot, flags, fd, offset) };
    if addr == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok(Region {
        addr: addr as usize,
        len,
    })
}

/// A memfd for the code of one chunk (`MFD_EXEC` where the kernel knows it, since a
/// `vm.memfd_noexec` sysctl may otherwise seal it non-executable). Its name says whether
/// the chunk has a writable alias (`/proc/self/maps` shows `memfd:jitcache-code` or
/// `memfd:jitcache-code-alias`).
fn memfd(shared_alias: bool) -> io::Result<OwnedFd> {
    const MFD_EXEC: libc::c_uint = 0x0010;
    let name = if shared_alias {
        c"jitcache-code-alias"
    } else {
        c"jitcache-code"
    };
    let mut fd = -1;
    for flags in [libc::MFD_CLOEXEC | MFD_EXEC, libc::MFD_CLOEXEC] {
        // SAFETY: `name` is a NUL-terminated string; the flags are valid bits.
        fd = unsafe { libc::memfd_create(name.as_ptr(), flags) };
        if fd >= 0 || io::Error::last_os_error().raw_os_error() != Some(libc::EINVAL) {
            break;
        }
    }
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

struct ChunkState {
    pools: [Pool; 3],
    /// Live pieces (one per unit).
    live: usize,
}

/// One chunk: three pools behind one reservation, and the writable alias.
struct Chunk {
    class: Class,
    /// The fork generation it was made in; older chunks are frozen.
    generation: u64,
    /// Alignment of every pool's start.
    align: usize,
    /// The run views: text pool at `reserve`-aligned `run`, then read-only, then data.
    reserve: Region,
    run: usize,
    pool_len: [usize; 3],
    /// The memory file of the text and read-only pools (offsets 0..T+R), written with
    /// `pwrite` when there is no alias.
    fd: OwnedFd,
    /// Writable view of the text and read-only pools, with
    /// [`MemoryStrategy::ArenaSharedAlias`] only.
    alias: Option<Region>,
    state: Mutex<ChunkState>,
}

impl Chunk {
    fn create(
        class: Class,
        pool_len: [usize; 3],
        align: usize,
        placement: Placement,
        shared_alias: bool,
    ) -> io::Result<Chunk> {
        watch_forks();
        let page = page_size();
        let [text_len, ro_len, data_len] = pool_len;
        let shared_len = text_len + ro_len;
        let total = shared_len + data_len;
        let fd = memfd(shared_alias)?;
        let file_len = libc::off_t::try_from(shared_len).map_err(|_| too_big())?;
        // SAFETY: ftruncate on our own fresh memfd.
        if unsafe { libc::ftruncate(fd.as_raw_fd(), file_len) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // Reserve the run views' address space (inaccessible), aligned as asked.
        let reserve_len = total.checked_add(align - page).ok_or_else(too_big)?;
        let mut flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE;
        let hint = match placement {
            Placement::Low32 => {
                flags |= libc::MAP_32BIT;
                0
            }
            Placement::Near { lo, hi } => near_hint(lo, hi, reserve_len as u64),
            Placement::Anywhere => 0,
        };
        let reserve = map(hint, reserve_len, libc::PROT_NONE, flags, -1, 0)?;
        let run = reserve.addr.next_multiple_of(align);
        // The views, over the reservation. Regions returned by MAP_FIXED maps are
        // forgotten: they are part of `reserve`, which unmaps them all.
        let fixed = libc::MAP_SHARED | libc::MAP_FIXED;
        std::mem::forget(map(
            run,
            text_len,
            libc::PROT_READ | libc::PROT_EXEC,
            fixed,
            fd.as_raw_fd(),
            0,
        )?);
        std::mem::forget(map(
            run + text_len,
            ro_len,
            libc::PROT_READ,
            fixed,
            fd.as_raw_fd(),
            text_len,
        )?);
        // SAFETY: the data pool lies inside our own reservation (anonymous, private).
        let rc = unsafe {
            libc::mprotect(
                (run + shared_len) as *mut libc::c_void,
                data_len,
                libc::PROT_READ | libc::PROT_WRITE,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        let alias = if shared_alias {
            Some(map(
                0,
                shared_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )?)
        } else {
            None
        };
        Ok(Chunk {
            class,
            generation: GENERATION.load(Ordering::SeqCst),
            align,
            reserve,
            run,
            pool_len,
            fd,
            alias,
            state: Mutex::new(ChunkState {
                pools: pool_len.map(|l| Pool::new(l as u64)),
                live: 0,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, ChunkState> {
        // A panic while holding the lock leaves the pools consistent (every operation is
        // completed before it can panic), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Offset of a pool from `run` (and, for text and read-only, from the alias).
    fn pool_offset(&self, s: Segment) -> usize {
        self.pool_len[..s as usize].iter().sum()
    }

    /// End of the reservation (at or after the end of the data pool).
    fn end(&self) -> usize {
        self.reserve.addr + self.reserve.len
    }

    /// Whether every byte of the chunk is within reach of what the unit refers to.
    fn reaches(&self, placement: Placement) -> bool {
        match placement {
            Placement::Near { lo, hi } => {
                let low = lo.min(self.run as u64);
                let high = hi.max(self.end() as u64);
                high - low <= REACH
            }
            Placement::Anywhere | Placement::Low32 => true,
        }
    }

    /// One piece of each pool, or `None` (nothing taken) if one does not fit.
    fn alloc(chunk: &Arc<Chunk>, lens: &[u64; 3], aligns: &[u64; 3]) -> Option<Pieces> {
        let mut state = chunk.lock();
        let mut ranges: [Range<u64>; 3] = [0..0, 0..0, 0..0];
        let mut reused = [false; 3];
        for s in 0..3 {
            match state.pools[s].alloc(lens[s], aligns[s]) {
                Some(a) => {
                    ranges[s] = a.range;
                    reused[s] = a.reused;
                }
                None => {
                    for (pool, range) in state.pools.iter_mut().zip(&ranges).take(s) {
                        pool.free(range.clone());
                    }
                    return None;
                }
            }
        }
        state.live += 1;
        Some(Pieces {
            chunk: Arc::clone(chunk),
            ranges,
            reused,
        })
    }
}

/// A unit's pieces: one of each pool of one chunk. Dropping them returns them.
pub(crate) struct Pieces {
    chunk: Arc<Chunk>,
    /// Offsets in each pool.
    ranges: [Range<u64>; 3],
    /// Whether each piece covers bytes handed out before.
    reused: [bool; 3],
}

impl Pieces {
    /// Run-time address of a segment's piece.
    pub(crate) fn base(&self, s: Segment) -> usize {
        self.chunk.run + self.chunk.pool_offset(s) + self.ranges[s as usize].start as usize
    }

    /// Length of a segment's piece (a multiple of the granule).
    pub(crate) fn len(&self, s: Segment) -> usize {
        let r = &self.ranges[s as usize];
        (r.end - r.start) as usize
    }

    /// Whether a segment's piece covers bytes that an earlier unit had.
    pub(crate) fn reused(&self, s: Segment) -> bool {
        self.reused[s as usize]
    }

    /// Whether text and read-only data are written in place, through the chunk's
    /// writable alias ([`MemoryStrategy::ArenaSharedAlias`]), rather than with
    /// [`Pieces::write`].
    pub(crate) fn has_alias(&self) -> bool {
        self.chunk.alias.is_some()
    }

    /// The pieces' bytes for writing in place: the data piece in the run view, text and
    /// read-only through the alias; `None` for text and read-only without an alias.
    pub(crate) fn views_mut(&mut self) -> [Option<&mut [u8]>; 3] {
        let chunk = &*self.chunk;
        Segment::ALL.map(|s| {
            let len = self.len(s);
            let view = match (s, &chunk.alias) {
                (Segment::Data, _) => chunk.run,
                (_, Some(alias)) => alias.addr,
                (_, None) => return None,
            };
            if len == 0 {
                return Some(&mut [][..]);
            }
            let start = view + chunk.pool_offset(s) + self.ranges[s as usize].start as usize;
            // SAFETY: the range lies inside its pool (the pool hands out only ranges
            // within its length), the pool lies inside a view that is mapped read + write
            // (the alias, or the data pool of the reservation) for as long as the chunk
            // lives, and `self` holds the chunk. No other live piece overlaps this one
            // (the pool never hands out a range twice), no one runs or reads it before the
            // unit is published, and the borrows are tied to `&mut self` (one per piece).
            Some(unsafe { std::slice::from_raw_parts_mut(start as *mut u8, len) })
        })
    }

    /// Writes `bytes` at the start of the text or read-only piece, through the chunk's
    /// memory file (`pwrite`): no mapping becomes writable. At most the piece's length.
    pub(crate) fn write(&self, s: Segment, bytes: &[u8]) -> io::Result<()> {
        if bytes.len() > self.len(s) || s == Segment::Data {
            return Err(io::Error::other("write outside a text or read-only piece"));
        }
        let offset = self.chunk.pool_offset(s) + self.ranges[s as usize].start as usize;
        pwrite_all(&self.chunk.fd, bytes, offset)
    }

    /// Fills the text piece with `int3` (0xCC) so that a stale pointer into it traps
    /// rather than runs what a later unit puts there; false if it could not be filled.
    fn trap_fill(&mut self) -> bool {
        let len = self.len(Segment::Text);
        if len == 0 {
            return true;
        }
        if let [Some(text), _, _] = self.views_mut() {
            text.fill(INT3);
            return true;
        }
        self.write(Segment::Text, &vec![INT3; len]).is_ok()
    }
}

/// The x86-64 breakpoint instruction, `int3`.
const INT3: u8 = 0xCC;

/// `pwrite` of all of `bytes` at `offset` of `fd`.
fn pwrite_all(fd: &OwnedFd, mut bytes: &[u8], mut offset: usize) -> io::Result<()> {
    while !bytes.is_empty() {
        let off = libc::off_t::try_from(offset).map_err(|_| too_big())?;
        // SAFETY: `bytes` is a live slice of that many bytes; the file is our own memfd.
        let n = unsafe { libc::pwrite(fd.as_raw_fd(), bytes.as_ptr().cast(), bytes.len(), off) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        let n = n as usize;
        if n == 0 {
            return Err(io::Error::other("pwrite wrote nothing"));
        }
        bytes = &bytes[n..];
        offset += n;
    }
    Ok(())
}

impl Drop for Pieces {
    /// Returns the pieces, the text trap-filled first. A chunk frozen by `fork` is not
    /// filled (the other process may still run the unit, and shares these pages) and
    /// never hands the piece out again; a text piece that could not be filled is kept
    /// out of the pool.
    fn drop(&mut self) {
        let frozen = self.chunk.generation != GENERATION.load(Ordering::SeqCst);
        let filled = frozen || self.trap_fill();
        let mut state = self.chunk.lock();
        for (s, (pool, range)) in state.pools.iter_mut().zip(&self.ranges).enumerate() {
            if s != Segment::Text as usize || filled {
                pool.free(range.clone());
            }
        }
        state.live -= 1;
    }
}
