//! The checker: resolves names, checks arities and `recur`, and builds the
//! checked bodies code generation works from.
//!
//! [`check_program`] checks every definition and collects what a cache key
//! needs (callees, division sites), without building bodies; [`build_body`]
//! builds one definition's body when it is compiled. Both run the same
//! [`Checker`], which builds expressions only when `BUILD` is set, so what is
//! accepted and what is built cannot drift apart.

use super::ast::{Body, Expr, LoopId, LoopInfo, PrimOp, RecurTarget, VarId};
use super::error::{LispError, LispErrorKind, Pos};
use super::interface_hash;
use super::mangle::mangle;
use super::names::NameTable;
use super::program::DefData;
use super::reader::{Elements, Forms, NodeId, NodeKind, Top, Tree};

/// Whether `name` is a special form (`defn let if do loop recur`), a
/// built-in (`+ - * / mod < <= > >= = not and or println`), or otherwise
/// unbindable (`&`).
pub(crate) fn is_reserved(name: &str) -> bool {
    matches!(
        name,
        "&" | "defn"
            | "let"
            | "if"
            | "do"
            | "loop"
            | "recur"
            | "+"
            | "-"
            | "*"
            | "/"
            | "mod"
            | "<"
            | "<="
            | ">"
            | ">="
            | "="
            | "not"
            | "and"
            | "or"
            | "println"
    )
}

fn bad(pos: Pos, msg: &str) -> LispError {
    LispError::new(pos, LispErrorKind::BadForm(msg.to_owned()))
}

fn arity_err(pos: Pos, name: &str, expected: &str, got: usize) -> LispError {
    LispError::new(
        pos,
        LispErrorKind::Arity {
            name: name.to_owned(),
            expected: expected.to_owned(),
            got,
        },
    )
}

/// Checks a name that is being bound (definition, parameter, local).
fn check_binder<'a>(tree: Tree<'a>, id: NodeId, what: &str) -> Result<&'a str, LispError> {
    let Some(name) = tree.sym(id) else {
        return Err(bad(tree.node(id).pos, &format!("{what} must be a symbol")));
    };
    if is_reserved(name) {
        return Err(LispError::new(
            tree.node(id).pos,
            LispErrorKind::ReservedName(name.to_owned()),
        ));
    }
    Ok(name)
}

/// The header of a definition (what callers need to know), from its form.
fn header(tree: Tree<'_>, top: &Top) -> Result<DefData, LispError> {
    const SHAPE: &str = "only `(defn name [params] body...)` is allowed at top level";
    let form = tree.node(top.node);
    let NodeKind::List { .. } = form.kind else {
        return Err(bad(form.pos, SHAPE));
    };
    let mut items = tree.elements(top.node);
    match items.next().and_then(|head| tree.sym(head)) {
        Some("defn") => {}
        _ => return Err(bad(form.pos, SHAPE)),
    }
    let Some(name_id) = items.next() else {
        return Err(bad(form.pos, "`defn` needs a name and a parameter vector"));
    };
    let name = check_binder(tree, name_id, "a definition's name")?;
    let NodeKind::Sym {
        start: name_start,
        len: name_len,
    } = tree.node(name_id).kind
    else {
        return Err(bad(
            tree.node(name_id).pos,
            "a definition's name must be a symbol",
        ));
    };
    let Some(params) = items.next() else {
        return Err(bad(
            form.pos,
            &format!("`(defn {name} ...)` needs a parameter vector `[...]`"),
        ));
    };
    let params_node = tree.node(params);
    let NodeKind::Vector { len: arity } = params_node.kind else {
        return Err(bad(
            params_node.pos,
            &format!("`(defn {name} ...)` needs a parameter vector `[...]` after the name"),
        ));
    };
    for (k, p) in tree.elements(params).enumerate() {
        let pname = check_binder(tree, p, "a parameter")?;
        if tree
            .elements(params)
            .take(k)
            .any(|q| tree.sym(q) == Some(pname))
        {
            return Err(LispError::new(
                tree.node(p).pos,
                LispErrorKind::DuplicateParameter(pname.to_owned()),
            ));
        }
    }
    Ok(DefData {
        name_start,
        name_len,
        arity: arity as usize,
        pos: tree.node(name_id).pos,
        form: top.node,
        params,
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

/// The name of definition `index` of `defs`.
pub(crate) fn name_of<'s>(defs: &[DefData], source: &'s str, index: u32) -> &'s str {
    defs.get(index as usize).map_or("", |d| d.name(source))
}

/// Checks every top-level form read from `source` and returns the definitions
/// in source order.
pub(crate) fn check_program(source: &str, forms: &Forms) -> Result<Checked, LispError> {
    let tree = Tree {
        source,
        nodes: &forms.nodes,
    };
    let mut defs: Vec<DefData> = Vec::with_capacity(forms.tops.len());
    let mut names = NameTable::with_capacity(forms.tops.len());
    for top in &forms.tops {
        let d = header(tree, top)?;
        let index = u32::try_from(defs.len()).unwrap_or(u32::MAX);
        if let Err(first) = names.insert(d.name(source), index, |i| name_of(&defs, source, i)) {
            let first = defs.get(first as usize).map_or(d.pos, |f| f.pos);
            return Err(LispError::new(
                d.pos,
                LispErrorKind::DuplicateDefinition {
                    name: d.name(source).to_owned(),
                    first,
                },
            ));
        }
        defs.push(d);
    }
    let mut cx = Checker::<false>::new(tree, &defs, &names);
    cx.seen = vec![0; defs.len()];
    let mut ranges = Vec::with_capacity(defs.len());
    for (i, d) in defs.iter().enumerate() {
        cx.current = u32::try_from(i + 1).unwrap_or(u32::MAX);
        let callees_start = cx.callees.len();
        let div_start = cx.div_sites.len();
        cx.def(d)?;
        let own = cx.callees.get_mut(callees_start..).unwrap_or_default();
        own.sort_unstable_by(|&a, &b| name_of(&defs, source, a).cmp(name_of(&defs, source, b)));
        ranges.push((
            callees_start..cx.callees.len(),
            div_start..cx.div_sites.len(),
        ));
    }
    let Checker {
        callees, div_sites, ..
    } = cx;
    match names.get("main", |i| name_of(&defs, source, i)) {
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
    for (d, (callees, div_sites)) in defs.iter_mut().zip(ranges) {
        d.callees = callees;
        d.div_sites = div_sites;
    }
    // Each definition's interface hash, computed once however many call it.
    let mut interfaces: Vec<Option<[u8; 32]>> = vec![None; defs.len()];
    let callee_hashes = callees
        .iter()
        .map(|&c| {
            let slot = interfaces.get_mut(c as usize);
            match slot {
                Some(Some(h)) => *h,
                Some(slot) => {
                    let d = defs.get(c as usize);
                    let h =
                        interface_hash(d.map_or("", |d| d.name(source)), d.map_or(0, |d| d.arity));
                    *slot = Some(h);
                    h
                }
                None => [0; 32],
            }
        })
        .collect();
    Ok(Checked {
        defs,
        names,
        callees,
        callee_hashes,
        div_sites,
    })
}

/// Builds the body of `defs[index]`, a definition of a program that
/// [`check_program`] accepted.
pub(crate) fn build_body(
    tree: Tree<'_>,
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
    let mut cx = Checker::<true>::new(tree, defs, names);
    let exprs = cx.def(d)?;
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
    tree: Tree<'a>,
    defs: &'t [DefData],
    names: &'t NameTable,
    /// Locals in scope, innermost last.
    scope: Vec<(&'a str, VarId)>,
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
    /// `/` and `mod` forms of every definition checked so far.
    div_sites: Vec<Pos>,
    /// Where the current definition's `div_sites` start.
    div_start: usize,
    recurs_to_function: bool,
    /// The definition's arity (what a `recur` to the function takes).
    arity: usize,
}

impl<'a, 't, const BUILD: bool> Checker<'a, 't, BUILD> {
    fn new(tree: Tree<'a>, defs: &'t [DefData], names: &'t NameTable) -> Self {
        Checker {
            tree,
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
    fn def(&mut self, d: &DefData) -> Result<Vec<Expr>, LispError> {
        self.scope.clear();
        self.num_vars = 0;
        self.loop_arities.clear();
        self.loops.clear();
        self.recurs_to_function = false;
        self.arity = d.arity;
        self.div_start = self.div_sites.len();
        for p in self.tree.elements(d.params) {
            let v = self.fresh();
            self.scope.push((self.tree.sym(p).unwrap_or_default(), v));
        }
        // `(defn name [params] body...)`
        let mut body = self.tree.elements(d.form);
        body.nth(2);
        self.body(body, Some(RecurTarget::Function))
    }

    fn fresh(&mut self) -> VarId {
        let v = self.num_vars;
        self.num_vars += 1;
        v
    }

    fn local(&self, name: &str) -> Option<VarId> {
        self.scope
            .iter()
            .rev()
            .find(|(n, _)| *n == name)
            .map(|&(_, v)| v)
    }

    /// The index and arity of the definition `name`.
    fn definition(&self, name: &str) -> Option<(u32, usize)> {
        let source = self.tree.source;
        let i = self.names.get(name, |i| name_of(self.defs, source, i))?;
        Some((i, self.defs.get(i as usize)?.arity))
    }

    /// A sequence of expressions whose last one is in tail position if `tail` is set.
    fn body(
        &mut self,
        items: Elements<'a>,
        tail: Option<RecurTarget>,
    ) -> Result<Vec<Expr>, LispError> {
        let n = items.len();
        let mut out = Vec::with_capacity(if BUILD { n } else { 0 });
        for (i, item) in items.enumerate() {
            let t = if i + 1 == n { tail } else { None };
            let e = self.expr(item, t)?;
            Self::keep(&mut out, e);
        }
        Ok(out)
    }

    fn args(&mut self, items: Elements<'a>) -> Result<Vec<Expr>, LispError> {
        self.body(items, None)
    }

    fn expr(&mut self, id: NodeId, tail: Option<RecurTarget>) -> Result<Expr, LispError> {
        let node = self.tree.node(id);
        match node.kind {
            NodeKind::Int(v) => Ok(Expr::Int(v)),
            NodeKind::Sym { .. } => {
                let name = self.tree.sym(id).unwrap_or_default();
                if let Some(v) = self.local(name) {
                    Ok(Expr::Var(v))
                } else if self.definition(name).is_some() || is_reserved(name) {
                    Err(LispError::new(
                        node.pos,
                        LispErrorKind::NotAValue(name.to_owned()),
                    ))
                } else {
                    Err(LispError::new(
                        node.pos,
                        LispErrorKind::UnknownName(name.to_owned()),
                    ))
                }
            }
            NodeKind::Vector { .. } => Err(bad(
                node.pos,
                "a vector `[...]` is only allowed as a parameter or binding list",
            )),
            NodeKind::List { .. } => self.list(node.pos, id, tail),
        }
    }

    fn list(&mut self, pos: Pos, id: NodeId, tail: Option<RecurTarget>) -> Result<Expr, LispError> {
        let mut rest = self.tree.elements(id);
        let Some(head) = rest.next() else {
            return Err(bad(pos, "the empty list `()` is not an expression"));
        };
        let head_pos = self.tree.node(head).pos;
        let Some(name) = self.tree.sym(head) else {
            return Err(bad(
                head_pos,
                "the first element of a form must be the name of a function or special form",
            ));
        };
        if self.local(name).is_some() {
            return Err(LispError::new(
                head_pos,
                LispErrorKind::NotAFunction(name.to_owned()),
            ));
        }
        let op = match name {
            "defn" => return Err(bad(pos, "`defn` is only allowed at top level")),
            "let" => return self.let_form(pos, rest, tail),
            "loop" => return self.loop_form(pos, rest),
            "if" => {
                if !(2..=3).contains(&rest.len()) {
                    return Err(arity_err(pos, "if", "2 or 3", rest.len()));
                }
                let mut parts = rest;
                let (Some(c), Some(t)) = (parts.next(), parts.next()) else {
                    return Err(arity_err(pos, "if", "2 or 3", rest.len()));
                };
                let cond = self.expr(c, None)?;
                let then = self.expr(t, tail)?;
                let els = match parts.next() {
                    Some(e) => self.expr(e, tail)?,
                    None => Expr::Int(0),
                };
                return Ok(Self::make(|| Expr::If {
                    cond: Box::new(cond),
                    then: Box::new(then),
                    els: Box::new(els),
                }));
            }
            "do" => {
                let body = self.body(rest, tail)?;
                return Ok(Self::make(|| Expr::Do(body)));
            }
            "recur" => {
                let Some(target) = tail else {
                    return Err(LispError::new(pos, LispErrorKind::RecurNotInTail));
                };
                let expected = match target {
                    RecurTarget::Function => self.arity,
                    RecurTarget::Loop(id) => self.loop_arities.get(id).copied().unwrap_or(0),
                };
                if rest.len() != expected {
                    return Err(LispError::new(
                        pos,
                        LispErrorKind::RecurArity {
                            expected,
                            got: rest.len(),
                        },
                    ));
                }
                if target == RecurTarget::Function {
                    self.recurs_to_function = true;
                }
                let args = self.args(rest)?;
                return Ok(Self::make(|| Expr::Recur { target, args }));
            }
            "and" => {
                let args = self.args(rest)?;
                return Ok(Self::make(|| Expr::And(args)));
            }
            "or" => {
                let args = self.args(rest)?;
                return Ok(Self::make(|| Expr::Or(args)));
            }
            "println" => {
                let args = self.args(rest)?;
                return Ok(Self::make(|| Expr::Println(args)));
            }
            "+" => Some(PrimOp::Add),
            "*" => Some(PrimOp::Mul),
            "-" => Some(PrimOp::Sub),
            "/" => Some(PrimOp::Div),
            "mod" => Some(PrimOp::Mod),
            "<" => Some(PrimOp::Lt),
            "<=" => Some(PrimOp::Le),
            ">" => Some(PrimOp::Gt),
            ">=" => Some(PrimOp::Ge),
            "=" => Some(PrimOp::Eq),
            "not" => Some(PrimOp::Not),
            _ => None,
        };
        if let Some(op) = op {
            let (ok, expected) = match op {
                PrimOp::Add | PrimOp::Mul => (true, "any number"),
                PrimOp::Sub => (!rest.is_empty(), "at least 1"),
                PrimOp::Div => (rest.len() >= 2, "at least 2"),
                PrimOp::Mod => (rest.len() == 2, "2"),
                PrimOp::Not => (rest.len() == 1, "1"),
                PrimOp::Lt | PrimOp::Le | PrimOp::Gt | PrimOp::Ge | PrimOp::Eq => {
                    (!rest.is_empty(), "at least 1")
                }
            };
            if !ok {
                return Err(arity_err(pos, name, expected, rest.len()));
            }
            let site = if matches!(op, PrimOp::Div | PrimOp::Mod) {
                let site = self.div_sites.len() - self.div_start;
                self.div_sites.push(pos);
                u32::try_from(site).unwrap_or(u32::MAX)
            } else {
                0
            };
            let args = self.args(rest)?;
            return Ok(Self::make(|| Expr::Prim { op, args, site }));
        }
        let Some((index, arity)) = self.definition(name) else {
            return Err(LispError::new(
                head_pos,
                LispErrorKind::UnknownName(name.to_owned()),
            ));
        };
        if rest.len() != arity {
            return Err(arity_err(pos, name, &arity.to_string(), rest.len()));
        }
        if !BUILD
            && let Some(seen) = self.seen.get_mut(index as usize)
            && *seen != self.current
        {
            *seen = self.current;
            self.callees.push(index);
        }
        let args = self.args(rest)?;
        Ok(Self::make(|| Expr::Call {
            symbol: mangle(name, arity),
            args,
        }))
    }

    /// Checks `[x e y f ...]` (the first of `rest`), binding each name after
    /// its init is checked. Returns the bindings (built only if `BUILD`) and
    /// their number; the names stay in scope (the caller pops them).
    fn bindings(
        &mut self,
        form: &str,
        pos: Pos,
        rest: &mut Elements<'a>,
    ) -> Result<(Vec<(VarId, Expr)>, usize), LispError> {
        let Some(first) = rest.next() else {
            return Err(bad(
                pos,
                &format!("`{form}` needs a binding vector `[...]`"),
            ));
        };
        let node = self.tree.node(first);
        let NodeKind::Vector { len } = node.kind else {
            return Err(bad(
                node.pos,
                &format!("`{form}` needs a binding vector `[name value ...]`"),
            ));
        };
        if len % 2 != 0 {
            return Err(bad(
                node.pos,
                &format!("`{form}` bindings must come in name/value pairs"),
            ));
        }
        let count = len as usize / 2;
        let mut out = Vec::with_capacity(if BUILD { count } else { 0 });
        let mut items = self.tree.elements(first);
        while let (Some(n), Some(e)) = (items.next(), items.next()) {
            let name = check_binder(self.tree, n, "a binding name")?;
            let init = self.expr(e, None)?;
            let v = self.fresh();
            self.scope.push((name, v));
            Self::keep(&mut out, (v, init));
        }
        Ok((out, count))
    }

    fn let_form(
        &mut self,
        pos: Pos,
        mut rest: Elements<'a>,
        tail: Option<RecurTarget>,
    ) -> Result<Expr, LispError> {
        let depth = self.scope.len();
        let (bindings, _) = self.bindings("let", pos, &mut rest)?;
        let body = self.body(rest, tail)?;
        self.scope.truncate(depth);
        Ok(Self::make(|| Expr::Let { bindings, body }))
    }

    fn loop_form(&mut self, pos: Pos, mut rest: Elements<'a>) -> Result<Expr, LispError> {
        let depth = self.scope.len();
        let (bindings, count) = self.bindings("loop", pos, &mut rest)?;
        let id: LoopId = self.loop_arities.len();
        self.loop_arities.push(count);
        if BUILD {
            self.loops.push(LoopInfo {
                vars: bindings.iter().map(|(v, _)| *v).collect(),
            });
        }
        let body = self.body(rest, Some(RecurTarget::Loop(id)))?;
        self.scope.truncate(depth);
        Ok(Self::make(|| Expr::Loop { id, bindings, body }))
    }
}
