//! A `jitcache --json run` in a child process and its JSON report: what `jitcache demo`
//! shows and what the start-up benchmarks measure, a whole process as a user starts it.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use serde_json::Value;

/// One `jitcache run` in a new process.
#[derive(Clone, Debug)]
pub struct Run {
    /// Wall time of the whole process.
    pub wall: Duration,
    /// Time until `main` was called, from the report: frontend + compile + load.
    pub load: Duration,
    /// Units the program consists of.
    pub units: u64,
    /// Units compiled in the run.
    pub compiled: u64,
    /// What the program printed.
    pub stdout: Vec<u8>,
}

/// Runs `program` once in a new process of `exe` on the cache in `cache`.
pub fn run_once(exe: &Path, cache: &Path, program: &Path, no_cache: bool) -> Result<Run> {
    let mut command = Command::new(exe);
    // A remote tier configured in the environment would add network round trips to the
    // figures: the demo and the start-up benchmarks measure the local cache.
    command.env_remove("JITCACHE_REMOTE");
    command
        .arg("--cache-dir")
        .arg(cache)
        .arg("--json")
        .arg("run");
    if no_cache {
        command.arg("--no-cache");
    }
    command.arg(program);
    let start = Instant::now();
    let output = command
        .output()
        .with_context(|| format!("running {}", program.display()))?;
    let wall = start.elapsed();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let report = parse_report(&stderr)
        .with_context(|| format!("{} printed no report: {}", program.display(), stderr.trim()))?;
    ensure!(
        report["exit"] == 0 && output.status.success(),
        "{} exited with {}: {}",
        program.display(),
        output.status,
        stderr.trim()
    );
    Ok(Run {
        wall,
        load: report_load_time(&report),
        units: report["units"].as_u64().unwrap_or(0),
        compiled: report["compiled"].as_u64().unwrap_or(0),
        stdout: output.stdout,
    })
}

/// The JSON report of `jitcache --json run`: the last line of its stderr that parses.
pub fn parse_report(stderr: &str) -> Option<Value> {
    stderr
        .lines()
        .rev()
        .find_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(Value::is_object)
}

/// Frontend + compile + load time of a run report.
pub fn report_load_time(report: &Value) -> Duration {
    let ms = |field: &str| report[field].as_f64().unwrap_or(0.0);
    Duration::from_secs_f64((ms("frontend_ms") + ms("compile_ms") + ms("load_ms")).max(0.0) / 1e3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_is_the_last_json_line_of_stderr() {
        let stderr = "warning: something\n{\"exit\": 0, \"frontend_ms\": 1.5, \"compile_ms\": 2.0, \"load_ms\": 0.5}\n";
        let report = parse_report(stderr).unwrap();
        assert_eq!(report["exit"], 0);
        assert_eq!(report_load_time(&report), Duration::from_millis(4));
        assert!(parse_report("no report\n42\n").is_none());
    }
}
