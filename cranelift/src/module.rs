//! [`JITModule`]: `cranelift_jit::JITModule` with a persistent cache in front of
//! `define_function`.
//!
//! The module wraps a real `cranelift_jit::JITModule`, which owns the memory, the
//! declarations, the relocation and the finalization. `define_function` compiles through
//! `Context::compile_with_cache` with the store behind it: on a hit Cranelift only
//! deserializes the stored code (no lowering, no register allocation, no emission), on a
//! miss it compiles and the code is stored at the next `finalize_definitions`. Either
//! way the code and its relocations go to `cranelift_jit` through
//! `define_function_bytes`, which is what `define_function` does inside `cranelift_jit`
//! after compiling. Everything else is `cranelift_jit`'s, so functions defined in
//! separate calls call each other, host symbols resolve, and memory providers work
//! exactly as there.
//!
//! Where `cranelift_jit` panics on input (an unresolvable symbol at finalization, a
//! thread-local data object, a data object without contents, a relocation outside what it
//! patches, an undeclared id) this module returns an error before handing anything to
//! it.

use std::borrow::Cow;
use std::cell::Cell;
use std::collections::HashSet;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use cranelift_codegen::binemit::Reloc;
use cranelift_codegen::control::ControlPlane;
use cranelift_codegen::incremental_cache::CacheKvStore;
use cranelift_codegen::ir::{ExternalName, Function};
use cranelift_codegen::isa::TargetIsa;
use cranelift_codegen::{CompiledCode, Context, FinalizedRelocTarget, ir};
use cranelift_module::{
    DataDescription, DataId, FuncId, Init, Linkage, Module, ModuleDeclarations, ModuleError,
    ModuleReloc, ModuleRelocTarget, ModuleResult,
};
use jitcache_store::sync::lock;
use jitcache_store::{Key, KeyBuilder};

use crate::builder::{JITBuilder, LibcallNames};
use crate::key::{self, FUNCTION_NAMESPACE};
use crate::resolve::Resolver;
use crate::stats::{CacheStats, StatsHandle};
use crate::tier::Tier;

/// The environment variable that makes every [`JITModule`] print its [`CacheStats`] on
/// stderr when it is dropped (any value but empty or `0`).
pub const STATS_ENV: &str = "JITCACHE_CRANELIFT_STATS";

/// A `JITModule` implements `Module` and emits code and data into memory where it can be
/// directly called and accessed, as `cranelift_jit::JITModule` does, and keeps the
/// compiled code of every function in a persistent cache.
///
/// See the [`JITBuilder`] for a convenient way to construct `JITModule` instances, and
/// the crate documentation for what is cached.
///
/// Redefinition is `cranelift_jit`'s: an id is defined at most once per module (a second
/// definition is [`ModuleError::DuplicateDefinition`]), and there is no hot swapping. A
/// new definition of a name belongs in a new module.
pub struct JITModule {
    inner: cranelift_jit::JITModule,
    resolver: Arc<Mutex<Resolver>>,
    libcall_names: LibcallNames,
    cache: Cache,
    /// How many functions and data objects are declared (ids are below these).
    functions: usize,
    data_objects: usize,
    defined_functions: HashSet<FuncId>,
    defined_data: HashSet<DataId>,
    /// What the definitions made since the last finalization refer to.
    pending: Vec<ModuleRelocTarget>,
}

/// The cache side of a module. Dropping it writes what is still queued.
struct Cache {
    tier: Tier,
    /// The backend, settings and target part of every key.
    prototype: KeyBuilder,
    stats: StatsHandle,
    /// Scratch space for a function's external names.
    names: Vec<u8>,
    /// Whether to print the counters when dropped ([`STATS_ENV`]).
    report: bool,
}

impl Cache {
    /// Writes the queued entries and counts them.
    fn flush(&self) {
        let stored = self.tier.flush();
        let bypassed = self.tier.bypassed();
        self.stats.update(|s| {
            s.stored += stored;
            if s.bypassed.is_none() {
                s.bypassed = bypassed;
            }
        });
    }
}

impl Drop for Cache {
    fn drop(&mut self) {
        self.flush();
        if self.report {
            eprintln!("jitcache-cranelift: {}", self.stats.get());
        }
    }
}

/// The key-value store `Context::compile_with_cache` reads and writes for one function:
/// Cranelift's key of the function, with the function's name and external names and the
/// module's settings, gives the store's key.
struct Lookup<'a> {
    tier: &'a Tier,
    prototype: &'a KeyBuilder,
    name: &'a str,
    names: &'a [u8],
    /// Answer every lookup with a miss (to replace a stored entry that does not fit).
    skip: bool,
    /// The store key of the last lookup.
    key: Cell<Option<Key>>,
    /// What Cranelift asked to store.
    inserted: Option<(Key, Vec<u8>)>,
}

impl Lookup<'_> {
    fn store_key(&self, cranelift_key: &[u8]) -> Key {
        let mut unit = Vec::with_capacity(8 + cranelift_key.len() + self.names.len());
        unit.extend_from_slice(&(cranelift_key.len() as u64).to_le_bytes());
        unit.extend_from_slice(cranelift_key);
        unit.extend_from_slice(self.names);
        self.prototype
            .key_of(FUNCTION_NAMESPACE, self.name, &unit, &[])
    }
}

impl CacheKvStore for Lookup<'_> {
    fn get(&self, key: &[u8]) -> Option<Cow<'_, [u8]>> {
        let key = self.store_key(key);
        self.key.set(Some(key));
        if self.skip {
            return None;
        }
        self.tier.get(&key).map(Cow::Owned)
    }

    fn insert(&mut self, key: &[u8], val: Vec<u8>) {
        let key = self.key.get().unwrap_or_else(|| self.store_key(key));
        self.inserted = Some((key, val));
    }
}

/// How a function came to be compiled.
enum Compiled {
    Hit,
    Miss,
    Uncached,
    /// A hit whose stored code did not fit, compiled again.
    Recompiled,
}

/// An error that `cranelift_jit` reports with a panic.
fn refused(message: String) -> ModuleError {
    ModuleError::Backend(anyhow::Error::msg(message))
}

/// Runs a compile, turning a panic of Cranelift's into an error.
fn guarded<T>(name: &str, compile: impl FnOnce() -> ModuleResult<T>) -> ModuleResult<T> {
    match catch_unwind(AssertUnwindSafe(compile)) {
        Ok(result) => result,
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            Err(refused(format!(
                "Cranelift panicked while compiling {name}: {message}"
            )))
        }
    }
}

/// The number of bytes a relocation of `kind` patches, for the kinds `cranelift_jit`
/// applies; `None` for the kinds it cannot apply (it panics on them).
fn reloc_width(kind: Reloc) -> Option<u32> {
    match kind {
        Reloc::Abs4
        | Reloc::X86PCRel4
        | Reloc::X86CallPCRel4
        | Reloc::S390xPCRel32Dbl
        | Reloc::S390xPLTRel32Dbl
        | Reloc::Arm64Call
        | Reloc::Aarch64AdrPrelPgHi21
        | Reloc::Aarch64AddAbsLo12Nc
        | Reloc::RiscvPCRelHi20
        | Reloc::RiscvPCRelLo12I
        | Reloc::PulleyPcRel => Some(4),
        Reloc::Abs8 | Reloc::RiscvCallPlt => Some(8),
        _ => None,
    }
}

/// Checks that a relocation patches bytes within `len` with a kind `cranelift_jit`
/// applies.
fn check_reloc(kind: Reloc, offset: u32, len: usize, what: &str) -> Result<(), String> {
    let width = reloc_width(kind)
        .ok_or_else(|| format!("{what}: cranelift-jit cannot apply a {kind:?} relocation"))?;
    if u64::from(offset) + u64::from(width) > len as u64 {
        return Err(format!(
            "{what}: a {kind:?} relocation at offset {offset} is outside its {len} bytes"
        ));
    }
    Ok(())
}

/// The relocations of a compiled function, as `cranelift_jit` makes them, after checking
/// that each fits the code and names an entry of the function's table.
fn module_relocs(
    code: &CompiledCode,
    func: &Function,
    id: FuncId,
    what: &str,
) -> Result<Vec<ModuleReloc>, String> {
    let len = code.code_buffer().len();
    let names = func.params.user_named_funcs();
    code.buffer
        .relocs()
        .iter()
        .map(|reloc| {
            check_reloc(reloc.kind, reloc.offset, len, what)?;
            match &reloc.target {
                FinalizedRelocTarget::ExternalName(ExternalName::User(name))
                    if names.get(*name).is_none() =>
                {
                    return Err(format!("{what}: a relocation names an unknown {name}"));
                }
                FinalizedRelocTarget::ExternalName(ExternalName::TestCase(name)) => {
                    return Err(format!(
                        "{what}: cranelift-jit cannot link the test-case name {name}"
                    ));
                }
                FinalizedRelocTarget::Func(offset) if *offset as usize > len => {
                    return Err(format!(
                        "{what}: a relocation points at offset {offset}, past its {len} bytes"
                    ));
                }
                _ => {}
            }
            Ok(ModuleReloc::from_mach_reloc(reloc, func, id))
        })
        .collect()
}

impl JITModule {
    /// Create a new `JITModule`, and open its cache (which never fails: an unusable
    /// cache directory means compiling everything, with one warning on stderr).
    ///
    /// # Panics
    ///
    /// As `cranelift_jit::JITModule::new`, when the builder's ISA has `is_pic` set.
    pub fn new(builder: JITBuilder) -> Self {
        let JITBuilder {
            mut inner,
            resolver,
            libcall_names,
            location,
            stats,
        } = builder;
        let resolver = Arc::new(Mutex::new(resolver));
        let shared = Arc::clone(&resolver);
        // Consulted by cranelift_jit before its own dlsym; it resolves everything the
        // host has, so that fallback only ever sees names nothing resolves.
        inner.symbol_lookup_fn(Box::new(move |name| lock(&shared).resolve(name)));
        let inner = cranelift_jit::JITModule::new(inner);
        let tier = Tier::open(&location);
        let bypassed = tier.bypassed();
        stats.update(|s| s.bypassed = bypassed);
        let report = std::env::var_os(STATS_ENV).is_some_and(|v| !v.is_empty() && v != "0");
        JITModule {
            cache: Cache {
                prototype: key::prototype(inner.isa()),
                tier,
                stats,
                names: Vec::new(),
                report,
            },
            inner,
            resolver,
            libcall_names,
            functions: 0,
            data_objects: 0,
            defined_functions: HashSet::new(),
            defined_data: HashSet::new(),
            pending: Vec::new(),
        }
    }

    /// Free memory allocated for code and data segments of compiled functions, after
    /// writing what the cache still has queued.
    ///
    /// # Safety
    ///
    /// Because this function invalidates any pointers retrieved from the corresponding
    /// module, it should only be used when none of the functions from that module are
    /// currently executing and none of the `fn` pointers are called afterwards.
    #[expect(unsafe_code, reason = "cranelift_jit's free_memory is an unsafe fn")]
    pub unsafe fn free_memory(self) {
        let JITModule { inner, cache, .. } = self;
        drop(cache);
        // SAFETY: the caller upholds the contract above, which is cranelift_jit's.
        unsafe { inner.free_memory() }
    }

    /// Get the address that the given [`ModuleRelocTarget`] would resolve to.
    ///
    /// For locally defined functions and data objects this is equivalent to
    /// [`Self::get_finalized_function`] cq [`Self::get_finalized_data`], while for
    /// external functions and data objects this will iterate through the registered
    /// symbol lookup functions until one matches.
    ///
    /// # Panics
    ///
    /// As `cranelift_jit`'s: when the name does not resolve.
    pub fn get_address(&self, name: &ModuleRelocTarget) -> *const u8 {
        self.inner.get_address(name)
    }

    /// Returns the address of a finalized function.
    ///
    /// The pointer remains valid until either [`JITModule::free_memory`] is called or in
    /// the future some way of deallocating this individual function is used.
    ///
    /// # Panics
    ///
    /// As `cranelift_jit`'s: when the function is not defined or not finalized yet.
    pub fn get_finalized_function(&self, func_id: FuncId) -> *const u8 {
        self.inner.get_finalized_function(func_id)
    }

    /// Returns the address and size of a finalized data object.
    ///
    /// The pointer remains valid until either [`JITModule::free_memory`] is called or in
    /// the future some way of deallocating this individual data object is used.
    ///
    /// # Panics
    ///
    /// As `cranelift_jit`'s: when the data object is not defined or not finalized yet.
    pub fn get_finalized_data(&self, data_id: DataId) -> (*const u8, usize) {
        self.inner.get_finalized_data(data_id)
    }

    /// Finalize all functions and data objects that are defined but not yet finalized.
    /// All symbols referenced in their bodies that are declared as needing a definition
    /// must be defined by this point.
    ///
    /// Use `get_finalized_function` and `get_finalized_data` to obtain the final
    /// artifacts. The functions compiled since the last finalization are written to the
    /// cache, in one transaction.
    ///
    /// # Errors
    ///
    /// [`ModuleError::Backend`] when a symbol does not resolve (`cranelift_jit` panics);
    /// nothing is finalized then, and defining what is missing and finalizing again
    /// works. Otherwise `cranelift_jit`'s: allocation or system call failures.
    pub fn finalize_definitions(&mut self) -> ModuleResult<()> {
        for target in &self.pending {
            self.check_target(target)?;
        }
        self.inner.finalize_definitions()?;
        self.pending.clear();
        self.cache.flush();
        Ok(())
    }

    /// A snapshot of the module's cache counters.
    pub fn cache_stats(&self) -> CacheStats {
        let mut stats = self.cache.stats.get();
        if stats.bypassed.is_none() {
            stats.bypassed = self.cache.tier.bypassed();
        }
        stats
    }

    /// The cache directory, unless the cache is disabled or no directory was found.
    pub fn cache_dir(&self) -> Option<&Path> {
        self.cache.tier.dir()
    }

    /// Checks that `target`, which a definition refers to, resolves as
    /// `cranelift_jit::JITModule::get_address` will resolve it at finalization.
    fn check_target(&self, target: &ModuleRelocTarget) -> ModuleResult<()> {
        let decls = self.inner.declarations();
        let (name, linkage) = match *target {
            ModuleRelocTarget::User { namespace, index } => {
                let ok_index = |count: usize| {
                    if (index as usize) < count {
                        Ok(())
                    } else {
                        Err(ModuleError::Undeclared(format!("u{namespace}:{index}")))
                    }
                };
                if ModuleDeclarations::is_function(target) {
                    ok_index(self.functions)?;
                    let id = FuncId::from_u32(index);
                    if self.defined_functions.contains(&id) {
                        return Ok(());
                    }
                    let decl = decls.get_function_decl(id);
                    (decl.name.as_deref(), decl.linkage)
                } else {
                    ok_index(self.data_objects)?;
                    let id = DataId::from_u32(index);
                    if self.defined_data.contains(&id) {
                        return Ok(());
                    }
                    let decl = decls.get_data_decl(id);
                    (decl.name.as_deref(), decl.linkage)
                }
            }
            ModuleRelocTarget::LibCall(libcall) => {
                let symbol = (self.libcall_names)(libcall);
                return if self.resolves(&symbol) {
                    Ok(())
                } else {
                    Err(refused(format!("can't resolve libcall {symbol}")))
                };
            }
            ModuleRelocTarget::FunctionOffset(id, _) => {
                return if self.defined_functions.contains(&id) {
                    Ok(())
                } else {
                    Err(refused(format!("{id} is referred to but not defined")))
                };
            }
            ModuleRelocTarget::KnownSymbol(symbol) => {
                return Err(refused(format!(
                    "cranelift-jit cannot resolve the known symbol {symbol}"
                )));
            }
        };
        let Some(name) = name else {
            return Err(refused(format!(
                "{target}: an anonymous symbol must be defined in the module"
            )));
        };
        if self.resolves(name) || (linkage == Linkage::Preemptible && !name.contains('\0')) {
            Ok(())
        } else {
            Err(refused(format!("can't resolve symbol {name}")))
        }
    }

    /// Whether the host has `name` (which `cranelift_jit` then finds through the
    /// resolver).
    fn resolves(&self, name: &str) -> bool {
        lock(&self.resolver).resolve(name).is_some()
    }

    /// Checks that `id` can be defined now, with `cranelift_jit`'s errors, plus
    /// [`ModuleError::Undeclared`] for an id the module never gave out (`cranelift_jit`
    /// panics).
    fn check_function_definable(&self, id: FuncId) -> ModuleResult<()> {
        if id.as_u32() as usize >= self.functions {
            return Err(ModuleError::Undeclared(id.to_string()));
        }
        let decl = self.inner.declarations().get_function_decl(id);
        if !decl.linkage.is_definable() {
            return Err(ModuleError::InvalidImportDefinition(
                decl.linkage_name(id).into_owned(),
            ));
        }
        if self.defined_functions.contains(&id) {
            return Err(ModuleError::DuplicateDefinition(
                decl.linkage_name(id).into_owned(),
            ));
        }
        Ok(())
    }

    /// Checks that the targets of a definition's relocations are declared (an index past
    /// the declarations makes `cranelift_jit` panic).
    fn check_declared(&self, relocs: &[ModuleReloc], what: &str) -> ModuleResult<()> {
        for reloc in relocs {
            if let ModuleRelocTarget::User { namespace, index } = reloc.name {
                let count = if namespace == 0 {
                    self.functions
                } else {
                    self.data_objects
                };
                if index as usize >= count {
                    return Err(refused(format!(
                        "{what}: a relocation names u{namespace}:{index}, which is not declared"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Compiles `ctx.func` for definition `id`, through the cache when it can be used,
    /// and returns its relocations.
    fn compile(
        &mut self,
        id: FuncId,
        ctx: &mut Context,
        ctrl_plane: &mut ControlPlane,
    ) -> ModuleResult<(Vec<ModuleReloc>, Compiled)> {
        let decl = self.inner.declarations().get_function_decl(id);
        let what = decl.linkage_name(id);
        let isa: &dyn TargetIsa = self.inner.isa();
        let cacheable = self.cache.tier.is_usable()
            && !ctx.want_disasm
            && key::describe_names(
                &ctx.func,
                self.inner.declarations(),
                (self.functions, self.data_objects),
                &mut self.cache.names,
            );
        let relocs_of = |ctx: &Context| -> Result<Vec<ModuleReloc>, String> {
            let code = ctx
                .compiled_code()
                .ok_or_else(|| format!("{what}: no compiled code"))?;
            module_relocs(code, &ctx.func, id, &what)
        };
        if !cacheable {
            guarded(&what, || {
                ctx.compile(isa, ctrl_plane)
                    .map(drop)
                    .map_err(ModuleError::from)
            })?;
            let relocs = relocs_of(ctx).map_err(refused)?;
            return Ok((relocs, Compiled::Uncached));
        }
        let mut lookup = Lookup {
            tier: &self.cache.tier,
            prototype: &self.cache.prototype,
            name: decl.name.as_deref().unwrap_or(""),
            names: &self.cache.names,
            skip: false,
            key: Cell::new(None),
            inserted: None,
        };
        let mut compile = |lookup: &mut Lookup<'_>, ctx: &mut Context| {
            guarded(&what, || {
                ctx.compile_with_cache(isa, lookup, ctrl_plane)
                    .map(|(_, hit)| hit)
                    .map_err(ModuleError::from)
            })
        };
        let mut outcome = if compile(&mut lookup, ctx)? {
            Compiled::Hit
        } else {
            Compiled::Miss
        };
        let relocs = match (relocs_of(ctx), &outcome) {
            (Ok(relocs), _) => relocs,
            (Err(_), Compiled::Hit) => {
                // The stored code does not fit this function: compile it and store the
                // result under the same key.
                lookup.skip = true;
                compile(&mut lookup, ctx)?;
                outcome = Compiled::Recompiled;
                relocs_of(ctx).map_err(refused)?
            }
            (Err(message), _) => return Err(refused(message)),
        };
        if let Some((key, blob)) = lookup.inserted.take() {
            let name = format!("{FUNCTION_NAMESPACE}/{}", lookup.name);
            let stored = self.cache.tier.put_later(key, blob, name);
            if stored > 0 {
                self.cache.stats.update(|s| s.stored += stored);
            }
        }
        Ok((relocs, outcome))
    }

    /// Records a definition: its id, and what its relocations refer to.
    fn note_targets(&mut self, relocs: &[ModuleReloc]) {
        self.pending
            .extend(relocs.iter().map(|reloc| reloc.name.clone()));
    }
}

impl Module for JITModule {
    fn isa(&self) -> &dyn TargetIsa {
        self.inner.isa()
    }

    fn declarations(&self) -> &ModuleDeclarations {
        self.inner.declarations()
    }

    fn declare_function(
        &mut self,
        name: &str,
        linkage: Linkage,
        signature: &ir::Signature,
    ) -> ModuleResult<FuncId> {
        let id = self.inner.declare_function(name, linkage, signature)?;
        self.functions = self.functions.max(id.as_u32() as usize + 1);
        Ok(id)
    }

    fn declare_anonymous_function(&mut self, signature: &ir::Signature) -> ModuleResult<FuncId> {
        let id = self.inner.declare_anonymous_function(signature)?;
        self.functions = self.functions.max(id.as_u32() as usize + 1);
        Ok(id)
    }

    /// Declare a data object in this module.
    ///
    /// # Errors
    ///
    /// `cranelift_jit`'s, and [`ModuleError::Backend`] for a thread-local object
    /// (`cranelift_jit` panics: it does not support TLS).
    fn declare_data(
        &mut self,
        name: &str,
        linkage: Linkage,
        writable: bool,
        tls: bool,
    ) -> ModuleResult<DataId> {
        if tls {
            return Err(refused(format!(
                "{name}: cranelift-jit does not support thread-local data"
            )));
        }
        let id = self.inner.declare_data(name, linkage, writable, tls)?;
        self.data_objects = self.data_objects.max(id.as_u32() as usize + 1);
        Ok(id)
    }

    /// Declare an anonymous data object in this module.
    ///
    /// # Errors
    ///
    /// [`ModuleError::Backend`] for a thread-local object (`cranelift_jit` panics).
    fn declare_anonymous_data(&mut self, writable: bool, tls: bool) -> ModuleResult<DataId> {
        if tls {
            return Err(refused(
                "cranelift-jit does not support thread-local data".to_owned(),
            ));
        }
        let id = self.inner.declare_anonymous_data(writable, tls)?;
        self.data_objects = self.data_objects.max(id.as_u32() as usize + 1);
        Ok(id)
    }

    /// Define a function, producing the function body from the given `Context`: from
    /// the cache when it holds the function's key, else compiled by Cranelift (and
    /// stored at the next finalization).
    ///
    /// After a compile the context holds the compiled function, as with `cranelift_jit`;
    /// after a hit it holds the stored compilation (`ctx.compiled_code()`), and
    /// `ctx.func` is left as it was built (a compile optimizes it in place).
    fn define_function_with_control_plane(
        &mut self,
        id: FuncId,
        ctx: &mut Context,
        ctrl_plane: &mut ControlPlane,
    ) -> ModuleResult<()> {
        let started = Instant::now();
        self.check_function_definable(id)?;
        let result = self.compile(id, ctx, ctrl_plane);
        let elapsed = started.elapsed();
        self.cache.stats.update(|s| {
            s.define_time += elapsed;
            match &result {
                Ok((_, Compiled::Hit)) => s.hits += 1,
                Ok((_, Compiled::Miss)) => {
                    s.misses += 1;
                    s.compiles += 1;
                }
                Ok((_, Compiled::Uncached)) => {
                    s.uncached += 1;
                    s.compiles += 1;
                }
                Ok((_, Compiled::Recompiled)) => {
                    s.recompiled += 1;
                    s.compiles += 1;
                }
                // A function Cranelift refused is neither cached nor counted.
                Err(_) => {}
            }
        });
        let (relocs, _) = result?;
        self.check_declared(
            &relocs,
            &self
                .inner
                .declarations()
                .get_function_decl(id)
                .linkage_name(id),
        )?;
        let code = ctx
            .compiled_code()
            .ok_or_else(|| refused(format!("{id}: no compiled code")))?;
        self.inner.define_function_bytes(
            id,
            u64::from(code.buffer.alignment),
            code.code_buffer(),
            &relocs,
        )?;
        self.defined_functions.insert(id);
        self.note_targets(&relocs);
        Ok(())
    }

    /// Define a function, taking the function body from the given `bytes`, as
    /// `cranelift_jit` does: nothing is compiled or cached.
    ///
    /// # Errors
    ///
    /// `cranelift_jit`'s, and [`ModuleError::Backend`] for a relocation outside `bytes`,
    /// of a kind `cranelift_jit` cannot apply, or naming an undeclared id
    /// (`cranelift_jit` panics or writes out of bounds).
    fn define_function_bytes(
        &mut self,
        id: FuncId,
        alignment: u64,
        bytes: &[u8],
        relocs: &[ModuleReloc],
    ) -> ModuleResult<()> {
        self.check_function_definable(id)?;
        let what = self
            .inner
            .declarations()
            .get_function_decl(id)
            .linkage_name(id)
            .into_owned();
        for reloc in relocs {
            check_reloc(reloc.kind, reloc.offset, bytes.len(), &what).map_err(refused)?;
        }
        self.check_declared(relocs, &what)?;
        self.inner
            .define_function_bytes(id, alignment, bytes, relocs)?;
        self.defined_functions.insert(id);
        self.note_targets(relocs);
        self.cache.stats.update(|s| s.function_bytes += 1);
        Ok(())
    }

    /// Define a data object, producing the data contents from the given
    /// `DataDescription`, as `cranelift_jit` does (data objects are not cached).
    ///
    /// # Errors
    ///
    /// `cranelift_jit`'s, and [`ModuleError::Backend`] for a description without
    /// contents (`Init::Uninitialized`), a relocation outside the object or naming an
    /// undeclared id, and [`ModuleError::Undeclared`] for an id the module never gave
    /// out (`cranelift_jit` panics on all of these).
    fn define_data(&mut self, data_id: DataId, data: &DataDescription) -> ModuleResult<()> {
        if data_id.as_u32() as usize >= self.data_objects {
            return Err(ModuleError::Undeclared(data_id.to_string()));
        }
        let decl = self.inner.declarations().get_data_decl(data_id);
        let what = decl.linkage_name(data_id).into_owned();
        if decl.linkage.is_definable() && !self.defined_data.contains(&data_id) {
            let size = match &data.init {
                Init::Uninitialized => {
                    return Err(refused(format!("{what}: data is not initialized yet")));
                }
                Init::Zeros { size } => (*size).max(1),
                Init::Bytes { contents } => contents.len().max(1),
            };
            let pointer = match self.inner.isa().pointer_bytes() {
                4 => Reloc::Abs4,
                8 => Reloc::Abs8,
                n => {
                    return Err(refused(format!(
                        "{what}: cranelift-jit has no data relocation for {n}-byte pointers"
                    )));
                }
            };
            let relocs: Vec<ModuleReloc> = data.all_relocs(pointer).collect();
            for reloc in &relocs {
                check_reloc(reloc.kind, reloc.offset, size, &what).map_err(refused)?;
            }
            self.check_declared(&relocs, &what)?;
            self.inner.define_data(data_id, data)?;
            self.defined_data.insert(data_id);
            self.note_targets(&relocs);
            self.cache.stats.update(|s| s.data_objects += 1);
            Ok(())
        } else {
            // cranelift_jit's own error: an import, or a second definition.
            self.inner.define_data(data_id, data)
        }
    }
}

const _ASSERT_JIT_MODULE_IS_SEND: () = {
    const fn assert_is_send<T: Send>() {}
    assert_is_send::<JITModule>();
};
