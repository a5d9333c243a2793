//! Private directories for other components' files that belong with the cache (the C
//! backend's remembered compiler probes, say): `<root>/v1/components/<name>/`, created
//! 0700 like the rest, removed by `clear`.

use std::path::PathBuf;

use crate::error::{Error, io_err};
use crate::layout::create_private_dir;
use crate::store::Store;

impl Store {
    /// The directory `v1/components/<name>` (created, private), for a component's own
    /// files. `name` must be a single plain path component (letters, digits, `-`, `_`,
    /// `.`), so a caller cannot reach outside the cache.
    pub fn component_dir(&self, name: &str) -> Result<PathBuf, Error> {
        let plain = !name.is_empty()
            && name != "."
            && name != ".."
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        let dir = self.layout.dir.join("components").join(name);
        if !plain {
            return Err(io_err(
                &dir,
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "a component name is one plain path component",
                ),
            ));
        }
        if !dir.is_dir() {
            create_private_dir(&dir).map_err(|e| io_err(&dir, e))?;
        }
        Ok(dir)
    }
}
