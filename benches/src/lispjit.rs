//! Target 3's baseline: a Lisp program compiled the way a Cranelift JIT without a cache
//! compiles it, every definition straight into memory with `cranelift_jit::JITModule`
//! (no object files, no linker), from the same Cranelift IR the Lisp frontend gives
//! jitcache's backend, with the same settings (`opt_level=speed`, no PIC, unwind
//! information, the verifier off as the backend has it). [`run`] is the whole of the
//! `jitcache-bench-cljit` process: parse, generate, compile, finalize, call `main`.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result, anyhow};
use cranelift_codegen::ir::{ExternalName, Function, UserExternalName, UserFuncName};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{FuncId, Linkage, Module, default_libcall_names};
use jitcache_frontends::lisp;

/// The settings of jitcache's Cranelift backend by default.
const FLAGS: &[(&str, &str)] = &[
    ("opt_level", "speed"),
    ("is_pic", "false"),
    ("unwind_info", "true"),
    ("enable_verifier", "false"),
];

/// Runs the Lisp program at `path`: compiles every definition with `JITModule`, calls
/// `main` and returns its value's low byte (as `jitcache run` does).
pub fn run(path: &Path) -> Result<u8> {
    let source =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let program = lisp::parse(&source).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    let main = program.main().context("no (defn main [] ...)")?.symbol();
    lisp::runtime::register_program(&program);
    let (module, ids) = compile(&program)?;
    let id = ids.get(&main).context("main was not compiled")?;
    let addr = module.get_finalized_function(*id) as usize;
    let value = call_main(addr)?;
    lisp::runtime::flush()?;
    Ok((value & 0xff) as u8)
}

/// Calls the Lisp `main` (no arguments, an `i64` result) that `JITModule` finalized at
/// `addr`.
#[expect(unsafe_code)]
fn call_main(addr: usize) -> Result<i64> {
    // SAFETY: `addr` is the finalized code of the program's `main`, which takes no
    // arguments and returns an i64 (the Lisp's calling convention); the module that owns
    // the code is alive in the caller until after this call returns.
    Ok(unsafe { jitcache::linker::call::call_i64(addr, &[]) }?)
}

/// Compiles every definition of `program` into one `JITModule` and finalizes it;
/// returns the module (which owns the code) and the id of each definition's symbol.
pub fn compile(program: &lisp::Program) -> Result<(JITModule, HashMap<String, FuncId>)> {
    let mut builder = JITBuilder::with_flags(FLAGS, default_libcall_names())?;
    builder.symbol_lookup_fn(Box::new(|name| {
        lisp::runtime::resolve(name).map(|addr| addr as *const u8)
    }));
    let mut module = JITModule::new(builder);
    let mut functions: Vec<Function> = Vec::with_capacity(program.defs().len());
    for def in program.defs() {
        let mut generated =
            lisp::compile_def(program, def).map_err(|e| anyhow!("{}: {e}", def.name()))?;
        functions.append(&mut generated);
    }
    let mut ids = HashMap::with_capacity(functions.len());
    for func in &functions {
        let symbol = func.name.to_string();
        let symbol = symbol.trim_start_matches('%').to_owned();
        let id = module.declare_function(&symbol, Linkage::Export, &func.signature)?;
        ids.insert(symbol, id);
    }
    let mut ctx = module.make_context();
    for func in functions {
        let symbol = func.name.to_string();
        let id = ids[symbol.trim_start_matches('%')];
        ctx.func = func;
        ctx.func.name = UserFuncName::user(0, id.as_u32());
        bind_imports(&mut ctx.func, &mut module, &ids)?;
        module.define_function(id, &mut ctx)?;
        module.clear_context(&mut ctx);
    }
    module.finalize_definitions()?;
    Ok((module, ids))
}

/// Rewrites the `TestCase` names of `func`'s calls into ids of `module`: definitions of
/// the program (`ids`) or imports resolved by the runtime.
fn bind_imports(
    func: &mut Function,
    module: &mut JITModule,
    ids: &HashMap<String, FuncId>,
) -> Result<()> {
    let refs: Vec<_> = func.dfg.ext_funcs.keys().collect();
    for fref in refs {
        let data = &func.dfg.ext_funcs[fref];
        let ExternalName::TestCase(name) = &data.name else {
            continue;
        };
        let symbol = std::str::from_utf8(name.raw())?.to_owned();
        let id = match ids.get(&symbol) {
            Some(id) => *id,
            None => {
                let signature = func.dfg.signatures[data.signature].clone();
                module.declare_function(&symbol, Linkage::Import, &signature)?
            }
        };
        let user = func.declare_imported_user_function(UserExternalName::new(0, id.as_u32()));
        func.dfg.ext_funcs[fref].name = ExternalName::user(user);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_program_compiled_in_memory_returns_what_main_returns() {
        let program = lisp::parse(
            "(defn sq [x] (* x x))\n(defn add1 [x] (+ (sq x) 1))\n(defn main [] (- (add1 6) 30))\n",
        )
        .unwrap();
        lisp::runtime::register_program(&program);
        let (module, ids) = compile(&program).unwrap();
        let main = ids[&program.main().unwrap().symbol()];
        let addr = module.get_finalized_function(main) as usize;
        assert_eq!(call_main(addr).unwrap(), 7);
    }
}
