//! The `nydusify` command: images in registries. `convert`, `copy`, `build` (`pack`) and
//! `check` are built; the other subcommands are not built yet and say so.

pub mod cache;
pub mod check;
pub mod convert;
pub mod copy;
pub mod fscheck;
pub mod pack;
pub mod store;
pub mod stream;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::{Args, Parser, Subcommand};
use nydus_core::oci::annotation;
use nydus_core::oci::manifest::{Descriptor, Platform};
use nydus_core::oci::media;

use nydus_host_storage::config::BackendFlags;

use crate::registry::{Credentials, Registry, RegistryOptions};

/// `linux/<host arch>` in OCI names.
pub(crate) fn host_platform() -> Platform {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    Platform {
        os: "linux".into(),
        architecture: arch.into(),
        ..Default::default()
    }
}

/// Whether an index entry is marked as a Nydus manifest (either marker of §5).
pub(crate) fn is_nydus_entry(d: &Descriptor) -> bool {
    d.artifact_type.as_deref() == Some(media::NYDUS_MANIFEST_ARTIFACT)
        || d.platform.as_ref().is_some_and(|p| {
            p.os_features
                .iter()
                .any(|f| f == annotation::NYDUS_OS_FEATURE)
        })
}

/// The blob directory of a `--backend-type localfs` with `--backend-config[-file]`
/// (`{"dir": ...}`); `None` without a backend type. `flag` names the options in errors.
pub(crate) fn backend_dir(
    kind: Option<&str>,
    config: Option<&str>,
    config_file: Option<&std::path::Path>,
    flag: &str,
) -> Result<Option<PathBuf>> {
    // `registry` is where the blobs go anyway: the image's own repository.
    let kind = match kind {
        None | Some("registry") => return Ok(None),
        Some(k) => k,
    };
    let flags = BackendFlags {
        prefix: flag,
        tool: "nydusify",
        config_file: true,
    };
    let c = nydus_host_storage::config::parse(flags, kind, config, config_file)?;
    match c.dir() {
        Some(d) => Ok(Some(d.to_path_buf())),
        None => {
            bail!("{flag}-config: a localfs backend for images needs \"dir\", not \"blob_file\"")
        }
    }
}

/// A client of `host` with credentials from the Docker config.
pub(crate) fn registry_for(
    host: &str,
    insecure: bool,
    plain_http: bool,
    retries: u32,
    retry_delay: Duration,
    chunk_size: u64,
) -> Result<Registry> {
    Ok(Registry::new(
        host,
        RegistryOptions {
            plain_http,
            insecure,
            credentials: Credentials::from_docker_config(host, None)?,
            retries,
            retry_delay,
            chunk_size,
            ..Default::default()
        },
    )?)
}

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
    /// Convert an OCI image in a registry to a Nydus image.
    Convert(Box<convert::ConvertArgs>),
    /// Build a Nydus bootstrap and blob from a local directory.
    #[command(alias = "pack")]
    Build(pack::PackArgs),
    /// Copy images between registries.
    Copy(copy::CopyArgs),
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
    /// The source OCI image (enables the config and filesystem comparison).
    #[arg(long = "source")]
    pub source: Option<String>,
    /// Skip TLS verification of the source registry.
    #[arg(long = "source-insecure")]
    pub source_insecure: bool,
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
    /// Where the Nydus blobs are, when not in the registry (`localfs`).
    #[arg(long = "target-backend-type")]
    pub target_backend_type: Option<String>,
    #[arg(long = "target-backend-config")]
    pub target_backend_config: Option<String>,
    #[arg(long = "target-backend-config-file")]
    pub target_backend_config_file: Option<PathBuf>,
    /// Where the fetched manifests, config and bootstrap are written.
    #[arg(long = "work-dir", default_value = "./output")]
    pub work_dir: PathBuf,
    /// Accepted for compatibility; the checks run in process.
    #[arg(long = "nydus-image")]
    pub nydus_image: Option<PathBuf>,
    /// Accepted for compatibility; the filesystem comparison reads blobs without mounting.
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
        Command::Convert(a) => convert::run(*a),
        Command::Build(a) => pack::run(a),
        Command::Copy(a) => copy::run(a),
        Command::Mount(_) => not_built("mount"),
        Command::Commit(_) => not_built("commit"),
        Command::Optimize(_) => not_built("optimize"),
    }
}
