//! The checked program: every name resolved, every arity and `recur` checked.

/// Index of a local variable (parameter, `let` or `loop` binding) within one definition.
pub(crate) type VarId = usize;

/// Index of a `loop` within one definition.
pub(crate) type LoopId = usize;

/// Where a `recur` jumps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RecurTarget {
    /// The enclosing definition's start, rebinding its parameters.
    Function,
    /// The start of a `loop`, rebinding its bindings.
    Loop(LoopId),
}

/// Primitive operations on integers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PrimOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Not,
}

/// A checked expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Expr {
    /// An integer literal.
    Int(i64),
    /// A local variable.
    Var(VarId),
    /// `(let [x e ...] body...)`
    Let {
        bindings: Vec<(VarId, Expr)>,
        body: Vec<Expr>,
    },
    /// `(if c a b)`; a missing else is `0`.
    If {
        cond: Box<Expr>,
        then: Box<Expr>,
        els: Box<Expr>,
    },
    /// `(do ...)`
    Do(Vec<Expr>),
    /// `(loop [i 0 ...] body...)`
    Loop {
        id: LoopId,
        bindings: Vec<(VarId, Expr)>,
        body: Vec<Expr>,
    },
    /// `(recur ...)` in tail position.
    Recur {
        target: RecurTarget,
        args: Vec<Expr>,
    },
    /// A call to a definition, by its mangled symbol.
    Call { symbol: String, args: Vec<Expr> },
    /// A primitive. `site` numbers `/` and `mod` forms within the definition
    /// (in source order) so a division by zero can be reported precisely.
    Prim {
        op: PrimOp,
        args: Vec<Expr>,
        site: u32,
    },
    /// `(and ...)`: short-circuit; `0` if any is `0`, else the last value (`1` if empty).
    And(Vec<Expr>),
    /// `(or ...)`: short-circuit; the first non-zero value, else `0`.
    Or(Vec<Expr>),
    /// `(println ...)`
    Println(Vec<Expr>),
}

/// The loop variables of one `loop`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LoopInfo {
    pub vars: Vec<VarId>,
}

/// A checked definition body, ready for code generation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Body {
    /// Number of locals (parameters first, then bindings in source order).
    pub num_vars: usize,
    /// The loops, indexed by [`LoopId`].
    pub loops: Vec<LoopInfo>,
    /// The body's expressions.
    pub exprs: Vec<Expr>,
    /// Whether some `recur` targets the function itself.
    pub recurs_to_function: bool,
}
