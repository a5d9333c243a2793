//! Cranelift backend: objects, symbols, relocations, identity and errors.

use std::time::Instant;

use cranelift_codegen::ir::{
    AbiParam, ExtFuncData, ExternalName, Function, InstBuilder, Signature, UserFuncName, types,
};
use cranelift_codegen::isa::{CallConv, TargetFrontendConfig};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use jitcache_backends::{
    Backend, ClifUnit, CraneliftBackend, CraneliftConfig, Error, LOWERING_REVISION, OptLevel,
};
use object::{Object, ObjectSection, ObjectSymbol, RelocationTarget, SectionKind};

fn backend(config: CraneliftConfig) -> CraneliftBackend {
    CraneliftBackend::new(config).expect("host is supported")
}

fn sig_i64_i64(call_conv: CallConv) -> Signature {
    let mut sig = Signature::new(call_conv);
    sig.params.push(AbiParam::new(types::I64));
    sig.returns.push(AbiParam::new(types::I64));
    sig
}

/// `add_one(x) = ext_helper(x) + inner(x)`, built with cranelift-frontend the
/// way a frontend would, plus `inner(x) = x + 1`.
fn in_memory_unit(config: TargetFrontendConfig) -> ClifUnit {
    let call_conv = config.default_call_conv;
    let mut ctx = FunctionBuilderContext::new();

    let mut inner =
        Function::with_name_signature(UserFuncName::testcase("inner"), sig_i64_i64(call_conv));
    {
        let mut b = FunctionBuilder::new(&mut inner, &mut ctx);
        let block = b.create_block();
        b.append_block_params_for_function_params(block);
        b.switch_to_block(block);
        let x = b.block_params(block)[0];
        let one = b.ins().iconst(types::I64, 1);
        let y = b.ins().iadd(x, one);
        b.ins().return_(&[y]);
        b.seal_all_blocks();
        b.finalize(config);
    }

    let mut outer =
        Function::with_name_signature(UserFuncName::testcase("add_one"), sig_i64_i64(call_conv));
    {
        let mut b = FunctionBuilder::new(&mut outer, &mut ctx);
        let sig = b.import_signature(sig_i64_i64(call_conv));
        let helper = b.import_function(ExtFuncData {
            name: ExternalName::testcase("ext_helper"),
            signature: sig,
            colocated: false,
            patchable: false,
        });
        let local = b.import_function(ExtFuncData {
            name: ExternalName::testcase("inner"),
            signature: sig,
            colocated: false,
            patchable: false,
        });
        let block = b.create_block();
        b.append_block_params_for_function_params(block);
        b.switch_to_block(block);
        let x = b.block_params(block)[0];
        let call = b.ins().call(helper, &[x]);
        let h = b.inst_results(call)[0];
        let call = b.ins().call(local, &[x]);
        let i = b.inst_results(call)[0];
        let sum = b.ins().iadd(h, i);
        b.ins().return_(&[sum]);
        b.seal_all_blocks();
        b.finalize(config);
    }
    ClifUnit::new(vec![inner, outer])
}

const TEXT_UNIT: &str = "
; Mutual recursion inside the unit, a call to libc, and a data symbol.
function %is_even(i64) -> i64 {
    fn0 = %is_odd(i64) -> i64
block0(v0: i64):
    brif v0, block1, block2
block1:
    v4 = iconst.i64 -1
    v1 = iadd v0, v4
    v2 = call fn0(v1)
    return v2
block2:
    v3 = iconst.i64 1
    return v3
}

function %is_odd(i64) -> i64 {
    fn0 = %is_even(i64) -> i64
block0(v0: i64):
    brif v0, block1, block2
block1:
    v4 = iconst.i64 -1
    v1 = iadd v0, v4
    v2 = call fn0(v1)
    return v2
block2:
    v3 = iconst.i64 0
    return v3
}

function %main(i32, i64) -> i32 {
    gv0 = symbol %counter
    fn0 = %is_even(i64) -> i64
    fn1 = %abs(i32) -> i32
block0(v0: i32, v1: i64):
    v2 = symbol_value.i64 gv0
    v3 = load.i64 v2
    v4 = call fn0(v3)
    v5 = ireduce.i32 v4
    v6 = call fn1(v5)
    return v6
}
";

struct Parsed {
    defined: Vec<String>,
    undefined: Vec<String>,
    /// (section name, target symbol name, ELF r_type)
    relocations: Vec<(String, String, u32)>,
    sections: Vec<String>,
}

fn inspect(bytes: &[u8]) -> Parsed {
    let file = object::File::parse(bytes).expect("valid object");
    assert_eq!(file.format(), object::BinaryFormat::Elf);
    assert_eq!(file.kind(), object::ObjectKind::Relocatable);
    let mut defined = Vec::new();
    let mut undefined = Vec::new();
    for sym in file.symbols() {
        let name = sym.name().unwrap().to_owned();
        if sym.is_global() && sym.is_definition() {
            defined.push(name);
        } else if sym.is_undefined() && !name.is_empty() {
            undefined.push(name);
        }
    }
    let mut relocations = Vec::new();
    let mut sections = Vec::new();
    for section in file.sections() {
        let name = section.name().unwrap().to_owned();
        for (_, reloc) in section.relocations() {
            let target = match reloc.target() {
                RelocationTarget::Symbol(idx) => {
                    let sym = file.symbol_by_index(idx).unwrap();
                    match sym.name().unwrap() {
                        "" => format!("section {}", sym.section_index().map_or(0, |s| s.0)),
                        n => n.to_owned(),
                    }
                }
                other => format!("{other:?}"),
            };
            let r_type = match reloc.flags() {
                object::RelocationFlags::Elf { r_type } => r_type,
                other => panic!("unexpected flags {other:?}"),
            };
            relocations.push((name.clone(), target, r_type));
        }
        sections.push(name);
    }
    Parsed {
        defined,
        undefined,
        relocations,
        sections,
    }
}

fn has_reloc_to(p: &Parsed, target: &str) -> bool {
    p.relocations
        .iter()
        .any(|(sec, t, _)| sec == ".text" && t == target)
}

#[test]
fn in_memory_unit_compiles_to_a_relocatable_elf() {
    let backend = backend(CraneliftConfig::default());
    let unit = in_memory_unit(backend.isa().frontend_config());
    let object = backend.compile(&unit).unwrap();
    assert_eq!(object.symbols, ["inner", "add_one"]);

    let p = inspect(&object.bytes);
    assert_eq!(p.defined, ["inner", "add_one"]);
    assert_eq!(p.undefined, ["ext_helper"]);
    assert!(has_reloc_to(&p, "ext_helper"), "{:?}", p.relocations);
    assert!(has_reloc_to(&p, "inner"), "{:?}", p.relocations);
    // Unwind info is on by default.
    assert!(
        p.sections.iter().any(|s| s == ".eh_frame"),
        "{:?}",
        p.sections
    );

    // Deterministic: the same unit gives the same bytes.
    assert_eq!(backend.compile(&unit).unwrap(), object);
}

#[test]
fn text_unit_with_calls_and_data_compiles() {
    let backend = backend(CraneliftConfig::default());
    let unit = ClifUnit::parse(TEXT_UNIT).unwrap();
    assert_eq!(unit.symbols().unwrap(), ["is_even", "is_odd", "main"]);
    let object = backend.compile(&unit).unwrap();
    assert_eq!(object.symbols, ["is_even", "is_odd", "main"]);

    let p = inspect(&object.bytes);
    assert_eq!(p.defined, ["is_even", "is_odd", "main"]);
    let mut undefined = p.undefined.clone();
    undefined.sort();
    assert_eq!(undefined, ["abs", "counter"]);
    for target in ["is_even", "is_odd", "abs", "counter"] {
        assert!(
            has_reloc_to(&p, target),
            "no reloc to {target}: {:?}",
            p.relocations
        );
    }

    // The text round-trips.
    let text = unit.to_text().unwrap();
    assert_eq!(ClifUnit::parse(&text).unwrap(), unit);
}

#[cfg(target_arch = "x86_64")]
#[test]
fn relocation_kinds_follow_pic_and_colocation() {
    use object::elf::{R_X86_64_64, R_X86_64_GOTPCREL, R_X86_64_PC32, R_X86_64_PLT32};
    let unit = ClifUnit::parse(TEXT_UNIT).unwrap();
    let kinds = |pic: bool, target: &str| -> Vec<u32> {
        let object = backend(CraneliftConfig {
            pic,
            ..CraneliftConfig::default()
        })
        .compile(&unit)
        .unwrap();
        inspect(&object.bytes)
            .relocations
            .into_iter()
            .filter(|(sec, t, _)| sec == ".text" && t == target)
            .map(|(_, _, k)| k)
            .collect()
    };
    // Calls inside the unit are direct PC-relative calls either way.
    for pic in [false, true] {
        for k in kinds(pic, "is_odd") {
            assert!(k == R_X86_64_PLT32 || k == R_X86_64_PC32, "pic={pic}: {k}");
        }
    }
    // A non-colocated import: an absolute address without PIC, a GOT entry with.
    assert_eq!(kinds(false, "abs"), [R_X86_64_64]);
    assert_eq!(kinds(true, "abs"), [R_X86_64_GOTPCREL]);
    assert_eq!(kinds(true, "counter"), [R_X86_64_GOTPCREL]);
}

#[test]
fn identity_tracks_settings_and_is_stable() {
    let default = backend(CraneliftConfig::default());
    let again = backend(CraneliftConfig::default());
    assert_eq!(default.identity(), again.identity());

    let id = default.identity();
    assert_eq!(id.name, "cranelift");
    assert_eq!(id.version, cranelift_codegen::VERSION);
    assert!(!id.flags_ordered);
    let mut sorted = id.flags.clone();
    sorted.sort();
    assert_eq!(id.flags, sorted);
    assert!(id.flags.iter().any(|f| f == "opt_level=speed"));
    assert!(id.flags.iter().any(|f| f == "is_pic=false"));
    assert!(
        id.flags
            .iter()
            .any(|f| *f == format!("jitcache.lowering={LOWERING_REVISION}"))
    );
    let triple = default.isa().triple().to_string();
    assert!(id.target.starts_with(&triple), "{}", id.target);
    assert!(!id.target.contains("native"), "{}", id.target);
    #[cfg(target_arch = "x86_64")]
    {
        // x86-64 always has SSE2; the detected features are in the target.
        assert!(id.flags.iter().any(|f| f.starts_with("has_sse3=")));
        if std::is_x86_feature_detected!("sse4.2") {
            assert!(id.target.contains("has_sse42"), "{}", id.target);
        }
    }

    let none = backend(CraneliftConfig {
        opt_level: OptLevel::None,
        ..CraneliftConfig::default()
    });
    let size = backend(CraneliftConfig {
        opt_level: OptLevel::SpeedAndSize,
        ..CraneliftConfig::default()
    });
    let pic = backend(CraneliftConfig {
        pic: true,
        ..CraneliftConfig::default()
    });
    let fp = backend(CraneliftConfig {
        flags: vec!["preserve_frame_pointers".to_owned()],
        ..CraneliftConfig::default()
    });
    let ids = [
        id,
        none.identity(),
        size.identity(),
        pic.identity(),
        fp.identity(),
    ];
    for (i, a) in ids.iter().enumerate() {
        for b in &ids[i + 1..] {
            assert_ne!(a, b);
        }
    }
    assert!(pic.identity().flags.iter().any(|f| f == "is_pic=true"));
    assert!(
        fp.identity()
            .flags
            .iter()
            .any(|f| f == "preserve_frame_pointers=true")
    );
}

#[test]
fn version_matches_cargo_lock() {
    let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.lock"))
        .expect("workspace Cargo.lock");
    let mut lines = lock.lines();
    let mut version = None;
    while let Some(line) = lines.next() {
        if line == "name = \"cranelift-codegen\"" {
            let next = lines.next().unwrap_or_default();
            version = next
                .strip_prefix("version = \"")
                .and_then(|v| v.strip_suffix('"'));
            break;
        }
    }
    let backend = backend(CraneliftConfig::default());
    assert_eq!(Some(backend.identity().version.as_str()), version);
}

#[test]
fn isa_flags_can_be_set() {
    #[cfg(target_arch = "x86_64")]
    {
        let b = backend(CraneliftConfig {
            flags: vec!["has_avx2=false".to_owned()],
            ..CraneliftConfig::default()
        });
        assert!(b.identity().flags.iter().any(|f| f == "has_avx2=false"));
        assert!(!b.identity().target.contains("has_avx2"));
    }
    for bad in ["no_such_setting=1", "opt_level=fastest", "is_pic=maybe"] {
        let err = CraneliftBackend::new(CraneliftConfig {
            flags: vec![bad.to_owned()],
            ..CraneliftConfig::default()
        })
        .unwrap_err();
        assert!(
            matches!(&err, Error::InvalidSetting { setting, .. } if setting == bad),
            "{bad}: {err}"
        );
    }
}

#[test]
fn parse_errors_carry_the_line() {
    let err = ClifUnit::parse(
        "function %f() -> i64 {\nblock0:\n    v0 = iconst.i64 1\n    return v9\n}\n",
    )
    .unwrap_err();
    match err {
        Error::ClifParse { line, message } => {
            assert_eq!(line, 4, "{message}");
        }
        other => panic!("unexpected {other}"),
    }
}

#[test]
fn verifier_errors_name_the_function() {
    let backend = backend(CraneliftConfig::default());
    // Returns an i32 where the signature says i64.
    let unit = ClifUnit::parse(
        "function %ok() -> i64 {\nblock0:\n v0 = iconst.i64 1\n return v0\n}\n\
         function %bad() -> i64 {\nblock0:\n v0 = iconst.i32 1\n return v0\n}\n",
    )
    .unwrap();
    match backend.compile(&unit).unwrap_err() {
        Error::Verifier { function, errors } => {
            assert_eq!(function, "bad");
            assert!(errors.contains("return"), "{errors}");
        }
        other => panic!("unexpected {other}"),
    }

    // A function without a body is a typed error, not a panic.
    let empty = Function::with_name_signature(
        UserFuncName::testcase("empty"),
        Signature::new(CallConv::SystemV),
    );
    let err = backend.compile(&ClifUnit::new(vec![empty])).unwrap_err();
    assert!(
        matches!(&err, Error::Verifier { function, .. } if function == "empty"),
        "{err}"
    );
}

#[test]
fn naming_errors_are_typed() {
    let backend = backend(CraneliftConfig::default());
    let f = "function %f() -> i64 {\nblock0:\n v0 = iconst.i64 1\n return v0\n}\n";

    let dup = ClifUnit::parse(&format!("{f}{f}")).unwrap();
    assert!(matches!(
        backend.compile(&dup).unwrap_err(),
        Error::DuplicateSymbol { symbol } if symbol == "f"
    ));

    let user =
        ClifUnit::parse("function u0:7() -> i64 {\nblock0:\n v0 = iconst.i64 1\n return v0\n}\n")
            .unwrap();
    assert!(matches!(
        backend.compile(&user).unwrap_err(),
        Error::InvalidName { .. }
    ));

    let mut bad_utf8 = ClifUnit::parse(f).unwrap();
    bad_utf8.functions[0].name = UserFuncName::testcase([0xff, 0xfe]);
    assert!(matches!(
        backend.compile(&bad_utf8).unwrap_err(),
        Error::InvalidName { .. }
    ));
    assert!(bad_utf8.to_text().is_err());

    // Calling a function of the unit with another signature.
    let mismatch = ClifUnit::parse(&format!(
        "{f}function %g() -> i64 {{\n fn0 = %f(i64) -> i64\nblock0:\n v0 = iconst.i64 1\n v1 = call fn0(v0)\n return v1\n}}\n"
    ))
    .unwrap();
    match backend.compile(&mismatch).unwrap_err() {
        Error::Declaration {
            function, symbol, ..
        } => {
            assert_eq!((function.as_str(), symbol.as_str()), ("g", "f"));
        }
        other => panic!("unexpected {other}"),
    }

    // A symbol global value naming a called function is that function's
    // address, not a data object of the same name.
    let both = ClifUnit::parse(
        "function %g() -> i64 {\n gv0 = symbol %x\n fn0 = %x() -> i64\nblock0:\n v0 = call fn0()\n v1 = symbol_value.i64 gv0\n v2 = iadd v0, v1\n return v2\n}\n",
    )
    .unwrap();
    let object = backend.compile(&both).unwrap();
    assert_eq!(inspect(&object.bytes).undefined, ["x"]);
}

#[test]
fn unwind_info_can_be_turned_off() {
    let unit = ClifUnit::parse(TEXT_UNIT).unwrap();
    let without = backend(CraneliftConfig {
        unwind_info: false,
        ..CraneliftConfig::default()
    });
    assert!(
        without
            .identity()
            .flags
            .iter()
            .any(|f| f == "unwind_info=false")
    );
    let object = without.compile(&unit).unwrap();
    assert!(
        !inspect(&object.bytes)
            .sections
            .iter()
            .any(|s| s == ".eh_frame")
    );
}

#[test]
fn empty_unit_gives_an_empty_object() {
    let object = backend(CraneliftConfig::default())
        .compile(&ClifUnit::default())
        .unwrap();
    assert!(object.symbols.is_empty());
    let file = object::File::parse(&*object.bytes).unwrap();
    assert!(
        file.sections()
            .all(|s| s.kind() != SectionKind::Text || s.size() == 0)
    );
}

/// Not an assertion: prints how long a small function takes, for the notes.
#[test]
fn measure_small_compile() {
    let start = Instant::now();
    let backend = backend(CraneliftConfig::default());
    let built = start.elapsed();
    let unit = ClifUnit::parse(TEXT_UNIT).unwrap();
    backend.compile(&unit).unwrap();
    let runs = 20;
    let start = Instant::now();
    for _ in 0..runs {
        backend.compile(&unit).unwrap();
    }
    let per_unit = start.elapsed() / runs;
    let start = Instant::now();
    for _ in 0..runs {
        ClifUnit::parse(TEXT_UNIT).unwrap();
    }
    let per_parse = start.elapsed() / runs;
    println!(
        "cranelift: backend construction {built:?}; 3-function unit: compile {per_unit:?}, parse {per_parse:?}"
    );
    println!("cranelift identity: {:#?}", backend.identity());
}
