//! System compiler backend: compiling C and C++, errors, and identity.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use jitcache_backends::{Backend, CcBackend, CcConfig, Error, Language, SourceUnit};
use object::{Object, ObjectSymbol};

const C_SOURCE: &str = r#"
#include <stdio.h>
int counter = 3;
static int twice(int x) { return 2 * x; }
int add(int a, int b) { return twice(a) + b + counter; }
int main(void) { printf("%d\n", add(1, 2)); return 0; }
"#;

const CPP_SOURCE: &str = r#"
#include <vector>
namespace demo { int sum(const std::vector<int>& v) { int s = 0; for (int x : v) s += x; return s; } }
extern "C" int c_entry(int n) { std::vector<int> v(n, 1); return demo::sum(v); }
"#;

fn undefined_symbols(bytes: &[u8]) -> Vec<String> {
    let file = object::File::parse(bytes).unwrap();
    file.symbols()
        .filter(|s| s.is_undefined() && !s.name().unwrap_or("").is_empty())
        .map(|s| s.name().unwrap().to_owned())
        .collect()
}

#[test]
fn compiles_c() {
    let backend = CcBackend::new(CcConfig::c().with_flags(["-O2"])).unwrap();
    let object = backend
        .compile(&SourceUnit::new("examples/add.c", C_SOURCE))
        .unwrap();
    let file = object::File::parse(&*object.bytes).unwrap();
    assert_eq!(file.kind(), object::ObjectKind::Relocatable);
    let mut symbols = object.symbols.clone();
    symbols.sort();
    assert_eq!(symbols, ["add", "counter", "main"]);
    assert!(undefined_symbols(&object.bytes).contains(&"printf".to_owned()));
}

#[test]
fn compiles_cpp() {
    let backend = CcBackend::new(CcConfig::cpp()).unwrap();
    assert_eq!(backend.identity().name, "cc/c++");
    let object = backend
        .compile(&SourceUnit::new("sum.cpp", CPP_SOURCE))
        .unwrap();
    assert!(object.symbols.contains(&"c_entry".to_owned()));
    assert!(
        object
            .symbols
            .contains(&"_ZN4demo3sumERKSt6vectorIiSaIiEE".to_owned()),
        "{:?}",
        object.symbols
    );
}

#[test]
fn syntax_error_is_typed_with_stderr() {
    let backend = CcBackend::new(CcConfig::c()).unwrap();
    let err = backend
        .compile(&SourceUnit::new("dir/broken.c", "int f( { return 1; }\n"))
        .unwrap_err();
    match err {
        Error::CompileFailed {
            unit,
            stderr,
            compiler,
            ..
        } => {
            assert_eq!(unit, "dir/broken.c");
            assert_eq!(compiler, backend.compiler_path());
            assert!(stderr.contains("error"), "{stderr}");
            // Diagnostics name the unit's file.
            assert!(stderr.contains("broken.c:1:"), "{stderr}");
        }
        other => panic!("unexpected {other}"),
    }
}

#[test]
fn identity_is_stable_and_describes_the_compiler() {
    let a = CcBackend::new(CcConfig::c()).unwrap();
    let b = CcBackend::new(CcConfig::c()).unwrap();
    assert_eq!(a.identity(), b.identity());

    let id = a.identity();
    assert_eq!(id.name, "cc/c");
    assert!(id.flags_ordered);
    // The canonical path is a real file (not the `cc` symlink).
    let resolved = a.resolved_path();
    assert!(resolved.is_absolute());
    assert!(!std::fs::symlink_metadata(resolved).unwrap().is_symlink());
    assert_eq!(a.binary_hash().len(), 64);
    assert_eq!(
        a.binary_hash(),
        blake3::hash(&std::fs::read(resolved).unwrap())
            .to_hex()
            .as_str()
    );
    assert!(id.version.contains(a.binary_hash()));
    assert!(id.version.contains(a.version_output()));
    assert!(!a.version_output().is_empty());
    let machine = id.target.split(' ').next().unwrap();
    assert!(machine.contains('-'), "{}", id.target);

    // C and C++ are different backends.
    let cpp = CcBackend::new(CcConfig {
        lang: Language::Cpp,
        ..CcConfig::c()
    })
    .unwrap();
    assert_ne!(cpp.identity(), id);
}

#[test]
fn flag_order_is_kept() {
    let o2g = CcBackend::new(CcConfig::c().with_flags(["-O2", "-O0"])).unwrap();
    let go2 = CcBackend::new(CcConfig::c().with_flags(["-O0", "-O2"])).unwrap();
    assert_eq!(o2g.identity().flags, ["-O2", "-O0"]);
    assert_eq!(go2.identity().flags, ["-O0", "-O2"]);
    assert_ne!(o2g.identity(), go2.identity());
}

#[test]
fn native_cpu_is_resolved() {
    let native = CcBackend::new(CcConfig::c().with_flags(["-march=native"])).unwrap();
    let target = &native.identity().target;
    assert!(!target.contains("native"), "{target}");
    assert!(
        target.contains("-march=") || target.contains("-target-cpu="),
        "{target}"
    );
    let generic = CcBackend::new(CcConfig::c()).unwrap();
    assert_ne!(generic.identity().target, *target);
}

fn write_script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, body).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[test]
fn wrapper_with_another_version_is_another_identity() {
    let dir = tempfile::tempdir().unwrap();
    let wrapper = write_script(
        dir.path(),
        "fakecc",
        "#!/bin/sh\nif [ \"$1\" = --version ]; then echo 'fakecc 9.9.9'; exit 0; fi\nexec cc \"$@\"\n",
    );
    let real = CcBackend::new(CcConfig::c()).unwrap();
    let fake = CcBackend::new(CcConfig {
        compiler: wrapper.clone(),
        ..CcConfig::c()
    })
    .unwrap();
    assert_eq!(fake.version_output(), "fakecc 9.9.9");
    assert_eq!(fake.compiler_path(), wrapper);
    assert_ne!(fake.identity().version, real.identity().version);
    assert_ne!(fake.identity(), real.identity());
    // Same target: it is the same compiler underneath.
    assert_eq!(fake.identity().target, real.identity().target);

    // And it compiles.
    let object = fake
        .compile(&SourceUnit::new("one.c", "int one(void) { return 1; }"))
        .unwrap();
    assert_eq!(object.symbols, ["one"]);

    // A relative compiler path works although compiles run elsewhere.
    let cwd = std::env::current_dir().unwrap();
    let mut relative = PathBuf::new();
    for _ in cwd.components().skip(1) {
        relative.push("..");
    }
    relative.push(wrapper.strip_prefix("/").unwrap());
    let rel = CcBackend::new(CcConfig {
        compiler: relative,
        ..CcConfig::c()
    })
    .unwrap();
    assert!(rel.compiler_path().is_absolute());
    let object = rel
        .compile(&SourceUnit::new("one.c", "int one(void) { return 1; }"))
        .unwrap();
    assert_eq!(object.symbols, ["one"]);
}

#[test]
fn compiler_found_through_a_symlink_in_path_keeps_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let real = CcBackend::new(CcConfig::c()).unwrap();
    let link = dir.path().join("mycc");
    std::os::unix::fs::symlink(real.resolved_path(), &link).unwrap();
    let via_link = CcBackend::new(CcConfig {
        compiler: link.clone(),
        ..CcConfig::c()
    })
    .unwrap();
    assert_eq!(via_link.compiler_path(), link);
    assert_eq!(via_link.resolved_path(), real.resolved_path());
    assert_eq!(via_link.binary_hash(), real.binary_hash());
}

#[test]
fn missing_or_broken_compilers_are_typed_errors() {
    let err = CcBackend::new(CcConfig {
        compiler: "jitcache-no-such-compiler".into(),
        ..CcConfig::c()
    })
    .unwrap_err();
    assert!(
        matches!(&err, Error::CompilerNotFound { in_path: true, .. }),
        "{err}"
    );

    let err = CcBackend::new(CcConfig {
        compiler: "/nonexistent/cc".into(),
        ..CcConfig::c()
    })
    .unwrap_err();
    assert!(
        matches!(&err, Error::CompilerNotFound { in_path: false, .. }),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    let failing = write_script(dir.path(), "failcc", "#!/bin/sh\necho nope >&2\nexit 3\n");
    let err = CcBackend::new(CcConfig {
        compiler: failing,
        ..CcConfig::c()
    })
    .unwrap_err();
    match err {
        Error::CompilerQuery { stderr, .. } => assert_eq!(stderr, "nope"),
        other => panic!("unexpected {other}"),
    }

    // A compiler that "succeeds" without writing a valid object.
    let liar = write_script(
        dir.path(),
        "liarcc",
        "#!/bin/sh\ncase \"$1\" in --version) echo liar 1;; -dumpmachine) echo x86_64-linux-gnu;; \
         *) for a; do last=\"$a\"; done; echo junk > \"$last\";; esac\n",
    );
    let backend = CcBackend::new(CcConfig {
        compiler: liar,
        ..CcConfig::c()
    })
    .unwrap();
    let err = backend
        .compile(&SourceUnit::new("x.c", "int x;"))
        .unwrap_err();
    assert!(
        matches!(&err, Error::BadObject { unit, .. } if unit == "x.c"),
        "{err}"
    );
}

#[test]
fn concurrent_compiles_do_not_interfere() {
    let backend = CcBackend::new(CcConfig::c()).unwrap();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|i| {
                let backend = backend.clone();
                s.spawn(move || {
                    let name = format!("f{i}");
                    let object = backend
                        .compile(&SourceUnit::new(
                            "same.c",
                            format!("int {name}(void) {{ return {i}; }}"),
                        ))
                        .unwrap();
                    assert_eq!(object.symbols, [name]);
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    });
}

/// Not an assertion: prints the cost of building the backend and of a
/// small compile, for the notes.
#[test]
fn measure_construction_and_compile() {
    let start = Instant::now();
    let backend = CcBackend::new(CcConfig::c().with_flags(["-O2"])).unwrap();
    let built = start.elapsed();
    let unit = SourceUnit::new("small.c", "int add(int a, int b) { return a + b; }");
    let start = Instant::now();
    backend.compile(&unit).unwrap();
    let compiled = start.elapsed();
    println!("cc: backend construction {built:?}; small C function compile {compiled:?}");
    println!("cc identity: {:#?}", backend.identity());
}

#[test]
fn a_remembered_probe_runs_no_process_until_the_compiler_changes() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("calls.log");
    let script = |version: &str| {
        format!(
            "#!/bin/sh\necho \"$@\" >> '{}'\nif [ \"$1\" = --version ]; then echo '{version}'; exit 0; fi\nexec cc \"$@\"\n",
            log.display()
        )
    };
    let wrapper = write_script(dir.path(), "logcc", &script("logcc 1.0"));
    let config = || CcConfig {
        compiler: wrapper.clone(),
        ..CcConfig::c()
    };
    let probes = dir.path().join("probes");
    let calls = || std::fs::read_to_string(&log).map_or(0, |s| s.lines().count());

    let fresh = CcBackend::new(config()).unwrap();
    let first = CcBackend::with_probe_cache(config(), &probes).unwrap();
    assert_eq!(
        first.identity(),
        fresh.identity(),
        "the same identity as an unremembered probe"
    );
    let before = calls();
    let second = CcBackend::with_probe_cache(config(), &probes).unwrap();
    assert_eq!(calls(), before, "a remembered probe runs no process");
    assert_eq!(second.identity(), first.identity());

    // Other flags are another probe.
    let flagged = CcBackend::with_probe_cache(config().with_flags(["-O1"]), &probes).unwrap();
    assert!(calls() > before);
    assert_ne!(flagged.identity(), first.identity());

    // A changed compiler binary is probed again and gets a new identity.
    std::thread::sleep(std::time::Duration::from_millis(20));
    write_script(dir.path(), "logcc", &script("logcc 2.0"));
    let changed = CcBackend::with_probe_cache(config(), &probes).unwrap();
    assert_eq!(changed.version_output(), "logcc 2.0");
    assert_ne!(changed.identity(), first.identity());

    // A damaged remembered probe is probed again, not trusted.
    for entry in std::fs::read_dir(&probes).unwrap() {
        std::fs::write(entry.unwrap().path(), b"garbage").unwrap();
    }
    let again = CcBackend::with_probe_cache(config(), &probes).unwrap();
    assert_eq!(again.identity(), changed.identity());
}
