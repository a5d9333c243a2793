// Host symbols the way cranelift-jit users give them: functions and a data table by
// `JITBuilder::symbol` and `symbols`, lookup functions (the last added is asked first,
// and the symbol table before any), libc through dlsym, libcalls renamed by the
// `libcall_names` function, and a preemptible declaration that nothing defines.
//
// This file is included into two modules, which differ only in the line that brings
// `JITBuilder` and `JITModule` into scope (`cranelift_jit` or `jitcache_cranelift`).

use std::sync::atomic::{AtomicUsize, Ordering};

use cranelift_codegen::ir::{
    AbiParam, InstBuilder, LibCall, MemFlagsData, Signature, UserFuncName, types,
};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_module::{FuncId, Linkage, Module};

static HOST_TABLE: [i64; 4] = [10, 20, 30, 40];
static MEMCPY_CALLS: AtomicUsize = AtomicUsize::new(0);

extern "C" fn host_add(a: i64, b: i64) -> i64 {
    a + b
}
extern "C" fn host_mul(a: i64, b: i64) -> i64 {
    a * b
}
extern "C" fn pick_first(a: i64, _: i64) -> i64 {
    a
}
extern "C" fn pick_second(_: i64, b: i64) -> i64 {
    b
}
extern "C" fn from_symbol(_: i64, _: i64) -> i64 {
    1
}
extern "C" fn from_lookup(_: i64, _: i64) -> i64 {
    2
}
extern "C" fn host_memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    MEMCPY_CALLS.fetch_add(1, Ordering::Relaxed);
    // SAFETY: the generated code passes two distinct buffers of at least `n` bytes.
    unsafe { std::ptr::copy_nonoverlapping(src, dst, n) };
    dst
}

fn binary_sig(module: &JITModule) -> Signature {
    let mut sig = module.make_signature();
    sig.params.push(AbiParam::new(types::I64));
    sig.params.push(AbiParam::new(types::I64));
    sig.returns.push(AbiParam::new(types::I64));
    sig
}

fn call2(code: *const u8, a: i64, b: i64) -> i64 {
    // SAFETY: `code` is a finalized function with `binary_sig`.
    let f = unsafe { std::mem::transmute::<*const u8, extern "C" fn(i64, i64) -> i64>(code) };
    f(a, b)
}

/// Defines `name(a, b) = callee(a, b)` (with an import of `callee`).
fn define_forwarder(
    module: &mut JITModule,
    fctx: &mut FunctionBuilderContext,
    name: &str,
    callee: &str,
) -> FuncId {
    let sig = binary_sig(module);
    let id = module
        .declare_function(name, Linkage::Export, &sig)
        .expect("declare");
    let target = module
        .declare_function(callee, Linkage::Import, &sig)
        .expect("import");
    let mut ctx = module.make_context();
    ctx.func.signature = sig;
    ctx.func.name = UserFuncName::user(0, id.as_u32());
    let fref = module.declare_func_in_func(target, &mut ctx.func);
    let mut b = FunctionBuilder::new(&mut ctx.func, fctx);
    let entry = b.create_block();
    b.append_block_params_for_function_params(entry);
    b.switch_to_block(entry);
    let args = b.block_params(entry).to_vec();
    let call = b.ins().call(fref, &args);
    let r = b.inst_results(call)[0];
    b.ins().return_(&[r]);
    b.seal_all_blocks();
    b.finalize(module.target_config());
    module.define_function(id, &mut ctx).expect("define");
    id
}

/// Runs the program; returns what it computed, one line each.
pub fn run() -> Vec<String> {
    let mut builder = JITBuilder::new(Box::new(|libcall| match libcall {
        LibCall::Memcpy => "host_memcpy".to_owned(),
        other => cranelift_module::default_libcall_names()(other),
    }))
    .expect("builder");
    builder
        .symbol("host_add", host_add as *const u8)
        .symbols([
            ("host_mul", host_mul as *const u8),
            ("host_table", HOST_TABLE.as_ptr().cast::<u8>()),
            ("host_memcpy", host_memcpy as *const u8),
            ("shadowed", from_symbol as *const u8),
        ])
        .symbol_lookup_fn(Box::new(|name| match name {
            "pick" => Some(pick_first as *const u8),
            "shadowed" => Some(from_lookup as *const u8),
            _ => None,
        }))
        .symbol_lookup_fn(Box::new(|name| {
            (name == "pick").then_some(pick_second as *const u8)
        }));
    let mut module = JITModule::new(builder);
    let mut fctx = FunctionBuilderContext::new();
    let mut out = Vec::new();

    let add = define_forwarder(&mut module, &mut fctx, "call_add", "host_add");
    let mul = define_forwarder(&mut module, &mut fctx, "call_mul", "host_mul");
    let pick = define_forwarder(&mut module, &mut fctx, "call_pick", "pick");
    let shadowed = define_forwarder(&mut module, &mut fctx, "call_shadowed", "shadowed");

    // table_sum(a, b): host_table[a] + host_table[b], a data import from the host.
    let sig = binary_sig(&module);
    let table_sum = module
        .declare_function("table_sum", Linkage::Export, &sig)
        .expect("declare");
    let table = module
        .declare_data("host_table", Linkage::Import, false, false)
        .expect("declare data");
    // copy_sum(a, b): copies 32 bytes of the host table onto the stack with the
    // `memcpy` libcall (renamed to `host_memcpy`), then sums two slots, plus labs(-a).
    let copy_sum = module
        .declare_function("copy_sum", Linkage::Export, &sig)
        .expect("declare");
    let mut labs_sig = module.make_signature();
    labs_sig.params.push(AbiParam::new(types::I64));
    labs_sig.returns.push(AbiParam::new(types::I64));
    let labs = module
        .declare_function("labs", Linkage::Import, &labs_sig)
        .expect("labs");
    // maybe(a, b): the address of a preemptible function nothing defines (null).
    let maybe = module
        .declare_function("maybe", Linkage::Export, &sig)
        .expect("declare");
    let missing = module
        .declare_function("not_defined_anywhere", Linkage::Preemptible, &sig)
        .expect("declare preemptible");

    for (id, kind) in [(table_sum, 0), (copy_sum, 1), (maybe, 2)] {
        let mut ctx = module.make_context();
        ctx.func.signature = sig.clone();
        ctx.func.name = UserFuncName::user(0, id.as_u32());
        let gv = module.declare_data_in_func(table, &mut ctx.func);
        let labs_ref = module.declare_func_in_func(labs, &mut ctx.func);
        let missing_ref = module.declare_func_in_func(missing, &mut ctx.func);
        let config = module.target_config();
        let mut b = FunctionBuilder::new(&mut ctx.func, &mut fctx);
        let entry = b.create_block();
        b.append_block_params_for_function_params(entry);
        b.switch_to_block(entry);
        let (x, y) = (b.block_params(entry)[0], b.block_params(entry)[1]);
        let base = b.ins().symbol_value(types::I64, gv);
        let slot = |b: &mut FunctionBuilder<'_>, base, i| {
            let off = b.ins().imul_imm_s(i, 8);
            let at = b.ins().iadd(base, off);
            b.ins().load(types::I64, MemFlagsData::trusted(), at, 0)
        };
        let result = match kind {
            0 => {
                let (p, q) = (slot(&mut b, base, x), slot(&mut b, base, y));
                b.ins().iadd(p, q)
            }
            1 => {
                let ss = b.create_sized_stack_slot(cranelift_codegen::ir::StackSlotData::new(
                    cranelift_codegen::ir::StackSlotKind::ExplicitSlot,
                    32,
                    3,
                ));
                let dst = b.ins().stack_addr(types::I64, ss, 0);
                let size = b.ins().iconst(types::I64, 32);
                b.call_memcpy(config, dst, base, size);
                let (p, q) = (slot(&mut b, dst, x), slot(&mut b, dst, y));
                let s = b.ins().iadd(p, q);
                let neg = b.ins().ineg(x);
                let call = b.ins().call(labs_ref, &[neg]);
                let m = b.inst_results(call)[0];
                b.ins().iadd(s, m)
            }
            _ => b.ins().func_addr(types::I64, missing_ref),
        };
        b.ins().return_(&[result]);
        b.seal_all_blocks();
        b.finalize(config);
        module.define_function(id, &mut ctx).expect("define");
    }

    module.finalize_definitions().expect("finalize");
    let code = |id| module.get_finalized_function(id);
    out.push(format!("call_add(40, 2) = {}", call2(code(add), 40, 2)));
    out.push(format!("call_mul(6, 7) = {}", call2(code(mul), 6, 7)));
    out.push(format!(
        "call_pick(1, 2) = {} (the last lookup fn first)",
        call2(code(pick), 1, 2)
    ));
    out.push(format!(
        "call_shadowed(0, 0) = {} (the symbol table before lookup fns)",
        call2(code(shadowed), 0, 0)
    ));
    out.push(format!(
        "table_sum(1, 3) = {}",
        call2(code(table_sum), 1, 3)
    ));
    out.push(format!("copy_sum(0, 2) = {}", call2(code(copy_sum), 0, 2)));
    out.push(format!(
        "memcpy calls = {}",
        MEMCPY_CALLS.load(Ordering::Relaxed)
    ));
    out.push(format!("maybe() = {}", call2(code(maybe), 0, 0)));
    out
}
