//! The checker: resolves names, checks arities and `recur`, and builds the
//! checked bodies code generation works from.
//!
//! [`check_program`] checks every definition and collects what a cache key
//! needs (callees, division sites), without building bodies; [`build_body`]
//! builds one definition's body when it is compiled. Both run the same
//! [`Checker`], which builds expressions only when `BUILD` is set, so what is
//! accepted and what is built cannot drift apart.

use super::ast::{Body, Expr, LoopId, LoopInfo, PrimOp, RecurTarget, VarId};
use super::canonical::{Cursor, Datum};
use super::error::{LispError, LispErrorKind, Pos};
use super::interface_hash_of;
use super::mangle::mangle;
use super::names::NameTable;
use super::program::DefData;
use super::reader::{self, Forms, Top};

/// Whether `name` is a special form (`defn let if do loop recur`), a
/// built-in (`+ - * / mod < <= > >= = not and or println`), or otherwise
/// unbindable (`&`).
pub(crate) fn is_reserved(name: &[u8]) -> bool {
    matches!(
        name,
        b"&" | b"defn"
            | b"let"
            | b"if"
            | b"do"
            | b"loop"
            | b"recur"
            | b"+"
            | b"-"
            | b"*"
            | b"/"
            | b"mod"
            | b"<"
            | b"<="
            | b">"
            | b">="
            | b"="
            | b"not"
            | b"and"
            | b"or"
            | b"println"
    )
}

fn bad(at: usize, msg: &str) -> Fail {
    Fail::new(at, LispErrorKind::BadForm(msg.to_owned()))
}

fn arity_err(at: usize, name: &[u8], expected: &str, got: usize) -> Fail {
    Fail::new(
        at,
        LispErrorKind::Arity {
            name: text(name),
            expected: expected.to_owned(),
            got,
        },
    )
}

/// Bytes that are not a canonical encoding (never: the reader wrote them).
fn corrupt(at: usize) -> Fail {
    Fail::new(
        at,
        LispErrorKind::Codegen("malformed canonical form".to_owned()),
    )
}

/// A symbol's name as a string (symbols are ASCII).
fn text(name: &[u8]) -> String {
    String::from_utf8_lossy(name).into_owned()
}

/// An error found by the checker, at the datum starting at `at` in the
/// canonical bytes (placed in the source afterwards).
pub(crate) struct Fail {
    at: usize,
    kind: LispErrorKind,
}

impl Fail {
    fn new(at: usize, kind: LispErrorKind) -> Fail {
        Fail { at, kind }
    }
}

/// The position in `source` of the datum starting at `at` in its canonical bytes.
fn position(source: &str, at: usize) -> Pos {
    match reader::positions(source) {
        Ok((_, positions)) => match positions.binary_search_by_key(&at, |&(a, _)| a) {
            Ok(i) => positions.get(i).map_or(Pos::new(1, 1), |&(_, pos)| pos),
            Err(_) => Pos::new(1, 1),
        },
        Err(e) => e.pos,
    }
}

/// Checks a name that is being bound (definition, parameter, local).
fn check_binder<'a>(c: &mut Cursor<'a>, what: &str) -> Result<&'a [u8], Fail> {
    let at = c.at;
    match c.next() {
        Some(Datum::Sym(name)) if is_reserved(name) => {
            Err(Fail::new(at, LispErrorKind::ReservedName(text(name))))
        }
        Some(Datum::Sym(name)) => Ok(name),
        Some(_) => Err(bad(at, &format!("{what} must be a symbol"))),
        None => Err(corrupt(at)),
    }
}

/// The header of a definition (what callers need to know), from its form.
fn header(canon: &[u8], top: &Top) -> Result<DefData, Fail> {
    const SHAPE: &str = "only `(defn name [params] body...)` is allowed at top level";
    let form_at = top.datum();
    let mut c = Cursor::new(canon, form_at);
    let len = match c.next() {
        Some(Datum::List(len)) => len,
        Some(_) => return Err(bad(form_at, SHAPE)),
        None => return Err(corrupt(form_at)),
    };
    if len == 0 || c.next() != Some(Datum::Sym(b"defn")) {
        return Err(bad(form_at, SHAPE));
    }
    if len < 2 {
        return Err(bad(form_at, "`defn` needs a name and a parameter vector"));
    }
    let name_at = c.at;
    let name = check_binder(&mut c, "a definition's name")?;
    if len < 3 {
        return Err(bad(
            form_at,
            &format!(
                "`(defn {} ...)` needs a parameter vector `[...]`",
                text(name)
            ),
        ));
    }
    let params_at = c.at;
    let arity = match c.next() {
        Some(Datum::Vector(n)) => n,
        Some(_) => {
            return Err(bad(
                params_at,
                &format!(
                    "`(defn {} ...)` needs a parameter vector `[...]` after the name",
                    text(name)
                ),
            ));
        }
        None => return Err(corrupt(params_at)),
    };
    let first_param = c.at;
    for k in 0..arity {
        let at = c.at;
        let pname = check_binder(&mut c, "a parameter")?;
        let mut earlier = Cursor::new(canon, first_param);
        for _ in 0..k {
            if earlier.next() == Some(Datum::Sym(pname)) {
                return Err(Fail::new(
                    at,
                    LispErrorKind::DuplicateParameter(text(pname)),
                ));
            }
        }
    }
    // A symbol's bytes follow its tag and length.
    let name_start = name_at + 9;
    Ok(DefData {
        name: name_start..name_start + name.len(),
        arity,
        pos: top.name_pos,
        params_at: first_param,
        body_at: c.at,
        body_len: len - 3,
        canon: top.canon_start..top.canon_end,
        callees: 0..0,
        div_sites: 0..0,
    })
}

/// The definitions of a checked program and the tables their [`DefData`]
/// ranges point into.
pub(crate) struct Checked {
    pub defs: Vec<DefData>,
    pub names: NameTable,
    /// Every definition's callees (indices into `defs`), sorted by name.
    pub callees: Vec<u32>,
    /// The interface hash of each entry of `callees`.
    pub callee_hashes: Vec<[u8; 32]>,
    /// Every definition's `/` and `mod` forms.
    pub div_sites: Vec<Pos>,
}

/// The name of definition `index` of `defs`, whose names are in `canon`.
pub(crate) fn name_of<'c>(defs: &[DefData], canon: &'c [u8], index: u32) -> &'c [u8] {
    defs.get(index as usize)
        .and_then(|d| canon.get(d.name.clone()))
        .unwrap_or_default()
}

/// Checks every top-level form read from `source` and returns the definitions
/// in source order.
pub(crate) fn check_program(source: &str, forms: &Forms) -> Result<Checked, LispError> {
    let place = |f: Fail| LispError::new(position(source, f.at), f.kind);
    let canon = forms.canon.as_slice();
    let mut defs: Vec<DefData> = Vec::with_capacity(forms.tops.len());
    let mut names = NameTable::with_capacity(forms.tops.len());
    for top in &forms.tops {
        let d = header(canon, top).map_err(place)?;
        let index = u32::try_from(defs.len()).unwrap_or(u32::MAX);
        let name = canon.get(d.name.clone()).unwrap_or_default();
        if let Err(first) = names.insert(name, index, |i| name_of(&defs, canon, i)) {
            let first = defs.get(first as usize).map_or(d.pos, |f| f.pos);
            return Err(LispError::new(
                d.pos,
                LispErrorKind::DuplicateDefinition {
                    name: text(name),
                    first,
                },
            ));
        }
        defs.push(d);
    }
    let mut cx = Checker::<false>::new(canon, &defs, &names);
    cx.seen = vec![0; defs.len()];
    // Where each definition's callees and division sites end.
    let mut ends = Vec::with_capacity(defs.len());
    for (i, d) in defs.iter().enumerate() {
        cx.current = u32::try_from(i + 1).unwrap_or(u32::MAX);
        let callees_start = cx.callees.len();
        cx.def(d).map_err(place)?;
        let own = cx.callees.get_mut(callees_start..).unwrap_or_default();
        own.sort_unstable_by(|&a, &b| name_of(&defs, canon, a).cmp(name_of(&defs, canon, b)));
        ends.push((cx.callees.len(), cx.div_sites.len()));
    }
    let Checker {
        callees, div_sites, ..
    } = cx;
    match names.get(b"main", |i| name_of(&defs, canon, i)) {
        None => return Err(LispError::new(forms.end, LispErrorKind::NoMain)),
        Some(i) => match defs.get(i as usize) {
            Some(main) if main.arity != 0 => {
                return Err(LispError::new(
                    main.pos,
                    LispErrorKind::MainArity(main.arity),
                ));
            }
            _ => {}
        },
    }
    let mut starts = (0, 0);
    for (d, ends) in defs.iter_mut().zip(ends) {
        d.callees = starts.0..ends.0;
        d.div_sites = starts.1..ends.1;
        starts = ends;
    }
    let div_sites = place_divisions(source, forms, &div_sites);
    // Each definition's interface hash, computed once however many call it:
    // `first[c]` is where it was first put in `callee_hashes`.
    let mut first = vec![u32::MAX; defs.len()];
    let mut callee_hashes: Vec<[u8; 32]> = Vec::with_capacity(callees.len());
    for &c in &callees {
        let earlier = first
            .get(c as usize)
            .and_then(|&i| callee_hashes.get(i as usize))
            .copied();
        let h = match earlier {
            Some(h) => h,
            None => {
                if let Some(slot) = first.get_mut(c as usize) {
                    *slot = u32::try_from(callee_hashes.len()).unwrap_or(u32::MAX);
                }
                let arity = defs.get(c as usize).map_or(0, |d| d.arity);
                interface_hash_of(name_of(&defs, canon, c), arity)
            }
        };
        callee_hashes.push(h);
    }
    Ok(Checked {
        defs,
        names,
        callees,
        callee_hashes,
        div_sites,
    })
}

/// The positions of the `/` and `mod` forms starting at `sites` in the
/// canonical bytes (in increasing order), from those the reader recorded.
fn place_divisions(source: &str, forms: &Forms, sites: &[usize]) -> Vec<Pos> {
    let mut recorded = forms.div_lists.iter().peekable();
    let mut out = Vec::with_capacity(sites.len());
    for &at in sites {
        while recorded.next_if(|&&(a, _)| a < at).is_some() {}
        match recorded.peek() {
            Some(&&(a, pos)) if a == at => out.push(pos),
            // Every checked division is a list whose first element is `/`
            // or `mod`, which the reader records; placed the slow way if not.
            _ => out.push(position(source, at)),
        }
    }
    out
}

/// Builds the body of `defs[index]`, a definition of a program that
/// [`check_program`] accepted, whose canonical bytes are `canon`.
pub(crate) fn build_body(
    canon: &[u8],
    defs: &[DefData],
    names: &NameTable,
    index: usize,
) -> Result<Body, LispError> {
    let Some(d) = defs.get(index) else {
        return Err(LispError::new(
            Pos::new(1, 1),
            LispErrorKind::Codegen(format!("no definition number {index}")),
        ));
    };
    let mut cx = Checker::<true>::new(canon, defs, names);
    // The program was checked: no error is expected here.
    let exprs = cx.def(d).map_err(|f| LispError::new(d.pos, f.kind))?;
    Ok(Body {
        num_vars: cx.num_vars,
        loops: cx.loops,
        exprs,
        recurs_to_function: cx.recurs_to_function,
    })
}

/// Checks definitions one after the other; builds expressions if `BUILD`,
/// else returns placeholders and records each definition's callees.
struct Checker<'a, 't, const BUILD: bool> {
    canon: &'a [u8],
    defs: &'t [DefData],
    names: &'t NameTable,
    /// Locals in scope, innermost last.
    scope: Vec<(&'a [u8], VarId)>,
    num_vars: usize,
    /// How many bindings each loop has, by [`LoopId`].
    loop_arities: Vec<usize>,
    /// The loops (built only if `BUILD`).
    loops: Vec<LoopInfo>,
    /// Callees of every definition checked so far (not if `BUILD`).
    callees: Vec<u32>,
    /// For each definition, `current` if it is already among the current
    /// definition's callees (not if `BUILD`).
    seen: Vec<u32>,
    /// 1 + the index of the definition being checked.
    current: u32,
    /// Where the `/` and `mod` forms of every definition checked so far
    /// start in the canonical bytes.
    div_sites: Vec<usize>,
    /// Where the current definition's `div_sites` start.
    div_start: usize,
    recurs_to_function: bool,
    /// The definition's arity (what a `recur` to the function takes).
    arity: usize,
}

impl<'a, 't, const BUILD: bool> Checker<'a, 't, BUILD> {
    fn new(canon: &'a [u8], defs: &'t [DefData], names: &'t NameTable) -> Self {
        Checker {
            canon,
            defs,
            names,
            scope: Vec::new(),
            num_vars: 0,
            loop_arities: Vec::new(),
            loops: Vec::new(),
            callees: Vec::new(),
            seen: Vec::new(),
            current: 0,
            div_sites: Vec::new(),
            div_start: 0,
            recurs_to_function: false,
            arity: 0,
        }
    }

    /// `e()` if building, else a placeholder.
    fn make(e: impl FnOnce() -> Expr) -> Expr {
        if BUILD {
            e()
        } else {
            // Without `BUILD` every expression is a placeholder, a literal or
            // a variable, and every vector is empty: nothing `e` holds owns
            // memory, so forgetting it leaks nothing and saves running drop
            // glue over every checked form.
            std::mem::forget(e);
            Expr::Int(0)
        }
    }

    /// Keeps `e` in `out` if building, else discards it (see [`Self::make`]).
    fn keep<T>(out: &mut Vec<T>, e: T) {
        if BUILD {
            out.push(e);
        } else {
            std::mem::forget(e);
        }
    }

    /// Checks the definition `d` and returns its body's expressions.
    fn def(&mut self, d: &DefData) -> Result<Vec<Expr>, Fail> {
        self.scope.clear();
        self.num_vars = 0;
        self.loop_arities.clear();
        self.loops.clear();
        self.recurs_to_function = false;
        self.arity = d.arity;
        self.div_start = self.div_sites.len();
        let mut params = Cursor::new(self.canon, d.params_at);
        for _ in 0..d.arity {
            let at = params.at;
            let Some(Datum::Sym(name)) = params.next() else {
                return Err(corrupt(at));
            };
            let v = self.fresh();
            self.scope.push((name, v));
        }
        let mut c = Cursor::new(self.canon, d.body_at);
        self.body(&mut c, d.body_len, Some(RecurTarget::Function))
    }

    fn fresh(&mut self) -> VarId {
        let v = self.num_vars;
        self.num_vars += 1;
        v
    }

    fn local(&self, name: &[u8]) -> Option<VarId> {
        self.scope
            .iter()
            .rev()
            .find(|(n, _)| *n == name)
            .map(|&(_, v)| v)
    }

    /// The index and arity of the definition `name`.
    fn definition(&self, name: &[u8]) -> Option<(u32, usize)> {
        let (canon, defs) = (self.canon, self.defs);
        let i = self.names.get(name, |i| name_of(defs, canon, i))?;
        Some((i, defs.get(i as usize)?.arity))
    }

    /// The next `n` expressions; the last one is in tail position if `tail` is set.
    fn body(
        &mut self,
        c: &mut Cursor<'a>,
        n: usize,
        tail: Option<RecurTarget>,
    ) -> Result<Vec<Expr>, Fail> {
        let mut out = Vec::with_capacity(if BUILD { n } else { 0 });
        for i in 0..n {
            let t = if i + 1 == n { tail } else { None };
            let e = self.expr(c, t)?;
            Self::keep(&mut out, e);
        }
        Ok(out)
    }

    /// The next `n` expressions, none in tail position.
    fn args(&mut self, c: &mut Cursor<'a>, n: usize) -> Result<Vec<Expr>, Fail> {
        self.body(c, n, None)
    }

    /// The next expression.
    fn expr(&mut self, c: &mut Cursor<'a>, tail: Option<RecurTarget>) -> Result<Expr, Fail> {
        let at = c.at;
        match c.next() {
            Some(Datum::Int(v)) => Ok(Expr::Int(v)),
            Some(Datum::Sym(name)) => {
                if let Some(v) = self.local(name) {
                    Ok(Expr::Var(v))
                } else if self.definition(name).is_some() || is_reserved(name) {
                    Err(Fail::new(at, LispErrorKind::NotAValue(text(name))))
                } else {
                    Err(Fail::new(at, LispErrorKind::UnknownName(text(name))))
                }
            }
            Some(Datum::Vector(_)) => Err(bad(
                at,
                "a vector `[...]` is only allowed as a parameter or binding list",
            )),
            Some(Datum::List(len)) => self.list(at, len, c, tail),
            None => Err(corrupt(at)),
        }
    }

    /// The list of `len` elements starting at `at`, whose elements `c` is on.
    fn list(
        &mut self,
        at: usize,
        len: usize,
        c: &mut Cursor<'a>,
        tail: Option<RecurTarget>,
    ) -> Result<Expr, Fail> {
        if len == 0 {
            return Err(bad(at, "the empty list `()` is not an expression"));
        }
        let head_at = c.at;
        let name = match c.next() {
            Some(Datum::Sym(name)) => name,
            Some(_) => {
                return Err(bad(
                    head_at,
                    "the first element of a form must be the name of a function or special form",
                ));
            }
            None => return Err(corrupt(head_at)),
        };
        let rest = len - 1;
        if self.local(name).is_some() {
            return Err(Fail::new(head_at, LispErrorKind::NotAFunction(text(name))));
        }
        let op = match name {
            b"defn" => return Err(bad(at, "`defn` is only allowed at top level")),
            b"let" => return self.let_form(at, rest, c, tail),
            b"loop" => return self.loop_form(at, rest, c),
            b"if" => {
                if !(2..=3).contains(&rest) {
                    return Err(arity_err(at, b"if", "2 or 3", rest));
                }
                let cond = self.expr(c, None)?;
                let then = self.expr(c, tail)?;
                let els = if rest == 3 {
                    self.expr(c, tail)?
                } else {
                    Expr::Int(0)
                };
                return Ok(Self::make(|| Expr::If {
                    cond: Box::new(cond),
                    then: Box::new(then),
                    els: Box::new(els),
                }));
            }
            b"do" => {
                let body = self.body(c, rest, tail)?;
                return Ok(Self::make(|| Expr::Do(body)));
            }
            b"recur" => {
                let Some(target) = tail else {
                    return Err(Fail::new(at, LispErrorKind::RecurNotInTail));
                };
                let expected = match target {
                    RecurTarget::Function => self.arity,
                    RecurTarget::Loop(id) => self.loop_arities.get(id).copied().unwrap_or(0),
                };
                if rest != expected {
                    return Err(Fail::new(
                        at,
                        LispErrorKind::RecurArity {
                            expected,
                            got: rest,
                        },
                    ));
                }
                if target == RecurTarget::Function {
                    self.recurs_to_function = true;
                }
                let args = self.args(c, rest)?;
                return Ok(Self::make(|| Expr::Recur { target, args }));
            }
            b"and" => {
                let args = self.args(c, rest)?;
                return Ok(Self::make(|| Expr::And(args)));
            }
            b"or" => {
                let args = self.args(c, rest)?;
                return Ok(Self::make(|| Expr::Or(args)));
            }
            b"println" => {
                let args = self.args(c, rest)?;
                return Ok(Self::make(|| Expr::Println(args)));
            }
            b"+" => Some(PrimOp::Add),
            b"*" => Some(PrimOp::Mul),
            b"-" => Some(PrimOp::Sub),
            b"/" => Some(PrimOp::Div),
            b"mod" => Some(PrimOp::Mod),
            b"<" => Some(PrimOp::Lt),
            b"<=" => Some(PrimOp::Le),
            b">" => Some(PrimOp::Gt),
            b">=" => Some(PrimOp::Ge),
            b"=" => Some(PrimOp::Eq),
            b"not" => Some(PrimOp::Not),
            _ => None,
        };
        if let Some(op) = op {
            let (ok, expected) = match op {
                PrimOp::Add | PrimOp::Mul => (true, "any number"),
                PrimOp::Sub => (rest != 0, "at least 1"),
                PrimOp::Div => (rest >= 2, "at least 2"),
                PrimOp::Mod => (rest == 2, "2"),
                PrimOp::Not => (rest == 1, "1"),
                PrimOp::Lt | PrimOp::Le | PrimOp::Gt | PrimOp::Ge | PrimOp::Eq => {
                    (rest != 0, "at least 1")
                }
            };
            if !ok {
                return Err(arity_err(at, name, expected, rest));
            }
            let site = if matches!(op, PrimOp::Div | PrimOp::Mod) {
                let site = self.div_sites.len() - self.div_start;
                self.div_sites.push(at);
                u32::try_from(site).unwrap_or(u32::MAX)
            } else {
                0
            };
            let args = self.args(c, rest)?;
            return Ok(Self::make(|| Expr::Prim { op, args, site }));
        }
        let Some((index, arity)) = self.definition(name) else {
            return Err(Fail::new(head_at, LispErrorKind::UnknownName(text(name))));
        };
        if rest != arity {
            return Err(arity_err(at, name, &arity.to_string(), rest));
        }
        if !BUILD
            && let Some(seen) = self.seen.get_mut(index as usize)
            && *seen != self.current
        {
            *seen = self.current;
            self.callees.push(index);
        }
        let args = self.args(c, rest)?;
        Ok(Self::make(|| Expr::Call {
            symbol: mangle(std::str::from_utf8(name).unwrap_or_default(), arity),
            args,
        }))
    }

    /// Checks `[x e y f ...]` (the next datum; `rest` datums are left in the
    /// form), binding each name after its init is checked. Returns the
    /// bindings (built only if `BUILD`) and their number; the names stay in
    /// scope (the caller pops them).
    fn bindings(
        &mut self,
        form: &str,
        at: usize,
        rest: usize,
        c: &mut Cursor<'a>,
    ) -> Result<(Vec<(VarId, Expr)>, usize), Fail> {
        if rest == 0 {
            return Err(bad(at, &format!("`{form}` needs a binding vector `[...]`")));
        }
        let first_at = c.at;
        let len = match c.next() {
            Some(Datum::Vector(len)) => len,
            Some(_) => {
                return Err(bad(
                    first_at,
                    &format!("`{form}` needs a binding vector `[name value ...]`"),
                ));
            }
            None => return Err(corrupt(first_at)),
        };
        if len % 2 != 0 {
            return Err(bad(
                first_at,
                &format!("`{form}` bindings must come in name/value pairs"),
            ));
        }
        let count = len / 2;
        let mut out = Vec::with_capacity(if BUILD { count } else { 0 });
        for _ in 0..count {
            let name = check_binder(c, "a binding name")?;
            let init = self.expr(c, None)?;
            let v = self.fresh();
            self.scope.push((name, v));
            Self::keep(&mut out, (v, init));
        }
        Ok((out, count))
    }

    fn let_form(
        &mut self,
        at: usize,
        rest: usize,
        c: &mut Cursor<'a>,
        tail: Option<RecurTarget>,
    ) -> Result<Expr, Fail> {
        let depth = self.scope.len();
        let (bindings, _) = self.bindings("let", at, rest, c)?;
        let body = self.body(c, rest - 1, tail)?;
        self.scope.truncate(depth);
        Ok(Self::make(|| Expr::Let { bindings, body }))
    }

    fn loop_form(&mut self, at: usize, rest: usize, c: &mut Cursor<'a>) -> Result<Expr, Fail> {
        let depth = self.scope.len();
        let (bindings, count) = self.bindings("loop", at, rest, c)?;
        let id: LoopId = self.loop_arities.len();
        self.loop_arities.push(count);
        if BUILD {
            self.loops.push(LoopInfo {
                vars: bindings.iter().map(|(v, _)| *v).collect(),
            });
        }
        let body = self.body(c, rest - 1, Some(RecurTarget::Loop(id)))?;
        self.scope.truncate(depth);
        Ok(Self::make(|| Expr::Loop { id, bindings, body }))
    }
}
