//! The one error type of the crate: every failure names the object, section, offset,
//! symbol or library involved.

use std::fmt;

use crate::UnitId;

/// A place in an input object: the object's name, a section name and an offset in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The object's name as given in [`crate::ObjectFile::name`].
    pub object: String,
    /// The section's name (or `#index` when it has none).
    pub section: String,
    /// Byte offset inside the section.
    pub offset: u64,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: section {} offset {:#x}",
            self.object, self.section, self.offset
        )
    }
}

/// What is not supported, in an [`Error::Unsupported`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Unsupported {
    /// A thread-local construct the linker does not serve: a TLS relocation objects do not
    /// carry, a thread-local of the host process, a non-TLS reference to a thread-local
    /// variable. The string says which.
    ThreadLocal(String),
    /// An initial-exec or local-exec thread-local access (`R_X86_64_GOTTPOFF`,
    /// `R_X86_64_TPOFF32`), which assumes a static TLS block fixed at start-up that
    /// loaded code cannot join; `-fPIC` (or `-ftls-model=global-dynamic`) avoids it.
    StaticTls {
        /// `"initial-exec"` or `"local-exec"`.
        model: &'static str,
        /// The `R_X86_64_*` name.
        relocation: &'static str,
    },
    /// An `STT_GNU_IFUNC` symbol defined by the object (the named symbol).
    Ifunc(String),
    /// A relocation kind the linker does not apply.
    Relocation {
        /// The raw `r_type`.
        r_type: u32,
        /// Its `R_X86_64_*` name, or `"unknown"`.
        name: &'static str,
    },
    /// An allocated section of a type the linker does not load (the raw `sh_type`).
    SectionType(u32),
    /// Relocations in a form other than `SHT_RELA` (`SHT_REL`, `SHT_CREL`) on a loaded section.
    RelocationFormat(u32),
    /// A compressed allocated section.
    CompressedSection,
    /// Legacy `.ctors`/`.dtors` sections (modern compilers emit `.init_array`).
    LegacyConstructors,
    /// A relocation (outside `.eh_frame`) against a local symbol of a COMDAT group that
    /// was not loaded because an earlier copy of the group was.
    DiscardedSection(String),
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unsupported::ThreadLocal(what) => write!(f, "thread-local storage ({what})"),
            Unsupported::StaticTls { model, relocation } => write!(
                f,
                "{model} TLS access ({relocation}): it needs the static TLS block fixed at \
                 start-up; compile with -fPIC (and no -ftls-model=initial-exec/local-exec) \
                 or -ftls-model=global-dynamic"
            ),
            Unsupported::Ifunc(symbol) => write!(f, "IFUNC symbol `{symbol}`"),
            Unsupported::Relocation { r_type, name } => {
                write!(f, "relocation {name} (type {r_type})")
            }
            Unsupported::SectionType(t) => write!(f, "allocated section of type {t:#x}"),
            Unsupported::RelocationFormat(t) => {
                write!(
                    f,
                    "relocation section of type {t:#x} (only SHT_RELA is loaded)"
                )
            }
            Unsupported::CompressedSection => write!(f, "compressed allocated section"),
            Unsupported::LegacyConstructors => write!(f, "legacy .ctors/.dtors section"),
            Unsupported::DiscardedSection(symbol) => {
                write!(f, "reference to `{symbol}` in a discarded COMDAT group")
            }
        }
    }
}

/// Everything that can go wrong while loading, resolving or unloading.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The bytes are not a well-formed ELF64 relocatable object: a bad header, an
    /// offset, size or index out of bounds, a relocation outside its section.
    #[error("{object}: malformed object: {reason}")]
    Malformed {
        /// The object's name.
        object: String,
        /// What is wrong.
        reason: String,
    },
    /// A well-formed ELF file that this linker does not load (another machine, not `ET_REL`).
    #[error("{object}: not an x86-64 ELF64 relocatable object: {reason}")]
    WrongKind {
        /// The object's name.
        object: String,
        /// What it is instead.
        reason: String,
    },
    /// A construct the linker does not support (TLS, IFUNC, an unknown relocation kind).
    #[error("{at}: unsupported {kind}")]
    Unsupported {
        /// Where it was found.
        at: Location,
        /// What it is.
        kind: Unsupported,
    },
    /// No definition found in the unit, earlier units, the resolver, the host or the
    /// opened libraries.
    #[error("{at}: undefined symbol `{symbol}`")]
    UndefinedSymbol {
        /// The first relocation that needs it.
        at: Location,
        /// The symbol's name.
        symbol: String,
    },
    /// Two objects of one unit both define the same global symbol (not weak, not common).
    #[error("duplicate symbol `{symbol}`: defined in {first} and in {second}")]
    DuplicateSymbol {
        /// The symbol's name.
        symbol: String,
        /// The object with the first definition.
        first: String,
        /// The object with the second definition.
        second: String,
    },
    /// A relocation's value does not fit its field; nothing was written.
    #[error(
        "{at}: {relocation} against `{symbol}` does not fit in its {bits}-bit field \
         (value {value:#x}){}",
        hint(relocation)
    )]
    OutOfRange {
        /// The relocation's place.
        at: Location,
        /// Its `R_X86_64_*` name.
        relocation: &'static str,
        /// The symbol it refers to.
        symbol: String,
        /// The value that did not fit.
        value: i64,
        /// The field's width in bits.
        bits: u32,
    },
    /// `dlopen` of a library failed.
    #[error("cannot open library `{name}`: {reason}")]
    Library {
        /// The name as given.
        name: String,
        /// `dlerror()`'s message.
        reason: String,
    },
    /// A system call on the unit's memory failed.
    #[error("{op} failed: {source}")]
    Memory {
        /// `mmap`, `mprotect`, ...
        op: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// A unit larger than the ±2 GiB that PC-relative references can span.
    #[error("unit too large: {size} bytes (at most 1 GiB)")]
    TooLarge {
        /// Bytes the layout asked for.
        size: u64,
    },
    /// The unit cannot be unloaded yet: other threads that are still running hold C++
    /// `thread_local` objects of it whose destructors run when those threads exit. (The
    /// unloading thread's own run at unload.) The unit stays loaded and usable.
    #[error(
        "unit {unit} stays loaded: {destructors} thread_local destructor(s) of it are \
         pending in threads that have not exited"
    )]
    ThreadLocalsInUse {
        /// The unit.
        unit: UnitId,
        /// Destructors registered by other threads and not yet run.
        destructors: usize,
    },
    /// The unit id does not name a loaded unit.
    #[error("no loaded unit {0}")]
    UnknownUnit(UnitId),
    /// A [`crate::Symbol`] was called after its unit was unloaded: nothing was called.
    #[error("`{symbol}` belongs to unit {unit}, which is unloaded")]
    UnitUnloaded {
        /// The unit the symbol belonged to.
        unit: UnitId,
        /// The symbol's name.
        symbol: String,
    },
    /// The unit cannot be unloaded now: calls through its [`crate::Symbol`] handles are
    /// running (in other threads, or the unload was called from inside one). The unit
    /// stays loaded and usable.
    #[error("unit {unit} stays loaded: {calls} call(s) into it through its handles are running")]
    UnitInUse {
        /// The unit.
        unit: UnitId,
        /// Calls running when the unload was asked.
        calls: usize,
    },
    /// [`crate::call::call_i64`] was asked to call address 0.
    #[error("call of address 0")]
    NullAddress,
    /// [`crate::call::call_i64`] got more arguments than travel in registers.
    #[error("{given} arguments given; at most 6 integer arguments are supported")]
    TooManyArguments {
        /// How many were given.
        given: usize,
    },
}

fn hint(relocation: &str) -> &'static str {
    match relocation {
        "R_X86_64_PC32" => ": the target lies beyond ±2 GiB of the loaded code; compile with -fPIC",
        "R_X86_64_32" | "R_X86_64_32S" => {
            ": the target is not in the low 2 GiB; compile with -fPIC"
        }
        _ => "",
    }
}
