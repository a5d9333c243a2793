//! What a [`JITModule`](crate::JITModule) did with the cache: counters shared between the
//! module and the [`StatsHandle`]s taken from its builder.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jitcache_store::sync::lock;

/// Counters of one [`JITModule`](crate::JITModule)'s use of the cache.
///
/// `compiles == misses + uncached + recompiled`: every function Cranelift compiled, and
/// why (a definition that fails, a verifier error say, counts in none of them). A warm process that defines the same functions as a cold one has
/// `compiles == 0` and `hits` equal to the cold process's `stored`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// `define_function` calls answered from the cache: no lowering, no register
    /// allocation, no emission.
    pub hits: u64,
    /// `define_function` calls whose key the cache did not hold; each was compiled.
    pub misses: u64,
    /// Functions Cranelift compiled (misses, uncached functions and recompiled hits).
    pub compiles: u64,
    /// Functions compiled without a lookup: the cache is disabled or unusable, the
    /// context asks for a disassembly (`Context::want_disasm`), or the function refers
    /// to a name that is not a declaration of the module.
    pub uncached: u64,
    /// Hits whose stored code did not fit the function (a relocation outside the code,
    /// an unknown relocation kind), compiled again and stored anew. Never expected.
    pub recompiled: u64,
    /// Compiled functions written to the cache.
    pub stored: u64,
    /// Functions defined from bytes (`define_function_bytes`): nothing to compile or
    /// cache.
    pub function_bytes: u64,
    /// Data objects defined (`define_data`): copied into memory as `cranelift_jit` does,
    /// never cached (a copy costs less than a lookup).
    pub data_objects: u64,
    /// Time spent in `define_function`: lookups, and compiles on misses.
    pub define_time: Duration,
    /// Why the persistent cache is not used, when it is not (disabled, no cache
    /// directory, an unusable directory, a failed write).
    pub bypassed: Option<String>,
}

impl fmt::Display for CacheStats {
    /// One line, as `JITCACHE_CRANELIFT_STATS` prints it:
    /// `hits=0 misses=2 compiles=2 uncached=0 recompiled=0 stored=2 function_bytes=0
    /// data_objects=1 define_ms=1.234`, then `bypassed="..."` when the cache is bypassed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "hits={} misses={} compiles={} uncached={} recompiled={} stored={} \
             function_bytes={} data_objects={} define_ms={:.3}",
            self.hits,
            self.misses,
            self.compiles,
            self.uncached,
            self.recompiled,
            self.stored,
            self.function_bytes,
            self.data_objects,
            self.define_time.as_secs_f64() * 1e3,
        )?;
        if let Some(reason) = &self.bypassed {
            write!(f, " bypassed={reason:?}")?;
        }
        Ok(())
    }
}

/// A live view of a module's [`CacheStats`], taken from its
/// [`JITBuilder`](crate::JITBuilder) with [`JITBuilder::cache_stats`](crate::JITBuilder::cache_stats)
/// before the module exists, and readable after it is dropped (the counters then include
/// the writes made at drop).
///
/// ```
/// let builder = jitcache_cranelift::JITBuilder::new(cranelift_module::default_libcall_names())?;
/// let stats = builder.cache_stats();
/// assert_eq!(stats.get().hits, 0);
/// # Ok::<(), cranelift_module::ModuleError>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct StatsHandle(Arc<Mutex<CacheStats>>);

impl StatsHandle {
    /// A snapshot of the counters.
    pub fn get(&self) -> CacheStats {
        lock(&self.0).clone()
    }

    /// Changes the counters.
    pub(crate) fn update(&self, change: impl FnOnce(&mut CacheStats)) {
        change(&mut lock(&self.0));
    }
}
