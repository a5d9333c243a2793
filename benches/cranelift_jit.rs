//! A `cranelift_jit` program against the same program on `jitcache_cranelift` (the
//! drop-in): 1,000 generated functions of mixed size at `opt_level=speed`, each
//! iteration building a new module, defining and finalizing all of them, and calling one
//! (time to the first call).
//!
//! - `cranelift_jit`: `cranelift_jit::JITModule`, which compiles every function;
//! - `jitcache warm`: the drop-in on a cache that holds every function (as a second
//!   process finds it): no function is compiled;
//! - `jitcache cold`: the drop-in on an empty cache directory, new for each iteration:
//!   every function is compiled and stored.
//!
//! Targets: warm at least 5x faster than `cranelift_jit`, cold at most 15% slower.
//! `cargo bench -p jitcache-bench --bench cranelift_jit`; the ratios are printed after
//! the groups.

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{AbiParam, InstBuilder, MemFlagsData, UserFuncName, types};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_module::{DataDescription, FuncId, Linkage, Module, default_libcall_names};
use criterion::{BatchSize, Criterion, criterion_group};

/// What the program needs of a JIT besides the `Module` trait: both modules have these
/// as inherent methods with the same names.
trait Jit: Module {
    fn finalize(&mut self);
    fn code(&self, id: FuncId) -> *const u8;
}

impl Jit for cranelift_jit::JITModule {
    fn finalize(&mut self) {
        self.finalize_definitions().expect("finalize");
    }
    fn code(&self, id: FuncId) -> *const u8 {
        self.get_finalized_function(id)
    }
}

impl Jit for jitcache_cranelift::JITModule {
    fn finalize(&mut self) {
        self.finalize_definitions().expect("finalize");
    }
    fn code(&self, id: FuncId) -> *const u8 {
        self.get_finalized_function(id)
    }
}

/// The host function some generated functions call (through `JITBuilder::symbol`).
extern "C" fn bench_host_mix(a: i64, b: i64) -> i64 {
    a.wrapping_mul(31) ^ b
}

/// Statements per function, cycled: small helpers to large bodies.
const SIZES: [usize; 8] = [2, 4, 6, 10, 16, 24, 40, 64];

/// Defines `n` functions `f0 .. f{n-1}` (and a data table), each `(i64, i64) -> i64`,
/// defined one `define_function` at a time: arithmetic, branches, loops, loads from the
/// table, a call to `f{i/2}` and every tenth a call to the host. Returns their ids.
fn define_program<M: Module>(module: &mut M, n: usize) -> Vec<FuncId> {
    let mut sig = module.make_signature();
    sig.params.push(AbiParam::new(types::I64));
    sig.params.push(AbiParam::new(types::I64));
    sig.returns.push(AbiParam::new(types::I64));
    let ids: Vec<FuncId> = (0..n)
        .map(|i| {
            module
                .declare_function(&format!("f{i}"), Linkage::Local, &sig)
                .expect("declare")
        })
        .collect();
    let host = module
        .declare_function("bench_host_mix", Linkage::Import, &sig)
        .expect("declare host");
    let table = module
        .declare_data("bench_table", Linkage::Local, false, false)
        .expect("declare data");
    let mut data = DataDescription::new();
    let bytes: Vec<u8> = (0..16i64)
        .flat_map(|v| (v * 7 - 40).to_le_bytes())
        .collect();
    data.define(bytes.into_boxed_slice());
    module.define_data(table, &data).expect("define data");

    let mut ctx = module.make_context();
    let mut fctx = FunctionBuilderContext::new();
    for (i, &id) in ids.iter().enumerate() {
        ctx.func.signature = sig.clone();
        ctx.func.name = UserFuncName::user(0, id.as_u32());
        let callee = (i > 0).then(|| module.declare_func_in_func(ids[i / 2], &mut ctx.func));
        let host_ref = (i % 10 == 0).then(|| module.declare_func_in_func(host, &mut ctx.func));
        let table_gv = module.declare_data_in_func(table, &mut ctx.func);
        let mut b = FunctionBuilder::new(&mut ctx.func, &mut fctx);
        let entry = b.create_block();
        b.append_block_params_for_function_params(entry);
        b.switch_to_block(entry);
        let (a, x) = (b.block_params(entry)[0], b.block_params(entry)[1]);
        let acc = b.declare_var(types::I64);
        b.def_var(acc, a);
        for k in 0..SIZES[i % SIZES.len()] {
            let k64 = k as i64;
            match (i + k) % 5 {
                0 => {
                    let v = b.use_var(acc);
                    let m = b.ins().imul_imm_s(x, k64 + 1);
                    let s = b.ins().iadd(v, m);
                    b.def_var(acc, s);
                }
                1 => {
                    let v = b.use_var(acc);
                    let sh = b.ins().sshr_imm_s(v, (k64 % 13) + 1);
                    let s = b.ins().bxor(v, sh);
                    b.def_var(acc, s);
                }
                2 => {
                    let (then_b, else_b, merge) =
                        (b.create_block(), b.create_block(), b.create_block());
                    let v = b.use_var(acc);
                    let c = b.ins().icmp_imm_s(IntCC::SignedLessThan, v, k64 * 3);
                    b.ins().brif(c, then_b, &[], else_b, &[]);
                    b.switch_to_block(then_b);
                    let v = b.use_var(acc);
                    let t = b.ins().imul_imm_s(v, 3);
                    let t = b.ins().iadd_imm_s(t, 1);
                    b.def_var(acc, t);
                    b.ins().jump(merge, &[]);
                    b.switch_to_block(else_b);
                    let v = b.use_var(acc);
                    let e = b.ins().isub(v, x);
                    b.def_var(acc, e);
                    b.ins().jump(merge, &[]);
                    b.switch_to_block(merge);
                }
                3 => {
                    let counter = b.declare_var(types::I64);
                    let zero = b.ins().iconst(types::I64, 0);
                    b.def_var(counter, zero);
                    let (head, body, exit) = (b.create_block(), b.create_block(), b.create_block());
                    b.ins().jump(head, &[]);
                    b.switch_to_block(head);
                    let c = b.use_var(counter);
                    let more = b.ins().icmp_imm_s(IntCC::SignedLessThan, c, (k64 % 4) + 2);
                    b.ins().brif(more, body, &[], exit, &[]);
                    b.switch_to_block(body);
                    let v = b.use_var(acc);
                    let c = b.use_var(counter);
                    let m = b.ins().imul(c, x);
                    let s = b.ins().iadd(v, m);
                    b.def_var(acc, s);
                    let c1 = b.ins().iadd_imm_s(c, 1);
                    b.def_var(counter, c1);
                    b.ins().jump(head, &[]);
                    b.switch_to_block(exit);
                }
                _ => {
                    let base = b.ins().symbol_value(types::I64, table_gv);
                    let flags = MemFlagsData::trusted();
                    let v = b.ins().load(types::I64, flags, base, ((k % 16) * 8) as i32);
                    let cur = b.use_var(acc);
                    let s = b.ins().iadd(cur, v);
                    b.def_var(acc, s);
                }
            }
        }
        if let Some(callee) = callee {
            let v = b.use_var(acc);
            let arg = b.ins().band_imm_s(v, 0xff);
            let call = b.ins().call(callee, &[arg, x]);
            let r = b.inst_results(call)[0];
            let s = b.ins().iadd(v, r);
            b.def_var(acc, s);
        }
        if let Some(host_ref) = host_ref {
            let v = b.use_var(acc);
            let call = b.ins().call(host_ref, &[v, x]);
            let r = b.inst_results(call)[0];
            b.def_var(acc, r);
        }
        let v = b.use_var(acc);
        b.ins().return_(&[v]);
        b.seal_all_blocks();
        b.finalize(module.target_config());
        module.define_function(id, &mut ctx).expect("define");
        module.clear_context(&mut ctx);
    }
    ids
}

/// Builds the program in `module`, finalizes it and calls its last function. Returns
/// the result and the module: dropping it (unmapping, for the drop-in also closing the
/// store) is not part of the time to the first call.
fn first_call<M: Jit>(mut module: M, n: usize) -> (i64, M) {
    let ids = define_program(&mut module, n);
    module.finalize();
    let code = module.code(ids[n - 1]);
    // SAFETY: `code` is the finalized `f{n-1}`, defined above as
    // `extern "C" fn(i64, i64) -> i64` in the host's calling convention.
    let f = unsafe { std::mem::transmute::<*const u8, extern "C" fn(i64, i64) -> i64>(code) };
    (f(3, 5), module)
}

const FLAGS: &[(&str, &str)] = &[("opt_level", "speed")];

fn cranelift_jit_module() -> cranelift_jit::JITModule {
    let mut builder =
        cranelift_jit::JITBuilder::with_flags(FLAGS, default_libcall_names()).expect("builder");
    builder.symbol("bench_host_mix", bench_host_mix as *const u8);
    cranelift_jit::JITModule::new(builder)
}

fn drop_in_module(dir: &std::path::Path) -> jitcache_cranelift::JITModule {
    drop_in_with_stats(dir).0
}

fn drop_in_with_stats(
    dir: &std::path::Path,
) -> (
    jitcache_cranelift::JITModule,
    jitcache_cranelift::StatsHandle,
) {
    let mut builder = jitcache_cranelift::JITBuilder::with_flags(FLAGS, default_libcall_names())
        .expect("builder");
    builder.symbol("bench_host_mix", bench_host_mix as *const u8);
    builder.cache_dir(dir);
    let stats = builder.cache_stats();
    (jitcache_cranelift::JITModule::new(builder), stats)
}

/// The number of functions: 1,000 under `cargo bench`, fewer as a test.
fn functions() -> usize {
    if common::bench_mode() { 1000 } else { 100 }
}

fn time_to_first_call(c: &mut Criterion) {
    let n = functions();
    let warm = tempfile::tempdir().expect("tempdir");
    let expected = first_call(cranelift_jit_module(), n).0;
    // Fill the warm cache, and check that the drop-in computes what cranelift_jit does,
    // cold and warm.
    for (run, expect) in [("cold", (n as u64, 0)), ("warm", (0, n as u64))] {
        let (module, stats) = drop_in_with_stats(warm.path());
        assert_eq!(first_call(module, n).0, expected, "{run}");
        let stats = stats.get();
        assert_eq!((stats.compiles, stats.hits), expect, "{run}: {stats}");
    }

    let mut group = c.benchmark_group(format!("cranelift_jit/{n} functions"));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.bench_function("cranelift_jit", |bench| {
        bench.iter_with_large_drop(|| first_call(cranelift_jit_module(), n))
    });
    group.bench_function("jitcache warm", |bench| {
        bench.iter_with_large_drop(|| first_call(drop_in_module(warm.path()), n))
    });
    group.bench_function("jitcache cold", |bench| {
        bench.iter_batched(
            || tempfile::tempdir().expect("tempdir"),
            |dir| (first_call(drop_in_module(dir.path()), n), dir),
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

/// Times one run until its first call returns; the module is dropped afterwards.
fn timed<M: Jit>(make: impl FnOnce() -> M, n: usize) -> f64 {
    let start = Instant::now();
    let (result, module) = first_call(make(), n);
    let elapsed = start.elapsed().as_secs_f64();
    black_box(result);
    drop(module);
    elapsed
}

/// The ratios of the targets on one screen: more runs of each, interleaved (so that a
/// busy machine slows all three alike), and their medians.
fn ratios() {
    let n = functions();
    let rounds = if common::bench_mode() { 15 } else { 1 };
    let warm = tempfile::tempdir().expect("tempdir");
    drop(first_call(drop_in_module(warm.path()), n));
    let mut times: [Vec<f64>; 3] = Default::default();
    for _ in 0..rounds {
        times[0].push(timed(cranelift_jit_module, n));
        times[1].push(timed(|| drop_in_module(warm.path()), n));
        let cold = tempfile::tempdir().expect("tempdir");
        times[2].push(timed(|| drop_in_module(cold.path()), n));
    }
    let [base, warm_t, cold_t] = times.map(|mut t| {
        t.sort_by(f64::total_cmp);
        t[t.len() / 2]
    });
    println!(
        "cranelift_jit/{n} functions, medians of {rounds}: cranelift_jit {:.1} ms, \
         jitcache warm {:.1} ms ({:.1}x faster, target >= 5x), \
         jitcache cold {:.1} ms ({:+.1}%, target <= +15%)",
        base * 1e3,
        warm_t * 1e3,
        base / warm_t,
        cold_t * 1e3,
        (cold_t / base - 1.0) * 100.0,
    );
}

criterion_group!(benches, time_to_first_call);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    ratios();
}
