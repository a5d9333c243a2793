//! The workspace's binaries the benchmarks start as child processes: `jitcache` (the
//! start-up targets run `jitcache run` as a user does) and `jitcache-bench-worker`; and
//! `libjitcache.so`, which target 4's C++ hosts link.
//!
//! A binary is looked for beside the running executable (for a criterion bench or a test,
//! which live in `deps/`, one directory up), in the same profile. Under cargo (`cargo run`,
//! `cargo bench`, `cargo test` set `$CARGO`) it is built first, so a report never
//! measures a binary older than the code.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};

/// The path of binary `bin` of workspace package `package`, built with the profile of the
/// running executable when this runs under cargo.
pub fn workspace_binary(package: &str, bin: &str) -> Result<PathBuf> {
    let profile_dir = profile_dir()?;
    if let Some(cargo) = std::env::var_os("CARGO") {
        build(Path::new(&cargo), &profile_dir, package, &["--bin", bin])?;
    }
    let path = profile_dir.join(bin);
    ensure!(
        path.is_file(),
        "{} is missing: build it with `cargo build --release -p {package}`",
        path.display()
    );
    Ok(path)
}

/// The path of the library file `file` (`libjitcache.so`) of workspace package
/// `package`, built like [`workspace_binary`]'s binaries.
pub fn workspace_library(package: &str, file: &str) -> Result<PathBuf> {
    let profile_dir = profile_dir()?;
    if let Some(cargo) = std::env::var_os("CARGO") {
        build(Path::new(&cargo), &profile_dir, package, &["--lib"])?;
    }
    let path = profile_dir.join(file);
    ensure!(
        path.is_file(),
        "{} is missing: build it with `cargo build --release -p {package} --lib`",
        path.display()
    );
    Ok(path)
}

/// The directory of the running executable's profile (`target/release`, `target/debug`).
fn profile_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the running executable")?;
    let dir = exe
        .parent()
        .context("the running executable has no directory")?;
    Ok(if dir.ends_with("deps") {
        dir.parent().unwrap_or(dir).to_path_buf()
    } else {
        dir.to_path_buf()
    })
}

/// Runs `cargo build` of `package` with `what` (`--bin NAME`, `--lib`) into the profile
/// directory `profile_dir`.
fn build(cargo: &Path, profile_dir: &Path, package: &str, what: &[&str]) -> Result<()> {
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => "dev",
        Some(name) => name,
        None => bail!("{}: not a cargo profile directory", profile_dir.display()),
    };
    let target_dir = profile_dir
        .parent()
        .context("the profile directory has no parent")?;
    let status = Command::new(cargo)
        .args(["build", "--quiet", "--profile", profile, "-p", package])
        .args(what)
        .arg("--target-dir")
        .arg(target_dir)
        .status()
        .with_context(|| format!("running {} build", cargo.display()))?;
    ensure!(
        status.success(),
        "cargo build -p {package} {} failed",
        what.join(" ")
    );
    Ok(())
}
