//! Parsed and checked programs and their definitions.
//!
//! A program keeps the canonical bytes of its forms (which are also its
//! tree) and every definition's other key material (callees and their
//! interface hashes, division sites) in one shared, immutable block; a
//! [`Def`] is a handle on one definition of it. Checked bodies for code
//! generation are built on first use, so a program whose code comes from a
//! cache never builds them.

use std::fmt;
use std::ops::Range;
use std::sync::{Arc, OnceLock};

use super::ast::Body;
use super::check::{self, name_of};
use super::error::{LispError, Pos};
use super::interface_hash;
use super::mangle::mangle;
use super::names::NameTable;
use super::reader;

/// A parsed and checked program: every top-level `defn`, in source order.
///
/// Built by [`super::parse`]; every name, arity and `recur` in it has been
/// checked, and it has a `(defn main [] ...)`.
#[derive(Clone)]
pub struct Program {
    shared: Arc<Shared>,
    defs: Vec<Def>,
}

/// One top-level definition `(defn name [params] body...)`: one cache unit.
#[derive(Clone)]
pub struct Def {
    shared: Arc<Shared>,
    index: usize,
    /// The checked body, built when code is generated.
    body: OnceLock<Box<Body>>,
}

/// What a definition's accessors return, as ranges of [`Shared`].
#[derive(Clone, Debug)]
pub(crate) struct DefData {
    /// The name's bytes, in [`Shared::canon`].
    pub name: Range<usize>,
    pub arity: usize,
    /// Where the name is in the source.
    pub pos: Pos,
    /// Where the first parameter starts, in [`Shared::canon`].
    pub params_at: usize,
    /// Where the body starts, in [`Shared::canon`], and how many forms it has.
    pub body_at: usize,
    pub body_len: usize,
    /// The canonical bytes, in [`Shared::canon`].
    pub canon: Range<usize>,
    /// The callees, in [`Shared::callees`] and [`Shared::callee_hashes`].
    pub callees: Range<usize>,
    /// The `/` and `mod` forms, in [`Shared::div_sites`].
    pub div_sites: Range<usize>,
}

/// Everything a program's definitions share.
pub(crate) struct Shared {
    canon: Vec<u8>,
    defs: Vec<DefData>,
    names: NameTable,
    callees: Vec<u32>,
    callee_hashes: Vec<[u8; 32]>,
    div_sites: Vec<Pos>,
}

impl Shared {
    fn def(&self, index: usize) -> Option<&DefData> {
        self.defs.get(index)
    }

    /// The name of `d`.
    fn name(&self, d: &DefData) -> &str {
        // Names are ASCII: the reader accepts nothing else in symbols.
        std::str::from_utf8(self.canon.get(d.name.clone()).unwrap_or_default()).unwrap_or_default()
    }

    /// Each definition's name, arity and division sites, in source order.
    pub(crate) fn def_infos(&self) -> impl Iterator<Item = (&str, usize, &[Pos])> {
        self.defs.iter().map(|d| {
            (
                self.name(d),
                d.arity,
                self.div_sites.get(d.div_sites.clone()).unwrap_or_default(),
            )
        })
    }
}

impl Program {
    pub(crate) fn parse(source: &str) -> Result<Program, LispError> {
        let forms = reader::read(source)?;
        let checked = check::check_program(source, &forms)?;
        let shared = Arc::new(Shared {
            canon: forms.canon,
            defs: checked.defs,
            names: checked.names,
            callees: checked.callees,
            callee_hashes: checked.callee_hashes,
            div_sites: checked.div_sites,
        });
        let defs = (0..shared.defs.len())
            .map(|index| Def {
                shared: Arc::clone(&shared),
                index,
                body: OnceLock::new(),
            })
            .collect();
        Ok(Program { shared, defs })
    }

    /// Every definition, in source order.
    pub fn defs(&self) -> &[Def] {
        &self.defs
    }

    /// The definition called `name`, if there is one.
    pub fn def(&self, name: &str) -> Option<&Def> {
        let shared = &*self.shared;
        let i = shared
            .names
            .get(name.as_bytes(), |i| name_of(&shared.defs, &shared.canon, i))?;
        self.defs.get(i as usize)
    }

    /// The entry point, `(defn main [] ...)` (always present in a checked program).
    pub fn main(&self) -> Option<&Def> {
        self.def("main")
    }

    /// The program's shared block (for the runtime's registry).
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }
}

impl fmt::Debug for Program {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Program").field("defs", &self.defs).finish()
    }
}

/// Placeholder for a definition whose index is out of range (never happens:
/// definitions are only made by [`Program::parse`]).
const NO_DEF: DefData = DefData {
    name: 0..0,
    arity: 0,
    pos: Pos::new(1, 1),
    params_at: 0,
    body_at: 0,
    body_len: 0,
    canon: 0..0,
    callees: 0..0,
    div_sites: 0..0,
};

impl Def {
    fn data(&self) -> &DefData {
        self.shared.def(self.index).unwrap_or(&NO_DEF)
    }

    /// The definition's name as written (`fib-iter`, `even?`).
    pub fn name(&self) -> &str {
        self.shared.name(self.data())
    }

    /// The number of parameters.
    pub fn arity(&self) -> usize {
        self.data().arity
    }

    /// Where the definition's name is in the source.
    pub fn pos(&self) -> Pos {
        self.data().pos
    }

    /// The mangled ELF symbol of this definition (see [`super::mangle_symbol`]).
    pub fn symbol(&self) -> String {
        mangle(self.name(), self.arity())
    }

    /// The canonical encoding of the parsed form: the unit bytes of the
    /// definition's cache key (a copy of [`Def::canonical_bytes`]).
    ///
    /// Whitespace, comments, the spelling of integer literals (`+7`, `007`)
    /// and the definition's place in the file do not change it; any change
    /// to the form's structure, names or values does, and so does a new
    /// [`super::CODEGEN_VERSION`] (so objects from an older code generator
    /// are never reused).
    ///
    /// Layout: `jitcache-lisp-form\0`, [`super::CODEGEN_VERSION`] as a
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
        self.canonical_bytes().to_vec()
    }

    /// The canonical encoding of the parsed form (see [`Def::canonical`]),
    /// borrowed: computed once, when the program was parsed.
    pub fn canonical_bytes(&self) -> &[u8] {
        self.shared
            .canon
            .get(self.data().canon.clone())
            .unwrap_or_default()
    }

    /// Every definition this one calls, as sorted, deduplicated `(name, arity)` pairs.
    ///
    /// Together with [`super::interface_hash`] this is the dependency
    /// material of the definition's cache key: the compiled code depends on
    /// each callee's symbol (name and arity) but not on its body.
    pub fn callees(&self) -> Vec<(String, usize)> {
        let shared = &*self.shared;
        shared
            .callees
            .get(self.data().callees.clone())
            .unwrap_or_default()
            .iter()
            .filter_map(|&c| shared.def(c as usize))
            .map(|d| (shared.name(d).to_owned(), d.arity))
            .collect()
    }

    /// The interface hashes of [`Def::callees`], in the same order (a copy
    /// of [`Def::callee_hashes`]).
    pub fn callee_interface_hashes(&self) -> Vec<[u8; 32]> {
        self.callee_hashes().to_vec()
    }

    /// The interface hashes of [`Def::callees`], in the same order,
    /// borrowed: computed once, when the program was parsed.
    pub fn callee_hashes(&self) -> &[[u8; 32]] {
        self.shared
            .callee_hashes
            .get(self.data().callees.clone())
            .unwrap_or_default()
    }

    /// This definition's own interface hash: what its callers' keys depend on.
    pub fn interface_hash(&self) -> [u8; 32] {
        interface_hash(self.name(), self.arity())
    }

    /// Positions of the `/` and `mod` forms in this definition, in the order
    /// the generated code numbers them (used to report a division by zero).
    pub fn division_sites(&self) -> &[Pos] {
        self.shared
            .div_sites
            .get(self.data().div_sites.clone())
            .unwrap_or_default()
    }

    /// The checked body, for code generation (built on first use).
    pub(crate) fn body(&self) -> Result<&Body, LispError> {
        if let Some(body) = self.body.get() {
            return Ok(body);
        }
        let shared = &*self.shared;
        let body = check::build_body(&shared.canon, &shared.defs, &shared.names, self.index)?;
        Ok(self.body.get_or_init(|| Box::new(body)))
    }
}

impl fmt::Debug for Def {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Def")
            .field("name", &self.name())
            .field("arity", &self.arity())
            .field("pos", &self.pos())
            .field("callees", &self.callees())
            .field("div_sites", &self.division_sites())
            .finish()
    }
}
