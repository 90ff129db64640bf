//! `nydusify convert`: the options checked and turned into [`ConvertOptions`], the
//! conversion, its summary line and `--output-json`.

use std::path::PathBuf;

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use nydus_core::oci::manifest::Platform;
use nydus_core::oci::reference::Reference;
use nydus_host_nydusify::cache::CACHE_VERSION;
use nydus_host_nydusify::convert::{
    convert, BuildCacheOptions, CacheLocation, ChunkDict, ConvertOptions, Phases,
};
use nydus_host_storage::atomic::write_file;
use serde_json::json;

use super::parse::{parse_byte_size, parse_duration};
use crate::cli::image::args::{parse_chunk_size, parse_compressor, parse_size};

#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// Source OCI image reference.
    #[arg(long = "source", env = "SOURCE")]
    pub source: String,
    /// Target Nydus image reference.
    #[arg(long = "target", env = "TARGET")]
    pub target: Option<String>,
    /// Target = source reference + this suffix (instead of --target), e.g. `-nydus`.
    #[arg(
        long = "target-suffix",
        allow_hyphen_values = true,
        conflicts_with = "target"
    )]
    pub target_suffix: Option<String>,
    #[command(flatten)]
    pub transport: super::TransportArgs,
    #[command(flatten)]
    pub hooks: super::HookArgs,
    /// RAFS version of the target image.
    #[arg(long = "fs-version", env = "FS_VERSION", default_value = "6")]
    pub fs_version: String,
    /// Chunk compressor: none, lz4_block or zstd.
    #[arg(long = "compressor", env = "COMPRESSOR", default_value = "zstd")]
    pub compressor: String,
    /// Chunk size (power of two in [0x1000, 0x1000000]).
    #[arg(
        long = "chunk-size",
        alias = "fs-chunk-size",
        default_value = "0x100000"
    )]
    pub chunk_size: String,
    /// Batch small chunks together (only 0, off, is built).
    #[arg(long = "batch-size", default_value = "0")]
    pub batch_size: String,
    /// Align chunks (RAFS v5).
    #[arg(long = "fs-align-chunk", alias = "backend-aligned-chunk")]
    pub fs_align_chunk: bool,
    /// Read prefetch paths from stdin (otherwise the prefetch pattern is `/`).
    #[arg(long = "prefetch-patterns")]
    pub prefetch_patterns: bool,
    /// A single prefetch directory (absolute path).
    #[arg(long = "prefetch-dir")]
    pub prefetch_dir: Option<String>,
    /// Platforms to convert (comma list of os/arch[/variant]; default linux/<host arch>).
    #[arg(long = "platform")]
    pub platform: Option<String>,
    /// Convert every platform of an index.
    #[arg(long = "all-platforms")]
    pub all_platforms: bool,
    /// Push an index holding both the source and the Nydus manifests.
    #[arg(long = "merge-platform", alias = "multi-platform")]
    pub merge_platform: bool,
    /// OCI media types even for a Docker source.
    #[arg(long = "oci", alias = "docker-v2-format")]
    pub oci: bool,
    /// Reference the source layers instead of copying their data (not built yet: an error
    /// when given).
    #[arg(long = "oci-ref")]
    pub oci_ref: bool,
    /// Set the Nydus manifest's `subject` to the source manifest.
    #[arg(long = "with-referrer")]
    pub with_referrer: bool,
    /// A chunk dictionary: `bootstrap:local:<path>` or `bootstrap:registry:<reference>` (a
    /// Nydus image whose chunks layers may reuse).
    #[arg(long = "chunk-dict")]
    pub chunk_dict: Option<String>,
    /// Skip TLS verification of the chunk dictionary's registry (plain HTTP when it does not
    /// speak TLS).
    #[arg(long = "chunk-dict-insecure")]
    pub chunk_dict_insecure: bool,
    /// A cache image (reference) of converted layers, reused by source chain id.
    #[arg(long = "build-cache")]
    pub build_cache: Option<String>,
    /// The cache image is this tag of the target repository.
    #[arg(long = "build-cache-tag")]
    pub build_cache_tag: Option<String>,
    /// Version of the cache records; records of another version are not reused.
    #[arg(long = "build-cache-version", default_value = "v1")]
    pub build_cache_version: String,
    /// Records kept in the cache image (at most 200).
    #[arg(long = "build-cache-max-records", default_value_t = 200)]
    pub build_cache_max_records: usize,
    /// Skip TLS verification of the cache image's registry (plain HTTP when it does not
    /// speak TLS).
    #[arg(long = "build-cache-insecure")]
    pub build_cache_insecure: bool,
    /// Push the blobs to this backend instead of the target repository: localfs, s3 or oss
    /// (the manifest then lists only the bootstrap layer).
    #[arg(long = "backend-type", alias = "backend_type", env = "BACKEND_TYPE")]
    pub backend_type: Option<String>,
    /// The backend configuration as JSON.
    #[arg(long = "backend-config", alias = "backend_config")]
    pub backend_config: Option<String>,
    /// The backend configuration from a JSON file.
    #[arg(long = "backend-config-file", alias = "backend_config_file")]
    pub backend_config_file: Option<PathBuf>,
    /// Read the source from this OCI image-layout tar instead of a registry (the tag of
    /// --source picks the image).
    #[arg(long = "source-archive")]
    pub source_archive: Option<PathBuf>,
    /// Write the target into this OCI image-layout tar instead of a registry.
    #[arg(long = "target-archive")]
    pub target_archive: Option<PathBuf>,
    /// Scratch space (a fresh directory inside it is used and removed).
    #[arg(long = "work-dir", default_value = "./tmp")]
    pub work_dir: PathBuf,
    /// Accepted for compatibility; layers are built in process.
    #[arg(long = "nydus-image")]
    pub nydus_image: Option<PathBuf>,
    /// Copy blobs to the backend even when it has them.
    #[arg(long = "backend-force-push", alias = "backend_force_push")]
    pub backend_force_push: bool,
    /// Special sources (`modelfile`, `model-artifact`; not built yet: an error when given).
    #[arg(long = "source-backend-type")]
    pub source_backend_type: Option<String>,
    /// Configuration of --source-backend-type (not built yet).
    #[arg(long = "source-backend-config")]
    pub source_backend_config: Option<String>,
    /// Nydus to OCI (experimental upstream).
    #[arg(long = "reverse")]
    pub reverse: bool,
    /// Write conversion metrics (JSON) here.
    #[arg(long = "output-json")]
    pub output_json: Option<PathBuf>,
    /// Retries of a failed push or pull.
    #[arg(long = "push-retry-count", default_value_t = 3)]
    pub push_retry_count: u32,
    /// Delay before the first retry (`5s`, `500ms`), growing with each retry.
    #[arg(long = "push-retry-delay", default_value = "5s")]
    pub push_retry_delay: String,
    /// Push blobs in chunks of this size (`0MB`: one PUT).
    #[arg(long = "push-chunk-size", default_value = "0MB")]
    pub push_chunk_size: String,
}

fn unsupported(what: &str) -> anyhow::Error {
    anyhow!("nydusify convert {what} is not supported by this nydusify yet")
}

/// `--chunk-dict`: `bootstrap:local:<path>` or `bootstrap:registry:<reference>`.
fn chunk_dict_arg(arg: &str) -> Result<ChunkDict> {
    if let Some(p) = arg.strip_prefix("bootstrap:local:") {
        let p = PathBuf::from(p);
        if !p.is_file() {
            bail!("--chunk-dict {arg:?}: {} is not a file", p.display());
        }
        return Ok(ChunkDict::Local(p));
    }
    let Some(r) = arg.strip_prefix("bootstrap:registry:") else {
        bail!("invalid --chunk-dict {arg:?}: expected bootstrap:local:<path> or bootstrap:registry:<reference>");
    };
    let image = Reference::parse(r).map_err(|e| anyhow!("--chunk-dict: {e}"))?;
    Ok(ChunkDict::Registry {
        image,
        shown: arg.to_string(),
    })
}

/// `--target`, or the source with `--target-suffix`.
fn target_arg(a: &ConvertArgs) -> Result<String> {
    Ok(match (&a.target, &a.target_suffix) {
        (Some(t), _) => t.clone(),
        (None, Some(s)) => format!("{}{s}", a.source),
        (None, None) => bail!("give --target or --target-suffix"),
    })
}

/// The conversion `convert`'s options describe.
pub fn options(a: &ConvertArgs) -> Result<ConvertOptions> {
    let fs_version: u32 = match a.fs_version.as_str() {
        "6" => 6,
        "5" => 5,
        v => bail!("invalid --fs-version {v:?}: expected 5 or 6"),
    };
    for (given, what) in [
        (a.oci_ref, "--oci-ref"),
        (a.fs_align_chunk, "--fs-align-chunk (RAFS v5)"),
        (a.reverse, "--reverse"),
        (a.source_backend_type.is_some(), "--source-backend-type"),
        (a.source_backend_config.is_some(), "--source-backend-config"),
    ] {
        if given {
            return Err(unsupported(what));
        }
    }
    if parse_size(&a.batch_size) != Some(0) {
        return Err(unsupported("--batch-size other than 0"));
    }
    let compressor = parse_compressor(&a.compressor)?;
    let chunk_size = parse_chunk_size(&a.chunk_size)?;
    let patterns = if a.prefetch_patterns {
        crate::cli::image::read_prefetch_patterns()?
    } else if let Some(d) = &a.prefetch_dir {
        if !d.starts_with('/') {
            bail!("invalid --prefetch-dir {d:?}: expected an absolute path");
        }
        vec![d.clone()]
    } else {
        vec!["/".to_string()]
    };
    let retry_delay = parse_duration(&a.push_retry_delay).with_context(|| {
        format!(
            "invalid --push-retry-delay {:?}: expected e.g. 5s or 500ms",
            a.push_retry_delay
        )
    })?;
    let push_chunk = parse_byte_size(&a.push_chunk_size).with_context(|| {
        format!(
            "invalid --push-chunk-size {:?}: expected e.g. 0MB or 16MB",
            a.push_chunk_size
        )
    })?;
    let source = Reference::parse(&a.source).map_err(|e| anyhow!("--source: {e}"))?;
    let target_s = target_arg(a)?;
    let target = Reference::parse(&target_s).map_err(|e| anyhow!("--target: {e}"))?;
    if target.digest.is_some() {
        bail!("--target {target_s:?}: a target is pushed by tag, not by digest");
    }
    let platforms: Vec<Platform> = match &a.platform {
        Some(list) => list
            .split(',')
            .map(|p| {
                Platform::parse(p.trim()).with_context(|| {
                    format!("invalid --platform {p:?}: expected os/arch[/variant]")
                })
            })
            .collect::<Result<_>>()?,
        None => vec![nydus_host_nydusify::host_platform()],
    };
    let backend = super::backend_dest(
        a.backend_type.as_deref(),
        a.backend_config.as_deref(),
        a.backend_config_file.as_deref(),
        "--backend",
    )?;
    let chunk_dict = a.chunk_dict.as_deref().map(chunk_dict_arg).transpose()?;
    let build_cache = match (&a.build_cache, &a.build_cache_tag) {
        (None, None) => None,
        (Some(_), Some(_)) => bail!("--build-cache and --build-cache-tag conflict"),
        (r, t) => {
            if a.build_cache_version != CACHE_VERSION {
                bail!(
                    "invalid --build-cache-version {:?}: expected v1",
                    a.build_cache_version
                );
            }
            if !(1..=200).contains(&a.build_cache_max_records) {
                bail!("invalid --build-cache-max-records: expected 1 to 200");
            }
            if backend.is_some() || a.target_archive.is_some() {
                return Err(unsupported(
                    "--build-cache with --backend-type or --target-archive",
                ));
            }
            let location = match (r, t) {
                (Some(r), _) => CacheLocation::Image(
                    Reference::parse(r).map_err(|e| anyhow!("--build-cache: {e}"))?,
                ),
                (None, Some(t)) => CacheLocation::TargetTag(t.clone()),
                (None, None) => unreachable!("matched above"),
            };
            Some(BuildCacheOptions {
                location,
                max_records: a.build_cache_max_records,
                insecure: a.build_cache_insecure,
            })
        }
    };
    Ok(ConvertOptions {
        source,
        target,
        source_insecure: a.transport.source_insecure,
        target_insecure: a.transport.target_insecure,
        source_plain_http: a.transport.source_plain_http(),
        target_plain_http: a.transport.target_plain_http(),
        fs_version,
        compressor,
        chunk_size,
        prefetch_patterns: patterns,
        platforms,
        all_platforms: a.all_platforms,
        merge_platform: a.merge_platform,
        oci: a.oci,
        with_referrer: a.with_referrer,
        chunk_dict,
        chunk_dict_insecure: a.chunk_dict_insecure,
        build_cache,
        backend,
        backend_force_push: a.backend_force_push,
        source_archive: a.source_archive.clone(),
        target_archive: a.target_archive.clone(),
        work_dir: a.work_dir.clone(),
        retries: a.push_retry_count,
        retry_delay,
        push_chunk_size: push_chunk,
        hooks: a.hooks.load(&a.work_dir)?,
        progress: None,
        untagged: false,
    })
}

/// Upstream's conversion metrics (`SourceImageSize`, ..., durations in nanoseconds as Go's
/// `time.Duration`), from ours.
fn upstream_metrics(m: &serde_json::Value, phases: &Phases) -> serde_json::Value {
    let manifests = m["manifests"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let layers = || {
        manifests
            .iter()
            .flat_map(|x| x["layers"].as_array().into_iter().flatten())
    };
    let sum = |it: &mut dyn Iterator<Item = &serde_json::Value>| -> u64 {
        it.filter_map(serde_json::Value::as_u64).sum()
    };
    let source = sum(&mut layers().map(|l| &l["source_size"]));
    let target = sum(&mut layers().map(|l| &l["blob_size"]))
        + sum(&mut manifests.iter().map(|x| &x["bootstrap_layer_size"]));
    let ns = |d: std::time::Duration| d.as_nanos() as u64;
    json!({
        "SourceImageSize": source,
        "TargetImageSize": target,
        "SourcePullElapsed": ns(phases.pull),
        "ConversionElapsed": ns(phases.convert),
        "TargetPushElapsed": ns(phases.push),
    })
}

pub fn run(a: ConvertArgs) -> Result<()> {
    if let Some(j) = &a.output_json {
        // Metrics kept in the work directory: it is made for them, and then stays.
        if let Some(parent) = j
            .parent()
            .filter(|p| !p.as_os_str().is_empty() && !p.exists())
        {
            if parent.starts_with(&a.work_dir) {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("--output-json: creating {}", parent.display()))?;
            }
        }
        crate::cli::check_output_path(j, "--output-json")?;
    }
    let o = options(&a)?;
    let done = convert(&o)?;
    let target = target_arg(&a)?;
    let total = done.elapsed;
    log::info!(
        "converted {} to {} ({}) in {:.2}s",
        a.source,
        target,
        done.target_digest,
        total.as_secs_f64()
    );
    if let Some(j) = &a.output_json {
        let mut m = done.metrics;
        let up = upstream_metrics(&m, &done.phases);
        if let (Some(obj), serde_json::Value::Object(up)) = (m.as_object_mut(), up) {
            obj.extend(up);
        }
        m["source"] = json!(a.source);
        m["target"] = json!(target);
        m["total_seconds"] = json!(total.as_secs_f64());
        write_file(j, serde_json::to_string_pretty(&m)?.as_bytes())?;
    }
    Ok(())
}
