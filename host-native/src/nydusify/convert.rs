//! `nydusify convert --source REF --target REF` (`oci-nydus-image.md` §7), in one process:
//! each source layer is streamed from the registry through decompression into the build
//! pipeline (never unpacked, never held whole), giving a blob with its bootstrap inlined; the
//! per-layer bootstraps are merged, packed into the bootstrap layer, and the blobs, config and
//! manifest (or index) are pushed. Blob pushes run while the next layer converts.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use futures_util::{StreamExt, TryStreamExt};
use nydus_core::model::Compressor;
use nydus_core::oci::bootstrap_layer;
use nydus_core::oci::manifest::{parse_document, Descriptor, Document, Index, Manifest, Platform};
use nydus_core::oci::nydus::{nydus_image, BlobLayer};
use nydus_core::oci::reference::Reference;
use nydus_core::oci::{annotation, media};
use serde_json::{json, Value};
use tokio::task::JoinSet;

use nydus_host_image::create::BlobSink;
use nydus_host_image::tarsrc;

use super::store::{ArchiveIn, LayoutOut, Store};
use super::{host_platform, is_nydus_entry, registry_for};
use crate::cli::image::args::{parse_chunk_size, parse_compressor, parse_size};
use nydus_host_image::create::{self, Plan};
use nydus_host_image::merge::MergePlan;
use nydus_host_storage::atomic::write_file;

#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// Source OCI image reference.
    #[arg(long = "source", env = "SOURCE")]
    pub source: String,
    /// Target Nydus image reference.
    #[arg(long = "target", env = "TARGET")]
    pub target: Option<String>,
    /// Target = source reference + this suffix (when --target is not given).
    #[arg(long = "target-suffix")]
    pub target_suffix: Option<String>,
    /// Skip TLS verification of the source registry.
    #[arg(long = "source-insecure")]
    pub source_insecure: bool,
    /// Skip TLS verification of the target registry.
    #[arg(long = "target-insecure")]
    pub target_insecure: bool,
    /// Speak plain HTTP to the registries.
    #[arg(long = "plain-http")]
    pub plain_http: bool,
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
    #[arg(long = "oci-ref")]
    pub oci_ref: bool,
    /// Set the Nydus manifest's `subject` to the source manifest.
    #[arg(long = "with-referrer")]
    pub with_referrer: bool,
    /// A chunk dictionary: `bootstrap:local:<path>` or `bootstrap:registry:<reference>` (a
    /// Nydus image whose chunks layers may reuse).
    #[arg(long = "chunk-dict")]
    pub chunk_dict: Option<String>,
    #[arg(long = "chunk-dict-insecure")]
    pub chunk_dict_insecure: bool,
    /// A cache image (reference) of converted layers, reused by source chain id.
    #[arg(long = "build-cache")]
    pub build_cache: Option<String>,
    /// The cache image is this tag of the target repository.
    #[arg(long = "build-cache-tag")]
    pub build_cache_tag: Option<String>,
    #[arg(long = "build-cache-version", default_value = "v1")]
    pub build_cache_version: String,
    /// Records kept in the cache image (at most 200).
    #[arg(long = "build-cache-max-records", default_value_t = 200)]
    pub build_cache_max_records: usize,
    #[arg(long = "build-cache-insecure")]
    pub build_cache_insecure: bool,
    #[arg(long = "backend-type", env = "BACKEND_TYPE")]
    pub backend_type: Option<String>,
    #[arg(long = "backend-config")]
    pub backend_config: Option<String>,
    #[arg(long = "backend-config-file")]
    pub backend_config_file: Option<PathBuf>,
    #[arg(long = "source-archive")]
    pub source_archive: Option<PathBuf>,
    #[arg(long = "target-archive")]
    pub target_archive: Option<PathBuf>,
    /// Scratch space (a fresh directory inside it is used and removed).
    #[arg(long = "work-dir", default_value = "./tmp")]
    pub work_dir: PathBuf,
    /// Accepted for compatibility; layers are built in process.
    #[arg(long = "nydus-image")]
    pub nydus_image: Option<PathBuf>,
    /// Copy blobs to the backend even when it has them.
    #[arg(long = "backend-force-push")]
    pub backend_force_push: bool,
    /// Special sources (`modelfile`, `model-artifact`).
    #[arg(long = "source-backend-type")]
    pub source_backend_type: Option<String>,
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

/// Parses `5s`, `500ms`, `1m`, `2` (seconds).
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (num, unit) = s.split_at(
        s.find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(s.len()),
    );
    let v: f64 = num.parse().ok()?;
    let secs = match unit {
        "ms" => v / 1000.0,
        "s" | "" => v,
        "m" => v * 60.0,
        "h" => v * 3600.0,
        _ => return None,
    };
    Some(Duration::from_secs_f64(secs))
}

/// Parses `0MB`, `16MB`, `512KB`, `1048576` into bytes.
pub fn parse_byte_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let upper = s.to_ascii_uppercase();
    let (num, mult) = [
        ("GIB", 1u64 << 30),
        ("MIB", 1 << 20),
        ("KIB", 1 << 10),
        ("GB", 1_000_000_000),
        ("MB", 1_000_000),
        ("KB", 1_000),
        ("B", 1),
    ]
    .iter()
    .find_map(|(suf, m)| upper.strip_suffix(suf).map(|n| (n.trim().to_string(), *m)))
    .unwrap_or((upper.clone(), 1));
    num.parse::<u64>().ok()?.checked_mul(mult)
}

/// Validated settings of one conversion.
#[derive(Debug, Clone)]
struct Settings {
    compressor: Compressor,
    chunk_size: u32,
    patterns: Vec<String>,
    oci: bool,
    with_referrer: bool,
    merge_platform: bool,
    /// RAFS version of the image (5 or 6).
    fs_version: u32,
    /// Blobs go to this localfs backend directory instead of the target.
    backend: Option<PathBuf>,
    /// Chunk size of blob uploads streamed while building.
    stream_piece: usize,
    /// Copy blobs to the backend even when it has them.
    backend_force_push: bool,
    /// The chunk dictionary's bootstrap (local file), and where its blobs are (a registry
    /// dictionary; a local one's blobs must already be in the target).
    chunk_dict: Option<(PathBuf, Option<Store>)>,
}

/// Resolves `--chunk-dict`: the dictionary bootstrap as a local file, and for a registry
/// dictionary the store holding its blobs.
fn chunk_dict(
    arg: &str,
    scratch: &Path,
    rt: &tokio::runtime::Runtime,
    insecure: bool,
    plain_http: bool,
) -> Result<(PathBuf, Option<Store>)> {
    if let Some(p) = arg.strip_prefix("bootstrap:local:") {
        let p = PathBuf::from(p);
        if !p.is_file() {
            bail!("--chunk-dict {arg:?}: {} is not a file", p.display());
        }
        return Ok((p, None));
    }
    let Some(r) = arg.strip_prefix("bootstrap:registry:") else {
        bail!("invalid --chunk-dict {arg:?}: expected bootstrap:local:<path> or bootstrap:registry:<reference>");
    };
    let r = Reference::parse(r).map_err(|e| anyhow!("--chunk-dict: {e}"))?;
    let store = Store::registry(
        registry_for(
            &r.host,
            insecure,
            plain_http,
            3,
            Duration::from_millis(500),
            0,
        )?,
        &r.repository,
    );
    let boot = rt.block_on(async {
        let (mt, bytes, _) = store.get_manifest(r.target()).await?;
        let m = match parse_document(Some(&mt), &bytes).map_err(|e| anyhow!("--chunk-dict: {e}"))? {
            Document::Manifest(m) => *m,
            Document::Index(_) => bail!("--chunk-dict {arg:?}: an index, not an image manifest"),
        };
        if !nydus_core::oci::check::is_nydus(&m) {
            bail!("--chunk-dict {arg:?}: not a Nydus image");
        }
        let layer = m.layers.last().expect("is_nydus");
        let gz = store.blob_bytes(&layer.digest).await?;
        bootstrap_layer::extract_bootstrap(&gz, 1 << 30)
            .map_err(|e| anyhow!("--chunk-dict {arg:?}: {e}"))
    })?;
    let path = scratch.join("chunk-dict.boot");
    write_file(&path, &boot)?;
    Ok((path, Some(store)))
}

fn unsupported(what: &str) -> anyhow::Error {
    anyhow!("nydusify convert {what} is not supported by this nydusify yet")
}

pub fn run(a: ConvertArgs) -> Result<()> {
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
    let target_s = match (&a.target, &a.target_suffix) {
        (Some(t), _) => t.clone(),
        (None, Some(s)) => format!("{}{s}", a.source),
        (None, None) => bail!("give --target or --target-suffix"),
    };
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
        None => vec![host_platform()],
    };
    let mut settings = Settings {
        compressor,
        chunk_size,
        patterns,
        oci: a.oci,
        with_referrer: a.with_referrer,
        merge_platform: a.merge_platform,
        fs_version,
        chunk_dict: None,
        backend_force_push: a.backend_force_push,
        stream_piece: if push_chunk > 0 {
            push_chunk as usize
        } else {
            8 << 20
        },
        backend: super::backend_dir(
            a.backend_type.as_deref(),
            a.backend_config.as_deref(),
            a.backend_config_file.as_deref(),
            "--backend",
        )?,
    };
    std::fs::create_dir_all(&a.work_dir)
        .with_context(|| format!("creating the work directory {}", a.work_dir.display()))?;
    let scratch = tempfile::Builder::new()
        .prefix("nydusify-convert-")
        .tempdir_in(&a.work_dir)
        .with_context(|| format!("creating a directory in {}", a.work_dir.display()))?;
    let src = match &a.source_archive {
        Some(p) => Store::Archive(Arc::new(ArchiveIn::open(p)?)),
        None => Store::registry(
            registry_for(
                &source.host,
                a.source_insecure,
                a.plain_http,
                a.push_retry_count,
                retry_delay,
                0,
            )?,
            &source.repository,
        ),
    };
    let dst = match &a.target_archive {
        Some(p) => Store::Layout(Arc::new(LayoutOut::create(scratch.path(), p)?)),
        None => Store::registry(
            registry_for(
                &target.host,
                a.target_insecure,
                a.plain_http,
                a.push_retry_count,
                retry_delay,
                push_chunk,
            )?,
            &target.repository,
        ),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    if let Some(d) = &a.chunk_dict {
        settings.chunk_dict = Some(chunk_dict(
            d,
            scratch.path(),
            &rt,
            a.chunk_dict_insecure,
            a.plain_http,
        )?);
    }
    let cache = match (&a.build_cache, &a.build_cache_tag) {
        (None, None) => None,
        (Some(_), Some(_)) => bail!("--build-cache and --build-cache-tag conflict"),
        (r, t) => {
            if a.build_cache_version != super::cache::CACHE_VERSION {
                bail!(
                    "invalid --build-cache-version {:?}: expected v1",
                    a.build_cache_version
                );
            }
            if !(1..=200).contains(&a.build_cache_max_records) {
                bail!("invalid --build-cache-max-records: expected 1 to 200");
            }
            if settings.backend.is_some() || a.target_archive.is_some() {
                return Err(unsupported(
                    "--build-cache with --backend-type or --target-archive",
                ));
            }
            let (store, tag) = match (r, t) {
                (Some(r), _) => {
                    let c = Reference::parse(r).map_err(|e| anyhow!("--build-cache: {e}"))?;
                    let reg = registry_for(
                        &c.host,
                        a.build_cache_insecure,
                        a.plain_http,
                        a.push_retry_count,
                        retry_delay,
                        push_chunk,
                    )?;
                    (Store::registry(reg, &c.repository), c.target().to_string())
                }
                (None, Some(t)) => (dst.clone(), t.clone()),
                (None, None) => unreachable!("matched above"),
            };
            Some((store, tag))
        }
    };
    let settings_fs_version = settings.fs_version.to_string();
    let cache = match cache {
        Some((store, tag)) => Some(tokio::sync::Mutex::new(rt.block_on(
            super::cache::BuildCache::import(
                store,
                &tag,
                a.build_cache_max_records,
                true,
                &settings_fs_version,
            ),
        )?)),
        None => None,
    };
    let job = Job {
        cache,
        src,
        dst,
        source_ref: source.target().to_string(),
        target_tag: target.target().to_string(),
        settings,
        scratch: scratch.path().to_path_buf(),
    };
    let t0 = Instant::now();
    let metrics = rt.block_on(job.convert(&platforms, a.all_platforms))?;
    job.dst.finish()?;
    if let Some(c) = &job.cache {
        let digest = rt.block_on(async { c.lock().await.export().await })?;
        crate::log::info(&format!("build cache pushed ({digest})"));
    }
    let total = t0.elapsed();
    crate::log::info(&format!(
        "converted {} to {} ({}) in {:.2}s",
        a.source,
        target_s,
        metrics["target_digest"].as_str().unwrap_or_default(),
        total.as_secs_f64()
    ));
    if let Some(j) = &a.output_json {
        let mut m = metrics;
        m["source"] = json!(a.source);
        m["target"] = json!(target_s);
        m["total_seconds"] = json!(total.as_secs_f64());
        write_file(j, serde_json::to_string_pretty(&m)?.as_bytes())?;
    }
    Ok(())
}

struct Job {
    cache: Option<tokio::sync::Mutex<super::cache::BuildCache>>,
    src: Store,
    dst: Store,
    /// Tag or digest of the source image.
    source_ref: String,
    /// Tag of the target image.
    target_tag: String,
    settings: Settings,
    scratch: PathBuf,
}

/// Layers converted at once.
const PARALLEL_LAYERS: usize = 2;

/// One layer of a manifest, converted or from the cache.
struct LayerResult {
    built: create::Built,
    /// The blob is already in the target (uploaded while built).
    already_pushed: bool,
    from_cache: bool,
    record: Option<super::cache::Record>,
    seconds: f64,
}

/// One converted platform manifest.
struct Converted {
    manifest: Vec<u8>,
    media_type: String,
    digest: String,
    platform: Option<Platform>,
    metrics: Value,
}

/// Whether a source layer's media type is a (possibly compressed) tar this converter reads.
fn is_tar_layer(mt: &str) -> bool {
    [
        media::OCI_LAYER,
        media::OCI_LAYER_GZIP,
        media::OCI_LAYER_ZSTD,
        media::DOCKER_LAYER_GZIP,
        "application/vnd.docker.image.rootfs.diff.tar",
        "application/vnd.oci.image.layer.nondistributable.v1.tar",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    ]
    .contains(&mt)
}

impl Job {
    async fn convert(&self, platforms: &[Platform], all: bool) -> Result<Value> {
        let (mt, bytes, digest) = self.src.get_manifest(&self.source_ref).await?;
        let doc = parse_document(Some(&mt), &bytes)
            .map_err(|e| anyhow!("source {}: {e}", self.src.describe()))?;
        let (pushed, results) = match doc {
            Document::Manifest(m) => {
                let c = self
                    .convert_manifest(*m, &mt, &bytes, &digest, None)
                    .await?;
                let metrics = vec![c.metrics.clone()];
                if self.settings.merge_platform {
                    let source_desc = Descriptor {
                        media_type: mt.clone(),
                        digest: digest.clone(),
                        size: bytes.len() as u64,
                        platform: c.platform.clone(),
                        ..Default::default()
                    };
                    (self.push_index(&mt, vec![(source_desc, c)]).await?, metrics)
                } else {
                    let d = self
                        .dst
                        .put_manifest(&self.target_tag, &c.media_type, &c.manifest)
                        .await?;
                    (d, metrics)
                }
            }
            Document::Index(index) => {
                let picked: Vec<&Descriptor> = index
                    .manifests
                    .iter()
                    .filter(|d| !is_nydus_entry(d))
                    .filter(|d| match &d.platform {
                        Some(p) if p.os == "unknown" => false,
                        Some(p) => all || platforms.iter().any(|w| p.matches(w)),
                        None => all,
                    })
                    .collect();
                if picked.is_empty() {
                    let want: Vec<String> = platforms
                        .iter()
                        .map(|p| format!("{}/{}", p.os, p.architecture))
                        .collect();
                    bail!(
                        "source {}: the index has no manifest for {}",
                        self.src.describe(),
                        if all {
                            "any platform".to_string()
                        } else {
                            want.join(", ")
                        }
                    );
                }
                let mut converted = Vec::new();
                for d in picked {
                    let (mmt, mbytes, mdigest) = self.src.get_manifest(&d.digest).await?;
                    let m = match parse_document(Some(&mmt), &mbytes)
                        .map_err(|e| anyhow!("source manifest {}: {e}", d.digest))?
                    {
                        Document::Manifest(m) => *m,
                        Document::Index(_) => {
                            bail!("source {}: an index inside an index", d.digest)
                        }
                    };
                    let c = self
                        .convert_manifest(m, &mmt, &mbytes, &mdigest, d.platform.clone())
                        .await?;
                    converted.push((d.clone(), c));
                }
                let metrics = converted.iter().map(|(_, c)| c.metrics.clone()).collect();
                if converted.len() == 1 && !self.settings.merge_platform {
                    let c = &converted[0].1;
                    let d = self
                        .dst
                        .put_manifest(&self.target_tag, &c.media_type, &c.manifest)
                        .await?;
                    (d, metrics)
                } else {
                    (
                        self.push_index(&index_type(&index, &mt, self.settings.oci), converted)
                            .await?,
                        metrics,
                    )
                }
            }
        };
        Ok(json!({"target_digest": pushed, "manifests": results}))
    }

    /// Pushes the converted manifests by digest and an index naming them (and, with
    /// `--merge-platform`, the source manifests) under the target tag.
    async fn push_index(
        &self,
        mt: &str,
        converted: Vec<(Descriptor, Converted)>,
    ) -> Result<String> {
        let index_mt = if mt == media::DOCKER_LIST || mt == media::DOCKER_MANIFEST {
            if self.settings.oci {
                media::OCI_INDEX
            } else {
                media::DOCKER_LIST
            }
        } else {
            media::OCI_INDEX
        };
        let mut manifests = Vec::new();
        for (src_desc, c) in converted {
            if self.settings.merge_platform {
                // The source manifest must be in the target repository too.
                self.copy_manifest(&src_desc).await?;
                manifests.push(src_desc.clone());
            }
            self.dst
                .put_manifest(&c.digest, &c.media_type, &c.manifest)
                .await?;
            let mut platform = c.platform.clone().or(src_desc.platform.clone());
            if let Some(p) = &mut platform {
                if !p
                    .os_features
                    .iter()
                    .any(|f| f == annotation::NYDUS_OS_FEATURE)
                {
                    p.os_features.push(annotation::NYDUS_OS_FEATURE.to_string());
                }
            }
            manifests.push(Descriptor {
                media_type: c.media_type.clone(),
                digest: c.digest.clone(),
                size: c.manifest.len() as u64,
                platform,
                artifact_type: (index_mt == media::OCI_INDEX)
                    .then(|| media::NYDUS_MANIFEST_ARTIFACT.to_string()),
                ..Default::default()
            });
        }
        let index = Index {
            schema_version: 2,
            media_type: Some(index_mt.to_string()),
            manifests,
            ..Default::default()
        };
        let bytes = serde_json::to_vec(&index)?;
        self.dst
            .put_manifest(&self.target_tag, index_mt, &bytes)
            .await
    }

    /// Copies a source manifest and everything it names into the target repository.
    async fn copy_manifest(&self, d: &Descriptor) -> Result<()> {
        let c = super::copy::Copier {
            src: &self.src,
            dst: &self.dst,
            scratch: &self.scratch,
        };
        c.copy_manifest(&d.digest, None).await.map(|_| ())
    }

    /// Converts one platform manifest and pushes its blobs, bootstrap layer and config (not
    /// the manifest).
    async fn convert_manifest(
        &self,
        m: Manifest,
        mt: &str,
        bytes: &[u8],
        digest: &str,
        platform: Option<Platform>,
    ) -> Result<Converted> {
        if nydus_core::oci::check::is_nydus(&m) {
            bail!(
                "source {}@{digest} is already a Nydus image",
                self.src.describe()
            );
        }
        for l in &m.layers {
            if !is_tar_layer(&l.media_type) {
                bail!(
                    "source {}@{digest}: layer {} has media type {:?}, which is not an OCI/Docker tar layer",
                    self.src.describe(),
                    l.digest,
                    l.media_type
                );
            }
        }
        let config_bytes = self.src.blob_bytes(&m.config.digest).await?;
        let config: Value = serde_json::from_slice(&config_bytes)
            .with_context(|| format!("source config {} is not JSON", m.config.digest))?;
        let platform = platform.or_else(|| {
            Some(Platform {
                os: config.get("os")?.as_str()?.to_string(),
                architecture: config.get("architecture")?.as_str()?.to_string(),
                variant: config
                    .get("variant")
                    .and_then(|v| v.as_str())
                    .map(str::to_string),
                ..Default::default()
            })
        });
        let dir = self.scratch.join(digest.trim_start_matches("sha256:"));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut pushes: JoinSet<Result<()>> = JoinSet::new();
        let mut blobs = Vec::new();
        let mut boot_paths = Vec::new();
        let mut metas: HashMap<String, Vec<u8>> = HashMap::new();
        let mut layer_metrics = Vec::new();
        let chains = self.chain_ids(&config, m.layers.len());
        let mut new_records = Vec::new();
        // Layers convert PARALLEL_LAYERS at a time (pulls overlap builds when bandwidth, not
        // CPU, is the limit); results are taken in layer order.
        let n = m.layers.len();
        let results: Vec<LayerResult> = futures_util::stream::iter(m.layers.iter().enumerate())
            .map(|(i, l)| {
                let chain = chains.as_ref().map(|c| c[i].clone());
                let dir = &dir;
                async move { self.obtain_layer(i, n, l, chain, dir).await }
            })
            .buffered(PARALLEL_LAYERS)
            .try_collect()
            .await?;
        for ((i, l), r) in m.layers.iter().enumerate().zip(results) {
            let LayerResult {
                built,
                already_pushed,
                from_cache,
                record,
                seconds,
            } = r;
            new_records.extend(record);
            crate::log::info(&format!(
                "layer {}/{} {} ({} bytes) -> blob sha256:{} ({} bytes) in {:.2}s",
                i + 1,
                m.layers.len(),
                l.digest,
                l.size,
                built.blob_id,
                built.blob_size,
                seconds
            ));
            layer_metrics.push(json!({
                "source_digest": l.digest,
                "source_size": l.size,
                "blob_digest": format!("sha256:{}", built.blob_id),
                "blob_size": built.blob_size,
                "seconds": seconds,
                "from_cache": from_cache,
                "build": built.trace,
            }));
            let boot_path = dir.join(format!("{}.boot", built.blob_id));
            write_file(&boot_path, &built.bootstrap)?;
            boot_paths.push(boot_path);
            blobs.push(BlobLayer {
                digest_hex: built.blob_id.clone(),
                size: built.blob_size,
            });
            metas.insert(built.blob_id.clone(), built.blob_meta);
            let dst = self.dst.clone();
            let blob_path = dir.join(&built.blob_id);
            let bdigest = format!("sha256:{}", built.blob_id);
            let backend = self.settings.backend.clone();
            let force = self.settings.backend_force_push;
            let cache_store = match (&self.cache, from_cache) {
                (Some(c), true) => Some(c.lock().await.store.clone()),
                _ => None,
            };
            let scratch = dir.clone();
            pushes.spawn(async move {
                if already_pushed {
                    tokio::fs::remove_file(&blob_path).await.ok();
                    return Ok(());
                }
                if let Some(cs) = cache_store {
                    // A cached blob: from the cache repository (mounted on the same registry).
                    return super::copy::copy_blob(&cs, &dst, &bdigest, &scratch).await;
                }
                match backend {
                    Some(d) => {
                        let dest = d.join(bdigest.trim_start_matches("sha256:"));
                        tokio::task::spawn_blocking(move || {
                            if !force && dest.is_file() {
                                // The backend has it (named by its digest).
                                return Ok(());
                            }
                            std::fs::create_dir_all(&d)
                                .with_context(|| format!("creating {}", d.display()))?;
                            super::store::copy_verified(&blob_path, &dest, &bdigest)
                        })
                        .await
                        .context("the backend copy task failed")??;
                    }
                    None => {
                        dst.push_blob_file(&bdigest, &blob_path).await?;
                        tokio::fs::remove_file(&blob_path).await.ok();
                    }
                }
                Ok(())
            });
        }
        // The merged bootstrap, in the bootstrap layer.
        let merge_plan = MergePlan {
            chunk_dict: self.settings.chunk_dict.as_ref().map(|(p, _)| p.clone()),
            prefetch_fs: true,
            ..MergePlan::new(boot_paths, dir.join("image.boot"))
        };
        let patterns = self.settings.patterns.clone();
        let merged = tokio::task::spawn_blocking(move || {
            nydus_host_image::merge::merge(&merge_plan, &patterns)
        })
        .await
        .context("the merge task failed")??;
        let blob_metas: Vec<(String, Vec<u8>)> = merged
            .blob_ids
            .iter()
            .filter_map(|id| {
                metas
                    .get(id)
                    .filter(|m| !m.is_empty())
                    .map(|m| (id.clone(), m.clone()))
            })
            .collect();
        // Blobs of a chunk dictionary the image uses are extra blob layers (before the
        // bootstrap layer), and must be in the target.
        for id in &merged.blob_ids {
            if blobs.iter().any(|b: &BlobLayer| &b.digest_hex == id) {
                continue;
            }
            let digest = format!("sha256:{id}");
            if !self.dst.has_blob(&digest).await? {
                match self.settings.chunk_dict.as_ref().and_then(|(_, s)| s.as_ref()) {
                    Some(from) => super::copy::copy_blob(from, &self.dst, &digest, &dir).await?,
                    None => bail!(
                        "chunk dictionary blob {digest} is not in {}: push the dictionary image's blobs there first",
                        self.dst.describe()
                    ),
                }
            }
            // The descriptor needs the whole blob's size (the blob table's excludes an inlined
            // bootstrap).
            let size = self.dst.blob_size(&digest).await?.ok_or_else(|| {
                anyhow!(
                    "chunk dictionary blob {digest} vanished from {}",
                    self.dst.describe()
                )
            })?;
            blobs.push(BlobLayer {
                digest_hex: id.clone(),
                size,
            });
        }
        let boot = bootstrap_layer::build(&merged.bootstrap, &blob_metas);
        let mut img = nydus_image(
            &m,
            &config,
            &blobs,
            &boot,
            self.settings.fs_version,
            self.settings.oci || mt == media::OCI_MANIFEST,
            self.settings.backend.is_some(),
        )
        .map_err(|e| anyhow!("source config {}: {e}", m.config.digest))?;
        if self.settings.with_referrer {
            img.manifest.subject = Some(Descriptor {
                media_type: mt.to_string(),
                digest: digest.to_string(),
                size: bytes.len() as u64,
                ..Default::default()
            });
        }
        self.dst.push_blob_bytes(&boot.digest, &boot.gz).await?;
        self.dst
            .push_blob_bytes(&img.manifest.config.digest, &img.config)
            .await?;
        while let Some(r) = pushes.join_next().await {
            r.context("a blob push task failed")??;
        }
        if let Some(c) = &self.cache {
            let mut c = c.lock().await;
            // The cache repository must hold the new records' blobs too.
            for r in &new_records {
                super::copy::copy_blob(&self.dst, &c.store, &r.blob.digest, &dir).await?;
            }
            c.record(new_records);
        }
        let manifest = serde_json::to_vec(&img.manifest)?;
        let media_type = img
            .manifest
            .media_type
            .clone()
            .unwrap_or_else(|| media::OCI_MANIFEST.into());
        let digest_out = format!("sha256:{}", nydus_core::digest::sha256(&manifest).to_hex());
        Ok(Converted {
            metrics: json!({
                "source_manifest": digest,
                "nydus_manifest": digest_out,
                "platform": platform.as_ref().map(|p| format!("{}/{}", p.os, p.architecture)),
                "bootstrap_layer": boot.digest,
                "layers": layer_metrics,
            }),
            manifest,
            media_type,
            digest: digest_out,
            platform,
        })
    }

    /// One layer from the build cache or converted (and recorded in the cache).
    async fn obtain_layer(
        &self,
        i: usize,
        n: usize,
        l: &Descriptor,
        chain: Option<String>,
        dir: &Path,
    ) -> Result<LayerResult> {
        let t = Instant::now();
        let cached = match &chain {
            Some(c) => self.cached_layer(c).await,
            None => None,
        };
        if let Some((built, rec)) = cached {
            crate::log::info(&format!(
                "layer {}/{n} {}: reused from the build cache",
                i + 1,
                l.digest
            ));
            // Used records move to the front of the cache.
            return Ok(LayerResult {
                built,
                already_pushed: false,
                from_cache: true,
                record: Some(rec),
                seconds: t.elapsed().as_secs_f64(),
            });
        }
        let label = format!("layer {}/{n}", i + 1);
        let (built, pushed) = self.convert_layer(l, dir, &label).await?;
        let record = match &chain {
            Some(c) => Some(self.cache_record(c, &built).await?),
            None => None,
        };
        Ok(LayerResult {
            built,
            already_pushed: pushed,
            from_cache: false,
            record,
            seconds: t.elapsed().as_secs_f64(),
        })
    }

    /// Chain ids of the source layers, when the build cache is used and the config's diff ids
    /// match the layers.
    fn chain_ids(&self, config: &Value, layers: usize) -> Option<Vec<String>> {
        self.cache.as_ref()?;
        let ids: Vec<String> = config
            .pointer("/rootfs/diff_ids")?
            .as_array()?
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<_>>()?;
        if ids.len() != layers {
            crate::log::warn(
                "the source config's diff ids do not match its layers: build cache not used",
            );
            return None;
        }
        Some(super::cache::chain_ids(&ids))
    }

    /// The fingerprint of the settings a layer build depends on, kept with cache records.
    fn settings_key(&self) -> String {
        let mut pats = self.settings.patterns.join("\n");
        if let Some((p, _)) = &self.settings.chunk_dict {
            // Another dictionary gives other blobs.
            let d = std::fs::read(p)
                .map(|b| nydus_core::digest::sha256(&b).to_hex())
                .unwrap_or_default();
            pats.push_str(&format!("\nchunk-dict {d}"));
        }
        format!(
            "{}:{:#x}:{}",
            self.settings.compressor.name(),
            self.settings.chunk_size,
            nydus_core::digest::sha256(pats.as_bytes()).to_hex()
        )
    }

    /// A layer converted before, from the build cache (`None` on a miss, or when the record is
    /// unusable: another build setting, a missing or damaged layer).
    async fn cached_layer(&self, chain: &str) -> Option<(create::Built, super::cache::Record)> {
        let cache = self.cache.as_ref()?.lock().await;
        let rec = cache.lookup(chain)?.clone();
        let store = cache.store.clone();
        drop(cache);
        let attempt = async {
            if rec.bootstrap.annotation(SETTINGS_ANNOTATION) != Some(&self.settings_key()) {
                bail!("built with other settings");
            }
            let gz = store.blob_bytes(&rec.bootstrap.digest).await?;
            let files = bootstrap_layer::extract_files(&gz, 1 << 30)
                .map_err(|e| anyhow!("bootstrap layer {}: {e}", rec.bootstrap.digest))?;
            let id = rec.blob.digest_hex().to_string();
            let find = |n: &str| files.iter().find(|(f, _)| f == n).map(|(_, d)| d.clone());
            let bootstrap = find(nydus_core::oci::BOOTSTRAP_PATH)
                .ok_or_else(|| anyhow!("no bootstrap in {}", rec.bootstrap.digest))?;
            let blob_meta = find(&format!("image/{id}.blob.meta")).unwrap_or_default();
            let rafs = nydus_core::rafs::Rafs::open(bootstrap.clone())
                .map_err(|e| anyhow!("cached bootstrap: {e}"))?;
            if rafs.compressor() != self.settings.compressor
                || rafs.chunk_size() != self.settings.chunk_size
            {
                bail!("built with another compressor or chunk size");
            }
            if !store.has_blob(&rec.blob.digest).await? {
                bail!("blob {} is missing", rec.blob.digest);
            }
            Ok::<_, anyhow::Error>(create::Built {
                bootstrap,
                bootstrap_path: None,
                blob_id: id,
                blob_size: rec.blob.size,
                table_ids: Vec::new(),
                blob_meta,
                trace: json!({"from_cache": true}),
            })
        };
        match attempt.await {
            Ok(b) => Some((b, rec)),
            Err(e) => {
                crate::log::warn(&format!("build cache record {chain} not used: {e:#}"));
                None
            }
        }
    }

    /// Pushes the cache layer of a newly built layer (its bootstrap) and returns its record.
    async fn cache_record(&self, chain: &str, b: &create::Built) -> Result<super::cache::Record> {
        let cache = self
            .cache
            .as_ref()
            .expect("called with a cache")
            .lock()
            .await;
        let metas = if b.blob_meta.is_empty() {
            Vec::new()
        } else {
            vec![(b.blob_id.clone(), b.blob_meta.clone())]
        };
        let layer = bootstrap_layer::build(&b.bootstrap, &metas);
        cache
            .store
            .push_blob_bytes(&layer.digest, &layer.gz)
            .await?;
        let mut boot =
            cache.bootstrap_desc(chain, &layer.digest, layer.gz.len() as u64, &layer.diff_id);
        boot.annotations
            .insert(SETTINGS_ANNOTATION.to_string(), self.settings_key());
        Ok(super::cache::Record {
            chain_id: chain.to_string(),
            bootstrap: boot,
            blob: super::cache::BuildCache::blob_desc(
                chain,
                &format!("sha256:{}", b.blob_id),
                b.blob_size,
            ),
        })
    }

    /// Streams one source layer through decompression into a layer build; the blob lands in
    /// `dir` named by its digest. A failed pull (connection lost, digest mismatch) is retried
    /// from the start.
    /// Converts a layer; the flag says whether its blob is already in the target.
    async fn convert_layer(
        &self,
        l: &Descriptor,
        dir: &Path,
        label: &str,
    ) -> Result<(create::Built, bool)> {
        let mut attempt = 0u32;
        loop {
            match self.try_convert_layer(l, dir, label).await {
                Ok(b) => return Ok(b),
                Err(LayerError::Pull(e)) if attempt < self.src.retries() => {
                    attempt += 1;
                    crate::log::warn(&format!(
                        "{e:#}; converting layer {} again (retry {attempt})",
                        l.digest
                    ));
                    tokio::time::sleep(Duration::from_millis(200) * attempt).await;
                }
                Err(LayerError::Pull(e)) | Err(LayerError::Build(e)) => return Err(e),
            }
        }
    }

    async fn try_convert_layer(
        &self,
        l: &Descriptor,
        dir: &Path,
        label: &str,
    ) -> Result<(create::Built, bool), LayerError> {
        let (pull, reader) = self.src.blob_reader(&l.digest).map_err(LayerError::Build)?;
        let bar = progress_bar(l.size, label);
        let reader = Counted {
            inner: reader,
            bar: bar.clone(),
        };
        let mut plan = Plan::layer(
            dir.to_path_buf(),
            self.settings.compressor,
            self.settings.chunk_size,
        );
        if self.settings.fs_version == 5 {
            // RAFS v5 layers: the bootstrap inlined after the data, no ci table or ToC (what
            // upstream's `create -t tar-rafs --fs-version 5 --blob-inline-meta` writes).
            plan.v5 = true;
            plan.blob_toc = false;
        }
        plan.chunk_dict = self.settings.chunk_dict.as_ref().map(|(p, _)| p.clone());
        // Into a registry, the blob goes up while it is built (chunked upload; the digest is
        // named at the end). If that fails, the finished file is uploaded instead.
        let mut tee: Option<Box<dyn BlobSink>> = None;
        let stream_to = match (&self.dst, &self.settings.backend) {
            (Store::Registry { reg, repo }, None) => {
                let (tx, rx) = tokio::sync::mpsc::channel(4);
                tee = Some(Box::new(super::stream::ChannelSink::new(tx)));
                Some((reg.clone(), repo.clone(), rx))
            }
            _ => None,
        };
        let piece = self.settings.stream_piece;
        let upload = async move {
            match stream_to {
                Some((reg, repo, rx)) => Some(reg.push_blob_stream(&repo, rx, piece).await),
                None => None,
            }
        };
        let patterns = self.settings.patterns.clone();
        let shown = format!("layer {}", l.digest);
        let build = tokio::task::spawn_blocking(move || {
            let input = tarsrc::decompress(Box::new(reader), &shown)?;
            plan.source = PathBuf::from(shown);
            create::build(&plan, &patterns, Some(input), tee)
        });
        let (pulled, built, streamed) = tokio::join!(pull, build, upload);
        bar.finish_and_clear();
        pulled.map_err(LayerError::Pull)?;
        let built = built
            .map_err(|e| LayerError::Build(anyhow!("the layer build task failed: {e}")))?
            .map_err(LayerError::Build)?;
        let mut pushed = false;
        match (streamed, &self.dst) {
            (Some(Ok((loc, sent))), Store::Registry { reg, repo }) if sent == built.blob_size => {
                let digest = format!("sha256:{}", built.blob_id);
                match reg.commit_upload(repo, &loc, &digest).await {
                    Ok(()) => pushed = true,
                    Err(e) => crate::log::warn(&format!(
                        "{e:#}; uploading blob {digest} again as a whole"
                    )),
                }
            }
            (Some(Err(e)), _) => crate::log::warn(&format!(
                "streaming the blob of layer {} failed ({e:#}); uploading it as a whole",
                l.digest
            )),
            _ => {}
        }
        Ok((built, pushed))
    }
}

/// Our annotation on cache bootstrap layers: the build settings (compressor, chunk size,
/// prefetch patterns) the record was made with; records without it are checked by their
/// bootstrap's compressor and chunk size.
const SETTINGS_ANNOTATION: &str = "dev.nydus-rs.build-settings";

/// A progress bar over a layer's compressed bytes on a terminal; hidden otherwise (the log
/// lines say the same).
fn progress_bar(len: u64, label: &str) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {elapsed}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(label.to_string());
    bar
}

/// Counts what is read into a progress bar.
struct Counted<R> {
    inner: R,
    bar: indicatif::ProgressBar,
}

impl<R: std::io::Read> std::io::Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bar.inc(n as u64);
        Ok(n)
    }
}

enum LayerError {
    /// Fetching the layer failed (worth a retry).
    Pull(anyhow::Error),
    /// The layer is bad or the build failed.
    Build(anyhow::Error),
}

fn index_type(index: &Index, fetched_mt: &str, oci: bool) -> String {
    if oci {
        return media::OCI_INDEX.into();
    }
    index
        .media_type
        .clone()
        .unwrap_or_else(|| fetched_mt.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("5s"), Some(Duration::from_secs(5)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("x"), None);
        assert_eq!(parse_byte_size("0MB"), Some(0));
        assert_eq!(parse_byte_size("16MB"), Some(16_000_000));
        assert_eq!(parse_byte_size("1MiB"), Some(1 << 20));
        assert_eq!(parse_byte_size("4096"), Some(4096));
        assert_eq!(parse_byte_size("lots"), None);
    }
}
