//! `nydusify convert --source REF --target REF` (`oci-nydus-image.md` §7), in one process:
//! each source layer is streamed from the registry through decompression into the build
//! pipeline (never unpacked, never held whole), giving a blob with its bootstrap inlined; the
//! per-layer bootstraps are merged, packed into the bootstrap layer, and the blobs, config and
//! manifest (or index) are pushed. Blob pushes run while the next layer converts.
//!
//! This module holds the options and the job: which manifests of the source are converted
//! and what is pushed under the target tag. `layer` converts (or takes from the build
//! cache) one layer; `publish` pushes the blobs, the bootstrap layer, the config, the
//! manifest and an index.

mod layer;
mod publish;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use nydus_core::model::Compressor;
use nydus_core::oci::bootstrap_layer;
use nydus_core::oci::manifest::{parse_document, Descriptor, Document, Manifest, Platform};
use nydus_core::oci::media;
use nydus_core::oci::reference::Reference;
use nydus_host_storage::atomic::{write_file, Scratch};
use serde_json::{json, Value};

use nydus_core::plugin::{HookEvent, HookRunner};

use crate::cache::BuildCache;
use crate::store::{ArchiveIn, LayoutOut, Store};
use crate::{is_nydus_entry, registry_for};

/// What to convert and how (validated).
#[derive(Debug, Clone)]
pub struct ConvertOptions {
    /// The source OCI image (read from `source_archive` instead when that is given).
    pub source: Reference,
    /// The target Nydus image, pushed by tag (into `target_archive` when that is given).
    pub target: Reference,
    pub source_insecure: bool,
    pub target_insecure: bool,
    /// Speak plain HTTP to the source registry.
    pub source_plain_http: bool,
    /// Speak plain HTTP to the target registry (and those of the chunk dictionary and the
    /// build cache).
    pub target_plain_http: bool,
    /// RAFS version of the target image (5 or 6).
    pub fs_version: u32,
    pub compressor: Compressor,
    pub chunk_size: u32,
    /// Absolute paths to prefetch (`["/"]`: everything).
    pub prefetch_patterns: Vec<String>,
    /// Platforms to convert out of an index.
    pub platforms: Vec<Platform>,
    /// Convert every platform of an index.
    pub all_platforms: bool,
    /// Push an index holding both the source and the Nydus manifests.
    pub merge_platform: bool,
    /// OCI media types even for a Docker source.
    pub oci: bool,
    /// Set the Nydus manifest's `subject` to the source manifest.
    pub with_referrer: bool,
    /// A chunk dictionary whose chunks layers may reuse.
    pub chunk_dict: Option<ChunkDict>,
    pub chunk_dict_insecure: bool,
    /// Converted layers reused by source chain id.
    pub build_cache: Option<BuildCacheOptions>,
    /// Blobs go to this backend (localfs, S3, OSS) instead of the target.
    pub backend: Option<crate::backend::BlobDest>,
    /// Copy blobs to the backend even when it has them.
    pub backend_force_push: bool,
    /// The source is an OCI image-layout tar.
    pub source_archive: Option<PathBuf>,
    /// The target is an OCI image-layout tar written at the end.
    pub target_archive: Option<PathBuf>,
    /// Scratch space (a fresh directory inside it is used and removed).
    pub work_dir: PathBuf,
    /// Retries of a failed push or pull, the delay before the first (growing with each).
    pub retries: u32,
    pub retry_delay: Duration,
    /// Push blobs in chunks of this size (0: one PUT).
    pub push_chunk_size: u64,
    /// Hook plugins run before and after the manifest is pushed (a rejection before the
    /// push aborts the conversion with nothing tagged).
    /// (`nydus_host_plugin::Hooks` runs WebAssembly plugins in wasmtime.)
    pub hooks: Option<Arc<dyn HookRunner>>,
    /// Told of each step as it happens.
    pub progress: Option<ProgressFn>,
    /// Push the Nydus manifest by its digest only, tagging nothing (`nydusify commit`
    /// converts an OCI base this way before it pushes its own manifest under the tag).
    /// Only with one platform converted and no `merge_platform`.
    pub untagged: bool,
}

impl ConvertOptions {
    /// Options converting `source` into `target` as `nydusify convert` does by default:
    /// RAFS v6, zstd, 1 MiB chunks, prefetch `/`, the host's platform, blobs pushed to the
    /// target registry over HTTPS, scratch space in `./tmp`, three retries.
    pub fn new(source: Reference, target: Reference) -> ConvertOptions {
        ConvertOptions {
            source,
            target,
            source_insecure: false,
            target_insecure: false,
            source_plain_http: false,
            target_plain_http: false,
            fs_version: 6,
            compressor: Compressor::Zstd,
            chunk_size: 0x10_0000,
            prefetch_patterns: vec!["/".into()],
            platforms: vec![crate::host_platform()],
            all_platforms: false,
            merge_platform: false,
            oci: false,
            with_referrer: false,
            chunk_dict: None,
            chunk_dict_insecure: false,
            build_cache: None,
            backend: None,
            backend_force_push: false,
            source_archive: None,
            target_archive: None,
            work_dir: PathBuf::from("./tmp"),
            retries: 3,
            retry_delay: Duration::from_secs(5),
            push_chunk_size: 0,
            hooks: None,
            progress: None,
            untagged: false,
        }
    }
}

/// A step of a conversion, as it happens.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Progress {
    /// Layer `index` (from 0) of `total` of a source manifest is built into a blob.
    LayerConverted {
        source_manifest: String,
        index: usize,
        total: usize,
        source_digest: String,
        blob_digest: String,
        blob_size: u64,
    },
    /// Every blob, the bootstrap layer and the config of a Nydus manifest are in the target;
    /// the manifest is not pushed yet.
    ManifestReady {
        platform: Option<String>,
        digest: String,
    },
    /// The target tag names this manifest or index.
    Pushed { tag: String, digest: String },
}

/// A progress callback, called from the conversion's threads.
#[derive(Clone)]
pub struct ProgressFn(pub Arc<dyn Fn(&Progress) + Send + Sync>);

impl ProgressFn {
    pub fn new(f: impl Fn(&Progress) + Send + Sync + 'static) -> ProgressFn {
        ProgressFn(Arc::new(f))
    }
}

impl std::fmt::Debug for ProgressFn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProgressFn")
    }
}

/// Where a chunk dictionary is: a Nydus image's bootstrap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkDict {
    /// A local bootstrap file (the dictionary's blobs must already be in the target).
    Local(PathBuf),
    /// A Nydus image in a registry; `shown` is how the user named it.
    Registry { image: Reference, shown: String },
}

/// The build cache of a conversion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildCacheOptions {
    pub location: CacheLocation,
    /// Records kept in the cache image (1 to 200).
    pub max_records: usize,
    pub insecure: bool,
}

/// Where the cache image is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheLocation {
    /// An image reference of its own.
    Image(Reference),
    /// A tag of the target repository.
    TargetTag(String),
}

/// What a conversion did.
#[derive(Debug, Clone)]
pub struct ConvertOutcome {
    /// What the target tag names: the Nydus manifest, or the index holding them.
    pub target_digest: String,
    /// The Nydus manifests pushed, one per platform converted.
    pub manifests: Vec<PushedManifest>,
    /// `target_digest` (what the target tag names) and per platform manifest its layers'
    /// digests, sizes and timings.
    pub metrics: Value,
    /// From the first manifest read to the last push.
    pub elapsed: Duration,
    /// Where that time went, as upstream reports it.
    pub phases: Phases,
}

/// A Nydus manifest a conversion pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedManifest {
    /// `os/arch[/variant]`, when known.
    pub platform: Option<String>,
    /// The Nydus manifest's digest.
    pub digest: String,
    /// The source manifest it was converted from.
    pub source_digest: String,
    /// The data blobs' digests, in layer order.
    pub blobs: Vec<String>,
}

/// The phases of a conversion, summed over the platforms converted. Layers stream from the
/// source through the builder, so pulling layer data is part of `convert`; `pull` is the
/// manifests and configs read before, `push` what publishing adds after the last layer is
/// built (the bootstrap layer, the config, the blob uploads still under way, the manifests).
#[derive(Debug, Clone, Copy, Default)]
pub struct Phases {
    pub pull: Duration,
    pub convert: Duration,
    pub push: Duration,
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
    /// Blobs go to this backend instead of the target.
    backend: Option<crate::backend::BlobDest>,
    /// Chunk size of blob uploads streamed while building.
    stream_piece: usize,
    /// Copy blobs to the backend even when it has them.
    backend_force_push: bool,
    /// The chunk dictionary's bootstrap (local file), and where its blobs are (a registry
    /// dictionary; a local one's blobs must already be in the target).
    chunk_dict: Option<(PathBuf, Option<Store>)>,
}

/// Resolves the chunk dictionary: its bootstrap as a local file, and for a registry
/// dictionary the store holding its blobs.
fn chunk_dict(
    dict: &ChunkDict,
    scratch: &Path,
    rt: &tokio::runtime::Runtime,
    insecure: bool,
    plain_http: bool,
) -> Result<(PathBuf, Option<Store>)> {
    let (r, arg) = match dict {
        ChunkDict::Local(p) => return Ok((p.clone(), None)),
        ChunkDict::Registry { image, shown } => (image, shown),
    };
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

/// Converts per `o`: reads the source, pushes the Nydus image (and the build cache).
pub fn convert(o: &ConvertOptions) -> Result<ConvertOutcome> {
    if o.untagged && (o.merge_platform || o.all_platforms) {
        bail!(
            "an untagged conversion pushes one manifest: no --merge-platform, no --all-platforms"
        );
    }
    let mut settings = Settings {
        compressor: o.compressor,
        chunk_size: o.chunk_size,
        patterns: o.prefetch_patterns.clone(),
        oci: o.oci,
        with_referrer: o.with_referrer,
        merge_platform: o.merge_platform,
        fs_version: o.fs_version,
        chunk_dict: None,
        backend_force_push: o.backend_force_push,
        stream_piece: if o.push_chunk_size > 0 {
            o.push_chunk_size as usize
        } else {
            8 << 20
        },
        backend: o.backend.clone(),
    };
    let scratch = Scratch::new_in(&o.work_dir, "nydusify-convert-")?;
    let (source, target) = (&o.source, &o.target);
    let src = match &o.source_archive {
        Some(p) => Store::Archive(Arc::new(ArchiveIn::open(p)?)),
        None => Store::registry(
            registry_for(
                &source.host,
                o.source_insecure,
                o.source_plain_http,
                o.retries,
                o.retry_delay,
                0,
            )?,
            &source.repository,
        ),
    };
    let dst = match &o.target_archive {
        Some(p) => Store::Layout(Arc::new(LayoutOut::create(scratch.path(), p)?)),
        None => Store::registry(
            registry_for(
                &target.host,
                o.target_insecure,
                o.target_plain_http,
                o.retries,
                o.retry_delay,
                o.push_chunk_size,
            )?,
            &target.repository,
        ),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    if let Some(d) = &o.chunk_dict {
        settings.chunk_dict = Some(chunk_dict(
            d,
            scratch.path(),
            &rt,
            o.chunk_dict_insecure,
            o.target_plain_http,
        )?);
    }
    let cache = match &o.build_cache {
        None => None,
        Some(c) => {
            let (store, tag) = match &c.location {
                CacheLocation::Image(r) => {
                    let reg = registry_for(
                        &r.host,
                        c.insecure,
                        o.target_plain_http,
                        o.retries,
                        o.retry_delay,
                        o.push_chunk_size,
                    )?;
                    (Store::registry(reg, &r.repository), r.target().to_string())
                }
                CacheLocation::TargetTag(t) => (dst.clone(), t.clone()),
            };
            let fs_version = settings.fs_version.to_string();
            let cache = rt.block_on(BuildCache::import(
                store,
                &tag,
                c.max_records,
                true,
                &fs_version,
            ))?;
            Some(tokio::sync::Mutex::new(cache))
        }
    };
    let job = Job {
        cache,
        src,
        dst,
        source_ref: source.target().to_string(),
        target_tag: target.target().to_string(),
        settings,
        scratch: scratch.path().to_path_buf(),
        phases: std::sync::Mutex::new(Phases::default()),
        hooks: o
            .hooks
            .clone()
            .filter(|h| !h.is_empty())
            .map(|runner| crate::hooks::Hooks {
                runner,
                source_ref: source.to_string(),
                target_ref: target.to_string(),
            }),
        progress: o.progress.clone(),
        target_shown: target.to_string(),
        untagged: o.untagged,
    };
    let t0 = Instant::now();
    let (target_digest, manifests, metrics) =
        rt.block_on(job.run(&o.platforms, o.all_platforms))?;
    let t_finish = Instant::now();
    job.dst.finish()?;
    if let Some(c) = &job.cache {
        let digest = rt.block_on(async { c.lock().await.export().await })?;
        log::info!("build cache pushed ({digest})");
    }
    let mut phases = job.phases();
    phases.push += t_finish.elapsed();
    Ok(ConvertOutcome {
        target_digest,
        manifests,
        metrics,
        elapsed: t0.elapsed(),
        phases,
    })
}

struct Job {
    cache: Option<tokio::sync::Mutex<BuildCache>>,
    src: Store,
    dst: Store,
    /// Tag or digest of the source image.
    source_ref: String,
    /// Tag of the target image.
    target_tag: String,
    settings: Settings,
    scratch: PathBuf,
    phases: std::sync::Mutex<Phases>,
    hooks: Option<crate::hooks::Hooks>,
    progress: Option<ProgressFn>,
    /// The target as the user gave it.
    target_shown: String,
    /// Push the manifest by digest, tagging nothing.
    untagged: bool,
}

/// One converted platform manifest.
struct Converted {
    manifest: Vec<u8>,
    media_type: String,
    digest: String,
    platform: Option<Platform>,
    metrics: Value,
    pushed: PushedManifest,
    /// What the hooks were told before the push, and the merged bootstrap they saw.
    event: Option<(HookEvent, PathBuf)>,
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
    fn phases(&self) -> Phases {
        *self.phases.lock().expect("phases lock")
    }

    fn add_phase(&self, f: impl FnOnce(&mut Phases) -> &mut Duration, since: Instant) {
        *f(&mut self.phases.lock().expect("phases lock")) += since.elapsed();
    }

    fn tell(&self, p: Progress) {
        if let Some(f) = &self.progress {
            (f.0)(&p);
        }
    }

    /// What the Nydus manifest is pushed as: the target tag, or its digest when untagged.
    fn manifest_name<'a>(&'a self, digest: &'a str) -> &'a str {
        if self.untagged {
            digest
        } else {
            &self.target_tag
        }
    }

    fn pushed(&self, digest: &str) {
        log::info!("pushed {} ({digest})", self.target_shown);
        self.tell(Progress::Pushed {
            tag: self.target_tag.clone(),
            digest: digest.to_string(),
        });
    }

    async fn run(
        &self,
        platforms: &[Platform],
        all: bool,
    ) -> Result<(String, Vec<PushedManifest>, Value)> {
        let t = Instant::now();
        let (mt, bytes, digest) = self.src.get_manifest(&self.source_ref).await?;
        self.add_phase(|p| &mut p.pull, t);
        let doc = parse_document(Some(&mt), &bytes)
            .map_err(|e| anyhow!("source {}: {e}", self.src.describe()))?;
        let pushed = match doc {
            Document::Manifest(m) => {
                let c = self
                    .convert_manifest(*m, &mt, &bytes, &digest, None)
                    .await?;
                let metrics = vec![c.metrics.clone()];
                let pushed = vec![c.pushed.clone()];
                let event = c.event.clone();
                let pushed_digest = if self.settings.merge_platform {
                    let source_desc = Descriptor {
                        media_type: mt.clone(),
                        digest: digest.clone(),
                        size: bytes.len() as u64,
                        platform: c.platform.clone(),
                        ..Default::default()
                    };
                    let t = Instant::now();
                    let d = self.push_index(&mt, vec![(source_desc, c)]).await?;
                    self.add_phase(|p| &mut p.push, t);
                    d
                } else {
                    let t = Instant::now();
                    let d = self
                        .dst
                        .put_manifest(self.manifest_name(&c.digest), &c.media_type, &c.manifest)
                        .await?;
                    self.add_phase(|p| &mut p.push, t);
                    d
                };
                self.pushed(&pushed_digest);
                if let Some(h) = &self.hooks {
                    h.after_push(event.into_iter().collect()).await;
                }
                (pushed_digest, pushed, metrics)
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
                    let t = Instant::now();
                    let (mmt, mbytes, mdigest) = self.src.get_manifest(&d.digest).await?;
                    self.add_phase(|p| &mut p.pull, t);
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
                let pushed = converted.iter().map(|(_, c)| c.pushed.clone()).collect();
                let events = converted
                    .iter()
                    .filter_map(|(_, c)| c.event.clone())
                    .collect();
                let t = Instant::now();
                let digest = if converted.len() == 1 && !self.settings.merge_platform {
                    let c = &converted[0].1;
                    self.dst
                        .put_manifest(self.manifest_name(&c.digest), &c.media_type, &c.manifest)
                        .await?
                } else {
                    self.push_index(
                        &publish::index_type(&index, &mt, self.settings.oci),
                        converted,
                    )
                    .await?
                };
                self.add_phase(|p| &mut p.push, t);
                self.pushed(&digest);
                if let Some(h) = &self.hooks {
                    h.after_push(events).await;
                }
                (digest, pushed, metrics)
            }
        };
        let (digest, pushed, results) = pushed;
        let metrics = json!({"target_digest": digest, "manifests": results});
        Ok((digest, pushed, metrics))
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
        let t = Instant::now();
        let config_bytes = self.src.blob_bytes(&m.config.digest).await?;
        self.add_phase(|p| &mut p.pull, t);
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
        let chains = self.chain_ids(&config, m.layers.len());
        let t = Instant::now();
        let results = self.convert_layers(&m.layers, chains, &dir).await?;
        let mut layers = publish::Layers::default();
        for ((i, l), r) in m.layers.iter().enumerate().zip(results) {
            self.take_layer(&mut layers, (i, m.layers.len()), l, r, &dir)
                .await?;
        }
        self.add_phase(|p| &mut p.convert, t);
        let t = Instant::now();
        let published = self
            .publish(layers, &m, mt, bytes, digest, platform, &config, &dir)
            .await;
        self.add_phase(|p| &mut p.push, t);
        published
    }
}
