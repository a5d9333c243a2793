//! Redefinition through the facade: a unit loaded again for a name the process already
//! has (new bytes, so a new key) rebinds the name for every earlier caller with
//! [`Binding::Stubs`], the default, and not with [`Binding::Direct`].

use jitcache_backends::cc::{CcBackend, CcConfig, SourceUnit};
use jitcache_linker::Binding;

use super::{Config, JitCache, KeyParts, LoadedUnit};

/// The system C compiler, or `None` (a skip) outside CI when it cannot be run.
fn backend() -> Option<CcBackend> {
    match CcBackend::new(CcConfig::c().with_flags(["-O2", "-fPIC"])) {
        Ok(backend) => Some(backend),
        Err(e) if std::env::var_os("CI").is_none() => {
            eprintln!("skipped: no C compiler ({e})");
            None
        }
        Err(e) => panic!("CI needs a C compiler: {e}"),
    }
}

fn load(cache: &JitCache, backend: &CcBackend, name: &str, source: &str) -> LoadedUnit {
    let parts = KeyParts {
        namespace: "c",
        name,
        unit: source.as_bytes(),
        deps: &[],
    };
    cache
        .get_or_compile(&parts, backend, || {
            Ok(SourceUnit::new(
                format!("{name}.c"),
                source.as_bytes().to_vec(),
            ))
        })
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn cache(binding: Binding) -> (tempfile::TempDir, JitCache) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config {
        persistent: false,
        binding,
        ..Config::default()
    };
    let cache = JitCache::open(dir.path(), config);
    (dir, cache)
}

fn call(unit: &LoadedUnit, name: &str) -> i64 {
    unit.require(name)
        .unwrap_or_else(|e| panic!("{e}"))
        .call_i64(&[])
        .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn a_unit_loaded_again_for_a_name_rebinds_it_for_earlier_callers() {
    let Some(backend) = backend() else { return };
    let (_dir, cache) = cache(Config::default().binding);
    assert_eq!(cache.binding(), Binding::Stubs, "the facade's default");
    let f1 = load(&cache, &backend, "f", "long f(void) { return 1; }\n");
    let g = load(
        &cache,
        &backend,
        "g",
        "long f(void);\nlong g(void) { return f(); }\n",
    );
    let first_f = f1.require("f").expect("f");
    assert_eq!(call(&g, "g"), 1);
    let f2 = load(&cache, &backend, "f", "long f(void) { return 2; }\n");
    assert_eq!(call(&g, "g"), 2, "g runs the new f");
    assert_eq!(
        first_f.call_i64(&[]).expect("f"),
        2,
        "so does the first handle"
    );
    cache.unload(&f1).expect("unload the old f");
    assert_eq!(call(&g, "g"), 2);
    assert!(
        matches!(
            first_f.call_i64(&[]),
            Err(jitcache_linker::Error::UnitUnloaded { .. })
        ),
        "a handle of an unloaded unit is an error"
    );
    assert!(
        f1.symbol("f").is_none(),
        "nothing to hand out from it any more"
    );
    assert_eq!(call(&f2, "f"), 2);
}

#[test]
fn direct_binding_keeps_the_first_definition() {
    let Some(backend) = backend() else { return };
    let (_dir, cache) = cache(Binding::Direct);
    let f1 = load(&cache, &backend, "f", "long f(void) { return 1; }\n");
    let g = load(
        &cache,
        &backend,
        "g",
        "long f(void);\nlong g(void) { return f(); }\n",
    );
    let f2 = load(&cache, &backend, "f", "long f(void) { return 2; }\n");
    assert_eq!(call(&g, "g"), 1, "the first f wins");
    assert_eq!(call(&f1, "f"), 1);
    assert_eq!(call(&f2, "f"), 2);
    cache.set_binding(Binding::Stubs);
    let f3 = load(&cache, &backend, "f", "long f(void) { return 3; }\n");
    assert_eq!(call(&f3, "f"), 3);
    assert_eq!(call(&g, "g"), 1, "g was linked straight to the first f");
}
