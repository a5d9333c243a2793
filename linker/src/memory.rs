//! The one owner of a unit's memory, with a published state.
//!
//! A [`Memory`] is created [`State::Writable`] (read + write, never execute): the copy and
//! apply passes fill it through [`Memory::bytes_mut`]. [`Memory::protect`] then turns the
//! text range read + execute and the read-only range read-only, flushes the instruction
//! cache, and moves to [`State::Protected`], after which no `&mut` access exists. The data
//! range stays read + write. At no point is a page writable and executable at once.
//! Dropping the `Memory` unmaps it.
//!
//! This is one of the two modules with `unsafe` (the other is [`crate::call`]).
//!
//! Placement: [`Placement::Low32`] maps with `MAP_32BIT` for objects with absolute 32-bit
//! relocations; [`Placement::Near`] passes a hint so that PC-relative references to host
//! data stay within ±2 GiB. A later code arena (many units sharing pages, issue 5) slots
//! in here: it hands out ranges of one mapping with the same state machine.

use std::io;
use std::ops::Range;
use std::ptr::NonNull;
use std::sync::OnceLock;

/// The state of a unit's memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// Read + write everywhere; nothing executable. Being filled.
    Writable,
    /// Text read + execute, read-only data read-only, data read + write.
    Protected,
}

/// Where to map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placement {
    /// Wherever the kernel likes.
    Anywhere,
    /// In the low 2 GiB (`MAP_32BIT`), for `R_X86_64_32`/`32S`.
    Low32,
    /// Preferably at this address (a hint, not `MAP_FIXED`).
    Near(usize),
}

/// A private anonymous mapping owned by one unit.
pub(crate) struct Memory {
    /// Start of the mapping (null when `map_len` is 0).
    map: *mut u8,
    map_len: usize,
    /// Start of the unit inside the mapping (aligned as asked).
    start: usize,
    len: usize,
    state: State,
}

// SAFETY: `Memory` owns its mapping exclusively (no aliasing pointers are handed out
// except `&mut [u8]` tied to `&mut self`), and mmap'd memory may be used and unmapped
// from any thread.
unsafe impl Send for Memory {}
// SAFETY: `&Memory` only exposes addresses (integers) and the state; no access to the
// bytes goes through a shared reference.
unsafe impl Sync for Memory {}

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

impl Memory {
    /// Maps `len` bytes (rounded up to pages) starting at an address aligned to `align`
    /// (a power of two), read + write, zero-filled.
    pub(crate) fn allocate(len: usize, align: usize, placement: Placement) -> io::Result<Memory> {
        let page = page_size();
        let align = align.max(page);
        if len == 0 {
            return Ok(Memory {
                map: std::ptr::null_mut(),
                map_len: 0,
                start: 0,
                len: 0,
                state: State::Writable,
            });
        }
        let rounded = len.checked_next_multiple_of(page).ok_or_else(too_big)?;
        // Over-map when the alignment exceeds a page, then start at the aligned address.
        let map_len = rounded.checked_add(align - page).ok_or_else(too_big)?;
        // (MAP_POPULATE was measured slower here: it also faults in pages never touched.)
        let mut flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
        let hint = match placement {
            Placement::Anywhere => std::ptr::null_mut(),
            Placement::Low32 => {
                flags |= libc::MAP_32BIT;
                std::ptr::null_mut()
            }
            Placement::Near(addr) => addr as *mut libc::c_void,
        };
        // SAFETY: an anonymous private mapping without MAP_FIXED cannot replace existing
        // mappings; the hint is only a hint. We check the result for MAP_FAILED.
        let map = unsafe {
            libc::mmap(
                hint,
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
        let map = map.cast::<u8>();
        let start = (map as usize).next_multiple_of(align);
        Ok(Memory {
            map,
            map_len,
            start,
            len: rounded,
            state: State::Writable,
        })
    }

    /// Start address of the unit (0 for an empty unit).
    pub(crate) fn base(&self) -> usize {
        self.start
    }

    /// Bytes mapped for the unit, a multiple of the page size.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The current state.
    pub(crate) fn state(&self) -> State {
        self.state
    }

    /// The whole unit for filling; `None` once protected.
    pub(crate) fn bytes_mut(&mut self) -> Option<&mut [u8]> {
        if self.state != State::Writable {
            return None;
        }
        let Some(ptr) = NonNull::new(self.start as *mut u8) else {
            return Some(&mut []);
        };
        // SAFETY: `start..start+len` lies inside our live mapping (allocate rounded and
        // aligned it inside `map..map+map_len`), it is readable and writable in the
        // Writable state, and the returned borrow is tied to `&mut self`, so no other
        // reference to these bytes exists while it lives.
        Some(unsafe { std::slice::from_raw_parts_mut(ptr.as_ptr(), self.len) })
    }

    /// Writable → Protected: `text` becomes read + execute, `read_only` read-only; the
    /// rest stays read + write. Ranges are offsets from [`Memory::base`], page-aligned.
    pub(crate) fn protect(
        &mut self,
        text: Range<usize>,
        read_only: Range<usize>,
    ) -> io::Result<()> {
        if self.state != State::Writable {
            return Ok(());
        }
        for (range, prot) in [
            (read_only, libc::PROT_READ),
            (text.clone(), libc::PROT_READ | libc::PROT_EXEC),
        ] {
            if range.is_empty() {
                continue;
            }
            let end = range
                .end
                .checked_next_multiple_of(page_size())
                .ok_or_else(too_big)?;
            if range.start % page_size() != 0 || end > self.len {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "protect: range outside the unit",
                ));
            }
            let addr = (self.start + range.start) as *mut libc::c_void;
            // SAFETY: the range is page-aligned and inside our own mapping (checked above);
            // changing its protection affects only memory this `Memory` owns. Dropping
            // write before adding execute keeps W^X: the text range goes RW → RX in one call.
            let rc = unsafe { libc::mprotect(addr, end - range.start, prot) };
            if rc != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        flush_icache(self.start, text);
        self.state = State::Protected;
        Ok(())
    }
}

/// Makes freshly written code visible to instruction fetch. x86-64 keeps instruction and
/// data caches coherent (and `mprotect` serializes), so this is a no-op there; aarch64
/// would call `__clear_cache(start, end)` here.
fn flush_icache(_base: usize, _text: Range<usize>) {
    #[cfg(not(target_arch = "x86_64"))]
    compile_error!("jitcache-linker: add the instruction-cache flush for this architecture");
}

fn too_big() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "size overflows the address space",
    )
}

impl Drop for Memory {
    fn drop(&mut self) {
        if self.map_len == 0 {
            return;
        }
        // SAFETY: `map..map+map_len` is the mapping we created in `allocate` and nothing
        // else unmaps it; the unit that owned it has run its destructors and deregistered
        // its unwind info before its `Memory` is dropped (see `unit.rs`).
        unsafe {
            libc::munmap(self.map.cast(), self.map_len);
        }
    }
}
