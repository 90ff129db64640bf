//! `nydusify mount`: a Nydus image in a registry mounted with FUSE, its blobs read lazily from
//! the image's own repository (by `Range`) or from a storage backend (localfs, S3, OSS, a
//! registry configuration). The target is resolved (index → platform), its bootstrap layer
//! pulled (verified by digest) into the work directory, and the daemon started; chunks are
//! cached in `<work dir>/cache` in upstream's blob-cache layout, so a remount reuses them.

use nydus_host_storage::config::HttpOptions;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use nydus_core::oci::check::is_nydus;
use nydus_core::oci::manifest::Platform;
use nydus_core::oci::reference::Reference;
use nydus_host_fuse::{Daemon, DaemonOptions, PrefetchOptions};
use nydus_host_registry::{Credentials, RegistryOptions};
use nydus_host_storage::atomic::write_file;
use nydus_host_storage::config::BackendConfig;
use nydus_host_storage::local::Backend;
use nydus_host_storage::open::resolved_blobs;
use nydus_host_storage::{open_backend, open_image, ReaderOptions, RegistryBackend};

use crate::registry_for;

/// What to mount, from where, and how.
#[derive(Debug, Clone)]
pub struct MountOptions {
    pub target: Reference,
    /// The target as the user wrote it (for messages).
    pub shown: String,
    pub target_insecure: bool,
    pub plain_http: bool,
    pub platform: Platform,
    /// Where the blobs are; `None`: the target's own repository.
    pub backend: Option<BackendConfig>,
    pub mount_path: PathBuf,
    pub work_dir: PathBuf,
    /// Fetch the prefetch table's files, then every chunk, in the background after mounting
    /// (without it nothing is fetched before it is read).
    pub prefetch_all: bool,
    /// Prefetch bandwidth limit, bytes per second (0: none).
    pub prefetch_bandwidth: u64,
    /// FUSE worker threads.
    pub threads: usize,
    /// Largest merged backend request.
    pub batch_size: u64,
    /// Record the files and ranges read to this file on unmount (a JSON v1 prefetch list).
    pub record_prefetch: Option<PathBuf>,
}

/// The bootstrap of `o.target` pulled to `<work dir>/image.boot`.
pub fn pull_bootstrap(o: &MountOptions) -> Result<PathBuf> {
    let t = &o.target;
    let reg = registry_for(
        &t.host,
        o.target_insecure,
        o.plain_http,
        3,
        Duration::from_millis(500),
        0,
    )?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let boot = rt.block_on(async {
        let (m, _) = crate::resolve::manifest_for(
            &reg,
            &t.repository,
            t.target(),
            &o.platform,
            &o.shown,
        )
        .await?;
        if !is_nydus(&m) {
            bail!(
                "{}: not a Nydus image (the last layer is not a Nydus bootstrap layer); convert it with `nydusify convert` first",
                o.shown
            );
        }
        crate::resolve::bootstrap_of(&reg, &t.repository, &m, &o.shown).await
    })?;
    std::fs::create_dir_all(&o.work_dir)
        .with_context(|| format!("creating the work directory {}", o.work_dir.display()))?;
    let path = o.work_dir.join("image.boot");
    write_file(&path, &boot)?;
    Ok(path)
}

/// The backend the blobs are read from.
pub fn backend(o: &MountOptions) -> Result<Arc<dyn Backend>> {
    match &o.backend {
        Some(c) => open_backend(c),
        None => {
            let t = &o.target;
            Ok(Arc::new(RegistryBackend::new(
                &t.host,
                &t.repository,
                RegistryOptions {
                    plain_http: o.plain_http,
                    insecure: o.target_insecure,
                    credentials: Credentials::from_docker_config(&t.host, None)?,
                    retries: 3,
                    retry_delay: Duration::from_millis(500),
                    // As a registry backend configuration without `timeout` reads: a stalled
                    // registry is an EIO after seconds, not a reader hung for ever.
                    connect_timeout: HttpOptions::default().connect_timeout,
                    read_timeout: Some(HttpOptions::default().timeout),
                    ..Default::default()
                },
            )?))
        }
    }
}

/// Mounts the image and returns the running daemon (wait on it, then unmount it).
pub fn mount(o: &MountOptions) -> Result<Daemon> {
    let backend = backend(o)?;
    let boot = pull_bootstrap(o)?;
    let img = open_image(&boot)?;
    let blobs = resolved_blobs(&img)?;
    let d = DaemonOptions {
        mountpoint: o.mount_path.clone(),
        threads: o.threads,
        cache_dir: Some(o.work_dir.join("cache")),
        reader: ReaderOptions {
            batch_size: o.batch_size,
            ..Default::default()
        },
        // As upstream: nothing is fetched ahead without --prefetch; with it, the prefetch
        // table first, then everything.
        prefetch: o.prefetch_all.then(|| PrefetchOptions {
            all: true,
            bandwidth: o.prefetch_bandwidth,
            ..Default::default()
        }),
        fsname: format!("nydus:{}", o.shown),
        record_prefetch: o.record_prefetch.clone(),
    };
    nydus_host_fuse::mount(Arc::new(img.boot), &blobs, backend, &d)
}
