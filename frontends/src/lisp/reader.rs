//! The reader: source text to the canonical encoding of every top-level form
//! (see [`super::canonical`]), which is also the tree the checker walks.
//!
//! Whitespace (including `,`) and `;` comments separate tokens and leave no
//! trace in the result, so reformatting a program does not change what the
//! reader produces, apart from positions.
//!
//! Positions are not stored per datum: the reader records the few the
//! program needs (each definition's name, each `/` and `mod` form), and an
//! error found later is placed by reading the source again with
//! [`positions`].

use super::canonical::{self, FORM_HEADER_LEN};
use super::error::{LispError, LispErrorKind, Pos};

/// A top-level form: the range of its canonical bytes (header included) and
/// where its second element (a definition's name) is.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Top {
    pub canon_start: usize,
    pub canon_end: usize,
    pub name_pos: Pos,
}

impl Top {
    /// Where the form's datum starts in the canonical bytes (after the header).
    pub fn datum(&self) -> usize {
        self.canon_start + FORM_HEADER_LEN
    }
}

/// Everything read from a source text.
#[derive(Debug)]
pub(crate) struct Forms {
    /// The canonical encodings of the top-level forms, one after the other.
    pub canon: Vec<u8>,
    /// The top-level forms, in order.
    pub tops: Vec<Top>,
    /// The lists whose first element is `/` or `mod`: where each starts in
    /// `canon`, and in the source. In order.
    pub div_lists: Vec<(usize, Pos)>,
    /// The position just after the last character of the source (for errors
    /// about something missing from the whole program).
    pub end: Pos,
}

/// Byte classes of ASCII characters.
const WHITESPACE: u8 = 1;
/// Ends an atom: `( ) [ ] { } ; "`.
const DELIMITER: u8 = 2;
/// May appear in a symbol: ASCII letters, digits and `* + ! - _ ? < > = / . % & $ '`.
const SYMBOL: u8 = 4;

/// Characters a symbol may contain besides ASCII letters and digits.
const SYMBOL_PUNCT: &[u8] = b"*+!-_?<>=/.%&$'";

/// The class of every byte (non-ASCII bytes have none).
const CLASSES: [u8; 256] = {
    let mut t = [0u8; 256];
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
    CLASSES[usize::from(b)]
}

/// The number of characters in `bytes` (which hold whole UTF-8 characters).
fn char_count(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| (b & 0xc0) != 0x80).count()
}

/// The position of byte `offset` of `source`: lines count `\n`, columns count
/// characters since the last `\n`, both from 1 (saturating, as the reader).
pub(crate) fn pos_at(source: &str, offset: usize) -> Pos {
    let before = source.as_bytes().get(..offset).unwrap_or(source.as_bytes());
    let newlines = before.iter().filter(|&&b| b == b'\n').count();
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let column = char_count(before.get(line_start..).unwrap_or_default());
    Pos::new(
        u32::try_from(newlines)
            .unwrap_or(u32::MAX)
            .saturating_add(1),
        u32::try_from(column).unwrap_or(u32::MAX).saturating_add(1),
    )
}

struct Reader<'a> {
    source: &'a str,
    bytes: &'a [u8],
    /// Byte offset of the next character (always on a character boundary).
    at: usize,
    /// The current line (from 1), where it starts, and whether it has only
    /// ASCII characters up to `at` (so that columns are byte counts).
    line: u32,
    line_start: usize,
    line_ascii: bool,
    forms: Forms,
    /// If set, the position of every datum, by where it starts in the
    /// canonical bytes.
    positions: Option<Vec<(usize, Pos)>>,
}

impl Reader<'_> {
    /// The position of the next character.
    fn pos(&self) -> Pos {
        self.pos_of(self.at)
    }

    /// The position of byte `offset`, at or before the next character.
    fn pos_of(&self, offset: usize) -> Pos {
        if offset < self.line_start {
            // On an earlier line (the start of a list spanning lines).
            return pos_at(self.source, offset);
        }
        let column = if self.line_ascii {
            offset - self.line_start
        } else {
            char_count(self.bytes.get(self.line_start..offset).unwrap_or_default())
        };
        Pos::new(
            self.line,
            u32::try_from(column).unwrap_or(u32::MAX).saturating_add(1),
        )
    }

    /// The character at the current offset (for the rare non-ASCII ones).
    fn char_here(&self) -> Option<char> {
        self.source.get(self.at..)?.chars().next()
    }

    /// Skips whitespace and comments.
    fn skip_trivia(&mut self) {
        while let Some(&b) = self.bytes.get(self.at) {
            if b == b'\n' {
                self.at += 1;
                self.line = self.line.saturating_add(1);
                self.line_start = self.at;
                self.line_ascii = true;
            } else if b == b';' {
                // A comment runs up to the newline (not included).
                let rest = self.bytes.get(self.at..).unwrap_or_default();
                let len = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
                if !rest.get(..len).unwrap_or_default().is_ascii() {
                    self.line_ascii = false;
                }
                self.at += len;
            } else if b < 0x80 {
                if class(b) != WHITESPACE {
                    return;
                }
                self.at += 1;
            } else {
                match self.char_here() {
                    Some(c) if c.is_whitespace() => {
                        self.at += c.len_utf8();
                        self.line_ascii = false;
                    }
                    _ => return,
                }
            }
        }
    }

    fn syntax_at(&self, offset: usize, msg: &str) -> LispError {
        syntax(pos_at(self.source, offset), msg)
    }

    /// Reads one datum; the caller has skipped trivia and checked there is a character.
    fn datum(&mut self, depth: usize) -> Result<(), LispError> {
        let Some(&b) = self.bytes.get(self.at) else {
            return Err(self.syntax_at(self.at, "unexpected end of input"));
        };
        if self.positions.is_some() {
            let pos = self.pos();
            let at = self.forms.canon.len();
            if let Some(positions) = &mut self.positions {
                positions.push((at, pos));
            }
        }
        match b {
            b'(' | b'[' => self.sequence(b, depth),
            b')' | b']' | b'}' => {
                Err(self.syntax_at(self.at, &format!("unexpected `{}`", char::from(b))))
            }
            b'{' => Err(self.syntax_at(self.at, "maps `{...}` are not supported")),
            b'"' => Err(self.syntax_at(self.at, "strings are not supported")),
            b'\'' | b'`' | b'~' | b'@' | b'^' | b'#' | b'\\' => Err(self.syntax_at(
                self.at,
                &format!("reader macro `{}` is not supported", char::from(b)),
            )),
            _ => self.atom(),
        }
    }

    /// Reads `( ... )` or `[ ... ]`, starting with `open`.
    fn sequence(&mut self, open: u8, depth: usize) -> Result<(), LispError> {
        let start = self.at;
        if depth >= super::MAX_DEPTH {
            return Err(LispError::new(
                pos_at(self.source, start),
                LispErrorKind::TooDeep,
            ));
        }
        self.at += 1;
        let (close, tag) = if open == b'(' {
            (b')', canonical::LIST)
        } else {
            (b']', canonical::VECTOR)
        };
        let canon_at = self.forms.canon.len();
        let count_at = canonical::open_sequence(&mut self.forms.canon, tag);
        let mut len = 0u64;
        loop {
            self.skip_trivia();
            match self.bytes.get(self.at) {
                None => {
                    return Err(self.syntax_at(
                        start,
                        &format!(
                            "`{}` is never closed (expected `{}`)",
                            char::from(open),
                            char::from(close)
                        ),
                    ));
                }
                Some(&d) if d == close => {
                    self.at += 1;
                    break;
                }
                Some(&d @ (b')' | b']' | b'}')) => {
                    let open_pos = pos_at(self.source, start);
                    return Err(self.syntax_at(
                        self.at,
                        &format!(
                            "`{}` does not match `{}` at {open_pos} (expected `{}`)",
                            char::from(d),
                            char::from(open),
                            char::from(close)
                        ),
                    ));
                }
                Some(_) => {
                    if depth == 0 && len == 1 {
                        let pos = self.pos();
                        if let Some(top) = self.forms.tops.last_mut() {
                            top.name_pos = pos;
                        }
                    }
                    let element = self.forms.canon.len();
                    self.datum(depth + 1)?;
                    if len == 0 && open == b'(' && self.is_division(element) {
                        let pos = self.pos_of(start);
                        self.forms.div_lists.push((canon_at, pos));
                    }
                    len += 1;
                }
            }
        }
        canonical::close_sequence(&mut self.forms.canon, count_at, len);
        Ok(())
    }

    /// Whether the canonical bytes from `element` on are the symbol `/` or `mod`.
    fn is_division(&self, element: usize) -> bool {
        const SLASH: &[u8] = b"S\x01\0\0\0\0\0\0\0/";
        const MOD: &[u8] = b"S\x03\0\0\0\0\0\0\0mod";
        let written = self.forms.canon.get(element..).unwrap_or_default();
        written == SLASH || written == MOD
    }

    fn atom(&mut self) -> Result<(), LispError> {
        let start = self.at;
        let rest = self.bytes.get(start..).unwrap_or_default();
        self.at += rest
            .iter()
            .position(|&b| class(b) != SYMBOL)
            .unwrap_or(rest.len());
        // What ends the atom: the end, whitespace or a delimiter, or else a
        // character that has no place in the language.
        if let Some(&b) = self.bytes.get(self.at) {
            if b < 0x80 {
                if !matches!(class(b), WHITESPACE | DELIMITER) {
                    return Err(self.syntax_at(
                        self.at,
                        &format!("unexpected character `{}`", char::from(b)),
                    ));
                }
            } else if let Some(c) = self.char_here()
                && !c.is_whitespace()
            {
                return Err(self.syntax_at(self.at, &format!("unexpected character `{c}`")));
            }
        }
        let text = self.source.get(start..self.at).unwrap_or_default();
        let numeric = match text.as_bytes() {
            [b'+' | b'-', d, ..] => d.is_ascii_digit(),
            [d, ..] => d.is_ascii_digit(),
            [] => false,
        };
        if !numeric {
            canonical::symbol(&mut self.forms.canon, text.as_bytes());
            return Ok(());
        }
        let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(self.syntax_at(start, &format!("invalid number `{text}`")));
        }
        // `i64::from_str` accepts a leading `+` or `-` and checks the range.
        match text.parse::<i64>() {
            Ok(v) => {
                canonical::int(&mut self.forms.canon, v);
                Ok(())
            }
            Err(_) => Err(LispError::new(
                pos_at(self.source, start),
                LispErrorKind::IntegerOutOfRange(text.to_owned()),
            )),
        }
    }
}

fn syntax(pos: Pos, msg: &str) -> LispError {
    LispError::new(pos, LispErrorKind::Syntax(msg.to_owned()))
}

fn reader(source: &str, positions: bool) -> Reader<'_> {
    Reader {
        source,
        bytes: source.as_bytes(),
        at: 0,
        line: 1,
        line_start: 0,
        line_ascii: true,
        forms: Forms {
            // Programs encode to about three and a half bytes per byte of source.
            canon: Vec::with_capacity(source.len().saturating_mul(4).saturating_add(64)),
            tops: Vec::new(),
            div_lists: Vec::new(),
            end: Pos::new(1, 1),
        },
        positions: positions.then(Vec::new),
    }
}

fn read_into(r: &mut Reader<'_>) -> Result<(), LispError> {
    loop {
        r.skip_trivia();
        if r.at >= r.bytes.len() {
            r.forms.end = r.pos();
            return Ok(());
        }
        let canon_start = canonical::open_form(&mut r.forms.canon);
        r.forms.tops.push(Top {
            canon_start,
            canon_end: canon_start,
            name_pos: Pos::new(1, 1),
        });
        r.datum(0)?;
        let canon_end = r.forms.canon.len();
        if let Some(top) = r.forms.tops.last_mut() {
            top.canon_end = canon_end;
        }
    }
}

/// Reads every top-level datum of `source`, and encodes each canonically.
pub(crate) fn read(source: &str) -> Result<Forms, LispError> {
    let mut r = reader(source, false);
    read_into(&mut r)?;
    Ok(r.forms)
}

/// Reads `source` (which [`read`] accepts) and returns what it reads with
/// the position of every datum, by where the datum starts in the canonical
/// bytes (in increasing order).
pub(crate) fn positions(source: &str) -> Result<(Forms, Vec<(usize, Pos)>), LispError> {
    let mut r = reader(source, true);
    read_into(&mut r)?;
    let positions = r.positions.take().unwrap_or_default();
    Ok((r.forms, positions))
}
