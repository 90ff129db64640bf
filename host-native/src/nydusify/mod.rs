//! The `nydusify` command: images in registries. `check` runs the manifest and bootstrap
//! rules; the other subcommands are not built yet and say so.

pub mod check;

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "nydusify",
    version,
    about = "Convert, check and copy Nydus images in registries"
)]
pub struct Cli {
    /// trace | debug | info | warn | error
    #[arg(long = "log-level", default_value = "info", global = true)]
    pub log_level: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a Nydus image in a registry: manifest, config and bootstrap rules.
    Check(CheckArgs),
    /// Convert an OCI image to a Nydus image (not built yet).
    Convert(Unbuilt),
    /// Build a Nydus image from a local directory (not built yet).
    #[command(alias = "pack")]
    Build(Unbuilt),
    /// Copy images between registries (not built yet).
    Copy(Unbuilt),
    /// Mount a Nydus image with FUSE (not built yet).
    #[command(alias = "view")]
    Mount(Unbuilt),
    /// Commit a container's changes (not built yet).
    Commit(Unbuilt),
    /// Optimize an image with a prefetch list (not built yet).
    Optimize(Unbuilt),
}

/// Any arguments of a subcommand that is not built yet.
#[derive(Debug, Args)]
pub struct Unbuilt {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    pub rest: Vec<String>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The Nydus image to check.
    #[arg(long = "target")]
    pub target: String,
    /// The source OCI image (enables the filesystem comparison; not built yet).
    #[arg(long = "source")]
    pub source: Option<String>,
    /// Skip TLS verification of the target registry.
    #[arg(long = "target-insecure")]
    pub target_insecure: bool,
    /// Speak plain HTTP to the target registry.
    #[arg(long = "plain-http")]
    pub plain_http: bool,
    /// `os/arch` of the manifest to check in an index.
    #[arg(long = "platform")]
    pub platform: Option<String>,
    /// Require an index holding both OCI and Nydus manifests.
    #[arg(long = "multi-platform")]
    pub multi_platform: bool,
    /// Where the fetched manifests, config and bootstrap are written.
    #[arg(long = "work-dir", default_value = "./output")]
    pub work_dir: PathBuf,
    /// Accepted for compatibility; the checks run in process.
    #[arg(long = "nydus-image")]
    pub nydus_image: Option<PathBuf>,
    /// Accepted for compatibility; the filesystem comparison is not built yet.
    #[arg(long = "nydusd")]
    pub nydusd: Option<PathBuf>,
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    let not_built = |what: &str| -> Result<()> {
        bail!("nydusify {what} is not supported by this nydusify yet")
    };
    match cli.command {
        Command::Check(a) => check::run(a),
        Command::Convert(_) => not_built("convert"),
        Command::Build(_) => not_built("build (pack)"),
        Command::Copy(_) => not_built("copy"),
        Command::Mount(_) => not_built("mount"),
        Command::Commit(_) => not_built("commit"),
        Command::Optimize(_) => not_built("optimize"),
    }
}
