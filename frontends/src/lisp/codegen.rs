//! Code generation: one checked definition to one Cranelift IR function.
//!
//! Every value is an `i64`. A definition of arity `n` becomes
//! `fn(i64 × n) -> i64` in the host's default calling convention, named
//! `UserFuncName::testcase(symbol)`. Calls to other definitions and to the
//! runtime import `ExternalName::testcase(symbol)` functions (not colocated),
//! so they are resolved when the object is loaded. Locals are Cranelift
//! variables; `loop` and a `recur` to the function become blocks and jumps.

use std::collections::HashMap;
use std::sync::OnceLock;

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::types::I64;
use cranelift_codegen::ir::{
    AbiParam, Block, BlockArg, ExtFuncData, ExternalName, FuncRef, Function, InstBuilder,
    Signature, TrapCode, UserFuncName, Value,
};
use cranelift_codegen::isa::{CallConv, TargetFrontendConfig};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext, Variable};

use super::ast::{Body, Expr, PrimOp, RecurTarget};
use super::error::{LispError, LispErrorKind, Pos};
use super::program::Def;
use super::runtime;

/// The host's target triple, as far as the calling convention and pointer
/// width are concerned (the vendor and ABI parts do not change either).
pub(crate) fn host_triple_name() -> String {
    let arch = std::env::consts::ARCH;
    match std::env::consts::OS {
        "linux" => format!("{arch}-unknown-linux-gnu"),
        "macos" => format!("{arch}-apple-darwin"),
        "windows" => format!("{arch}-pc-windows-msvc"),
        "freebsd" => format!("{arch}-unknown-freebsd"),
        os => format!("{arch}-unknown-{os}"),
    }
}

/// The host's calling convention and pointer width, computed once.
fn host_config() -> Result<TargetFrontendConfig, LispError> {
    static CONFIG: OnceLock<Result<TargetFrontendConfig, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let name = host_triple_name();
            let triple = name
                .parse()
                .map_err(|e| format!("cannot parse host triple `{name}`: {e}"))?;
            let default_call_conv = CallConv::triple_default(&triple);
            let pointer_width = triple
                .pointer_width()
                .map_err(|()| format!("unknown pointer width for `{name}`"))?;
            Ok(TargetFrontendConfig {
                default_call_conv,
                pointer_width,
                page_size_align_log2: 12,
            })
        })
        .clone()
        .map_err(|msg| LispError::new(Pos::new(1, 1), LispErrorKind::Codegen(msg)))
}

/// The calling convention generated functions use: the host's default
/// (System V on x86-64 Linux).
pub(crate) fn call_conv() -> Result<CallConv, LispError> {
    Ok(host_config()?.default_call_conv)
}

/// A signature `(i64 × params) -> i64` (or no result).
fn signature(call_conv: CallConv, params: usize, returns: bool) -> Signature {
    let mut sig = Signature::new(call_conv);
    sig.params
        .extend(std::iter::repeat_n(AbiParam::new(I64), params));
    if returns {
        sig.returns.push(AbiParam::new(I64));
    }
    sig
}

/// Generates the IR function of `def`.
pub(crate) fn compile(def: &Def) -> Result<Function, LispError> {
    let config = host_config()?;
    let call_conv = config.default_call_conv;
    let symbol = def.symbol();
    let mut func = Function::with_name_signature(
        UserFuncName::testcase(symbol.as_bytes()),
        signature(call_conv, def.arity(), true),
    );
    let mut fctx = FunctionBuilderContext::new();
    let mut b = FunctionBuilder::new(&mut func, &mut fctx);
    let body: &Body = def.body()?;
    let vars: Vec<Variable> = (0..body.num_vars).map(|_| b.declare_var(I64)).collect();
    let loop_vars = body
        .loops
        .iter()
        .map(|l| l.vars.iter().map(|&v| vars[v]).collect())
        .collect();
    let id = super::def_id(&symbol);
    let mut g = Gen {
        b,
        vars,
        loop_headers: vec![None; body.loops.len()],
        fn_header: None,
        funcs: HashMap::new(),
        loop_vars,
        call_conv,
        def_id: i64::from_ne_bytes(id.to_ne_bytes()),
    };
    let entry = g.b.create_block();
    g.b.append_block_params_for_function_params(entry);
    g.b.switch_to_block(entry);
    g.b.seal_block(entry);
    let params = g.b.block_params(entry).to_vec();
    for (i, p) in params.into_iter().enumerate() {
        g.b.def_var(g.vars[i], p);
    }
    if body.recurs_to_function {
        let header = g.b.create_block();
        g.b.ins().jump(header, &[]);
        g.b.switch_to_block(header);
        g.fn_header = Some(header);
    }
    if let Some(v) = g.seq(&body.exprs) {
        g.b.ins().return_(&[v]);
    }
    g.b.seal_all_blocks();
    g.b.finalize(config);
    Ok(func)
}

/// The state of generating one function.
struct Gen<'f> {
    b: FunctionBuilder<'f>,
    /// One Cranelift variable per local ([`super::ast::VarId`]).
    vars: Vec<Variable>,
    /// Each loop's header block, once its code has started.
    loop_headers: Vec<Option<Block>>,
    /// Each loop's variables, by [`super::ast::LoopId`].
    loop_vars: Vec<Vec<Variable>>,
    /// The block a `recur` to the function jumps to.
    fn_header: Option<Block>,
    /// Imported functions, by symbol.
    funcs: HashMap<String, FuncRef>,
    call_conv: CallConv,
    /// This definition's id, passed to the division-by-zero reporter.
    def_id: i64,
}

impl Gen<'_> {
    /// The function reference for `symbol`, imported on first use.
    fn import(&mut self, symbol: &str, params: usize, returns: bool) -> FuncRef {
        if let Some(&f) = self.funcs.get(symbol) {
            return f;
        }
        let sig = self
            .b
            .import_signature(signature(self.call_conv, params, returns));
        let f = self.b.import_function(ExtFuncData {
            name: ExternalName::testcase(symbol.as_bytes()),
            signature: sig,
            colocated: false,
            patchable: false,
        });
        self.funcs.insert(symbol.to_owned(), f);
        f
    }

    /// A runtime function (no result).
    fn runtime_fn(&mut self, symbol: &str, params: usize) -> FuncRef {
        self.import(symbol, params, false)
    }

    fn iconst(&mut self, v: i64) -> Value {
        self.b.ins().iconst(I64, v)
    }

    /// Evaluates a body: the value of its last expression, `0` if empty,
    /// `None` if control does not reach its end.
    fn seq(&mut self, exprs: &[Expr]) -> Option<Value> {
        let mut last = None;
        for e in exprs {
            last = Some(self.expr(e)?);
        }
        Some(match last {
            Some(v) => v,
            None => self.iconst(0),
        })
    }

    fn all(&mut self, exprs: &[Expr]) -> Option<Vec<Value>> {
        exprs.iter().map(|e| self.expr(e)).collect()
    }

    /// Evaluates `e`; `None` if control does not come back (a `recur`, or a
    /// loop that never exits).
    fn expr(&mut self, e: &Expr) -> Option<Value> {
        match e {
            Expr::Int(v) => Some(self.iconst(*v)),
            Expr::Var(v) => Some(self.b.use_var(self.vars[*v])),
            Expr::Let { bindings, body } => {
                for (v, init) in bindings {
                    let x = self.expr(init)?;
                    self.b.def_var(self.vars[*v], x);
                }
                self.seq(body)
            }
            Expr::Do(body) => self.seq(body),
            Expr::If { cond, then, els } => {
                let c = self.expr(cond)?;
                let then_block = self.b.create_block();
                let else_block = self.b.create_block();
                let merge = self.b.create_block();
                let result = self.b.append_block_param(merge, I64);
                self.b.ins().brif(c, then_block, &[], else_block, &[]);
                self.b.seal_block(then_block);
                self.b.seal_block(else_block);
                let mut reached = false;
                for (block, branch) in [(then_block, then), (else_block, els)] {
                    self.b.switch_to_block(block);
                    if let Some(v) = self.expr(branch) {
                        self.b.ins().jump(merge, &[BlockArg::Value(v)]);
                        reached = true;
                    }
                }
                self.b.seal_block(merge);
                if !reached {
                    return None;
                }
                self.b.switch_to_block(merge);
                Some(result)
            }
            Expr::Loop { id, bindings, body } => {
                for (v, init) in bindings {
                    let x = self.expr(init)?;
                    self.b.def_var(self.vars[*v], x);
                }
                let header = self.b.create_block();
                self.b.ins().jump(header, &[]);
                self.b.switch_to_block(header);
                self.loop_headers[*id] = Some(header);
                let r = self.seq(body);
                self.b.seal_block(header);
                r
            }
            Expr::Recur { target, args } => {
                let values = self.all(args)?;
                let (vars, header) = match *target {
                    RecurTarget::Function => (self.vars[..values.len()].to_vec(), self.fn_header),
                    RecurTarget::Loop(id) => (self.loop_vars[id].clone(), self.loop_headers[id]),
                };
                for (var, v) in vars.into_iter().zip(values) {
                    self.b.def_var(var, v);
                }
                // The checker only lets `recur` target an enclosing loop or
                // the function, whose header exists by now.
                if let Some(header) = header {
                    self.b.ins().jump(header, &[]);
                } else {
                    self.b.ins().trap(TrapCode::unwrap_user(1));
                }
                None
            }
            Expr::Call { symbol, args } => {
                let values = self.all(args)?;
                let f = self.import(symbol, values.len(), true);
                let inst = self.b.ins().call(f, &values);
                Some(self.b.inst_results(inst)[0])
            }
            Expr::Println(args) => {
                let values = self.all(args)?;
                if values.is_empty() {
                    let f = self.runtime_fn(runtime::NEWLINE, 0);
                    self.b.ins().call(f, &[]);
                } else {
                    let f = self.runtime_fn(runtime::PRINT_I64, 2);
                    let n = values.len();
                    for (i, v) in values.into_iter().enumerate() {
                        let last = self.iconst(i64::from(i + 1 == n));
                        self.b.ins().call(f, &[v, last]);
                    }
                }
                Some(self.iconst(0))
            }
            Expr::And(args) => self.short_circuit(args, true),
            Expr::Or(args) => self.short_circuit(args, false),
            Expr::Prim { op, args, site } => self.prim(*op, args, *site),
        }
    }

    /// `and` (`is_and`) or `or`.
    fn short_circuit(&mut self, args: &[Expr], is_and: bool) -> Option<Value> {
        let Some((last, init)) = args.split_last() else {
            return Some(self.iconst(i64::from(is_and)));
        };
        let merge = self.b.create_block();
        let result = self.b.append_block_param(merge, I64);
        let mut reached = false;
        let mut diverged = false;
        for e in init {
            let Some(v) = self.expr(e) else {
                diverged = true;
                break;
            };
            let next = self.b.create_block();
            // `and` stops at the first 0 (passing it on), `or` at the first non-zero.
            if is_and {
                self.b
                    .ins()
                    .brif(v, next, &[], merge, &[BlockArg::Value(v)]);
            } else {
                self.b
                    .ins()
                    .brif(v, merge, &[BlockArg::Value(v)], next, &[]);
            }
            reached = true;
            self.b.seal_block(next);
            self.b.switch_to_block(next);
        }
        if !diverged && let Some(v) = self.expr(last) {
            self.b.ins().jump(merge, &[BlockArg::Value(v)]);
            reached = true;
        }
        self.b.seal_block(merge);
        if !reached {
            return None;
        }
        self.b.switch_to_block(merge);
        Some(result)
    }

    fn prim(&mut self, op: PrimOp, args: &[Expr], site: u32) -> Option<Value> {
        let values = self.all(args)?;
        let mut it = values.iter().copied();
        let v = match op {
            PrimOp::Add => match it.next() {
                None => self.iconst(0),
                Some(first) => it.fold(first, |acc, x| self.b.ins().iadd(acc, x)),
            },
            PrimOp::Mul => match it.next() {
                None => self.iconst(1),
                Some(first) => it.fold(first, |acc, x| self.b.ins().imul(acc, x)),
            },
            PrimOp::Sub => {
                let first = it.next()?;
                if values.len() == 1 {
                    self.b.ins().ineg(first)
                } else {
                    it.fold(first, |acc, x| self.b.ins().isub(acc, x))
                }
            }
            PrimOp::Div | PrimOp::Mod => {
                let mut acc = it.next()?;
                for (x, e) in values.iter().copied().zip(args).skip(1) {
                    let known = match e {
                        Expr::Int(k) => Some(*k),
                        _ => None,
                    };
                    acc = self.divide(op == PrimOp::Div, acc, x, known, site);
                }
                acc
            }
            PrimOp::Not => {
                let x = it.next()?;
                let z = self.b.ins().icmp_imm_s(IntCC::Equal, x, 0);
                self.b.ins().uextend(I64, z)
            }
            PrimOp::Lt | PrimOp::Le | PrimOp::Gt | PrimOp::Ge | PrimOp::Eq => {
                let cc = match op {
                    PrimOp::Lt => IntCC::SignedLessThan,
                    PrimOp::Le => IntCC::SignedLessThanOrEqual,
                    PrimOp::Gt => IntCC::SignedGreaterThan,
                    PrimOp::Ge => IntCC::SignedGreaterThanOrEqual,
                    _ => IntCC::Equal,
                };
                let mut acc = None;
                for pair in values.windows(2) {
                    let c = self.b.ins().icmp(cc, pair[0], pair[1]);
                    acc = Some(match acc {
                        None => c,
                        Some(a) => self.b.ins().band(a, c),
                    });
                }
                match acc {
                    Some(c) => self.b.ins().uextend(I64, c),
                    None => self.iconst(1),
                }
            }
        };
        Some(v)
    }

    /// `a / b` (truncating) or `a mod b` (floored: the result has the sign of
    /// `b`), with `b == 0` reported through the runtime and `b == -1` handled
    /// without the machine instruction's overflow trap (`i64::MIN / -1` wraps
    /// to `i64::MIN`). `known` is `b`'s value when it is a literal.
    fn divide(&mut self, div: bool, a: Value, b: Value, known: Option<i64>, site: u32) -> Value {
        let r = match known {
            Some(-1) => {
                return if div {
                    self.b.ins().ineg(a)
                } else {
                    self.iconst(0)
                };
            }
            Some(k) if k != 0 => {
                if div {
                    return self.b.ins().sdiv(a, b);
                }
                self.b.ins().srem(a, b)
            }
            _ => {
                let ok = self.b.create_block();
                let err = self.b.create_block();
                self.b.set_cold_block(err);
                self.b.ins().brif(b, ok, &[], err, &[]);
                self.b.seal_block(ok);
                self.b.seal_block(err);
                self.b.switch_to_block(err);
                let report = self.runtime_fn(runtime::DIV_BY_ZERO, 2);
                let id = self.iconst(self.def_id);
                let site = self.iconst(i64::from(site));
                self.b.ins().call(report, &[id, site]);
                self.b.ins().trap(TrapCode::INTEGER_DIVISION_BY_ZERO);
                self.b.switch_to_block(ok);
                let is_m1 = self.b.ins().icmp_imm_s(IntCC::Equal, b, -1);
                let one = self.iconst(1);
                let safe = self.b.ins().select(is_m1, one, b);
                if div {
                    let q = self.b.ins().sdiv(a, safe);
                    let neg = self.b.ins().ineg(a);
                    return self.b.ins().select(is_m1, neg, q);
                }
                // With b == -1, safe == 1 and the remainder is 0, which is right.
                self.b.ins().srem(a, safe)
            }
        };
        // Floored modulo: adjust a non-zero remainder whose sign differs from b's.
        let x = self.b.ins().bxor(r, b);
        let signs_differ = self.b.ins().icmp_imm_s(IntCC::SignedLessThan, x, 0);
        let nonzero = self.b.ins().icmp_imm_s(IntCC::NotEqual, r, 0);
        let adjust = self.b.ins().band(signs_differ, nonzero);
        let sum = self.b.ins().iadd(r, b);
        self.b.ins().select(adjust, sum, r)
    }
}
