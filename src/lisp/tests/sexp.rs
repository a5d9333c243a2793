//! S-expression trees for the tests: what the reader reads, as an owned tree
//! (built from the reader's flat nodes), and the canonical encoding written
//! out the straightforward way, as a reference for the bytes the reader
//! computes while reading.

use crate::lisp::LispError;
use crate::lisp::Pos;
use crate::lisp::canonical::CODEGEN_VERSION;
use crate::lisp::reader::{self, NodeId, NodeKind, Tree};

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

fn tree_of(tree: Tree<'_>, id: NodeId) -> Sexp {
    let node = tree.node(id);
    let kind = match node.kind {
        NodeKind::Int(v) => SexpKind::Int(v),
        NodeKind::Sym { .. } => SexpKind::Sym(tree.sym(id).unwrap().to_owned()),
        NodeKind::List { .. } => {
            SexpKind::List(tree.elements(id).map(|e| tree_of(tree, e)).collect())
        }
        NodeKind::Vector { .. } => {
            SexpKind::Vector(tree.elements(id).map(|e| tree_of(tree, e)).collect())
        }
    };
    Sexp {
        pos: node.pos,
        kind,
    }
}

/// Reads every top-level datum of `source`, as trees.
pub(super) fn read_all(source: &str) -> Result<Vec<Sexp>, LispError> {
    let forms = reader::read(source)?;
    let tree = Tree {
        source,
        nodes: &forms.nodes,
    };
    // Every node belongs to exactly one top-level form, in order.
    let mut next = 0;
    for top in &forms.tops {
        assert_eq!(top.node, next);
        next = tree.node(top.node).end;
    }
    assert_eq!(next as usize, forms.nodes.len());
    Ok(forms.tops.iter().map(|t| tree_of(tree, t.node)).collect())
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
