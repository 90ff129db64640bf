//! `nydusify optimize`: the options checked and turned into [`OptimizeOptions`], the image
//! optimized and pushed, and a summary logged.

use std::path::PathBuf;

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use nydus_core::oci::reference::Reference;
use nydus_host_nydusify::optimize::{optimize, OptimizeOptions};

use super::parse::{parse_byte_size, parse_duration};

/// The one policy upstream defines.
const POLICY: &str = "separated-blob-with-prefetch-files";

#[derive(Debug, Args)]
pub struct OptimizeArgs {
    /// The Nydus image to optimize.
    #[arg(long = "source", env = "SOURCE")]
    pub source: String,
    /// Where the optimized image goes.
    #[arg(long = "target", env = "TARGET")]
    pub target: String,
    #[command(flatten)]
    pub transport: super::TransportArgs,
    #[command(flatten)]
    pub hooks: super::HookArgs,
    /// The prefetch list: upstream's JSON (`{"version":"v1","files":[{"path":"/p","ranges":[[offset,length]]}]}`)
    /// or text lines `/path start-end, start-end` (half-open byte ranges; a bare path is the whole file).
    #[arg(long = "prefetch-files")]
    pub prefetch_files: PathBuf,
    /// How the prefetch data is stored (only `separated-blob-with-prefetch-files`).
    #[arg(long = "policy", default_value = POLICY)]
    pub policy: String,
    /// A listed path not in the image, or a range past a file's end, is an error (else a
    /// warning).
    #[arg(long = "strict")]
    pub strict: bool,
    /// Platform of a multi-platform source (os/arch[/variant]; default linux/<host arch>).
    #[arg(long = "platform")]
    pub platform: Option<String>,
    /// Scratch space (a fresh directory inside it is used and removed).
    #[arg(long = "work-dir", default_value = "./tmp")]
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
    /// Where the source's blobs are when not in its repository (`localfs`, `s3`, `oss`).
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
    /// Accepted for compatibility: the builder is built in.
    #[arg(long = "nydus-image")]
    pub nydus_image: Option<PathBuf>,
}

pub fn options(a: &OptimizeArgs) -> Result<OptimizeOptions> {
    if a.policy != POLICY {
        bail!(
            "--policy {:?} is not known: the only policy is {POLICY:?}",
            a.policy
        );
    }
    let source_backend = super::backend_config(
        a.source_backend_type.as_deref(),
        a.source_backend_config.as_deref(),
        a.source_backend_config_file.as_deref(),
        "--source-backend",
    )?;
    Ok(OptimizeOptions {
        source: Reference::parse(&a.source).map_err(|e| anyhow!("--source: {e}"))?,
        target: Reference::parse(&a.target).map_err(|e| anyhow!("--target: {e}"))?,
        source_shown: a.source.clone(),
        target_shown: a.target.clone(),
        source_insecure: a.transport.source_insecure,
        target_insecure: a.transport.target_insecure,
        source_plain_http: a.transport.source_plain_http(),
        target_plain_http: a.transport.target_plain_http(),
        platform: super::platform_arg(a.platform.as_deref())?,
        prefetch_files: a.prefetch_files.clone(),
        strict: a.strict,
        source_backend,
        work_dir: a.work_dir.clone(),
        retries: a.push_retry_count,
        retry_delay: parse_duration(&a.push_retry_delay)
            .with_context(|| format!("invalid --push-retry-delay {:?}", a.push_retry_delay))?,
        push_chunk_size: parse_byte_size(&a.push_chunk_size)
            .with_context(|| format!("invalid --push-chunk-size {:?}", a.push_chunk_size))?,
        hooks: a.hooks.load(&a.work_dir)?,
    })
}

pub fn run(a: OptimizeArgs) -> Result<()> {
    let o = optimize(&options(&a)?)?;
    log::info!(
        "optimized {} into {} ({}): prefetch blob {} ({} chunks, {} bytes, {} uncompressed) for {} prefetch entries; pull {:.2}s, build {:.2}s, push {:.2}s",
        a.source,
        a.target,
        o.manifest_digest,
        o.prefetch_blob,
        o.chunks,
        o.prefetch_blob_size,
        o.uncompressed_bytes,
        o.prefetch_files.len(),
        o.pull_seconds,
        o.build_seconds,
        o.push_seconds
    );
    Ok(())
}
