//! `nydusify optimize` (`hooks-optimize-commit.md` §2): a Nydus image in a registry rebuilt
//! with the data of a prefetch list gathered into one new blob.
//!
//! The source manifest (index → platform) and its bootstrap layer are pulled and verified;
//! the listed chunks are read through the same `ChunkReader` as the mount (from the source
//! repository by `Range`, or from `--source-backend-*`), verified and copied into the new blob
//! by [`nydus_host_image::optimize`]; then the source's blob layers are reused (mounted or
//! copied only when the target is another repository), the new blob, the new bootstrap layer
//! (the bootstrap, the blob metas, and the prefetch list as `image/prefetch.files`), the
//! config and the manifest are pushed, the manifest last, so a failure leaves no tag.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use nydus_core::oci::bootstrap_layer::{build_with, extract_files};
use nydus_core::oci::check::is_nydus;
use nydus_core::oci::manifest::Platform;
use nydus_core::oci::nydus::{optimized_image, BlobLayer};
use nydus_core::oci::reference::Reference;
use nydus_core::oci::PREFETCH_FILES_PATH;
use nydus_host_image::optimize::{
    optimize as optimize_bootstrap, read_prefetch_list, OptimizePlan,
};
use nydus_host_registry::{Credentials, RegistryOptions};
use nydus_host_storage::atomic::{write_file, Scratch};
use nydus_host_storage::config::{BackendConfig, HttpOptions};
use nydus_host_storage::{open_backend, open_image, ReaderOptions, RegistryBackend};

use crate::hooks::Hooks;
use crate::registry_for;
use crate::store::Store;
use crate::transfer::copy_blob;

/// What to optimize, with what, and where the result goes.
#[derive(Debug, Clone)]
pub struct OptimizeOptions {
    pub source: Reference,
    pub target: Reference,
    /// The references as the user wrote them (messages).
    pub source_shown: String,
    pub target_shown: String,
    pub source_insecure: bool,
    pub target_insecure: bool,
    pub source_plain_http: bool,
    pub target_plain_http: bool,
    pub platform: Platform,
    /// The prefetch list (either form, see `nydus_core::prefetch_list`).
    pub prefetch_files: PathBuf,
    /// A listed path missing from the image, or a range past a file's end, is an error.
    pub strict: bool,
    /// Where the source's blobs are when not in its repository.
    pub source_backend: Option<BackendConfig>,
    /// Scratch space (a fresh directory inside it is used and removed).
    pub work_dir: PathBuf,
    pub retries: u32,
    pub retry_delay: Duration,
    /// Push blobs in chunks of this size (0: one PUT).
    pub push_chunk_size: u64,
    /// Hook plugins run before the manifest is pushed (a rejection aborts: nothing is
    /// tagged) and after.
    pub hooks: Option<std::sync::Arc<dyn nydus_core::plugin::HookRunner>>,
}

/// What was pushed.
#[derive(Debug, Clone)]
pub struct OptimizeOutcome {
    /// Digest of the pushed manifest.
    pub manifest_digest: String,
    /// The prefetch blob: id, size, chunks and uncompressed bytes.
    pub prefetch_blob: String,
    pub prefetch_blob_size: u64,
    pub chunks: u32,
    pub uncompressed_bytes: u64,
    /// The new prefetch table.
    pub prefetch_files: Vec<String>,
    /// Items of the list left out or cut.
    pub warnings: Vec<String>,
    /// Seconds spent pulling, building (reading and copying chunks) and pushing.
    pub pull_seconds: f64,
    pub build_seconds: f64,
    pub push_seconds: f64,
}

/// Largest bootstrap layer pulled into memory.
const MAX_BOOTSTRAP_LAYER: usize = 1 << 30;

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Optimizes per `o`.
pub fn optimize(o: &OptimizeOptions) -> Result<OptimizeOutcome> {
    // The list first: a bad list fails before any network traffic.
    let prefetch_bytes = std::fs::read(&o.prefetch_files)
        .with_context(|| format!("reading {}", o.prefetch_files.display()))?;
    let (list, mut warnings) = read_prefetch_list(&o.prefetch_files)?;
    std::fs::create_dir_all(&o.work_dir)
        .with_context(|| format!("creating the work directory {}", o.work_dir.display()))?;
    let scratch = Scratch::new_in(&o.work_dir, "nydusify-optimize-")?;
    let dir = scratch.path().to_path_buf();
    let rt = runtime()?;

    let t0 = Instant::now();
    let s = &o.source;
    let src_reg = registry_for(
        &s.host,
        o.source_insecure,
        o.source_plain_http,
        o.retries,
        o.retry_delay,
        0,
    )?;
    let (manifest, config, old_layer) = rt.block_on(async {
        let (m, _) =
            crate::resolve::manifest_for(&src_reg, &s.repository, s.target(), &o.platform, &o.source_shown)
                .await?;
        if !is_nydus(&m) {
            bail!(
                "{}: not a Nydus image (the last layer is not a Nydus bootstrap layer); convert it with `nydusify convert` first",
                o.source_shown
            );
        }
        let config = src_reg
            .pull_blob_bytes(&s.repository, &m.config.digest)
            .await
            .with_context(|| format!("{}: pulling the config", o.source_shown))?;
        let last = m.layers.last().expect("is_nydus");
        let gz = src_reg
            .pull_blob_bytes(&s.repository, &last.digest)
            .await
            .with_context(|| format!("{}: pulling the bootstrap layer", o.source_shown))?;
        Ok((m, config, gz))
    })?;
    let config: serde_json::Value = serde_json::from_slice(&config)
        .with_context(|| format!("{}: the config is not JSON", o.source_shown))?;
    let files = extract_files(&old_layer, MAX_BOOTSTRAP_LAYER).map_err(|e| {
        anyhow!(
            "{}: bootstrap layer {}: {e}",
            o.source_shown,
            manifest.layers.last().expect("is_nydus").digest
        )
    })?;
    let boot = files
        .iter()
        .find(|(n, _)| {
            n == nydus_core::oci::BOOTSTRAP_PATH || n == nydus_core::oci::LEGACY_BOOTSTRAP_PATH
        })
        .map(|(_, d)| d.clone())
        .with_context(|| {
            format!(
                "{}: the bootstrap layer holds no image.boot",
                o.source_shown
            )
        })?;
    let boot_path = dir.join("source.boot");
    write_file(&boot_path, &boot)?;
    let pull_seconds = t0.elapsed().as_secs_f64();

    // Build: the listed chunks read (verified) and copied into the new blob.
    let t1 = Instant::now();
    let img = open_image(&boot_path)?;
    let backend = match &o.source_backend {
        Some(c) => open_backend(c)?,
        None => std::sync::Arc::new(RegistryBackend::new(
            &s.host,
            &s.repository,
            RegistryOptions {
                plain_http: o.source_plain_http,
                insecure: o.source_insecure,
                credentials: Credentials::from_docker_config(&s.host, None)?,
                retries: o.retries,
                retry_delay: o.retry_delay,
                connect_timeout: HttpOptions::default().connect_timeout,
                read_timeout: Some(HttpOptions::default().timeout),
                ..Default::default()
            },
        )?),
    };
    let reader = img.chunk_reader_with(backend, ReaderOptions::default())?;
    let blob_dir = dir.join("blobs");
    std::fs::create_dir_all(&blob_dir)
        .with_context(|| format!("creating {}", blob_dir.display()))?;
    let out_boot = dir.join("optimized.boot");
    let built = optimize_bootstrap(
        &img,
        &reader,
        &OptimizePlan {
            prefetch: list,
            output_bootstrap: out_boot.clone(),
            output_blob_dir: blob_dir.clone(),
            strict: o.strict,
        },
    )
    .with_context(|| format!("optimizing {}", o.source_shown))?;
    warnings.extend(built.warnings.iter().cloned());
    // The new bootstrap layer: the old one's blob metas, the new blob's, the prefetch list.
    let mut metas: Vec<(String, Vec<u8>)> = files
        .iter()
        .filter_map(|(n, d)| {
            let id = n.strip_prefix("image/")?.strip_suffix(".blob.meta")?;
            Some((id.to_string(), d.clone()))
        })
        .collect();
    let meta_path = blob_dir.join(format!("{}.blob.meta", built.blob_id));
    if meta_path.exists() {
        let meta = std::fs::read(&meta_path)
            .with_context(|| format!("reading {}", meta_path.display()))?;
        metas.push((built.blob_id.clone(), meta));
    }
    let layer = build_with(
        &built.bootstrap,
        &metas,
        &[(PREFETCH_FILES_PATH.to_string(), prefetch_bytes)],
    );
    let image = optimized_image(
        &manifest,
        &config,
        &BlobLayer {
            digest_hex: built.blob_id.clone(),
            size: built.blob_size,
        },
        &layer,
    )
    .map_err(|e| anyhow!("{}: {e}", o.source_shown))?;
    let build_seconds = t1.elapsed().as_secs_f64();

    // Push: blobs, config, then the manifest.
    let t2 = Instant::now();
    let t = &o.target;
    let dst_reg = registry_for(
        &t.host,
        o.target_insecure,
        o.target_plain_http,
        o.retries,
        o.retry_delay,
        o.push_chunk_size,
    )?;
    let src = Store::registry(src_reg, &s.repository);
    let dst = Store::registry(dst_reg, &t.repository);
    let manifest_bytes = serde_json::to_vec(&image.manifest)?;
    let media_type = image
        .manifest
        .media_type
        .clone()
        .unwrap_or_else(|| nydus_core::oci::media::OCI_MANIFEST.to_string());
    let digest = rt.block_on(async {
        let same_repo = s.host == t.host && s.repository == t.repository;
        for l in &manifest.layers[..manifest.layers.len() - 1] {
            if !same_repo {
                copy_blob(&src, &dst, &l.digest, &dir)
                    .await
                    .with_context(|| {
                        format!("copying blob layer {} to {}", l.digest, o.target_shown)
                    })?;
            }
        }
        let blob_digest = format!("sha256:{}", built.blob_id);
        if !dst.has_blob(&blob_digest).await? {
            dst.push_blob_file(&blob_digest, &built.blob_path)
                .await
                .context("pushing the prefetch blob")?;
        }
        dst.push_blob_bytes(&layer.digest, &layer.gz)
            .await
            .context("pushing the bootstrap layer")?;
        dst.push_blob_bytes(&image.manifest.config.digest, &image.config)
            .await
            .context("pushing the config")?;
        let hooks = o.hooks.clone().map(|runner| Hooks {
            runner,
            source_ref: o.source_shown.clone(),
            target_ref: o.target_shown.clone(),
        });
        let mut before = Vec::new();
        if let Some(h) = &hooks {
            let digest = format!(
                "sha256:{}",
                nydus_core::digest::sha256(&manifest_bytes).to_hex()
            );
            let event = h.event(
                &image.manifest,
                serde_json::from_slice(&image.config)?,
                &digest,
                Some(crate::hooks::platform_name(&o.platform)),
            )?;
            h.run(event.clone(), out_boot.clone()).await?;
            before.push((event, out_boot.clone()));
        }
        let digest = dst
            .put_manifest(t.target(), &media_type, &manifest_bytes)
            .await
            .context("pushing the manifest")?;
        if let Some(h) = &hooks {
            h.after_push(before).await;
        }
        Ok::<_, anyhow::Error>(digest)
    })?;
    let push_seconds = t2.elapsed().as_secs_f64();
    Ok(OptimizeOutcome {
        manifest_digest: digest,
        prefetch_blob: built.blob_id,
        prefetch_blob_size: built.blob_size,
        chunks: built.chunks,
        uncompressed_bytes: built.uncompressed_bytes,
        prefetch_files: built.prefetch_files,
        warnings,
        pull_seconds,
        build_seconds,
        push_seconds,
    })
}
