//! [`JITBuilder`]: `cranelift_jit::JITBuilder`'s constructors and methods, plus where the
//! cache lives.

use std::path::PathBuf;
use std::sync::Arc;

use cranelift_codegen::ir;
use cranelift_codegen::isa::OwnedTargetIsa;
use cranelift_codegen::settings::{self, Configurable};
use cranelift_jit::JITMemoryProvider;
use cranelift_module::{ModuleError, ModuleResult};

use crate::resolve::{LookupFn, Resolver};
use crate::stats::StatsHandle;
use crate::tier::Location;

/// The names of libcalls, as `cranelift_jit` takes them.
pub(crate) type LibcallNames = Arc<dyn Fn(ir::LibCall) -> String + Send + Sync>;

/// A builder for [`JITModule`](crate::JITModule), with the constructors and methods of
/// `cranelift_jit::JITBuilder` and three of its own: [`JITBuilder::cache_dir`],
/// [`JITBuilder::disable_cache`] and [`JITBuilder::cache_stats`].
///
/// Without [`JITBuilder::cache_dir`] the cache is where the `jitcache` tool keeps it
/// ([`default_cache_dir`](crate::default_cache_dir)).
pub struct JITBuilder {
    pub(crate) inner: cranelift_jit::JITBuilder,
    pub(crate) resolver: Resolver,
    pub(crate) libcall_names: LibcallNames,
    pub(crate) location: Location,
    pub(crate) stats: StatsHandle,
}

impl JITBuilder {
    /// Create a new `JITBuilder` for the host, with the default flags.
    ///
    /// The `libcall_names` function provides a way to translate `cranelift_codegen`'s
    /// `ir::LibCall` enum to symbols. LibCalls are inserted in the IR as part of the
    /// legalization for certain floating point instructions, and for stack probes. If you
    /// don't know what to use for this argument, use
    /// `cranelift_module::default_libcall_names()`.
    ///
    /// # Errors
    ///
    /// As [`JITBuilder::with_flags`].
    pub fn new(
        libcall_names: Box<dyn Fn(ir::LibCall) -> String + Send + Sync>,
    ) -> ModuleResult<Self> {
        Self::with_flags(&[], libcall_names)
    }

    /// Create a new `JITBuilder` for the host with the given shared flags, as
    /// `cranelift_jit` does: `use_colocated_libcalls=false` and `is_pic=false` are set
    /// after them, and the ISA is the host's, with the CPU features `cranelift_native`
    /// detects.
    ///
    /// # Errors
    ///
    /// [`ModuleError::Flag`] for an unknown flag or value; [`ModuleError::Backend`] when
    /// Cranelift cannot generate code for this host (`cranelift_jit` panics then);
    /// [`ModuleError::Compilation`] when the ISA refuses the flags.
    pub fn with_flags(
        flags: &[(&str, &str)],
        libcall_names: Box<dyn Fn(ir::LibCall) -> String + Send + Sync>,
    ) -> ModuleResult<Self> {
        let mut flag_builder = settings::builder();
        for (name, value) in flags {
            flag_builder.set(name, value)?;
        }
        // On at least AArch64, "colocated" calls use shorter-range relocations, which
        // might not reach all definitions: cranelift_jit requires long-range ones.
        flag_builder.set("use_colocated_libcalls", "false")?;
        flag_builder.set("is_pic", "false")?;
        let isa_builder = cranelift_native::builder().map_err(|msg| {
            ModuleError::Backend(anyhow::anyhow!("host machine is not supported: {msg}"))
        })?;
        let isa = isa_builder.finish(settings::Flags::new(flag_builder))?;
        Ok(Self::with_isa(isa, libcall_names))
    }

    /// Create a new `JITBuilder` with an arbitrary target. This is mainly useful for
    /// testing.
    ///
    /// To create a `JITBuilder` for native use, use the `new` or `with_flags`
    /// constructors instead. [`JITModule::new`](crate::JITModule::new) panics, as
    /// `cranelift_jit`'s does, when the ISA has `is_pic` set.
    pub fn with_isa(
        isa: OwnedTargetIsa,
        libcall_names: Box<dyn Fn(ir::LibCall) -> String + Send + Sync>,
    ) -> Self {
        let libcall_names: LibcallNames = Arc::from(libcall_names);
        let forward = Arc::clone(&libcall_names);
        JITBuilder {
            inner: cranelift_jit::JITBuilder::with_isa(isa, Box::new(move |lc| forward(lc))),
            resolver: Resolver::default(),
            libcall_names,
            location: Location::Default,
            stats: StatsHandle::default(),
        }
    }

    /// Define a symbol in the internal symbol table.
    ///
    /// The JIT will use the symbol table to resolve names that are declared, but not
    /// defined, in the module being compiled. A common example is external functions.
    /// With this method, functions and data can be exposed to the code being compiled
    /// which are defined by the host.
    ///
    /// If a symbol is defined more than once, the most recent definition will be
    /// retained.
    ///
    /// If the JIT fails to find a symbol in its internal table, it will fall back to the
    /// lookup functions ([`JITBuilder::symbol_lookup_fn`]) and then to the process's
    /// own symbols (`dlsym`).
    pub fn symbol<K>(&mut self, name: K, ptr: *const u8) -> &mut Self
    where
        K: Into<String>,
    {
        self.resolver.define(name.into(), ptr);
        self
    }

    /// Define multiple symbols in the internal symbol table.
    ///
    /// Using this is equivalent to calling `symbol` on each element.
    pub fn symbols<It, K>(&mut self, symbols: It) -> &mut Self
    where
        It: IntoIterator<Item = (K, *const u8)>,
        K: Into<String>,
    {
        for (name, ptr) in symbols {
            self.resolver.define(name.into(), ptr);
        }
        self
    }

    /// Add a symbol lookup fn.
    ///
    /// Symbol lookup fn's are used to lookup symbols when they couldn't be found in the
    /// internal symbol table. Symbol lookup fn's are called in reverse of the order in
    /// which they were added.
    pub fn symbol_lookup_fn(&mut self, symbol_lookup_fn: LookupFn) -> &mut Self {
        self.resolver.add_lookup(symbol_lookup_fn);
        self
    }

    /// Set the memory provider for the module.
    ///
    /// If unset, defaults to [`SystemMemoryProvider`](crate::SystemMemoryProvider).
    pub fn memory_provider(&mut self, provider: Box<dyn JITMemoryProvider + Send>) -> &mut Self {
        self.inner.memory_provider(provider);
        self
    }

    /// Keeps the cache in `dir` instead of [`default_cache_dir`](crate::default_cache_dir).
    /// The directory is created (mode 0700) if needed; one that another user could write
    /// into is refused (the module then compiles everything, with one warning).
    pub fn cache_dir(&mut self, dir: impl Into<PathBuf>) -> &mut Self {
        self.location = Location::Dir(dir.into());
        self
    }

    /// Uses no persistent cache: the module compiles every function, as
    /// `cranelift_jit` does, and [`CacheStats::bypassed`](crate::CacheStats::bypassed)
    /// says so.
    pub fn disable_cache(&mut self) -> &mut Self {
        self.location = Location::Disabled;
        self
    }

    /// A live view of the counters of the module this builder becomes.
    pub fn cache_stats(&self) -> StatsHandle {
        self.stats.clone()
    }
}

const _ASSERT_JIT_BUILDER_IS_SEND: () = {
    const fn assert_is_send<T: Send>() {}
    assert_is_send::<JITBuilder>();
};
