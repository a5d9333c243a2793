//! `jitcache-cranelift`: `cranelift_jit`'s [`JITBuilder`] and [`JITModule`], with the
//! compiled code of every function kept in jitcache's persistent store.
//!
//! A program that uses `cranelift_jit` switches by changing one `use` line (and its Cargo
//! dependency):
//!
//! ```diff
//! -use cranelift_jit::{JITBuilder, JITModule};
//! +use jitcache_cranelift::{JITBuilder, JITModule};
//! ```
//!
//! and nothing else. `define_function` then looks the function up before compiling it: a
//! hit runs no Cranelift compilation (no lowering, no register allocation, no emission),
//! a miss compiles once and the code is stored at the next `finalize_definitions` for
//! every later process. The cache lives where the `jitcache` tool keeps it
//! (`$JITCACHE_DIR`, else `$XDG_CACHE_HOME/jitcache`, else `~/.cache/jitcache`), and
//! `jitcache stats`, `ls`, `gc` and `verify` work on it.
//!
//! # Map of the API
//!
//! | item | what it is |
//! | --- | --- |
//! | [`JITBuilder`] | `cranelift_jit::JITBuilder`: [`new`](JITBuilder::new), [`with_flags`](JITBuilder::with_flags), [`with_isa`](JITBuilder::with_isa), [`symbol`](JITBuilder::symbol), [`symbols`](JITBuilder::symbols), [`symbol_lookup_fn`](JITBuilder::symbol_lookup_fn), [`memory_provider`](JITBuilder::memory_provider); and [`cache_dir`](JITBuilder::cache_dir), [`disable_cache`](JITBuilder::disable_cache), [`cache_stats`](JITBuilder::cache_stats) |
//! | [`JITModule`] | `cranelift_jit::JITModule`: [`new`](JITModule::new), the whole [`cranelift_module::Module`] trait, [`finalize_definitions`](JITModule::finalize_definitions), [`get_finalized_function`](JITModule::get_finalized_function), [`get_finalized_data`](JITModule::get_finalized_data), [`get_address`](JITModule::get_address), [`free_memory`](JITModule::free_memory); and [`cache_stats`](JITModule::cache_stats), [`cache_dir`](JITModule::cache_dir) |
//! | [`ArenaMemoryProvider`], [`BranchProtection`], [`JITMemoryKind`], [`JITMemoryProvider`], [`SystemMemoryProvider`], [`VERSION`] | `cranelift_jit`'s own, re-exported |
//! | [`CacheStats`], [`StatsHandle`], [`STATS_ENV`] | what a module did with the cache: hits, misses, compiles, writes |
//! | [`PersistentKvStore`], [`KvStats`] | Cranelift's `incremental_cache::CacheKvStore` on the store, for `Context::compile_with_cache` |
//! | [`default_cache_dir`], [`CACHE_REVISION`] | where the cache lives; the revision of what is stored, part of every key |
//!
//! # What is cached
//!
//! Functions compiled by `define_function` (and `define_function_with_control_plane`):
//! Cranelift's compiled code of the function, as `Context::compile_with_cache`
//! serializes it. Its key is made of
//!
//! - Cranelift's own key of the function: a SHA-256 of its stencil (the IR without its
//!   name and its table of external names, which is where the numeric ids live) and of
//!   the ISA (name, triple, shared and ISA flags);
//! - what each entry of that table refers to, in order, by what it is rather than by
//!   id: a function's name (or that it is anonymous), linkage and signature; a data
//!   object's name, linkage, writability and thread-locality;
//! - the function's own name;
//! - `cranelift` and `cranelift_codegen::VERSION`;
//! - every shared and ISA setting as `name=value`, and [`CACHE_REVISION`];
//! - the triple, the ISA's name and the enabled ISA flags (the CPU features).
//!
//! A function whose context asks for a disassembly (`ctx.want_disasm`), or that refers
//! to an external name the module never declared, is compiled without the cache.
//!
//! Not cached: data objects (`define_data` copies their bytes into memory, as
//! `cranelift_jit` does; a lookup would cost more), functions given as bytes
//! (`define_function_bytes`), and linking (`finalize_definitions` resolves and patches in
//! every process, so host symbols may move between runs).
//!
//! # What is `cranelift_jit`'s
//!
//! The module wraps a `cranelift_jit::JITModule`: memory, declarations, relocation,
//! symbol lookup (the builder's symbols, the lookup functions newest first, then
//! `dlsym`), libcalls and redefinition are `cranelift_jit`'s. Redefinition in particular:
//! an id is defined once per module, a second definition is
//! [`ModuleError::DuplicateDefinition`](cranelift_module::ModuleError::DuplicateDefinition),
//! and there is no hot swapping. Where `cranelift_jit` panics on input (a symbol that
//! does not resolve at finalization, a thread-local data object, a data object without
//! contents, an undeclared id, a relocation outside what it patches), this crate returns
//! an error instead. Where it panics on a broken contract (asking for a function that is
//! not finalized, `is_pic` set), so does this crate.
//!
//! # Example
//!
//! ```
//! use cranelift_codegen::ir::{types, AbiParam, InstBuilder, UserFuncName};
//! use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
//! use cranelift_module::{default_libcall_names, Linkage, Module};
//! use jitcache_cranelift::{JITBuilder, JITModule};
//!
//! let dir = tempfile::tempdir()?;
//! for run in 0..2 {
//!     let mut builder = JITBuilder::new(default_libcall_names())?;
//!     builder.cache_dir(dir.path()); // without it: $JITCACHE_DIR, XDG, ~/.cache/jitcache
//!     let mut module = JITModule::new(builder);
//!
//!     let mut ctx = module.make_context();
//!     ctx.func.signature.returns.push(AbiParam::new(types::I64));
//!     let id = module.declare_function("answer", Linkage::Export, &ctx.func.signature)?;
//!     ctx.func.name = UserFuncName::user(0, id.as_u32());
//!     let mut fctx = FunctionBuilderContext::new();
//!     let mut b = FunctionBuilder::new(&mut ctx.func, &mut fctx);
//!     let block = b.create_block();
//!     b.switch_to_block(block);
//!     let v = b.ins().iconst(types::I64, 42);
//!     b.ins().return_(&[v]);
//!     b.seal_all_blocks();
//!     b.finalize(module.target_config());
//!     module.define_function(id, &mut ctx)?;
//!     module.finalize_definitions()?;
//!
//!     let code = module.get_finalized_function(id);
//!     // SAFETY: `answer` was just defined and finalized with this signature.
//!     let answer = unsafe { std::mem::transmute::<*const u8, extern "C" fn() -> i64>(code) };
//!     assert_eq!(answer(), 42);
//!     // The second module, as a second process would, compiles nothing.
//!     let stats = module.cache_stats();
//!     assert_eq!((stats.compiles, stats.hits), if run == 0 { (1, 0) } else { (0, 1) });
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(unsafe_code)]
#![expect(
    clippy::result_large_err,
    reason = "cranelift_module::ModuleError is the error type of the API this crate mirrors"
)]

mod builder;
mod key;
mod kv;
mod module;
mod resolve;
mod stats;
mod tier;

pub use builder::JITBuilder;
pub use cranelift_jit::{
    ArenaMemoryProvider, BranchProtection, JITMemoryKind, JITMemoryProvider, SystemMemoryProvider,
};
pub use key::CACHE_REVISION;
pub use kv::{KvStats, PersistentKvStore};
pub use module::{JITModule, STATS_ENV};
pub use stats::{CacheStats, StatsHandle};
pub use tier::default_cache_dir;

/// The version of `cranelift_jit` whose API this crate mirrors (and which it wraps).
pub const VERSION: &str = cranelift_jit::VERSION;
