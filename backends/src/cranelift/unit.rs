//! [`ClifUnit`]: the functions Cranelift compiles into one object.

use std::fmt::Write as _;

use cranelift_codegen::ir::Function;
use cranelift_codegen::isa::CallConv;
use cranelift_reader::ParseOptions;

use super::names;
use crate::Error;

/// A group of Cranelift IR functions compiled together into one object.
///
/// # Naming rules (what a frontend must produce)
///
/// - Every function is named `UserFuncName::Testcase(symbol)`, i.e.
///   `UserFuncName::testcase("my_symbol")` (in CLIF text: `function %my_symbol`).
///   The symbol must be non-empty UTF-8 without NUL bytes, and unique within
///   the unit. Each function is exported under that symbol.
/// - A call to another function (in this unit or elsewhere) goes through an
///   entry of `dfg.ext_funcs` named `ExternalName::TestCase(symbol)`
///   (`ExternalName::testcase("callee")`; in CLIF text `fn0 = %callee(i64) -> i64`),
///   whose signature must equal the callee's when the callee is in the unit.
///   Symbols not defined in the unit become undefined (imported) symbols,
///   resolved when the object is loaded.
/// - A data symbol is a `GlobalValueData::Symbol` named
///   `ExternalName::TestCase(symbol)` (in CLIF text `gv0 = symbol %name`); it
///   becomes an imported data symbol (or the address of a function of the unit
///   if the name is one). Units cannot define data.
/// - `ExternalName::LibCall` and `ExternalName::KnownSymbol` are allowed and
///   become the usual libcall / linker symbols. `ExternalName::User` and
///   `UserFuncName::User` names are rejected with [`Error::InvalidName`]: this
///   crate keeps no name table for them.
///
/// Calls between functions of the same unit are always emitted as direct
/// PC-relative calls. For imported symbols the `colocated` flag of the
/// declaration is kept as given: `colocated: true` asks for a PC-relative
/// call (`R_X86_64_PLT32`-style, so the linker needs the target within
/// ±2 GiB or a stub), `false` for an absolute address (`R_X86_64_64`) or, with
/// PIC, a GOT entry.
///
/// # Examples
///
/// ```
/// use jitcache_backends::ClifUnit;
///
/// let unit = ClifUnit::parse(
///     "function %twice(i64) -> i64 {
///          fn0 = %helper(i64) -> i64
///      block0(v0: i64):
///          v1 = call fn0(v0)
///          v2 = iadd v1, v1
///          return v2
///      }",
/// )?;
/// assert_eq!(unit.symbols()?, ["twice"]);
/// # Ok::<(), jitcache_backends::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClifUnit {
    /// The functions, in the order they are placed in the object.
    pub functions: Vec<Function>,
}

impl ClifUnit {
    /// A unit made of `functions`.
    pub fn new(functions: Vec<Function>) -> Self {
        ClifUnit { functions }
    }

    /// Parses CLIF text (as written by `clif-util` or [`ClifUnit::to_text`])
    /// into a unit.
    ///
    /// Functions without an explicit calling convention get the host's
    /// default C calling convention (`system_v` on x86-64 Linux), so that
    /// the host can call them; `test`, `set` and `target` lines are accepted
    /// but ignored (the backend's configuration decides how code is
    /// generated).
    ///
    /// # Errors
    ///
    /// [`Error::ClifParse`] with the line of the first error.
    pub fn parse(text: &str) -> Result<ClifUnit, Error> {
        let options = ParseOptions {
            default_calling_convention: host_call_conv(),
            ..ParseOptions::default()
        };
        let file = cranelift_reader::parse_test(text, options).map_err(|e| Error::ClifParse {
            line: e.location.line_number,
            message: e.message,
        })?;
        Ok(ClifUnit {
            functions: file.functions.into_iter().map(|(f, _)| f).collect(),
        })
    }

    /// The symbols the unit defines, in order.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`] if a function's name breaks the naming rules.
    pub fn symbols(&self) -> Result<Vec<&str>, Error> {
        self.functions
            .iter()
            .enumerate()
            .map(|(i, f)| names::function_symbol(f, i))
            .collect()
    }

    /// The unit as CLIF text, one function after the other; parsing it back
    /// gives an equivalent unit. Useful as the unit's bytes in a cache key
    /// when the functions were built in memory.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`] if a name is not printable (not UTF-8).
    pub fn to_text(&self) -> Result<String, Error> {
        let mut out = String::new();
        for (i, f) in self.functions.iter().enumerate() {
            names::check_printable(f, i)?;
            // Writing to a String cannot fail.
            let _ = writeln!(out, "{}", f.display());
        }
        Ok(out)
    }
}

/// The host's default calling convention (what C code uses).
pub(crate) fn host_call_conv() -> CallConv {
    match cranelift_native::builder_with_options(false) {
        Ok(builder) => CallConv::triple_default(builder.triple()),
        Err(_) => CallConv::Fast,
    }
}
