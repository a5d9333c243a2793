//! Helpers shared by the performance-target benches (`hit`, `startup`, `scale`,
//! `concurrency`, `memory`): fixtures, object-like bytes, keys.

#![allow(dead_code, reason = "each bench uses a different subset")]

use std::path::{Path, PathBuf};
use std::process::Command;

use jitcache::store::Key;

#[path = "../../src/cli/bench/programs.rs"]
pub mod programs;

/// Whether criterion runs for real (`cargo bench`), rather than once per bench as a
/// test (`cargo test --benches`): fixtures are smaller in the second case.
pub fn bench_mode() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// Runs `cc` with `args` in `dir`; panics with its output on failure.
pub fn cc(dir: &Path, args: &[&str]) {
    let out = Command::new("cc")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run cc");
    assert!(
        out.status.success(),
        "cc {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The small C unit compiled as an object and as a shared object in `dir`.
pub struct SmallUnit {
    /// `cc -c` output.
    pub object: Vec<u8>,
    /// `cc -shared` output.
    pub shared: PathBuf,
}

impl SmallUnit {
    /// Compiles [`programs::SMALL_C`] in `dir`.
    pub fn build(dir: &Path) -> SmallUnit {
        std::fs::write(dir.join("small.c"), programs::SMALL_C).expect("write small.c");
        cc(dir, &["-O2", "-fPIC", "-c", "small.c", "-o", "small.o"]);
        cc(
            dir,
            &["-O2", "-fPIC", "-shared", "small.c", "-o", "small.so"],
        );
        SmallUnit {
            object: std::fs::read(dir.join("small.o")).expect("read small.o"),
            shared: dir.join("small.so"),
        }
    }
}

/// Object-file-like bytes: part noise, part a repeated instruction pattern.
pub fn object_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes()[..4]);
        out.extend_from_slice(&[0x48, 0x89, 0xe5, 0x00]);
    }
    out.truncate(len);
    out
}

/// The key of entry `i` of a bench store.
pub fn key(i: u64) -> Key {
    Key::from_bytes(*blake3::hash(&i.to_le_bytes()).as_bytes())
}

/// xorshift64.
pub struct Rng(pub u64);

impl Rng {
    /// A number below `n`.
    pub fn below(&mut self, n: usize) -> usize {
        let mut x = self.0 | 1;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        (x % n.max(1) as u64) as usize
    }
}
