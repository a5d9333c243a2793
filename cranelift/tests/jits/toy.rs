// A toy language JIT in the style of cranelift-jit-demo: a `Jit` struct holding the
// builder context, the codegen context, a data description and the module; each toy
// function is parsed, translated with `FunctionBuilder` and `Variable`s, and compiled by
// its own `define_function`; calls go to other toy functions (defined before or after)
// or to host functions given with `JITBuilder::symbol`; `&name` is the address of a data
// object.
//
// This file is included into two modules, which differ only in the line that brings
// `JITBuilder` and `JITModule` into scope (`cranelift_jit` or `jitcache_cranelift`).

use std::collections::HashMap;
use std::sync::Mutex;

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{AbiParam, InstBuilder, Value, types};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext, Variable};
use cranelift_module::{DataDescription, FuncId, Linkage, Module, default_libcall_names};

/// What the host functions printed.
static PRINTED: Mutex<Vec<i64>> = Mutex::new(Vec::new());

extern "C" fn toy_print(x: i64) -> i64 {
    PRINTED.lock().unwrap_or_else(|e| e.into_inner()).push(x);
    x
}

extern "C" fn toy_mix(a: i64, b: i64, c: i64) -> i64 {
    a * 100 + b * 10 + c
}

/// An expression or statement of the toy language.
#[derive(Debug, Clone)]
enum Expr {
    Literal(i64),
    Identifier(String),
    Assign(String, Box<Expr>),
    Binary(char, Box<Expr>, Box<Expr>),
    Compare(IntCC, Box<Expr>, Box<Expr>),
    IfElse(Box<Expr>, Vec<Expr>, Vec<Expr>),
    WhileLoop(Box<Expr>, Vec<Expr>),
    Call(String, Vec<Expr>),
    GlobalDataAddr(String),
}

/// A parsed function: name, parameters, the returned variable, the body.
struct FunctionAst {
    name: String,
    params: Vec<String>,
    the_return: String,
    body: Vec<Expr>,
}

/// A hand-written recursive-descent parser.
struct Parser<'a> {
    tokens: Vec<&'a str>,
    at: usize,
}

fn tokenize(src: &str) -> Vec<&str> {
    let mut tokens = Vec::new();
    let bytes = src.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        if c.is_ascii_alphanumeric() || c == b'_' {
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
        } else if i + 1 < bytes.len() && matches!(&src[i..i + 2], "==" | "!=" | "<=" | ">=" | "->")
        {
            i += 2;
        } else {
            i += 1;
        }
        tokens.push(&src[start..i]);
    }
    tokens
}

impl<'a> Parser<'a> {
    fn new(src: &'a str) -> Self {
        Parser {
            tokens: tokenize(src),
            at: 0,
        }
    }

    fn peek(&self) -> Option<&'a str> {
        self.tokens.get(self.at).copied()
    }

    fn next(&mut self) -> Result<&'a str, String> {
        let t = self.peek().ok_or("unexpected end of input")?;
        self.at += 1;
        Ok(t)
    }

    fn expect(&mut self, want: &str) -> Result<(), String> {
        let got = self.next()?;
        if got == want {
            Ok(())
        } else {
            Err(format!("expected {want:?}, found {got:?}"))
        }
    }

    fn ident(&mut self) -> Result<String, String> {
        let t = self.next()?;
        if t.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !t.starts_with(|c: char| c.is_ascii_digit())
        {
            Ok(t.to_owned())
        } else {
            Err(format!("expected an identifier, found {t:?}"))
        }
    }

    fn function(&mut self) -> Result<FunctionAst, String> {
        self.expect("fn")?;
        let name = self.ident()?;
        self.expect("(")?;
        let mut params = Vec::new();
        while self.peek() != Some(")") {
            params.push(self.ident()?);
            if self.peek() == Some(",") {
                self.next()?;
            }
        }
        self.expect(")")?;
        self.expect("->")?;
        self.expect("(")?;
        let the_return = self.ident()?;
        self.expect(")")?;
        let body = self.block()?;
        Ok(FunctionAst {
            name,
            params,
            the_return,
            body,
        })
    }

    fn block(&mut self) -> Result<Vec<Expr>, String> {
        self.expect("{")?;
        let mut stmts = Vec::new();
        while self.peek() != Some("}") {
            stmts.push(self.statement()?);
        }
        self.expect("}")?;
        Ok(stmts)
    }

    fn statement(&mut self) -> Result<Expr, String> {
        match self.peek() {
            Some("if") => {
                self.next()?;
                let cond = self.expr()?;
                let then_body = self.block()?;
                let else_body = if self.peek() == Some("else") {
                    self.next()?;
                    self.block()?
                } else {
                    Vec::new()
                };
                Ok(Expr::IfElse(Box::new(cond), then_body, else_body))
            }
            Some("while") => {
                self.next()?;
                let cond = self.expr()?;
                Ok(Expr::WhileLoop(Box::new(cond), self.block()?))
            }
            _ if self.tokens.get(self.at + 1) == Some(&"=") => {
                let name = self.ident()?;
                self.expect("=")?;
                Ok(Expr::Assign(name, Box::new(self.expr()?)))
            }
            _ => self.expr(),
        }
    }

    fn expr(&mut self) -> Result<Expr, String> {
        let lhs = self.sum()?;
        let cc = match self.peek() {
            Some("==") => IntCC::Equal,
            Some("!=") => IntCC::NotEqual,
            Some("<") => IntCC::SignedLessThan,
            Some("<=") => IntCC::SignedLessThanOrEqual,
            Some(">") => IntCC::SignedGreaterThan,
            Some(">=") => IntCC::SignedGreaterThanOrEqual,
            _ => return Ok(lhs),
        };
        self.next()?;
        Ok(Expr::Compare(cc, Box::new(lhs), Box::new(self.sum()?)))
    }

    fn sum(&mut self) -> Result<Expr, String> {
        let mut lhs = self.product()?;
        while let Some(op @ ("+" | "-")) = self.peek() {
            self.next()?;
            let rhs = self.product()?;
            lhs = Expr::Binary(
                op.chars().next().unwrap_or('+'),
                Box::new(lhs),
                Box::new(rhs),
            );
        }
        Ok(lhs)
    }

    fn product(&mut self) -> Result<Expr, String> {
        let mut lhs = self.unary()?;
        while let Some(op @ ("*" | "/" | "%")) = self.peek() {
            self.next()?;
            let rhs = self.unary()?;
            lhs = Expr::Binary(
                op.chars().next().unwrap_or('*'),
                Box::new(lhs),
                Box::new(rhs),
            );
        }
        Ok(lhs)
    }

    fn unary(&mut self) -> Result<Expr, String> {
        let t = self.next()?;
        match t {
            "(" => {
                let e = self.expr()?;
                self.expect(")")?;
                Ok(e)
            }
            "-" => Ok(Expr::Binary(
                '-',
                Box::new(Expr::Literal(0)),
                Box::new(self.unary()?),
            )),
            "&" => Ok(Expr::GlobalDataAddr(self.ident()?)),
            _ if t.starts_with(|c: char| c.is_ascii_digit()) => t
                .parse()
                .map(Expr::Literal)
                .map_err(|e| format!("{t}: {e}")),
            _ => {
                self.at -= 1;
                let name = self.ident()?;
                if self.peek() != Some("(") {
                    return Ok(Expr::Identifier(name));
                }
                self.next()?;
                let mut args = Vec::new();
                while self.peek() != Some(")") {
                    args.push(self.expr()?);
                    if self.peek() == Some(",") {
                        self.next()?;
                    }
                }
                self.expect(")")?;
                Ok(Expr::Call(name, args))
            }
        }
    }
}

/// The basic JIT class.
pub struct Jit {
    /// The function builder context, which is reused across multiple FunctionBuilder
    /// instances.
    builder_context: FunctionBuilderContext,
    /// The main Cranelift context, which holds the state for codegen.
    ctx: cranelift_codegen::Context,
    /// The data description, which is to data objects what `ctx` is to functions.
    data_description: DataDescription,
    /// The module, with the jit backend, which manages the JIT'd functions.
    module: JITModule,
}

impl Default for Jit {
    fn default() -> Self {
        let mut builder =
            JITBuilder::with_flags(&[("opt_level", "speed")], default_libcall_names())
                .expect("host machine is not supported");
        builder.symbol("print", toy_print as *const u8);
        builder.symbols([("mix", toy_mix as *const u8)]);
        let module = JITModule::new(builder);
        Self {
            builder_context: FunctionBuilderContext::new(),
            ctx: module.make_context(),
            data_description: DataDescription::new(),
            module,
        }
    }
}

impl Jit {
    /// Compile a string in the toy language into machine code; returns its id.
    pub fn compile(&mut self, input: &str) -> Result<FuncId, String> {
        let ast = Parser::new(input).function()?;
        self.translate(&ast)?;
        let id = self
            .module
            .declare_function(&ast.name, Linkage::Export, &self.ctx.func.signature)
            .map_err(|e| e.to_string())?;
        self.module
            .define_function(id, &mut self.ctx)
            .map_err(|e| e.to_string())?;
        self.module.clear_context(&mut self.ctx);
        Ok(id)
    }

    /// Finalizes what was compiled and returns the address of `id`.
    pub fn finalize(&mut self, id: FuncId) -> Result<*const u8, String> {
        self.module
            .finalize_definitions()
            .map_err(|e| e.to_string())?;
        Ok(self.module.get_finalized_function(id))
    }

    /// Defines a writable data object holding `contents`, finalizes it and returns it.
    pub fn create_data(&mut self, name: &str, contents: Vec<u8>) -> Result<&[u8], String> {
        self.data_description.define(contents.into_boxed_slice());
        let id = self
            .module
            .declare_data(name, Linkage::Export, true, false)
            .map_err(|e| e.to_string())?;
        self.module
            .define_data(id, &self.data_description)
            .map_err(|e| e.to_string())?;
        self.data_description.clear();
        self.module
            .finalize_definitions()
            .map_err(|e| e.to_string())?;
        let (ptr, size) = self.module.get_finalized_data(id);
        // SAFETY: the data object was just finalized; it is `size` bytes at `ptr` and
        // stays mapped as long as the module.
        Ok(unsafe { std::slice::from_raw_parts(ptr, size) })
    }

    fn translate(&mut self, ast: &FunctionAst) -> Result<(), String> {
        let int = self.module.target_config().pointer_type();
        for _ in &ast.params {
            self.ctx.func.signature.params.push(AbiParam::new(int));
        }
        self.ctx.func.signature.returns.push(AbiParam::new(int));
        let mut builder = FunctionBuilder::new(&mut self.ctx.func, &mut self.builder_context);
        let entry = builder.create_block();
        builder.append_block_params_for_function_params(entry);
        builder.switch_to_block(entry);
        builder.seal_block(entry);
        let mut variables = HashMap::new();
        for (i, name) in ast.params.iter().enumerate() {
            let var = builder.declare_var(int);
            let val = builder.block_params(entry)[i];
            builder.def_var(var, val);
            variables.insert(name.clone(), var);
        }
        let ret = builder.declare_var(int);
        let zero = builder.ins().iconst(int, 0);
        builder.def_var(ret, zero);
        variables.insert(ast.the_return.clone(), ret);
        let mut trans = Translator {
            int,
            builder,
            variables,
            module: &mut self.module,
        };
        for stmt in &ast.body {
            trans.expr(stmt)?;
        }
        let value = trans.builder.use_var(ret);
        trans.builder.ins().return_(&[value]);
        let config = trans.module.target_config();
        trans.builder.finalize(config);
        Ok(())
    }
}

/// A collection of state used for translating from toy-language AST nodes into
/// Cranelift IR.
struct Translator<'a> {
    int: types::Type,
    builder: FunctionBuilder<'a>,
    variables: HashMap<String, Variable>,
    module: &'a mut JITModule,
}

impl Translator<'_> {
    fn expr(&mut self, expr: &Expr) -> Result<Value, String> {
        Ok(match expr {
            Expr::Literal(n) => self.builder.ins().iconst(self.int, *n),
            Expr::Identifier(name) => {
                let var = self.var(name);
                self.builder.use_var(var)
            }
            Expr::Assign(name, e) => {
                let value = self.expr(e)?;
                let var = self.var(name);
                self.builder.def_var(var, value);
                value
            }
            Expr::Binary(op, l, r) => {
                let (l, r) = (self.expr(l)?, self.expr(r)?);
                match op {
                    '+' => self.builder.ins().iadd(l, r),
                    '-' => self.builder.ins().isub(l, r),
                    '*' => self.builder.ins().imul(l, r),
                    '/' => self.builder.ins().sdiv(l, r),
                    _ => self.builder.ins().srem(l, r),
                }
            }
            Expr::Compare(cc, l, r) => {
                let (l, r) = (self.expr(l)?, self.expr(r)?);
                let c = self.builder.ins().icmp(*cc, l, r);
                self.builder.ins().uextend(self.int, c)
            }
            Expr::IfElse(cond, then_body, else_body) => {
                let c = self.expr(cond)?;
                let then_block = self.builder.create_block();
                let else_block = self.builder.create_block();
                let merge = self.builder.create_block();
                self.builder.append_block_param(merge, self.int);
                self.builder.ins().brif(c, then_block, &[], else_block, &[]);
                for (block, body) in [(then_block, then_body), (else_block, else_body)] {
                    self.builder.switch_to_block(block);
                    self.builder.seal_block(block);
                    let mut last = self.builder.ins().iconst(self.int, 0);
                    for e in body {
                        last = self.expr(e)?;
                    }
                    self.builder.ins().jump(merge, &[last.into()]);
                }
                self.builder.switch_to_block(merge);
                self.builder.seal_block(merge);
                self.builder.block_params(merge)[0]
            }
            Expr::WhileLoop(cond, body) => {
                let header = self.builder.create_block();
                let body_block = self.builder.create_block();
                let exit = self.builder.create_block();
                self.builder.ins().jump(header, &[]);
                self.builder.switch_to_block(header);
                let c = self.expr(cond)?;
                self.builder.ins().brif(c, body_block, &[], exit, &[]);
                self.builder.switch_to_block(body_block);
                self.builder.seal_block(body_block);
                for e in body {
                    self.expr(e)?;
                }
                self.builder.ins().jump(header, &[]);
                self.builder.switch_to_block(exit);
                self.builder.seal_block(header);
                self.builder.seal_block(exit);
                self.builder.ins().iconst(self.int, 0)
            }
            Expr::Call(name, args) => {
                let mut sig = self.module.make_signature();
                for _ in args {
                    sig.params.push(AbiParam::new(self.int));
                }
                sig.returns.push(AbiParam::new(self.int));
                let callee = self
                    .module
                    .declare_function(name, Linkage::Import, &sig)
                    .map_err(|e| e.to_string())?;
                let local = self.module.declare_func_in_func(callee, self.builder.func);
                let mut values = Vec::new();
                for a in args {
                    values.push(self.expr(a)?);
                }
                let call = self.builder.ins().call(local, &values);
                self.builder.inst_results(call)[0]
            }
            Expr::GlobalDataAddr(name) => {
                let sym = self
                    .module
                    .declare_data(name, Linkage::Export, true, false)
                    .map_err(|e| e.to_string())?;
                let local = self.module.declare_data_in_func(sym, self.builder.func);
                self.builder.ins().symbol_value(self.int, local)
            }
        })
    }

    fn var(&mut self, name: &str) -> Variable {
        if let Some(var) = self.variables.get(name) {
            return *var;
        }
        let var = self.builder.declare_var(self.int);
        let zero = self.builder.ins().iconst(self.int, 0);
        self.builder.def_var(var, zero);
        self.variables.insert(name.to_owned(), var);
        var
    }
}

/// Calls a compiled toy function of `N` arguments.
fn call(code: *const u8, args: &[i64]) -> i64 {
    type F0 = extern "C" fn() -> i64;
    type F1 = extern "C" fn(i64) -> i64;
    type F2 = extern "C" fn(i64, i64) -> i64;
    // SAFETY: every toy function takes its parameters as i64 and returns an i64 in the
    // host's calling convention; `code` is a finalized toy function with `args.len()`
    // parameters.
    unsafe {
        match *args {
            [] => std::mem::transmute::<*const u8, F0>(code)(),
            [a] => std::mem::transmute::<*const u8, F1>(code)(a),
            [a, b] => std::mem::transmute::<*const u8, F2>(code)(a, b),
            _ => panic!("the test calls functions of at most two arguments"),
        }
    }
}

/// The toy programs: each is compiled function by function and called.
const FUNCTIONS: &[&str] = &[
    // Forward references: `fib` and `is_even` call functions defined later.
    "fn fib(n) -> (r) { if n < 2 { r = n } else { r = fib(n - 1) + fib(n - 2) } }",
    "fn is_even(n) -> (r) { if n == 0 { r = 1 } else { r = is_odd(n - 1) } }",
    "fn is_odd(n) -> (r) { if n == 0 { r = 0 } else { r = is_even(n - 1) } }",
    "fn sum_to(n) -> (r) { i = 0 r = 0 while i <= n { r = r + i i = i + 1 } }",
    "fn gcd(a, b) -> (r) { while b != 0 { t = b b = a % b a = t } r = a }",
    // Host functions, by `symbol` and `symbols`.
    "fn report(n) -> (r) { r = print(fib(n)) + print(gcd(n * 6, 4)) + mix(1, 2, n) }",
    // libc, through dlsym.
    "fn magnitude(n) -> (r) { r = labs(n) * 2 }",
    // A data object's address, read through a host function.
    "fn greeting_len(x) -> (r) { r = strlen(&hello_string) + x }",
    // Collatz steps, with nested control flow.
    "fn collatz(n) -> (r) { r = 0 while n != 1 { if n % 2 == 0 { n = n / 2 } else { n = 3 * n + 1 } r = r + 1 } }",
];

/// Runs the toy programs; returns what they computed, one line each.
pub fn run() -> Vec<String> {
    let mut jit = Jit::default();
    let mut out = Vec::new();
    let hello = jit
        .create_data("hello_string", b"hello world!\0".to_vec())
        .expect("data");
    out.push(format!(
        "hello_string = {:?}",
        String::from_utf8_lossy(hello)
    ));
    let mut ids = HashMap::new();
    for src in FUNCTIONS {
        let name = src[3..src.find('(').unwrap_or(3)].to_owned();
        ids.insert(name, jit.compile(src).expect("compile"));
    }
    let calls: &[(&str, &[i64])] = &[
        ("fib", &[20]),
        ("is_even", &[11]),
        ("is_odd", &[11]),
        ("sum_to", &[100]),
        ("gcd", &[1071, 462]),
        ("report", &[10]),
        ("magnitude", &[-21]),
        ("greeting_len", &[1000]),
        ("collatz", &[27]),
    ];
    for (name, args) in calls {
        let code = jit.finalize(ids[*name]).expect("finalize");
        out.push(format!("{name}{args:?} = {}", call(code, args)));
    }
    // A function compiled after the first finalization, calling earlier ones.
    let late = jit
        .compile("fn late(n) -> (r) { r = fib(n) * 1000 + collatz(n) }")
        .expect("compile late");
    let code = jit.finalize(late).expect("finalize late");
    out.push(format!("late[12] = {}", call(code, &[12])));
    let printed = PRINTED.lock().unwrap_or_else(|e| e.into_inner()).clone();
    out.push(format!("printed = {printed:?}"));
    // A parse error is reported the same way.
    let err = jit.compile("fn broken(n) -> (r) { r = 1 + }");
    out.push(format!("broken = {err:?}"));
    out
}
