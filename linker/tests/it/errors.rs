//! Typed errors: unsupported constructs name the object, section, offset and kind;
//! out-of-range relocations name the symbol and relocation; bad bytes are `Malformed`.

use jitcache_linker::{Error, Linker, LoadOptions, Unsupported};

use crate::common::{cc, obj};

fn load(name: &str, bytes: &[u8]) -> Result<(), Error> {
    let mut linker = Linker::new();
    linker
        .load_with(
            &[obj(name, bytes)],
            &LoadOptions::default()
                .constructors(false)
                .unwind_info(false),
        )
        .map(|_| ())
}

/// Initial-exec and local-exec accesses (non-PIC code, or an explicit `-ftls-model`)
/// assume a static TLS block fixed at start-up: a typed error naming the model, the
/// relocation and the flags that avoid it.
#[test]
fn static_tls_models_name_the_model_and_the_fix() {
    let local = "__thread int mine;\nint get(void) { return mine; }\n";
    let external = "extern __thread int theirs;\nint get(void) { return theirs; }\n";
    for (source, flags, model, relocation) in [
        (
            local,
            &["-O2", "-fno-pic"][..],
            "local-exec",
            "R_X86_64_TPOFF32",
        ),
        (
            external,
            &["-O2", "-fno-pic"][..],
            "initial-exec",
            "R_X86_64_GOTTPOFF",
        ),
        (
            local,
            &["-O0", "-fPIE"][..],
            "local-exec",
            "R_X86_64_TPOFF32",
        ),
        (
            local,
            &["-O2", "-fPIC", "-ftls-model=initial-exec"][..],
            "initial-exec",
            "R_X86_64_GOTTPOFF",
        ),
        (
            local,
            &["-O2", "-fPIC", "-ftls-model=local-exec"][..],
            "local-exec",
            "R_X86_64_TPOFF32",
        ),
    ] {
        let name = format!(
            "static_tls_{}{}",
            source.len(),
            flags.join("").replace(['-', '='], "_")
        );
        let bytes = cc(&name, source, flags);
        let err = load("static_tls.o", &bytes).expect_err("static TLS");
        match &err {
            Error::Unsupported {
                at,
                kind:
                    Unsupported::StaticTls {
                        model: m,
                        relocation: r,
                    },
            } => {
                assert_eq!((*m, *r), (model, relocation), "{flags:?}: {err}");
                assert_eq!(
                    (at.object.as_str(), at.section.as_str()),
                    ("static_tls.o", ".text")
                );
            }
            other => panic!("{flags:?}: expected a static TLS error, got {other}"),
        }
        let message = err.to_string();
        assert!(
            message.contains(model) && message.contains(relocation) && message.contains("-fPIC"),
            "{message}"
        );
        assert!(message.contains("-ftls-model=global-dynamic"), "{message}");
    }
}

#[test]
fn an_undefined_thread_local_is_an_undefined_symbol() {
    let bytes = cc(
        "tls_extern",
        "extern __thread int counter;\nint get(void) { return counter; }\n",
        &["-O2", "-fPIC"],
    );
    let err = load("tls_extern.o", &bytes).expect_err("undefined");
    assert!(
        matches!(&err, Error::UndefinedSymbol { at, symbol } if symbol == "counter" && at.section == ".text"),
        "{err}"
    );
}

#[test]
fn a_plain_reference_to_a_thread_local_is_refused() {
    // The address of a thread-local is per thread: `.quad counter` in data has no value.
    let bytes = cc(
        "tls_plain_ref",
        "__thread int counter;\n__asm__(\".section .data.refs,\\\"aw\\\"\\n.quad counter\\n.text\");\n\
         int get(void) { return counter; }\n",
        &["-O2", "-fPIC"],
    );
    let err = load("tls_plain_ref.o", &bytes).expect_err("a plain reference");
    match &err {
        Error::Unsupported {
            at,
            kind: Unsupported::ThreadLocal(what),
        } => {
            assert_eq!(at.section, ".data.refs");
            assert!(
                what.contains("R_X86_64_64") && what.contains("`counter`"),
                "{err}"
            );
        }
        other => panic!("expected a thread-local error, got {other}"),
    }
}

#[test]
fn ifunc_definitions_are_unsupported() {
    let bytes = cc(
        "ifunc",
        "static int impl(void) { return 1; }\nstatic void *pick(void) { return impl; }\nint chosen(void) __attribute__((ifunc(\"pick\")));\n",
        &["-O1", "-fPIC"],
    );
    let err = load("ifunc.o", &bytes).expect_err("IFUNC");
    assert!(
        matches!(&err, Error::Unsupported { kind: Unsupported::Ifunc(s), .. } if s == "chosen"),
        "{err}"
    );
}

#[test]
fn unknown_relocation_kinds_name_object_section_offset_and_kind() {
    let bytes = cc(
        "size32",
        "int thing = 1;\n__asm__(\".section .data.sizes,\\\"aw\\\"\\n.long 0\\n.long thing@SIZE\\n.text\");\n",
        &["-O1", "-fPIC"],
    );
    let err = load("size32.o", &bytes).expect_err("SIZE32");
    match &err {
        Error::Unsupported {
            at,
            kind: Unsupported::Relocation { r_type, name },
        } => {
            assert_eq!(
                (at.object.as_str(), at.section.as_str()),
                ("size32.o", ".data.sizes")
            );
            assert_eq!(*r_type, object::elf::R_X86_64_SIZE32);
            assert_eq!(*name, "R_X86_64_SIZE32");
            assert_eq!(at.offset, 4, "after the first word");
        }
        other => panic!("expected an unsupported relocation, got {other}"),
    }
}

#[test]
fn pc32_to_far_host_data_is_an_error_not_a_truncated_write() {
    // The string literal needs R_X86_64_32 (low memory); `stdout` is libc data far above.
    let bytes = cc(
        "far_stdout",
        "#include <stdio.h>\nconst char *text(void) { return \"x\"; }\nFILE *out(void) { return stdout; }\n",
        &["-O0", "-fno-pic"],
    );
    let err = load("far.o", &bytes).expect_err("out of range");
    match &err {
        Error::OutOfRange {
            at,
            relocation,
            symbol,
            bits,
            ..
        } => {
            assert_eq!(symbol, "stdout");
            assert_eq!(*relocation, "R_X86_64_PC32");
            assert_eq!(*bits, 32);
            assert_eq!(at.object, "far.o");
        }
        other => panic!("expected OutOfRange, got {other}"),
    }
}

#[test]
fn undefined_symbols_are_named_with_their_first_use() {
    let bytes = cc(
        "undef",
        "int nowhere_to_be_found(int);\nint f(void) { return nowhere_to_be_found(1); }\n",
        &["-O1", "-fPIC"],
    );
    let err = load("undef.o", &bytes).expect_err("undefined");
    assert!(
        matches!(&err, Error::UndefinedSymbol { at, symbol } if symbol == "nowhere_to_be_found" && at.object == "undef.o" && at.section == ".text"),
        "{err}"
    );
}

#[test]
fn truncated_objects_are_malformed() {
    let bytes = cc(
        "truncate",
        "int table[] = {1, 2, 3};\nint get(int i) { return table[i]; }\n",
        &["-O2", "-fPIC"],
    );
    assert!(load("whole.o", &bytes).is_ok());
    for len in 0..bytes.len() {
        match load("cut.o", &bytes[..len]) {
            Err(Error::Malformed { object, .. }) => assert_eq!(object, "cut.o"),
            Err(other) => panic!("prefix {len}: expected Malformed, got {other}"),
            Ok(()) => {
                // Trailing bytes past the section headers may be absent without harm.
                assert!(len > 0);
            }
        }
    }
}

#[test]
fn other_machines_and_file_types_are_refused() {
    let mut bytes = cc("machine", "int f(void) { return 1; }\n", &["-O1", "-fPIC"]);
    bytes[18] = 183; // EM_AARCH64
    assert!(matches!(
        load("arm.o", &bytes),
        Err(Error::WrongKind { .. })
    ));
    bytes[18] = 62;
    bytes[16] = 2; // ET_EXEC
    assert!(matches!(
        load("exec.o", &bytes),
        Err(Error::WrongKind { .. })
    ));
}
