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
//! | [`LoadOptions`] | whether to run constructors, whether to export the unit's globals, how its functions are bound ([`Binding`]) |
//! | [`Symbol`] | a symbol handle carrying its unit's lifetime: [`Linker::symbol_handle`], [`Linker::lookup_handle`], [`Symbol::call_i64`], [`Symbol::call_main`] |
//! | [`MemoryStrategy`], [`ArenaStats`] | units share a code arena (default) or each has its own mapping; what is mapped |
//! | [`call`] | the raw-address calls ([`call::call_main`], [`call::call_i64`], `unsafe`); [`call::SharedObject`] for comparisons with `dlopen` |
//! | [`Error`] | every failure, naming the object, section, offset, symbol or relocation |
//!
//! A *unit* is a set of objects linked together (one program, or one cached definition).
//! Undefined symbols resolve, in order, to the unit itself, units loaded before it, the
//! resolver given to [`Linker::set_resolver`], then the host process (`dlsym`) and the
//! libraries opened with [`Linker::open_library`]. Two units may define the same names:
//! with [`Binding::Direct`] (the default here) the first loaded wins; with
//! [`Binding::Stubs`] each exported function is reached through a stub the linker owns,
//! and the latest definition wins for every caller, earlier ones included.
//!
//! Trust model: loading is the act of trust. [`Linker::load`] runs the unit's constructors,
//! so it is only for code the caller means to run; see [`call`] for what that makes safe.
//!
//! ```no_run
//! use jitcache_linker::{Linker, ObjectFile};
//!
//! let bytes = std::fs::read("square.o")?;
//! let mut linker = Linker::new();
//! let unit = linker.load(&[ObjectFile { name: "square.o", bytes: &bytes }])?;
//! let square = linker.symbol_handle(unit, "square").expect("square is defined");
//! assert_eq!(square.call_i64(&[7])?, 49);
//! linker.unload(unit)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The passes of a load are in `link.rs`, the relocation formulas in `x86_64.rs`, and the
//! only `unsafe` code in the memory path, `memory.rs` (a unit's memory, mapping and
//! protection), `arena.rs` (the shared code arena) and `stubs.rs` (the indirect stubs and
//! their slots), and in the call paths: `call.rs` and `handle.rs`
//! (calls into foreign code), `unwind.rs` (the unwinders' frame registries) and `tls.rs`
//! (thread-local storage of loaded units: the per-thread blocks and the `__tls_get_addr`
//! and TLS descriptor entry points loaded code calls). `docs/linker.md` in the repository
//! has the full story.

mod arena;
pub mod call;
mod error;
mod handle;
mod host_symbols;
mod layout;
mod link;
mod memory;
mod parse;
mod per_object;
mod pool;
mod stubs;
mod symbols;
mod tls;
mod unit;
pub mod unwind;
mod x86_64;

use std::fmt;
use std::sync::Arc;

pub use arena::{ArenaStats, MemoryStrategy};
pub use error::{Error, Location, Unsupported};
pub use handle::Symbol;

use arena::Arena;
use stubs::StubTable;

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

/// How the exported functions of a unit are reached by other units and by the addresses
/// the linker hands out ([`LoadOptions::binding`]).
///
/// ```
/// use jitcache_linker::{Binding, LoadOptions};
/// assert_eq!(LoadOptions::default().binding, Binding::Direct);
/// assert_eq!(LoadOptions::default().binding(Binding::Stubs).binding, Binding::Stubs);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Binding {
    /// Straight to the code: later units resolve to the function itself and the first
    /// loaded definition of a name wins. The fastest call, for code that never redefines.
    #[default]
    Direct,
    /// Through a stub the linker owns (`jmp *slot(%rip)`, a pointer slot per name): later
    /// units, [`Linker::lookup`] and [`Linker::symbol`] get the stub, and loading another
    /// unit with stubs that defines the name points the slot at the new code (one atomic
    /// store), so every earlier caller runs the latest definition on its next call. Data
    /// is not indirected: a new definition of a variable is a new object that later units
    /// link to; code linked earlier keeps the old one. References inside one unit bind
    /// directly.
    Stubs,
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
    /// How its exported functions are reached (default [`Binding::Direct`]).
    pub binding: Binding,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            run_constructors: true,
            register_unwind_info: true,
            export: true,
            binding: Binding::Direct,
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

    /// Sets [`LoadOptions::binding`].
    #[must_use]
    pub fn binding(mut self, binding: Binding) -> Self {
        self.binding = binding;
        self
    }
}

/// A symbol resolver consulted after the loaded units and before the host.
pub type Resolver = dyn Fn(&str) -> Option<usize> + Send + Sync;

/// Owns every loaded unit. Dropping the linker unloads its units, newest first.
pub struct Linker {
    units: Vec<Unit>,
    next_id: u64,
    /// Exported names of loaded units: the latest loaded with stubs, else the first
    /// loaded directly (functions of units with stubs appear as their stub).
    exports: FastMap<Arc<str>, Export>,
    /// The stubs of the exported functions of units loaded with [`Binding::Stubs`].
    stubs: StubTable,
    /// Whether code of this linker outlives it (a unit kept until exit): the stubs then
    /// stay mapped after the linker drops.
    outlived: bool,
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
            stubs: StubTable::default(),
            outlived: false,
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
        let unit = Unit::new(id, linked, options);
        if let Err(e) = self.make_stubs(&unit) {
            drop(unit);
            self.arena.trim();
            return Err(e);
        }
        for group in &unit.groups {
            self.groups.entry(group.clone()).or_insert(id);
        }
        self.publish(&unit);
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

    /// The address of a global symbol defined by `unit` (any visibility): for an
    /// exported function of a unit loaded with [`Binding::Stubs`], its stub. A raw
    /// address; [`Linker::symbol_handle`] gives one that knows when the unit is gone.
    pub fn symbol(&self, unit: UnitId, name: &str) -> Option<usize> {
        let u = self.find(unit)?;
        let s = u.symbols.get(name)?;
        let export = u.export_of(name).map(|e| self.published(u, name, e));
        Some(export.map_or(s.addr, |e| e.addr))
    }

    /// The address of `name` as exported by the loaded units: the latest loaded with
    /// [`Binding::Stubs`] (a function's stub), else the first loaded directly.
    pub fn lookup(&self, name: &str) -> Option<usize> {
        self.exports.get(name).map(|e| e.addr)
    }

    /// [`Linker::symbol`] as a handle that carries `unit`'s lifetime.
    pub fn symbol_handle(&self, unit: UnitId, name: &str) -> Option<Symbol> {
        let addr = self.symbol(unit, name)?;
        let u = self.find(unit)?;
        Some(Symbol::new(addr, unit, name.into(), u.life.clone()))
    }

    /// [`Linker::lookup`] as a handle that carries the lifetime of the unit that
    /// exports the name now (for a function with stubs, the one its stub is bound to).
    pub fn lookup_handle(&self, name: &str) -> Option<Symbol> {
        let (key, export) = self.exports.get_key_value(name)?;
        let u = self.find(export.unit)?;
        Some(Symbol::new(export.addr, u.id, key.clone(), u.life.clone()))
    }

    /// The unit whose definition the stub of `name` runs now: `None` if the name has no
    /// stub, or its stub traps (every unit that defined it with stubs was unloaded).
    pub fn bound(&self, name: &str) -> Option<UnitId> {
        self.stubs.get(name)?.bound
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
        stats.stub_bytes = self.stubs.mapped_bytes();
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
    /// from it are dangling afterwards (its [`Symbol`] handles return
    /// [`Error::UnitUnloaded`]); later units that resolved symbols to it directly
    /// (including symbols of COMDAT groups it loaded first) must be unloaded first.
    ///
    /// The stubs bound to the unit go to the latest remaining unit loaded with stubs that
    /// defines the name, or, if none does, to a trap (`ud2`): a call through them then
    /// raises `SIGILL` instead of running freed memory. No thread may be running the
    /// unit's code, through a stub or otherwise; calls through its handles are counted,
    /// and while one runs the unit stays loaded and this returns [`Error::UnitInUse`].
    ///
    /// C++ `thread_local` objects of the unit that the calling thread made are destroyed
    /// first (as at its exit); while other threads that have not exited still hold some,
    /// the unit stays loaded and this returns [`Error::ThreadLocalsInUse`]. Each thread's
    /// TLS blocks of the unit are freed.
    pub fn unload(&mut self, unit: UnitId) -> Result<(), Error> {
        let index = self.index(unit)?;
        let u = self.units.get(index).ok_or(Error::UnknownUnit(unit))?;
        u.life
            .end()
            .map_err(|calls| Error::UnitInUse { unit, calls })?;
        if let Err(destructors) = u.end_thread_destructors() {
            u.life.revive();
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
        self.outlived = true;
        removed.keep_until_exit()
    }

    fn index(&self, unit: UnitId) -> Result<usize, Error> {
        // Units stay in load order, and ids grow with it.
        self.units
            .binary_search_by_key(&unit, |u| u.id)
            .map_err(|_| Error::UnknownUnit(unit))
    }

    fn find(&self, unit: UnitId) -> Option<&Unit> {
        self.units.get(self.index(unit).ok()?)
    }

    /// Gives each exported function of a unit with stubs a stub (trapping until
    /// `publish` binds it), before the unit is published, so that a failure leaves
    /// every table as it was.
    fn make_stubs(&mut self, unit: &Unit) -> Result<(), Error> {
        if unit.binding != Binding::Stubs {
            return Ok(());
        }
        for (name, export) in unit.exported() {
            if export.is_code {
                self.stubs
                    .get_or_make(name)
                    .map_err(|source| Error::Memory {
                        op: "mmap (stubs)",
                        source,
                    })?;
            }
        }
        Ok(())
    }

    /// Makes a new unit's exports visible: a unit with stubs binds the stubs of its
    /// functions to itself and takes every name it exports (the latest wins); a unit
    /// bound directly takes only names nobody exports yet (the first wins).
    fn publish(&mut self, unit: &Unit) {
        for (name, export) in unit.exported() {
            let export = self.published(unit, name, export);
            if unit.binding == Binding::Stubs {
                if let Some(s) = unit.symbols.get(name).filter(|_| export.is_code) {
                    self.stubs.bind(name, unit.id, s.addr);
                }
                self.exports.insert(name.clone(), export);
            } else {
                self.exports.entry(name.clone()).or_insert(export);
            }
        }
    }

    /// An export of `unit` as callers see it: a function of a unit with stubs is its stub.
    fn published(&self, unit: &Unit, name: &str, export: Export) -> Export {
        match self.stubs.get(name) {
            Some(stub) if unit.binding == Binding::Stubs && export.is_code => Export {
                addr: self.stubs.address(stub),
                ..export
            },
            _ => export,
        }
    }

    /// The export of `name` that callers get from the loaded units: the latest loaded
    /// with stubs that exports it, else the first loaded directly.
    fn preferred_export(&self, name: &str) -> Option<Export> {
        let with_stubs = self
            .units
            .iter()
            .rev()
            .filter(|u| u.binding == Binding::Stubs);
        let direct = self.units.iter().filter(|u| u.binding == Binding::Direct);
        with_stubs
            .chain(direct)
            .find_map(|u| u.export_of(name).map(|e| self.published(u, name, e)))
    }

    fn unit_mut(&mut self, unit: UnitId) -> Result<&mut Unit, Error> {
        self.units
            .iter_mut()
            .find(|u| u.id == unit)
            .ok_or(Error::UnknownUnit(unit))
    }

    /// Forgets the exported names, stubs and COMDAT groups of a unit that has left
    /// `self.units`, as if the unit had never been loaded: each name it provided goes to
    /// the unit that would have it then (the latest with stubs, else the first loaded
    /// directly), and each stub bound to it to the latest remaining unit with stubs that
    /// defines the name, or to the stub's trap.
    fn forget(&mut self, removed: &Unit) {
        for name in self.stubs.bound_to(removed.id) {
            let next = self
                .units
                .iter()
                .rev()
                .filter(|u| u.binding == Binding::Stubs)
                .find_map(|u| {
                    let s = u.export_of(&name).filter(|e| e.is_code)?;
                    Some((u.id, s.addr))
                });
            match next {
                Some((unit, addr)) => self.stubs.bind(&name, unit, addr),
                None => self.stubs.unbind(&name),
            }
        }
        for (name, _) in removed.exported() {
            if self.exports.get(name).is_none_or(|e| e.unit != removed.id) {
                continue;
            }
            let next = self.preferred_export(name);
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
            // A unit whose thread_local destructors are pending in other threads, or
            // that other threads are calling through its handles, stays mapped for them,
            // as if kept until exit.
            if unit.life.end().is_err() || unit.end_thread_destructors().is_err() {
                self.outlived = true;
                let _ = unit.keep_until_exit();
            } else {
                drop(unit);
            }
        }
        if self.outlived {
            self.stubs.leak();
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
