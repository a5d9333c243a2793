//! Symbol names of a [`ClifUnit`](super::ClifUnit): checking them, and
//! rewriting test-case names into the `User` names cranelift-module needs.
//!
//! Frontends name things with `TestCase` names (plain strings); cranelift-module
//! only understands `ExternalName::User { namespace, index }`, where namespace
//! 0 indexes its declared functions and 1 its declared data objects. Each
//! function is rewritten on a copy before `define_function`.

use std::collections::HashSet;

use cranelift_codegen::ir::{
    ExternalName, FuncRef, Function, GlobalValue, GlobalValueData, UserExternalName, UserFuncName,
};
use cranelift_module::{FuncOrDataId, Linkage, Module, ModuleError};
use cranelift_object::ObjectModule;

use crate::Error;

/// Namespace of function ids in cranelift-module's `User` names.
const FUNC_NAMESPACE: u32 = 0;
/// Namespace of data ids in cranelift-module's `User` names.
const DATA_NAMESPACE: u32 = 1;

/// A symbol name from a test-case name's raw bytes.
fn symbol_str<'a>(raw: &'a [u8], function: &dyn Fn() -> String) -> Result<&'a str, Error> {
    let invalid = |message: &str| Error::InvalidName {
        function: function(),
        message: message.to_owned(),
    };
    let name = std::str::from_utf8(raw).map_err(|_| invalid("symbol name is not UTF-8"))?;
    if name.is_empty() {
        return Err(invalid("symbol name is empty"));
    }
    if name.contains('\0') {
        return Err(invalid("symbol name contains a NUL byte"));
    }
    Ok(name)
}

/// The symbol a function defines (its `Testcase` name).
///
/// `index` is the function's position in the unit, used to name it in errors
/// when its own name is unusable.
pub(crate) fn function_symbol(func: &Function, index: usize) -> Result<&str, Error> {
    let unnamed = || format!("#{index} of the unit");
    match &func.name {
        UserFuncName::Testcase(name) => symbol_str(name.raw(), &unnamed),
        UserFuncName::User(user) => Err(Error::InvalidName {
            function: format!("{user} (#{index} of the unit)"),
            message: "function has a user name (uN:M); name it with UserFuncName::testcase(symbol)"
                .to_owned(),
        }),
    }
}

/// Checks that every name in `func` follows the naming rules, so that the
/// function can also be printed (Cranelift's printer expects UTF-8 names).
pub(crate) fn check_printable(func: &Function, index: usize) -> Result<(), Error> {
    let symbol = function_symbol(func, index)?;
    let owner = || symbol.to_owned();
    for data in func.dfg.ext_funcs.values() {
        check_external(&data.name, &owner)?;
    }
    for data in func.global_values.values() {
        if let GlobalValueData::Symbol { name, .. } = data {
            check_external(name, &owner)?;
        }
    }
    Ok(())
}

fn check_external(name: &ExternalName, owner: &dyn Fn() -> String) -> Result<(), Error> {
    match name {
        ExternalName::TestCase(name) => symbol_str(name.raw(), owner).map(|_| ()),
        ExternalName::User(_) => Err(Error::InvalidName {
            function: owner(),
            message: "external reference has a user name (userextnameN); \
                      name it with ExternalName::testcase(symbol)"
                .to_owned(),
        }),
        ExternalName::LibCall(_) | ExternalName::KnownSymbol(_) => Ok(()),
    }
}

/// Maps a cranelift-module declaration error to this crate's error.
fn declaration_error(function: &str, symbol: &str, err: ModuleError) -> Error {
    let message = match err {
        ModuleError::IncompatibleSignature(_, previous, new) => format!(
            "signature {new} does not match the earlier declaration or definition {previous}"
        ),
        ModuleError::IncompatibleDeclaration(_) => {
            "used both as a function and as a data object".to_owned()
        }
        other => other.to_string(),
    };
    Error::Declaration {
        function: function.to_owned(),
        symbol: symbol.to_owned(),
        message,
    }
}

/// Rewrites the `TestCase` names of `func`'s external functions into
/// module-declared function ids, declaring imports as needed. Functions
/// defined in the unit (`defined`) are already declared and are called
/// directly (colocated).
pub(crate) fn rewrite_ext_funcs(
    func: &mut Function,
    owner: &str,
    module: &mut ObjectModule,
    defined: &HashSet<&str>,
) -> Result<(), Error> {
    let refs: Vec<FuncRef> = func.dfg.ext_funcs.keys().collect();
    for fref in refs {
        let data = &func.dfg.ext_funcs[fref];
        let ExternalName::TestCase(name) = &data.name else {
            continue;
        };
        let symbol = symbol_str(name.raw(), &|| owner.to_owned())?.to_owned();
        let local = defined.contains(symbol.as_str());
        let linkage = if local {
            Linkage::Export
        } else {
            Linkage::Import
        };
        let signature = func.dfg.signatures[data.signature].clone();
        let id = module
            .declare_function(&symbol, linkage, &signature)
            .map_err(|e| declaration_error(owner, &symbol, e))?;
        let user =
            func.declare_imported_user_function(UserExternalName::new(FUNC_NAMESPACE, id.as_u32()));
        let data = &mut func.dfg.ext_funcs[fref];
        data.name = ExternalName::user(user);
        if local {
            data.colocated = true;
        }
    }
    Ok(())
}

/// Rewrites the `TestCase` names of `func`'s symbol global values: a function
/// already declared in the module is referenced as that function; any other
/// name becomes an imported data object.
pub(crate) fn rewrite_global_values(
    func: &mut Function,
    owner: &str,
    module: &mut ObjectModule,
    defined: &HashSet<&str>,
) -> Result<(), Error> {
    let gvs: Vec<GlobalValue> = func.global_values.keys().collect();
    for gv in gvs {
        let GlobalValueData::Symbol {
            name: ExternalName::TestCase(name),
            tls,
            ..
        } = &func.global_values[gv]
        else {
            continue;
        };
        let tls = *tls;
        let symbol = symbol_str(name.raw(), &|| owner.to_owned())?.to_owned();
        let (namespace, index) = match module.get_name(&symbol) {
            Some(FuncOrDataId::Func(id)) => {
                if tls {
                    return Err(declaration_error(
                        owner,
                        &symbol,
                        ModuleError::IncompatibleDeclaration(symbol.clone()),
                    ));
                }
                (FUNC_NAMESPACE, id.as_u32())
            }
            Some(FuncOrDataId::Data(id)) => {
                // cranelift-module asserts (panics) when a TLS declaration
                // changes, so check it here.
                if module.declarations().get_data_decl(id).tls != tls {
                    return Err(Error::Declaration {
                        function: owner.to_owned(),
                        symbol,
                        message: "declared both as a thread-local and as a normal data object"
                            .to_owned(),
                    });
                }
                (DATA_NAMESPACE, id.as_u32())
            }
            None => {
                let id = module
                    .declare_data(&symbol, Linkage::Import, false, tls)
                    .map_err(|e| declaration_error(owner, &symbol, e))?;
                (DATA_NAMESPACE, id.as_u32())
            }
        };
        let local = defined.contains(symbol.as_str());
        let user = func.declare_imported_user_function(UserExternalName::new(namespace, index));
        if let GlobalValueData::Symbol {
            name, colocated, ..
        } = &mut func.global_values[gv]
        {
            *name = ExternalName::user(user);
            if local {
                *colocated = true;
            }
        }
    }
    Ok(())
}
