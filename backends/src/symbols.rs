//! Reading the global symbols an object file defines.

use object::{Object, ObjectKind, ObjectSymbol};

use crate::Error;

/// The global (and weak) symbols defined by a relocatable object, including
/// COMMON symbols, in symbol-table order.
///
/// `unit` only names the object in errors.
///
/// # Errors
///
/// [`Error::BadObject`] if `bytes` is not a relocatable object file or a
/// defined symbol's name is not UTF-8.
///
/// # Examples
///
/// ```
/// let err = jitcache_backends::defined_symbols(b"not an object", "junk").unwrap_err();
/// assert!(err.to_string().contains("junk"));
/// ```
pub fn defined_symbols(bytes: &[u8], unit: &str) -> Result<Vec<String>, Error> {
    let bad = |message: String| Error::BadObject {
        unit: unit.to_owned(),
        message,
    };
    let file = object::File::parse(bytes).map_err(|e| bad(e.to_string()))?;
    if file.kind() != ObjectKind::Relocatable {
        return Err(bad(format!(
            "expected a relocatable object, found {:?}",
            file.kind()
        )));
    }
    let mut names = Vec::new();
    for symbol in file.symbols() {
        if !symbol.is_global() || !(symbol.is_definition() || symbol.is_common()) {
            continue;
        }
        let name = symbol
            .name()
            .map_err(|e| bad(format!("symbol {}: {e}", symbol.index().0)))?;
        if !name.is_empty() {
            names.push(name.to_owned());
        }
    }
    Ok(names)
}
