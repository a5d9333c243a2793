//! The drop-in's API in one process: what hits and what misses, the builder's cache
//! options, `cranelift_jit`'s errors reproduced, its panics on input turned into errors,
//! and `PersistentKvStore`.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use cranelift_codegen::Context;
use cranelift_codegen::control::ControlPlane;
use cranelift_codegen::incremental_cache::CacheKvStore;
use cranelift_codegen::ir::{AbiParam, InstBuilder, Signature, UserFuncName, types};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_module::{
    DataDescription, FuncId, Linkage, Module, ModuleError, ModuleReloc, ModuleRelocTarget,
    default_libcall_names,
};
use jitcache_cranelift::{CacheStats, JITBuilder, JITModule, PersistentKvStore};

/// `(i64) -> i64` in the module's calling convention.
fn sig(module: &impl Module) -> Signature {
    let mut sig = module.make_signature();
    sig.params.push(AbiParam::new(types::I64));
    sig.returns.push(AbiParam::new(types::I64));
    sig
}

/// Builds `x + add` in `ctx`, plus `callee(x)` when given.
fn build(
    module: &mut impl Module,
    ctx: &mut Context,
    id: FuncId,
    add: i64,
    callee: Option<FuncId>,
) {
    module.clear_context(ctx);
    ctx.func.signature = sig(module);
    ctx.func.name = UserFuncName::user(0, id.as_u32());
    let callee = callee.map(|c| module.declare_func_in_func(c, &mut ctx.func));
    let mut fctx = FunctionBuilderContext::new();
    let mut b = FunctionBuilder::new(&mut ctx.func, &mut fctx);
    let entry = b.create_block();
    b.append_block_params_for_function_params(entry);
    b.switch_to_block(entry);
    let x = b.block_params(entry)[0];
    let mut v = b.ins().iadd_imm_s(x, add);
    if let Some(callee) = callee {
        let call = b.ins().call(callee, &[x]);
        let r = b.inst_results(call)[0];
        v = b.ins().iadd(v, r);
    }
    b.ins().return_(&[v]);
    b.seal_all_blocks();
    b.finalize(module.target_config());
}

fn call(code: *const u8, x: i64) -> i64 {
    // SAFETY: every function of these tests is `(i64) -> i64` in the host's calling
    // convention, and `code` is a finalized one.
    let f = unsafe { std::mem::transmute::<*const u8, extern "C" fn(i64) -> i64>(code) };
    f(x)
}

fn module_in(dir: &Path) -> JITModule {
    let mut builder = JITBuilder::new(default_libcall_names()).expect("builder");
    builder.cache_dir(dir);
    JITModule::new(builder)
}

/// Defines `f(x) = x + add` (calling `g(x) = x * 2`, declared under `callee_name` with
/// `callee_linkage`, when `with_callee`), finalizes, calls `f(10)`; returns the result
/// and the module's counters. `filler` functions are declared first, so that ids differ.
struct Case {
    add: i64,
    callee_name: &'static str,
    callee_linkage: Linkage,
    filler: usize,
    flags: &'static [(&'static str, &'static str)],
}

impl Default for Case {
    fn default() -> Self {
        Case {
            add: 1,
            callee_name: "g",
            callee_linkage: Linkage::Local,
            filler: 0,
            flags: &[],
        }
    }
}

extern "C" fn host_g(x: i64) -> i64 {
    x * 2
}

impl Case {
    fn run(&self, dir: &Path) -> (i64, CacheStats) {
        let mut builder = JITBuilder::with_flags(self.flags, default_libcall_names()).expect("b");
        builder
            .cache_dir(dir)
            .symbol(self.callee_name, host_g as *const u8);
        let mut module = JITModule::new(builder);
        let sig = sig(&module);
        for i in 0..self.filler {
            module
                .declare_function(&format!("filler{i}"), Linkage::Import, &sig)
                .expect("declare");
        }
        let g = module
            .declare_function(self.callee_name, self.callee_linkage, &sig)
            .expect("declare g");
        let f = module
            .declare_function("f", Linkage::Export, &sig)
            .expect("f");
        let mut ctx = module.make_context();
        build(&mut module, &mut ctx, f, self.add, Some(g));
        module.define_function(f, &mut ctx).expect("define f");
        if self.callee_linkage != Linkage::Import {
            // g(x) = x * 2 too, defined in the module.
            module.clear_context(&mut ctx);
            ctx.func.signature = sig.clone();
            let mut fctx = FunctionBuilderContext::new();
            let mut b = FunctionBuilder::new(&mut ctx.func, &mut fctx);
            let entry = b.create_block();
            b.append_block_params_for_function_params(entry);
            b.switch_to_block(entry);
            let x = b.block_params(entry)[0];
            let v = b.ins().iadd(x, x);
            b.ins().return_(&[v]);
            b.seal_all_blocks();
            b.finalize(module.target_config());
            module.define_function(g, &mut ctx).expect("define g");
        }
        module.finalize_definitions().expect("finalize");
        let result = call(module.get_finalized_function(f), 10);
        (result, module.cache_stats())
    }
}

#[test]
fn a_second_module_hits_and_its_context_holds_the_stored_code() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut codes = Vec::new();
    for run in 0..2 {
        let mut module = module_in(dir.path());
        let f = module
            .declare_function("f", Linkage::Export, &sig(&module))
            .expect("f");
        let mut ctx = module.make_context();
        build(&mut module, &mut ctx, f, 5, None);
        module.define_function(f, &mut ctx).expect("define");
        let code = ctx.compiled_code().expect("compiled code after define");
        codes.push(code.code_buffer().to_vec());
        module.finalize_definitions().expect("finalize");
        assert_eq!(call(module.get_finalized_function(f), 1), 6);
        let stats = module.cache_stats();
        assert_eq!(
            (stats.hits, stats.misses),
            if run == 0 { (0, 1) } else { (1, 0) }
        );
        assert_eq!(stats.stored, if run == 0 { 1 } else { 0 });
        assert_eq!(stats.bypassed, None);
        assert_eq!(module.cache_dir(), Some(dir.path()));
    }
    assert_eq!(codes[0], codes[1], "the hit hands back the compiled bytes");
}

#[test]
fn what_changes_the_key_and_what_does_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = Case::default();
    let (expected, first) = base.run(dir.path());
    assert_eq!(expected, 10 + 1 + 20);
    assert_eq!((first.misses, first.hits), (2, 0));
    let again = base.run(dir.path());
    assert_eq!(
        again,
        (
            expected,
            CacheStats {
                hits: 2,
                misses: 0,
                compiles: 0,
                ..again.1.clone()
            }
        )
    );

    // Other ids for the same names: still hits (ids are not in the key).
    let shifted = Case {
        filler: 3,
        ..Case::default()
    }
    .run(dir.path());
    assert_eq!(
        (shifted.0, shifted.1.hits, shifted.1.compiles),
        (expected, 2, 0)
    );

    // Another body: `f` misses, `g` hits.
    let body = Case {
        add: 2,
        ..Case::default()
    }
    .run(dir.path());
    assert_eq!((body.0, body.1.hits, body.1.misses), (expected + 1, 1, 1));

    // The callee's linkage and name are in the key.
    let import = |callee_name| Case {
        callee_name,
        callee_linkage: Linkage::Import,
        ..Case::default()
    };
    let imported = import("g").run(dir.path());
    assert_eq!(
        (imported.0, imported.1.misses),
        (expected, 1),
        "{:?}",
        imported.1
    );
    let renamed = import("h").run(dir.path());
    assert_eq!(
        (renamed.0, renamed.1.misses),
        (expected, 1),
        "{:?}",
        renamed.1
    );
    assert_eq!(import("h").run(dir.path()).1.hits, 1);

    // Another setting: everything misses.
    let flags = Case {
        flags: &[("opt_level", "speed")],
        ..Case::default()
    }
    .run(dir.path());
    assert_eq!((flags.0, flags.1.misses, flags.1.hits), (expected, 2, 0));
}

#[test]
fn a_disabled_cache_compiles_everything_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = dir.path().join("cache");
    let mut builder = JITBuilder::new(default_libcall_names()).expect("builder");
    builder.cache_dir(&cache).disable_cache();
    let handle = builder.cache_stats();
    for _ in 0..2 {
        let mut builder = JITBuilder::new(default_libcall_names()).expect("builder");
        builder.cache_dir(&cache).disable_cache();
        let mut module = JITModule::new(builder);
        let f = module
            .declare_function("f", Linkage::Export, &sig(&module))
            .expect("f");
        let mut ctx = module.make_context();
        build(&mut module, &mut ctx, f, 1, None);
        module.define_function(f, &mut ctx).expect("define");
        module.finalize_definitions().expect("finalize");
        assert_eq!(call(module.get_finalized_function(f), 1), 2);
        let stats = module.cache_stats();
        assert_eq!(
            (stats.uncached, stats.compiles, stats.hits, stats.stored),
            (1, 1, 0, 0)
        );
        assert_eq!(
            stats.bypassed.as_deref(),
            Some("the persistent cache is disabled")
        );
        assert_eq!(module.cache_dir(), None);
    }
    assert!(!cache.exists());
    drop(JITModule::new(builder));
    assert_eq!(
        handle.get().compiles,
        0,
        "the handle follows its own builder's module"
    );
}

#[test]
fn an_unusable_cache_directory_means_compiling() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("not-a-directory");
    std::fs::write(&file, b"x").expect("write");
    for _ in 0..2 {
        let mut module = module_in(&file);
        let f = module
            .declare_function("f", Linkage::Export, &sig(&module))
            .expect("f");
        let mut ctx = module.make_context();
        build(&mut module, &mut ctx, f, 7, None);
        module.define_function(f, &mut ctx).expect("define");
        module.finalize_definitions().expect("finalize");
        assert_eq!(call(module.get_finalized_function(f), 1), 8);
        let stats = module.cache_stats();
        assert_eq!((stats.uncached, stats.hits), (1, 0));
        assert!(stats.bypassed.is_some());
    }
}

#[test]
fn a_context_that_wants_a_disassembly_is_compiled() {
    let dir = tempfile::tempdir().expect("tempdir");
    for _ in 0..2 {
        let mut module = module_in(dir.path());
        let f = module
            .declare_function("f", Linkage::Export, &sig(&module))
            .expect("f");
        let mut ctx = module.make_context();
        build(&mut module, &mut ctx, f, 1, None);
        ctx.set_disasm(true);
        module.define_function(f, &mut ctx).expect("define");
        assert!(ctx.compiled_code().and_then(|c| c.vcode.as_ref()).is_some());
        assert_eq!(module.cache_stats().uncached, 1);
    }
}

#[test]
fn definitions_not_finalized_are_written_at_drop_and_at_free_memory() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Defines `name` as x + add in a new module and returns the module and its hits.
    let define = |name: &str, add: i64| {
        let mut module = module_in(dir.path());
        let id = module
            .declare_function(name, Linkage::Export, &sig(&module))
            .expect("declare");
        let mut ctx = module.make_context();
        build(&mut module, &mut ctx, id, add, None);
        module.define_function(id, &mut ctx).expect("define");
        let hits = module.cache_stats().hits;
        (module, hits)
    };
    let (module, hits) = define("f", 3);
    assert_eq!(hits, 0);
    drop(module);
    assert_eq!(define("f", 3).1, 1, "written when the module was dropped");
    let (module, hits) = define("g", 4);
    assert_eq!(hits, 0);
    // SAFETY: nothing of the module was finalized or called.
    unsafe { module.free_memory() };
    assert_eq!(define("g", 4).1, 1, "written by free_memory");
}

#[test]
fn the_stats_handle_counts_the_writes_made_at_drop() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut builder = JITBuilder::new(default_libcall_names()).expect("builder");
    builder.cache_dir(dir.path());
    let handle = builder.cache_stats();
    let mut module = JITModule::new(builder);
    let f = module
        .declare_function("f", Linkage::Export, &sig(&module))
        .expect("f");
    let mut ctx = module.make_context();
    build(&mut module, &mut ctx, f, 1, None);
    module.define_function(f, &mut ctx).expect("define");
    assert_eq!(handle.get().stored, 0, "queued until finalization or drop");
    drop(module);
    let stats = handle.get();
    assert_eq!((stats.misses, stats.stored), (1, 1));
    assert!(stats.define_time > std::time::Duration::ZERO);
    assert!(
        stats.to_string().starts_with("hits=0 misses=1 compiles=1 "),
        "{stats}"
    );
}

/// Runs `f` on a `cranelift_jit` module and returns whether it panicked.
fn cranelift_jit_panics(f: impl FnOnce(&mut cranelift_jit::JITModule)) -> bool {
    let builder = cranelift_jit::JITBuilder::new(default_libcall_names()).expect("builder");
    let mut module = cranelift_jit::JITModule::new(builder);
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let panicked = catch_unwind(AssertUnwindSafe(|| f(&mut module))).is_err();
    std::panic::set_hook(previous);
    panicked
}

#[test]
fn an_unresolved_symbol_is_an_error_where_cranelift_jit_panics() {
    assert!(cranelift_jit_panics(|module| {
        let s = sig(module);
        let g = module
            .declare_function("nowhere_to_be_found", Linkage::Import, &s)
            .unwrap();
        let f = module.declare_function("f", Linkage::Export, &s).unwrap();
        let mut ctx = module.make_context();
        build(module, &mut ctx, f, 1, Some(g));
        module.define_function(f, &mut ctx).unwrap();
        let _ = module.finalize_definitions();
    }));
    let dir = tempfile::tempdir().expect("tempdir");
    let mut module = module_in(dir.path());
    let s = sig(&module);
    let g = module
        .declare_function("nowhere_to_be_found", Linkage::Import, &s)
        .expect("declare");
    let f = module
        .declare_function("f", Linkage::Export, &s)
        .expect("f");
    let mut ctx = module.make_context();
    build(&mut module, &mut ctx, f, 1, Some(g));
    module.define_function(f, &mut ctx).expect("define");
    let err = module.finalize_definitions().expect_err("unresolved");
    assert!(err.to_string().contains("nowhere_to_be_found"), "{err}");
    // A preemptible declaration that nothing defines is null, as in cranelift_jit.
    let p = module
        .declare_function("preempt_me", Linkage::Preemptible, &s)
        .expect("declare");
    let addr = module.get_address(&ModuleRelocTarget::user(0, p.as_u32()));
    assert!(addr.is_null());
}

#[test]
fn thread_local_and_uninitialized_data_are_errors_where_cranelift_jit_panics() {
    assert!(cranelift_jit_panics(|module| {
        let _ = module.declare_data("tls", Linkage::Export, true, true);
    }));
    assert!(cranelift_jit_panics(|module| {
        let d = module
            .declare_data("d", Linkage::Export, true, false)
            .unwrap();
        let _ = module.define_data(d, &DataDescription::new());
    }));
    let dir = tempfile::tempdir().expect("tempdir");
    let mut module = module_in(dir.path());
    assert!(matches!(
        module.declare_data("tls", Linkage::Export, true, true),
        Err(ModuleError::Backend(_))
    ));
    assert!(module.declare_anonymous_data(true, true).is_err());
    let d = module
        .declare_data("d", Linkage::Export, true, false)
        .expect("declare");
    let err = module
        .define_data(d, &DataDescription::new())
        .expect_err("no contents");
    assert!(err.to_string().contains("not initialized"), "{err}");
    // A relocation past the end of the object.
    let mut desc = DataDescription::new();
    desc.define_zeroinit(4);
    let gv = module.declare_data_in_data(d, &mut desc);
    desc.write_data_addr(0, gv, 0);
    assert!(
        module.define_data(d, &desc).is_err(),
        "8 bytes do not fit in 4"
    );
    let mut desc = DataDescription::new();
    desc.define_zeroinit(8);
    let gv = module.declare_data_in_data(d, &mut desc);
    desc.write_data_addr(0, gv, 0);
    module.define_data(d, &desc).expect("a pointer to itself");
    module.finalize_definitions().expect("finalize");
    let (ptr, size) = module.get_finalized_data(d);
    assert_eq!(size, 8);
    // SAFETY: `d` is finalized, 8 bytes, and holds its own address.
    let stored = unsafe { ptr.cast::<usize>().read_unaligned() };
    assert_eq!(stored, ptr.addr());
    assert_eq!(module.cache_stats().data_objects, 1);
}

#[test]
fn undeclared_ids_and_bad_relocations_are_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut module = module_in(dir.path());
    let mut ctx = module.make_context();
    let ghost = FuncId::from_u32(7);
    build(&mut module, &mut ctx, ghost, 1, None);
    assert!(matches!(
        module.define_function(ghost, &mut ctx),
        Err(ModuleError::Undeclared(_))
    ));
    let f = module
        .declare_function("f", Linkage::Export, &sig(&module))
        .expect("f");
    let reloc = |offset| ModuleReloc {
        offset,
        kind: cranelift_codegen::binemit::Reloc::Abs8,
        name: ModuleRelocTarget::user(0, f.as_u32()),
        addend: 0,
    };
    let ret = [0xc3u8; 16];
    assert!(
        module
            .define_function_bytes(f, 16, &ret, &[reloc(12)])
            .is_err()
    );
    let undeclared = ModuleReloc {
        name: ModuleRelocTarget::user(0, 99),
        ..reloc(0)
    };
    assert!(
        module
            .define_function_bytes(f, 16, &ret, &[undeclared])
            .is_err()
    );
    module
        .define_function_bytes(f, 16, &ret, &[reloc(8)])
        .expect("in bounds");
    module.finalize_definitions().expect("finalize");
    let code = module.get_finalized_function(f);
    // SAFETY: the 16 bytes of `f` are mapped readable; bytes 8..16 hold its own address.
    let patched = unsafe { code.add(8).cast::<usize>().read_unaligned() };
    assert_eq!(patched, code.addr());
    assert_eq!(module.cache_stats().function_bytes, 1);
}

/// The error of each step, as text, for both crates.
fn errors_of<M: Module>(module: &mut M) -> Vec<String> {
    let s = sig(module);
    let mut out = Vec::new();
    let f = module
        .declare_function("f", Linkage::Export, &s)
        .expect("f");
    let import = module
        .declare_function("imp", Linkage::Import, &s)
        .expect("imp");
    let mut ctx = module.make_context();
    build(module, &mut ctx, f, 1, None);
    module.define_function(f, &mut ctx).expect("define");
    build(module, &mut ctx, f, 2, None);
    out.push(format!("{:?}", module.define_function(f, &mut ctx).err()));
    build(module, &mut ctx, import, 2, None);
    out.push(format!(
        "{:?}",
        module.define_function(import, &mut ctx).err()
    ));
    let mut other = s.clone();
    other.params.push(AbiParam::new(types::I32));
    out.push(format!(
        "{:?}",
        module.declare_function("f", Linkage::Export, &other).err()
    ));
    out.push(format!(
        "{:?}",
        module
            .declare_data("f", Linkage::Export, false, false)
            .err()
    ));
    // A function the verifier refuses: it returns nothing though it must return an i64.
    let g = module
        .declare_function("g", Linkage::Export, &s)
        .expect("g");
    module.clear_context(&mut ctx);
    ctx.func.signature = s.clone();
    let mut fctx = FunctionBuilderContext::new();
    let mut b = FunctionBuilder::new(&mut ctx.func, &mut fctx);
    let entry = b.create_block();
    b.append_block_params_for_function_params(entry);
    b.switch_to_block(entry);
    b.ins().return_(&[]);
    b.seal_all_blocks();
    b.finalize(module.target_config());
    let err = module.define_function(g, &mut ctx).expect_err("verifier");
    out.push(match err {
        ModuleError::Compilation(e) => format!("compilation: {e}"),
        other => format!("other: {other}"),
    });
    out
}

#[test]
fn errors_are_cranelift_jits() {
    let builder = cranelift_jit::JITBuilder::new(default_libcall_names()).expect("builder");
    let expected = errors_of(&mut cranelift_jit::JITModule::new(builder));
    let dir = tempfile::tempdir().expect("tempdir");
    let mut module = module_in(dir.path());
    assert_eq!(errors_of(&mut module), expected);
    // Only the one definition that worked counts: refused ones are neither compiles
    // nor cached.
    let stats = module.cache_stats();
    assert_eq!(
        (stats.misses, stats.compiles, stats.uncached),
        (1, 1, 0),
        "{stats}"
    );
    assert!(expected[0].contains("DuplicateDefinition"), "{expected:?}");
    assert!(
        expected[1].contains("InvalidImportDefinition"),
        "{expected:?}"
    );
    assert!(expected[4].starts_with("compilation: "), "{expected:?}");
}

#[test]
fn a_memory_provider_is_used() {
    let dir = tempfile::tempdir().expect("tempdir");
    for _ in 0..2 {
        let mut builder = JITBuilder::new(default_libcall_names()).expect("builder");
        let arena = jitcache_cranelift::ArenaMemoryProvider::new_with_size(1 << 20).expect("arena");
        builder
            .cache_dir(dir.path())
            .memory_provider(Box::new(arena));
        let mut module = JITModule::new(builder);
        let f = module
            .declare_function("f", Linkage::Export, &sig(&module))
            .expect("f");
        let mut ctx = module.make_context();
        build(&mut module, &mut ctx, f, 40, None);
        module.define_function(f, &mut ctx).expect("define");
        module.finalize_definitions().expect("finalize");
        assert_eq!(call(module.get_finalized_function(f), 2), 42);
    }
}

#[test]
fn the_key_value_store_persists_across_instances() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = PersistentKvStore::open(dir.path());
    assert_eq!(store.get(b"key"), None);
    store.insert(b"key", b"value".to_vec());
    assert_eq!(
        store.get(b"key").as_deref(),
        Some(&b"value"[..]),
        "queued inserts are seen"
    );
    assert_eq!(store.stats().stored, 0);
    store.flush();
    let stats = store.stats();
    assert_eq!(
        (stats.hits, stats.misses, stats.inserts, stats.stored),
        (1, 1, 1, 1)
    );
    store.insert(b"other", b"written at drop".to_vec());
    drop(store);
    let store = PersistentKvStore::open(dir.path());
    assert_eq!(store.get(b"key").as_deref(), Some(&b"value"[..]));
    assert_eq!(
        store.get(b"other").as_deref(),
        Some(&b"written at drop"[..])
    );
    assert_eq!(store.get(b"keyx"), None);
    assert_eq!(store.dir(), Some(dir.path()));
}

#[test]
fn compile_with_cache_hits_through_the_key_value_store_in_a_new_instance() {
    let dir = tempfile::tempdir().expect("tempdir");
    let builder = JITBuilder::new(default_libcall_names()).expect("builder");
    let mut module = JITModule::new(builder);
    let f = module
        .declare_function("f", Linkage::Export, &sig(&module))
        .expect("f");
    let mut ctx = module.make_context();
    build(&mut module, &mut ctx, f, 9, None);
    let func = ctx.func.clone();
    let mut bytes = Vec::new();
    for expect_hit in [false, true] {
        let mut store = PersistentKvStore::open(dir.path());
        let mut ctx = Context::for_function(func.clone());
        let (code, hit) = ctx
            .compile_with_cache(module.isa(), &mut store, &mut ControlPlane::default())
            .map_err(|e| e.inner)
            .expect("compile");
        assert_eq!(hit, expect_hit);
        bytes.push(code.code_buffer().to_vec());
    }
    assert_eq!(bytes[0], bytes[1]);
}
