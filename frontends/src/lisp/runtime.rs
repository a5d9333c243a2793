//! The runtime that compiled Lisp code calls: printing and run-time errors.
//!
//! Generated code reaches these functions through the symbols in
//! [`SYMBOLS`]; a linker resolves them with [`resolve`]. They use the C
//! calling convention of the host and never unwind.
//!
//! # Output buffering
//!
//! `println` output goes to an in-process buffer that is written to the
//! process's standard output (through a locked Rust `Stdout`) when it passes
//! 64 KiB, at every newline when standard output is a terminal (like C
//! stdio), and when [`flush`] is called. **A host must call [`flush`] after
//! the program's `main` returns, and before writing to standard output itself**,
//! or output is lost or reordered. The division-by-zero handler flushes
//! before it exits. Write errors (a closed pipe) are ignored by the printing
//! functions, as C's `printf` ignores them; [`flush`] reports them.
//!
//! # Division by zero
//!
//! `(/ a 0)` and `(mod a 0)` call [`jitcache_lisp_rt_div_by_zero`] with the
//! definition's id and the number of the `/` or `mod` form within it. The
//! handler flushes the output, prints
//! `error: division by zero in `NAME` at line L, column C` to standard error,
//! runs the hook set with [`set_before_exit`], and exits the process with
//! status 1. The position comes from the program registered with
//! [`register_program`], i.e. the source being run now, so it stays right when
//! the code came from a cache compiled from a differently formatted source.
//! Without a registered program the message names the id and site instead.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::{self, IsTerminal, Write};
use std::sync::{Arc, Mutex};

use jitcache::store::sync::lock;

use super::error::Pos;
use super::program::{Program, Shared};

/// `extern "C" fn(value: i64, last: i64)`: prints `value`, then a newline if
/// `last` is non-zero, else a space.
pub const PRINT_I64: &str = "jitcache_lisp_rt_print_i64";
/// `extern "C" fn()`: prints a newline (`(println)` with no arguments).
pub const NEWLINE: &str = "jitcache_lisp_rt_newline";
/// `extern "C" fn(def_id: i64, site: i64) -> !`: reports a division by zero and exits with status 1.
pub const DIV_BY_ZERO: &str = "jitcache_lisp_rt_div_by_zero";

/// Every runtime symbol generated code may import.
pub const SYMBOLS: &[&str] = &[PRINT_I64, NEWLINE, DIV_BY_ZERO];

/// Buffered output size that triggers a write.
const FLUSH_AT: usize = 64 * 1024;

struct Out {
    buf: Vec<u8>,
    /// Whether stdout is a terminal (flush at newlines); computed on first use.
    line_mode: Option<bool>,
}

static OUT: Mutex<Out> = Mutex::new(Out {
    buf: Vec::new(),
    line_mode: None,
});

/// What a division-by-zero report says about a definition.
struct DefInfo {
    name: String,
    sites: Vec<Pos>,
}

/// The registered programs: the definitions of those already indexed, and
/// the programs registered since (indexed when a report needs them, so that
/// registering costs nothing at start-up).
struct Registry {
    defs: BTreeMap<u64, DefInfo>,
    pending: Vec<Arc<Shared>>,
}

/// Programs registered but not yet indexed are indexed once there are this
/// many, so that the registry does not keep every program alive.
const MAX_PENDING: usize = 8;

impl Registry {
    /// Indexes the pending programs, in the order they were registered (a
    /// later one replaces an earlier one's definitions).
    fn index_pending(&mut self) {
        for shared in self.pending.drain(..) {
            for (name, arity, sites) in shared.def_infos() {
                self.defs.insert(
                    super::def_id(&super::mangle_symbol(name, arity)),
                    DefInfo {
                        name: name.to_owned(),
                        sites: sites.to_vec(),
                    },
                );
            }
        }
    }
}

static DEFS: Mutex<Registry> = Mutex::new(Registry {
    defs: BTreeMap::new(),
    pending: Vec::new(),
});

static BEFORE_EXIT: Mutex<Option<fn()>> = Mutex::new(None);

fn write_out(buf: &mut Vec<u8>) -> io::Result<()> {
    if buf.is_empty() {
        return Ok(());
    }
    let stdout = io::stdout();
    let mut lock = stdout.lock();
    let r = lock.write_all(buf).and_then(|()| lock.flush());
    buf.clear();
    r
}

impl Out {
    fn after_write(&mut self, newline: bool) {
        let line_mode = *self
            .line_mode
            .get_or_insert_with(|| io::stdout().is_terminal());
        if self.buf.len() >= FLUSH_AT || (newline && line_mode) {
            // Errors are ignored here, as C stdio ignores them; `flush` reports them.
            let _ = write_out(&mut self.buf);
        }
    }
}

/// Writes everything `println` has buffered to standard output and flushes it.
///
/// Call it after running a program's `main`, before the process exits or the
/// host writes to standard output.
pub fn flush() -> io::Result<()> {
    let mut out = lock(&OUT);
    write_out(&mut out.buf)
}

thread_local! {
    /// Output captured by [`capture_output`] on this thread, if capturing.
    static CAPTURE: RefCell<Option<Vec<u8>>> = const { RefCell::new(None) };
}

/// Runs `f` with this thread's `println` output captured instead of printed,
/// and returns `f`'s result with the captured bytes.
///
/// Compiled code runs on the thread that calls it, so this captures the
/// output of the programs `f` runs, and only theirs; other threads keep
/// printing to standard output. Nested captures each see their own output.
pub fn capture_output<R>(f: impl FnOnce() -> R) -> (R, Vec<u8>) {
    let saved = CAPTURE.with(|c| c.borrow_mut().replace(Vec::new()));
    let r = f();
    let captured = CAPTURE.with(|c| std::mem::replace(&mut *c.borrow_mut(), saved));
    (r, captured.unwrap_or_default())
}

/// Appends `bytes` to the capture buffer or the process-wide output buffer.
fn emit(bytes: &[u8], newline: bool) {
    let captured = CAPTURE.with(|c| match c.try_borrow_mut() {
        Ok(mut c) => match c.as_mut() {
            Some(buf) => {
                buf.extend_from_slice(bytes);
                true
            }
            None => false,
        },
        Err(_) => false,
    });
    if !captured {
        let mut out = lock(&OUT);
        out.buf.extend_from_slice(bytes);
        out.after_write(newline);
    }
}

/// Prints `value`, followed by a newline if `last` is non-zero, else a space.
pub extern "C" fn jitcache_lisp_rt_print_i64(value: i64, last: i64) {
    let mut text = [0u8; 24];
    let mut cursor = io::Cursor::new(&mut text[..]);
    // 20 characters at most for an i64, plus the separator: fits in 24.
    let _ = write!(cursor, "{value}{}", if last != 0 { '\n' } else { ' ' });
    let len = usize::try_from(cursor.position()).unwrap_or(0);
    emit(&text[..len], last != 0);
}

/// Prints a newline.
pub extern "C" fn jitcache_lisp_rt_newline() {
    emit(b"\n", true);
}

/// Reports a division by zero in the definition `def_id` (see
/// [`super::def_id`]) at its `site`-th `/` or `mod` form, then exits the
/// process with status 1 (see the module documentation).
pub extern "C" fn jitcache_lisp_rt_div_by_zero(def_id: i64, site: i64) -> ! {
    let _ = flush();
    let message = division_message(def_id, site);
    {
        let stderr = io::stderr();
        let mut err = stderr.lock();
        let _ = writeln!(err, "{message}");
        let _ = err.flush();
    }
    let hook = *lock(&BEFORE_EXIT);
    if let Some(hook) = hook {
        hook();
    }
    std::process::exit(1)
}

/// The message [`jitcache_lisp_rt_div_by_zero`] prints (without the newline).
pub fn division_message(def_id: i64, site: i64) -> String {
    let id = u64::from_ne_bytes(def_id.to_ne_bytes());
    let mut registry = lock(&DEFS);
    registry.index_pending();
    match registry.defs.get(&id) {
        Some(info) => {
            let pos = usize::try_from(site)
                .ok()
                .and_then(|s| info.sites.get(s).copied());
            match pos {
                Some(pos) => format!("error: division by zero in `{}` at {pos}", info.name),
                None => format!("error: division by zero in `{}`", info.name),
            }
        }
        None => format!("error: division by zero (definition id {id:016x}, site {site})"),
    }
}

/// Records the names and `/`/`mod` positions of `program`'s definitions, so
/// that a division by zero is reported with the name and the position in
/// this source. Call it before running code compiled from (or looked up for)
/// `program`. Later registrations replace earlier ones for the same definitions.
///
/// Registering is cheap (the definitions are indexed when a division by zero
/// is reported), so it can be done at every start-up.
pub fn register_program(program: &Program) {
    let mut registry = lock(&DEFS);
    if registry.pending.len() >= MAX_PENDING {
        registry.index_pending();
    }
    registry.pending.push(Arc::clone(program.shared()));
}

/// Sets a function to run just before a run-time error exits the process
/// (for example to flush a cache's bookkeeping); `None` removes it.
pub fn set_before_exit(hook: Option<fn()>) {
    *lock(&BEFORE_EXIT) = hook;
}

/// The address of the runtime function named `symbol` (one of [`SYMBOLS`]),
/// for a linker's symbol resolver; `None` for any other name.
pub fn resolve(symbol: &str) -> Option<usize> {
    let print: extern "C" fn(i64, i64) = jitcache_lisp_rt_print_i64;
    let newline: extern "C" fn() = jitcache_lisp_rt_newline;
    let div: extern "C" fn(i64, i64) -> ! = jitcache_lisp_rt_div_by_zero;
    match symbol {
        PRINT_I64 => Some(print as usize),
        NEWLINE => Some(newline as usize),
        DIV_BY_ZERO => Some(div as usize),
        _ => None,
    }
}
