//! A reference interpreter over the checked AST, written independently of
//! the code generator, to compare compiled runs against.

use std::collections::HashMap;

use crate::lisp::ast::{Expr, PrimOp, RecurTarget};
use crate::lisp::{Def, Program};

/// Why an interpreted run stopped early.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Stop {
    /// Division by zero in the named definition at its `site`-th `/`/`mod`.
    DivByZero { def: String, site: u32 },
    /// Too many nested calls (the generator avoids this).
    TooDeep,
}

/// The result of running `main`: its value or why it stopped, and the output.
pub(super) fn run_main(program: &Program) -> (Result<i64, Stop>, String) {
    let mut it = Interp {
        defs: program.defs().iter().map(|d| (d.symbol(), d)).collect(),
        out: String::new(),
        depth: 0,
    };
    let main = program.main().expect("checked programs have main");
    let r = it.call(main, Vec::new());
    (r, it.out)
}

enum Flow {
    Value(i64),
    Recur(RecurTarget, Vec<i64>),
}

struct Interp<'p> {
    defs: HashMap<String, &'p Def>,
    out: String,
    depth: usize,
}

struct Frame<'d> {
    def: &'d Def,
    vars: Vec<i64>,
}

impl<'p> Interp<'p> {
    fn call(&mut self, def: &'p Def, args: Vec<i64>) -> Result<i64, Stop> {
        if self.depth > 10_000 {
            return Err(Stop::TooDeep);
        }
        self.depth += 1;
        let mut frame = Frame {
            def,
            vars: vec![0; def.body().unwrap().num_vars],
        };
        frame.vars[..args.len()].copy_from_slice(&args);
        let r = loop {
            match self.seq(&mut frame, &def.body().unwrap().exprs)? {
                Flow::Value(v) => break v,
                Flow::Recur(RecurTarget::Function, vals) => {
                    frame.vars[..vals.len()].copy_from_slice(&vals);
                }
                Flow::Recur(RecurTarget::Loop(_), _) => unreachable!("loop recur escaped"),
            }
        };
        self.depth -= 1;
        Ok(r)
    }

    fn seq(&mut self, f: &mut Frame<'p>, exprs: &[Expr]) -> Result<Flow, Stop> {
        let mut last = Flow::Value(0);
        for e in exprs {
            last = self.eval(f, e)?;
            if matches!(last, Flow::Recur(..)) {
                return Ok(last);
            }
        }
        Ok(last)
    }

    fn value(&mut self, f: &mut Frame<'p>, e: &Expr) -> Result<i64, Stop> {
        match self.eval(f, e)? {
            Flow::Value(v) => Ok(v),
            Flow::Recur(..) => unreachable!("recur in non-tail position"),
        }
    }

    fn values(&mut self, f: &mut Frame<'p>, es: &[Expr]) -> Result<Vec<i64>, Stop> {
        es.iter().map(|e| self.value(f, e)).collect()
    }

    fn eval(&mut self, f: &mut Frame<'p>, e: &Expr) -> Result<Flow, Stop> {
        Ok(Flow::Value(match e {
            Expr::Int(v) => *v,
            Expr::Var(v) => f.vars[*v],
            Expr::Let { bindings, body } => {
                for (v, init) in bindings {
                    f.vars[*v] = self.value(f, init)?;
                }
                return self.seq(f, body);
            }
            Expr::Do(body) => return self.seq(f, body),
            Expr::If { cond, then, els } => {
                return if self.value(f, cond)? != 0 {
                    self.eval(f, then)
                } else {
                    self.eval(f, els)
                };
            }
            Expr::Loop { id, bindings, body } => {
                for (v, init) in bindings {
                    f.vars[*v] = self.value(f, init)?;
                }
                loop {
                    match self.seq(f, body)? {
                        Flow::Recur(RecurTarget::Loop(target), vals) if target == *id => {
                            for ((v, _), x) in bindings.iter().zip(vals) {
                                f.vars[*v] = x;
                            }
                        }
                        other => return Ok(other),
                    }
                }
            }
            Expr::Recur { target, args } => {
                return Ok(Flow::Recur(*target, self.values(f, args)?));
            }
            Expr::Call { symbol, args } => {
                let vals = self.values(f, args)?;
                let def = *self.defs.get(symbol).expect("checked call");
                self.call(def, vals)?
            }
            Expr::Println(args) => {
                let vals = self.values(f, args)?;
                let strs: Vec<String> = vals.iter().map(|v| v.to_string()).collect();
                self.out.push_str(&strs.join(" "));
                self.out.push('\n');
                0
            }
            Expr::And(args) => {
                let mut v = 1;
                for a in args {
                    v = self.value(f, a)?;
                    if v == 0 {
                        break;
                    }
                }
                v
            }
            Expr::Or(args) => {
                let mut v = 0;
                for a in args {
                    v = self.value(f, a)?;
                    if v != 0 {
                        break;
                    }
                }
                v
            }
            Expr::Prim { op, args, site } => {
                let vals = self.values(f, args)?;
                prim(*op, &vals).ok_or_else(|| Stop::DivByZero {
                    def: f.def.name().to_owned(),
                    site: *site,
                })?
            }
        }))
    }
}

/// Applies a primitive; `None` on division by zero.
fn prim(op: PrimOp, v: &[i64]) -> Option<i64> {
    let cmp = |f: fn(&i64, &i64) -> bool| i64::from(v.windows(2).all(|w| f(&w[0], &w[1])));
    Some(match op {
        PrimOp::Add => v.iter().fold(0i64, |a, &b| a.wrapping_add(b)),
        PrimOp::Mul => v.iter().fold(1i64, |a, &b| a.wrapping_mul(b)),
        PrimOp::Sub if v.len() == 1 => v[0].wrapping_neg(),
        PrimOp::Sub => v[1..].iter().fold(v[0], |a, &b| a.wrapping_sub(b)),
        PrimOp::Div => {
            let mut a = v[0];
            for &b in &v[1..] {
                if b == 0 {
                    return None;
                }
                a = a.wrapping_div(b);
            }
            a
        }
        PrimOp::Mod => {
            let (a, b) = (v[0], v[1]);
            if b == 0 {
                return None;
            }
            // Floored: the result has the sign of the divisor.
            let r = a.wrapping_rem(b);
            if r != 0 && ((r < 0) != (b < 0)) {
                r + b
            } else {
                r
            }
        }
        PrimOp::Not => i64::from(v[0] == 0),
        PrimOp::Lt => cmp(i64::lt),
        PrimOp::Le => cmp(i64::le),
        PrimOp::Gt => cmp(i64::gt),
        PrimOp::Ge => cmp(i64::ge),
        PrimOp::Eq => cmp(i64::eq),
    })
}

#[test]
fn interpreter_runs_a_small_program() {
    let p = super::ok(
        "
        (defn fact [n] (loop [i n acc 1] (if (<= i 1) acc (recur (- i 1) (* acc i)))))
        (defn main [] (println (fact 10) (mod -7 2) (mod 7 -2) (/ -7 2)) (fact 5))",
    );
    let (r, out) = run_main(&p);
    assert_eq!(r, Ok(120));
    assert_eq!(out, "3628800 1 -1 -3\n");
}
