//! Symbol handles: an address together with the lifetime of the unit it belongs to, so
//! that the safe call API refuses to call into a unit that is gone.
//!
//! Each unit has one [`Life`], shared by every [`Symbol`] handed out for it: whether the
//! unit is still loaded, and how many calls through its handles are running. A call
//! counts itself in, then checks that the unit is loaded; an unload marks the unit gone,
//! then checks that no call is running (and, if one is, marks it loaded again and
//! refuses). Both sides use sequentially consistent operations, so either the call sees
//! the unit gone, or the unload sees the call: no call starts into freed memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::error::Error;
use crate::{UnitId, call};

/// Whether a unit is loaded, and the calls running through its handles.
#[derive(Debug)]
pub(crate) struct Life {
    loaded: AtomicBool,
    calls: AtomicUsize,
}

impl Life {
    pub(crate) fn new() -> Arc<Life> {
        Arc::new(Life {
            loaded: AtomicBool::new(true),
            calls: AtomicUsize::new(0),
        })
    }

    /// Marks the unit gone unless calls through its handles are running; returns how
    /// many are.
    pub(crate) fn end(&self) -> Result<(), usize> {
        self.loaded.store(false, Ordering::SeqCst);
        match self.calls.load(Ordering::SeqCst) {
            0 => Ok(()),
            running => {
                self.loaded.store(true, Ordering::SeqCst);
                Err(running)
            }
        }
    }

    /// Marks the unit loaded again (an unload that ended its life was refused later).
    pub(crate) fn revive(&self) {
        self.loaded.store(true, Ordering::SeqCst);
    }

    fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::SeqCst)
    }

    /// Runs `f` counted as a call into the unit, or returns `None` if it is gone.
    fn enter<T>(&self, f: impl FnOnce() -> T) -> Option<T> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let result = self.is_loaded().then(f);
        self.calls.fetch_sub(1, Ordering::SeqCst);
        result
    }
}

/// A global symbol of a loaded unit, from [`crate::Linker::symbol_handle`] or
/// [`crate::Linker::lookup_handle`]: its address and the lifetime of its unit.
///
/// [`Symbol::call_i64`] and [`Symbol::call_main`] call the symbol only while its unit is
/// loaded; once the unit is unloaded they return [`Error::UnitUnloaded`], and while one of
/// them runs in any thread, [`crate::Linker::unload`] of the unit refuses
/// ([`Error::UnitInUse`]). For a function of a unit loaded with
/// [`crate::Binding::Stubs`] the address is the name's stub, so a call runs the name's
/// latest definition.
///
/// ```no_run
/// use jitcache_linker::{Linker, ObjectFile};
/// let bytes = std::fs::read("square.o")?;
/// let mut linker = Linker::new();
/// let unit = linker.load(&[ObjectFile { name: "square.o", bytes: &bytes }])?;
/// let square = linker.symbol_handle(unit, "square").expect("square is defined");
/// assert_eq!(square.call_i64(&[7])?, 49);
/// linker.unload(unit)?;
/// assert!(square.call_i64(&[7]).is_err(), "the unit is gone: an error, not a jump");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Symbol {
    addr: usize,
    unit: UnitId,
    name: Arc<str>,
    life: Arc<Life>,
}

impl std::fmt::Debug for Symbol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Symbol")
            .field("name", &self.name)
            .field("unit", &self.unit)
            .field("addr", &format_args!("{:#x}", self.addr))
            .field("loaded", &self.is_loaded())
            .finish()
    }
}

impl Symbol {
    pub(crate) fn new(addr: usize, unit: UnitId, name: Arc<str>, life: Arc<Life>) -> Symbol {
        Symbol {
            addr,
            unit,
            name,
            life,
        }
    }

    /// The raw address (a stub's for a function bound through stubs). It dangles once
    /// the unit is unloaded; the handle's own calls check that, a raw call cannot.
    pub fn addr(&self) -> usize {
        self.addr
    }

    /// The unit the symbol belongs to.
    pub fn unit(&self) -> UnitId {
        self.unit
    }

    /// The symbol's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the symbol's unit is still loaded.
    pub fn is_loaded(&self) -> bool {
        self.life.is_loaded()
    }

    /// Calls the symbol as `int64_t f(int64_t, ...)` with up to six integer arguments, as
    /// [`call::call_i64`] does, if its unit is still loaded; [`Error::UnitUnloaded`]
    /// otherwise.
    ///
    /// The trust model is [`call`]'s: loading the unit vouched for its code, and the
    /// caller vouches that the symbol is a function with that C signature.
    pub fn call_i64(&self, args: &[i64]) -> Result<i64, Error> {
        self.life
            // SAFETY: the unit is loaded for the whole call (counted in `enter`, so an
            // unload refuses until it returns) and the address is one of its symbols (or
            // the name's stub, bound to a loaded unit); the signature is the caller's
            // promise, per the trust model.
            .enter(|| unsafe { call::call_i64(self.addr, args) })
            .unwrap_or_else(|| Err(self.unloaded()))
    }

    /// Calls the symbol as `int main(int, char **, char **)`, as [`call::call_main`] does,
    /// if its unit is still loaded; [`Error::UnitUnloaded`] otherwise.
    pub fn call_main(&self, argv: &[String]) -> Result<i32, Error> {
        self.life
            // SAFETY: as in `call_i64`: the unit stays loaded for the call.
            .enter(|| unsafe { call::call_main(self.addr, argv) })
            .ok_or_else(|| self.unloaded())
    }

    fn unloaded(&self) -> Error {
        Error::UnitUnloaded {
            unit: self.unit,
            symbol: self.name.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_refuses_while_a_call_runs_and_calls_after_end_are_refused() {
        let life = Life::new();
        let during = life.enter(|| life.end());
        assert_eq!(during, Some(Err(1)), "unload refused during the call");
        assert!(life.is_loaded());
        assert_eq!(life.end(), Ok(()));
        assert_eq!(life.enter(|| 7), None, "no call after the unit is gone");
    }
}
