//! Why a unit missed: compare its key components with those of the last entry the store
//! recorded under the same namespace and name.

use std::fmt;
use std::path::PathBuf;

use jitcache_store::{KeyComponents, KeyField, UnitRecord, UnitState};

/// The reason a unit was compiled instead of loaded from the cache.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MissReason {
    /// The store has never held a unit of this namespace and name.
    NewUnit,
    /// The unit's key inputs changed since the last entry: these fields differ.
    Changed(Vec<KeyField>),
    /// The same key was stored before and evicted by `gc` or a size cap.
    Evicted,
    /// The same key was stored before, but its blob was found corrupt and dropped.
    Corrupt,
    /// The same key was stored before, but its entry is gone (removed or cleared).
    Removed,
    /// The cache was not consulted (`--no-cache`, or an unusable cache directory).
    Bypassed,
    /// A file the last compile of the unit read (a header) has other contents now, or is
    /// gone. The path is relative to the backend's base directory when inside it.
    InputChanged(PathBuf),
    /// A file that did not exist when the unit last compiled exists now, and would be
    /// read instead of one the compile read (a header earlier in the search path).
    InputAppeared(PathBuf),
}

impl MissReason {
    /// Explains a miss of a unit with `current` components, given the store's record of
    /// the last entry under the same namespace and name.
    pub fn explain(current: &KeyComponents, last: Option<&UnitRecord>) -> MissReason {
        let Some(last) = last else {
            return MissReason::NewUnit;
        };
        let changed = current.differences(&last.components);
        if !changed.is_empty() {
            return MissReason::Changed(changed);
        }
        match last.state {
            UnitState::Evicted => MissReason::Evicted,
            UnitState::Corrupt => MissReason::Corrupt,
            UnitState::Present => MissReason::Removed,
        }
    }
}

impl fmt::Display for MissReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MissReason::NewUnit => f.write_str("new unit"),
            MissReason::Changed(fields) => {
                for (i, field) in fields.iter().enumerate() {
                    let sep = match i {
                        0 => "",
                        _ if i + 1 == fields.len() => " and ",
                        _ => ", ",
                    };
                    match field {
                        KeyField::Backend => write!(f, "{sep}backend or version")?,
                        KeyField::Deps => write!(f, "{sep}a dependency's interface")?,
                        other => write!(f, "{sep}{other}")?,
                    }
                }
                f.write_str(" changed")
            }
            MissReason::Evicted => f.write_str("evicted"),
            MissReason::Corrupt => f.write_str("corrupt blob"),
            MissReason::Removed => f.write_str("entry removed"),
            MissReason::Bypassed => f.write_str("cache bypassed"),
            MissReason::InputChanged(path) => write!(f, "{} changed", path.display()),
            MissReason::InputAppeared(path) => {
                write!(
                    f,
                    "{} appeared (earlier in the search path)",
                    path.display()
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jitcache_store::KeyBuilder;

    fn components(source: &str, flags: &[&str], deps: &[[u8; 32]]) -> KeyComponents {
        let mut b = KeyBuilder::new("lisp", "f");
        b.unit(source.as_bytes())
            .backend("cranelift", "1")
            .flags(flags, jitcache_store::FlagOrder::Unordered);
        for d in deps {
            b.dep(d);
        }
        b.components()
    }

    fn record(c: KeyComponents, state: UnitState) -> UnitRecord {
        UnitRecord {
            key: c.key(),
            components: c,
            state,
        }
    }

    #[test]
    fn names_what_changed() {
        let old = components("(+ 1 2)", &["a"], &[]);
        let last = record(old.clone(), UnitState::Present);
        assert_eq!(MissReason::explain(&old, None), MissReason::NewUnit);
        let edited = components("(+ 1 3)", &["a"], &[]);
        let reason = MissReason::explain(&edited, Some(&last));
        assert_eq!(reason, MissReason::Changed(vec![KeyField::Unit]));
        assert_eq!(reason.to_string(), "source changed");
        let both = components("(+ 1 3)", &["b"], &[[1; 32]]);
        assert_eq!(
            MissReason::explain(&both, Some(&last)).to_string(),
            "source, flags and a dependency's interface changed"
        );
        let evicted = record(old.clone(), UnitState::Evicted);
        assert_eq!(
            MissReason::explain(&old, Some(&evicted)),
            MissReason::Evicted
        );
        let corrupt = record(old.clone(), UnitState::Corrupt);
        assert_eq!(
            MissReason::explain(&old, Some(&corrupt)),
            MissReason::Corrupt
        );
    }
}
