//! Thread-local storage of loaded units: a block per unit per thread, made on first use,
//! and the functions loaded code calls to reach it (`__tls_get_addr`, the TLS descriptor
//! resolver, `__cxa_thread_atexit`).
//!
//! Loaded units are not in the C library's dynamic thread vector (the DTV), so the linker
//! serves their thread-local accesses itself:
//!
//! - **Modules.** A unit with `.tdata`/`.tbss` sections is a *module*: a slot in the
//!   process-wide [`Registry`] holding its template (the relocated `.tdata` bytes, in the
//!   unit's read-only memory, then zeros for `.tbss`), the block size and alignment, and
//!   every block made for it. A module is named by one word, `generation << 32 | slot`;
//!   unloading frees the slot and bumps its generation, so a word of an unloaded unit never
//!   names a later one (a slot whose generation would wrap is retired, never reused).
//! - **`tls_index`.** Each `R_X86_64_TLSGD` / `TLSLD` relocation points at a
//!   [`TlsIndex`] `{module word, offset}` the linker writes into the unit's read-only data;
//!   the `call __tls_get_addr` that follows goes to [`tls_get_addr_entry`] (through a
//!   stub, or the GOT with `-fno-plt`), which returns the calling thread's address.
//! - **Descriptors.** Each `R_X86_64_GOTPC32_TLSDESC` points at three words
//!   `{resolver, module word, offset}`; `call *(%rax)` runs [`tlsdesc_resolver`], which
//!   keeps every register but `%rax` (and the flags) and returns the address minus the
//!   thread pointer, as the ABI asks.
//! - **Per-thread tables.** A thread finds its blocks in its own table (entries indexed
//!   by slot, each the generation it was made for and the block), whose address is in a
//!   TLS variable of this crate: the common path is a few instructions of assembly in
//!   the two entry points, with no lock and no call. A miss takes the registry lock,
//!   makes the block (template bytes, then zeros) and records it in both places.
//! - **Freeing.** The registry owns every block. When a thread exits, a `pthread` key
//!   destructor (which glibc runs after the thread's C++ `thread_local` destructors)
//!   frees the blocks it made, and its table. When a unit is unloaded, the unloading
//!   thread frees every block of the module, other threads' included, under the lock;
//!   their table entries then carry an old generation, so they are never read nor freed
//!   again. Hence the rule: a thread may hold a block of a unit only while the unit is
//!   loaded, which is the rule for every address of a unit.
//! - **Thread-exit destructors.** `__cxa_thread_atexit` from loaded code (C++
//!   `thread_local` objects with destructors) goes to [`thread_atexit`]: it counts the
//!   destructor against the unit's handle and hands a record to glibc's
//!   `__cxa_thread_atexit_impl`, which runs it at thread exit. A unit is not unloaded
//!   while destructors of it are pending in another thread ([`end_thread_destructors`]
//!   says how many; the unloading thread's own run at unload, as they would at its exit).
//!
//! This is one of the modules with `unsafe`: the entry points loaded code calls (naked
//! functions), the blocks' raw memory, and the calls into glibc.

use std::alloc::{self, Layout};
use std::ffi::{c_int, c_void};
use std::ptr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use crate::symbols::FastMap;

/// `tls_index` of the x86-64 psABI: what `__tls_get_addr` takes. The module is this
/// crate's module word (not glibc's module id); the offset is the variable's offset in
/// its block.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub(crate) struct TlsIndex {
    pub module: u64,
    pub offset: u64,
}

/// A unit's TLS image: `init_len` template bytes at `addr` (in the unit's memory, which
/// outlives the module), then zeros up to `size`; blocks are aligned to `align`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Template {
    pub addr: usize,
    pub init_len: usize,
    pub size: usize,
    pub align: usize,
}

impl Template {
    /// The allocation layout of one block (at least one byte).
    fn layout(&self) -> Option<Layout> {
        Layout::from_size_align(self.size.max(1), self.align.max(1)).ok()
    }
}

/// One block made for a module, owned by the registry.
struct Block {
    ptr: *mut u8,
}

// SAFETY: a block is plain heap memory; it is only freed under the registry lock, by the
// thread that unloads the module or by the thread the block belongs to at its exit.
unsafe impl Send for Block {}

struct Slot {
    generation: u32,
    /// `None` while the slot is free.
    template: Option<(Template, Layout)>,
    blocks: Vec<Block>,
}

/// Every module of the process, and the thread-exit destructors pending per unit handle.
struct Registry {
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// (unit handle, destructors registered and not yet run).
    pending: Vec<(usize, usize)>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    slots: Vec::new(),
    free: Vec::new(),
    pending: Vec::new(),
});

fn registry() -> MutexGuard<'static, Registry> {
    // Nothing panics while holding the lock; a poisoned lock still holds consistent data.
    REGISTRY.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Registry {
    fn add_pending(&mut self, dso: usize, delta: isize) {
        match self.pending.iter().position(|&(d, _)| d == dso) {
            Some(i) => {
                if let Some(entry) = self.pending.get_mut(i) {
                    entry.1 = entry.1.saturating_add_signed(delta);
                    if entry.1 == 0 {
                        self.pending.swap_remove(i);
                    }
                }
            }
            None if delta > 0 => self.pending.push((dso, delta.unsigned_abs())),
            None => {}
        }
    }

    fn pending(&self, dso: usize) -> usize {
        self.pending
            .iter()
            .find(|&&(d, _)| d == dso)
            .map_or(0, |&(_, n)| n)
    }
}

// ---------------------------------------------------------------------------------------
// Modules.

/// A registered module; dropping it frees every block made for it, in every thread.
#[derive(Debug)]
pub(crate) struct Module {
    slot: u32,
    generation: u32,
}

impl Module {
    /// Registers a unit's TLS image. `None` if the block layout is impossible (an
    /// alignment that is not a power of two) or the slots are exhausted.
    pub(crate) fn register(template: Template) -> Option<Module> {
        let layout = template.layout()?;
        let mut reg = registry();
        let slot = match reg.free.pop() {
            Some(slot) => slot,
            None => {
                let slot = u32::try_from(reg.slots.len()).ok()?;
                reg.slots.push(Slot {
                    generation: 1,
                    template: None,
                    blocks: Vec::new(),
                });
                slot
            }
        };
        let entry = reg.slots.get_mut(slot as usize)?;
        entry.template = Some((template, layout));
        Some(Module {
            slot,
            generation: entry.generation,
        })
    }

    /// The module word that goes into a [`TlsIndex`].
    pub(crate) fn word(&self) -> u64 {
        u64::from(self.generation) << 32 | u64::from(self.slot)
    }

    /// How many threads have a block of this module.
    pub(crate) fn blocks(&self) -> usize {
        registry()
            .slots
            .get(self.slot as usize)
            .filter(|s| s.generation == self.generation)
            .map_or(0, |s| s.blocks.len())
    }
}

impl Drop for Module {
    fn drop(&mut self) {
        let mut reg = registry();
        let Some(slot) = reg.slots.get_mut(self.slot as usize) else {
            return;
        };
        if slot.generation != self.generation {
            return;
        }
        if let Some((_, layout)) = slot.template.take() {
            for block in slot.blocks.drain(..) {
                // SAFETY: the block was allocated with this layout by `make_block` and is
                // owned by the registry; the unit is being unloaded, so no thread may use
                // it any more (module docs), and the owning thread's table entry now
                // carries an old generation, so it is never freed again.
                unsafe { alloc::dealloc(block.ptr, layout) };
            }
        }
        // A generation that would wrap retires the slot.
        if let Some(next) = slot.generation.checked_add(1) {
            slot.generation = next;
            reg.free.push(self.slot);
        }
    }
}

/// A thread-local global of a unit: its offset in the unit's block.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TlsSymbol {
    pub offset: u64,
    /// Default or protected visibility: visible to later units.
    pub exported: bool,
}

/// A loaded unit's thread-local storage: its module and its thread-local globals.
#[derive(Debug)]
pub(crate) struct UnitTls {
    module: Module,
    symbols: FastMap<Arc<str>, TlsSymbol>,
}

impl UnitTls {
    pub(crate) fn new(module: Module, symbols: FastMap<Arc<str>, TlsSymbol>) -> UnitTls {
        UnitTls { module, symbols }
    }

    /// The module word and offset of thread-local global `name`; hidden ones only when
    /// `hidden` (a COMDAT copy this unit kept for later units).
    pub(crate) fn symbol(&self, name: &str, hidden: bool) -> Option<(u64, u64)> {
        let s = self.symbols.get(name).filter(|s| hidden || s.exported)?;
        Some((self.module.word(), s.offset))
    }

    /// How many threads have a block of the unit.
    pub(crate) fn blocks(&self) -> usize {
        self.module.blocks()
    }
}

// ---------------------------------------------------------------------------------------
// Per-thread tables.

/// A thread's block of the module in one slot: the generation it was made for (0 for
/// none) and its address. Read by the descriptor resolver's fast path (`repr(C)`).
#[repr(C)]
#[derive(Clone, Copy)]
struct Entry {
    generation: u64,
    block: *mut u8,
}

/// A thread's blocks by slot, and its thread-exit destructor records. The first two
/// fields are read by the descriptor resolver's fast path: `len` entries at `entries` (a
/// boxed slice of the table's own).
#[repr(C)]
struct Table {
    entries: *mut Entry,
    len: usize,
    destructors: Vec<*mut Record>,
}

impl Table {
    fn entries(&self) -> &[Entry] {
        if self.entries.is_null() {
            return &[];
        }
        // SAFETY: `entries`/`len` are a boxed slice owned by the table (`grow`).
        unsafe { std::slice::from_raw_parts(self.entries, self.len) }
    }

    /// Makes room for slot `slot`.
    fn grow(&mut self, slot: usize) -> &mut [Entry] {
        if slot >= self.len {
            let empty = Entry {
                generation: 0,
                block: ptr::null_mut(),
            };
            let mut bigger = vec![empty; (slot + 1).max(2 * self.len)];
            bigger[..self.len].copy_from_slice(self.entries());
            self.free_entries();
            self.len = bigger.len();
            self.entries = Box::into_raw(bigger.into_boxed_slice()).cast::<Entry>();
        }
        // SAFETY: as in `entries`; `&mut self` makes this the only reference.
        unsafe { std::slice::from_raw_parts_mut(self.entries, self.len) }
    }

    fn free_entries(&mut self) {
        if !self.entries.is_null() {
            // SAFETY: `entries`/`len` came from `Box::into_raw` of a boxed slice in `grow`.
            drop(unsafe { Box::from_raw(ptr::slice_from_raw_parts_mut(self.entries, self.len)) });
            self.entries = ptr::null_mut();
            self.len = 0;
        }
    }
}

impl Drop for Table {
    fn drop(&mut self) {
        self.free_entries();
    }
}

// This thread's table pointer (null until first needed, and again after the thread-exit
// destructor freed it) is a TLS variable of this crate's own, defined here rather than
// with `thread_local!` so that the descriptor resolver's fast path can reach it without
// calling Rust code: with a TLS descriptor, which the static linker relaxes to a
// constant offset in an executable, and which glibc resolves keeping every register in
// a shared object.
core::arch::global_asm!(
    ".section .tbss,\"awT\",@nobits",
    ".p2align 3",
    ".globl jitcache_linker_tls_table",
    ".hidden jitcache_linker_tls_table",
    ".type jitcache_linker_tls_table, @tls_object",
    ".size jitcache_linker_tls_table, 8",
    "jitcache_linker_tls_table:",
    ".zero 8",
    ".text",
    options(att_syntax),
);

/// The address of this thread's table pointer (clobbers only `%rax`).
#[unsafe(naked)]
extern "C" fn table_slot() -> *mut *mut Table {
    core::arch::naked_asm!(
        "lea jitcache_linker_tls_table@TLSDESC(%rip), %rax",
        "call *jitcache_linker_tls_table@TLSCALL(%rax)",
        "add %fs:0, %rax",
        "ret",
        options(att_syntax),
    )
}

/// This thread's table, or null.
fn current_table() -> *mut Table {
    // SAFETY: `table_slot` returns this thread's 8-byte TLS variable, aligned.
    unsafe { table_slot().read() }
}

fn set_current_table(table: *mut Table) {
    // SAFETY: as in `current_table`.
    unsafe { table_slot().write(table) }
}

/// The `pthread` key whose destructor frees a thread's table at exit.
fn exit_key() -> Option<libc::pthread_key_t> {
    static KEY: OnceLock<Option<libc::pthread_key_t>> = OnceLock::new();
    *KEY.get_or_init(|| {
        let mut key: libc::pthread_key_t = 0;
        // SAFETY: `key` is a valid out-pointer and `thread_exit` a destructor with the
        // signature pthread expects; the key is never deleted.
        let rc = unsafe { libc::pthread_key_create(&mut key, Some(thread_exit)) };
        (rc == 0).then_some(key)
    })
}

/// This thread's table, made (and registered for freeing at exit) on first use.
fn table() -> *mut Table {
    let table = current_table();
    if !table.is_null() {
        return table;
    }
    let table = Box::into_raw(Box::new(Table {
        entries: ptr::null_mut(),
        len: 0,
        destructors: Vec::new(),
    }));
    if let Some(key) = exit_key() {
        // SAFETY: the key is live; the value is this thread's table, freed by
        // `thread_exit` (glibc calls it again if a later destructor makes a new table).
        unsafe { libc::pthread_setspecific(key, table.cast()) };
    }
    set_current_table(table);
    table
}

/// The `pthread` key destructor: frees the blocks this thread made for modules that are
/// still loaded (those of unloaded modules were freed at unload), then the table.
unsafe extern "C" fn thread_exit(table: *mut c_void) {
    let table = table.cast::<Table>();
    if current_table() == table {
        set_current_table(ptr::null_mut());
    }
    if table.is_null() {
        return;
    }
    // SAFETY: `table` came from `Box::into_raw` in `table()` and is freed only here (the
    // key's value is reset by glibc before this call, and the thread's pointer no longer
    // points to it).
    let table = unsafe { Box::from_raw(table) };
    let mut reg = registry();
    for (slot, entry) in table.entries().iter().enumerate() {
        if entry.block.is_null() {
            continue;
        }
        let Some(s) = reg.slots.get_mut(slot) else {
            continue;
        };
        if u64::from(s.generation) != entry.generation {
            continue;
        }
        let Some((_, layout)) = s.template else {
            continue;
        };
        if let Some(i) = s.blocks.iter().position(|b| b.ptr == entry.block) {
            s.blocks.swap_remove(i);
            // SAFETY: the block belongs to this thread and to a loaded module (same
            // generation); it was allocated with this layout and is now out of the
            // registry, so nothing frees it again.
            unsafe { alloc::dealloc(entry.block, layout) };
        }
    }
}

// ---------------------------------------------------------------------------------------
// `__tls_get_addr`.

/// The calling thread's address of `index` (its block is made on first use); null for
/// the index of a unit that is no longer loaded.
extern "C" fn tls_get_addr(index: *const TlsIndex) -> *mut u8 {
    // SAFETY: loaded code passes the address of a `tls_index` the linker wrote into the
    // unit's read-only data (an R_X86_64_TLSGD/TLSLD target, or a descriptor's tail).
    let TlsIndex { module, offset } = unsafe { index.read() };
    let slot = (module & 0xffff_ffff) as usize;
    let generation = module >> 32;
    let table = current_table();
    if !table.is_null() {
        // SAFETY: this thread's table, alive until `thread_exit` resets the pointer;
        // nothing else borrows it during this call.
        let entries = unsafe { (*table).entries() };
        if let Some(e) = entries.get(slot)
            && e.generation == generation
            && !e.block.is_null()
        {
            return e.block.wrapping_add(offset as usize);
        }
    }
    make_block(slot, generation as u32).map_or(ptr::null_mut(), |b| b.wrapping_add(offset as usize))
}

/// Makes this thread's block of a module: template bytes, then zeros.
#[cold]
fn make_block(slot: usize, generation: u32) -> Option<*mut u8> {
    let table = table();
    let block = {
        let mut reg = registry();
        let s = reg.slots.get_mut(slot)?;
        if s.generation != generation {
            return None;
        }
        let (template, layout) = s.template?;
        // SAFETY: `layout` has a non-zero size (see `Template::layout`).
        let block = unsafe { alloc::alloc_zeroed(layout) };
        if block.is_null() {
            return None;
        }
        // SAFETY: the template is `init_len` readable bytes of the unit's read-only
        // memory (the unit is loaded: the generation matches), and `init_len <= size`.
        unsafe { ptr::copy_nonoverlapping(template.addr as *const u8, block, template.init_len) };
        s.blocks.push(Block { ptr: block });
        block
    };
    // SAFETY: this thread's table; no other reference to it is live.
    let entries = unsafe { (*table).grow(slot) };
    if let Some(e) = entries.get_mut(slot) {
        *e = Entry {
            generation: u64::from(generation),
            block,
        };
    }
    Some(block)
}

/// `__tls_get_addr` for loaded code (`%rdi` = a [`TlsIndex`]). The fast path finds the
/// thread's block in its table without calling Rust; otherwise it realigns the stack
/// (code from older compilers calls it with the stack 8 bytes off) and calls
/// [`tls_get_addr`]. It only changes registers the C ABI lets a call change.
#[unsafe(naked)]
pub(crate) extern "C" fn tls_get_addr_entry() {
    core::arch::naked_asm!(
        "lea rax, [rip + jitcache_linker_tls_table@TLSDESC]",
        "call [rax + jitcache_linker_tls_table@TLSCALL]",
        "mov rsi, qword ptr fs:[rax]",
        "test rsi, rsi",
        "jz 2f",
        "mov eax, dword ptr [rdi]",
        "cmp rax, qword ptr [rsi + 8]",
        "jae 2f",
        "shl rax, 4",
        "add rax, qword ptr [rsi]",
        "mov edx, dword ptr [rdi + 4]",
        "cmp rdx, qword ptr [rax]",
        "jne 2f",
        "mov rax, qword ptr [rax + 8]",
        "test rax, rax",
        "jz 2f",
        "add rax, qword ptr [rdi + 8]",
        "ret",
        "2:",
        "push rbp",
        "mov rbp, rsp",
        "and rsp, -16",
        "call {get}",
        "mov rsp, rbp",
        "pop rbp",
        "ret",
        get = sym tls_get_addr,
    )
}

// ---------------------------------------------------------------------------------------
// TLS descriptors (`-mtls-dialect=gnu2`).

/// The extended register state the resolver saves: 0 means `fxsave` (no XSAVE), else
/// the XSAVE area size in bytes; and the XSAVE component mask (x87, SSE, AVX, AVX-512).
static XSAVE_SIZE: AtomicU64 = AtomicU64::new(0);
static XSAVE_MASK: AtomicU64 = AtomicU64::new(0);

/// x87, SSE, AVX, AVX-512 opmask, ZMM upper halves, ZMM16-31 (not MPX, AMX or
/// supervisor state, which compiled code does not use implicitly).
const SAVED_COMPONENTS: u64 = 0b1110_0111;

/// Measures the XSAVE area the resolver needs, once; called before the first
/// descriptor is written.
pub(crate) fn prepare_descriptors() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let (size, mask) = xsave_area();
        XSAVE_MASK.store(mask, Ordering::Relaxed);
        XSAVE_SIZE.store(size, Ordering::Release);
    });
}

/// (size, mask) of the XSAVE area for [`SAVED_COMPONENTS`] enabled in XCR0, or (0, 0)
/// when the OS has not enabled XSAVE.
fn xsave_area() -> (u64, u64) {
    use core::arch::x86_64::__cpuid_count;
    let leaf1 = __cpuid_count(1, 0);
    let osxsave = leaf1.ecx & (1 << 27) != 0;
    if !osxsave {
        return (0, 0);
    }
    let (lo, hi): (u32, u32);
    // SAFETY: OSXSAVE is set, so XGETBV with ECX = 0 (XCR0) is allowed in user mode.
    unsafe {
        core::arch::asm!("xgetbv", in("ecx") 0, out("eax") lo, out("edx") hi, options(nomem, nostack));
    }
    let xcr0 = u64::from(hi) << 32 | u64::from(lo);
    let mask = xcr0 & SAVED_COMPONENTS;
    // The legacy area and the header, then each component at its standard offset.
    let mut size = 576_u64;
    for component in 2..8_u32 {
        if mask & (1 << component) != 0 {
            let leaf = __cpuid_count(0xd, component);
            size = size.max(u64::from(leaf.ebx) + u64::from(leaf.eax));
        }
    }
    (size.next_multiple_of(64), mask)
}

/// Size of a descriptor: the resolver, then a [`TlsIndex`].
pub(crate) const DESCRIPTOR_SIZE: u64 = 24;

/// The resolver of every descriptor the linker writes: `%rax` holds the descriptor's
/// address, `8(%rax)` its [`TlsIndex`]. It returns the variable's address minus the
/// thread pointer (`%fs:0`) and keeps every other register. The fast path (the block is
/// in the thread's table) uses two registers it saves; the slow path saves the
/// caller-saved general registers and the x87/SSE/AVX/AVX-512 state (`xsave`, or
/// `fxsave`) around a call of [`tls_get_addr`], which makes the block.
#[unsafe(naked)]
pub(crate) extern "C" fn tlsdesc_resolver() {
    core::arch::naked_asm!(
        // Fast path: this thread's block is in its table. `rdi` = the descriptor, `rsi`
        // the table, then the entry; only `rax` and the flags change.
        "push rdi",
        "push rsi",
        "mov rdi, rax",
        "lea rax, [rip + jitcache_linker_tls_table@TLSDESC]",
        "call [rax + jitcache_linker_tls_table@TLSCALL]",
        "mov rsi, qword ptr fs:[rax]",
        "test rsi, rsi",
        "jz 4f",
        "mov eax, dword ptr [rdi + 8]",
        "cmp rax, qword ptr [rsi + 8]",
        "jae 4f",
        "shl rax, 4",
        "add rax, qword ptr [rsi]",
        "mov esi, dword ptr [rdi + 12]",
        "cmp rsi, qword ptr [rax]",
        "jne 4f",
        "mov rax, qword ptr [rax + 8]",
        "test rax, rax",
        "jz 4f",
        "add rax, qword ptr [rdi + 16]",
        "sub rax, qword ptr fs:[0]",
        "pop rsi",
        "pop rdi",
        "ret",
        // Slow path: make the block in Rust, with every register saved.
        "4:",
        "mov rax, rdi",
        "pop rsi",
        "pop rdi",
        "push rbp",
        "mov rbp, rsp",
        "push rdi",
        "push rsi",
        "push rdx",
        "push rcx",
        "push r8",
        "push r9",
        "push r10",
        "push r11",
        "push rbx",
        "lea rdi, [rax + 8]",
        "mov rbx, qword ptr [rip + {size}]",
        "test rbx, rbx",
        "jz 2f",
        // XSAVE: an area of `size` bytes, 64-byte aligned, its header zeroed.
        "sub rsp, rbx",
        "and rsp, -64",
        "xor eax, eax",
        "mov qword ptr [rsp + 512], rax",
        "mov qword ptr [rsp + 520], rax",
        "mov qword ptr [rsp + 528], rax",
        "mov qword ptr [rsp + 536], rax",
        "mov qword ptr [rsp + 544], rax",
        "mov qword ptr [rsp + 552], rax",
        "mov qword ptr [rsp + 560], rax",
        "mov qword ptr [rsp + 568], rax",
        "mov rax, qword ptr [rip + {mask}]",
        "mov rdx, rax",
        "shr rdx, 32",
        "xsave64 [rsp]",
        "call {get}",
        "mov rbx, rax",
        "mov rax, qword ptr [rip + {mask}]",
        "mov rdx, rax",
        "shr rdx, 32",
        "xrstor64 [rsp]",
        "jmp 3f",
        // FXSAVE: 512 bytes, 16-byte aligned.
        "2:",
        "sub rsp, 512",
        "and rsp, -64",
        "fxsave64 [rsp]",
        "call {get}",
        "mov rbx, rax",
        "fxrstor64 [rsp]",
        "3:",
        "mov rax, rbx",
        "sub rax, qword ptr fs:[0]",
        "lea rsp, [rbp - 72]",
        "pop rbx",
        "pop r11",
        "pop r10",
        "pop r9",
        "pop r8",
        "pop rcx",
        "pop rdx",
        "pop rsi",
        "pop rdi",
        "pop rbp",
        "ret",
        size = sym XSAVE_SIZE,
        mask = sym XSAVE_MASK,
        get = sym tls_get_addr,
    )
}

// ---------------------------------------------------------------------------------------
// Thread-exit destructors (`__cxa_thread_atexit`).

/// A destructor registered by loaded code, run at thread exit (or at unload, on the
/// unloading thread).
struct Record {
    func: unsafe extern "C" fn(*mut c_void),
    obj: *mut c_void,
    dso: usize,
    done: bool,
}

unsafe extern "C" {
    /// glibc: runs `func(obj)` when the calling thread exits, attributed to the object
    /// that contains `dso_symbol`.
    fn __cxa_thread_atexit_impl(
        func: unsafe extern "C" fn(*mut c_void),
        obj: *mut c_void,
        dso_symbol: *mut c_void,
    ) -> c_int;
}

/// `__cxa_thread_atexit(func, obj, dso)` for loaded code: counts the destructor against
/// the unit whose handle is `dso` and has glibc run it at thread exit, through
/// [`run_record`]. (glibc's own accounting would attribute loaded code to the main
/// program, and nothing would keep the unit mapped until the destructor ran.)
pub(crate) unsafe extern "C" fn thread_atexit(
    func: unsafe extern "C" fn(*mut c_void),
    obj: *mut c_void,
    dso: *mut c_void,
) -> c_int {
    let dso = dso as usize;
    let record = Box::into_raw(Box::new(Record {
        func,
        obj,
        dso,
        done: false,
    }));
    let table = table();
    // SAFETY: this thread's table; no other reference to it is live.
    unsafe { (*table).destructors.push(record) };
    registry().add_pending(dso, 1);
    // SAFETY: `run_record` takes the record it is given; the DSO symbol is a function of
    // this crate, so glibc keeps this crate's object loaded until the record ran.
    let rc = unsafe {
        __cxa_thread_atexit_impl(run_record, record.cast(), thread_atexit as *mut c_void)
    };
    if rc != 0 {
        // SAFETY: as above; the record was not handed over, so it is freed here.
        unsafe {
            (*table).destructors.retain(|&r| r != record);
            drop(Box::from_raw(record));
        }
        registry().add_pending(dso, -1);
    }
    rc
}

/// Runs a record at thread exit (unless it already ran at unload) and frees it.
unsafe extern "C" fn run_record(record: *mut c_void) {
    let record = record.cast::<Record>();
    // SAFETY: `record` came from `Box::into_raw` in `thread_atexit` and glibc runs each
    // registration once, so this is its only owner now.
    let Record {
        func,
        obj,
        dso,
        done,
    } = *unsafe { Box::from_raw(record) };
    let table = current_table();
    if !table.is_null() {
        // SAFETY: this thread's table (its thread-exit destructor runs after these).
        unsafe { (*table).destructors.retain(|&r| r != record) };
    }
    if !done {
        // SAFETY: a destructor of a unit that is still loaded: a unit with pending
        // destructors is not unloaded (`end_thread_destructors`).
        unsafe { func(obj) };
        registry().add_pending(dso, -1);
    }
}

/// Before a unit with handle `dso` is unloaded: runs the calling thread's pending
/// thread-exit destructors of the unit, newest first (as the thread's exit would), unless
/// other threads still have some, whose number is the error.
pub(crate) fn end_thread_destructors(dso: usize) -> Result<(), usize> {
    loop {
        let mine = own_destructors(dso);
        let pending = registry().pending(dso);
        if pending > mine.len() {
            return Err(pending - mine.len());
        }
        let Some(&newest) = mine.last() else {
            return Ok(());
        };
        // SAFETY: a record of this thread that has not run: glibc frees it only at the
        // thread's exit (`run_record`), so it is live; marking it done first means it
        // runs once even if the destructor unloads or registers more.
        let (func, obj) = unsafe {
            (*newest).done = true;
            ((*newest).func, (*newest).obj)
        };
        // SAFETY: a destructor of the unit, which is still loaded.
        unsafe { func(obj) };
        registry().add_pending(dso, -1);
    }
}

/// The calling thread's records of `dso` that have not run, oldest first.
fn own_destructors(dso: usize) -> Vec<*mut Record> {
    let table = current_table();
    if table.is_null() {
        return Vec::new();
    }
    // SAFETY: this thread's table; its records are live until `run_record` frees them at
    // thread exit, and then they are no longer in the list.
    unsafe {
        (*table)
            .destructors
            .iter()
            .copied()
            .filter(|&r| !(*r).done && (*r).dso == dso)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(bytes: &'static [u8], size: usize) -> Template {
        Template {
            addr: bytes.as_ptr() as usize,
            init_len: bytes.len(),
            size,
            align: 16,
        }
    }

    fn address(module: &Module, offset: u64) -> *mut u8 {
        let index = TlsIndex {
            module: module.word(),
            offset,
        };
        tls_get_addr(&index)
    }

    #[test]
    fn blocks_are_per_thread_initialised_and_freed_at_thread_exit() {
        static INIT: [u8; 4] = [1, 2, 3, 4];
        let module = Module::register(template(&INIT, 64)).expect("register");
        let here = address(&module, 0);
        // SAFETY: a block of 64 bytes of a live module.
        let bytes = unsafe { std::slice::from_raw_parts(here, 64) };
        assert_eq!(&bytes[..4], &INIT);
        assert!(bytes[4..].iter().all(|&b| b == 0), "the .tbss part is zero");
        assert_eq!(
            address(&module, 8),
            here.wrapping_add(8),
            "same block again"
        );
        assert_eq!(here as usize % 16, 0, "aligned");
        let word = module.word();
        let other = std::thread::spawn(move || {
            let index = TlsIndex {
                module: word,
                offset: 0,
            };
            tls_get_addr(&index) as usize
        })
        .join()
        .expect("thread");
        assert_ne!(other, here as usize, "each thread has its own block");
        assert_eq!(
            module.blocks(),
            1,
            "the other thread's block went at its exit"
        );
        let slot = module.slot as usize;
        drop(module);
        let reg = registry();
        let freed = reg.slots.get(slot).expect("slot");
        assert!(
            freed.template.is_none() && freed.blocks.is_empty(),
            "unload frees every block"
        );
    }

    #[test]
    fn slots_are_reused_with_a_new_generation() {
        static INIT: [u8; 1] = [7];
        let a = Module::register(template(&INIT, 8)).expect("register");
        let (slot, generation) = (a.slot, a.generation);
        assert!(!address(&a, 0).is_null());
        drop(a);
        let b = Module::register(template(&INIT, 8)).expect("register");
        if b.slot == slot {
            assert_ne!(b.generation, generation);
        }
        assert_eq!(b.blocks(), 0, "the old module's blocks are gone");
        assert!(!address(&b, 0).is_null());
        assert_eq!(b.blocks(), 1);
    }
}
