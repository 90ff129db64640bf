//! `nydusd`: the drop-in entry for scripts that start upstream's daemon. It reads upstream's
//! v1 and v2 JSON configurations, mounts `--bootstrap` at `--mountpoint` with FUSE, answers
//! `GET /api/v1/daemon` on `--apisock`, and serves until SIGINT or SIGTERM.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::Parser;
use nydus_host_fuse::api::{self, Route};
use nydus_host_fuse::{config, DaemonOptions, Stopped};
use nydus_host_storage::open::resolved_blobs;
use nydus_host_storage::{open_backend, open_image, ReaderOptions};

#[derive(Debug, Parser)]
#[command(
    name = "nydusd",
    version,
    about = "Serve a Nydus image with FUSE (upstream nydusd's command line)"
)]
pub struct NydusdArgs {
    /// Upstream's subcommand: `fuse` (the default) is served; `singleton` and `fscache` are not.
    #[arg(value_parser = ["fuse", "singleton", "fscache"])]
    pub mode: Option<String>,
    /// The daemon configuration (upstream's v1 or v2 JSON).
    #[arg(long = "config", short = 'C')]
    pub config: PathBuf,
    /// Where to mount the image.
    #[arg(long = "mountpoint", short = 'M')]
    pub mountpoint: PathBuf,
    /// The image's bootstrap (or a blob with its bootstrap inlined).
    #[arg(long = "bootstrap", short = 'B')]
    pub bootstrap: PathBuf,
    /// The HTTP API socket.
    #[arg(long = "apisock", short = 'A')]
    pub apisock: Option<PathBuf>,
    /// FUSE worker threads.
    #[arg(long = "thread-num", short = 'T', default_value_t = 4)]
    pub thread_num: usize,
    /// trace | debug | info | warn | error
    #[arg(long = "log-level", short = 'l', default_value = "info")]
    pub log_level: String,
    /// Log to this file instead of standard error.
    #[arg(long = "log-file", short = 'L')]
    pub log_file: Option<PathBuf>,
    /// The daemon's id, reported by the API.
    #[arg(long = "id")]
    pub id: Option<String>,
    /// Upstream's failover supervisor socket: not supported (an error when given).
    #[arg(long = "supervisor")]
    pub supervisor: Option<PathBuf>,
    /// Upstream's file-descriptor limit: accepted; this daemon opens few files.
    #[arg(long = "rlimit-nofile")]
    pub rlimit_nofile: Option<u64>,
    /// Upstream's takeover of a running daemon: not supported.
    #[arg(long = "upgrade")]
    pub upgrade: bool,
}

pub fn run(a: NydusdArgs) -> Result<()> {
    crate::memory::limit_arenas();
    match a.mode.as_deref() {
        None | Some("fuse") => {}
        Some(m) => bail!("nydusd {m} is not supported by this nydusd (only fuse)"),
    }
    if a.supervisor.is_some() || a.upgrade {
        bail!("--supervisor and --upgrade (failover) are not supported by this nydusd");
    }
    let text = std::fs::read_to_string(&a.config)
        .with_context(|| format!("reading the configuration {}", a.config.display()))?;
    let cfg = config::parse(&text).with_context(|| format!("{}", a.config.display()))?;
    let backend = open_backend(&cfg.backend).with_context(|| format!("{}", a.config.display()))?;
    let img = open_image(&a.bootstrap)?;
    let blobs = resolved_blobs(&img)?;
    let mut reader = ReaderOptions::default();
    if let Some(b) = cfg.batch_size.filter(|&b| b > 0) {
        reader.batch_size = b.max(128 << 10);
    }
    let o = DaemonOptions {
        mountpoint: a.mountpoint.clone(),
        threads: a.thread_num.clamp(1, 64),
        cache_dir: cfg.cache_dir.clone(),
        reader,
        prefetch: cfg.prefetch,
        fsname: format!("nydus:{}", a.bootstrap.display()),
        record_prefetch: None,
    };
    let daemon = nydus_host_fuse::mount(Arc::new(img.boot), &blobs, backend, &o)?;
    let _api = match &a.apisock {
        Some(sock) => {
            let id = a.id.clone().unwrap_or_default();
            let (rs, fs) = (daemon.reader.clone(), daemon.stats.clone());
            let started = nydus_host_fuse::fs::now_unix();
            let route: Arc<Route> = Arc::new(move |path: &str| match path {
                "/api/v1/daemon" => Some(serde_json::json!({
                    "id": id,
                    "version": {"package_ver": env!("CARGO_PKG_VERSION"), "profile": "release"},
                    "state": "RUNNING",
                    "supervisor": null,
                    "backend_collection": {},
                    "started": started,
                })),
                "/api/v1/metrics/backend" => {
                    let s = rs.stats();
                    Some(serde_json::json!({
                        "read_count": s.backend_reads.load(Ordering::Relaxed),
                        "read_amount_total": s.backend_bytes.load(Ordering::Relaxed),
                        "chunks_fetched": s.chunks_fetched.load(Ordering::Relaxed),
                        "disk_hits": s.disk_hits.load(Ordering::Relaxed),
                        "memory_hits": s.memory_hits.load(Ordering::Relaxed),
                        "fs_reads": fs.reads.load(Ordering::Relaxed),
                        "fs_read_errors": fs.read_errors.load(Ordering::Relaxed),
                    }))
                }
                _ => None,
            });
            Some(api::serve(sock, route)?)
        }
        None => None,
    };
    if let Stopped::Signal(s) = daemon.wait()? {
        log::info!("signal {s}: unmounting");
    }
    daemon.unmount()
}
