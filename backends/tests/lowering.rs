//! The object the Cranelift backend makes of a fixed unit, against a golden hash: the
//! lowering of a `ClifUnit` into an object (symbol naming, linkage, colocation, sections)
//! must not change without `LOWERING_REVISION` changing, or a cache would hand out
//! objects of the old lowering under the new one's keys.
//!
//! The ISA is the x86-64 baseline (every `has_*` feature off), so the object is the same
//! on every machine. When the lowering changes on purpose, bump `LOWERING_REVISION`, then
//! run `JITCACHE_UPDATE_GOLDEN=1 cargo test -p jitcache-backends --test lowering`. A new
//! Cranelift version changes the identity anyway; the golden file is rewritten for it
//! the same way.

use jitcache_backends::{Backend, ClifUnit, CraneliftBackend, CraneliftConfig, LOWERING_REVISION};

/// Functions calling each other and an import, with data-free arithmetic and branches.
const UNIT: &str = "
function %square(i64) -> i64 {
block0(v0: i64):
    v1 = imul v0, v0
    return v1
}

function %sum_squares(i64) -> i64 {
    fn0 = %square(i64) -> i64
    fn1 = %host_log(i64)
block0(v0: i64):
    v1 = iconst.i64 0
    jump block1(v0, v1)
block1(v2: i64, v3: i64):
    brif v2, block2, block3
block2:
    v4 = call fn0(v2)
    v5 = iadd v3, v4
    v6 = iconst.i64 -1
    v7 = iadd v2, v6
    jump block1(v7, v5)
block3:
    call fn1(v3)
    return v3
}
";

const GOLDEN: &str = "tests/golden/lowering.txt";

/// The golden line for this build: Cranelift's version, the lowering revision, and the
/// BLAKE3 of the object.
fn current() -> String {
    let probe = CraneliftBackend::new(CraneliftConfig::default()).expect("host ISA");
    let baseline: Vec<String> = probe
        .identity()
        .flags
        .iter()
        .filter_map(|f| f.split_once('=').map(|(name, _)| name))
        .filter(|name| name.starts_with("has_"))
        .map(|name| format!("{name}=false"))
        .collect();
    let backend = CraneliftBackend::new(CraneliftConfig {
        flags: baseline,
        ..CraneliftConfig::default()
    })
    .expect("baseline ISA");
    let object = backend
        .compile(&ClifUnit::parse(UNIT).expect("parse"))
        .expect("compile");
    format!(
        "cranelift={} lowering={LOWERING_REVISION} blake3={}\n",
        backend.identity().version,
        blake3::hash(&object.bytes).to_hex()
    )
}

#[test]
fn the_object_changes_only_with_the_lowering_revision() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(GOLDEN);
    let now = current();
    let golden = std::fs::read_to_string(&path).unwrap_or_default();
    if now == golden {
        return;
    }
    let prefix = |line: &str| line.rsplit_once(' ').map(|(p, _)| p.to_owned());
    assert_ne!(
        prefix(&golden),
        prefix(&now),
        "the Cranelift backend's object for a fixed unit changed, but the Cranelift \
         version and LOWERING_REVISION did not: bump LOWERING_REVISION, then rewrite \
         {GOLDEN} (golden {golden:?}, now {now:?})"
    );
    if std::env::var_os("JITCACHE_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &now).expect("write the golden file");
        return;
    }
    panic!(
        "{GOLDEN} is for {golden:?}, this build is {now:?}: rewrite it with JITCACHE_UPDATE_GOLDEN=1"
    );
}

#[test]
fn the_fixed_unit_compiles_to_the_same_bytes_twice() {
    // Without determinism the golden hash would say nothing.
    assert_eq!(current(), current());
}
