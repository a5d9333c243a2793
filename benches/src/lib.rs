//! jitcache's benchmarks: the harness behind the report of the performance targets
//! (`cargo run --release -p jitcache-bench`) and the criterion benches (`cargo bench`).
//!
//! The report runs every comparison of the performance targets in one run and
//! prints, for each, the figure, its baseline measured in the same run, the ratio, the
//! target and whether it is met (`--json`: one object per comparison).
//!
//! | target | module | compares |
//! | --- | --- | --- |
//! | 1 | `hit` | an in-process persistent hit with the floor and with `dlopen` |
//! | 2 | `startup` | new processes of `jitcache run`, warm cache against no cache |
//! | 3 | `scale` | hit latency with many entries against few; gc; memory while iterating |
//! | 4 | `concurrency` | 2, 4, 8 processes of mixed hits and puts |
//! | 5 | `memory` | bytes mapped per loaded small unit |
//!
//! Where a target is about processes, the bench spawns `jitcache-bench-worker` (this
//! package's second binary, [`worker`]) or `jitcache run` ([`exe`] finds both).

#![forbid(unsafe_code)]

pub mod concurrency;
pub mod exe;
pub mod hit;
pub mod maintenance;
pub mod measure;
pub mod memory;
pub mod programs;
pub mod report;
pub mod scale;
pub mod startup;
pub mod worker;
