//! `nydusify mount` (alias `view`): the options turned into [`MountOptions`], the image
//! mounted, served until SIGINT or SIGTERM, then unmounted.

use std::path::PathBuf;

use anyhow::{anyhow, bail, Result};
use clap::Args;
use nydus_core::oci::reference::Reference;
use nydus_host_fuse::Stopped;
use nydus_host_nydusify::mount::{mount, MountOptions};
use nydus_host_storage::config::{self, BackendFlags};

#[derive(Debug, Args)]
pub struct MountArgs {
    /// The Nydus image to mount (`host/repo:tag` or `@digest`).
    #[arg(long = "target")]
    pub target: String,
    /// Skip TLS verification of the target registry, and speak plain HTTP to it when it does
    /// not speak TLS.
    #[arg(long = "target-insecure")]
    pub target_insecure: bool,
    /// Talk to the registry over plain HTTP.
    #[arg(long = "plain-http", alias = "target-plain-http")]
    pub plain_http: bool,
    /// Where the blobs are: localfs, registry, s3 or oss (default: the image's repository).
    #[arg(long = "backend-type", alias = "backend_type")]
    pub backend_type: Option<String>,
    /// The backend configuration as JSON.
    #[arg(long = "backend-config", alias = "backend_config")]
    pub backend_config: Option<String>,
    /// The backend configuration from a JSON file.
    #[arg(long = "backend-config-file", alias = "backend_config_file")]
    pub backend_config_file: Option<PathBuf>,
    /// Fetch every chunk in the background after mounting (the prefetch table's files first).
    #[arg(long = "prefetch")]
    pub prefetch: bool,
    /// Prefetch bandwidth limit in bytes per second (0: none).
    #[arg(long = "prefetch-bandwidth", default_value_t = 0)]
    pub prefetch_bandwidth: u64,
    /// The mount point (created if missing).
    #[arg(long = "mount-path", default_value = "./image-fs")]
    pub mount_path: PathBuf,
    /// The platform of a multi-platform image (`os/arch[/variant]`).
    #[arg(long = "platform")]
    pub platform: Option<String>,
    /// Where the bootstrap and the blob cache (`cache/`, kept for the next mount) go.
    #[arg(long = "work-dir", default_value = "./tmp")]
    pub work_dir: PathBuf,
    /// FUSE worker threads.
    #[arg(long = "threads", default_value_t = 4)]
    pub threads: usize,
    /// Largest merged backend request in bytes (upstream's default: 1 MiB).
    #[arg(long = "batch-size", default_value_t = 1 << 20)]
    pub batch_size: u64,
    /// Write the files and byte ranges read while mounted to this file on unmount (a JSON v1
    /// prefetch list for `nydusify optimize --prefetch-files`).
    #[arg(long = "record-prefetch", value_name = "FILE")]
    pub record_prefetch: Option<PathBuf>,
    /// Upstream's path of nydusd: not needed, the daemon is built in (accepted and ignored).
    #[arg(long = "nydusd")]
    pub nydusd: Option<PathBuf>,
}

pub fn options(a: &MountArgs) -> Result<MountOptions> {
    let target = Reference::parse(&a.target).map_err(|e| anyhow!("--target: {e}"))?;
    let backend = match (&a.backend_type, &a.backend_config, &a.backend_config_file) {
        (None, None, None) => None,
        (None, _, _) => {
            bail!("--backend-config needs --backend-type (localfs, registry, s3 or oss)")
        }
        (Some(kind), c, f) => Some(config::parse(
            BackendFlags {
                prefix: "--backend",
                tool: "nydusify",
                config_file: true,
            },
            kind,
            c.as_deref(),
            f.as_deref(),
        )?),
    };
    if a.batch_size < 128 << 10 {
        bail!("--batch-size {}: at least 131072 (128 KiB)", a.batch_size);
    }
    Ok(MountOptions {
        target,
        shown: a.target.clone(),
        target_insecure: a.target_insecure,
        plain_http: a.plain_http,
        platform: super::platform_arg(a.platform.as_deref())?,
        backend,
        mount_path: a.mount_path.clone(),
        work_dir: a.work_dir.clone(),
        prefetch_all: a.prefetch,
        prefetch_bandwidth: a.prefetch_bandwidth,
        threads: a.threads.clamp(1, 64),
        batch_size: a.batch_size,
        record_prefetch: a.record_prefetch.clone(),
    })
}

pub fn run(a: MountArgs) -> Result<()> {
    crate::memory::limit_arenas();
    if a.nydusd.is_some() {
        log::info!("--nydusd is ignored: this nydusify serves the mount itself");
    }
    let o = options(&a)?;
    let daemon = mount(&o)?;
    eprintln!(
        "nydusify: {} mounted at {}; stop with Ctrl-C or SIGTERM",
        a.target,
        o.mount_path.display()
    );
    let why = daemon.wait()?;
    if let Stopped::Signal(s) = why {
        log::info!("signal {s}: unmounting");
    }
    daemon.unmount()?;
    let _ = std::fs::remove_file(o.work_dir.join("image.boot"));
    Ok(())
}
