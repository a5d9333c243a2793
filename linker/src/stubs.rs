//! Indirect stubs: the indirection through which units loaded with [`crate::Binding::Stubs`]
//! export their functions, so that a later definition of a name reaches every earlier
//! caller.
//!
//! A *block* is one mapping of two pages: a code page of stubs, then a data page of
//! pointer slots, stub `i` jumping through slot `i`:
//!
//! ```text
//! code page (r-x, written once when the block is made, never writable again)
//!   stub i at 8*i:   ff 25 fa 0f 00 00    jmp *4090(%rip)   -> slot i, one page further
//!                    0f 0b                ud2               (the trap of an unbound slot)
//! data page (rw-)
//!   slot i at 4096 + 8*i: the address stub i jumps to
//! ```
//!
//! The displacement is the same for every stub (the slot is always one page after its
//! stub), so a block's code page is written once, with every stub, before it is made
//! executable. Rebinding is one 8-byte aligned store (`AtomicUsize`, `Release`): a thread
//! running the stub loads either the old or the new target, never a torn one. A slot that
//! is bound to nothing points at its own stub's `ud2`, so a call through it traps
//! (`SIGILL`) instead of running memory that held code.
//!
//! Stubs are never freed while the linker lives: a name keeps its stub (and every pointer
//! to it stays a valid trap or a valid call), so the memory is bounded by the number of
//! distinct names, not of definitions.
//!
//! One of the modules with `unsafe` (the memory path, with `memory.rs` and `arena.rs`).

use std::io;
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::symbols::FastMap;

/// Bytes of one stub.
const STUB_BYTES: usize = 8;
/// Bytes of a block's code page and of its data page.
const PAGE: usize = 4096;
/// Stubs per block.
const PER_BLOCK: usize = PAGE / STUB_BYTES;
/// Offset of `ud2` in a stub: where an unbound slot points.
const TRAP_OFFSET: usize = 6;
/// One stub: `jmp *(PAGE - 6)(%rip)` (the slot one page further), then `ud2`.
const STUB: [u8; STUB_BYTES] = {
    let disp = (PAGE - TRAP_OFFSET) as u32;
    let d = disp.to_le_bytes();
    [0xff, 0x25, d[0], d[1], d[2], d[3], 0x0f, 0x0b]
};

/// One mapping of a code page of stubs and a data page of slots.
struct Block {
    base: NonNull<u8>,
}

// SAFETY: the block owns its mapping; the code page is never written after `new`, and the
// slots are only accessed as `AtomicUsize`, which any thread may do.
unsafe impl Send for Block {}
// SAFETY: as above: shared access only reads the code page or goes through atomics.
unsafe impl Sync for Block {}

impl Block {
    /// Maps a block, writes every stub into its code page, then makes that page
    /// read + execute (it was never executable while writable). Every slot starts at its
    /// stub's trap.
    fn new() -> io::Result<Block> {
        // SAFETY: an anonymous private mapping without MAP_FIXED replaces nothing; the
        // result is checked for MAP_FAILED.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                2 * PAGE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = NonNull::new(map.cast::<u8>())
            .ok_or_else(|| io::Error::other("mmap returned address 0"))?;
        let block = Block { base };
        {
            // SAFETY: both pages are ours, mapped read + write just above, and nothing
            // else refers to them yet.
            let bytes = unsafe { std::slice::from_raw_parts_mut(base.as_ptr(), 2 * PAGE) };
            let (code, slots) = bytes.split_at_mut(PAGE);
            for (i, stub) in code.chunks_exact_mut(STUB_BYTES).enumerate() {
                stub.copy_from_slice(&STUB);
                let trap = base.as_ptr() as usize + i * STUB_BYTES + TRAP_OFFSET;
                if let Some(slot) = slots.get_mut(i * 8..i * 8 + 8) {
                    slot.copy_from_slice(&trap.to_ne_bytes());
                }
            }
        }
        // SAFETY: the code page is the first page of our own mapping; write is dropped
        // as execute is added (RW → RX in one call).
        let rc = unsafe {
            libc::mprotect(
                base.as_ptr().cast(),
                PAGE,
                libc::PROT_READ | libc::PROT_EXEC,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(block)
    }

    fn stub(&self, i: usize) -> usize {
        self.base.as_ptr() as usize + i * STUB_BYTES
    }

    fn slot(&self, i: usize) -> &AtomicUsize {
        debug_assert!(i < PER_BLOCK);
        // SAFETY: slot `i` is an 8-byte aligned word of the block's data page (page
        // aligned, `i < PER_BLOCK`), mapped read + write for the life of `self`; it is
        // only ever accessed as an `AtomicUsize` (here and by the stub's load).
        unsafe { &*(self.base.as_ptr().add(PAGE + i * 8).cast::<AtomicUsize>()) }
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, unmapped once; the table leaks its blocks
        // instead when code that may still call them outlives the linker (`StubTable::leak`).
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), 2 * PAGE);
        }
    }
}

/// One name's stub: where it is and which unit its slot is bound to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stub {
    index: usize,
    /// The unit whose code the slot points to; `None` when it points at the trap.
    pub bound: Option<crate::UnitId>,
}

/// The stubs of one linker, one per exported function name of units loaded with stubs.
#[derive(Default)]
pub(crate) struct StubTable {
    blocks: Vec<Block>,
    names: FastMap<Arc<str>, Stub>,
}

impl StubTable {
    /// The stub of `name`, made (trapping) if the name has none yet.
    pub(crate) fn get_or_make(&mut self, name: &Arc<str>) -> io::Result<Stub> {
        if let Some(stub) = self.names.get(name) {
            return Ok(*stub);
        }
        let index = self.names.len();
        if index / PER_BLOCK >= self.blocks.len() {
            self.blocks.push(Block::new()?);
        }
        let stub = Stub { index, bound: None };
        self.names.insert(name.clone(), stub);
        Ok(stub)
    }

    /// The stub of `name`, if it has one.
    pub(crate) fn get(&self, name: &str) -> Option<Stub> {
        self.names.get(name).copied()
    }

    /// The address of a stub: what callers call.
    pub(crate) fn address(&self, stub: Stub) -> usize {
        self.block(stub)
            .map_or(0, |b| b.stub(stub.index % PER_BLOCK))
    }

    /// Where a stub jumps now.
    #[cfg(test)]
    pub(crate) fn target(&self, stub: Stub) -> usize {
        self.block(stub).map_or(0, |b| {
            b.slot(stub.index % PER_BLOCK).load(Ordering::Acquire)
        })
    }

    /// Points the stub of `name` at `target` in `unit` (one atomic store: a thread
    /// calling it runs the old code or the new, both mapped).
    pub(crate) fn bind(&mut self, name: &str, unit: crate::UnitId, target: usize) {
        self.store(name, Some(unit), |_| target);
    }

    /// Points the stub of `name` at its trap.
    pub(crate) fn unbind(&mut self, name: &str) {
        self.store(name, None, |stub_addr| stub_addr + TRAP_OFFSET);
    }

    /// Names whose slot is bound to `unit`.
    pub(crate) fn bound_to(&self, unit: crate::UnitId) -> Vec<Arc<str>> {
        self.names
            .iter()
            .filter(|(_, s)| s.bound == Some(unit))
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Bytes mapped for stubs and slots.
    pub(crate) fn mapped_bytes(&self) -> usize {
        self.blocks.len() * 2 * PAGE
    }

    /// Keeps every block mapped for the rest of the process (code that outlives the
    /// linker may still call through them).
    pub(crate) fn leak(&mut self) {
        for block in self.blocks.drain(..) {
            std::mem::forget(block);
        }
    }

    fn store(&mut self, name: &str, unit: Option<crate::UnitId>, target: impl Fn(usize) -> usize) {
        let Some(stub) = self.names.get_mut(name) else {
            return;
        };
        stub.bound = unit;
        let stub = *stub;
        if let Some(block) = self.blocks.get(stub.index / PER_BLOCK) {
            let i = stub.index % PER_BLOCK;
            block
                .slot(i)
                .store(target(block.stub(i)), Ordering::Release);
        }
    }

    fn block(&self, stub: Stub) -> Option<&Block> {
        self.blocks.get(stub.index / PER_BLOCK)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::UnitId;

    #[test]
    fn stub_bytes_jump_one_page_ahead_then_trap() {
        // jmp *disp32(%rip): disp is relative to the end of the 6-byte instruction.
        assert_eq!(&STUB[..2], &[0xff, 0x25]);
        let disp = u32::from_le_bytes([STUB[2], STUB[3], STUB[4], STUB[5]]) as usize;
        assert_eq!(disp + TRAP_OFFSET, PAGE);
        assert_eq!(&STUB[6..], &[0x0f, 0x0b]);
    }

    #[test]
    fn slots_start_trapping_bind_and_unbind() {
        let mut table = StubTable::default();
        let f: Arc<str> = "f".into();
        let stub = table.get_or_make(&f).expect("block");
        let at = table.address(stub);
        assert_eq!(table.target(stub), at + TRAP_OFFSET);
        table.bind("f", UnitId(3), 0x1234);
        assert_eq!(table.target(stub), 0x1234);
        assert_eq!(table.bound_to(UnitId(3)), vec![f.clone()]);
        table.unbind("f");
        assert_eq!(table.target(stub), at + TRAP_OFFSET);
        assert!(table.bound_to(UnitId(3)).is_empty());
        assert_eq!(table.get_or_make(&f).expect("same").index, stub.index);
    }

    #[test]
    fn a_block_holds_512_stubs_then_another_is_made() {
        let mut table = StubTable::default();
        for i in 0..=PER_BLOCK {
            table
                .get_or_make(&Arc::from(format!("f{i}")))
                .expect("stub");
        }
        assert_eq!(table.mapped_bytes(), 4 * PAGE);
        let last = table.get(&format!("f{PER_BLOCK}")).expect("made");
        assert_eq!(
            table.address(last) % PAGE,
            0,
            "first stub of the second block"
        );
    }
}
