//! Registering loaded units' `.eh_frame` with the unwinders of the process, so that a
//! backtrace or a C++ exception can pass through loaded code.
//!
//! Unwinders disagree on what `__register_frame` takes:
//!
//! - libgcc's (`libgcc_s.so.1`, or a static copy from `libgcc_eh.a`): the start of a whole
//!   `.eh_frame` section, read record by record up to a zero terminator
//!   ([`UnwinderKind::Libgcc`]);
//! - LLVM's libunwind (`libunwind.so.1`, `libunwind.a`): one FDE per call; given a section
//!   start (a CIE) it silently registers nothing ([`UnwinderKind::Llvm`]).
//!
//! And a process can hold more than one registry: a host linked with `-static-libgcc`
//! (or with LLVM's `libunwind.a`) has a copy of its own next to the `libgcc_s.so.1` that
//! `libstdc++.so.6` loads, and a throw uses whichever copy the code that raises or resumes
//! it was bound to. So the linker registers each unit with every unwinder it knows:
//!
//! 1. the `__register_frame` this crate was bound to when it was linked (the global
//!    scope's first definition for a shared library, a static copy in the executable
//!    when this crate is linked statically into it);
//! 2. `dlsym(RTLD_DEFAULT, "__register_frame")`, if it is another one (what shared
//!    libraries such as `libstdc++.so.6` bind to);
//! 3. those the host added with [`add_unwinder`] (the C API's `jitcache_add_unwinder`):
//!    the only way to reach a copy that is linked into the executable with hidden
//!    visibility, as `-static-libgcc` does, which no `dlsym` can find.
//!
//! The kind of 1 and 2 is found by behaviour, not by name, once per process: a probe
//! `.eh_frame` (one CIE, one FDE for an address range no code occupies) is registered as
//! a section and looked up with the same unwinder's `_Unwind_Find_FDE`; if it is not
//! found, its FDE is registered alone and looked up again. Whatever answered is
//! deregistered again. An unwinder that finds neither is not used.
//!
//! A unit's registration remembers which unwinders and which
//! addresses it registered, and deregisters exactly those (libgcc aborts on a
//! deregistration it does not know).

use std::ffi::{CStr, c_void};
use std::sync::{Mutex, MutexGuard, OnceLock};

use crate::call;

/// `__register_frame` / `__deregister_frame`: takes the start of a section or of one FDE,
/// as the unwinder's [`UnwinderKind`] says.
pub type FrameFn = unsafe extern "C" fn(begin: *const u8);

/// `_Unwind_Find_FDE(pc, bases)`: the FDE that covers `pc`, or null; fills three words
/// of `bases` (text base, data base, function start).
type FindFdeFn = unsafe extern "C" fn(pc: *const c_void, bases: *mut [usize; 3]) -> *const u8;

unsafe extern "C" {
    fn __register_frame(begin: *const u8);
    fn __deregister_frame(begin: *const u8);
    fn _Unwind_Find_FDE(pc: *const c_void, bases: *mut [usize; 3]) -> *const u8;
}

/// What an unwinder's `__register_frame` expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum UnwinderKind {
    /// libgcc: the start of an `.eh_frame` section that ends with a zero terminator.
    Libgcc,
    /// LLVM's libunwind: one FDE per call (CIE records are skipped).
    Llvm,
}

/// One unwinder's registration functions.
#[derive(Debug, Clone, Copy)]
pub struct Unwinder {
    /// `__register_frame`.
    pub register: FrameFn,
    /// `__deregister_frame`.
    pub deregister: FrameFn,
    /// What `register` takes.
    pub kind: UnwinderKind,
}

/// Where an unwinder the linker registers with comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Origin {
    /// The `__register_frame` this crate was linked against.
    Linked,
    /// `dlsym(RTLD_DEFAULT, "__register_frame")`, another one than [`Origin::Linked`].
    Global,
    /// Added by the host with [`add_unwinder`].
    Added,
}

/// An unwinder the linker registers units with, from [`unwinders`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UnwinderInfo {
    /// What its `__register_frame` takes.
    pub kind: UnwinderKind,
    /// Where it was found.
    pub origin: Origin,
    /// Address of its `__register_frame`.
    pub register: usize,
    /// The object that defines it (`dladdr`), e.g. `/lib/x86_64-linux-gnu/libgcc_s.so.1`.
    pub provider: Option<String>,
}

struct Entry {
    unwinder: Unwinder,
    origin: Origin,
}

/// The unwinders of the process: detected on first use, then those added.
fn registry() -> MutexGuard<'static, Vec<Entry>> {
    static REGISTRY: OnceLock<Mutex<Vec<Entry>>> = OnceLock::new();
    REGISTRY
        .get_or_init(|| Mutex::new(detect()))
        .lock()
        // Every operation under the lock completes before it can panic.
        .unwrap_or_else(|p| p.into_inner())
}

/// The unwinders that units are registered with, in registration order.
///
/// ```
/// let found = jitcache_linker::unwind::unwinders();
/// assert!(!found.is_empty(), "every Linux host has an unwinder");
/// ```
pub fn unwinders() -> Vec<UnwinderInfo> {
    registry()
        .iter()
        .map(|e| UnwinderInfo {
            kind: e.unwinder.kind,
            origin: e.origin,
            register: e.unwinder.register as usize,
            provider: provider_of(e.unwinder.register as usize),
        })
        .collect()
}

/// Adds an unwinder that every unit loaded from now on is registered with too (by any
/// linker of the process); returns false, changing nothing, if its `register` is already
/// one the linker uses. Units loaded before are not registered with it.
///
/// For a host whose C++ runtime uses an unwinder the linker cannot find: one linked
/// into the executable with hidden symbols (`-static-libgcc`), or a private copy.
///
/// # Safety
///
/// `register` and `deregister` must be the `__register_frame` and `__deregister_frame` of
/// one unwinder of kind `kind`, and stay callable for the rest of the process.
pub unsafe fn add_unwinder(unwinder: Unwinder) -> bool {
    let mut registry = registry();
    if registry
        .iter()
        .any(|e| e.unwinder.register as usize == unwinder.register as usize)
    {
        return false;
    }
    registry.push(Entry {
        unwinder,
        origin: Origin::Added,
    });
    true
}

/// Finds the kind of an unwinder by registering a probe with it and looking the probe up
/// with its `_Unwind_Find_FDE`; `None` if neither a section nor a lone FDE is found.
///
/// # Safety
///
/// The three functions must belong to one unwinder (the same registry) and stay callable.
pub unsafe fn probe(
    register: FrameFn,
    deregister: FrameFn,
    find_fde: unsafe extern "C" fn(*const c_void, *mut [usize; 3]) -> *const u8,
) -> Option<UnwinderKind> {
    // SAFETY: forwarded.
    unsafe {
        probe_kinds(
            register,
            deregister,
            find_fde,
            &[UnwinderKind::Libgcc, UnwinderKind::Llvm],
        )
    }
}

/// [`probe`], trying the kinds in the order given. The section goes first where libgcc
/// may answer: libgcc takes a lone FDE for a section of one record and would pass the
/// FDE test too.
///
/// # Safety
///
/// As for [`probe`].
unsafe fn probe_kinds(
    register: FrameFn,
    deregister: FrameFn,
    find_fde: FindFdeFn,
    kinds: &[UnwinderKind],
) -> Option<UnwinderKind> {
    let probe = Probe::get();
    let found = |pc: usize| {
        let mut bases = [0_usize; 3];
        // SAFETY: the caller vouches for `find_fde`; `bases` has the three words that
        // `struct dwarf_eh_bases` has; `pc` is only compared, never run.
        unsafe { find_fde(pc as *const c_void, &mut bases) as usize }
    };
    for &kind in kinds {
        let begin = match kind {
            UnwinderKind::Libgcc => probe.section,
            UnwinderKind::Llvm => probe.fde,
        };
        // SAFETY: `begin` is a well-formed, terminated `.eh_frame` (or its FDE) that lives
        // for the rest of the process (leaked), so even a registration that is never
        // undone points at valid memory.
        unsafe { register(begin as *const u8) };
        if found(probe.pc) == probe.fde {
            // SAFETY: registered just above and found, so the unwinder knows it.
            unsafe { deregister(begin as *const u8) };
            return Some(kind);
        }
    }
    None
}

/// A probe `.eh_frame` and the address range its FDE covers, both leaked (made once).
struct Probe {
    section: usize,
    fde: usize,
    pc: usize,
}

impl Probe {
    fn get() -> &'static Probe {
        static PROBE: OnceLock<Probe> = OnceLock::new();
        PROBE.get_or_init(|| {
            // An address range that no code occupies: the unwinders find nothing there
            // in any loaded object, only the probe.
            let range: &'static [u8; 16] = Box::leak(Box::new([0_u8; 16]));
            let begin = range.as_ptr() as u64;
            let section: &'static [u64; 8] = Box::leak(Box::new(probe_section(begin, 16)));
            let section = section.as_ptr() as usize;
            Probe {
                section,
                fde: section + PROBE_FDE_OFFSET,
                pc: begin as usize + 4,
            }
        })
    }
}

const PROBE_FDE_OFFSET: usize = 24;

/// A CIE and an FDE (for `begin..begin+len`, absolute 8-byte addresses) and a zero
/// terminator, as 64 bytes.
fn probe_section(begin: u64, len: u64) -> [u64; 8] {
    let mut b = Vec::with_capacity(64);
    // CIE: length 20, id 0, version 1, "zR", code align 1, data align -8, return
    // address in r16, augmentation data: FDE pointers are DW_EH_PE_absptr; then
    // DW_CFA_def_cfa r7+8, DW_CFA_offset r16 at cfa-8, two DW_CFA_nop.
    b.extend_from_slice(&20_u32.to_le_bytes());
    b.extend_from_slice(&0_u32.to_le_bytes());
    b.extend_from_slice(&[1, b'z', b'R', 0, 1, 0x78, 16, 1, 0x00]);
    b.extend_from_slice(&[0x0c, 7, 8, 0x90, 1, 0, 0]);
    debug_assert_eq!(b.len(), PROBE_FDE_OFFSET);
    // FDE: length 28, CIE pointer (distance back to the CIE), range, no augmentation
    // data, padding.
    b.extend_from_slice(&28_u32.to_le_bytes());
    b.extend_from_slice(&(PROBE_FDE_OFFSET as u32 + 4).to_le_bytes());
    b.extend_from_slice(&begin.to_le_bytes());
    b.extend_from_slice(&len.to_le_bytes());
    b.extend_from_slice(&[0; 8]);
    // Terminator, and padding to 64 bytes.
    b.extend_from_slice(&[0; 8]);
    let mut words = [0_u64; 8];
    for (w, chunk) in words.iter_mut().zip(b.chunks_exact(8)) {
        *w = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
    }
    words
}

/// The unwinders found in the process (see the module docs).
fn detect() -> Vec<Entry> {
    let mut found: Vec<Entry> = Vec::new();
    let linked = (
        __register_frame as FrameFn,
        __deregister_frame as FrameFn,
        _Unwind_Find_FDE as FindFdeFn,
    );
    let mut candidates = vec![(linked, Origin::Linked)];
    if let Some(global) = global_unwinder() {
        candidates.push((global, Origin::Global));
    }
    for ((register, deregister, find_fde), origin) in candidates {
        if found
            .iter()
            .any(|e| e.unwinder.register as usize == register as usize)
        {
            continue;
        }
        // LLVM's libunwind logs every section start it is given ("bad fde: FDE is really a
        // CIE"), so where the object that defines `register` says it is libunwind, only
        // the FDE is tried.
        let kinds: &[UnwinderKind] = if is_libunwind(register as usize) {
            &[UnwinderKind::Llvm]
        } else {
            &[UnwinderKind::Libgcc, UnwinderKind::Llvm]
        };
        // SAFETY: each candidate's three functions come from one object (checked for the
        // global one; the linked ones are one unwinder's by construction of libgcc and
        // libunwind, which define all three in one place).
        if let Some(kind) = unsafe { probe_kinds(register, deregister, find_fde, kinds) } {
            found.push(Entry {
                unwinder: Unwinder {
                    register,
                    deregister,
                    kind,
                },
                origin,
            });
        }
    }
    found
}

/// The global scope's `__register_frame`, `__deregister_frame` and `_Unwind_Find_FDE`, if
/// all three are there and defined by one object.
fn global_unwinder() -> Option<(FrameFn, FrameFn, FindFdeFn)> {
    let names: [&CStr; 3] = [
        c"__register_frame",
        c"__deregister_frame",
        c"_Unwind_Find_FDE",
    ];
    let addrs = names.map(call::host_symbol);
    let [Some(register), Some(deregister), Some(find_fde)] = addrs else {
        return None;
    };
    let object = object_base(register)?;
    if object_base(deregister)? != object || object_base(find_fde)? != object {
        return None;
    }
    // SAFETY: the addresses are those of the functions with these names and C
    // signatures in one loaded object, which stays loaded (it is in the global scope).
    unsafe {
        Some((
            std::mem::transmute::<usize, FrameFn>(register),
            std::mem::transmute::<usize, FrameFn>(deregister),
            std::mem::transmute::<usize, FindFdeFn>(find_fde),
        ))
    }
}

/// Whether the object that holds `addr` defines `__unw_add_dynamic_fde` in the global
/// scope: LLVM's libunwind (libgcc has no such function).
fn is_libunwind(addr: usize) -> bool {
    let base = object_base(addr);
    call::host_symbol(c"__unw_add_dynamic_fde").is_some_and(|f| object_base(f) == base)
}

/// `dladdr(addr)`, if `addr` lies in a loaded object.
fn dladdr(addr: usize) -> Option<libc::Dl_info> {
    let mut info = libc::Dl_info {
        dli_fname: std::ptr::null(),
        dli_fbase: std::ptr::null_mut(),
        dli_sname: std::ptr::null(),
        dli_saddr: std::ptr::null_mut(),
    };
    // SAFETY: dladdr only reads the loader's tables and writes `info`; the strings it
    // points `info` at belong to loaded objects, which the callers copy at once.
    let found = unsafe { libc::dladdr(addr as *const c_void, &mut info) } != 0;
    found.then_some(info)
}

/// The base address of the loaded object that holds `addr`.
fn object_base(addr: usize) -> Option<usize> {
    dladdr(addr).map(|i| i.dli_fbase as usize)
}

/// The path of the loaded object that holds `addr`.
fn provider_of(addr: usize) -> Option<String> {
    let info = dladdr(addr)?;
    if info.dli_fname.is_null() {
        return None;
    }
    // SAFETY: dladdr set `dli_fname` to the object's NUL-terminated name, which lives as
    // long as the object (the unwinders are never unloaded); it is copied here.
    let name = unsafe { CStr::from_ptr(info.dli_fname) };
    Some(name.to_string_lossy().into_owned())
}

/// The offsets of the FDEs (records whose CIE pointer is not 0) in an `.eh_frame` run that
/// starts at `bytes[0]`, up to its zero terminator, the end of `bytes`, or the first
/// record that does not fit (a 64-bit record, or a length past the end).
pub(crate) fn fde_offsets(bytes: &[u8]) -> Vec<usize> {
    let read32 = |at: usize| -> Option<u32> {
        let b = bytes.get(at..at.checked_add(4)?)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let mut fdes = Vec::new();
    let mut at = 0_usize;
    while let Some(length) = read32(at) {
        if length == 0 || length == u32::MAX || length < 4 {
            break;
        }
        let Some(end) = at.checked_add(4 + length as usize) else {
            break;
        };
        if end > bytes.len() {
            break;
        }
        // A CIE has id 0; so does an FDE of a discarded COMDAT group (tombstoned).
        if read32(at + 4).is_some_and(|id| id != 0) {
            fdes.push(at);
        }
        at = end;
    }
    fdes
}

/// The unwind registrations of one unit: for each unwinder, the addresses registered.
#[derive(Default)]
pub(crate) struct Registration {
    done: Vec<(Unwinder, Vec<usize>)>,
}

impl Registration {
    /// Registers each `.eh_frame` run (its start, inside `read_only`, which starts at
    /// address `read_only_base`) with every unwinder of the process.
    ///
    /// The runs must lie in the unit's protected read-only memory, which stays mapped and
    /// unchanged until [`Registration::deregister`].
    pub(crate) fn register(runs: &[usize], read_only: &[u8], read_only_base: usize) -> Self {
        let mut done = Vec::new();
        if runs.is_empty() {
            return Registration { done };
        }
        let unwinders: Vec<Unwinder> = registry().iter().map(|e| e.unwinder).collect();
        for unwinder in unwinders {
            let begins: Vec<usize> = match unwinder.kind {
                UnwinderKind::Libgcc => runs.to_vec(),
                UnwinderKind::Llvm => runs
                    .iter()
                    .filter_map(|&run| {
                        let start = run.checked_sub(read_only_base)?;
                        let bytes = read_only.get(start..)?;
                        Some(fde_offsets(bytes).into_iter().map(move |o| run + o))
                    })
                    .flatten()
                    .collect(),
            };
            for &begin in &begins {
                // SAFETY: `begin` is a run start (libgcc) or an FDE in it (LLVM) in the
                // unit's relocated, read-only `.eh_frame`, which stays mapped until
                // `deregister`; the unwinder is one of the process's (see `add_unwinder`).
                unsafe { (unwinder.register)(begin as *const u8) };
            }
            done.push((unwinder, begins));
        }
        Registration { done }
    }

    /// Undoes [`Registration::register`], newest first; called before the unit's memory
    /// is freed.
    pub(crate) fn deregister(&mut self) {
        for (unwinder, begins) in self.done.drain(..).rev() {
            for &begin in begins.iter().rev() {
                // SAFETY: registered with this unwinder by `register` and still mapped.
                unsafe { (unwinder.deregister)(begin as *const u8) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn record(id: u32, body: usize) -> Vec<u8> {
        let mut r = ((4 + body) as u32).to_le_bytes().to_vec();
        r.extend_from_slice(&id.to_le_bytes());
        r.resize(8 + body, 0);
        r
    }

    #[test]
    fn fdes_are_the_records_with_a_cie_pointer() {
        let mut run = record(0, 12); // CIE
        run.extend(record(20, 20)); // FDE at 20
        run.extend(record(0, 4)); // tombstoned FDE
        run.extend(record(60, 4)); // FDE at 60
        run.extend([0; 4]);
        run.extend(record(9, 4)); // after the terminator: not read
        assert_eq!(fde_offsets(&run), vec![20, 60]);
    }

    #[test]
    fn a_record_past_the_end_stops_the_walk() {
        let mut run = record(0, 12);
        run.extend(record(20, 4));
        run.extend(100_u32.to_le_bytes());
        run.extend(7_u32.to_le_bytes());
        assert_eq!(fde_offsets(&run), vec![20]);
    }

    #[test]
    fn the_probe_is_found_by_the_unwinder_this_crate_is_linked_with() {
        // SAFETY: the three are libgcc's (or libunwind's) of this test process.
        let kind = unsafe {
            probe(
                __register_frame as FrameFn,
                __deregister_frame as FrameFn,
                _Unwind_Find_FDE as FindFdeFn,
            )
        };
        // Rust's std on Linux links libgcc_s.
        assert_eq!(kind, Some(UnwinderKind::Libgcc));
        // Again: the first probe was deregistered, so the same answer comes back.
        // SAFETY: as above.
        let again = unsafe {
            probe(
                __register_frame as FrameFn,
                __deregister_frame as FrameFn,
                _Unwind_Find_FDE as FindFdeFn,
            )
        };
        assert_eq!(kind, again);
    }

    proptest! {
        #[test]
        fn the_walk_stays_inside_the_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            for at in fde_offsets(&bytes) {
                let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
                prop_assert!(at + 4 + len <= bytes.len());
                prop_assert!(len >= 4);
            }
        }
    }
}
