//! Objects produced by cranelift-object, with `is_pic` false and true: calls between
//! functions (local and exported), calls to host functions (through the resolver and
//! through `dlsym`), data (local, exported, imported, a function pointer in data), and
//! `.eh_frame` from Cranelift's unwind info.

use cranelift_codegen::Context;
use cranelift_codegen::ir::{
    AbiParam, Function, InstBuilder, MemFlagsData, Signature, UserFuncName, types,
};
use cranelift_codegen::isa::CallConv;
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_module::{DataDescription, FuncId, Linkage, Module, default_libcall_names};
use cranelift_object::{ObjectBuilder, ObjectModule};
use jitcache_linker::{Linker, call};

use crate::common::obj;

extern "C" fn host_triple(x: i64) -> i64 {
    3 * x
}

static HOST_VALUE: i64 = 1000;

fn sig(params: usize) -> Signature {
    let mut s = Signature::new(CallConv::SystemV);
    for _ in 0..params {
        s.params.push(AbiParam::new(types::I64));
    }
    s.returns.push(AbiParam::new(types::I64));
    s
}

fn define(
    module: &mut ObjectModule,
    id: FuncId,
    params: usize,
    body: impl FnOnce(
        &mut ObjectModule,
        &mut FunctionBuilder<'_>,
        &[cranelift_codegen::ir::Value],
    ) -> cranelift_codegen::ir::Value,
) {
    let mut ctx = Context::new();
    ctx.func = Function::with_name_signature(UserFuncName::user(0, id.as_u32()), sig(params));
    let mut fctx = FunctionBuilderContext::new();
    let frontend_config = module.isa().frontend_config();
    {
        let mut b = FunctionBuilder::new(&mut ctx.func, &mut fctx);
        let block = b.create_block();
        b.append_block_params_for_function_params(block);
        b.switch_to_block(block);
        b.seal_block(block);
        let params = b.block_params(block).to_vec();
        let ret = body(module, &mut b, &params);
        b.ins().return_(&[ret]);
        b.finalize(frontend_config);
    }
    module
        .define_function(id, &mut ctx)
        .expect("define function");
}

/// Builds the test module and returns the object bytes.
pub(crate) fn build(is_pic: bool) -> Vec<u8> {
    let mut flags = settings::builder();
    flags
        .set("is_pic", if is_pic { "true" } else { "false" })
        .expect("is_pic");
    flags.set("opt_level", "speed").expect("opt_level");
    let isa = cranelift_native::builder()
        .expect("host isa")
        .finish(settings::Flags::new(flags))
        .expect("isa");
    let mut builder = ObjectBuilder::new(isa, "cl", default_libcall_names()).expect("builder");
    builder.unwind_info(true);
    let mut m = ObjectModule::new(builder);

    let add = m
        .declare_function("add", Linkage::Export, &sig(2))
        .expect("declare");
    let add_local = m
        .declare_function("add_local", Linkage::Local, &sig(2))
        .expect("declare");
    let twice_plus_one = m
        .declare_function("twice_plus_one", Linkage::Export, &sig(1))
        .expect("declare");
    let call_host = m
        .declare_function("call_host", Linkage::Export, &sig(1))
        .expect("declare");
    let call_libc = m
        .declare_function("call_libc", Linkage::Export, &sig(1))
        .expect("declare");
    let bump = m
        .declare_function("bump", Linkage::Export, &sig(0))
        .expect("declare");
    let via_table = m
        .declare_function("via_table", Linkage::Export, &sig(2))
        .expect("declare");
    let read_host_value = m
        .declare_function("read_host_value", Linkage::Export, &sig(0))
        .expect("declare");
    let host_triple = m
        .declare_function("host_triple", Linkage::Import, &sig(1))
        .expect("declare");
    let labs = m
        .declare_function("labs", Linkage::Import, &sig(1))
        .expect("declare");

    let counter = m
        .declare_data("counter", Linkage::Export, true, false)
        .expect("data");
    let local_step = m
        .declare_data("local_step", Linkage::Local, false, false)
        .expect("data");
    let table = m
        .declare_data("table", Linkage::Export, false, false)
        .expect("data");
    let host_value = m
        .declare_data("host_value", Linkage::Import, false, false)
        .expect("data");

    let mut d = DataDescription::new();
    d.define(40_i64.to_le_bytes().to_vec().into_boxed_slice());
    m.define_data(counter, &d).expect("counter");
    let mut d = DataDescription::new();
    d.define(2_i64.to_le_bytes().to_vec().into_boxed_slice());
    m.define_data(local_step, &d).expect("local_step");
    let mut d = DataDescription::new();
    d.define(vec![0; 8].into_boxed_slice());
    let add_in_data = m.declare_func_in_data(add_local, &mut d);
    d.write_function_addr(0, add_in_data);
    m.define_data(table, &d).expect("table");

    for id in [add, add_local] {
        define(&mut m, id, 2, |_, b, p| b.ins().iadd(p[0], p[1]));
    }
    define(&mut m, twice_plus_one, 1, |m, b, p| {
        let f = m.declare_func_in_func(add, b.func);
        let g = m.declare_func_in_func(add_local, b.func);
        let call = b.ins().call(f, &[p[0], p[0]]);
        let twice = b.inst_results(call)[0];
        let one = b.ins().iconst(types::I64, 1);
        let call = b.ins().call(g, &[twice, one]);
        b.inst_results(call)[0]
    });
    define(&mut m, call_host, 1, |m, b, p| {
        let f = m.declare_func_in_func(host_triple, b.func);
        let call = b.ins().call(f, &[p[0]]);
        b.inst_results(call)[0]
    });
    define(&mut m, call_libc, 1, |m, b, p| {
        let f = m.declare_func_in_func(labs, b.func);
        let call = b.ins().call(f, &[p[0]]);
        b.inst_results(call)[0]
    });
    define(&mut m, bump, 0, |m, b, _| {
        let c = m.declare_data_in_func(counter, b.func);
        let s = m.declare_data_in_func(local_step, b.func);
        let ca = b.ins().symbol_value(types::I64, c);
        let sa = b.ins().symbol_value(types::I64, s);
        let v = b.ins().load(types::I64, MemFlagsData::trusted(), ca, 0);
        let step = b.ins().load(types::I64, MemFlagsData::trusted(), sa, 0);
        let v = b.ins().iadd(v, step);
        b.ins().store(MemFlagsData::trusted(), v, ca, 0);
        v
    });
    define(&mut m, via_table, 2, |m, b, p| {
        let t = m.declare_data_in_func(table, b.func);
        let ta = b.ins().symbol_value(types::I64, t);
        let fp = b.ins().load(types::I64, MemFlagsData::trusted(), ta, 0);
        let sigref = b.import_signature(sig(2));
        let call = b.ins().call_indirect(sigref, fp, &[p[0], p[1]]);
        b.inst_results(call)[0]
    });
    define(&mut m, read_host_value, 0, |m, b, _| {
        let h = m.declare_data_in_func(host_value, b.func);
        let ha = b.ins().symbol_value(types::I64, h);
        b.ins().load(types::I64, MemFlagsData::trusted(), ha, 0)
    });
    m.finish().emit().expect("emit")
}

fn load_and_check(is_pic: bool) {
    let bytes = build(is_pic);
    let mut linker = Linker::new();
    linker.set_resolver(Box::new(|name| match name {
        "host_triple" => Some(host_triple as extern "C" fn(i64) -> i64 as usize),
        "host_value" => Some(&raw const HOST_VALUE as usize),
        _ => None,
    }));
    let unit = linker.load(&[obj("cranelift.o", &bytes)]).expect("load");
    let f = |name: &str| {
        linker
            .symbol(unit, name)
            .unwrap_or_else(|| panic!("{name} defined"))
    };
    assert_eq!(
        // SAFETY: a function of that C signature in a unit still loaded.
        unsafe { call::call_i64(f("add"), &[40, 2]) }.expect("call"),
        42
    );
    assert_eq!(
        // SAFETY: a function of that C signature in a unit still loaded.
        unsafe { call::call_i64(f("twice_plus_one"), &[20]) }.expect("call"),
        41
    );
    assert_eq!(
        // SAFETY: a function of that C signature in a unit still loaded.
        unsafe { call::call_i64(f("call_host"), &[14]) }.expect("call"),
        42
    );
    assert_eq!(
        // SAFETY: a function of that C signature in a unit still loaded.
        unsafe { call::call_i64(f("call_libc"), &[-42]) }.expect("call"),
        42
    );
    // SAFETY: a function of that C signature in a unit still loaded.
    assert_eq!(unsafe { call::call_i64(f("bump"), &[]) }.expect("call"), 42);
    // SAFETY: a function of that C signature in a unit still loaded.
    assert_eq!(unsafe { call::call_i64(f("bump"), &[]) }.expect("call"), 44);
    assert_eq!(
        // SAFETY: a function of that C signature in a unit still loaded.
        unsafe { call::call_i64(f("via_table"), &[30, 12]) }.expect("call"),
        42
    );
    assert_eq!(
        // SAFETY: a function of that C signature in a unit still loaded.
        unsafe { call::call_i64(f("read_host_value"), &[]) }.expect("call"),
        1000
    );
    // Local symbols are not visible; exported ones are, to later units too.
    assert!(linker.symbol(unit, "add_local").is_none());
    assert_eq!(linker.lookup("counter"), linker.symbol(unit, "counter"));
    linker.unload(unit).expect("unload");
    assert!(linker.lookup("add").is_none());
}

#[test]
fn cranelift_without_pic() {
    load_and_check(false);
}

#[test]
fn cranelift_with_pic() {
    load_and_check(true);
}
