//! Calls into foreign code: entry points of loaded units, their constructors and
//! destructors, the dynamic loader and C stdio (the unwinders' frame registries are in
//! `unwind.rs`).
//!
//! One of the modules with `unsafe` (with `memory.rs`, `arena.rs` and `unwind.rs`).
//!
//! # Trust model
//!
//! Loading a unit is the act of trust: [`crate::Linker::load`] already runs the unit's
//! constructors, which can do anything the process can. The caller vouches for the code
//! when it loads it, and for the signature when it calls an entry with the function
//! matching its C signature. What it cannot vouch for with a bare address is that the
//! unit is still loaded, so the raw-address helpers here, [`call_main`] and [`call_i64`],
//! are `unsafe fn`; the safe way to call is through a [`crate::Symbol`] handle
//! ([`crate::Symbol::call_i64`], [`crate::Symbol::call_main`]), which checks the unit's
//! lifetime and returns [`Error::UnitUnloaded`] instead of jumping. The linker itself
//! never executes anything before the memory is protected (W^X) and the relocations are
//! applied in full.

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::sync::Mutex;

use crate::error::Error;

unsafe extern "C" {
    /// glibc: runs the `__cxa_atexit` handlers registered with this DSO handle.
    fn __cxa_finalize(dso: *mut c_void);
    static environ: *const *const c_char;
}

/// Calls `int main(int argc, char **argv, char **envp)` at `addr` with `argv` (the
/// first element is `argv[0]`) and the process environment, then flushes C stdio
/// (`fflush(NULL)`) and returns main's result. An argument with a NUL byte is cut at the
/// NUL. Address 0 is never called: the result is then -1.
///
/// # Safety
///
/// `addr` is 0 or the address of a function with that C signature in a unit that stays
/// loaded for the whole call (or any other code that stays mapped, a stub included).
/// [`crate::Symbol::call_main`] is the checked alternative.
///
/// ```no_run
/// use jitcache_linker::{Linker, ObjectFile, call};
/// let bytes = std::fs::read("hello.o")?;
/// let mut linker = Linker::new();
/// let unit = linker.load(&[ObjectFile { name: "hello.o", bytes: &bytes }])?;
/// let main = linker.symbol(unit, "main").expect("main is defined");
/// // SAFETY: `main` is `int main(int, char **)` of a unit that stays loaded here.
/// let status = unsafe { call::call_main(main, &["hello".to_owned()]) };
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub unsafe fn call_main(addr: usize, argv: &[String]) -> i32 {
    if addr == 0 {
        return -1;
    }
    let args: Vec<CString> = argv
        .iter()
        .map(|a| CString::new(a.split('\0').next().unwrap_or_default()).unwrap_or_default())
        .collect();
    let mut ptrs: Vec<*mut c_char> = args.iter().map(|a| a.as_ptr().cast_mut()).collect();
    ptrs.push(std::ptr::null_mut());
    let argc = c_int::try_from(args.len()).unwrap_or(c_int::MAX);
    type Main = extern "C" fn(c_int, *mut *mut c_char, *const *const c_char) -> c_int;
    // SAFETY: the caller's contract: `addr` is a loaded `main`-like function. Passing envp to a
    // two-argument main is harmless in the x86-64 C calling convention. `ptrs` is a
    // NULL-terminated array of NUL-terminated strings that outlive the call.
    let status = unsafe {
        let main: Main = std::mem::transmute::<usize, Main>(addr);
        main(argc, ptrs.as_mut_ptr(), environ)
    };
    flush_c_stdio();
    status
}

/// Calls a function `int64_t f(int64_t, ...)` with up to six integer arguments (all in
/// registers in the System V ABI) and returns its result. A function that takes fewer
/// arguments ignores the extra registers; one that returns a narrower integer leaves
/// the upper bits unspecified.
///
/// # Safety
///
/// `addr` is 0 or the address of such a function in a unit that stays loaded for the
/// whole call (or other code that stays mapped, a stub included).
/// [`crate::Symbol::call_i64`] is the checked alternative.
pub unsafe fn call_i64(addr: usize, args: &[i64]) -> Result<i64, Error> {
    if args.len() > 6 {
        return Err(Error::TooManyArguments { given: args.len() });
    }
    let mut a = [0_i64; 6];
    a[..args.len()].copy_from_slice(args);
    if addr == 0 {
        return Err(Error::NullAddress);
    }
    type F6 = extern "C" fn(i64, i64, i64, i64, i64, i64) -> i64;
    // SAFETY: the caller's contract: `addr` is such a function, loaded. Every argument
    // travels in a register (rdi..r9), so a callee declared with fewer integer parameters
    // reads only the ones it declares.
    let f: F6 = unsafe { std::mem::transmute::<usize, F6>(addr) };
    Ok(f(a[0], a[1], a[2], a[3], a[4], a[5]))
}

/// Flushes every C stdio stream (`fflush(NULL)`), so that output of loaded code written
/// through `printf` appears before the host's own.
pub fn flush_c_stdio() {
    // SAFETY: fflush(NULL) flushes all open output streams; it has no preconditions.
    unsafe {
        libc::fflush(std::ptr::null_mut());
    }
}

/// Runs constructor or destructor entries (`void f(void)`), in the given order; entries
/// 0 and -1 are skipped, as glibc does.
pub(crate) fn run_entries(entries: impl Iterator<Item = usize>) {
    for addr in entries {
        if addr == 0 || addr == usize::MAX {
            continue;
        }
        // SAFETY: the entries come from the `.init_array`/`.fini_array` of a unit that the
        // caller chose to load (trust model above), after full relocation and protection.
        unsafe {
            let f: extern "C" fn() = std::mem::transmute::<usize, extern "C" fn()>(addr);
            f();
        }
    }
}

/// Runs the `__cxa_atexit` handlers (C++ static destructors) registered with this
/// unit's DSO handle.
pub(crate) fn cxa_finalize(dso: usize) {
    // SAFETY: `dso` is the `__dso_handle` the unit's code passed to `__cxa_atexit`; the
    // unit is still mapped. Handlers registered with other handles are not touched.
    unsafe { __cxa_finalize(dso as *mut c_void) }
}

/// Work for the at-exit runner: a unit kept until process exit.
pub(crate) struct ExitWork {
    pub dso: Option<usize>,
    pub fini: Vec<usize>,
}

static EXIT_WORK: Mutex<Vec<ExitWork>> = Mutex::new(Vec::new());

extern "C" fn run_one_exit_work() {
    let work = EXIT_WORK.lock().ok().and_then(|mut w| w.pop());
    if let Some(work) = work {
        if let Some(dso) = work.dso {
            cxa_finalize(dso);
        }
        run_entries(work.fini.into_iter().rev());
    }
}

/// Arranges for a unit's destructors to run from `atexit`, like a natively linked
/// program's (after handlers registered later, LIFO).
pub(crate) fn at_exit(work: ExitWork) -> Result<(), Error> {
    if let Ok(mut w) = EXIT_WORK.lock() {
        w.push(work);
    }
    // SAFETY: `run_one_exit_work` is a plain `extern "C" fn()` with static lifetime.
    let rc = unsafe { libc::atexit(run_one_exit_work) };
    if rc != 0 {
        return Err(Error::Memory {
            op: "atexit",
            source: std::io::Error::other("atexit refused"),
        });
    }
    Ok(())
}

/// A library opened with `dlopen`. Never closed: code of units (even ones kept until
/// exit) may point into it.
pub(crate) struct Library(*mut c_void);

// SAFETY: a dlopen handle is a process-global token; dlsym on it is thread-safe.
unsafe impl Send for Library {}
// SAFETY: as above; `&Library` only allows dlsym.
unsafe impl Sync for Library {}

impl Library {
    /// `dlopen(path, RTLD_NOW | RTLD_LOCAL)`.
    pub(crate) fn open(path: &str) -> Result<Library, String> {
        let c = CString::new(path).map_err(|_| "name contains a NUL byte".to_owned())?;
        // SAFETY: `c` is a valid C string; dlopen may run the library's constructors,
        // which is what asking for a library means.
        let handle = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        if handle.is_null() {
            return Err(dlerror());
        }
        Ok(Library(handle))
    }

    /// The address of `name` in this library.
    pub(crate) fn symbol(&self, name: &CStr) -> Option<usize> {
        // SAFETY: the handle is live (never closed) and `name` is a valid C string.
        let p = unsafe { libc::dlsym(self.0, name.as_ptr()) };
        (!p.is_null()).then_some(p as usize)
    }
}

/// The address of `name` in the process's global scope (`dlsym(RTLD_DEFAULT, ..)`).
pub(crate) fn host_symbol(name: &CStr) -> Option<usize> {
    // SAFETY: RTLD_DEFAULT is a valid pseudo-handle and `name` a valid C string.
    let p = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
    (!p.is_null()).then_some(p as usize)
}

fn dlerror() -> String {
    // SAFETY: dlerror returns null or a NUL-terminated string valid until the next dl call
    // on this thread; we copy it at once.
    unsafe {
        let p = libc::dlerror();
        if p.is_null() {
            "unknown dlopen error".to_owned()
        } else {
            CStr::from_ptr(p).to_string_lossy().into_owned()
        }
    }
}

/// A shared object opened with `dlopen(path, RTLD_NOW | RTLD_LOCAL)` and closed with
/// `dlclose` when dropped. It exists so that callers (benches, tests) can compare the
/// in-process linker with the system's dynamic loader on the same code; addresses from
/// it dangle once it is dropped.
pub struct SharedObject(*mut c_void);

// SAFETY: a dlopen handle may be used and closed from any thread.
unsafe impl Send for SharedObject {}

impl SharedObject {
    /// Opens the shared object at `path` (which should contain a `/`, or it is searched
    /// for like any library name). Opening runs its constructors: the same trust as loading.
    pub fn open(path: &std::path::Path) -> Result<SharedObject, Error> {
        let name = path.display().to_string();
        let c = CString::new(name.clone()).map_err(|_| Error::Library {
            name: name.clone(),
            reason: "NUL in path".into(),
        })?;
        // SAFETY: `c` is a valid C string; see the module's trust model for constructors.
        let handle = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        if handle.is_null() {
            return Err(Error::Library {
                name,
                reason: dlerror(),
            });
        }
        Ok(SharedObject(handle))
    }

    /// `dlsym` of `name` in this object.
    pub fn symbol(&self, name: &str) -> Option<usize> {
        let c = CString::new(name).ok()?;
        // SAFETY: the handle is open until `self` drops; `c` is a valid C string.
        let p = unsafe { libc::dlsym(self.0, c.as_ptr()) };
        (!p.is_null()).then_some(p as usize)
    }
}

impl Drop for SharedObject {
    fn drop(&mut self) {
        // SAFETY: the handle came from a successful dlopen and is closed exactly once.
        unsafe {
            libc::dlclose(self.0);
        }
    }
}
