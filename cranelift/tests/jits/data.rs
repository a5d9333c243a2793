// Data objects the way cranelift-jit users define them: a read-only string, a writable
// zero-initialized counter, a table of function pointers (`write_function_addr`) called
// indirectly, a data object holding the address of another (`write_data_addr`), an
// anonymous data object, a data object given an alignment; two rounds of
// definitions and finalizations, the second calling into the first.
//
// This file is included into two modules, which differ only in the line that brings
// `JITBuilder` and `JITModule` into scope (`cranelift_jit` or `jitcache_cranelift`).

use cranelift_codegen::Context;
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{AbiParam, InstBuilder, MemFlagsData, Signature, UserFuncName, types};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_module::{DataDescription, DataId, FuncId, Linkage, Module, default_libcall_names};

fn new_module() -> JITModule {
    let builder = JITBuilder::new(default_libcall_names()).expect("builder");
    JITModule::new(builder)
}

/// `(i64) -> i64` in the module's calling convention.
fn unary_sig(module: &JITModule) -> Signature {
    let mut sig = module.make_signature();
    sig.params.push(AbiParam::new(types::I64));
    sig.returns.push(AbiParam::new(types::I64));
    sig
}

/// Defines `id` with a body built by `body` from the function's single parameter.
fn define(
    module: &mut JITModule,
    ctx: &mut Context,
    fctx: &mut FunctionBuilderContext,
    id: FuncId,
    body: impl FnOnce(
        &mut JITModule,
        &mut FunctionBuilder<'_>,
        cranelift_codegen::ir::Value,
    ) -> cranelift_codegen::ir::Value,
) {
    ctx.func.signature = unary_sig(module);
    ctx.func.name = UserFuncName::user(0, id.as_u32());
    let mut b = FunctionBuilder::new(&mut ctx.func, fctx);
    let entry = b.create_block();
    b.append_block_params_for_function_params(entry);
    b.switch_to_block(entry);
    let x = b.block_params(entry)[0];
    let result = body(module, &mut b, x);
    b.ins().return_(&[result]);
    b.seal_all_blocks();
    b.finalize(module.target_config());
    module.define_function(id, ctx).expect("define");
    module.clear_context(ctx);
}

fn load(
    b: &mut FunctionBuilder<'_>,
    addr: cranelift_codegen::ir::Value,
    offset: i32,
) -> cranelift_codegen::ir::Value {
    b.ins()
        .load(types::I64, MemFlagsData::trusted(), addr, offset)
}

fn call1(code: *const u8, x: i64) -> i64 {
    // SAFETY: `code` is a finalized function defined with `unary_sig`: one i64 parameter
    // and an i64 result in the host's calling convention.
    let f = unsafe { std::mem::transmute::<*const u8, extern "C" fn(i64) -> i64>(code) };
    f(x)
}

fn declare_data(module: &mut JITModule, name: &str, writable: bool) -> DataId {
    module
        .declare_data(name, Linkage::Local, writable, false)
        .expect("declare data")
}

/// Runs the program; returns what it computed, one line each.
pub fn run() -> Vec<String> {
    let mut module = new_module();
    let mut ctx = module.make_context();
    let mut fctx = FunctionBuilderContext::new();
    let mut out = Vec::new();
    let sig = unary_sig(&module);

    // Round 1: data objects, the functions they point to, and functions using them.
    let message = declare_data(&mut module, "message", false);
    let mut desc = DataDescription::new();
    desc.define(b"cranelift data objects\0".to_vec().into_boxed_slice());
    module.define_data(message, &desc).expect("message");

    let counter = declare_data(&mut module, "counter", true);
    let mut desc = DataDescription::new();
    desc.define_zeroinit(8);
    desc.set_align(64);
    module.define_data(counter, &desc).expect("counter");

    let double = module
        .declare_function("double", Linkage::Local, &sig)
        .expect("double");
    let square = module
        .declare_function("square", Linkage::Local, &sig)
        .expect("square");
    let negate = module
        .declare_function("negate", Linkage::Local, &sig)
        .expect("negate");
    let table = declare_data(&mut module, "table", false);
    let mut desc = DataDescription::new();
    desc.define_zeroinit(3 * 8);
    for (i, f) in [double, square, negate].into_iter().enumerate() {
        let fref = module.declare_func_in_data(f, &mut desc);
        desc.write_function_addr((i * 8) as u32, fref);
    }
    module.define_data(table, &desc).expect("table");

    // An anonymous object holding the address of `message`, plus 10.
    let pointer = module
        .declare_anonymous_data(false, false)
        .expect("anonymous");
    let mut desc = DataDescription::new();
    desc.define_zeroinit(16);
    let gv = module.declare_data_in_data(message, &mut desc);
    desc.write_data_addr(8, gv, 10);
    module.define_data(pointer, &desc).expect("pointer");

    define(&mut module, &mut ctx, &mut fctx, double, |_, b, x| {
        b.ins().iadd(x, x)
    });
    define(&mut module, &mut ctx, &mut fctx, square, |_, b, x| {
        b.ins().imul(x, x)
    });
    define(&mut module, &mut ctx, &mut fctx, negate, |_, b, x| {
        b.ins().ineg(x)
    });

    // dispatch(x): table[x % 3](x), through call_indirect.
    let dispatch = module
        .declare_function("dispatch", Linkage::Export, &sig)
        .expect("dispatch");
    define(
        &mut module,
        &mut ctx,
        &mut fctx,
        dispatch,
        |module, b, x| {
            let gv = module.declare_data_in_func(table, b.func);
            let base = b.ins().symbol_value(types::I64, gv);
            let three = b.ins().iconst(types::I64, 3);
            let index = b.ins().urem(x, three);
            let offset = b.ins().imul_imm_s(index, 8);
            let slot = b.ins().iadd(base, offset);
            let target = load(b, slot, 0);
            let sig_ref = b.import_signature(unary_sig(module));
            let call = b.ins().call_indirect(sig_ref, target, &[x]);
            b.inst_results(call)[0]
        },
    );

    // bump(x): counter += x; returns the new value.
    let bump = module
        .declare_function("bump", Linkage::Export, &sig)
        .expect("bump");
    define(&mut module, &mut ctx, &mut fctx, bump, |module, b, x| {
        let gv = module.declare_data_in_func(counter, b.func);
        let addr = b.ins().symbol_value(types::I64, gv);
        let old = load(b, addr, 0);
        let new = b.ins().iadd(old, x);
        b.ins().store(MemFlagsData::trusted(), new, addr, 0);
        new
    });

    // char_at(i): the i-th byte of the message, read through the anonymous pointer
    // object (whose pointer is message + 10).
    let char_at = module
        .declare_function("char_at", Linkage::Export, &sig)
        .expect("char_at");
    define(&mut module, &mut ctx, &mut fctx, char_at, |module, b, x| {
        let gv = module.declare_data_in_func(pointer, b.func);
        let addr = b.ins().symbol_value(types::I64, gv);
        let p = load(b, addr, 8);
        let at = b.ins().iadd(p, x);
        b.ins().uload8(types::I64, MemFlagsData::trusted(), at, -10)
    });

    module.finalize_definitions().expect("finalize round 1");
    for x in 0..6 {
        out.push(format!(
            "dispatch({x}) = {}",
            call1(module.get_finalized_function(dispatch), x)
        ));
    }
    for x in [5, 7, -2] {
        out.push(format!(
            "bump({x}) = {}",
            call1(module.get_finalized_function(bump), x)
        ));
    }
    let text: String = (0..22)
        .map(|i| call1(module.get_finalized_function(char_at), i) as u8 as char)
        .collect();
    out.push(format!("message via pointer = {text:?}"));
    let (ptr, size) = module.get_finalized_data(message);
    // SAFETY: `message` is finalized: `size` readable bytes at `ptr`.
    let bytes = unsafe { std::slice::from_raw_parts(ptr, size) };
    out.push(format!(
        "message = {:?}, {size} bytes",
        String::from_utf8_lossy(bytes)
    ));
    let (ptr, _) = module.get_finalized_data(counter);
    out.push(format!("counter aligned to 64: {}", ptr.addr() % 64 == 0));

    // Round 2: a function that calls round 1's `dispatch` and `bump`, and counts down
    // a loop over `table` with its own new data object.
    let limits = declare_data(&mut module, "limits", false);
    let mut desc = DataDescription::new();
    desc.define(
        [3i64, 9, 27]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect::<Vec<u8>>()
            .into_boxed_slice(),
    );
    module.define_data(limits, &desc).expect("limits");
    let combine = module
        .declare_function("combine", Linkage::Export, &sig)
        .expect("combine");
    define(&mut module, &mut ctx, &mut fctx, combine, |module, b, x| {
        let d = module.declare_func_in_func(dispatch, b.func);
        let k = module.declare_func_in_func(bump, b.func);
        let gv = module.declare_data_in_func(limits, b.func);
        let base = b.ins().symbol_value(types::I64, gv);
        let limit = load(b, base, 16);
        let call = b.ins().call(d, &[x]);
        let r = b.inst_results(call)[0];
        let big = b.ins().icmp(IntCC::SignedGreaterThan, r, limit);
        let then_b = b.create_block();
        let else_b = b.create_block();
        let merge = b.create_block();
        b.append_block_param(merge, types::I64);
        b.ins().brif(big, then_b, &[], else_b, &[]);
        b.switch_to_block(then_b);
        let call = b.ins().call(k, &[r]);
        let bumped = b.inst_results(call)[0];
        b.ins().jump(merge, &[bumped.into()]);
        b.switch_to_block(else_b);
        b.ins().jump(merge, &[r.into()]);
        b.switch_to_block(merge);
        b.block_params(merge)[0]
    });
    module.finalize_definitions().expect("finalize round 2");
    for x in [2, 4, 6, 7] {
        out.push(format!(
            "combine({x}) = {}",
            call1(module.get_finalized_function(combine), x)
        ));
    }
    out
}
