//! The [`Backend`] trait and what it hands out: an identity and objects.

use std::path::{Path, PathBuf};

use crate::Error;

/// Everything about a backend that can change the code it produces.
///
/// This is key material: two backends with equal identities must produce
/// interchangeable objects for the same unit, and a change to anything that
/// alters the output must change the identity.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BackendIdentity {
    /// Which backend: `"cranelift"`, `"cc/c"`, `"cc/c++"`.
    pub name: String,
    /// The backend's version. For Cranelift the crate version; for a system
    /// compiler a description of the exact compiler binary (resolved path,
    /// BLAKE3 of its contents, `--version` output).
    pub version: String,
    /// Normalized flags. When [`flags_ordered`](Self::flags_ordered) is false
    /// the order carries no meaning (and the list is sorted already).
    pub flags: Vec<String>,
    /// Whether the order of [`flags`](Self::flags) matters (it does for a
    /// compiler command line, where a later flag overrides an earlier one).
    pub flags_ordered: bool,
    /// Target triple and the resolved CPU (features), never a placeholder
    /// such as `native`.
    pub target: String,
}

/// A relocatable object file produced by a backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompiledObject {
    /// The bytes of an ELF relocatable object (`ET_REL`).
    pub bytes: Vec<u8>,
    /// The global symbols the object defines (functions and data), in the
    /// order they appear in the object's symbol table.
    pub symbols: Vec<String>,
    /// What the compile read besides the unit's own bytes (empty for a backend whose
    /// output depends on the unit alone).
    pub inputs: Inputs,
}

impl CompiledObject {
    /// An object that depends on the unit alone: no other inputs.
    pub fn new(bytes: Vec<u8>, symbols: Vec<String>) -> CompiledObject {
        CompiledObject {
            bytes,
            symbols,
            inputs: Inputs::default(),
        }
    }
}

/// What a compile read besides the unit's own bytes, as the compiler reported it: a
/// cache keys the object by these files' contents too (see `docs/backends.md`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Inputs {
    /// Every file the compile read (headers, precompiled headers, force-included files),
    /// absolute, without `..`, sorted and deduplicated.
    pub read: Vec<PathBuf>,
    /// Paths that did not exist when the compile ran and whose creation would change
    /// what it reads (a header earlier in the search path than one it used, or the
    /// missing directory on the way to such headers, which stands for all of them).
    pub absent: Vec<PathBuf>,
    /// Why the object must not be stored, if it must not (it embeds the time of the
    /// compile, or its source changed while it compiled).
    pub uncacheable: Option<String>,
}

/// A compiler that turns a unit into a relocatable object.
///
/// Implementations compute their [`identity`](Backend::identity) once, when
/// they are built, so asking for it is free.
pub trait Backend: Send + Sync {
    /// What this backend compiles.
    type Unit: ?Sized;

    /// The identity that goes into cache keys.
    fn identity(&self) -> &BackendIdentity;

    /// Compiles one unit into a relocatable object.
    ///
    /// # Errors
    ///
    /// A typed [`Error`] naming the unit, function or symbol at fault.
    fn compile(&self, unit: &Self::Unit) -> Result<CompiledObject, Error>;

    /// Whether a compile may read files besides the unit (a C compiler reads headers),
    /// reported in [`CompiledObject::inputs`]. A cache then keeps, under the unit's key,
    /// a manifest of the files each compile read, and checks them on every lookup.
    fn may_read_files(&self) -> bool {
        false
    }

    /// The directory relative to which input paths are recorded, so that two checkouts
    /// of a program at different paths share cache entries (`None`: paths are recorded
    /// as they are).
    fn base_dir(&self) -> Option<&Path> {
        None
    }
}
