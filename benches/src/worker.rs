//! Child processes of the bench: the `jitcache-bench-worker` binary, run with a JSON
//! spec as its one argument; each prints one JSON report on stdout.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{concurrency, maintenance, scale};

/// What a child does.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WorkerSpec {
    /// Walk every entry of a store, reporting peak memory ([`scale::IterateReport`]).
    Iterate {
        /// The store's root.
        dir: PathBuf,
        /// How many entries it holds.
        entries: u64,
    },
    /// Mixed hits and puts for a fixed time ([`concurrency::MixedReport`]).
    Mixed(concurrency::MixedSpec),
    /// Hits and compiles with their latencies ([`maintenance::LatencyReport`]).
    Latency(maintenance::LatencySpec),
}

/// Runs the child role `spec` (JSON) and prints its report: the worker binary's `main`.
pub fn main(spec: &str) -> Result<()> {
    let spec: WorkerSpec = serde_json::from_str(spec).context("parsing the worker spec")?;
    let report = match &spec {
        WorkerSpec::Iterate { dir, entries } => {
            serde_json::to_value(scale::iterate_worker(dir, *entries)?)?
        }
        WorkerSpec::Mixed(mixed) => serde_json::to_value(concurrency::mixed_worker(mixed)?)?,
        WorkerSpec::Latency(spec) => serde_json::to_value(maintenance::latency_worker(spec)?)?,
    };
    println!("{report}");
    Ok(())
}

/// Starts a child of the worker binary `exe` playing `spec`; its stdout is piped.
pub fn spawn(exe: &Path, spec: &WorkerSpec) -> Result<Child> {
    Command::new(exe)
        // The workers measure the local store (see `jitcache_cli::child::run_once`).
        .env_remove("JITCACHE_REMOTE")
        .arg(serde_json::to_string(spec)?)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting a bench worker")
}

/// Waits for a child started by [`spawn`] and returns its report.
pub fn finish(child: Child) -> Result<Value> {
    let out = child.wait_with_output().context("waiting for a worker")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "worker failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<Value>(l).ok())
        .with_context(|| format!("worker printed no report: {}", stdout.trim()))
}

/// Runs one child playing `spec` and returns its report.
pub fn run_child(exe: &Path, spec: &WorkerSpec) -> Result<Value> {
    finish(spawn(exe, spec)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_round_trip_through_json() {
        let spec = WorkerSpec::Iterate {
            dir: PathBuf::from("/tmp/x"),
            entries: 12,
        };
        let text = serde_json::to_string(&spec).unwrap();
        assert!(text.contains("\"kind\":\"iterate\""), "{text}");
        assert_eq!(serde_json::from_str::<WorkerSpec>(&text).unwrap(), spec);
        assert!(serde_json::from_str::<WorkerSpec>("{\"kind\":\"nope\"}").is_err());
    }
}
