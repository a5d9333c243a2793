//! Get-or-compile: the facade's `get_or_compile_batch` driven from C, with the system
//! compiler or a compile callback as the backend.

use std::ffi::{c_char, c_void};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, ThreadId};

use jitcache_rs::backends::{self, Backend, BackendIdentity, CompiledObject, Inputs, SourceUnit};
use jitcache_rs::store::sync::lock;
use jitcache_rs::{Error, KeyParts, LoadedUnit};

use crate::args::{Out, absolute_path, lossy_str_arg, opt_str_arg, slice_arg, str_arg};
use crate::backend::{BackendObj, CallbackDef, JitcacheBackend, backend_obj};
use crate::boundary::guard;
use crate::cache::{CacheObj, JitcacheCache, cache_obj};
use crate::handles::{self, Gone, Kind, Object};
use crate::key::{KeyPartsC, Parts, read_parts};
use crate::reentrance;
use crate::status::{ApiError, Status};
use crate::unit::{JitcacheUnit, UnitKind, UnitObj};

/// `jitcache_compile_output`: opaque to C, never dereferenced (see `handles`).
pub struct OutputC {
    _private: [u8; 0],
}

/// `jitcache_compile_request`: what a compile callback is asked to compile.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RequestC {
    /// The unit's namespace (as given in its key parts).
    pub ns: *const c_char,
    /// The unit's name.
    pub name: *const c_char,
    /// The unit's bytes.
    pub unit: *const u8,
    /// How many bytes.
    pub unit_len: usize,
    /// The unit's position in the batch (0 for `jitcache_get_or_compile`).
    pub index: usize,
    /// The `call_data` given to the get-or-compile call.
    pub call_data: *mut c_void,
    /// The unit's source file as given to `jitcache_get_or_compile_batch_at`, or NULL.
    pub path: *const c_char,
}

/// `jitcache_compile_fn`: returns 0 after setting an object, nonzero on failure.
pub type CompileFn = unsafe extern "C" fn(
    user_data: *mut c_void,
    request: *const RequestC,
    output: *mut OutputC,
) -> i32;

/// What a compile callback produced so far.
#[derive(Default)]
struct OutputState {
    object: Option<Vec<u8>>,
    error: Option<String>,
    /// Absolute, normalized; in the order reported.
    read: Vec<PathBuf>,
    /// Absolute, normalized; in the order reported.
    absent: Vec<PathBuf>,
    uncacheable: Option<String>,
}

/// The object behind a compile output handle.
#[derive(Default)]
pub(crate) struct OutputObj {
    state: Mutex<OutputState>,
    /// Whether the backend was made to report inputs (`reports_inputs`).
    reports_inputs: bool,
    /// The backend's base directory, which relative reported paths are relative to.
    base_dir: Option<PathBuf>,
}

impl OutputObj {
    fn state(&self) -> MutexGuard<'_, OutputState> {
        lock(&self.state)
    }

    /// Checks that inputs may be reported to this output; `what` names the function.
    fn check_reports_inputs(&self, what: &str) -> Result<(), ApiError> {
        if self.reports_inputs {
            Ok(())
        } else {
            Err(ApiError::invalid(format!(
                "{what}: the backend was created without reports_inputs \
                 (jitcache_callback_backend_new2), so the cache would not look at the files"
            )))
        }
    }

    /// A reported path, made absolute against the base directory or the current one.
    fn resolve(&self, path: &str, what: &str) -> Result<PathBuf, ApiError> {
        absolute_path(self.base_dir.as_deref(), path, what)
    }
}

/// One get-or-compile call with a callback backend: the [`Backend`] the facade drives.
struct CallbackRun<'a> {
    def: &'a CallbackDef,
    parts: &'a [KeyPartsC],
    /// Each unit's `path` for its request (NULL for none).
    paths: &'a [*const c_char],
    call_data: *mut c_void,
    cache: u64,
    thread: ThreadId,
    /// The callback's failure, to report as `JITCACHE_ERR_CALLBACK`.
    failure: Mutex<Option<String>>,
}

// SAFETY: the raw pointers (`parts`' fields, `paths`, `call_data`) are only read or handed
// to the callback, and the callback only called, on the thread that made the call
// (`compile` checks `thread` first), while the caller's arguments are valid: the facade
// runs backends on the calling thread within the call; a run on another thread would be
// refused, not executed.
unsafe impl Send for CallbackRun<'_> {}
// SAFETY: as for Send.
unsafe impl Sync for CallbackRun<'_> {}

impl CallbackRun<'_> {
    fn fail(&self, unit: &str, message: String) -> backends::Error {
        let err = backends::Error::CompileFailed {
            unit: unit.to_owned(),
            compiler: self.def.identity.name.clone().into(),
            status: "the compile callback failed".to_owned(),
            stderr: message.clone(),
        };
        *lock(&self.failure) = Some(format!("compile callback for {unit} failed: {message}"));
        err
    }
}

impl Backend for CallbackRun<'_> {
    type Unit = usize;

    fn identity(&self) -> &BackendIdentity {
        &self.def.identity
    }

    fn may_read_files(&self) -> bool {
        self.def.reports_inputs
    }

    fn base_dir(&self) -> Option<&Path> {
        self.def.base_dir.as_deref()
    }

    fn compile(&self, index: &usize) -> Result<CompiledObject, backends::Error> {
        let index = *index;
        let Some(raw) = self.parts.get(index) else {
            return Err(self.fail("?", format!("no unit at index {index}")));
        };
        // SAFETY: the parts were read successfully at the start of this call, and stay
        // valid for the call by the caller's contract.
        let ns = unsafe { str_arg(raw.ns, "ns") }.unwrap_or("?");
        // SAFETY: as above.
        let name = unsafe { str_arg(raw.name, "name") }.unwrap_or("?");
        let unit = format!("{ns}/{name}");
        if thread::current().id() != self.thread {
            return Err(self.fail(&unit, "backend run on another thread".to_owned()));
        }
        let output = Arc::new(OutputObj {
            state: Mutex::default(),
            reports_inputs: self.def.reports_inputs,
            base_dir: self.def.base_dir.clone(),
        });
        let handle = handles::insert(|_| Object::Output(Arc::clone(&output)))
            .map_err(|e| self.fail(&unit, e.message))?;
        let request = RequestC {
            ns: raw.ns,
            name: raw.name,
            unit: if raw.unit_len == 0 {
                std::ptr::null()
            } else {
                raw.unit
            },
            unit_len: raw.unit_len,
            index,
            call_data: self.call_data,
            path: self.paths.get(index).copied().unwrap_or(std::ptr::null()),
        };
        let rc = {
            // No lock is held while a unit compiles: the callback may use this cache.
            let _lifted = reentrance::suspend(self.cache);
            // SAFETY: `func` is the host's `jitcache_compile_fn` (contract of
            // `jitcache_callback_backend_new`); `request` lives across the call; the output
            // handle is an opaque number the callback passes back to the API. It runs on
            // the calling thread (checked above).
            unsafe { (self.def.func)(self.def.user.0, &request, handles::to_ptr(handle)) }
        };
        // The handle dies with the callback; later use of it is a stale-handle error.
        drop(handles::remove(handle, Kind::Output, Gone::Freed));
        let state = std::mem::take(&mut *output.state());
        if rc != 0 {
            let message = state
                .error
                .unwrap_or_else(|| format!("the callback returned {rc}"));
            return Err(self.fail(&unit, message));
        }
        let Some(bytes) = state.object else {
            return Err(self.fail(
                &unit,
                "the callback returned 0 without setting an object".to_owned(),
            ));
        };
        let symbols = backends::defined_symbols(&bytes, &unit)?;
        let mut read = state.read;
        read.sort();
        read.dedup();
        let mut absent = state.absent;
        absent.retain(|p| read.binary_search(p).is_err());
        absent.sort();
        absent.dedup();
        Ok(CompiledObject {
            bytes,
            symbols,
            inputs: Inputs {
                read,
                absent,
                uncacheable: state.uncacheable,
            },
        })
    }
}

/// Gets (or compiles) every unit of `raw_parts` with `backend` on `cache`; `raw_paths`
/// is empty or has each unit's source file (NULL for none).
///
/// # Safety
///
/// The pointers in `raw_parts` and `raw_paths` follow the header's contract.
unsafe fn get_or_compile(
    cache: &CacheObj,
    backend: &BackendObj,
    raw_parts: &[KeyPartsC],
    raw_paths: &[*const c_char],
    call_data: *mut c_void,
) -> Result<Vec<LoadedUnit>, ApiError> {
    reentrance::check(cache.id)?;
    let parts: Vec<Parts<'_>> = raw_parts
        .iter()
        .enumerate()
        // SAFETY: forwarded contract of the parts array.
        .map(|(i, raw)| unsafe { read_parts(raw, &format!("parts[{i}]")) })
        .collect::<Result<_, _>>()?;
    // Each unit's source file, absolute (relative to the backend's base directory, or to
    // the current one); checked before anything is compiled.
    let paths: Vec<Option<PathBuf>> = raw_paths
        .iter()
        .enumerate()
        .map(|(i, raw)| {
            let what = format!("paths[{i}]");
            // SAFETY: forwarded contract of the paths array.
            match unsafe { opt_str_arg(*raw, &what) }? {
                Some(path) => absolute_path(backend.base_dir(), path, &what).map(Some),
                None => Ok(None),
            }
        })
        .collect::<Result<_, _>>()?;
    let key_parts: Vec<KeyParts<'_>> = parts.iter().map(Parts::key_parts).collect();
    let _busy = reentrance::enter(cache.id);
    match backend {
        BackendObj::Cc(cc) => Ok(cache.cache.get_or_compile_batch(&key_parts, cc, |i| {
            let part = parts
                .get(i)
                .ok_or_else(|| Error::frontend(format!("#{i}"), "no such unit"))?;
            let unit = SourceUnit::new(part.name, part.unit);
            Ok(match paths.get(i).cloned().flatten() {
                // Compiled in place: quoted includes are found next to the file.
                Some(path) => unit.with_path(path),
                None => unit,
            })
        })?),
        BackendObj::Callback(def) => {
            let run = CallbackRun {
                def,
                parts: raw_parts,
                paths: raw_paths,
                call_data,
                cache: cache.id,
                thread: thread::current().id(),
                failure: Mutex::new(None),
            };
            cache
                .cache
                .get_or_compile_batch(&key_parts, &run, Ok)
                .map_err(|err| {
                    let failure = lock(&run.failure).take();
                    match failure {
                        Some(message) => ApiError::new(Status::Callback, message),
                        None => ApiError::from(err),
                    }
                })
        }
    }
}

/// Registers unit handles for `units` of `cache`.
fn register_units(cache: &CacheObj, units: Vec<LoadedUnit>) -> Result<Vec<u64>, ApiError> {
    let objects = units
        .into_iter()
        .map(|unit| {
            Object::Unit(Arc::new(UnitObj {
                cache: cache.id,
                link: unit.link_unit(),
                kind: UnitKind::Cached(unit),
            }))
        })
        .collect();
    handles::insert_for_cache(cache.id, objects)
}

/// `jitcache_get_or_compile`.
///
/// # Safety
///
/// Pointers follow the header's contract.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn jitcache_get_or_compile(
    cache: *mut JitcacheCache,
    backend: *mut JitcacheBackend,
    parts: *const KeyPartsC,
    call_data: *mut c_void,
    out_unit: *mut *mut JitcacheUnit,
) -> Status {
    guard(|| {
        let out = Out::new(out_unit, "out_unit")?;
        // SAFETY: checked by Out; writable by contract.
        unsafe { out.write(std::ptr::null_mut()) };
        let cache = cache_obj(cache)?;
        let backend = backend_obj(backend)?;
        // SAFETY: forwarded contract: `parts` points to one jitcache_key_parts.
        let parts = unsafe { slice_arg(parts, 1, "parts") }?;
        // SAFETY: forwarded contract.
        let units = unsafe { get_or_compile(&cache, &backend, parts, &[], call_data) }?;
        let handles = register_units(&cache, units)?;
        let handle = handles
            .first()
            .copied()
            .ok_or_else(|| ApiError::new(Status::Panic, "no unit returned"))?;
        // SAFETY: checked by Out; writable by contract.
        unsafe { out.write(handles::to_ptr(handle)) };
        Ok(())
    })
}

/// The body of `jitcache_get_or_compile_batch(_at)`; `paths` is NULL or has `count`
/// entries.
///
/// # Safety
///
/// Pointers follow the header's contract.
unsafe fn get_or_compile_batch(
    cache: *mut JitcacheCache,
    backend: *mut JitcacheBackend,
    parts: *const KeyPartsC,
    paths: *const *const c_char,
    count: usize,
    call_data: *mut c_void,
    out_units: *mut *mut JitcacheUnit,
) -> Result<(), ApiError> {
    if count == 0 {
        cache_obj(cache)?;
        backend_obj(backend)?;
        return Ok(());
    }
    if out_units.is_null() {
        return Err(ApiError::null("out_units"));
    }
    if !out_units.is_aligned() {
        return Err(ApiError::invalid("out_units is misaligned"));
    }
    // SAFETY: forwarded contract: `parts` points to `count` jitcache_key_parts. (This
    // also rejects counts too large for memory before anything is allocated.)
    let parts = unsafe { slice_arg(parts, count, "parts") }?;
    let paths: &[*const c_char] = if paths.is_null() {
        &[]
    } else {
        // SAFETY: forwarded contract: a non-NULL `paths` has `count` entries.
        unsafe { slice_arg(paths, count, "paths") }?
    };
    let outs: Vec<Out<*mut JitcacheUnit>> = (0..count)
        .map(|i| Out::new(out_units.wrapping_add(i), "out_units"))
        .collect::<Result<_, _>>()?;
    for out in &outs {
        // SAFETY: by contract `out_units` has room for `count` handles.
        unsafe { out.write(std::ptr::null_mut()) };
    }
    let cache = cache_obj(cache)?;
    let backend = backend_obj(backend)?;
    // SAFETY: forwarded contract.
    let units = unsafe { get_or_compile(&cache, &backend, parts, paths, call_data) }?;
    let handles = register_units(&cache, units)?;
    for (out, handle) in outs.iter().zip(handles) {
        // SAFETY: by contract `out_units` has room for `count` handles.
        unsafe { out.write(handles::to_ptr(handle)) };
    }
    Ok(())
}

/// `jitcache_get_or_compile_batch`.
///
/// # Safety
///
/// Pointers follow the header's contract.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn jitcache_get_or_compile_batch(
    cache: *mut JitcacheCache,
    backend: *mut JitcacheBackend,
    parts: *const KeyPartsC,
    count: usize,
    call_data: *mut c_void,
    out_units: *mut *mut JitcacheUnit,
) -> Status {
    guard(|| {
        // SAFETY: forwarded contract.
        unsafe {
            get_or_compile_batch(
                cache,
                backend,
                parts,
                std::ptr::null(),
                count,
                call_data,
                out_units,
            )
        }
    })
}

/// `jitcache_get_or_compile_batch_at`: a batch whose units may be files on disk,
/// compiled in place.
///
/// # Safety
///
/// Pointers follow the header's contract.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn jitcache_get_or_compile_batch_at(
    cache: *mut JitcacheCache,
    backend: *mut JitcacheBackend,
    parts: *const KeyPartsC,
    paths: *const *const c_char,
    count: usize,
    call_data: *mut c_void,
    out_units: *mut *mut JitcacheUnit,
) -> Status {
    guard(|| {
        // SAFETY: forwarded contract.
        unsafe { get_or_compile_batch(cache, backend, parts, paths, count, call_data, out_units) }
    })
}

fn output_obj(output: *mut OutputC) -> Result<Arc<OutputObj>, ApiError> {
    match handles::get(handles::from_ptr(output), Kind::Output)? {
        Object::Output(output) => Ok(output),
        _ => Err(ApiError::new(
            Status::InvalidHandle,
            "not a compile output handle",
        )),
    }
}

/// `jitcache_compile_output_set_object`: the object a compile callback produced (copied).
///
/// # Safety
///
/// Pointers follow the header's contract.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn jitcache_compile_output_set_object(
    output: *mut OutputC,
    data: *const u8,
    len: usize,
) -> Status {
    guard(|| {
        let output = output_obj(output)?;
        // SAFETY: forwarded contract.
        let data = unsafe { slice_arg(data, len, "data") }?;
        output.state().object = Some(data.to_vec());
        Ok(())
    })
}

/// `jitcache_compile_output_set_error`: a message for a failed compile (copied).
///
/// # Safety
///
/// Pointers follow the header's contract.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn jitcache_compile_output_set_error(
    output: *mut OutputC,
    message: *const c_char,
) -> Status {
    guard(|| {
        let output = output_obj(output)?;
        // SAFETY: forwarded contract.
        let message = unsafe { lossy_str_arg(message) };
        output.state().error = Some(message.unwrap_or_else(|| "(no message)".to_owned()));
        Ok(())
    })
}

/// `jitcache_compile_output_add_input`: a file the compile read (copied, made absolute).
///
/// # Safety
///
/// Pointers follow the header's contract.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn jitcache_compile_output_add_input(
    output: *mut OutputC,
    path: *const c_char,
) -> Status {
    // SAFETY: forwarded contract.
    unsafe {
        add_path(output, path, "jitcache_compile_output_add_input", |s| {
            &mut s.read
        })
    }
}

/// `jitcache_compile_output_add_absent`: a path that did not exist and whose creation
/// would change what the compile reads (copied, made absolute).
///
/// # Safety
///
/// Pointers follow the header's contract.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn jitcache_compile_output_add_absent(
    output: *mut OutputC,
    path: *const c_char,
) -> Status {
    // SAFETY: forwarded contract.
    unsafe {
        add_path(output, path, "jitcache_compile_output_add_absent", |s| {
            &mut s.absent
        })
    }
}

/// Adds `path`, made absolute, to the list of `output`'s reports that `list` picks;
/// `function` names the caller in errors.
///
/// # Safety
///
/// Pointers follow the header's contract.
unsafe fn add_path(
    output: *mut OutputC,
    path: *const c_char,
    function: &'static str,
    list: fn(&mut OutputState) -> &mut Vec<PathBuf>,
) -> Status {
    guard(|| {
        let output = output_obj(output)?;
        output.check_reports_inputs(function)?;
        // SAFETY: forwarded contract.
        let path = unsafe { str_arg(path, "path") }?;
        let path = output.resolve(path, "path")?;
        list(&mut output.state()).push(path);
        Ok(())
    })
}

/// `jitcache_compile_output_set_uncacheable`: the object is used once and not stored
/// (copied reason).
///
/// # Safety
///
/// Pointers follow the header's contract.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn jitcache_compile_output_set_uncacheable(
    output: *mut OutputC,
    reason: *const c_char,
) -> Status {
    guard(|| {
        let output = output_obj(output)?;
        output.check_reports_inputs("jitcache_compile_output_set_uncacheable")?;
        // SAFETY: forwarded contract.
        let reason = unsafe { lossy_str_arg(reason) }.ok_or_else(|| ApiError::null("reason"))?;
        output.state().uncacheable.get_or_insert(reason);
        Ok(())
    })
}
