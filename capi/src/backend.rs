//! Backend handles: the system C/C++ compiler, and compile callbacks of the host.

use std::ffi::{c_char, c_void};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use jitcache_rs::backends::{self, Backend, BackendIdentity, CcBackend, CcConfig, Language};

use crate::args::{Out, base_dir_arg, opt_str_arg, ref_arg};
use crate::boundary::guard;
use crate::cache::{JitcacheCache, cache_obj};
use crate::compile::CompileFn;
use crate::handles::{self, Gone, Kind, Object};
use crate::key::{IdentityC, read_identity, string_array};
use crate::status::{ApiError, Status};

/// `jitcache_backend`: opaque to C, never dereferenced (see `handles`).
pub struct JitcacheBackend {
    _private: [u8; 0],
}

/// `jitcache_cc_config`: how to run the system compiler.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct CcConfigC {
    /// The compiler: a name looked up in PATH or a path; NULL for `cc` / `c++`.
    pub compiler: *const c_char,
    /// `JITCACHE_LANG_C` (0) or `JITCACHE_LANG_CXX` (1).
    pub language: i32,
    /// Flags, in order.
    pub flags: *const *const c_char,
    /// How many flags.
    pub flags_count: usize,
}

/// `jitcache_cc_options`: the settings of a system-compiler backend that are not part of
/// its configuration (`jitcache_cc_backend_new2`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct CcOptionsC {
    /// The base directory (UTF-8), or NULL for none.
    pub base_dir: *const c_char,
    /// The cache whose directory keeps the compiler probe, or NULL for none.
    pub probe_cache: *mut JitcacheCache,
}

/// `jitcache_callback_options`: how a callback backend's compiles depend on files
/// (`jitcache_callback_backend_new2`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct CallbackOptionsC {
    /// Nonzero: the callback reports what each compile read.
    pub reports_inputs: i32,
    /// The base directory (UTF-8), or NULL for none.
    pub base_dir: *const c_char,
}

/// A pointer the host passes through jitcache to its own callbacks.
#[derive(Clone, Copy, Debug)]
pub(crate) struct UserPtr(pub(crate) *mut c_void);

impl UserPtr {
    /// The pointer (a method, so closures capture the whole `Send + Sync` wrapper).
    pub(crate) fn get(self) -> *mut c_void {
        self.0
    }
}

// SAFETY: jitcache never dereferences the pointer; it only hands it back to the host's
// callbacks, whose thread-safety the header makes the host's responsibility (a callback
// is called on the thread of the call that uses it, and concurrently only if the host
// uses the backend or cache from several threads at once).
unsafe impl Send for UserPtr {}
// SAFETY: as for Send: the pointer is an opaque value to jitcache.
unsafe impl Sync for UserPtr {}

/// A compile callback and the identity the host describes it with.
pub(crate) struct CallbackDef {
    pub(crate) identity: BackendIdentity,
    pub(crate) func: CompileFn,
    pub(crate) user: UserPtr,
    /// Whether the callback reports the files each compile read (the facade then keeps
    /// a manifest under each unit's key).
    pub(crate) reports_inputs: bool,
    /// Absolute and normalized: relative reported paths are taken relative to it, and
    /// the cache records input paths under it relative to it.
    pub(crate) base_dir: Option<PathBuf>,
}

/// The object behind a backend handle.
pub(crate) enum BackendObj {
    /// The system compiler.
    Cc(CcBackend),
    /// A compile callback.
    Callback(CallbackDef),
}

impl BackendObj {
    /// The identity that goes into keys.
    pub(crate) fn identity(&self) -> &BackendIdentity {
        match self {
            BackendObj::Cc(cc) => cc.identity(),
            BackendObj::Callback(def) => &def.identity,
        }
    }

    /// The base directory: relative unit paths are taken relative to it.
    pub(crate) fn base_dir(&self) -> Option<&Path> {
        match self {
            BackendObj::Cc(cc) => cc.base_dir(),
            BackendObj::Callback(def) => def.base_dir.as_deref(),
        }
    }
}

/// The object of a live backend handle.
pub(crate) fn backend_obj(handle: *const JitcacheBackend) -> Result<Arc<BackendObj>, ApiError> {
    match handles::get(handles::from_ptr(handle), Kind::Backend)? {
        Object::Backend(backend) => Ok(backend),
        _ => Err(ApiError::new(Status::InvalidHandle, "not a backend handle")),
    }
}

fn register(backend: BackendObj, out: &Out<*mut JitcacheBackend>) -> Result<(), ApiError> {
    let handle = handles::insert(|_| Object::Backend(Arc::new(backend)))?;
    // SAFETY: checked by Out; writable by the caller's contract.
    unsafe { out.write(handles::to_ptr(handle)) };
    Ok(())
}

/// Builds a system-compiler backend from its configuration and options.
///
/// # Safety
///
/// Pointers follow the header's contract.
unsafe fn cc_backend(
    config: *const CcConfigC,
    options: *const CcOptionsC,
    out: &Out<*mut JitcacheBackend>,
) -> Result<(), ApiError> {
    // SAFETY: forwarded contract.
    let config = unsafe { ref_arg(config, "config") }?;
    let lang = match config.language {
        0 => Language::C,
        1 => Language::Cpp,
        other => {
            return Err(ApiError::invalid(format!(
                "config.language is {other}: expected JITCACHE_LANG_C (0) or JITCACHE_LANG_CXX (1)"
            )));
        }
    };
    // SAFETY: forwarded contract.
    let compiler = unsafe { opt_str_arg(config.compiler, "config.compiler") }?
        .unwrap_or(lang.default_compiler());
    // SAFETY: forwarded contract.
    let flags = unsafe { string_array(config.flags, config.flags_count, "config.flags") }?;
    let mut builder = CcBackend::builder(CcConfig {
        compiler: PathBuf::from(compiler),
        lang,
        flags,
    });
    if !options.is_null() {
        // SAFETY: forwarded contract.
        let options = unsafe { ref_arg(options, "options") }?;
        // SAFETY: forwarded contract.
        if let Some(dir) = unsafe { opt_str_arg(options.base_dir, "options.base_dir") }? {
            builder = builder.base_dir(base_dir_arg(dir, "options.base_dir")?);
        }
        if !options.probe_cache.is_null() {
            // A bypassed cache has no directory to keep the probe in: it is probed anew.
            if let Some(dir) = cache_obj(options.probe_cache)?
                .cache
                .component_dir(PROBE_DIR)
            {
                builder = builder.probe_cache(dir);
            }
        }
    }
    let cc = builder.build().map_err(|err| match err {
        backends::Error::BaseDir { .. } => ApiError::invalid(err.to_string()),
        other => ApiError::from(other),
    })?;
    register(BackendObj::Cc(cc), out)
}

/// The cache's component directory for remembered compiler probes (the one `jitcache
/// run` uses too).
const PROBE_DIR: &str = "cc-probes";

/// `jitcache_cc_backend_new`: a backend running the system C or C++ compiler.
///
/// # Safety
///
/// Pointers follow the header's contract.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn jitcache_cc_backend_new(
    config: *const CcConfigC,
    out_backend: *mut *mut JitcacheBackend,
) -> Status {
    guard(|| {
        let out = Out::new(out_backend, "out_backend")?;
        // SAFETY: checked by Out; writable by contract.
        unsafe { out.write(std::ptr::null_mut()) };
        // SAFETY: forwarded contract.
        unsafe { cc_backend(config, std::ptr::null(), &out) }
    })
}

/// `jitcache_cc_backend_new2`: a backend running the system C or C++ compiler, with a
/// base directory and a remembered probe.
///
/// # Safety
///
/// Pointers follow the header's contract.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn jitcache_cc_backend_new2(
    config: *const CcConfigC,
    options: *const CcOptionsC,
    out_backend: *mut *mut JitcacheBackend,
) -> Status {
    guard(|| {
        let out = Out::new(out_backend, "out_backend")?;
        // SAFETY: checked by Out; writable by contract.
        unsafe { out.write(std::ptr::null_mut()) };
        // SAFETY: forwarded contract.
        unsafe { cc_backend(config, options, &out) }
    })
}

/// Builds a callback backend.
///
/// # Safety
///
/// Pointers follow the header's contract.
unsafe fn callback_backend(
    identity: *const IdentityC,
    options: *const CallbackOptionsC,
    compile: Option<CompileFn>,
    user_data: *mut c_void,
    out: &Out<*mut JitcacheBackend>,
) -> Result<(), ApiError> {
    let func = compile.ok_or_else(|| ApiError::null("compile"))?;
    // SAFETY: forwarded contract.
    let identity = unsafe { read_identity(identity) }?;
    let (reports_inputs, base_dir) = if options.is_null() {
        (false, None)
    } else {
        // SAFETY: forwarded contract.
        let options = unsafe { ref_arg(options, "options") }?;
        // SAFETY: forwarded contract.
        let dir = unsafe { opt_str_arg(options.base_dir, "options.base_dir") }?
            .map(|dir| base_dir_arg(dir, "options.base_dir"))
            .transpose()?;
        (options.reports_inputs != 0, dir)
    };
    register(
        BackendObj::Callback(CallbackDef {
            identity,
            func,
            user: UserPtr(user_data),
            reports_inputs,
            base_dir,
        }),
        out,
    )
}

/// `jitcache_callback_backend_new`: a backend whose compiles are done by `compile`.
///
/// # Safety
///
/// Pointers follow the header's contract; `compile` is NULL or a function of the
/// `jitcache_compile_fn` type.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn jitcache_callback_backend_new(
    identity: *const IdentityC,
    compile: Option<CompileFn>,
    user_data: *mut c_void,
    out_backend: *mut *mut JitcacheBackend,
) -> Status {
    guard(|| {
        let out = Out::new(out_backend, "out_backend")?;
        // SAFETY: checked by Out; writable by contract.
        unsafe { out.write(std::ptr::null_mut()) };
        // SAFETY: forwarded contract.
        unsafe { callback_backend(identity, std::ptr::null(), compile, user_data, &out) }
    })
}

/// `jitcache_callback_backend_new2`: a callback backend whose compiles may read files,
/// which the callback reports.
///
/// # Safety
///
/// Pointers follow the header's contract; `compile` is NULL or a function of the
/// `jitcache_compile_fn` type.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn jitcache_callback_backend_new2(
    identity: *const IdentityC,
    options: *const CallbackOptionsC,
    compile: Option<CompileFn>,
    user_data: *mut c_void,
    out_backend: *mut *mut JitcacheBackend,
) -> Status {
    guard(|| {
        let out = Out::new(out_backend, "out_backend")?;
        // SAFETY: checked by Out; writable by contract.
        unsafe { out.write(std::ptr::null_mut()) };
        // SAFETY: forwarded contract.
        unsafe { callback_backend(identity, options, compile, user_data, &out) }
    })
}

/// `jitcache_backend_free`: frees a backend handle. NULL is a no-op.
///
/// # Safety
///
/// `backend` is any value; it is only used as a handle number.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn jitcache_backend_free(backend: *mut JitcacheBackend) -> Status {
    guard(|| {
        if backend.is_null() {
            return Ok(());
        }
        let object = handles::remove(handles::from_ptr(backend), Kind::Backend, Gone::Freed)?;
        drop(object);
        Ok(())
    })
}
