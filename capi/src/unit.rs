//! Unit handles: loaded code, its symbols, and unloading it.

use std::ffi::{c_char, c_void};
use std::sync::Arc;

use jitcache_rs::linker::{LoadOptions, ObjectFile, UnitId};
use jitcache_rs::{LoadedUnit, Origin};

use crate::args::{Out, slice_arg, str_arg};
use crate::boundary::guard;
use crate::cache::{CacheObj, JitcacheCache, cache_by_id, cache_obj};
use crate::handles::{self, Gone, Kind, Object};
use crate::host_memory::give_string;
use crate::key::KeyC;
use crate::reentrance;
use crate::status::{ApiError, Status};

/// `jitcache_unit`: opaque to C, never dereferenced (see `handles`).
pub struct JitcacheUnit {
    _private: [u8; 0],
}

/// `jitcache_object`: one relocatable object to load.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ObjectC {
    /// A name for messages, UTF-8.
    pub name: *const c_char,
    /// The ELF relocatable object.
    pub data: *const u8,
    /// How many bytes.
    pub len: usize,
}

/// What a unit handle stands for.
pub(crate) enum UnitKind {
    /// A unit from get-or-compile.
    Cached(LoadedUnit),
    /// Objects the host loaded with `jitcache_load_objects`.
    Raw {
        /// The first object's name, for messages.
        name: String,
    },
}

/// The object behind a unit handle.
pub(crate) struct UnitObj {
    /// The handle of the cache whose linker holds the code.
    pub(crate) cache: u64,
    /// The link unit holding the code.
    pub(crate) link: UnitId,
    pub(crate) kind: UnitKind,
}

impl UnitObj {
    fn name(&self) -> &str {
        match &self.kind {
            UnitKind::Cached(unit) => unit.name(),
            UnitKind::Raw { name } => name,
        }
    }
}

/// The unit object of a live handle, and its (live, not busy) cache.
fn unit_and_cache(handle: *const JitcacheUnit) -> Result<(Arc<UnitObj>, Arc<CacheObj>), ApiError> {
    let unit = match handles::get(handles::from_ptr(handle), Kind::Unit)? {
        Object::Unit(unit) => unit,
        _ => return Err(ApiError::new(Status::InvalidHandle, "not a unit handle")),
    };
    let cache = cache_by_id(unit.cache).map_err(|err| match err.status {
        Status::StaleHandle | Status::Closed | Status::InvalidHandle => {
            ApiError::new(Status::Closed, "the cache of this unit was closed")
        }
        _ => err,
    })?;
    reentrance::check(cache.id)?;
    Ok((unit, cache))
}

/// `jitcache_unit_symbol`: the address of a global symbol the unit defines.
///
/// # Safety
///
/// Pointers follow the header's contract.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn jitcache_unit_symbol(
    unit: *mut JitcacheUnit,
    name: *const c_char,
    out_address: *mut *mut c_void,
) -> Status {
    guard(|| {
        let out = Out::new(out_address, "out_address")?;
        // SAFETY: checked by Out; writable by contract.
        unsafe { out.write(std::ptr::null_mut()) };
        let (unit, cache) = unit_and_cache(unit)?;
        // SAFETY: forwarded contract.
        let name = unsafe { str_arg(name, "name") }?;
        let addr = match &unit.kind {
            UnitKind::Cached(loaded) => loaded.symbol(name).map(|s| s.addr()),
            UnitKind::Raw { .. } => cache.cache.linker().symbol(unit.link, name),
        };
        let addr = addr.ok_or_else(|| {
            ApiError::not_found(format!(
                "symbol {name:?} is not defined by unit {}",
                unit.name()
            ))
        })?;
        // SAFETY: checked by Out; writable by contract.
        unsafe { out.write(std::ptr::with_exposed_provenance_mut(addr)) };
        Ok(())
    })
}

/// `jitcache_unit_origin`: where the unit's code came from, and why it was compiled.
///
/// # Safety
///
/// Pointers follow the header's contract.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn jitcache_unit_origin(
    unit: *mut JitcacheUnit,
    out_origin: *mut i32,
    out_reason: *mut *mut c_char,
) -> Status {
    guard(|| {
        let out = Out::new(out_origin, "out_origin")?;
        let reason_out = Out::optional(out_reason, "out_reason")?;
        if let Some(reason_out) = &reason_out {
            // SAFETY: checked by Out; writable by contract.
            unsafe { reason_out.write(std::ptr::null_mut()) };
        }
        let (unit, _cache) = unit_and_cache(unit)?;
        let (origin, reason) = match &unit.kind {
            UnitKind::Cached(loaded) => match loaded.origin() {
                Origin::Memory => (0, None),
                // The C API configures no remote; a remote hit is a cache hit all the same.
                Origin::Disk | Origin::Remote => (1, None),
                Origin::Compiled(reason) => (2, Some(reason.to_string())),
            },
            UnitKind::Raw { .. } => (3, None),
        };
        // SAFETY: checked by Out; writable by contract.
        unsafe { out.write(origin) };
        if let (Some(reason_out), Some(reason)) = (reason_out, reason) {
            // SAFETY: checked by Out; writable by contract.
            unsafe { reason_out.write(give_string(&reason)) };
        }
        Ok(())
    })
}

/// `jitcache_unit_key`: the unit's cache key.
///
/// # Safety
///
/// Pointers follow the header's contract.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn jitcache_unit_key(unit: *mut JitcacheUnit, out_key: *mut KeyC) -> Status {
    guard(|| {
        let out = Out::new(out_key, "out_key")?;
        let (unit, _cache) = unit_and_cache(unit)?;
        match &unit.kind {
            UnitKind::Cached(loaded) => {
                // SAFETY: checked by Out; writable by contract.
                unsafe {
                    out.write(KeyC {
                        bytes: *loaded.key().as_bytes(),
                    });
                }
                Ok(())
            }
            UnitKind::Raw { name } => Err(ApiError::not_found(format!(
                "unit {name} was loaded from object bytes and has no key"
            ))),
        }
    })
}

/// `jitcache_unit_free`: frees a unit handle; the code stays loaded. NULL is a no-op.
///
/// # Safety
///
/// `unit` is any value; it is only used as a handle number.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn jitcache_unit_free(unit: *mut JitcacheUnit) -> Status {
    guard(|| {
        if unit.is_null() {
            return Ok(());
        }
        let object = handles::remove(handles::from_ptr(unit), Kind::Unit, Gone::Freed)?;
        drop(object);
        Ok(())
    })
}

/// `jitcache_unload`: unloads the unit's code (and every unit loaded in the same call)
/// and frees every handle to it.
///
/// # Safety
///
/// `unit` is any value; it is only used as a handle number.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn jitcache_unload(unit: *mut JitcacheUnit) -> Status {
    guard(|| {
        let (unit, cache) = unit_and_cache(unit)?;
        let (cache_id, link) = (unit.cache, unit.link);
        let handles = handles::remove_where(
            |o| matches!(o, Object::Unit(u) if u.cache == cache_id && u.link == link),
            Gone::Unloaded,
        );
        drop(handles);
        let _busy = reentrance::enter(cache.id);
        match &unit.kind {
            UnitKind::Cached(loaded) => cache.cache.unload(loaded)?,
            UnitKind::Raw { .. } => cache.cache.linker().unload(link)?,
        }
        Ok(())
    })
}

/// `jitcache_load_objects`: links relocatable objects into one unit.
///
/// # Safety
///
/// Pointers follow the header's contract.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn jitcache_load_objects(
    cache: *mut JitcacheCache,
    objects: *const ObjectC,
    count: usize,
    out_unit: *mut *mut JitcacheUnit,
) -> Status {
    guard(|| {
        let out = Out::new(out_unit, "out_unit")?;
        // SAFETY: checked by Out; writable by contract.
        unsafe { out.write(std::ptr::null_mut()) };
        let cache = cache_obj(cache)?;
        // SAFETY: forwarded contract.
        let raw = unsafe { slice_arg(objects, count, "objects") }?;
        if raw.is_empty() {
            return Err(ApiError::invalid("no objects to load (count is 0)"));
        }
        let files: Vec<ObjectFile<'_>> = raw
            .iter()
            .enumerate()
            .map(|(i, o)| {
                // SAFETY: forwarded contract of the objects array.
                let name = unsafe { str_arg(o.name, &format!("objects[{i}].name")) }?;
                // SAFETY: as above.
                let bytes = unsafe { slice_arg(o.data, o.len, &format!("objects[{i}].data")) }?;
                Ok(ObjectFile { name, bytes })
            })
            .collect::<Result<_, ApiError>>()?;
        reentrance::check(cache.id)?;
        let link = {
            let _busy = reentrance::enter(cache.id);
            let options = LoadOptions::default().binding(cache.cache.binding());
            cache.cache.linker().load_with(&files, &options)?
        };
        let object = Object::Unit(Arc::new(UnitObj {
            cache: cache.id,
            link,
            kind: UnitKind::Raw {
                name: files[0].name.to_owned(),
            },
        }));
        let handle = match handles::insert_for_cache(cache.id, vec![object]) {
            Ok(handles) => handles.first().copied(),
            Err(err) => {
                let _busy = reentrance::enter(cache.id);
                let _ = cache.cache.linker().unload(link);
                return Err(err);
            }
        };
        let handle = handle.ok_or_else(|| ApiError::new(Status::Panic, "no handle registered"))?;
        // SAFETY: checked by Out; writable by contract.
        unsafe { out.write(handles::to_ptr(handle)) };
        Ok(())
    })
}
