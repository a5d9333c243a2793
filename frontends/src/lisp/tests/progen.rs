//! A random generator of valid, terminating programs (driven by a seed, so
//! proptest can pick seeds), and a printer that reformats read forms with
//! random whitespace and comments.

use super::sexp::{Sexp, SexpKind};

/// splitmix64: small, deterministic, good enough for test generation.
pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub(super) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub(super) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub(super) fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

struct Callee {
    name: String,
    arity: usize,
}

struct ProgramGen {
    rng: Rng,
    fresh: usize,
}

/// A random valid program that terminates without dividing by zero: a few
/// definitions calling only definitions further down (so there is no
/// unbounded recursion), counting loops, a function-level `recur`, a
/// mutually recursive pair with a bounded argument, and a `main` that prints.
pub(super) fn program(seed: u64) -> String {
    let mut g = ProgramGen {
        rng: Rng::new(seed),
        fresh: 0,
    };
    let n = 1 + g.rng.below(6);
    let arities: Vec<usize> = (0..n).map(|_| g.rng.below(4)).collect();
    let mut out = String::new();
    // Mutual recursion, with an argument the callers bound to 0..30.
    out.push_str("(defn ev? [n] (if (= n 0) 1 (od? (- n 1))))\n");
    out.push_str("(defn od? [n] (if (= n 0) 0 (ev? (- n 1))))\n");
    // A function-level recur; callers bound `n` to 0..10.
    out.push_str("(defn count-down [n acc] (if (<= n 0) acc (recur (- n 1) (+ acc n))))\n");
    for i in 0..n {
        let callees: Vec<Callee> = (i + 1..n)
            .map(|j| Callee {
                name: format!("f{j}"),
                arity: arities[j],
            })
            .collect();
        let params: Vec<String> = (0..arities[i]).map(|k| format!("p{k}")).collect();
        let body = g.expr(3, &params, &callees);
        out.push_str(&format!("(defn f{i} [{}] {body})\n", params.join(" ")));
    }
    let callees: Vec<Callee> = (0..n)
        .map(|j| Callee {
            name: format!("f{j}"),
            arity: arities[j],
        })
        .collect();
    let mut main = String::from("(defn main []");
    // Call every definition once, so each is exercised.
    for c in &callees {
        let args = g.args(c.arity, 2, &[], &callees);
        main.push_str(&format!(" (println ({} {args}))", c.name));
    }
    for _ in 0..1 + g.rng.below(3) {
        let e = g.expr(3, &[], &callees);
        let f = g.expr(2, &[], &callees);
        main.push_str(&format!(" (println {e} {f})"));
    }
    let status = g.expr(2, &[], &callees);
    main.push_str(&format!(" (mod {status} 100))\n"));
    out.push_str(&main);
    out
}

impl ProgramGen {
    fn name(&mut self, prefix: &str) -> String {
        self.fresh += 1;
        format!("{prefix}{}", self.fresh)
    }

    fn literal(&mut self) -> String {
        match self.rng.below(8) {
            0 => i64::MIN.to_string(),
            1 => i64::MAX.to_string(),
            2 => "-1".to_owned(),
            3 => "0".to_owned(),
            4 => (self.rng.next() as i64).to_string(),
            _ => (self.rng.below(41) as i64 - 20).to_string(),
        }
    }

    fn args(&mut self, n: usize, depth: usize, locals: &[String], callees: &[Callee]) -> String {
        (0..n)
            .map(|_| self.expr(depth, locals, callees))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// `min + below(extra)` arguments.
    fn some_args(
        &mut self,
        min: usize,
        extra: usize,
        depth: usize,
        locals: &[String],
        callees: &[Callee],
    ) -> String {
        let n = min + self.rng.below(extra);
        self.args(n, depth, locals, callees)
    }

    fn expr(&mut self, depth: usize, locals: &[String], callees: &[Callee]) -> String {
        if depth == 0 || self.rng.chance(20) {
            if !locals.is_empty() && self.rng.chance(60) {
                return locals[self.rng.below(locals.len())].clone();
            }
            return self.literal();
        }
        let d = depth - 1;
        match self.rng.below(17) {
            0 => format!("(+ {})", self.some_args(0, 4, d, locals, callees)),
            1 => format!("(* {})", self.some_args(0, 4, d, locals, callees)),
            2 => format!("(- {})", self.some_args(1, 3, d, locals, callees)),
            3 => {
                // A divisor in 1..=7, or -1 or 1 computed at run time.
                let a = self.expr(d, locals, callees);
                let b = self.expr(d, locals, callees);
                let divisor = match self.rng.below(3) {
                    0 => format!("(+ 1 (mod {b} 7))"),
                    1 => format!("(- (* 2 (mod {b} 2)) 1)"),
                    _ => ["-1", "3", "-5", "1"][self.rng.below(4)].to_owned(),
                };
                let op = if self.rng.chance(50) { "/" } else { "mod" };
                format!("({op} {a} {divisor})")
            }
            4 => {
                let op = ["<", "<=", ">", ">=", "="][self.rng.below(5)];
                format!("({op} {})", self.some_args(1, 3, d, locals, callees))
            }
            5 => format!("(not {})", self.expr(d, locals, callees)),
            6 => {
                let op = if self.rng.chance(50) { "and" } else { "or" };
                format!("({op} {})", self.some_args(0, 4, d, locals, callees))
            }
            7 => {
                let mut locals = locals.to_vec();
                let mut bindings = Vec::new();
                for _ in 0..1 + self.rng.below(3) {
                    let init = self.expr(d, &locals, callees);
                    // Sometimes shadow an existing local.
                    let name = if !locals.is_empty() && self.rng.chance(20) {
                        locals[self.rng.below(locals.len())].clone()
                    } else {
                        self.name("x")
                    };
                    bindings.push(format!("{name} {init}"));
                    locals.push(name);
                }
                let body = self.expr(d, &locals, callees);
                format!("(let [{}] {body})", bindings.join(" "))
            }
            8 => format!(
                "(if {} {} {})",
                self.expr(d, locals, callees),
                self.expr(d, locals, callees),
                self.expr(d, locals, callees)
            ),
            9 => format!("(do {})", self.some_args(0, 3, d, locals, callees)),
            10 => format!("(println {})", self.some_args(0, 3, d, locals, callees)),
            11 | 12 if !callees.is_empty() => {
                let c = &callees[self.rng.below(callees.len())];
                let (name, arity) = (c.name.clone(), c.arity);
                if arity == 0 {
                    format!("({name})")
                } else {
                    format!("({name} {})", self.args(arity, d, locals, callees))
                }
            }
            13 => {
                let i = self.name("i");
                let acc = self.name("acc");
                let init = self.expr(d, locals, callees);
                let k = self.rng.below(6);
                let mut inner = locals.to_vec();
                inner.push(i.clone());
                inner.push(acc.clone());
                let step = self.expr(d, &inner, callees);
                format!(
                    "(loop [{i} 0 {acc} {init}] (if (< {i} {k}) (recur (+ {i} 1) {step}) {acc}))"
                )
            }
            14 => format!("(ev? (mod {} 30))", self.expr(d, locals, callees)),
            15 => format!(
                "(count-down (mod {} 10) {})",
                self.expr(d, locals, callees),
                self.expr(d, locals, callees)
            ),
            _ => self.literal(),
        }
    }
}

/// Prints `forms` back as source with random whitespace, commas, comments
/// and spellings of integers, so that reading it gives the same forms.
pub(super) fn reformat(forms: &[Sexp], rng: &mut Rng) -> String {
    let mut out = String::new();
    for f in forms {
        trivia(&mut out, rng, true);
        print(f, &mut out, rng);
    }
    trivia(&mut out, rng, false);
    out
}

fn trivia(out: &mut String, rng: &mut Rng, required: bool) {
    if required {
        out.push(' ');
    }
    for _ in 0..rng.below(3) {
        match rng.below(6) {
            0 => out.push('\n'),
            1 => out.push('\t'),
            2 => out.push(','),
            3 => out.push_str("  "),
            4 => out.push_str("; a comment (with [brackets] \"and quotes\")\n"),
            _ => out.push_str("\r\n"),
        }
    }
}

fn print(s: &Sexp, out: &mut String, rng: &mut Rng) {
    match &s.kind {
        SexpKind::Int(v) => match rng.below(4) {
            0 if *v >= 0 => out.push_str(&format!("+{v}")),
            1 if *v >= 0 => out.push_str(&format!("00{v}")),
            2 if *v < 0 => out.push_str(&format!("-0{}", v.unsigned_abs())),
            _ => out.push_str(&v.to_string()),
        },
        SexpKind::Sym(name) => out.push_str(name),
        SexpKind::List(items) | SexpKind::Vector(items) => {
            let (open, close) = if matches!(s.kind, SexpKind::List(_)) {
                ('(', ')')
            } else {
                ('[', ']')
            };
            out.push(open);
            for (i, item) in items.iter().enumerate() {
                trivia(out, rng, i > 0);
                print(item, out, rng);
            }
            trivia(out, rng, false);
            out.push(close);
        }
    }
}

#[test]
fn generated_programs_are_valid() {
    for seed in 0..200 {
        let src = program(seed);
        super::ok(&src);
    }
}
