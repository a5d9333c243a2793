//! The reader: source text to S-expressions with positions.
//!
//! Whitespace (including `,`) and `;` comments separate tokens and leave no
//! trace in the result, so reformatting a program does not change what the
//! reader produces, apart from positions.

use crate::lisp::error::{LispError, LispErrorKind, Pos};

/// A datum read from the source, with the position of its first character.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Sexp {
    /// Where the datum starts.
    pub pos: Pos,
    /// What it is.
    pub kind: SexpKind,
}

/// The shapes of data the reader produces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SexpKind {
    /// An integer literal.
    Int(i64),
    /// A symbol.
    Sym(String),
    /// `( ... )`
    List(Vec<Sexp>),
    /// `[ ... ]`
    Vector(Vec<Sexp>),
}

impl Sexp {
    /// The symbol's name, if this is a symbol.
    pub fn as_sym(&self) -> Option<&str> {
        match &self.kind {
            SexpKind::Sym(s) => Some(s),
            _ => None,
        }
    }
}

/// Characters a symbol may contain besides ASCII letters and digits.
const SYMBOL_PUNCT: &str = "*+!-_?<>=/.%&$'";

fn is_symbol_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || SYMBOL_PUNCT.contains(c)
}

fn is_whitespace(c: char) -> bool {
    c == ',' || c.is_whitespace()
}

struct Reader<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    line: u32,
    column: u32,
}

impl Reader<'_> {
    fn pos(&self) -> Pos {
        Pos::new(self.line, self.column)
    }

    fn peek(&mut self) -> Option<char> {
        self.chars.peek().copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.chars.next()?;
        if c == '\n' {
            self.line = self.line.saturating_add(1);
            self.column = 1;
        } else {
            self.column = self.column.saturating_add(1);
        }
        Some(c)
    }

    /// Skips whitespace and comments.
    fn skip_trivia(&mut self) {
        while let Some(c) = self.peek() {
            if is_whitespace(c) {
                self.bump();
            } else if c == ';' {
                while let Some(c) = self.peek() {
                    if c == '\n' {
                        break;
                    }
                    self.bump();
                }
            } else {
                break;
            }
        }
    }

    /// Reads one datum; the caller has skipped trivia and checked there is a character.
    fn datum(&mut self, depth: usize) -> Result<Sexp, LispError> {
        let pos = self.pos();
        let Some(c) = self.peek() else {
            return Err(syntax(pos, "unexpected end of input"));
        };
        match c {
            '(' | '[' => {
                if depth >= crate::lisp::MAX_DEPTH {
                    return Err(LispError::new(pos, LispErrorKind::TooDeep));
                }
                self.bump();
                let close = if c == '(' { ')' } else { ']' };
                let mut items = Vec::new();
                loop {
                    self.skip_trivia();
                    match self.peek() {
                        None => {
                            return Err(syntax(
                                pos,
                                &format!("`{c}` is never closed (expected `{close}`)"),
                            ));
                        }
                        Some(d) if d == close => {
                            self.bump();
                            break;
                        }
                        Some(d @ (')' | ']' | '}')) => {
                            return Err(syntax(
                                self.pos(),
                                &format!(
                                    "`{d}` does not match `{c}` at {pos} (expected `{close}`)"
                                ),
                            ));
                        }
                        Some(_) => items.push(self.datum(depth + 1)?),
                    }
                }
                let kind = if c == '(' {
                    SexpKind::List(items)
                } else {
                    SexpKind::Vector(items)
                };
                Ok(Sexp { pos, kind })
            }
            ')' | ']' | '}' => Err(syntax(pos, &format!("unexpected `{c}`"))),
            '{' => Err(syntax(pos, "maps `{...}` are not supported")),
            '"' => Err(syntax(pos, "strings are not supported")),
            '\'' | '`' | '~' | '@' | '^' | '#' | '\\' => {
                Err(syntax(pos, &format!("reader macro `{c}` is not supported")))
            }
            _ => self.atom(pos),
        }
    }

    fn atom(&mut self, pos: Pos) -> Result<Sexp, LispError> {
        let mut text = String::new();
        while let Some(c) = self.peek() {
            if is_whitespace(c) || matches!(c, '(' | ')' | '[' | ']' | '{' | '}' | ';' | '"') {
                break;
            }
            if !is_symbol_char(c) {
                let at = self.pos();
                return Err(syntax(at, &format!("unexpected character `{c}`")));
            }
            text.push(c);
            self.bump();
        }
        let bytes = text.as_bytes();
        let numeric = match bytes {
            [b'+' | b'-', d, ..] => d.is_ascii_digit(),
            [d, ..] => d.is_ascii_digit(),
            [] => false,
        };
        if !numeric {
            return Ok(Sexp {
                pos,
                kind: SexpKind::Sym(text),
            });
        }
        let digits = text.strip_prefix(['+', '-']).unwrap_or(&text);
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(syntax(pos, &format!("invalid number `{text}`")));
        }
        // `i64::from_str` accepts a leading `+` or `-` and checks the range.
        match text.parse::<i64>() {
            Ok(v) => Ok(Sexp {
                pos,
                kind: SexpKind::Int(v),
            }),
            Err(_) => Err(LispError::new(pos, LispErrorKind::IntegerOutOfRange(text))),
        }
    }
}

fn syntax(pos: Pos, msg: &str) -> LispError {
    LispError::new(pos, LispErrorKind::Syntax(msg.to_owned()))
}

/// Reads every top-level datum of `source`.
pub(crate) fn read_all(source: &str) -> Result<Vec<Sexp>, LispError> {
    let mut r = Reader {
        chars: source.chars().peekable(),
        line: 1,
        column: 1,
    };
    let mut out = Vec::new();
    loop {
        r.skip_trivia();
        if r.peek().is_none() {
            return Ok(out);
        }
        out.push(r.datum(0)?);
    }
}

/// The position just after the last character of `source` (for errors about
/// something missing from the whole program).
pub(crate) fn end_pos(source: &str) -> Pos {
    let mut line = 1u32;
    let mut column = 1u32;
    for c in source.chars() {
        if c == '\n' {
            line = line.saturating_add(1);
            column = 1;
        } else {
            column = column.saturating_add(1);
        }
    }
    Pos::new(line, column)
}
