//! The Cranelift backend: CLIF functions to an ELF object for the host.

mod config;
mod names;
mod unit;

use std::collections::HashSet;
use std::panic::{AssertUnwindSafe, catch_unwind};

use cranelift_codegen::Context;
use cranelift_codegen::ir::Function;
use cranelift_codegen::isa::{OwnedTargetIsa, TargetIsa};
use cranelift_codegen::print_errors::pretty_verifier_error;
use cranelift_codegen::{CodegenError, verify_function};
use cranelift_module::{FuncId, Linkage, Module, ModuleError, default_libcall_names};
use cranelift_object::{ObjectBuilder, ObjectModule};

pub use config::{CraneliftConfig, LOWERING_REVISION, OptLevel};
pub use unit::ClifUnit;

use crate::{Backend, BackendIdentity, CompiledObject, Error};

/// Name written into the object's `STT_FILE` symbol.
const OBJECT_NAME: &str = "jitcache-clif";

/// Compiles [`ClifUnit`]s with Cranelift for the host CPU into ELF
/// relocatable objects.
///
/// The ISA (with the CPU features detected by `cranelift-native`) and the
/// identity are computed once in [`CraneliftBackend::new`]; compiling is
/// thread-safe and can run concurrently.
///
/// # Examples
///
/// ```
/// use jitcache_backends::{Backend, ClifUnit, CraneliftBackend, CraneliftConfig};
///
/// let backend = CraneliftBackend::new(CraneliftConfig::default())?;
/// let unit = ClifUnit::parse("function %one() -> i64 { block0: v0 = iconst.i64 1\n return v0 }")?;
/// let object = backend.compile(&unit)?;
/// assert_eq!(object.symbols, ["one"]);
/// assert_eq!(&object.bytes[..4], b"\x7fELF");
/// # Ok::<(), jitcache_backends::Error>(())
/// ```
#[derive(Clone)]
pub struct CraneliftBackend {
    config: CraneliftConfig,
    isa: OwnedTargetIsa,
    identity: BackendIdentity,
}

impl std::fmt::Debug for CraneliftBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CraneliftBackend")
            .field("config", &self.config)
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

impl CraneliftBackend {
    /// Builds the backend for the host ISA.
    ///
    /// # Errors
    ///
    /// [`Error::UnsupportedHost`] if Cranelift cannot target this machine,
    /// [`Error::InvalidSetting`] for an unknown or invalid setting in
    /// [`CraneliftConfig::flags`].
    pub fn new(config: CraneliftConfig) -> Result<CraneliftBackend, Error> {
        let isa = config::build_isa(&config)?;
        let identity = config::identity(&isa);
        Ok(CraneliftBackend {
            config,
            isa,
            identity,
        })
    }

    /// The configuration the backend was built with.
    pub fn config(&self) -> &CraneliftConfig {
        &self.config
    }

    /// The target ISA, for frontends that need its pointer type or default
    /// calling convention (`isa().default_call_conv()`).
    pub fn isa(&self) -> &dyn TargetIsa {
        &*self.isa
    }

    /// Declares the unit's functions, rewrites their names and defines them.
    fn lower(&self, unit: &ClifUnit, module: &mut ObjectModule) -> Result<Vec<String>, Error> {
        let symbols = unit.symbols()?;
        let mut defined = HashSet::with_capacity(symbols.len());
        for symbol in &symbols {
            if !defined.insert(*symbol) {
                return Err(Error::DuplicateSymbol {
                    symbol: (*symbol).to_owned(),
                });
            }
        }

        for (index, func) in unit.functions.iter().enumerate() {
            names::check_printable(func, index)?;
            if func.layout.entry_block().is_none() {
                // The verifier accepts this, but codegen would panic.
                return Err(Error::Verifier {
                    function: symbols[index].to_owned(),
                    errors: "the function has no blocks".to_owned(),
                });
            }
            verify(func, symbols[index], &*self.isa)?;
        }

        let mut ids: Vec<FuncId> = Vec::with_capacity(symbols.len());
        for (func, symbol) in unit.functions.iter().zip(&symbols) {
            let id = module
                .declare_function(symbol, Linkage::Export, &func.signature)
                .map_err(|e| codegen_error(symbol, &e))?;
            ids.push(id);
        }

        // All calls first, then data references, so that a global value
        // naming a function is resolved to that function whatever the order.
        let mut funcs: Vec<Function> = unit.functions.clone();
        for (func, symbol) in funcs.iter_mut().zip(&symbols) {
            names::rewrite_ext_funcs(func, symbol, module, &defined)?;
        }
        for (func, symbol) in funcs.iter_mut().zip(&symbols) {
            names::rewrite_global_values(func, symbol, module, &defined)?;
        }

        let mut ctx = Context::new();
        for ((func, symbol), id) in funcs.into_iter().zip(&symbols).zip(ids) {
            ctx.clear();
            ctx.func = func;
            // Cranelift reports bad input through errors, but some malformed
            // IR that passes the verifier can still trip an assertion in
            // codegen; a JIT must not go down with it.
            let result = catch_unwind(AssertUnwindSafe(|| {
                module
                    .define_function(id, &mut ctx)
                    .map_err(|e| define_error(symbol, e))
            }));
            match result {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(e),
                Err(panic) => {
                    let message = panic
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "unknown panic".to_owned());
                    return Err(Error::Codegen {
                        function: (*symbol).to_owned(),
                        message: format!("Cranelift panicked: {message}"),
                    });
                }
            }
        }
        Ok(symbols.into_iter().map(str::to_owned).collect())
    }
}

/// Runs the IR verifier on `func`.
fn verify(func: &Function, symbol: &str, isa: &dyn TargetIsa) -> Result<(), Error> {
    verify_function(func, isa).map_err(|errors| Error::Verifier {
        function: symbol.to_owned(),
        errors: pretty_verifier_error(func, None, errors),
    })
}

fn codegen_error(symbol: &str, err: &dyn std::fmt::Display) -> Error {
    Error::Codegen {
        function: symbol.to_owned(),
        message: err.to_string(),
    }
}

fn define_error(symbol: &str, err: ModuleError) -> Error {
    match err {
        ModuleError::Compilation(CodegenError::Verifier(errors)) => Error::Verifier {
            function: symbol.to_owned(),
            errors: errors.to_string(),
        },
        ModuleError::Compilation(e) => codegen_error(symbol, &e),
        other => codegen_error(symbol, &other),
    }
}

impl Backend for CraneliftBackend {
    type Unit = ClifUnit;

    fn identity(&self) -> &BackendIdentity {
        &self.identity
    }

    fn compile(&self, unit: &ClifUnit) -> Result<CompiledObject, Error> {
        let mut builder =
            ObjectBuilder::new(self.isa.clone(), OBJECT_NAME, default_libcall_names()).map_err(
                |e| Error::UnsupportedHost {
                    message: e.to_string(),
                },
            )?;
        builder.unwind_info(self.isa.flags().unwind_info());
        let mut module = ObjectModule::new(builder);
        let symbols = self.lower(unit, &mut module)?;
        let bytes = module.finish().emit().map_err(|e| Error::Emit {
            message: e.to_string(),
        })?;
        Ok(CompiledObject::new(bytes, symbols))
    }
}
