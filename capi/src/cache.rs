//! Cache handles: open and close, the raw store, the linker's settings, statistics.

use std::ffi::{CString, c_char, c_void};
use std::sync::Arc;
use std::time::Duration;

use jitcache_rs::linker::{Binding, Resolver};
use jitcache_rs::store::{Key, StoreConfig};
use jitcache_rs::{Config, JitCache};

use crate::args::{Out, ref_arg, slice_arg, str_arg};
use crate::backend::UserPtr;
use crate::boundary::guard;
use crate::handles::{self, Gone, Kind, Object};
use crate::host_memory::{Bytes, give_bytes, give_string};
use crate::key::KeyC;
use crate::reentrance;
use crate::status::{ApiError, Status};

/// `jitcache_cache`: opaque to C, never dereferenced (see `handles`).
pub struct JitcacheCache {
    _private: [u8; 0],
}

/// The object behind a cache handle.
pub(crate) struct CacheObj {
    /// The handle of this cache (units refer to their cache by it).
    pub(crate) id: u64,
    pub(crate) cache: JitCache,
}

/// `jitcache_config`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ConfigC {
    /// zstd level of new blobs: 0 (zstd's default) to 22. Default 3.
    pub compression_level: i32,
    /// Nonzero: use the persistent cache. Default 1.
    pub persistent: i32,
    /// How long to wait for another process compiling the same unit, in milliseconds.
    /// Default 60000.
    pub single_flight_timeout_ms: u64,
}

impl Default for ConfigC {
    fn default() -> ConfigC {
        let config = Config::default();
        ConfigC {
            compression_level: config.store.compression_level,
            persistent: i32::from(config.persistent),
            single_flight_timeout_ms: u64::try_from(config.single_flight_timeout.as_millis())
                .unwrap_or(u64::MAX),
        }
    }
}

/// `jitcache_stats`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct StatsC {
    /// Units found already loaded in this process.
    pub memory_hits: u64,
    /// Units read from the persistent store.
    pub disk_hits: u64,
    /// Units neither in memory nor in the store when asked for.
    pub misses: u64,
    /// Units this process compiled.
    pub compiles: u64,
    /// Nanoseconds spent in backends.
    pub compile_time_ns: u64,
    /// Nanoseconds spent reading from the store and linking.
    pub load_time_ns: u64,
    /// Nonzero if the persistent cache is bypassed (see `jitcache_bypass_reason`).
    pub bypassed: i32,
}

/// The object of a live cache handle.
pub(crate) fn cache_obj(handle: *const JitcacheCache) -> Result<Arc<CacheObj>, ApiError> {
    cache_by_id(handles::from_ptr(handle))
}

/// The object of the live cache with handle `id`.
pub(crate) fn cache_by_id(id: u64) -> Result<Arc<CacheObj>, ApiError> {
    match handles::get(id, Kind::Cache)? {
        Object::Cache(cache) => Ok(cache),
        _ => Err(ApiError::new(Status::InvalidHandle, "not a cache handle")),
    }
}

fn config_from(raw: &ConfigC) -> Result<Config, ApiError> {
    if !(0..=22).contains(&raw.compression_level) {
        return Err(ApiError::invalid(format!(
            "config.compression_level is {}: expected 0 to 22",
            raw.compression_level
        )));
    }
    Ok(Config {
        store: StoreConfig {
            compression_level: raw.compression_level,
            ..StoreConfig::default()
        },
        persistent: raw.persistent != 0,
        single_flight_timeout: Duration::from_millis(raw.single_flight_timeout_ms),
        remote: None,
        binding: Binding::Stubs,
        // Off until jitcache_set_background_writes: a host may exit() without
        // jitcache_close, and queued writes would be lost.
        background_writes: false,
    })
}

/// `jitcache_config_init`: fills `config` with the defaults.
///
/// # Safety
///
/// Pointers follow the header's contract.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn jitcache_config_init(config: *mut ConfigC) -> Status {
    guard(|| {
        let out = Out::new(config, "config")?;
        // SAFETY: checked by Out; writable by contract.
        unsafe { out.write(ConfigC::default()) };
        Ok(())
    })
}

/// `jitcache_open`: opens (or creates) the cache in `dir`.
///
/// # Safety
///
/// Pointers follow the header's contract.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn jitcache_open(
    dir: *const c_char,
    config: *const ConfigC,
    out_cache: *mut *mut JitcacheCache,
) -> Status {
    guard(|| {
        let out = Out::new(out_cache, "out_cache")?;
        // SAFETY: checked by Out; writable by contract.
        unsafe { out.write(std::ptr::null_mut()) };
        // SAFETY: forwarded contract.
        let dir = unsafe { str_arg(dir, "dir") }?;
        if dir.is_empty() {
            return Err(ApiError::invalid("dir is empty"));
        }
        let config = if config.is_null() {
            ConfigC::default()
        } else {
            // SAFETY: forwarded contract.
            *unsafe { ref_arg(config, "config") }?
        };
        let config = config_from(&config)?;
        let cache = JitCache::open(dir, config);
        let handle = handles::insert(|id| Object::Cache(Arc::new(CacheObj { id, cache })))?;
        // SAFETY: checked by Out; writable by contract.
        unsafe { out.write(handles::to_ptr(handle)) };
        Ok(())
    })
}

/// `jitcache_set_max_size`: sets the cache directory's own maximum size (0 removes
/// it), shared by every process using the directory.
///
/// # Safety
///
/// Pointers follow the header's contract.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn jitcache_set_max_size(cache: *mut JitcacheCache, max_size: u64) -> Status {
    guard(|| {
        let obj = cache_obj(cache)?;
        let Some(store) = obj.cache.store() else {
            return Err(ApiError::new(
                Status::Bypassed,
                "the persistent cache is bypassed: there is no cache directory to set",
            ));
        };
        store
            .set_max_size_setting((max_size != 0).then_some(max_size))
            .map_err(|e| ApiError::new(Status::Store, e.to_string()))
    })
}

/// `jitcache_set_background_writes`: whether compiled code is stored by the store's
/// background writer (nonzero) or on the compiling thread (0, the default).
///
/// # Safety
///
/// `cache` is any value; it is only used as a handle number.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn jitcache_set_background_writes(
    cache: *mut JitcacheCache,
    enabled: i32,
) -> Status {
    guard(|| {
        cache_obj(cache)?.cache.set_background_writes(enabled != 0);
        Ok(())
    })
}

/// `jitcache_flush_writes`: waits at most `timeout_ms` until the background writer has
/// stored everything queued; `*out_pending` (if not NULL) is what is still queued.
///
/// # Safety
///
/// Pointers follow the header's contract.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn jitcache_flush_writes(
    cache: *mut JitcacheCache,
    timeout_ms: u64,
    out_pending: *mut u64,
) -> Status {
    guard(|| {
        let pending = cache_obj(cache)?
            .cache
            .flush_writes(Duration::from_millis(timeout_ms));
        if !out_pending.is_null() {
            let out = Out::new(out_pending, "out_pending")?;
            // SAFETY: checked by Out; writable by contract.
            unsafe { out.write(pending as u64) };
        }
        Ok(())
    })
}

/// `jitcache_prune_foreign`: evicts every entry of a foreign backend identity;
/// `*out_evicted` (if not NULL) is how many.
///
/// # Safety
///
/// Pointers follow the header's contract.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn jitcache_prune_foreign(
    cache: *mut JitcacheCache,
    out_evicted: *mut u64,
) -> Status {
    guard(|| {
        let obj = cache_obj(cache)?;
        let report = store_of(&obj)?
            .prune_foreign(&jitcache_rs::store::NoProgress)
            .map_err(|e| ApiError::new(Status::Store, e.to_string()))?;
        if !out_evicted.is_null() {
            let out = Out::new(out_evicted, "out_evicted")?;
            // SAFETY: checked by Out; writable by contract.
            unsafe { out.write(report.evicted_entries) };
        }
        Ok(())
    })
}

/// `jitcache_close`: closes a cache and every unit handle of it. NULL is a no-op.
///
/// # Safety
///
/// `cache` is any value; it is only used as a handle number.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn jitcache_close(cache: *mut JitcacheCache) -> Status {
    guard(|| {
        if cache.is_null() {
            return Ok(());
        }
        let id = handles::from_ptr(cache);
        let object = handles::remove(id, Kind::Cache, Gone::Closed)?;
        let units = handles::remove_where(
            |o| matches!(o, Object::Unit(unit) if unit.cache == id),
            Gone::Closed,
        );
        // Outside the registry lock: this unloads the code (running its destructors)
        // unless another thread is still in a call on this cache, which then does it.
        drop(units);
        drop(object);
        Ok(())
    })
}

/// `jitcache_stats_get`: this process's statistics of `cache`.
///
/// # Safety
///
/// Pointers follow the header's contract.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn jitcache_stats_get(
    cache: *mut JitcacheCache,
    out_stats: *mut StatsC,
) -> Status {
    guard(|| {
        let out = Out::new(out_stats, "out_stats")?;
        let cache = cache_obj(cache)?;
        let stats = cache.cache.stats();
        let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let c = StatsC {
            memory_hits: stats.memory_hits,
            disk_hits: stats.disk_hits,
            misses: stats.misses,
            compiles: stats.compiles,
            compile_time_ns: nanos(stats.compile_time),
            load_time_ns: nanos(stats.load_time),
            bypassed: i32::from(stats.bypassed.is_some()),
        };
        // SAFETY: checked by Out; writable by contract.
        unsafe { out.write(c) };
        Ok(())
    })
}

/// `jitcache_bypass_reason`: why the persistent cache is bypassed, or NULL.
///
/// # Safety
///
/// Pointers follow the header's contract.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn jitcache_bypass_reason(
    cache: *mut JitcacheCache,
    out_reason: *mut *mut c_char,
) -> Status {
    guard(|| {
        let out = Out::new(out_reason, "out_reason")?;
        // SAFETY: checked by Out; writable by contract.
        unsafe { out.write(std::ptr::null_mut()) };
        let cache = cache_obj(cache)?;
        if let Some(reason) = cache.cache.stats().bypassed {
            // SAFETY: checked by Out; writable by contract.
            unsafe { out.write(give_string(&reason)) };
        }
        Ok(())
    })
}

fn store_of(cache: &CacheObj) -> Result<&jitcache_rs::store::Store, ApiError> {
    cache.cache.store().ok_or_else(|| {
        let reason = cache.cache.stats().bypassed.unwrap_or_default();
        ApiError::new(
            Status::Bypassed,
            format!("the persistent cache is not in use: {reason}"),
        )
    })
}

/// `jitcache_lookup`: the object bytes stored under `key`.
///
/// # Safety
///
/// Pointers follow the header's contract.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn jitcache_lookup(
    cache: *mut JitcacheCache,
    key: *const KeyC,
    out_bytes: *mut Bytes,
) -> Status {
    guard(|| {
        let out = Out::new(out_bytes, "out_bytes")?;
        // SAFETY: checked by Out; writable by contract.
        unsafe { out.write(Bytes::EMPTY) };
        let cache = cache_obj(cache)?;
        // SAFETY: forwarded contract.
        let key = Key::from_bytes(unsafe { ref_arg(key, "key") }?.bytes);
        match store_of(&cache)?.get(&key)? {
            Some(bytes) => {
                // SAFETY: checked by Out; writable by contract.
                unsafe { out.write(give_bytes(bytes)) };
                Ok(())
            }
            None => Err(ApiError::not_found(format!("no entry for key {key}"))),
        }
    })
}

/// `jitcache_insert`: stores `len` bytes under `key`.
///
/// # Safety
///
/// Pointers follow the header's contract.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn jitcache_insert(
    cache: *mut JitcacheCache,
    key: *const KeyC,
    data: *const u8,
    len: usize,
) -> Status {
    guard(|| {
        let cache = cache_obj(cache)?;
        // SAFETY: forwarded contract.
        let key = Key::from_bytes(unsafe { ref_arg(key, "key") }?.bytes);
        // SAFETY: forwarded contract.
        let data = unsafe { slice_arg(data, len, "data") }?;
        store_of(&cache)?.put(&key, data)?;
        Ok(())
    })
}

/// `jitcache_open_library`: a shared library whose symbols later loads may use.
///
/// # Safety
///
/// Pointers follow the header's contract.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn jitcache_open_library(
    cache: *mut JitcacheCache,
    name: *const c_char,
) -> Status {
    guard(|| {
        let cache = cache_obj(cache)?;
        // SAFETY: forwarded contract.
        let name = unsafe { str_arg(name, "name") }?;
        reentrance::check(cache.id)?;
        cache.cache.linker().open_library(name)?;
        Ok(())
    })
}

/// `JITCACHE_BINDING_STUBS`: exported functions are reached through stubs; a later
/// definition of a name is what every earlier caller runs (the default).
pub const BINDING_STUBS: i32 = 0;
/// `JITCACHE_BINDING_DIRECT`: straight to the code; the first definition loaded wins.
pub const BINDING_DIRECT: i32 = 1;

/// `jitcache_set_binding`: how units loaded from now on in `cache` bind their exported
/// functions, `JITCACHE_BINDING_STUBS` (default) or `JITCACHE_BINDING_DIRECT`; units
/// already loaded keep theirs.
///
/// # Safety
///
/// `cache` is any value; it is only used as a handle number.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn jitcache_set_binding(cache: *mut JitcacheCache, binding: i32) -> Status {
    guard(|| {
        let binding = match binding {
            BINDING_STUBS => Binding::Stubs,
            BINDING_DIRECT => Binding::Direct,
            other => {
                return Err(ApiError::invalid(format!(
                    "binding is {other}: expected JITCACHE_BINDING_STUBS (0) or \
                     JITCACHE_BINDING_DIRECT (1)"
                )));
            }
        };
        let cache = cache_obj(cache)?;
        cache.cache.set_binding(binding);
        Ok(())
    })
}

/// `jitcache_resolve_fn`: the address of `name`, or NULL.
pub type ResolveFn =
    unsafe extern "C" fn(user_data: *mut c_void, name: *const c_char) -> *mut c_void;

/// `jitcache_set_resolver`: the resolver consulted after loaded units, before the host.
///
/// # Safety
///
/// Pointers follow the header's contract; `resolve` is NULL or a function of the
/// `jitcache_resolve_fn` type that stays callable while the cache is open.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn jitcache_set_resolver(
    cache: *mut JitcacheCache,
    resolve: Option<ResolveFn>,
    user_data: *mut c_void,
) -> Status {
    guard(|| {
        let cache = cache_obj(cache)?;
        reentrance::check(cache.id)?;
        let user = UserPtr(user_data);
        let resolver: Box<Resolver> = match resolve {
            None => Box::new(|_| None),
            Some(resolve) => Box::new(move |name: &str| {
                let name = CString::new(name).ok()?;
                // SAFETY: `resolve` is the host's `jitcache_resolve_fn` (contract above),
                // called with its user pointer and a NUL-terminated name that outlives
                // the call.
                let addr = unsafe { resolve(user.get(), name.as_ptr()) };
                (!addr.is_null()).then(|| addr.addr())
            }),
        };
        cache.cache.linker().set_resolver(resolver);
        Ok(())
    })
}

/// `jitcache_symbol`: the address of `name` exported by any unit loaded in `cache`.
///
/// # Safety
///
/// Pointers follow the header's contract.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn jitcache_symbol(
    cache: *mut JitcacheCache,
    name: *const c_char,
    out_address: *mut *mut c_void,
) -> Status {
    guard(|| {
        let out = Out::new(out_address, "out_address")?;
        // SAFETY: checked by Out; writable by contract.
        unsafe { out.write(std::ptr::null_mut()) };
        let cache = cache_obj(cache)?;
        // SAFETY: forwarded contract.
        let name = unsafe { str_arg(name, "name") }?;
        reentrance::check(cache.id)?;
        let addr = cache.cache.linker().lookup(name).ok_or_else(|| {
            ApiError::not_found(format!("no loaded unit exports symbol {name:?}"))
        })?;
        // SAFETY: checked by Out; writable by contract.
        unsafe { out.write(std::ptr::with_exposed_provenance_mut(addr)) };
        Ok(())
    })
}
