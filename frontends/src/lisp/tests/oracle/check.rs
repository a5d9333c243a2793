//! The checker: resolves names, checks arities and `recur`, and builds the
//! checked bodies code generation works from.

use std::collections::{BTreeSet, HashMap};

use super::ast::{Body, Expr, LoopId, LoopInfo, PrimOp, RecurTarget, VarId};
use super::program::Def;
use super::reader::{Sexp, SexpKind};
use crate::lisp::error::{LispError, LispErrorKind, Pos};
use crate::lisp::mangle::mangle;

/// Names of the special forms.
const SPECIAL_FORMS: &[&str] = &["defn", "let", "if", "do", "loop", "recur"];

/// Names of the built-in operations (besides the special forms).
const BUILTINS: &[&str] = &[
    "+", "-", "*", "/", "mod", "<", "<=", ">", ">=", "=", "not", "and", "or", "println",
];

/// Whether `name` is a special form, a built-in, or otherwise unbindable (`&`).
pub(crate) fn is_reserved(name: &str) -> bool {
    name == "&" || SPECIAL_FORMS.contains(&name) || BUILTINS.contains(&name)
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

/// The header of a definition: what callers need to know.
struct Header<'a> {
    name: &'a str,
    pos: Pos,
    params: Vec<(&'a str, Pos)>,
    body: &'a [Sexp],
    form: &'a Sexp,
}

/// Checks a name that is being bound (definition, parameter, local).
fn check_binder(s: &Sexp, what: &str) -> Result<String, LispError> {
    let Some(name) = s.as_sym() else {
        return Err(bad(s.pos, &format!("{what} must be a symbol")));
    };
    if is_reserved(name) {
        return Err(LispError::new(
            s.pos,
            LispErrorKind::ReservedName(name.to_owned()),
        ));
    }
    Ok(name.to_owned())
}

fn header(form: &Sexp) -> Result<Header<'_>, LispError> {
    const SHAPE: &str = "only `(defn name [params] body...)` is allowed at top level";
    let SexpKind::List(items) = &form.kind else {
        return Err(bad(form.pos, SHAPE));
    };
    match items.first().and_then(Sexp::as_sym) {
        Some("defn") => {}
        _ => return Err(bad(form.pos, SHAPE)),
    }
    let Some(name_sexp) = items.get(1) else {
        return Err(bad(form.pos, "`defn` needs a name and a parameter vector"));
    };
    check_binder(name_sexp, "a definition's name")?;
    let name = name_sexp.as_sym().unwrap_or_default();
    let Some(params_sexp) = items.get(2) else {
        return Err(bad(
            form.pos,
            &format!("`(defn {name} ...)` needs a parameter vector `[...]`"),
        ));
    };
    let SexpKind::Vector(params) = &params_sexp.kind else {
        return Err(bad(
            params_sexp.pos,
            &format!("`(defn {name} ...)` needs a parameter vector `[...]` after the name"),
        ));
    };
    let mut out: Vec<(&str, Pos)> = Vec::with_capacity(params.len());
    for p in params {
        check_binder(p, "a parameter")?;
        let pname = p.as_sym().unwrap_or_default();
        if out.iter().any(|(n, _)| *n == pname) {
            return Err(LispError::new(
                p.pos,
                LispErrorKind::DuplicateParameter(pname.to_owned()),
            ));
        }
        out.push((pname, p.pos));
    }
    Ok(Header {
        name,
        pos: name_sexp.pos,
        params: out,
        body: &items[3..],
        form,
    })
}

/// Checks every top-level form and returns the definitions in source order.
pub(crate) fn check_program(forms: &[Sexp], end: Pos) -> Result<Vec<Def>, LispError> {
    let mut headers = Vec::with_capacity(forms.len());
    let mut arities: HashMap<&str, (usize, Pos)> = HashMap::with_capacity(forms.len());
    for form in forms {
        let h = header(form)?;
        if let Some(&(_, first)) = arities.get(h.name) {
            return Err(LispError::new(
                h.pos,
                LispErrorKind::DuplicateDefinition {
                    name: h.name.to_owned(),
                    first,
                },
            ));
        }
        arities.insert(h.name, (h.params.len(), h.pos));
        headers.push(h);
    }
    let mut defs = Vec::with_capacity(headers.len());
    for h in &headers {
        defs.push(check_def(h, &arities)?);
    }
    match arities.get("main") {
        None => Err(LispError::new(end, LispErrorKind::NoMain)),
        Some(&(0, _)) => Ok(defs),
        Some(&(n, pos)) => Err(LispError::new(pos, LispErrorKind::MainArity(n))),
    }
}

fn check_def(h: &Header<'_>, arities: &HashMap<&str, (usize, Pos)>) -> Result<Def, LispError> {
    let mut cx = Checker {
        arities,
        scope: Vec::new(),
        num_vars: 0,
        loops: Vec::new(),
        callees: BTreeSet::new(),
        div_sites: Vec::new(),
        recurs_to_function: false,
        arity: h.params.len(),
    };
    for (p, _) in &h.params {
        let v = cx.fresh();
        cx.scope.push(((*p).to_owned(), v));
    }
    let exprs = cx.body(h.body, Some(RecurTarget::Function))?;
    let body = Body {
        num_vars: cx.num_vars,
        loops: cx.loops,
        exprs,
        recurs_to_function: cx.recurs_to_function,
    };
    Ok(Def {
        name: h.name.to_owned(),
        arity: h.params.len(),
        pos: h.pos,
        form: h.form.clone(),
        body,
        callees: cx.callees.into_iter().collect(),
        div_sites: cx.div_sites,
    })
}

struct Checker<'a> {
    arities: &'a HashMap<&'a str, (usize, Pos)>,
    /// Locals in scope, innermost last.
    scope: Vec<(String, VarId)>,
    num_vars: usize,
    loops: Vec<LoopInfo>,
    callees: BTreeSet<(String, usize)>,
    div_sites: Vec<Pos>,
    recurs_to_function: bool,
    /// The definition's arity (what a `recur` to the function takes).
    arity: usize,
}

impl Checker<'_> {
    fn fresh(&mut self) -> VarId {
        let v = self.num_vars;
        self.num_vars += 1;
        v
    }

    fn local(&self, name: &str) -> Option<VarId> {
        self.scope
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|&(_, v)| v)
    }

    /// A sequence of expressions whose last one is in tail position if `tail` is set.
    fn body(&mut self, items: &[Sexp], tail: Option<RecurTarget>) -> Result<Vec<Expr>, LispError> {
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let t = if i + 1 == items.len() { tail } else { None };
            out.push(self.expr(item, t)?);
        }
        Ok(out)
    }

    fn args(&mut self, items: &[Sexp]) -> Result<Vec<Expr>, LispError> {
        items.iter().map(|s| self.expr(s, None)).collect()
    }

    fn expr(&mut self, s: &Sexp, tail: Option<RecurTarget>) -> Result<Expr, LispError> {
        match &s.kind {
            SexpKind::Int(v) => Ok(Expr::Int(*v)),
            SexpKind::Sym(name) => {
                if let Some(v) = self.local(name) {
                    Ok(Expr::Var(v))
                } else if self.arities.contains_key(name.as_str()) || is_reserved(name) {
                    Err(LispError::new(
                        s.pos,
                        LispErrorKind::NotAValue(name.clone()),
                    ))
                } else {
                    Err(LispError::new(
                        s.pos,
                        LispErrorKind::UnknownName(name.clone()),
                    ))
                }
            }
            SexpKind::Vector(_) => Err(bad(
                s.pos,
                "a vector `[...]` is only allowed as a parameter or binding list",
            )),
            SexpKind::List(items) => self.list(s.pos, items, tail),
        }
    }

    fn list(
        &mut self,
        pos: Pos,
        items: &[Sexp],
        tail: Option<RecurTarget>,
    ) -> Result<Expr, LispError> {
        let Some(head) = items.first() else {
            return Err(bad(pos, "the empty list `()` is not an expression"));
        };
        let Some(name) = head.as_sym() else {
            return Err(bad(
                head.pos,
                "the first element of a form must be the name of a function or special form",
            ));
        };
        let rest = &items[1..];
        if self.local(name).is_some() {
            return Err(LispError::new(
                head.pos,
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
                let cond = self.expr(&rest[0], None)?;
                let then = self.expr(&rest[1], tail)?;
                let els = match rest.get(2) {
                    Some(e) => self.expr(e, tail)?,
                    None => Expr::Int(0),
                };
                return Ok(Expr::If {
                    cond: Box::new(cond),
                    then: Box::new(then),
                    els: Box::new(els),
                });
            }
            "do" => return Ok(Expr::Do(self.body(rest, tail)?)),
            "recur" => {
                let Some(target) = tail else {
                    return Err(LispError::new(pos, LispErrorKind::RecurNotInTail));
                };
                let expected = match target {
                    RecurTarget::Function => self.arity,
                    RecurTarget::Loop(id) => self.loops[id].vars.len(),
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
                return Ok(Expr::Recur { target, args });
            }
            "and" => return Ok(Expr::And(self.args(rest)?)),
            "or" => return Ok(Expr::Or(self.args(rest)?)),
            "println" => return Ok(Expr::Println(self.args(rest)?)),
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
                let site = u32::try_from(self.div_sites.len()).unwrap_or(u32::MAX);
                self.div_sites.push(pos);
                site
            } else {
                0
            };
            let args = self.args(rest)?;
            return Ok(Expr::Prim { op, args, site });
        }
        let Some(&(arity, _)) = self.arities.get(name) else {
            return Err(LispError::new(
                head.pos,
                LispErrorKind::UnknownName(name.to_owned()),
            ));
        };
        if rest.len() != arity {
            return Err(arity_err(pos, name, &arity.to_string(), rest.len()));
        }
        self.callees.insert((name.to_owned(), arity));
        let args = self.args(rest)?;
        Ok(Expr::Call {
            symbol: mangle(name, arity),
            args,
        })
    }

    /// Checks `[x e y f ...]`, binding each name after its init is checked.
    /// Returns the bindings; the names stay in scope (the caller pops them).
    fn bindings(
        &mut self,
        form: &str,
        pos: Pos,
        rest: &[Sexp],
    ) -> Result<Vec<(VarId, Expr)>, LispError> {
        let Some(first) = rest.first() else {
            return Err(bad(
                pos,
                &format!("`{form}` needs a binding vector `[...]`"),
            ));
        };
        let SexpKind::Vector(items) = &first.kind else {
            return Err(bad(
                first.pos,
                &format!("`{form}` needs a binding vector `[name value ...]`"),
            ));
        };
        if items.len() % 2 != 0 {
            return Err(bad(
                first.pos,
                &format!("`{form}` bindings must come in name/value pairs"),
            ));
        }
        let mut out = Vec::with_capacity(items.len() / 2);
        for pair in items.chunks_exact(2) {
            let name = check_binder(&pair[0], "a binding name")?;
            let init = self.expr(&pair[1], None)?;
            let v = self.fresh();
            self.scope.push((name, v));
            out.push((v, init));
        }
        Ok(out)
    }

    fn let_form(
        &mut self,
        pos: Pos,
        rest: &[Sexp],
        tail: Option<RecurTarget>,
    ) -> Result<Expr, LispError> {
        let depth = self.scope.len();
        let bindings = self.bindings("let", pos, rest)?;
        let body = self.body(&rest[1..], tail)?;
        self.scope.truncate(depth);
        Ok(Expr::Let { bindings, body })
    }

    fn loop_form(&mut self, pos: Pos, rest: &[Sexp]) -> Result<Expr, LispError> {
        let depth = self.scope.len();
        let bindings = self.bindings("loop", pos, rest)?;
        let id: LoopId = self.loops.len();
        self.loops.push(LoopInfo {
            vars: bindings.iter().map(|(v, _)| *v).collect(),
        });
        let body = self.body(&rest[1..], Some(RecurTarget::Loop(id)))?;
        self.scope.truncate(depth);
        Ok(Expr::Loop { id, bindings, body })
    }
}
