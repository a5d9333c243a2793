//! S-expression trees for the tests: what the reader reads, as owned trees
//! (decoded from the canonical bytes, with the positions the reader finds
//! when asked), and the canonical encoding written out the straightforward
//! way, as a reference.

use crate::lisp::LispError;
use crate::lisp::Pos;
use crate::lisp::canonical::{CODEGEN_VERSION, Cursor, Datum};
use crate::lisp::reader;

/// A datum read from the source, with the position of its first character.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Sexp {
    /// Where the datum starts.
    pub pos: Pos,
    /// What it is.
    pub kind: SexpKind,
}

/// The shapes of data the reader produces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum SexpKind {
    /// An integer literal.
    Int(i64),
    /// A symbol.
    Sym(String),
    /// `( ... )`
    List(Vec<Sexp>),
    /// `[ ... ]`
    Vector(Vec<Sexp>),
}

/// Decodes the datum at `c`, with positions from `positions`.
fn tree_of(c: &mut Cursor<'_>, positions: &[(usize, Pos)]) -> Sexp {
    let at = c.at;
    let pos = positions[positions.binary_search_by_key(&at, |&(a, _)| a).unwrap()].1;
    let kind = match c.next().unwrap() {
        Datum::Int(v) => SexpKind::Int(v),
        Datum::Sym(name) => SexpKind::Sym(String::from_utf8(name.to_vec()).unwrap()),
        Datum::List(n) => SexpKind::List((0..n).map(|_| tree_of(c, positions)).collect()),
        Datum::Vector(n) => SexpKind::Vector((0..n).map(|_| tree_of(c, positions)).collect()),
    };
    Sexp { pos, kind }
}

/// Reads every top-level datum of `source`, as trees.
pub(super) fn read_all(source: &str) -> Result<Vec<Sexp>, LispError> {
    let (forms, positions) = reader::positions(source)?;
    // Reading with or without positions gives the same result.
    let plain = reader::read(source).unwrap();
    assert_eq!(plain.canon, forms.canon);
    assert_eq!(plain.div_lists, forms.div_lists);
    assert_eq!(plain.end, forms.end);
    // One position per datum.
    let mut count = 0;
    let trees = forms
        .tops
        .iter()
        .map(|top| {
            let mut c = Cursor::new(&forms.canon, top.datum());
            let tree = tree_of(&mut c, &positions);
            assert_eq!(c.at, top.canon_end);
            count += nodes(&tree);
            tree
        })
        .collect();
    assert_eq!(count, positions.len());
    Ok(trees)
}

fn nodes(s: &Sexp) -> usize {
    match &s.kind {
        SexpKind::List(v) | SexpKind::Vector(v) => 1 + v.iter().map(nodes).sum::<usize>(),
        _ => 1,
    }
}

/// The canonical encoding of `form`, written from the documented layout.
pub(super) fn encode(form: &Sexp) -> Vec<u8> {
    let mut out = b"jitcache-lisp-form\0".to_vec();
    out.extend_from_slice(&CODEGEN_VERSION.to_le_bytes());
    encode_into(form, &mut out);
    out
}

fn encode_into(form: &Sexp, out: &mut Vec<u8>) {
    match &form.kind {
        SexpKind::Int(v) => {
            out.push(b'I');
            out.extend_from_slice(&v.to_le_bytes());
        }
        SexpKind::Sym(s) => {
            out.push(b'S');
            out.extend_from_slice(&(s.len() as u64).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        SexpKind::List(items) | SexpKind::Vector(items) => {
            out.push(if matches!(form.kind, SexpKind::List(_)) {
                b'L'
            } else {
                b'V'
            });
            out.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for item in items {
                encode_into(item, out);
            }
        }
    }
}
