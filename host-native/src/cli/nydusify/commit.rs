//! `nydusify commit`: the options checked and turned into [`CommitOptions`], the container's
//! changes committed and pushed, and a summary logged (and written with `--output-json`).

use std::path::PathBuf;

use anyhow::{anyhow, Context, Result};
use clap::Args;
use nydus_core::oci::reference::Reference;
use nydus_host_nydusify::commit::{commit, parse_with_paths, CommitOptions};
use nydus_host_nydusify::convert::{BuildCacheOptions, CacheLocation};
use nydus_host_storage::atomic::write_file;

use super::parse::{parse_byte_size, parse_duration};

#[derive(Debug, Args)]
pub struct CommitArgs {
    /// The container (its full id or a unique prefix).
    #[arg(long = "container", env = "CONTAINER")]
    pub container: String,
    /// Where the committed Nydus image goes.
    #[arg(long = "target", env = "TARGET")]
    pub target: String,
    /// The container's containerd namespace.
    #[arg(
        long = "namespace",
        short = 'n',
        env = "NAMESPACE",
        default_value = "default"
    )]
    pub namespace: String,
    /// containerd's socket (a `unix://` prefix is accepted).
    #[arg(
        long = "containerd-address",
        env = "CONTAINERD_ADDR",
        default_value = "/run/containerd/containerd.sock"
    )]
    pub containerd_address: String,
    /// Refuse to commit an image that already holds this many committed layers.
    #[arg(long = "maximum-times", env = "MAXIMUM_TIMES", default_value_t = 400)]
    pub maximum_times: usize,
    /// A bind mount of the container to commit as well (its destination path), or with a
    /// leading `!` a path left out of the commit; repeat for several.
    #[arg(
        long = "with-path",
        alias = "with-mount-path",
        env = "WITH_PATH",
        value_delimiter = ','
    )]
    pub with_path: Vec<String>,
    #[command(flatten)]
    pub transport: super::TransportArgs,
    /// Platform picked out of a multi-platform base image (os/arch[/variant]; default
    /// linux/<host arch>).
    #[arg(long = "platform")]
    pub platform: Option<String>,
    /// A tag of the target repository caching the layers of an OCI base image converted on
    /// the way (reused by the next commit of a container of that image).
    #[arg(long = "build-cache-tag")]
    pub build_cache_tag: Option<String>,
    /// Scratch space (a fresh directory inside it is used and removed).
    #[arg(long = "work-dir", env = "WORK_DIR", default_value = "./tmp")]
    pub work_dir: PathBuf,
    /// Push blobs in chunks of this size (`0MB`: one PUT).
    #[arg(long = "push-chunk-size", default_value = "0MB")]
    pub push_chunk_size: String,
    /// Retries of a failed push or pull.
    #[arg(long = "push-retry-count", default_value_t = 3)]
    pub push_retry_count: u32,
    /// Delay before the first retry (`5s`, `500ms`), growing with each retry.
    #[arg(long = "push-retry-delay", default_value = "1s")]
    pub push_retry_delay: String,
    /// Write what was committed (JSON) to this file.
    #[arg(long = "output-json")]
    pub output_json: Option<PathBuf>,
    /// Accepted for compatibility: the builder is built in.
    #[arg(long = "nydus-image", env = "NYDUS_IMAGE")]
    pub nydus_image: Option<PathBuf>,
}

pub fn options(a: &CommitArgs) -> Result<CommitOptions> {
    let target = Reference::parse(&a.target).map_err(|e| anyhow!("--target: {e}"))?;
    let (with_paths, without_paths) = parse_with_paths(&a.with_path)?;
    let address = a
        .containerd_address
        .strip_prefix("unix://")
        .unwrap_or(&a.containerd_address);
    Ok(CommitOptions {
        container: a.container.clone(),
        namespace: a.namespace.clone(),
        containerd_address: PathBuf::from(address),
        target,
        target_shown: a.target.clone(),
        maximum_times: a.maximum_times,
        with_paths,
        without_paths,
        source_insecure: a.transport.source_insecure,
        target_insecure: a.transport.target_insecure,
        source_plain_http: a.transport.source_plain_http(),
        target_plain_http: a.transport.target_plain_http(),
        platform: super::platform_arg(a.platform.as_deref())?,
        build_cache: a.build_cache_tag.as_ref().map(|t| BuildCacheOptions {
            location: CacheLocation::TargetTag(t.clone()),
            max_records: 200,
            insecure: a.transport.target_insecure,
        }),
        work_dir: a.work_dir.clone(),
        retries: a.push_retry_count,
        retry_delay: parse_duration(&a.push_retry_delay)
            .with_context(|| format!("invalid --push-retry-delay {:?}", a.push_retry_delay))?,
        push_chunk_size: parse_byte_size(&a.push_chunk_size)
            .with_context(|| format!("invalid --push-chunk-size {:?}", a.push_chunk_size))?,
    })
}

pub fn run(a: CommitArgs) -> Result<()> {
    let o = commit(&options(&a)?)?;
    log::info!(
        "committed container {} (image {}{}) into {} ({}): {}, {} committed layers; paused {:.2}s; pull {:.2}s, build {:.2}s, push {:.2}s",
        o.container,
        o.base_image,
        if o.base_converted { ", converted to Nydus" } else { "" },
        a.target,
        o.manifest_digest,
        match &o.blob {
            Some(b) => format!("blob {b} ({} bytes)", o.blob_size),
            None => "no file data changed (no new blob)".to_string(),
        },
        o.committed_layers,
        o.paused_seconds,
        o.pull_seconds,
        o.build_seconds,
        o.push_seconds
    );
    if let Some(p) = &a.output_json {
        let v = serde_json::json!({
            "container": o.container,
            "base_image": o.base_image,
            "base_converted": o.base_converted,
            "target": a.target,
            "manifest_digest": o.manifest_digest,
            "blob": o.blob,
            "blob_size": o.blob_size,
            "mount_blobs": o.mount_blobs,
            "committed_layers": o.committed_layers,
            "paused_seconds": o.paused_seconds,
            "pull_seconds": o.pull_seconds,
            "build_seconds": o.build_seconds,
            "push_seconds": o.push_seconds,
        });
        write_file(p, &serde_json::to_vec_pretty(&v)?)?;
    }
    Ok(())
}
