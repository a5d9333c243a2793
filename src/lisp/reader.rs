//! The reader: source text to a flat tree of data with positions, plus the
//! canonical bytes of every top-level form (see [`super::canonical`]).
//!
//! Whitespace (including `,`) and `;` comments separate tokens and leave no
//! trace in the result, so reformatting a program does not change what the
//! reader produces, apart from positions.
//!
//! The tree is one vector of [`Node`]s in pre-order: a list's elements follow
//! it, and each node records where its subtree ends, so reading allocates
//! nothing per datum and symbols are ranges of the source text.

use super::canonical;
use super::error::{LispError, LispErrorKind, Pos};

/// Index of a [`Node`] in its tree.
pub(crate) type NodeId = u32;

/// The shapes of data the reader produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NodeKind {
    /// An integer literal.
    Int(i64),
    /// A symbol: the bytes `start..start + len` of the source.
    Sym { start: u32, len: u32 },
    /// `( ... )` with `len` elements.
    List { len: u32 },
    /// `[ ... ]` with `len` elements.
    Vector { len: u32 },
}

/// A datum read from the source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Node {
    /// Where the datum starts.
    pub pos: Pos,
    /// One past the last node of this datum (its elements come right after it).
    pub end: NodeId,
    /// What it is.
    pub kind: NodeKind,
}

/// A top-level form: its node and the range of its canonical bytes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Top {
    pub node: NodeId,
    pub canon_start: usize,
    pub canon_end: usize,
}

/// Everything read from a source text.
#[derive(Debug)]
pub(crate) struct Forms {
    /// Every datum, in pre-order.
    pub nodes: Vec<Node>,
    /// The top-level forms, in order.
    pub tops: Vec<Top>,
    /// The canonical encodings of the top-level forms, one after the other.
    pub canon: Vec<u8>,
    /// The position just after the last character of the source (for errors
    /// about something missing from the whole program).
    pub end: Pos,
}

/// A read tree with its source: what symbols and elements are.
#[derive(Clone, Copy)]
pub(crate) struct Tree<'a> {
    pub source: &'a str,
    pub nodes: &'a [Node],
}

impl<'a> Tree<'a> {
    /// The node `id` (every id in a tree is in range).
    pub fn node(&self, id: NodeId) -> Node {
        self.nodes[id as usize]
    }

    /// The symbol's name, if `id` is a symbol.
    pub fn sym(&self, id: NodeId) -> Option<&'a str> {
        match self.node(id).kind {
            NodeKind::Sym { start, len } => {
                let start = start as usize;
                self.source.get(start..start + len as usize)
            }
            _ => None,
        }
    }

    /// The elements of a list or vector (nothing for an atom).
    pub fn elements(&self, id: NodeId) -> Elements<'a> {
        let node = self.node(id);
        let len = match node.kind {
            NodeKind::List { len } | NodeKind::Vector { len } => len,
            NodeKind::Int(_) | NodeKind::Sym { .. } => 0,
        };
        Elements {
            nodes: self.nodes,
            next: id + 1,
            left: len,
        }
    }
}

/// The elements of a list or vector, or what is left of them.
#[derive(Clone, Copy)]
pub(crate) struct Elements<'a> {
    nodes: &'a [Node],
    next: NodeId,
    left: u32,
}

impl Elements<'_> {
    /// How many elements are left.
    pub fn len(&self) -> usize {
        self.left as usize
    }

    /// Whether no elements are left.
    pub fn is_empty(&self) -> bool {
        self.left == 0
    }
}

impl Iterator for Elements<'_> {
    type Item = NodeId;

    fn next(&mut self) -> Option<NodeId> {
        if self.left == 0 {
            return None;
        }
        let id = self.next;
        self.next = self.nodes.get(id as usize)?.end;
        self.left -= 1;
        Some(id)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.len(), Some(self.len()))
    }
}

impl ExactSizeIterator for Elements<'_> {}

/// Byte classes of ASCII characters.
const WHITESPACE: u8 = 1;
/// Ends an atom: `( ) [ ] { } ; "`.
const DELIMITER: u8 = 2;
/// May appear in a symbol: ASCII letters, digits and `* + ! - _ ? < > = / . % & $ '`.
const SYMBOL: u8 = 4;

/// Characters a symbol may contain besides ASCII letters and digits.
const SYMBOL_PUNCT: &[u8] = b"*+!-_?<>=/.%&$'";

const CLASSES: [u8; 128] = {
    let mut t = [0u8; 128];
    // `,` and what `char::is_whitespace` accepts among ASCII characters.
    let ws: &[u8] = b" \t\n\x0b\x0c\r,";
    let mut i = 0;
    while i < ws.len() {
        t[ws[i] as usize] = WHITESPACE;
        i += 1;
    }
    let delim: &[u8] = b"()[]{};\"";
    let mut i = 0;
    while i < delim.len() {
        t[delim[i] as usize] = DELIMITER;
        i += 1;
    }
    let mut i = 0;
    while i < SYMBOL_PUNCT.len() {
        t[SYMBOL_PUNCT[i] as usize] = SYMBOL;
        i += 1;
    }
    let mut c = 0;
    while c < 128 {
        if (c as u8).is_ascii_alphanumeric() {
            t[c] = SYMBOL;
        }
        c += 1;
    }
    t
};

fn class(b: u8) -> u8 {
    CLASSES.get(b as usize).copied().unwrap_or(0)
}

/// The number of characters in `bytes` (which hold whole UTF-8 characters).
fn char_count(bytes: &[u8]) -> u32 {
    let n = bytes.iter().filter(|&&b| (b & 0xc0) != 0x80).count();
    u32::try_from(n).unwrap_or(u32::MAX)
}

struct Reader<'a> {
    source: &'a str,
    bytes: &'a [u8],
    /// Byte offset of the next character (always on a character boundary).
    at: usize,
    line: u32,
    column: u32,
    forms: Forms,
}

impl Reader<'_> {
    fn pos(&self) -> Pos {
        Pos::new(self.line, self.column)
    }

    /// The character at the current offset (for the rare non-ASCII ones).
    fn char_here(&self) -> Option<char> {
        self.source.get(self.at..)?.chars().next()
    }

    /// Steps over one ASCII character other than a newline.
    fn bump_ascii(&mut self) {
        self.at += 1;
        self.column = self.column.saturating_add(1);
    }

    /// Skips whitespace and comments.
    fn skip_trivia(&mut self) {
        while let Some(&b) = self.bytes.get(self.at) {
            if b == b'\n' {
                self.at += 1;
                self.line = self.line.saturating_add(1);
                self.column = 1;
            } else if b == b';' {
                // A comment runs up to the newline (not included).
                let rest = self.bytes.get(self.at..).unwrap_or_default();
                let len = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
                self.column = self
                    .column
                    .saturating_add(char_count(rest.get(..len).unwrap_or_default()));
                self.at += len;
            } else if b < 0x80 {
                if class(b) != WHITESPACE {
                    return;
                }
                self.bump_ascii();
            } else {
                match self.char_here() {
                    Some(c) if c.is_whitespace() => {
                        self.at += c.len_utf8();
                        self.column = self.column.saturating_add(1);
                    }
                    _ => return,
                }
            }
        }
    }

    fn push_node(&mut self, pos: Pos, kind: NodeKind) -> NodeId {
        // The source is at most `u32::MAX` bytes and every node takes one.
        let id = NodeId::try_from(self.forms.nodes.len()).unwrap_or(NodeId::MAX);
        self.forms.nodes.push(Node {
            pos,
            end: id.saturating_add(1),
            kind,
        });
        id
    }

    /// Reads one datum; the caller has skipped trivia and checked there is a character.
    fn datum(&mut self, depth: usize) -> Result<(), LispError> {
        let pos = self.pos();
        let Some(&b) = self.bytes.get(self.at) else {
            return Err(syntax(pos, "unexpected end of input"));
        };
        match b {
            b'(' | b'[' => self.sequence(pos, b, depth),
            b')' | b']' | b'}' => Err(syntax(pos, &format!("unexpected `{}`", char::from(b)))),
            b'{' => Err(syntax(pos, "maps `{...}` are not supported")),
            b'"' => Err(syntax(pos, "strings are not supported")),
            b'\'' | b'`' | b'~' | b'@' | b'^' | b'#' | b'\\' => Err(syntax(
                pos,
                &format!("reader macro `{}` is not supported", char::from(b)),
            )),
            _ => self.atom(pos),
        }
    }

    /// Reads `( ... )` or `[ ... ]` starting with `open` at `pos`.
    fn sequence(&mut self, pos: Pos, open: u8, depth: usize) -> Result<(), LispError> {
        if depth >= super::MAX_DEPTH {
            return Err(LispError::new(pos, LispErrorKind::TooDeep));
        }
        self.bump_ascii();
        let (close, tag) = if open == b'(' {
            (b')', canonical::LIST)
        } else {
            (b']', canonical::VECTOR)
        };
        let id = self.push_node(pos, NodeKind::List { len: 0 });
        let count_at = canonical::open_sequence(&mut self.forms.canon, tag);
        let mut len = 0u32;
        loop {
            self.skip_trivia();
            match self.bytes.get(self.at) {
                None => {
                    return Err(syntax(
                        pos,
                        &format!(
                            "`{}` is never closed (expected `{}`)",
                            char::from(open),
                            char::from(close)
                        ),
                    ));
                }
                Some(&d) if d == close => {
                    self.bump_ascii();
                    break;
                }
                Some(&d @ (b')' | b']' | b'}')) => {
                    return Err(syntax(
                        self.pos(),
                        &format!(
                            "`{}` does not match `{}` at {pos} (expected `{}`)",
                            char::from(d),
                            char::from(open),
                            char::from(close)
                        ),
                    ));
                }
                Some(_) => {
                    self.datum(depth + 1)?;
                    len = len.saturating_add(1);
                }
            }
        }
        canonical::close_sequence(&mut self.forms.canon, count_at, len);
        let end = NodeId::try_from(self.forms.nodes.len()).unwrap_or(NodeId::MAX);
        if let Some(node) = self.forms.nodes.get_mut(id as usize) {
            node.end = end;
            node.kind = if open == b'(' {
                NodeKind::List { len }
            } else {
                NodeKind::Vector { len }
            };
        }
        Ok(())
    }

    fn atom(&mut self, pos: Pos) -> Result<(), LispError> {
        let start = self.at;
        while let Some(&b) = self.bytes.get(self.at) {
            if b < 0x80 {
                match class(b) {
                    SYMBOL => self.bump_ascii(),
                    WHITESPACE | DELIMITER => break,
                    _ => {
                        return Err(syntax(
                            self.pos(),
                            &format!("unexpected character `{}`", char::from(b)),
                        ));
                    }
                }
            } else {
                match self.char_here() {
                    Some(c) if c.is_whitespace() => break,
                    Some(c) => {
                        return Err(syntax(self.pos(), &format!("unexpected character `{c}`")));
                    }
                    None => break,
                }
            }
        }
        let text = self.source.get(start..self.at).unwrap_or_default();
        let numeric = match text.as_bytes() {
            [b'+' | b'-', d, ..] => d.is_ascii_digit(),
            [d, ..] => d.is_ascii_digit(),
            [] => false,
        };
        if !numeric {
            canonical::symbol(&mut self.forms.canon, text);
            // The source is at most `u32::MAX` bytes long (checked by `read`).
            let start = u32::try_from(start).unwrap_or(u32::MAX);
            let len = u32::try_from(text.len()).unwrap_or(u32::MAX);
            self.push_node(pos, NodeKind::Sym { start, len });
            return Ok(());
        }
        let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(syntax(pos, &format!("invalid number `{text}`")));
        }
        // `i64::from_str` accepts a leading `+` or `-` and checks the range.
        match text.parse::<i64>() {
            Ok(v) => {
                canonical::int(&mut self.forms.canon, v);
                self.push_node(pos, NodeKind::Int(v));
                Ok(())
            }
            Err(_) => Err(LispError::new(
                pos,
                LispErrorKind::IntegerOutOfRange(text.to_owned()),
            )),
        }
    }
}

fn syntax(pos: Pos, msg: &str) -> LispError {
    LispError::new(pos, LispErrorKind::Syntax(msg.to_owned()))
}

/// Reads every top-level datum of `source`, and encodes each canonically.
pub(crate) fn read(source: &str) -> Result<Forms, LispError> {
    if u32::try_from(source.len()).is_err() {
        return Err(syntax(
            Pos::new(1, 1),
            "programs larger than 4 GiB are not supported",
        ));
    }
    let mut r = Reader {
        source,
        bytes: source.as_bytes(),
        at: 0,
        line: 1,
        column: 1,
        forms: Forms {
            // About one datum per four bytes and four bytes of canonical encoding per byte.
            nodes: Vec::with_capacity(source.len() / 4),
            tops: Vec::new(),
            canon: Vec::with_capacity(source.len().saturating_mul(4)),
            end: Pos::new(1, 1),
        },
    };
    loop {
        r.skip_trivia();
        if r.at >= r.bytes.len() {
            r.forms.end = r.pos();
            return Ok(r.forms);
        }
        let node = NodeId::try_from(r.forms.nodes.len()).unwrap_or(NodeId::MAX);
        let canon_start = canonical::open_form(&mut r.forms.canon);
        r.datum(0)?;
        r.forms.tops.push(Top {
            node,
            canon_start,
            canon_end: r.forms.canon.len(),
        });
    }
}
