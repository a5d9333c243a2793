//! Cache keys: what a compiled function depends on, and nothing that varies between
//! processes that compile the same thing (numeric ids, addresses).
//!
//! A function's key is made of
//!
//! - Cranelift's own key of the function (`incremental_cache::compute_cache_key`): a
//!   SHA-256 of the function's *stencil* (signature, stack slots, global values, the data
//!   flow graph, layout, source locations, debug tags: everything but its name and the
//!   table of external names, which is where the numeric ids live) and of the ISA (name,
//!   triple, shared flags, ISA flags);
//! - the external names the function refers to, in the order of its table, each by what
//!   it is rather than by its id: a function's name (or that it is anonymous), linkage
//!   and signature; a data object's name (or that it is anonymous), linkage,
//!   writability and thread-locality;
//! - the function's own name (what `jitcache ls` shows; two functions with the same body
//!   are two entries of one blob);
//! - the backend: `cranelift` and `cranelift_codegen::VERSION`;
//! - every shared and ISA setting as `name=value` (`opt_level=speed`, `has_avx2=true`,
//!   ...) and this crate's [`CACHE_REVISION`];
//! - the target: the triple, the ISA's name and the enabled ISA flags (the CPU
//!   features).
//!
//! The key of an entry of [`PersistentKvStore`](crate::PersistentKvStore) is Cranelift's
//! key with the backend, the settings and the revision, in its own namespace.

use cranelift_codegen::ir::Function;
use cranelift_codegen::isa::TargetIsa;
use cranelift_module::{DataId, FuncId, ModuleDeclarations};
use jitcache_store::{FlagOrder, KeyBuilder};

/// Revision of the way this crate keys and stores compiled functions. Part of every key:
/// it changes whenever what is stored, or how a key is made, changes.
pub const CACHE_REVISION: u32 = 1;

/// The namespace of the drop-in's entries.
pub(crate) const FUNCTION_NAMESPACE: &str = "cranelift-jit";

/// The namespace of [`PersistentKvStore`](crate::PersistentKvStore)'s entries.
pub(crate) const KV_NAMESPACE: &str = "cranelift-incremental";

/// A key builder holding the backend, settings and target of code compiled by `isa`.
pub(crate) fn prototype(isa: &dyn TargetIsa) -> KeyBuilder {
    let mut flags: Vec<String> = isa
        .flags()
        .iter()
        .chain(isa.isa_flags())
        .map(|v| format!("{}={}", v.name, v.value_string()))
        .collect();
    flags.push(format!("jitcache-cranelift.revision={CACHE_REVISION}"));
    let features: Vec<&str> = isa
        .isa_flags()
        .iter()
        .filter(|v| v.as_bool() == Some(true))
        .map(|v| v.name)
        .collect();
    let mut builder = KeyBuilder::new("", "");
    builder
        .backend("cranelift", cranelift_codegen::VERSION)
        .flags(&flags, FlagOrder::Unordered)
        .target(&format!(
            "{} isa={} features={}",
            isa.triple(),
            isa.name(),
            features.join(",")
        ));
    builder
}

/// A key builder for [`PersistentKvStore`](crate::PersistentKvStore): Cranelift's keys
/// already cover the ISA and its settings, so only the version and the revision are
/// added.
pub(crate) fn kv_prototype() -> KeyBuilder {
    let mut builder = KeyBuilder::new("", "");
    builder
        .backend("cranelift", cranelift_codegen::VERSION)
        .flags(
            [format!("jitcache-cranelift.revision={CACHE_REVISION}")],
            FlagOrder::Unordered,
        );
    builder
}

/// Namespace of function ids in `UserExternalName`s made by cranelift-module.
const FUNC_NAMESPACE: u32 = 0;
/// Namespace of data ids.
const DATA_NAMESPACE: u32 = 1;

/// Appends `bytes` with a length prefix, so that consecutive fields cannot run together.
fn field(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// Writes into `out` what each entry of `func`'s table of external names refers to, in
/// the table's order: a function's name, linkage and signature, a data object's name,
/// linkage, writability and thread-locality. Returns `false` (and leaves `out`
/// meaningless) when an entry names no declaration of the module: such a function is
/// compiled without the cache, and `cranelift_jit`'s own checks report the problem.
pub(crate) fn describe_names(
    func: &Function,
    declarations: &ModuleDeclarations,
    counts: (usize, usize),
    out: &mut Vec<u8>,
) -> bool {
    use std::fmt::Write as _;
    out.clear();
    let mut text = String::new();
    for (_, name) in func.params.user_named_funcs().iter() {
        let index = name.index as usize;
        text.clear();
        // Writing into a String cannot fail.
        let (kind, symbol) = match name.namespace {
            FUNC_NAMESPACE if index < counts.0 => {
                let decl = declarations.get_function_decl(FuncId::from_u32(name.index));
                let _ = write!(text, "{:?} {}", decl.linkage, decl.signature);
                (b'f', decl.name.as_deref())
            }
            DATA_NAMESPACE if index < counts.1 => {
                let decl = declarations.get_data_decl(DataId::from_u32(name.index));
                let _ = write!(
                    text,
                    "{:?} writable={} tls={}",
                    decl.linkage, decl.writable, decl.tls
                );
                (b'd', decl.name.as_deref())
            }
            _ => return false,
        };
        out.push(kind);
        match symbol {
            Some(symbol) => {
                out.push(b'n');
                field(out, symbol.as_bytes());
            }
            None => out.push(b'a'),
        }
        field(out, text.as_bytes());
    }
    true
}
