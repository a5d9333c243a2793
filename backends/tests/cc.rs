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
    let start = Instant::now();
    let again = CcBackend::new(CcConfig::c().with_flags(["-O1"])).unwrap();
    println!(
        "cc: another backend (toolchain hashes known) {:?}",
        start.elapsed()
    );
    drop(again);
    if have("clang") {
        let start = Instant::now();
        let clang = CcBackend::new(c_compiler("clang")).unwrap();
        println!("clang: backend construction {:?}", start.elapsed());
        println!("clang identity: {:#?}", clang.identity());
    }
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

// ---------------------------------------------------------------------------------------
// What a compile read: depfile, include trace, flags, shadowing, time macros, checkouts.

/// Whether `tool` runs. A test that needs it fails instead of skipping on CI (`CI` set),
/// where both GCC and Clang are installed.
fn have(tool: &str) -> bool {
    let found = std::process::Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "{tool} is required on CI but was not found"
        );
        eprintln!("skipped: {tool} not found");
    }
    found
}

/// A C compiler by name.
fn c_compiler(name: &str) -> CcConfig {
    CcConfig {
        compiler: name.into(),
        ..CcConfig::c()
    }
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// `dir`, absolute and with symlinks resolved (the temporary directory may be a link).
fn real(dir: &Path) -> PathBuf {
    std::fs::canonicalize(dir).unwrap()
}

/// Compiles the file at `path` with `backend`.
fn compile_file(backend: &CcBackend, path: &Path) -> jitcache_backends::CompiledObject {
    let source = std::fs::read(path).unwrap();
    backend
        .compile(&SourceUnit::at(path, source))
        .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn a_file_compiled_in_place_lists_every_header_it_read() {
    for compiler in ["cc", "clang"] {
        if !have(compiler) {
            continue;
        }
        let dir = tempfile::tempdir().unwrap();
        let root = real(dir.path());
        write(&root.join("src/inc/val.h"), "#define VAL 42\n");
        write(
            &root.join("src/main.c"),
            "#include \"inc/val.h\"\n#include <stdio.h>\nint f(void) { return VAL; }\n",
        );
        // Without a base directory (the file's directory is the current one) and with one.
        let plain = CcBackend::new(c_compiler(compiler)).unwrap();
        let based = CcBackend::builder(c_compiler(compiler))
            .base_dir(&root)
            .build()
            .unwrap();
        assert_eq!(plain.base_dir(), None);
        assert_eq!(based.base_dir(), Some(root.as_path()));
        for backend in [plain, based] {
            let object = compile_file(&backend, &root.join("src/main.c"));
            let inputs = &object.inputs;
            assert_eq!(object.symbols, ["f"]);
            assert!(
                inputs.read.contains(&root.join("src/inc/val.h")),
                "{compiler}: {inputs:#?}"
            );
            assert!(
                inputs.read.iter().any(|p| p.ends_with("stdio.h")),
                "{compiler}: {inputs:#?}"
            );
            assert!(
                !inputs.read.contains(&root.join("src/main.c")),
                "not the unit itself"
            );
            assert!(inputs.uncacheable.is_none(), "{inputs:#?}");
            for list in [&inputs.read, &inputs.absent] {
                assert!(
                    list.windows(2).all(|w| w[0] < w[1]),
                    "sorted, no duplicates"
                );
                for p in list {
                    assert!(p.is_absolute(), "{p:?}");
                    assert!(
                        !p.components()
                            .any(|c| matches!(c, std::path::Component::ParentDir)),
                        "{p:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn a_header_that_would_shadow_the_one_used_is_an_absent_path() {
    for compiler in ["cc", "clang"] {
        if !have(compiler) {
            continue;
        }
        let dir = tempfile::tempdir().unwrap();
        let root = real(dir.path());
        std::fs::create_dir_all(root.join("dir1")).unwrap();
        write(&root.join("dir2/val.h"), "#define VAL 2\n");
        write(
            &root.join("main.c"),
            "#include <val.h>\nint f(void) { return VAL; }\n",
        );
        // Relative search directories (relative to the base directory) and absolute ones.
        let relative = ["-Idir1", "-Idir2"].map(String::from).to_vec();
        let absolute = vec![
            format!("-I{}", root.join("dir1").display()),
            format!("-I{}", root.join("dir2").display()),
        ];
        for flags in [relative, absolute] {
            std::fs::remove_file(root.join("dir1/val.h")).ok();
            let backend = CcBackend::builder(c_compiler(compiler).with_flags(flags.clone()))
                .base_dir(&root)
                .build()
                .unwrap();
            let object = compile_file(&backend, &root.join("main.c"));
            assert!(
                object.inputs.read.contains(&root.join("dir2/val.h")),
                "{compiler} {flags:?}: {:#?}",
                object.inputs
            );
            assert!(
                object.inputs.absent.contains(&root.join("dir1/val.h")),
                "{compiler} {flags:?}: {:#?}",
                object.inputs
            );
            // And the absent path is real: once created, the compiler reads it instead.
            write(&root.join("dir1/val.h"), "#define VAL 1\n");
            let object = compile_file(&backend, &root.join("main.c"));
            assert!(object.inputs.read.contains(&root.join("dir1/val.h")));
            assert!(!object.inputs.read.contains(&root.join("dir2/val.h")));
        }
    }
}

#[test]
fn forced_includes_and_gcc_precompiled_headers_are_inputs() {
    if !have("gcc") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = real(dir.path());
    write(&root.join("pch.h"), "static int pchv = 7;\n");
    write(&root.join("pre.h"), "#define PRE 1\n");
    write(&root.join("mac.h"), "#define MAC 2\n");
    write(
        &root.join("use.c"),
        "#include \"pch.h\"\nint g(void) { return pchv + PRE + MAC; }\n",
    );
    // Before the precompiled header exists, its creation is an absent path.
    let backend = CcBackend::builder(
        c_compiler("gcc").with_flags(["-include", "pre.h", "-imacros", "mac.h"]),
    )
    .base_dir(&root)
    .build()
    .unwrap();
    let object = compile_file(&backend, &root.join("use.c"));
    let inputs = &object.inputs;
    for file in ["pch.h", "pre.h", "mac.h"] {
        assert!(
            inputs.read.contains(&root.join(file)),
            "{file}: {inputs:#?}"
        );
    }
    for file in ["pch.h.gch", "pre.h.gch", "pre.h.pch"] {
        assert!(
            inputs.absent.contains(&root.join(file)),
            "{file}: {inputs:#?}"
        );
    }

    // GCC's depfile names neither the .gch it used nor the header; the include trace does.
    let status = std::process::Command::new("gcc")
        .current_dir(&root)
        .args(["-x", "c-header", "pch.h", "-o", "pch.h.gch"])
        .status()
        .unwrap();
    assert!(status.success());
    let status = std::process::Command::new("gcc")
        .current_dir(&root)
        .args(["-x", "c-header", "pre.h", "-o", "pre.h.gch"])
        .status()
        .unwrap();
    assert!(status.success());
    let object = compile_file(&backend, &root.join("use.c"));
    let inputs = &object.inputs;
    assert!(inputs.read.contains(&root.join("pre.h.gch")), "{inputs:#?}");
    // GCC uses one precompiled header per compile: here the forced include's.
    assert!(inputs.read.contains(&root.join("pch.h")), "{inputs:#?}");

    write(
        &root.join("plain.c"),
        "#include \"pch.h\"\nint g(void) { return pchv; }\n",
    );
    let plain = CcBackend::builder(c_compiler("gcc"))
        .base_dir(&root)
        .build()
        .unwrap();
    let object = compile_file(&plain, &root.join("plain.c"));
    let inputs = &object.inputs;
    assert!(inputs.read.contains(&root.join("pch.h.gch")), "{inputs:#?}");
    assert!(!inputs.read.contains(&root.join("pch.h")), "{inputs:#?}");
}

#[test]
fn clang_precompiled_headers_are_inputs() {
    if !have("clang") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = real(dir.path());
    write(&root.join("pch.h"), "static int pchv = 7;\n");
    write(&root.join("use.c"), "int g(void) { return pchv; }\n");
    let status = std::process::Command::new("clang")
        .current_dir(&root)
        .args(["-x", "c-header", "pch.h", "-o", "pch.h.pch"])
        .status()
        .unwrap();
    assert!(status.success());
    for flags in [["-include-pch", "pch.h.pch"], ["-include", "pch.h"]] {
        let backend = CcBackend::builder(c_compiler("clang").with_flags(flags))
            .base_dir(&root)
            .build()
            .unwrap();
        let object = compile_file(&backend, &root.join("use.c"));
        assert!(
            object.inputs.read.contains(&root.join("pch.h.pch")),
            "{flags:?}: {:#?}",
            object.inputs
        );
    }
}

#[test]
fn time_macros_make_an_object_uncacheable() {
    if std::env::var_os("SOURCE_DATE_EPOCH").is_some() {
        eprintln!("skipped: SOURCE_DATE_EPOCH is set, so time macros are reproducible");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = real(dir.path());
    write(&root.join("stamp.h"), "#define STAMP __TIME__\n");
    let backend = CcBackend::new(CcConfig::c()).unwrap();
    let object = backend
        .compile(&SourceUnit::new(
            "date.c",
            "const char *built = __DATE__; // not __TIME__\n",
        ))
        .unwrap();
    let why = object.inputs.uncacheable.expect("uncacheable");
    assert!(why.contains("__DATE__") && why.contains("date.c"), "{why}");

    write(
        &root.join("time.c"),
        "#include \"stamp.h\"\nconst char *t = STAMP;\n",
    );
    let object = compile_file(&backend, &root.join("time.c"));
    let why = object.inputs.uncacheable.expect("uncacheable");
    assert!(why.contains("__TIME__") && why.contains("stamp.h"), "{why}");

    // In comments and strings they change nothing.
    let object = backend
        .compile(&SourceUnit::new(
            "quiet.c",
            "/* __DATE__ */ const char *s = \"__TIME__\";\n",
        ))
        .unwrap();
    assert_eq!(object.inputs.uncacheable, None);
}

#[test]
fn a_source_or_header_that_changes_while_it_compiles_is_uncacheable() {
    let dir = tempfile::tempdir().unwrap();
    let root = real(dir.path());
    write(&root.join("h.h"), "#define H 1\n");
    write(
        &root.join("s.c"),
        "#include \"h.h\"\nint s(void) { return H; }\n",
    );
    let backend = CcBackend::new(CcConfig::c()).unwrap();
    // The file on disk is not the source the frontend keyed.
    let object = backend
        .compile(&SourceUnit::at(
            root.join("s.c"),
            "int s(void) { return 0; }\n",
        ))
        .unwrap();
    let why = object.inputs.uncacheable.expect("uncacheable");
    assert!(why.contains("source changed"), "{why}");

    // A compiler that rewrites the header just before it runs: the header changed after
    // the compile started.
    let wrapper = write_script(
        &root,
        "touchcc",
        &format!(
            "#!/bin/sh\ncase \"$*\" in *-MF*) sleep 0.05; echo '#define H 2' > '{}';; esac\nexec cc \"$@\"\n",
            root.join("h.h").display()
        ),
    );
    let backend = CcBackend::new(c_compiler(wrapper.to_str().unwrap())).unwrap();
    write(&root.join("h.h"), "#define H 1\n");
    let object = compile_file(&backend, &root.join("s.c"));
    let why = object.inputs.uncacheable.expect("uncacheable");
    assert!(why.contains("h.h") && why.contains("changed"), "{why}");
}

/// The same program in two checkouts at different paths, with absolute `-I` flags.
fn two_checkouts(root: &Path) -> [PathBuf; 2] {
    let a = root.join("a");
    let b = root.join("deeper/checkout-b");
    for base in [&a, &b] {
        write(
            &base.join("include/val.h"),
            "#define VAL 42\nstatic const char *header_file = __FILE__;\n",
        );
        write(&base.join("src/local.h"), "#define LOCAL 1\n");
        write(
            &base.join("src/main.c"),
            "#include <val.h>\n#include \"local.h\"\n\
             const char *file = __FILE__;\n\
             const char *hf(void) { return header_file; }\n\
             int f(int x) { return x * VAL + LOCAL; }\n",
        );
    }
    [a, b]
}

#[test]
fn checkouts_at_different_paths_share_identity_and_objects() {
    for compiler in ["cc", "clang"] {
        if !have(compiler) {
            continue;
        }
        let dir = tempfile::tempdir().unwrap();
        let root = real(dir.path());
        let checkouts = two_checkouts(&root);
        for debug in [false, true] {
            let mut results = Vec::new();
            for base in &checkouts {
                let mut flags = vec!["-O2".to_owned(), format!("-I{}/include", base.display())];
                if debug {
                    flags.push("-g".to_owned());
                }
                let backend = CcBackend::builder(c_compiler(compiler).with_flags(flags))
                    .base_dir(base)
                    .build()
                    .unwrap();
                let object = compile_file(&backend, &base.join("src/main.c"));
                assert!(object.inputs.read.contains(&base.join("include/val.h")));
                assert!(object.inputs.read.contains(&base.join("src/local.h")));
                results.push((backend.identity().clone(), object.bytes));
            }
            let [(id_a, obj_a), (id_b, obj_b)] = <[_; 2]>::try_from(results).unwrap();
            assert_eq!(id_a, id_b, "{compiler} -g={debug}");
            assert!(
                id_a.flags.contains(&"-I./include".to_owned()),
                "{:?}",
                id_a.flags
            );
            for checkout in &checkouts {
                let path = checkout.display().to_string();
                assert!(
                    !id_a.version.contains(&path) && !id_a.flags.iter().any(|f| f.contains(&path))
                );
                assert!(
                    !obj_a.windows(path.len()).any(|w| w == path.as_bytes()),
                    "{compiler} -g={debug}: the object names the checkout"
                );
            }
            assert!(obj_a == obj_b, "{compiler} -g={debug}: objects differ");
        }
    }
}

#[test]
fn the_identity_names_the_toolchain_by_content_and_no_path() {
    if !have("gcc") {
        return;
    }
    let backend = CcBackend::new(c_compiler("gcc")).unwrap();
    let id = backend.identity();
    // cc1 is named by its hash.
    let out = std::process::Command::new("gcc")
        .arg("-print-prog-name=cc1")
        .output()
        .unwrap();
    let cc1 = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    let cc1 = std::fs::canonicalize(cc1).unwrap();
    let hash = blake3::hash(&std::fs::read(&cc1).unwrap());
    assert!(
        id.version
            .contains(&format!("program cc1 blake3={}", hash.to_hex())),
        "{}",
        id.version
    );
    assert!(
        backend
            .toolchain_files()
            .iter()
            .any(|(p, h)| *p == cc1 && *h == hash.to_hex().as_str())
    );
    for line in id.version.lines().filter(|l| !l.starts_with("env ")) {
        assert!(!line.contains('/'), "a path in the identity: {line}");
    }

    // Two wrapper scripts with the same bytes at different paths: one identity. A
    // changed byte: another.
    let dir = tempfile::tempdir().unwrap();
    let script = "#!/bin/sh\n# wrapper\nexec gcc \"$@\"\n";
    std::fs::create_dir(dir.path().join("one")).unwrap();
    std::fs::create_dir(dir.path().join("two")).unwrap();
    let one = write_script(&dir.path().join("one"), "wcc", script);
    let two = write_script(&dir.path().join("two"), "wcc", script);
    let id_of = |path: &Path| {
        CcBackend::new(c_compiler(path.to_str().unwrap()))
            .unwrap()
            .identity()
            .clone()
    };
    let first = id_of(&one);
    assert_eq!(first, id_of(&two));
    assert!(first.version.contains("program cc1 blake3="));
    write_script(
        &dir.path().join("two"),
        "wcc",
        &script.replace("wrapper", "wrapped"),
    );
    assert_ne!(first, id_of(&two));
}

#[test]
fn clang_is_named_by_its_libraries_and_configuration_files() {
    if !have("clang") {
        return;
    }
    let backend = CcBackend::new(c_compiler("clang")).unwrap();
    let version = &backend.identity().version;
    assert!(!version.contains("InstalledDir"), "{version}");
    // Clang compiles in process: the code generator is in its libraries (when it is
    // linked dynamically, as distributions build it).
    let dynamic =
        std::fs::read(backend.resolved_path()).is_ok_and(|b| b.windows(7).any(|w| w == b"libLLVM"));
    if dynamic {
        assert!(version.contains("library libLLVM"), "{version}");
    }

    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("extra.cfg");
    std::fs::write(&cfg, "-DFROM_CONFIG=1\n").unwrap();
    let flags = vec!["--config".to_owned(), cfg.display().to_string()];
    let with = CcBackend::new(c_compiler("clang").with_flags(flags.clone())).unwrap();
    assert!(
        with.identity().version.contains("config extra.cfg blake3="),
        "{}",
        with.identity().version
    );
    std::fs::write(&cfg, "-DFROM_CONFIG=2\n").unwrap();
    let changed = CcBackend::new(c_compiler("clang").with_flags(flags)).unwrap();
    assert_ne!(with.identity(), changed.identity());
}

#[test]
fn a_base_dir_must_be_a_usable_directory() {
    let err = CcBackend::builder(CcConfig::c())
        .base_dir("/nonexistent/jitcache-base")
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::BaseDir { .. }), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let odd = dir.path().join("a=b");
    std::fs::create_dir(&odd).unwrap();
    let err = CcBackend::builder(CcConfig::c())
        .base_dir(&odd)
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::BaseDir { .. }), "{err}");
}
