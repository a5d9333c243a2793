//! A loaded unit: its memory, symbols, unwind registrations and destructors. Dropping a
//! unit tears it down in the reverse order of loading: C++ `__cxa_atexit` handlers of the
//! unit, `.fini_array` (if the constructors ran), unwind deregistration, then its memory
//! (unmapped, or returned to the arena for later units).

use std::sync::Arc;

use crate::call;
use crate::handle::Life;
use crate::link::Linked;
use crate::memory::{Memory, State};
use crate::symbols::{Export, FastMap, UnitSymbol};
use crate::tls::{self, UnitTls};
use crate::unwind::Registration;
use crate::{Binding, LoadOptions, UnitId};

pub(crate) struct Unit {
    pub id: UnitId,
    pub symbols: FastMap<Arc<str>, UnitSymbol>,
    /// COMDAT groups this unit loaded (later units resolve their symbols here).
    pub groups: Vec<Arc<str>>,
    /// Whether its globals are visible to later units ([`crate::LoadOptions::export`]).
    pub exports: bool,
    /// How its exported functions are reached ([`crate::LoadOptions::binding`]).
    pub binding: Binding,
    /// Whether it is loaded, and the calls through its handles (shared with them).
    pub life: Arc<Life>,
    /// Its TLS module (freed before its memory: the template lives there).
    tls: Option<UnitTls>,
    memory: Memory,
    unwind: Registration,
    init: Vec<usize>,
    fini: Vec<usize>,
    dso_handle: Option<usize>,
    constructed: bool,
}

impl Unit {
    /// Pass 9: registers the unwind info of a linked (protected) unit.
    pub(crate) fn new(id: UnitId, linked: Linked, options: &LoadOptions) -> Unit {
        debug_assert_eq!(linked.memory.state(), State::Protected);
        let unwind = if options.register_unwind_info {
            let (read_only, base) = linked.memory.read_only();
            Registration::register(&linked.frames, read_only, base)
        } else {
            Registration::default()
        };
        Unit {
            id,
            symbols: linked.symbols,
            groups: linked.groups,
            exports: options.export,
            binding: options.binding,
            life: Life::new(),
            tls: linked.tls,
            memory: linked.memory,
            unwind,
            init: linked.init,
            fini: linked.fini,
            dso_handle: linked.dso_handle,
            constructed: false,
        }
    }

    /// Pass 10: runs `.preinit_array` and `.init_array`, once.
    pub(crate) fn construct(&mut self) {
        if !self.constructed {
            self.constructed = true;
            call::run_entries(self.init.iter().copied());
        }
    }

    /// Bytes the unit occupies (its pieces of the arena, or its own mapping).
    pub(crate) fn mapped_bytes(&self) -> usize {
        self.memory.len()
    }

    /// The unit's globals that later units see: none unless it exports.
    pub(crate) fn exported(&self) -> impl Iterator<Item = (&Arc<str>, Export)> {
        let id = self.id;
        self.symbols
            .iter()
            .filter(move |(_, s)| self.exports && s.exported)
            .map(move |(name, s)| {
                (
                    name,
                    Export {
                        addr: s.addr,
                        is_code: s.is_code,
                        unit: id,
                    },
                )
            })
    }

    /// The export of `name`, if this unit exports it.
    pub(crate) fn export_of(&self, name: &str) -> Option<Export> {
        let s = self
            .symbols
            .get(name)
            .filter(|s| self.exports && s.exported)?;
        Some(Export {
            addr: s.addr,
            is_code: s.is_code,
            unit: self.id,
        })
    }

    /// The module word and block offset of thread-local global `name`, if the unit
    /// exports it (or, with `hidden`, defines it at all).
    pub(crate) fn thread_local(&self, name: &str, hidden: bool) -> Option<(u64, u64)> {
        self.tls
            .as_ref()
            .filter(|_| hidden || self.exports)?
            .symbol(name, hidden)
    }

    /// How many threads have a TLS block of the unit.
    pub(crate) fn tls_blocks(&self) -> usize {
        self.tls.as_ref().map_or(0, UnitTls::blocks)
    }

    /// Before unloading: runs the calling thread's pending C++ `thread_local` destructors
    /// of the unit, or returns how many other threads still have pending.
    pub(crate) fn end_thread_destructors(&self) -> Result<(), usize> {
        self.dso_handle.map_or(Ok(()), tls::end_thread_destructors)
    }

    /// Whether the unit has a mapping of its own rather than pieces of the arena.
    pub(crate) fn has_own_mapping(&self) -> bool {
        self.memory.is_own_mapping()
    }

    /// Keeps the unit mapped for the rest of the process; its destructors run at exit.
    pub(crate) fn keep_until_exit(self) -> Result<(), crate::Error> {
        let fini = if self.constructed {
            self.fini.clone()
        } else {
            Vec::new()
        };
        let work = call::ExitWork {
            dso: self.dso_handle,
            fini,
        };
        std::mem::forget(self);
        call::at_exit(work)
    }
}

impl Drop for Unit {
    fn drop(&mut self) {
        // Handlers registered with the unit's handle run even if its constructors did
        // not (code of the unit was called and registered them): left registered, they
        // would run at exit into memory that a later unit may have by then.
        if let Some(dso) = self.dso_handle {
            call::cxa_finalize(dso);
        }
        if self.constructed {
            call::run_entries(self.fini.iter().rev().copied());
        }
        self.unwind.deregister();
        // `self.memory` is unmapped or returned to the arena when dropped, after this.
    }
}
