//! Units: resolution order, coexisting units, constructors and destructors, unloading,
//! memory permissions and placement.

use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

use jitcache_linker::{Error, Linker, LoadOptions, MemoryStrategy, call};

use crate::common::{cc, maps_line, obj, perms};

fn addr(linker: &Linker, unit: jitcache_linker::UnitId, name: &str) -> usize {
    linker
        .symbol(unit, name)
        .unwrap_or_else(|| panic!("`{name}` is defined"))
}

#[test]
fn two_units_defining_the_same_names_coexist() {
    let a = cc(
        "coexist_a",
        "int x = 1; int get(void) { return x; } int main(void) { return 10 + get(); }",
        &["-O1", "-fPIC"],
    );
    let b = cc(
        "coexist_b",
        "int x = 2; int get(void) { return x; } int main(void) { return 20 + get(); }",
        &["-O1", "-fPIC"],
    );
    let mut linker = Linker::new();
    let ua = linker.load(&[obj("a.o", &a)]).expect("load a");
    let ub = linker.load(&[obj("b.o", &b)]).expect("load b");
    assert_eq!(
        // SAFETY: a function of that C signature in a unit still loaded.
        unsafe { call::call_main(addr(&linker, ua, "main"), &[]) },
        11
    );
    assert_eq!(
        // SAFETY: a function of that C signature in a unit still loaded.
        unsafe { call::call_main(addr(&linker, ub, "main"), &[]) },
        22
    );
    assert_eq!(
        linker.lookup("main"),
        Some(addr(&linker, ua, "main")),
        "the first loaded wins"
    );
    linker.unload(ua).expect("unload a");
    assert_eq!(
        linker.lookup("main"),
        Some(addr(&linker, ub, "main")),
        "then the next one"
    );
    assert!(matches!(linker.unload(ua), Err(Error::UnknownUnit(_))));
}

extern "C" fn from_resolver() -> i64 {
    500
}

extern "C" fn fake_labs(_: i64) -> i64 {
    -7
}

#[test]
fn resolution_order_is_unit_earlier_units_resolver_host() {
    let first = cc(
        "order_first",
        "long value(void) { return 1; } long shadowed(void) { return 2; }",
        &["-O1", "-fPIC"],
    );
    let second = cc(
        "order_second",
        "long value(void); long from_resolver(void); long labs(long); long strlen_via_host(const char *);\n\
         long shadowed(void) { return 3; }\n\
         long use_value(void) { return value(); }\n\
         long use_shadowed(void) { return shadowed(); }\n\
         long use_resolver(void) { return from_resolver(); }\n\
         long use_labs(void) { return labs(-5); }\n",
        &["-O0", "-fPIC", "-fno-builtin"],
    );
    let third = cc(
        "order_third",
        "#include <string.h>\nlong use_host(void) { return (long)strlen(\"four\"); }\n",
        &["-O0", "-fPIC"],
    );
    let mut linker = Linker::new();
    linker.set_resolver(Box::new(|name| match name {
        "value" => Some(0x1234), // loses against the earlier unit
        "from_resolver" => Some(from_resolver as extern "C" fn() -> i64 as usize),
        "labs" => Some(fake_labs as extern "C" fn(i64) -> i64 as usize), // wins against the host
        _ => None,
    }));
    linker.load(&[obj("first.o", &first)]).expect("first");
    let u2 = linker.load(&[obj("second.o", &second)]).expect("second");
    let u3 = linker.load(&[obj("third.o", &third)]).expect("third");
    // SAFETY: a function of that C signature in a unit still loaded.
    let run = |u, name| unsafe { call::call_i64(addr(&linker, u, name), &[]) }.expect("call");
    assert_eq!(run(u2, "use_shadowed"), 3, "the unit itself first");
    assert_eq!(run(u2, "use_value"), 1, "then earlier units");
    assert_eq!(run(u2, "use_resolver"), 500, "then the resolver");
    assert_eq!(run(u2, "use_labs"), -7, "the resolver before the host");
    assert_eq!(run(u3, "use_host"), 4, "then the host");
}

static EVENTS: Mutex<Vec<i64>> = Mutex::new(Vec::new());
static COUNTER: AtomicI64 = AtomicI64::new(0);

extern "C" fn note(v: i64) {
    EVENTS.lock().expect("events").push(v);
    COUNTER.fetch_add(1, Ordering::SeqCst);
}

const LIFECYCLE: &str = "#include <stdlib.h>\n\
    void note(long);\n\
    static void on_exit_handler(void) { note(3); }\n\
    __attribute__((constructor)) static void ctor(void) { note(1); atexit(on_exit_handler); }\n\
    __attribute__((destructor)) static void dtor(void) { note(4); }\n\
    long alive(void) { note(2); return 0; }\n";

#[test]
fn constructors_destructors_and_atexit_follow_the_unit() {
    let bytes = cc("lifecycle", LIFECYCLE, &["-O2", "-fPIC"]);
    let mut linker = Linker::new();
    linker.set_resolver(Box::new(|name| {
        (name == "note").then_some(note as extern "C" fn(i64) as usize)
    }));
    EVENTS.lock().expect("events").clear();

    // Without constructors nothing runs, not even at unload.
    let u = linker
        .load_with(
            &[obj("lifecycle.o", &bytes)],
            &LoadOptions::default().constructors(false),
        )
        .expect("load");
    linker.unload(u).expect("unload");
    assert!(EVENTS.lock().expect("events").is_empty());

    let u = linker
        .load_with(
            &[obj("lifecycle.o", &bytes)],
            &LoadOptions::default().constructors(false),
        )
        .expect("load");
    linker.run_constructors(u).expect("ctors");
    linker.run_constructors(u).expect("ctors run once");
    // SAFETY: a function of that C signature in a unit still loaded.
    unsafe { call::call_i64(addr(&linker, u, "alive"), &[]) }.expect("call");
    linker.unload(u).expect("unload");
    // The atexit handler registered by the unit runs at unload (its DSO handle), before
    // the .fini_array destructors, like dlclose of a shared object.
    assert_eq!(*EVENTS.lock().expect("events"), vec![1, 2, 3, 4]);
}

#[test]
fn weak_undefined_is_null_and_common_symbols_merge() {
    let a = cc(
        "weak_common_a",
        "extern int maybe(void) __attribute__((weak));\nint shared;\nlong has_maybe(void) { return maybe ? 1 : 0; }\n\
         long call_if_present(void) { if (maybe) return maybe(); return -1; }\nlong read_shared(void) { return shared; }\n",
        &["-O1", "-fPIC", "-fcommon"],
    );
    let b = cc(
        "weak_common_b",
        "int shared;\nlong set_shared(void) { shared = 9; return 0; }\n",
        &["-O1", "-fPIC", "-fcommon"],
    );
    let mut linker = Linker::new();
    let u = linker
        .load(&[obj("a.o", &a), obj("b.o", &b)])
        .expect("load");
    assert_eq!(
        // SAFETY: a function of that C signature in a unit still loaded.
        unsafe { call::call_i64(addr(&linker, u, "has_maybe"), &[]) }.expect("call"),
        0
    );
    // SAFETY: a function of that C signature in a unit still loaded.
    unsafe { call::call_i64(addr(&linker, u, "set_shared"), &[]) }.expect("call");
    assert_eq!(
        // SAFETY: a function of that C signature in a unit still loaded.
        unsafe { call::call_i64(addr(&linker, u, "read_shared"), &[]) }.expect("call"),
        9
    );
}

#[test]
fn duplicate_strong_definitions_in_one_unit_are_an_error() {
    let a = cc("dup_a", "int twin(void) { return 1; }", &["-O1", "-fPIC"]);
    let b = cc("dup_b", "int twin(void) { return 2; }", &["-O1", "-fPIC"]);
    let err = Linker::new()
        .load(&[obj("a.o", &a), obj("b.o", &b)])
        .expect_err("duplicate");
    assert!(
        matches!(&err, Error::DuplicateSymbol { symbol, first, second } if symbol == "twin" && first == "a.o" && second == "b.o"),
        "{err}"
    );
}

const PERMS: &str = "int data_var = 5;\nconst int const_var = 6;\nint (*const fp_table[])(void) = { 0 };\nint code(void) { return data_var + const_var; }\n";

#[test]
fn memory_is_never_writable_and_executable() {
    let bytes = cc("perms", PERMS, &["-O1", "-fPIC"]);
    for strategy in [MemoryStrategy::Arena, MemoryStrategy::MappingPerUnit] {
        let mut linker = Linker::with_memory(strategy);
        let u = linker.load(&[obj("perms.o", &bytes)]).expect("load");
        // Shared (`s`) views of the arena's memfd, or a private (`p`) mapping of the unit.
        let kind = if strategy == MemoryStrategy::Arena {
            's'
        } else {
            'p'
        };
        let code = addr(&linker, u, "code");
        assert_eq!(perms(code), format!("r-x{kind}"), "{strategy:?}");
        assert_eq!(perms(addr(&linker, u, "const_var")), format!("r--{kind}"));
        assert_eq!(
            perms(addr(&linker, u, "fp_table")),
            format!("r--{kind}"),
            ".data.rel.ro is read-only after relocation"
        );
        // Data is private in both: globals of loaded code fork copy-on-write.
        assert_eq!(perms(addr(&linker, u, "data_var")), "rw-p");
        assert_eq!(
            // SAFETY: a function of that C signature in a unit still loaded.
            unsafe { call::call_i64(code, &[]) }.expect("call") & 0xffff_ffff,
            11
        );
        linker.unload(u).expect("unload");
    }
}

#[test]
fn a_unit_with_its_own_mapping_takes_whole_pages_and_unmaps_at_unload() {
    let bytes = cc("perms_own", PERMS, &["-O1", "-fPIC"]);
    let mut linker = Linker::with_memory(MemoryStrategy::MappingPerUnit);
    let u = linker.load(&[obj("perms.o", &bytes)]).expect("load");
    let mapped = linker.mapped_bytes(u).expect("mapped");
    assert_eq!(mapped % 4096, 0);
    assert!(mapped >= 3 * 4096, "a page per segment: {mapped}");
    let stats = linker.arena_stats();
    assert_eq!((stats.units, stats.chunks), (1, 0));
    assert_eq!(stats.used_bytes, mapped);
    let code = addr(&linker, u, "code");
    linker.unload(u).expect("unload");
    assert!(
        maps_line(code).is_none_or(|(perms, _)| !perms.contains('x')),
        "unloading unmaps the code"
    );
}

#[test]
fn absolute_32_bit_relocations_place_the_unit_low_and_far_calls_use_stubs() {
    let bytes = cc(
        "low32",
        "#include <stdlib.h>\nstatic const char msg[] = \"hi\";\nconst char *message(void) { return msg; }\nlong far_call(long x) { return labs(x); }\n",
        &["-O0", "-fno-pic"],
    );
    let mut linker = Linker::new();
    let u = linker.load(&[obj("low32.o", &bytes)]).expect("load");
    let message = addr(&linker, u, "message");
    assert!(message < 1 << 31, "MAP_32BIT placement: {message:#x}");
    // labs lives in libc, far above 2 GiB: the PLT32 call goes through a stub.
    assert_eq!(
        // SAFETY: a function of that C signature in a unit still loaded.
        unsafe { call::call_i64(addr(&linker, u, "far_call"), &[-9]) }.expect("call"),
        9
    );
}

#[test]
fn pc32_to_host_data_is_placed_within_reach() {
    // No absolute 32-bit field here, so the unit is placed near libc's `stdout`.
    let bytes = cc(
        "near_stdout",
        "#include <stdio.h>\nlong stdout_fd(void) { return fileno(stdout); }\n",
        &["-O2", "-fno-pic"],
    );
    let mut linker = Linker::new();
    let u = linker.load(&[obj("near.o", &bytes)]).expect("load");
    assert_eq!(
        // SAFETY: a function of that C signature in a unit still loaded.
        unsafe { call::call_i64(addr(&linker, u, "stdout_fd"), &[]) }.expect("call"),
        1
    );
}

#[test]
fn unloading_hands_names_to_the_next_exporting_unit_only() {
    let src = |v: u32| format!("long which(void) {{ return {v}; }}\n");
    let objects: Vec<Vec<u8>> = (1..=3)
        .map(|v| cc(&format!("which_{v}"), &src(v), &["-O1", "-fPIC"]))
        .collect();
    let mut linker = Linker::new();
    let hidden = linker
        .load_with(
            &[obj("1.o", &objects[0])],
            &LoadOptions::default().export(false),
        )
        .expect("load 1");
    let second = linker.load(&[obj("2.o", &objects[1])]).expect("load 2");
    let third = linker.load(&[obj("3.o", &objects[2])]).expect("load 3");
    let which = |l: &Linker| {
        l.lookup("which")
            // SAFETY: a function of that C signature in a unit still loaded.
            .map(|a| unsafe { call::call_i64(a, &[]) }.expect("call"))
    };
    assert_eq!(which(&linker), Some(2));
    linker.unload(second).expect("unload 2");
    assert_eq!(
        which(&linker),
        Some(3),
        "the next exporting unit, not the hidden one"
    );
    linker.unload(third).expect("unload 3");
    assert_eq!(which(&linker), None);
    assert_eq!(
        // SAFETY: a function of that C signature in a unit still loaded.
        unsafe { call::call_i64(addr(&linker, hidden, "which"), &[]) }.expect("call"),
        1
    );
}
