//! `jitcache-linker`: an in-process linker for ELF64 x86-64 relocatable objects.
//!
//! It takes `.o` files as produced by `cc -c`, `clang -c` or cranelift-object, maps them
//! into the running process, resolves their symbols, applies their relocations, protects
//! the memory (never writable and executable at once), registers their `.eh_frame` with
//! the unwinder, runs their constructors, and hands back addresses.
//!
//! | item | what it does |
//! | --- | --- |
//! | [`Linker`] | owns every loaded unit; [`Linker::load`], [`Linker::symbol`], [`Linker::lookup`], [`Linker::unload`], [`Linker::keep_until_exit`] |
//! | [`ObjectFile`] | one input object: a name (for messages) and its bytes |
//! | [`LoadOptions`] | whether to run constructors, whether to export the unit's globals |
//! | [`MemoryStrategy`], [`ArenaStats`] | units share a code arena (default) or each has its own mapping; what is mapped |
//! | [`call`] | safe wrappers that call loaded code: [`call::call_main`], [`call::call_i64`]; [`call::SharedObject`] for comparisons with `dlopen` |
//! | [`Error`] | every failure, naming the object, section, offset, symbol or relocation |
//!
//! A *unit* is a set of objects linked together (one program, or one cached definition).
//! Undefined symbols resolve, in order, to the unit itself, units loaded before it, the
//! resolver given to [`Linker::set_resolver`], then the host process (`dlsym`) and the
//! libraries opened with [`Linker::open_library`]. Two units may define the same names.
//!
//! Trust model: loading is the act of trust. [`Linker::load`] runs the unit's constructors,
//! so it is only for code the caller means to run; see [`call`] for what that makes safe.
//!
//! ```no_run
//! use jitcache_linker::{Linker, ObjectFile, call};
//!
//! let bytes = std::fs::read("square.o")?;
//! let mut linker = Linker::new();
//! let unit = linker.load(&[ObjectFile { name: "square.o", bytes: &bytes }])?;
//! let square = linker.symbol(unit, "square").expect("square is defined");
//! assert_eq!(call::call_i64(square, &[7])?, 49);
//! linker.unload(unit)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The passes of a load are in `link.rs`, the relocation formulas in `x86_64.rs`, and the
//! only `unsafe` code in the memory path, `memory.rs` (a unit's memory, mapping and
//! protection) and `arena.rs` (the shared code arena), and in the call paths: `call.rs`
//! (calls into foreign code), `unwind.rs` (the unwinders' frame registries) and `tls.rs`
//! (thread-local storage of loaded units: the per-thread blocks and the `__tls_get_addr`
//! and TLS descriptor entry points loaded code calls). `docs/linker.md` in the repository
//! has the full story.

mod arena;
pub mod call;
mod error;
mod host_symbols;
mod layout;
mod link;
mod memory;
mod parse;
mod per_object;
mod pool;
mod symbols;
mod tls;
mod unit;
pub mod unwind;
mod x86_64;

use std::fmt;
use std::sync::Arc;

pub use arena::{ArenaStats, MemoryStrategy};
pub use error::{Error, Location, Unsupported};

use arena::Arena;

use host_symbols::HostSymbols;
use symbols::{Export, FastMap};

use unit::Unit;

/// One input object: a name used in messages (a path, say) and its bytes.
#[derive(Debug, Clone, Copy)]
pub struct ObjectFile<'a> {
    /// Name for messages.
    pub name: &'a str,
    /// The ELF64 relocatable object.
    pub bytes: &'a [u8],
}

/// Identifies a loaded unit. Ids are never reused within one [`Linker`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UnitId(u64);

impl fmt::Display for UnitId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Options of [`Linker::load_with`], built from [`LoadOptions::default`] with the
/// setters below.
///
/// ```
/// let inert = jitcache_linker::LoadOptions::default().constructors(false).unwind_info(false);
/// assert!(!inert.run_constructors);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct LoadOptions {
    /// Run `.preinit_array`/`.init_array` at the end of the load (default true). When
    /// false, nothing of the unit runs until [`Linker::run_constructors`] or a call, and
    /// its `.fini_array` destructors do not run at unload unless the constructors ran
    /// (handlers that its code registered with `atexit`/`__cxa_atexit` always run at
    /// unload, as at `dlclose`).
    pub run_constructors: bool,
    /// Register the unit's `.eh_frame` with the unwinder (default true). The unwinder
    /// trusts what it is given; turn this off to inspect bytes that will never run.
    pub register_unwind_info: bool,
    /// Make the unit's global symbols (default visibility) visible to later units and to
    /// [`Linker::lookup`] (default true).
    pub export: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            run_constructors: true,
            register_unwind_info: true,
            export: true,
        }
    }
}

impl LoadOptions {
    /// Sets [`LoadOptions::run_constructors`].
    #[must_use]
    pub fn constructors(mut self, run: bool) -> Self {
        self.run_constructors = run;
        self
    }

    /// Sets [`LoadOptions::register_unwind_info`].
    #[must_use]
    pub fn unwind_info(mut self, register: bool) -> Self {
        self.register_unwind_info = register;
        self
    }

    /// Sets [`LoadOptions::export`].
    #[must_use]
    pub fn export(mut self, export: bool) -> Self {
        self.export = export;
        self
    }
}

/// A symbol resolver consulted after the loaded units and before the host.
pub type Resolver = dyn Fn(&str) -> Option<usize> + Send + Sync;

/// Owns every loaded unit. Dropping the linker unloads its units, newest first.
pub struct Linker {
    units: Vec<Unit>,
    next_id: u64,
    /// Exported names of loaded units: the first loaded wins.
    exports: FastMap<Arc<str>, Export>,
    /// COMDAT groups of loaded units: the first loaded wins.
    groups: FastMap<Arc<str>, UnitId>,
    resolver: Option<Box<Resolver>>,
    host: HostSymbols,
    /// Where units' memory comes from (dropped after the units, see `Drop`).
    arena: Arena,
}

impl Default for Linker {
    fn default() -> Self {
        Linker::new()
    }
}

impl fmt::Debug for Linker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Linker")
            .field(
                "units",
                &self.units.iter().map(|u| u.id).collect::<Vec<_>>(),
            )
            .field("exports", &self.exports.len())
            .finish_non_exhaustive()
    }
}

impl Linker {
    /// A linker with no unit loaded, no resolver and no extra library; units share a
    /// code arena ([`MemoryStrategy::Arena`]).
    pub fn new() -> Linker {
        Linker::with_memory(MemoryStrategy::default())
    }

    /// A linker that maps units as `strategy` says.
    ///
    /// ```
    /// use jitcache_linker::{Linker, MemoryStrategy};
    /// let strict = Linker::with_memory(MemoryStrategy::MappingPerUnit);
    /// assert_eq!(strict.memory_strategy(), MemoryStrategy::MappingPerUnit);
    /// ```
    pub fn with_memory(strategy: MemoryStrategy) -> Linker {
        Linker {
            units: Vec::new(),
            next_id: 1,
            exports: FastMap::default(),
            groups: FastMap::default(),
            resolver: None,
            host: HostSymbols::default(),
            arena: Arena::new(strategy),
        }
    }

    /// The strategy in effect: the one asked for, or [`MemoryStrategy::MappingPerUnit`]
    /// once the arena turned out to be unavailable here (no `memfd_create`, or executable
    /// shared mappings refused).
    pub fn memory_strategy(&self) -> MemoryStrategy {
        self.arena.strategy()
    }

    /// Opens a shared library whose symbols later loads may use: a short name (`m` opens
    /// `libm.so.6`, `stdc++` opens `libstdc++.so.6`; other names try `lib{name}.so`), a
    /// soname (`libm.so.6`) or a path. It is searched after the host process, in the
    /// order opened, and stays open for the life of the process.
    pub fn open_library(&mut self, name: &str) -> Result<(), Error> {
        self.host.open(name)
    }

    /// Sets the resolver consulted after the loaded units and before the host.
    pub fn set_resolver(&mut self, r: Box<Resolver>) {
        self.resolver = Some(r);
    }

    /// Links `objects` as one unit, runs its constructors and exports its globals.
    /// See [`Linker::load_with`].
    pub fn load(&mut self, objects: &[ObjectFile<'_>]) -> Result<UnitId, Error> {
        self.load_with(objects, &LoadOptions::default())
    }

    /// Links `objects` as one unit with the given options. On error nothing stays
    /// mapped or registered and no code of the unit has run.
    pub fn load_with(
        &mut self,
        objects: &[ObjectFile<'_>],
        options: &LoadOptions,
    ) -> Result<UnitId, Error> {
        let env = link::Env {
            exports: &self.exports,
            resolver: self.resolver.as_deref(),
            host: &mut self.host,
            groups: &self.groups,
            units: &self.units,
            arena: &mut self.arena,
        };
        let linked = match link::link(objects, env) {
            Ok(linked) => linked,
            Err(e) => {
                // Its pieces are back; a chunk made for it alone goes too.
                self.arena.trim();
                return Err(e);
            }
        };
        let id = UnitId(self.next_id);
        self.next_id += 1;
        let unit = Unit::new(id, linked, options.register_unwind_info, options.export);
        for group in &unit.groups {
            self.groups.entry(group.clone()).or_insert(id);
        }
        for (name, export) in unit.exported() {
            self.exports.entry(name.clone()).or_insert(export);
        }
        self.units.push(unit);
        if options.run_constructors {
            self.run_constructors(id)?;
        }
        Ok(id)
    }

    /// Runs a unit's constructors if they have not run yet.
    pub fn run_constructors(&mut self, unit: UnitId) -> Result<(), Error> {
        self.unit_mut(unit)?.construct();
        Ok(())
    }

    /// The address of a global symbol defined by `unit` (any visibility).
    pub fn symbol(&self, unit: UnitId, name: &str) -> Option<usize> {
        self.units
            .iter()
            .find(|u| u.id == unit)?
            .symbols
            .get(name)
            .map(|s| s.addr)
    }

    /// The address of `name` as exported by the loaded units; the first loaded wins.
    pub fn lookup(&self, name: &str) -> Option<usize> {
        self.exports.get(name).map(|e| e.addr)
    }

    /// Bytes of memory `unit` occupies: the sum of its pieces of the arena (16-byte
    /// granules; the pages around them are shared with other units), or, with its own
    /// mapping, the whole pages of that mapping. `None` for an unknown unit.
    pub fn mapped_bytes(&self, unit: UnitId) -> Option<usize> {
        self.units
            .iter()
            .find(|u| u.id == unit)
            .map(Unit::mapped_bytes)
    }

    /// How many threads have a block of `unit`'s thread-local variables (made on a
    /// thread's first access, freed when the thread exits or the unit is unloaded). `None`
    /// for an unknown unit.
    pub fn thread_local_blocks(&self, unit: UnitId) -> Option<usize> {
        self.units
            .iter()
            .find(|u| u.id == unit)
            .map(Unit::tls_blocks)
    }

    /// What this linker has mapped, for reporting bytes per loaded unit:
    /// `touched_bytes / units` is the memory per unit, `mapped_bytes / units` the address
    /// space per unit.
    ///
    /// ```
    /// let stats = jitcache_linker::Linker::new().arena_stats();
    /// assert_eq!((stats.units, stats.used_bytes), (0, 0));
    /// ```
    pub fn arena_stats(&self) -> ArenaStats {
        let mut stats = self.arena.stats();
        stats.units = self.units.len();
        for unit in &self.units {
            stats.used_bytes += unit.mapped_bytes();
            if unit.has_own_mapping() {
                stats.mapped_bytes += unit.mapped_bytes();
                stats.touched_bytes += unit.mapped_bytes();
            }
        }
        stats
    }

    /// Unloads a unit: runs its destructors (`__cxa_atexit` handlers of the unit, then
    /// `.fini_array`), deregisters its unwind info and frees its memory (its pieces go
    /// back to the arena for later units; a mapping of its own is unmapped). Addresses
    /// from it are dangling afterwards; later units that resolved symbols to it
    /// (including symbols of COMDAT groups it loaded first) must be unloaded first.
    ///
    /// C++ `thread_local` objects of the unit that the calling thread made are destroyed
    /// first (as at its exit); while other threads that have not exited still hold some,
    /// the unit stays loaded and this returns [`Error::ThreadLocalsInUse`]. Each thread's
    /// TLS blocks of the unit are freed.
    pub fn unload(&mut self, unit: UnitId) -> Result<(), Error> {
        let index = self.index(unit)?;
        if let Some(Err(destructors)) = self.units.get(index).map(Unit::end_thread_destructors) {
            return Err(Error::ThreadLocalsInUse { unit, destructors });
        }
        let removed = self.units.remove(index);
        self.forget(&removed);
        drop(removed);
        self.arena.trim();
        Ok(())
    }

    /// Keeps `unit` mapped for the rest of the process and hands its destructors to
    /// `atexit`, as for a natively linked program: they run at process exit after any
    /// handler the program registered itself. The unit leaves this linker (its symbols
    /// are no longer found here), but its code stays valid.
    pub fn keep_until_exit(&mut self, unit: UnitId) -> Result<(), Error> {
        let index = self.index(unit)?;
        let removed = self.units.remove(index);
        self.forget(&removed);
        removed.keep_until_exit()
    }

    fn index(&self, unit: UnitId) -> Result<usize, Error> {
        self.units
            .iter()
            .position(|u| u.id == unit)
            .ok_or(Error::UnknownUnit(unit))
    }

    fn unit_mut(&mut self, unit: UnitId) -> Result<&mut Unit, Error> {
        self.units
            .iter_mut()
            .find(|u| u.id == unit)
            .ok_or(Error::UnknownUnit(unit))
    }

    /// Forgets the exported names and COMDAT groups of a unit that has left
    /// `self.units`: each name it provided goes to the next loaded unit that has it, in
    /// load order, as if the unit had never been loaded.
    fn forget(&mut self, removed: &Unit) {
        for (name, _) in removed.exported() {
            if self.exports.get(name).is_none_or(|e| e.unit != removed.id) {
                continue;
            }
            let next = self.units.iter().find_map(|u| u.export_of(name));
            match next {
                Some(export) => self.exports.insert(name.clone(), export),
                None => self.exports.remove(name),
            };
        }
        for group in &removed.groups {
            if self.groups.get(group) != Some(&removed.id) {
                continue;
            }
            match self.units.iter().find(|u| u.groups.contains(group)) {
                Some(u) => self.groups.insert(group.clone(), u.id),
                None => self.groups.remove(group),
            };
        }
    }
}

impl Drop for Linker {
    fn drop(&mut self) {
        while let Some(unit) = self.units.pop() {
            // A unit whose thread_local destructors are pending in other threads stays
            // mapped for them, as if kept until exit.
            if unit.end_thread_destructors().is_err() {
                let _ = unit.keep_until_exit();
            } else {
                drop(unit);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linker_is_send() {
        fn send<T: Send>() {}
        send::<Linker>();
    }

    #[test]
    fn empty_unit_loads_and_unloads() {
        let mut linker = Linker::new();
        let unit = linker.load(&[]).expect("an empty unit is fine");
        assert_eq!(linker.mapped_bytes(unit), Some(0));
        linker.unload(unit).expect("unload");
    }
}
