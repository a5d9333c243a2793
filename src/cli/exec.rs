//! `jitcache exec`: link objects in-process and call their entry point.

use std::path::PathBuf;
use std::process::ExitCode;

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

/// Runs `jitcache exec`.
pub fn exec(args: &ExecArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("exec of {} object(s) is not built yet", args.objects.len())
}
