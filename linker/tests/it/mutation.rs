//! Mutated objects: random bytes, header fields, section-header fields and relocation
//! entries of valid objects. Loading (with constructors and unwind registration off, so
//! nothing of the object runs) returns `Ok` or `Err` and never panics or faults.

use std::sync::OnceLock;

use jitcache_linker::{Linker, LoadOptions};
use object::elf;
use object::read::elf::{FileHeader, SectionHeader};
use proptest::prelude::*;

use crate::common::{cc, compile_with, have, obj};

const C_SOURCE: &str = r#"
#include <stdio.h>
#include <stdlib.h>
static int cmp(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }
static int (*const table[])(const void *, const void *) = { cmp };
int data[] = { 3, 1, 2 };
static long bss[32];
const char *names[] = { "a", "b" };
__attribute__((constructor)) static void ctor(void) { bss[0] = 1; }
int run(int x) {
  switch (x) { case 0: return 5; case 1: return 7; case 2: return 11; case 3: return 13; case 4: return 17; default: break; }
  qsort(data, 3, sizeof data[0], table[0]);
  printf("%s %d\n", names[x & 1], data[0]);
  return (int)bss[0];
}
"#;

const TLS_SOURCE: &str = r#"
__thread long counter = 5;
static __thread long calls;
static __thread int table[8] = { 1, 2, 3 };
long bump(long by) { counter += by; calls++; return counter + table[by & 7]; }
long *where(void) { return &counter; }
"#;

const CPP_SOURCE: &str = r#"
#include <stdexcept>
#include <string>
extern "C" long f(long x) { try { if (x) throw std::runtime_error(std::to_string(x)); } catch (const std::exception &e) { return 1; } return 0; }
"#;

/// Valid objects to mutate: gcc at two settings and with thread-locals (general dynamic
/// and descriptors), Cranelift, and g++ where present.
fn corpus() -> &'static [Vec<u8>] {
    static CORPUS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    CORPUS.get_or_init(|| {
        let mut v = vec![
            cc("mutate_pic", C_SOURCE, &["-O2", "-fPIC"]),
            cc("mutate_nopic", C_SOURCE, &["-O0", "-fno-pic"]),
            cc("mutate_tls", TLS_SOURCE, &["-O2", "-fPIC"]),
            cc(
                "mutate_tlsdesc",
                TLS_SOURCE,
                &["-O0", "-fPIC", "-mtls-dialect=gnu2"],
            ),
            crate::cranelift::build(true),
        ];
        if have("c++") {
            v.push(compile_with(
                "c++",
                "mutate_cpp",
                "cc",
                CPP_SOURCE,
                &["-O2", "-fPIC"],
            ));
        }
        v
    })
}

static ANYTHING: [u64; 4] = [0; 4];

/// A linker whose resolver knows every name (a dummy address), so that mutants get as
/// far as relocation.
fn linker() -> Linker {
    let mut linker = Linker::new();
    linker.set_resolver(Box::new(|_| Some(&raw const ANYTHING as usize)));
    linker
}

/// Loads without running anything; the result does not matter, only that there is one.
fn try_load(bytes: &[u8]) {
    let mut linker = linker();
    let options = LoadOptions::default()
        .constructors(false)
        .unwind_info(false)
        .export(false);
    if let Ok(unit) = linker.load_with(&[obj("mutant.o", bytes)], &options) {
        let _ = linker.symbol(unit, "run");
        linker.unload(unit).expect("unload of a loaded unit");
    }
}

/// File offsets of every relocation entry (24 bytes each) in an object.
fn rela_entries(bytes: &[u8]) -> Vec<usize> {
    let le = object::LittleEndian;
    let Ok(header) = elf::FileHeader64::<object::LittleEndian>::parse(bytes) else {
        return Vec::new();
    };
    let Ok(sections) = header.sections(le, bytes) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for s in sections.iter() {
        if s.sh_type(le) == elf::SHT_RELA {
            let off = s.sh_offset(le) as usize;
            for i in 0..(s.sh_size(le) as usize / 24) {
                out.push(off + 24 * i);
            }
        }
    }
    out
}

fn section_headers(bytes: &[u8]) -> (usize, usize) {
    let le = object::LittleEndian;
    match elf::FileHeader64::<object::LittleEndian>::parse(bytes) {
        Ok(h) => (h.e_shoff(le) as usize, h.e_shnum(le) as usize),
        Err(_) => (0, 0),
    }
}

fn put(bytes: &mut [u8], at: usize, value: &[u8]) {
    if let Some(dst) = bytes.get_mut(at..at + value.len()) {
        dst.copy_from_slice(value);
    }
}

/// Interesting values for a numeric field: small, boundary and huge.
fn field_value() -> impl Strategy<Value = u64> {
    prop_oneof![
        0..64_u64,
        Just(u64::MAX),
        Just(u64::from(u32::MAX)),
        Just(1 << 31),
        Just(1 << 63),
        any::<u64>(),
    ]
}

#[test]
fn valid_corpus_loads() {
    for bytes in corpus() {
        let mut linker = linker();
        let options = LoadOptions::default()
            .constructors(false)
            .unwind_info(false);
        linker
            .load_with(&[obj("valid.o", bytes)], &options)
            .expect("the unmutated object loads");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes(which in 0..8_usize, edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..16)) {
        let corpus = corpus();
        let mut bytes = corpus[which % corpus.len()].clone();
        for (index, value) in edits {
            let i = index.index(bytes.len());
            bytes[i] = value;
        }
        try_load(&bytes);
    }

    #[test]
    fn header_fields(which in 0..8_usize, field in 0..8_usize, value in field_value()) {
        let corpus = corpus();
        let mut bytes = corpus[which % corpus.len()].clone();
        // e_type, e_machine, e_shoff, e_flags, e_ehsize, e_shentsize, e_shnum, e_shstrndx
        let (at, width) = [(16, 2), (18, 2), (40, 8), (48, 4), (52, 2), (58, 2), (60, 2), (62, 2)][field];
        put(&mut bytes, at, &value.to_le_bytes()[..width]);
        try_load(&bytes);
    }

    #[test]
    fn section_header_fields(which in 0..8_usize, section in any::<prop::sample::Index>(), field in 0..10_usize, value in field_value()) {
        let corpus = corpus();
        let mut bytes = corpus[which % corpus.len()].clone();
        let (shoff, shnum) = section_headers(&bytes);
        prop_assume!(shnum > 0);
        let base = shoff + 64 * section.index(shnum);
        // sh_name, sh_type, sh_flags, sh_addr, sh_offset, sh_size, sh_link, sh_info, sh_addralign, sh_entsize
        let (at, width) = [(0, 4), (4, 4), (8, 8), (16, 8), (24, 8), (32, 8), (40, 4), (44, 4), (48, 8), (56, 8)][field];
        put(&mut bytes, base + at, &value.to_le_bytes()[..width]);
        try_load(&bytes);
    }

    #[test]
    fn relocation_entries(which in 0..8_usize, entry in any::<prop::sample::Index>(), field in 0..4_usize, value in field_value()) {
        let corpus = corpus();
        let mut bytes = corpus[which % corpus.len()].clone();
        let entries = rela_entries(&bytes);
        prop_assume!(!entries.is_empty());
        let at = entries[entry.index(entries.len())];
        match field {
            0 => put(&mut bytes, at, &value.to_le_bytes()),                     // r_offset
            1 => put(&mut bytes, at + 8, &(value as u32).to_le_bytes()),        // r_type
            2 => put(&mut bytes, at + 12, &(value as u32).to_le_bytes()),       // r_sym
            _ => put(&mut bytes, at + 16, &value.to_le_bytes()),                // r_addend
        }
        try_load(&bytes);
    }
}
