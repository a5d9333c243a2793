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

#[test]
fn thread_local_storage_is_unsupported() {
    let bytes = cc(
        "tls",
        "__thread int counter;\nint bump(void) { return ++counter; }\n",
        &["-O2", "-fPIC"],
    );
    let err = load("tls.o", &bytes).expect_err("TLS");
    match &err {
        Error::Unsupported {
            at,
            kind: Unsupported::ThreadLocal(what),
        } => {
            assert_eq!(at.object, "tls.o");
            assert!(
                at.section.starts_with(".tbss") || at.section.starts_with(".tdata"),
                "{err}"
            );
            assert!(what.contains(".tbss") || what.contains(".tdata"), "{err}");
        }
        other => panic!("expected a TLS error, got {other}"),
    }
    assert!(err.to_string().contains("thread-local storage"));
}

#[test]
fn tls_relocations_are_unsupported_too() {
    let bytes = cc(
        "tls_extern",
        "extern __thread int counter;\nint get(void) { return counter; }\n",
        &["-O2", "-fPIC"],
    );
    let err = load("tls_extern.o", &bytes).expect_err("TLS");
    assert!(
        matches!(&err, Error::Unsupported { at, kind: Unsupported::ThreadLocal(what) } if at.section == ".text" && what.contains("R_X86_64_")),
        "{err}"
    );
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
