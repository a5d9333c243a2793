//! `jitcache exec`: link objects in-process and call their entry point.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use jitcache_linker::{Linker, LoadOptions, ObjectFile};

/// Arguments of `jitcache exec`.
#[derive(clap::Args, Debug)]
pub struct ExecArgs {
    /// Relocatable objects (`.o`) linked together as one unit.
    #[arg(required = true, value_name = "OBJ")]
    pub objects: Vec<PathBuf>,
    /// Shared libraries to open before linking (`m` opens libm).
    #[arg(long = "lib", value_name = "NAME")]
    pub libs: Vec<String>,
    /// The entry symbol, called as `int main(int argc, char **argv)`.
    #[arg(long, default_value = "main")]
    pub entry: String,
    /// Arguments passed to the entry after argv[0].
    #[arg(last = true)]
    pub args: Vec<String>,
}

/// Runs `jitcache exec`: opens the libraries, links the objects as one unit (running its
/// constructors), calls the entry with `argv[0]` = the first object's path, flushes C
/// stdio and exits with the entry's status (`& 0xff`). The unit's destructors run at
/// process exit, as a natively linked program's do.
pub fn exec(args: &ExecArgs) -> anyhow::Result<ExitCode> {
    let mut linker = Linker::new();
    for lib in &args.libs {
        linker.open_library(lib)?;
    }
    let names: Vec<String> = args
        .objects
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let bytes = args
        .objects
        .iter()
        .map(|p| std::fs::read(p).with_context(|| format!("cannot read {}", p.display())))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let objects: Vec<ObjectFile<'_>> = names
        .iter()
        .zip(&bytes)
        .map(|(name, bytes)| ObjectFile { name, bytes })
        .collect();
    // Link without running anything, so that the destructors can be handed to atexit
    // before any code of the unit runs (the order a native program has).
    let unit = linker.load_with(&objects, &LoadOptions::default().constructors(false))?;
    let entry = linker.symbol_handle(unit, &args.entry).with_context(|| {
        format!(
            "entry symbol `{}` is not defined by the objects",
            args.entry
        )
    })?;
    linker.run_constructors(unit)?;
    linker.keep_until_exit(unit)?;
    let mut argv = Vec::with_capacity(args.args.len() + 1);
    argv.push(names.first().cloned().unwrap_or_default());
    argv.extend(args.args.iter().cloned());
    // The unit stays mapped for the rest of the process (kept until exit above).
    let status = entry.call_main(&argv)?;
    Ok(ExitCode::from((status & 0xff) as u8))
}
