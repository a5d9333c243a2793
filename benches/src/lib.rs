//! jitcache's benchmarks: the harness behind the report of the performance targets
//! (`cargo run --release -p jitcache-bench`) and the criterion benches (`cargo bench`).
//!
//! The report runs every comparison of the performance targets in one run and
//! prints, for each, the figure, its baseline measured in the same run, the ratio, the
//! target and whether it is met (`--json`: one object per comparison).
//!
//! | target | module | compares |
//! | --- | --- | --- |
//! | 1 | `hit` | an in-process persistent hit with its like-for-like floor (an SQLite row for an inline blob, a file for a file blob), isolated and in bursts; with `dlopen`, fresh memory both sides |
//! | 2 | `cstart` | a warm `jitcache run` of a 200-file C program with a prelinked `.so` loaded by `dlopen`, the ccache route, the native executable and an uncached parallel build |
//! | 3 | `startup` | a warm `jitcache run` of a 1,000-definition Lisp program with `cranelift_jit` compiling it in memory ([`lispjit`]) |
//! | 4 | `llvm` | loading the C program's and the Lisp program's objects with jitcache against LLVM 19's LLJIT `addObjectFile`, net of each process's fixed cost; a warm start of an LLJIT host with jitcache against no cache |
//! | 5 | `scale`, `memory` | hit latency at many entries against few; gc against deleting the same files; memory while iterating; memory per small unit against half a page |
//! | 6 | `concurrency` | 2, 4, 8 processes of mixed hits and puts |
//!
//! Every comparison's two sides are measured in the same run; a row says the sizes and
//! repetitions behind each side, and a side that cannot run here (a peer not installed)
//! is reported as not run, never dropped ([`report`]). The report exits non-zero when a
//! target is missed.
//!
//! Where a target is about processes, the bench spawns `jitcache-bench-worker` (this
//! package's second binary, [`worker`]), `jitcache-bench-cljit` (the third, target 3's
//! baseline) or `jitcache run` ([`exe`] finds them).

// One site calls code: `lispjit::run` calls the `main` that `cranelift_jit` compiled,
// as any Cranelift JIT does (marked `#[expect(unsafe_code)]` there).
#![deny(unsafe_code)]

pub mod concurrency;
pub mod cstart;
pub mod exe;
pub mod hit;
pub mod lispjit;
pub mod llvm;
pub mod maintenance;
pub mod measure;
pub mod memory;
pub mod programs;
pub mod report;
pub mod scale;
pub mod startup;
pub mod worker;
