//! Parsed and checked programs and their definitions.

use std::collections::HashMap;

use super::ast::Body;
use super::canonical;
use super::check;
use super::reader::{self, Sexp};
use crate::lisp::error::{LispError, Pos};
use crate::lisp::interface_hash;
use crate::lisp::mangle::mangle;

/// A parsed and checked program: every top-level `defn`, in source order.
///
/// Built by it; every name, arity and `recur` in it has been
/// checked, and it has a `(defn main [] ...)`.
#[derive(Clone, Debug)]
pub struct Program {
    defs: Vec<Def>,
    by_name: HashMap<String, usize>,
}

/// One top-level definition `(defn name [params] body...)`: one cache unit.
#[derive(Clone, Debug)]
pub struct Def {
    pub(crate) name: String,
    pub(crate) arity: usize,
    pub(crate) pos: Pos,
    pub(crate) form: Sexp,
    pub(crate) body: Body,
    pub(crate) callees: Vec<(String, usize)>,
    pub(crate) div_sites: Vec<Pos>,
}

impl Program {
    pub(crate) fn parse(source: &str) -> Result<Program, LispError> {
        let forms = reader::read_all(source)?;
        let defs = check::check_program(&forms, reader::end_pos(source))?;
        let by_name = defs
            .iter()
            .enumerate()
            .map(|(i, d)| (d.name.clone(), i))
            .collect();
        Ok(Program { defs, by_name })
    }

    /// Every definition, in source order.
    pub fn defs(&self) -> &[Def] {
        &self.defs
    }

    /// The definition called `name`, if there is one.
    pub fn def(&self, name: &str) -> Option<&Def> {
        self.by_name.get(name).and_then(|&i| self.defs.get(i))
    }

    /// The entry point, `(defn main [] ...)` (always present in a checked program).
    pub fn main(&self) -> Option<&Def> {
        self.def("main")
    }
}

impl Def {
    /// The definition's name as written (`fib-iter`, `even?`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The number of parameters.
    pub fn arity(&self) -> usize {
        self.arity
    }

    /// Where the definition's name is in the source.
    pub fn pos(&self) -> Pos {
        self.pos
    }

    /// The mangled ELF symbol of this definition (see it).
    pub fn symbol(&self) -> String {
        mangle(&self.name, self.arity)
    }

    /// The canonical encoding of the parsed form: the unit bytes of the
    /// definition's cache key.
    ///
    /// Whitespace, comments, the spelling of integer literals (`+7`, `007`)
    /// and the definition's place in the file do not change it; any change
    /// to the form's structure, names or values does, and so does a new
    /// it (so objects from an older code generator
    /// are never reused).
    ///
    /// Layout: `jitcache-lisp-form\0`, it as a
    /// little-endian `u32`, then the form, each datum as a tag byte and a
    /// payload (the encoding is prefix-free, hence injective):
    ///
    /// | datum | tag | payload |
    /// | --- | --- | --- |
    /// | integer | `I` | 8 bytes, little-endian two's complement |
    /// | symbol | `S` | length as a little-endian `u64`, then the UTF-8 bytes |
    /// | list `(...)` | `L` | element count as a little-endian `u64`, then the elements |
    /// | vector `[...]` | `V` | element count as a little-endian `u64`, then the elements |
    pub fn canonical(&self) -> Vec<u8> {
        canonical::encode(&self.form)
    }

    /// Every definition this one calls, as sorted, deduplicated `(name, arity)` pairs.
    ///
    /// Together with it this is the dependency
    /// material of the definition's cache key: the compiled code depends on
    /// each callee's symbol (name and arity) but not on its body.
    pub fn callees(&self) -> Vec<(String, usize)> {
        self.callees.clone()
    }

    /// The interface hashes of [`Def::callees`], in the same order.
    pub fn callee_interface_hashes(&self) -> Vec<[u8; 32]> {
        self.callees
            .iter()
            .map(|(n, a)| interface_hash(n, *a))
            .collect()
    }

    /// This definition's own interface hash: what its callers' keys depend on.
    pub fn interface_hash(&self) -> [u8; 32] {
        interface_hash(&self.name, self.arity)
    }

    /// Positions of the `/` and `mod` forms in this definition, in the order
    /// the generated code numbers them (used to report a division by zero).
    pub fn division_sites(&self) -> &[Pos] {
        &self.div_sites
    }
}
