//! `nydusify copy`: the options checked and turned into [`CopyOptions`], the copy, and its
//! summary line. `file://<path>` (relative or absolute) is an OCI image-layout tar.

use std::path::PathBuf;

use anyhow::{anyhow, Context, Result};
use clap::Args;
use nydus_core::oci::reference::Reference;
use nydus_host_nydusify::copy::{copy, CopyOptions, Location};

use super::parse::{parse_byte_size, parse_duration};

#[derive(Debug, Args)]
pub struct CopyArgs {
    /// Source image reference.
    #[arg(long = "source", env = "SOURCE")]
    pub source: String,
    /// Target image reference.
    #[arg(long = "target", env = "TARGET")]
    pub target: String,
    #[command(flatten)]
    pub transport: super::TransportArgs,
    #[command(flatten)]
    pub hooks: super::HookArgs,
    /// Platform to copy out of an index (os/arch[/variant]; default linux/<host arch>).
    #[arg(long = "platform")]
    pub platform: Option<String>,
    /// Copy the whole index with every platform.
    #[arg(long = "all-platforms")]
    pub all_platforms: bool,
    /// Push blobs in chunks of this size (`0MB`: one PUT).
    #[arg(long = "push-chunk-size", default_value = "0MB")]
    pub push_chunk_size: String,
    /// Retries of a failed push or pull.
    #[arg(long = "push-retry-count", default_value_t = 3)]
    pub push_retry_count: u32,
    /// Delay before the first retry (`5s`, `500ms`), growing with each retry.
    #[arg(long = "push-retry-delay", default_value = "5s")]
    pub push_retry_delay: String,
    /// Scratch space (a fresh directory inside it is used and removed).
    #[arg(long = "work-dir", default_value = "./tmp")]
    pub work_dir: PathBuf,
    /// Accepted for compatibility.
    #[arg(long = "nydus-image")]
    pub nydus_image: Option<PathBuf>,
    /// Where the Nydus source's blobs are when its manifest lists only the bootstrap layer
    /// (`localfs`, `s3`, `oss`): they are copied to the target as blob layers.
    #[arg(long = "source-backend-type", alias = "source_backend_type")]
    pub source_backend_type: Option<String>,
    /// The source backend's configuration as JSON.
    #[arg(long = "source-backend-config", alias = "source_backend_config")]
    pub source_backend_config: Option<String>,
    /// The source backend's configuration from a JSON file.
    #[arg(
        long = "source-backend-config-file",
        alias = "source_backend_config_file"
    )]
    pub source_backend_config_file: Option<PathBuf>,
}

fn location(arg: &str, flag: &str) -> Result<Location> {
    Ok(match arg.strip_prefix("file://") {
        Some(p) => Location::Archive(PathBuf::from(p)),
        None => Location::Registry(Reference::parse(arg).map_err(|e| anyhow!("{flag}: {e}"))?),
    })
}

/// The copy `copy`'s options describe.
pub fn options(a: &CopyArgs) -> Result<CopyOptions> {
    let source_backend = super::backend_config(
        a.source_backend_type.as_deref(),
        a.source_backend_config.as_deref(),
        a.source_backend_config_file.as_deref(),
        "--source-backend",
    )?;
    let platform = super::platform_arg(a.platform.as_deref())?;
    let delay = parse_duration(&a.push_retry_delay)
        .with_context(|| format!("invalid --push-retry-delay {:?}", a.push_retry_delay))?;
    let chunk = parse_byte_size(&a.push_chunk_size)
        .with_context(|| format!("invalid --push-chunk-size {:?}", a.push_chunk_size))?;
    Ok(CopyOptions {
        source: location(&a.source, "--source")?,
        target: location(&a.target, "--target")?,
        source_shown: a.source.clone(),
        source_insecure: a.transport.source_insecure,
        target_insecure: a.transport.target_insecure,
        source_plain_http: a.transport.source_plain_http(),
        target_plain_http: a.transport.target_plain_http(),
        platform,
        all_platforms: a.all_platforms,
        retries: a.push_retry_count,
        retry_delay: delay,
        push_chunk_size: chunk,
        work_dir: a.work_dir.clone(),
        source_backend,
        hooks: a.hooks.load(&a.work_dir)?,
        target_shown: a.target.clone(),
    })
}

pub fn run(a: CopyArgs) -> Result<()> {
    let digest = copy(&options(&a)?)?;
    log::info!("copied {} to {} ({digest})", a.source, a.target);
    Ok(())
}
