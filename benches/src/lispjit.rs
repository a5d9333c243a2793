//! Target 3's baseline: a Lisp program compiled the way a Cranelift JIT without a cache
//! compiles it, every definition straight into memory with `cranelift_jit::JITModule`
//! (no object files, no linker), from the same Cranelift IR the Lisp frontend gives
//! jitcache's backend, with the same settings (`opt_level=speed`, no PIC, unwind
//! information, the verifier off as the backend has it). [`run`] is the whole of the
//! `jitcache-bench-cljit` process: parse, generate, compile, finalize, call `main`.
//! [`run_clif`] does the same for a file of CLIF text, whose `main` is C's
//! `int main(int, char **)` as `jitcache run` calls it.

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

/// Runs the CLIF program at `path`: parses it, compiles every function with
/// `JITModule`, calls `main` with `argv` = the program's path (as `jitcache run` does)
/// and returns its status's low byte.
pub fn run_clif(path: &Path) -> Result<u8> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let unit = jitcache::backends::ClifUnit::parse(&text)
        .map_err(|e| anyhow!("{}: {e}", path.display()))?;
    let builder = JITBuilder::with_flags(FLAGS, default_libcall_names())?;
    let (module, ids) = compile_functions(JITModule::new(builder), unit.functions)?;
    let id = ids.get("main").context("no function %main")?;
    let addr = module.get_finalized_function(*id) as usize;
    let status = call_clif_main(addr, &path.display().to_string());
    Ok((status & 0xff) as u8)
}

/// Calls a CLIF `main(i32, i64) -> i32` that `JITModule` finalized at `addr`, as C's
/// `main(argc, argv)` with `argv` = `[program]`.
#[expect(unsafe_code)]
fn call_clif_main(addr: usize, program: &str) -> i32 {
    // SAFETY: `addr` is the finalized code of the program's `main`, whose signature is
    // C's `int main(int, char **)` (what `jitcache run` requires of a CLIF program); the
    // module that owns the code is alive in the caller until after this call returns.
    unsafe { jitcache::linker::call::call_main(addr, &[program.to_owned()]) }
}

/// Compiles every definition of `program` into one `JITModule` and finalizes it;
/// returns the module (which owns the code) and the id of each definition's symbol.
pub fn compile(program: &lisp::Program) -> Result<(JITModule, HashMap<String, FuncId>)> {
    let mut builder = JITBuilder::with_flags(FLAGS, default_libcall_names())?;
    builder.symbol_lookup_fn(Box::new(|name| {
        lisp::runtime::resolve(name).map(|addr| addr as *const u8)
    }));
    let mut functions: Vec<Function> = Vec::with_capacity(program.defs().len());
    for def in program.defs() {
        let mut generated =
            lisp::compile_def(program, def).map_err(|e| anyhow!("{}: {e}", def.name()))?;
        functions.append(&mut generated);
    }
    compile_functions(JITModule::new(builder), functions)
}

/// Declares, defines and finalizes `functions` (named by `TestCase` names) in `module`;
/// calls to names it does not define are imports. Returns the module and the id of
/// each function's symbol.
fn compile_functions(
    mut module: JITModule,
    functions: Vec<Function>,
) -> Result<(JITModule, HashMap<String, FuncId>)> {
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

    #[test]
    fn a_clif_program_compiled_in_memory_computes_the_generated_sum() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.clif");
        std::fs::write(&path, crate::programs::clif_program(40)).unwrap();
        assert_eq!(run_clif(&path).unwrap(), 0, "main found the sum it expects");
        // The same program with one constant changed computes another sum.
        let text =
            crate::programs::clif_program(40).replacen("v1 = iconst.i64 ", "v1 = iconst.i64 1", 1);
        std::fs::write(&path, text).unwrap();
        assert_eq!(run_clif(&path).unwrap(), 1, "a wrong sum is reported");
    }
}
