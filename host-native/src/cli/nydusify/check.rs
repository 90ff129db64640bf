//! `nydusify check`: the options checked and turned into [`CheckOptions`], the findings
//! printed, and a non-zero exit on any error.

use std::path::PathBuf;

use crate::cli::out;
use anyhow::{anyhow, bail, Result};
use clap::Args;
use nydus_core::oci::reference::Reference;
use nydus_host_nydusify::check::{check, CheckBackend, CheckOptions, ImageRef};

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The Nydus image to check.
    #[arg(long = "target")]
    pub target: String,
    /// The source OCI image (enables the config and filesystem comparison).
    #[arg(long = "source")]
    pub source: Option<String>,
    #[command(flatten)]
    pub transport: super::TransportArgs,
    /// `os/arch` of the manifest to check in an index.
    #[arg(long = "platform")]
    pub platform: Option<String>,
    /// Require an index holding both OCI and Nydus manifests.
    #[arg(long = "multi-platform")]
    pub multi_platform: bool,
    /// Where the Nydus blobs are, when not in the registry (`localfs`).
    #[arg(
        long = "target-backend-type",
        aliases = ["backend-type", "target_backend_type", "backend_type"]
    )]
    pub target_backend_type: Option<String>,
    /// The backend configuration as JSON.
    #[arg(
        long = "target-backend-config",
        aliases = ["backend-config", "target_backend_config", "backend_config"]
    )]
    pub target_backend_config: Option<String>,
    /// The backend configuration from a JSON file.
    #[arg(
        long = "target-backend-config-file",
        aliases = ["backend-config-file", "target_backend_config_file", "backend_config_file"]
    )]
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

/// The check `check`'s options describe.
pub fn options(a: &CheckArgs) -> Result<CheckOptions> {
    let target = Reference::parse(&a.target).map_err(|e| anyhow!(e))?;
    let platform = super::platform_arg(a.platform.as_deref())?;
    let source = match &a.source {
        Some(s) => Some(ImageRef {
            reference: Reference::parse(s).map_err(|e| anyhow!("--source: {e}"))?,
            shown: s.clone(),
        }),
        None => None,
    };
    let backend = match super::backend_config(
        a.target_backend_type.as_deref(),
        a.target_backend_config.as_deref(),
        a.target_backend_config_file.as_deref(),
        "--target-backend",
    )? {
        None => None,
        Some(c) => Some(match c.dir() {
            Some(d) => CheckBackend::Dir(d.to_path_buf()),
            None => CheckBackend::Remote(nydus_host_storage::open_backend(&c)?),
        }),
    };
    Ok(CheckOptions {
        target: ImageRef {
            reference: target,
            shown: a.target.clone(),
        },
        source,
        source_insecure: a.transport.source_insecure,
        target_insecure: a.transport.target_insecure,
        source_plain_http: a.transport.source_plain_http(),
        target_plain_http: a.transport.target_plain_http(),
        platform,
        multi_platform: a.multi_platform,
        backend,
        work_dir: a.work_dir.clone(),
    })
}

pub fn run(a: CheckArgs) -> Result<()> {
    let report = check(&options(&a)?)?;
    for f in &report.findings {
        eprintln!("{}: {f}", a.target);
    }
    if !report.is_ok() {
        bail!("{}: {} problem(s) found", a.target, report.errors());
    }
    out!(
        "{}: the Nydus image passes the manifest, bootstrap{} checks",
        a.target,
        if a.source.is_some() {
            ", config and filesystem"
        } else {
            ""
        }
    );
    Ok(())
}
