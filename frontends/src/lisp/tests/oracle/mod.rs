//! The frontend as it was before the flat reader and the lazily built
//! bodies (commit abc3b6a), frozen: it reads owned trees, clones each form
//! into its definition and checks eagerly. `differential` compares the
//! frontend against it. When the language itself changes, delete this
//! module and `differential` rather than porting the change here.

#![allow(dead_code, missing_docs, clippy::all)]

pub(super) mod ast;
pub(super) mod canonical;
pub(super) mod check;
pub(super) mod program;
pub(super) mod reader;
