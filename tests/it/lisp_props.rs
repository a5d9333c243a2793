//! Property: for random Lisp programs and random edit sequences, a cached run after every
//! edit behaves exactly like a from-scratch run, and compiles exactly the definitions whose
//! key inputs changed.
//!
//! The test keeps a model of the program (definitions as trees), renders it to source in a
//! random layout, and knows from the model alone which definitions are new or changed: a
//! definition's key inputs are its name, its canonical form (the model rendered in one
//! fixed layout without comments) and the set of `(name, arity)` of the definitions it
//! calls. A definition compiles when that triple was never seen before (an edit undone
//! hits the cache again), and `--explain`'s reason compares it with the last triple
//! compiled under the same name. The model also evaluates the program, so both runs are
//! checked against a third opinion.
//!
//! Runs go through the library, in process: a fresh [`JitCache`] per run on the same
//! directory (a new process, as far as the cache can tell), and one with
//! `persistent: false` as the uncached reference. Lisp output is captured with
//! [`capture_output`].
//!
//! Programs never divide by zero (divisors are non-zero literals) and always terminate
//! (a definition calls only definitions created before it).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;
use std::path::Path;

use jitcache::store::KeyField;
use jitcache::{Config, JitCache, MissReason};
use jitcache_frontends::lisp::runtime::capture_output;
use jitcache_frontends::run::{RunOptions, RunReport};
use proptest::prelude::*;

/// Id of `main` (it may call every other definition).
const MAIN: u32 = u32::MAX;
/// Most calls written in one definition's body (keeps run time polynomial in practice).
const CALLS_PER_BODY: u32 = 2;
/// Most definitions besides `main`.
const MAX_DEFS: usize = 13;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Expr {
    Lit(i64),
    Param(usize),
    Local(usize),
    /// A built-in applied to arguments: `+ - * < = >=`.
    Op(&'static str, Vec<Expr>),
    /// `(/ e k)` or `(mod e k)` with a non-zero literal `k`.
    Div(&'static str, Box<Expr>, i64),
    If(Box<Expr>, Box<Expr>, Box<Expr>),
    /// `(let [l{k} value] body)`, where `k` is the number of locals already in scope.
    Let(usize, Box<Expr>, Box<Expr>),
    /// A call to the definition with this id.
    Call(u32, Vec<Expr>),
}

#[derive(Clone, Debug)]
struct Def {
    id: u32,
    arity: usize,
    /// `(println ...)` forms before the body (only `main` has them).
    prints: Vec<Vec<Expr>>,
    body: Expr,
    /// Comments: `(before the definition?, text)`.
    comments: Vec<(bool, String)>,
}

impl Def {
    fn name(&self) -> String {
        def_name(self.id)
    }

    fn exprs_mut(&mut self) -> impl Iterator<Item = &mut Expr> {
        self.prints
            .iter_mut()
            .flatten()
            .chain(std::iter::once(&mut self.body))
    }

    fn exprs(&self) -> impl Iterator<Item = &Expr> {
        self.prints
            .iter()
            .flatten()
            .chain(std::iter::once(&self.body))
    }
}

#[derive(Clone, Debug)]
struct Model {
    /// In file order.
    defs: Vec<Def>,
    next_id: u32,
    style: u32,
}

/// Reads choices from a proptest-generated stream; past its end every choice is 0, the
/// simplest one, so shrinking the stream simplifies the program.
struct Choices<'a> {
    data: &'a [u32],
    pos: usize,
}

impl Choices<'_> {
    fn pick(&mut self, n: u32) -> u32 {
        let v = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        if n == 0 { 0 } else { v % n }
    }

    fn index(&mut self, n: usize) -> usize {
        self.pick(u32::try_from(n).unwrap_or(u32::MAX)) as usize
    }

    /// A small integer (0, 1, -1, 2, -2, ... for choices 0, 1, 2, ...), now and then an
    /// extreme one, so that arithmetic wraps.
    fn literal(&mut self) -> i64 {
        match self.pick(48) {
            v @ 0..41 => {
                let v = i64::from(v);
                if v % 2 == 0 { -v / 2 } else { (v + 1) / 2 }
            }
            v => [
                i64::MAX,
                i64::MIN,
                1 << 40,
                -(1 << 33),
                7_000_000_007,
                -1,
                3,
            ][(v - 41) as usize],
        }
    }
}

/// What a body may refer to while being generated.
struct Scope<'a> {
    arity: usize,
    /// `(id, arity)` of the definitions it may call.
    callable: &'a [(u32, usize)],
}

fn gen_expr(
    ch: &mut Choices<'_>,
    depth: u32,
    scope: &Scope<'_>,
    locals: usize,
    calls: &mut u32,
) -> Expr {
    let kind = if depth == 0 { 0 } else { ch.pick(9) };
    let sub = |ch: &mut Choices<'_>, calls: &mut u32| gen_expr(ch, depth - 1, scope, locals, calls);
    match kind {
        1 => {
            let n = 1 + ch.index(3);
            Expr::Op("+", (0..n).map(|_| sub(ch, calls)).collect())
        }
        2 => {
            let n = 1 + ch.index(2);
            Expr::Op("-", (0..n).map(|_| sub(ch, calls)).collect())
        }
        3 => Expr::Op("*", vec![sub(ch, calls), sub(ch, calls)]),
        4 => {
            let op = ["<", "=", ">="][ch.index(3)];
            Expr::Op(op, vec![sub(ch, calls), sub(ch, calls)])
        }
        5 => Expr::If(
            Box::new(sub(ch, calls)),
            Box::new(sub(ch, calls)),
            Box::new(sub(ch, calls)),
        ),
        6 => {
            let value = sub(ch, calls);
            let body = gen_expr(ch, depth - 1, scope, locals + 1, calls);
            Expr::Let(locals, Box::new(value), Box::new(body))
        }
        7 | 8 if *calls > 0 && !scope.callable.is_empty() => {
            *calls -= 1;
            let (id, arity) = scope.callable[ch.index(scope.callable.len())];
            Expr::Call(id, (0..arity).map(|_| sub(ch, calls)).collect())
        }
        7 => Expr::Div("/", Box::new(sub(ch, calls)), [2, 3, -5][ch.index(3)]),
        8 => Expr::Div("mod", Box::new(sub(ch, calls)), [2, 3, 7, -4][ch.index(4)]),
        _ => {
            let vars = scope.arity + locals;
            if vars > 0 && ch.pick(2) == 1 {
                let v = ch.index(vars);
                if v < scope.arity {
                    Expr::Param(v)
                } else {
                    Expr::Local(v - scope.arity)
                }
            } else {
                Expr::Lit(ch.literal())
            }
        }
    }
}

impl Model {
    fn callable(&self) -> Vec<(u32, usize)> {
        self.defs
            .iter()
            .filter(|d| d.id != MAIN)
            .map(|d| (d.id, d.arity))
            .collect()
    }

    fn def(&self, id: u32) -> &Def {
        self.defs
            .iter()
            .find(|d| d.id == id)
            .unwrap_or_else(|| panic!("model has no f{id}"))
    }

    fn arity_of(&self, id: u32) -> usize {
        self.def(id).arity
    }

    /// A new definition calling only existing ones.
    fn new_def(&mut self, ch: &mut Choices<'_>) -> Def {
        let id = self.next_id;
        self.next_id += 1;
        let arity = ch.index(4);
        let callable = self.callable();
        let scope = Scope {
            arity,
            callable: &callable,
        };
        let mut calls = CALLS_PER_BODY;
        let body = gen_expr(ch, 3, &scope, 0, &mut calls);
        Def {
            id,
            arity,
            prints: Vec::new(),
            body,
            comments: Vec::new(),
        }
    }

    /// A call of `id` with small literal arguments.
    fn call_with_literals(&self, ch: &mut Choices<'_>, id: u32) -> Expr {
        Expr::Call(
            id,
            (0..self.arity_of(id))
                .map(|_| Expr::Lit(ch.literal()))
                .collect(),
        )
    }

    fn generate(ch: &mut Choices<'_>) -> Model {
        let mut model = Model {
            defs: Vec::new(),
            next_id: 0,
            style: ch.pick(u32::MAX),
        };
        let count = 2 + ch.index(10);
        for _ in 0..count {
            let def = model.new_def(ch);
            model.defs.push(def);
        }
        let callable = model.callable();
        let scope = Scope {
            arity: 0,
            callable: &callable,
        };
        let mut prints = Vec::new();
        for _ in 0..1 + ch.index(3) {
            let mut line = Vec::new();
            for _ in 0..1 + ch.index(3) {
                let (id, arity) = callable[ch.index(callable.len())];
                let mut calls = 0;
                line.push(Expr::Call(
                    id,
                    (0..arity)
                        .map(|_| gen_expr(ch, 1, &scope, 0, &mut calls))
                        .collect(),
                ));
            }
            prints.push(line);
        }
        let mut calls = 2;
        let body = gen_expr(ch, 2, &scope, 0, &mut calls);
        let at = ch.index(model.defs.len() + 1);
        model.defs.insert(
            at,
            Def {
                id: MAIN,
                arity: 0,
                prints,
                body,
                comments: Vec::new(),
            },
        );
        model
    }

    fn non_main(&self) -> Vec<u32> {
        self.defs
            .iter()
            .filter(|d| d.id != MAIN)
            .map(|d| d.id)
            .collect()
    }

    /// Applies one random edit; returns what it did, for failure messages.
    fn edit(&mut self, ch: &mut Choices<'_>) -> String {
        match ch.pick(7) {
            0 | 1 => {
                let d = ch.index(self.defs.len());
                let value = ch.literal();
                let which = ch.pick(1000) as usize;
                let name = self.defs[d].name();
                let mut lits: Vec<&mut i64> = Vec::new();
                for e in self.defs[d].exprs_mut() {
                    collect_literals(e, &mut lits);
                }
                if lits.is_empty() {
                    return format!("no literal to change in {name}");
                }
                let n = lits.len();
                *lits[which % n] = value;
                format!("literal #{} of {name} := {value}", which % n)
            }
            2 => {
                self.style = ch.pick(u32::MAX);
                format!("reformat with style {:#x}", self.style)
            }
            3 => {
                let d = ch.index(self.defs.len());
                let before = ch.pick(2) == 0;
                let text = format!("note {}", ch.pick(100));
                self.defs[d].comments.push((before, text));
                format!("comment on {}", self.defs[d].name())
            }
            4 => self.change_arity(ch),
            5 => {
                if self.non_main().len() >= MAX_DEFS {
                    return "no room for another definition".to_owned();
                }
                let def = self.new_def(ch);
                let id = def.id;
                let at = ch.index(self.defs.len() + 1);
                self.defs.insert(at, def);
                let called = ch.pick(2) == 1;
                if called {
                    let call = self.call_with_literals(ch, id);
                    if let Some(main) = self.defs.iter_mut().find(|d| d.id == MAIN) {
                        main.prints.push(vec![call]);
                    }
                }
                format!(
                    "add f{id} at {at}{}",
                    if called { ", printed by main" } else { "" }
                )
            }
            _ => {
                let ids = self.non_main();
                if ids.len() <= 1 {
                    return "nothing to remove".to_owned();
                }
                let id = ids[ch.index(ids.len())];
                let value = ch.literal();
                self.defs.retain(|d| d.id != id);
                for def in &mut self.defs {
                    for e in def.exprs_mut() {
                        replace_calls(e, id, value);
                    }
                }
                format!("remove f{id} (calls become {value})")
            }
        }
    }

    fn change_arity(&mut self, ch: &mut Choices<'_>) -> String {
        let ids = self.non_main();
        if ids.is_empty() {
            return "no definition to change the arity of".to_owned();
        }
        let id = ids[ch.index(ids.len())];
        let arity = self.arity_of(id);
        let grow = arity == 0 || (arity < 4 && ch.pick(2) == 0);
        let value = ch.literal();
        let use_it = ch.pick(2) == 1;
        for def in &mut self.defs {
            if def.id == id {
                if grow {
                    def.arity += 1;
                    if use_it {
                        let body = std::mem::replace(&mut def.body, Expr::Lit(0));
                        def.body = Expr::Op("+", vec![body, Expr::Param(arity)]);
                    }
                } else {
                    def.arity -= 1;
                    replace_param(&mut def.body, arity - 1, value);
                }
            }
            for e in def.exprs_mut() {
                adjust_calls(e, id, grow, value);
            }
        }
        format!(
            "f{id}: arity {arity} -> {}",
            if grow { arity + 1 } else { arity - 1 }
        )
    }

    /// The source text, laid out by `style` (and with comments), or canonically.
    fn render(&self, canonical: bool) -> String {
        let style = if canonical { 0 } else { self.style };
        let mut out = String::new();
        for def in &self.defs {
            render_def(def, style, !canonical, &mut out);
            out.push('\n');
            if style & 0x20 != 0 {
                out.push('\n');
            }
        }
        out
    }

    /// Key inputs of every definition, by name: canonical form and callees.
    fn keys(&self) -> HashMap<String, KeyInputs> {
        self.defs
            .iter()
            .map(|def| {
                let mut text = String::new();
                render_def(def, 0, false, &mut text);
                let mut callees = BTreeSet::new();
                for e in def.exprs() {
                    collect_callees(e, self, &mut callees);
                }
                (
                    def.name(),
                    KeyInputs {
                        canonical: text,
                        callees,
                    },
                )
            })
            .collect()
    }

    /// What the program prints and its exit status.
    fn evaluate(&self) -> (String, i32) {
        let main = self.def(MAIN);
        let mut out = String::new();
        let mut locals = Vec::new();
        for line in &main.prints {
            let values: Vec<String> = line
                .iter()
                .map(|e| eval(self, e, &[], &mut locals).to_string())
                .collect();
            out.push_str(&values.join(" "));
            out.push('\n');
        }
        let value = eval(self, &main.body, &[], &mut locals);
        (out, (value & 0xff) as i32)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct KeyInputs {
    canonical: String,
    callees: BTreeSet<(String, usize)>,
}

fn children_mut(e: &mut Expr) -> Vec<&mut Expr> {
    match e {
        Expr::Lit(_) | Expr::Param(_) | Expr::Local(_) => Vec::new(),
        Expr::Op(_, args) | Expr::Call(_, args) => args.iter_mut().collect(),
        Expr::Div(_, a, _) => vec![&mut **a],
        Expr::If(c, a, b) => vec![&mut **c, &mut **a, &mut **b],
        Expr::Let(_, v, b) => vec![&mut **v, &mut **b],
    }
}

fn collect_literals<'a>(e: &'a mut Expr, out: &mut Vec<&'a mut i64>) {
    if let Expr::Lit(v) = e {
        out.push(v);
        return;
    }
    for child in children_mut(e) {
        collect_literals(child, out);
    }
}

fn replace_calls(e: &mut Expr, id: u32, value: i64) {
    if matches!(e, Expr::Call(callee, _) if *callee == id) {
        *e = Expr::Lit(value);
        return;
    }
    for child in children_mut(e) {
        replace_calls(child, id, value);
    }
}

fn replace_param(e: &mut Expr, param: usize, value: i64) {
    if *e == Expr::Param(param) {
        *e = Expr::Lit(value);
        return;
    }
    for child in children_mut(e) {
        replace_param(child, param, value);
    }
}

fn adjust_calls(e: &mut Expr, id: u32, grow: bool, value: i64) {
    for child in children_mut(e) {
        adjust_calls(child, id, grow, value);
    }
    if let Expr::Call(callee, args) = e
        && *callee == id
    {
        if grow {
            args.push(Expr::Lit(value));
        } else {
            args.pop();
        }
    }
}

fn collect_callees(e: &Expr, model: &Model, out: &mut BTreeSet<(String, usize)>) {
    match e {
        Expr::Lit(_) | Expr::Param(_) | Expr::Local(_) => {}
        Expr::Op(_, args) => args.iter().for_each(|a| collect_callees(a, model, out)),
        Expr::Call(id, args) => {
            out.insert((model.def(*id).name(), args.len()));
            args.iter().for_each(|a| collect_callees(a, model, out));
        }
        Expr::Div(_, a, _) => collect_callees(a, model, out),
        Expr::If(c, a, b) => [c, a, b]
            .iter()
            .for_each(|x| collect_callees(x, model, out)),
        Expr::Let(_, v, b) => [v, b].iter().for_each(|x| collect_callees(x, model, out)),
    }
}

fn eval(model: &Model, e: &Expr, params: &[i64], locals: &mut Vec<i64>) -> i64 {
    let ev = |x: &Expr, locals: &mut Vec<i64>| eval(model, x, params, locals);
    match e {
        Expr::Lit(v) => *v,
        Expr::Param(i) => params[*i],
        Expr::Local(i) => locals[*i],
        Expr::Op(op, args) => {
            let values: Vec<i64> = args.iter().map(|a| ev(a, locals)).collect();
            match *op {
                "+" => values.iter().fold(0, |a, b| a.wrapping_add(*b)),
                "*" => values.iter().fold(1, |a, b| a.wrapping_mul(*b)),
                "-" if values.len() == 1 => values[0].wrapping_neg(),
                "-" => values[1..]
                    .iter()
                    .fold(values[0], |a, b| a.wrapping_sub(*b)),
                "<" => i64::from(values[0] < values[1]),
                "=" => i64::from(values[0] == values[1]),
                ">=" => i64::from(values[0] >= values[1]),
                other => panic!("no operator {other}"),
            }
        }
        Expr::Div(op, a, k) => {
            let a = ev(a, locals);
            if *op == "/" {
                a.wrapping_div(*k)
            } else {
                let r = a.wrapping_rem(*k);
                if r != 0 && ((r < 0) != (*k < 0)) {
                    r + k
                } else {
                    r
                }
            }
        }
        Expr::If(c, a, b) => {
            if ev(c, locals) != 0 {
                ev(a, locals)
            } else {
                ev(b, locals)
            }
        }
        Expr::Let(k, v, b) => {
            let value = ev(v, locals);
            assert_eq!(locals.len(), *k, "local stack");
            locals.push(value);
            let result = ev(b, locals);
            locals.pop();
            result
        }
        Expr::Call(id, args) => {
            let values: Vec<i64> = args.iter().map(|a| ev(a, locals)).collect();
            let def = model.def(*id);
            eval(model, &def.body, &values, &mut Vec::new())
        }
    }
}

/// A rendered form: what the reader will see.
enum Sx {
    Atom(String),
    List(Vec<Sx>),
    Vector(Vec<Sx>),
}

fn atom(text: impl Into<String>) -> Sx {
    Sx::Atom(text.into())
}

/// How a literal is spelled: the canonical layout uses plain decimal; others add a plus
/// sign or leading zeros to non-negative numbers.
fn literal(v: i64, style: u32) -> Sx {
    atom(match (v >= 0, style & 0x18) {
        (true, 0x08) => format!("+{v}"),
        (true, 0x10) => format!("00{v}"),
        (true, 0x18) => format!("0{v}"),
        _ => v.to_string(),
    })
}

fn def_name(id: u32) -> String {
    if id == MAIN {
        "main".to_owned()
    } else {
        format!("f{id}")
    }
}

fn to_sx(e: &Expr, style: u32) -> Sx {
    let list = |head: &str, rest: Vec<Sx>| {
        let mut items = vec![atom(head)];
        items.extend(rest);
        Sx::List(items)
    };
    let all = |args: &[Expr]| args.iter().map(|a| to_sx(a, style)).collect::<Vec<_>>();
    match e {
        Expr::Lit(v) => literal(*v, style),
        Expr::Param(i) => atom(format!("a{i}")),
        Expr::Local(i) => atom(format!("l{i}")),
        Expr::Op(op, args) => list(op, all(args)),
        Expr::Call(id, args) => list(&def_name(*id), all(args)),
        Expr::Div(op, a, k) => list(op, vec![to_sx(a, style), literal(*k, style)]),
        Expr::If(c, a, b) => list(
            "if",
            vec![to_sx(c, style), to_sx(a, style), to_sx(b, style)],
        ),
        Expr::Let(k, v, b) => list(
            "let",
            vec![
                Sx::Vector(vec![atom(format!("l{k}")), to_sx(v, style)]),
                to_sx(b, style),
            ],
        ),
    }
}

/// Whitespace between the elements of a list at `depth`: the canonical layout uses one
/// space; others break lines, indent with spaces or tabs, add commas or runs of spaces.
fn sep(style: u32, depth: usize, out: &mut String) {
    if style & 0x1 != 0 && depth <= 1 {
        out.push('\n');
        for _ in 0..=depth {
            out.push_str(if style & 0x40 != 0 { "\t" } else { "  " });
        }
    } else if style & 0x2 != 0 {
        out.push_str(" , ");
    } else if style & 0x80 != 0 {
        out.push_str("   ");
    } else {
        out.push(' ');
    }
}

fn open(style: u32, out: &mut String) {
    out.push_str(if style & 0x4 != 0 { "( " } else { "(" });
}

fn close(style: u32, out: &mut String) {
    out.push_str(if style & 0x4 != 0 { " )" } else { ")" });
}

fn print_sx(sx: &Sx, style: u32, depth: usize, out: &mut String) {
    match sx {
        Sx::Atom(text) => out.push_str(text),
        Sx::List(items) => {
            open(style, out);
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    sep(style, depth, out);
                }
                print_sx(item, style, depth + 1, out);
            }
            close(style, out);
        }
        Sx::Vector(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(if style & 0x2 != 0 { ", " } else { " " });
                }
                print_sx(item, style, depth + 1, out);
            }
            out.push(']');
        }
    }
}

fn render_def(def: &Def, style: u32, comments: bool, out: &mut String) {
    let comments: &[(bool, String)] = if comments { &def.comments } else { &[] };
    for (_, text) in comments.iter().filter(|(before, _)| *before) {
        let _ = writeln!(out, ";; {text}");
    }
    open(style, out);
    out.push_str("defn ");
    out.push_str(&def.name());
    out.push(' ');
    let params = Sx::Vector((0..def.arity).map(|p| atom(format!("a{p}"))).collect());
    print_sx(&params, style, 1, out);
    for (_, text) in comments.iter().filter(|(before, _)| !*before) {
        let _ = write!(out, " ; {text}\n ");
    }
    for line in &def.prints {
        sep(style, 0, out);
        let mut items = vec![atom("println")];
        items.extend(line.iter().map(|e| to_sx(e, style)));
        print_sx(&Sx::List(items), style, 1, out);
    }
    sep(style, 0, out);
    print_sx(&to_sx(&def.body, style), style, 1, out);
    close(style, out);
}

/// What the cache has seen: every key ever stored, and the last compiled per name.
#[derive(Default)]
struct CacheModel {
    seen: HashSet<(String, KeyInputs)>,
    last_compiled: HashMap<String, KeyInputs>,
}

/// Runs `path` on a fresh `JitCache` (`persistent` or not) and returns the report and output.
fn run_once(
    cache: &Path,
    path: &Path,
    persistent: bool,
) -> Result<(RunReport, String), TestCaseError> {
    let config = Config {
        persistent,
        ..Config::default()
    };
    let jit = JitCache::open(cache, config);
    let (report, out) =
        capture_output(|| jitcache_frontends::run::run(&jit, path, &RunOptions::default()));
    let report = report.map_err(|e| TestCaseError::fail(format!("run {}: {e}", path.display())))?;
    if persistent {
        prop_assert_eq!(jit.stats().bypassed, None);
    }
    Ok((report, String::from_utf8_lossy(&out).into_owned()))
}

/// Checks one version of the program, and records its keys in `cache_model`.
fn check_step(
    model: &Model,
    dir: &Path,
    cache_model: &mut CacheModel,
    history: &[String],
) -> Result<(), TestCaseError> {
    let source = model.render(false);
    let path = dir.join("prog.clj");
    std::fs::write(&path, &source).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let context = || format!("after edits {history:?}\nprogram:\n{source}");

    let (expected_out, expected_exit) = model.evaluate();
    let (reference, reference_out) = run_once(&dir.join("unused"), &path, false)?;
    prop_assert_eq!(
        &reference_out,
        &expected_out,
        "uncached output; {}",
        context()
    );
    prop_assert_eq!(
        reference.exit,
        expected_exit,
        "uncached exit; {}",
        context()
    );

    let (cached, cached_out) = run_once(&dir.join("cache"), &path, true)?;
    prop_assert_eq!(&cached_out, &reference_out, "cached output; {}", context());
    prop_assert_eq!(cached.exit, reference.exit, "cached exit; {}", context());

    let keys = model.keys();
    let mut expected: Vec<(String, MissReason)> = Vec::new();
    for def in &model.defs {
        let name = def.name();
        let inputs = &keys[&name];
        if cache_model.seen.contains(&(name.clone(), inputs.clone())) {
            continue;
        }
        let reason = match cache_model.last_compiled.get(&name) {
            None => MissReason::NewUnit,
            Some(last) => {
                let mut fields = Vec::new();
                if last.canonical != inputs.canonical {
                    fields.push(KeyField::Unit);
                }
                if last.callees != inputs.callees {
                    fields.push(KeyField::Deps);
                }
                MissReason::Changed(fields)
            }
        };
        expected.push((name, reason));
    }
    let mut actual = cached.compiled.clone();
    actual.sort_by(|a, b| a.0.cmp(&b.0));
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    prop_assert_eq!(
        &actual,
        &expected,
        "compiled units and reasons; {}",
        context()
    );
    prop_assert_eq!(cached.units, model.defs.len());
    prop_assert_eq!(
        cached.disk_hits as usize,
        model.defs.len() - expected.len(),
        "disk hits; {}",
        context()
    );

    for (name, _) in &expected {
        cache_model
            .last_compiled
            .insert(name.clone(), keys[name].clone());
    }
    for (name, inputs) in keys {
        cache_model.seen.insert((name, inputs));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 20,
        // A case runs a program several times: bound the time spent shrinking a failure.
        max_shrink_iters: 200,
        max_shrink_time: 90_000,
        ..ProptestConfig::default()
    })]

    #[test]
    fn cached_runs_match_uncached_runs_and_compile_exactly_what_changed(
        choices in prop::collection::vec(any::<u32>(), 200..1200),
    ) {
        let mut ch = Choices { data: &choices, pos: 0 };
        let mut model = Model::generate(&mut ch);
        let edits = 2 + ch.index(6);
        let dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut cache_model = CacheModel::default();
        let mut history = Vec::new();
        check_step(&model, dir.path(), &mut cache_model, &history)?;
        for _ in 0..edits {
            history.push(model.edit(&mut ch));
            check_step(&model, dir.path(), &mut cache_model, &history)?;
        }
    }
}

#[test]
fn the_model_renders_parsable_layouts_with_one_canonical_form() {
    // Every layout of one program parses, and the frontend's canonical bytes and callees
    // agree across layouts: the model's notion of "unchanged" is the frontend's.
    let data: Vec<u32> = (0..300u32).map(|i| i.wrapping_mul(2_654_435_761)).collect();
    let mut ch = Choices {
        data: &data,
        pos: 0,
    };
    let mut model = Model::generate(&mut ch);
    type Forms = Vec<(String, Vec<u8>, Vec<(String, usize)>)>;
    let mut canonical: Option<Forms> = None;
    for style in [
        0, 0x1, 0x2, 0x4, 0x8, 0x10, 0x18, 0x20, 0x41, 0x80, 0xff, 0x5d,
    ] {
        model.style = style;
        model.defs[0]
            .comments
            .push((style & 1 == 0, format!("style {style}")));
        let source = model.render(false);
        let program =
            jitcache_frontends::lisp::parse(&source).unwrap_or_else(|e| panic!("{e}\n{source}"));
        let forms: Vec<_> = program
            .defs()
            .iter()
            .map(|d| (d.name().to_owned(), d.canonical(), d.callees()))
            .collect();
        match &canonical {
            None => canonical = Some(forms),
            Some(first) => assert_eq!(first, &forms, "style {style:#x}:\n{source}"),
        }
    }
}
