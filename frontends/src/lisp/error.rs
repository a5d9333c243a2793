//! Source positions and the error type of the Lisp frontend.

use std::fmt;

/// A position in the source text: 1-based line and 1-based column.
///
/// Columns count Unicode scalar values (characters), not bytes, so a position
/// points at the same character an editor shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    /// 1-based line number.
    pub line: u32,
    /// 1-based column number, in characters.
    pub column: u32,
}

impl Pos {
    /// A position from a line and a column, both 1-based.
    pub const fn new(line: u32, column: u32) -> Pos {
        Pos { line, column }
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// What went wrong, without the position (see [`LispError`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LispErrorKind {
    /// The text is not a well-formed sequence of forms (unbalanced brackets,
    /// a character the language does not use, ...). The string says what.
    Syntax(String),
    /// An integer literal does not fit in an `i64`.
    IntegerOutOfRange(String),
    /// Forms nest deeper than the frontend accepts (see [`super::MAX_DEPTH`]).
    TooDeep,
    /// A top-level form is not `(defn ...)`, or a special form is malformed.
    /// The string says what was expected.
    BadForm(String),
    /// A symbol names no local, definition, built-in or special form.
    UnknownName(String),
    /// A definition, built-in or special form was given the wrong number of arguments.
    Arity {
        /// The name called.
        name: String,
        /// What it accepts, in words ("2", "at least 1", ...).
        expected: String,
        /// How many it was given.
        got: usize,
    },
    /// A definition's name is already defined earlier in the file.
    DuplicateDefinition {
        /// The name defined twice.
        name: String,
        /// Where the first definition is.
        first: Pos,
    },
    /// A parameter list names the same parameter twice.
    DuplicateParameter(String),
    /// A name of a special form or built-in is used as a definition,
    /// parameter or local name.
    ReservedName(String),
    /// A local (an integer) is used in call position.
    NotAFunction(String),
    /// A definition is used as a value; functions are not first-class values.
    NotAValue(String),
    /// `recur` appears outside a tail position.
    RecurNotInTail,
    /// `recur` has a different number of arguments than its target's bindings.
    RecurArity {
        /// What the target (the enclosing `loop` or `defn`) binds.
        expected: usize,
        /// How many arguments `recur` was given.
        got: usize,
    },
    /// The program has no `(defn main [] ...)`.
    NoMain,
    /// `main` takes parameters; it must take none.
    MainArity(usize),
    /// Cranelift rejected the generated code: a bug in the frontend, reported
    /// rather than panicking.
    Codegen(String),
}

/// An error of the Lisp frontend, with the position it refers to.
///
/// `Display` gives `line L, column C: message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LispError {
    /// Where in the source the error is.
    pub pos: Pos,
    /// What the error is.
    pub kind: LispErrorKind,
}

impl LispError {
    /// An error of `kind` at `pos`.
    pub fn new(pos: Pos, kind: LispErrorKind) -> LispError {
        LispError { pos, kind }
    }

    /// The 1-based line the error refers to.
    pub fn line(&self) -> u32 {
        self.pos.line
    }

    /// The 1-based column the error refers to.
    pub fn column(&self) -> u32 {
        self.pos.column
    }
}

impl fmt::Display for LispErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LispErrorKind::Syntax(msg) => write!(f, "syntax error: {msg}"),
            LispErrorKind::IntegerOutOfRange(text) => {
                write!(f, "integer literal `{text}` does not fit in 64 bits")
            }
            LispErrorKind::TooDeep => {
                write!(f, "forms nest deeper than {} levels", super::MAX_DEPTH)
            }
            LispErrorKind::BadForm(msg) => write!(f, "{msg}"),
            LispErrorKind::UnknownName(name) => write!(f, "unknown name `{name}`"),
            LispErrorKind::Arity {
                name,
                expected,
                got,
            } => write!(
                f,
                "wrong number of arguments to `{name}`: expected {expected}, got {got}"
            ),
            LispErrorKind::DuplicateDefinition { name, first } => {
                write!(f, "`{name}` is already defined at {first}")
            }
            LispErrorKind::DuplicateParameter(name) => {
                write!(f, "parameter `{name}` appears twice")
            }
            LispErrorKind::ReservedName(name) => write!(
                f,
                "`{name}` is a special form or built-in and cannot be (re)bound"
            ),
            LispErrorKind::NotAFunction(name) => {
                write!(f, "`{name}` is a local integer, not a function")
            }
            LispErrorKind::NotAValue(name) => write!(
                f,
                "`{name}` is a function; functions are not values (call it as `({name} ...)`)"
            ),
            LispErrorKind::RecurNotInTail => write!(f, "`recur` is not in tail position"),
            LispErrorKind::RecurArity { expected, got } => write!(
                f,
                "`recur` needs {expected} argument(s) to match its target's bindings, got {got}"
            ),
            LispErrorKind::NoMain => write!(f, "no `(defn main [] ...)` in the program"),
            LispErrorKind::MainArity(n) => {
                write!(f, "`main` must take no parameters, it takes {n}")
            }
            LispErrorKind::Codegen(msg) => write!(f, "internal code generation error: {msg}"),
        }
    }
}

impl fmt::Display for LispError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.pos, self.kind)
    }
}

impl std::error::Error for LispError {}
