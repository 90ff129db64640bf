//! Publishing a converted manifest: each layer's blob pushed (or copied to the backend, or
//! from the build cache) while the next layers convert; the per-layer bootstraps merged into
//! the bootstrap layer; the rewritten config and manifest; and, for several platforms or
//! `--merge-platform`, an index.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use nydus_core::oci::bootstrap_layer;
use nydus_core::oci::manifest::{Descriptor, Index, Manifest, Platform};
use nydus_core::oci::nydus::{nydus_image, BlobLayer};
use nydus_core::oci::{annotation, media};
use nydus_host_image::merge::MergePlan;
use nydus_host_storage::atomic::write_file;
use serde_json::{json, Value};
use tokio::task::JoinSet;

use super::layer::LayerResult;
use super::{Converted, Job, Progress, PushedManifest};
use crate::cache::Record;
use crate::transfer::{copy_blob, Copier};

/// What the layers of one manifest gave, gathered in layer order.
#[derive(Default)]
pub(super) struct Layers {
    /// Blob pushes running while the next layers convert.
    pushes: JoinSet<Result<()>>,
    blobs: Vec<BlobLayer>,
    boot_paths: Vec<PathBuf>,
    /// `<id>.blob.meta` contents by blob id.
    metas: HashMap<String, Vec<u8>>,
    metrics: Vec<Value>,
    /// New build cache records.
    records: Vec<Record>,
}

impl Job {
    /// Takes the result of layer `i` of `n`: its bootstrap kept for the merge, its blob pushed
    /// in the background.
    pub(super) async fn take_layer(
        &self,
        layers: &mut Layers,
        (i, n): (usize, usize),
        l: &Descriptor,
        r: LayerResult,
        dir: &Path,
    ) -> Result<()> {
        let LayerResult {
            built,
            already_pushed,
            from_cache,
            record,
            seconds,
        } = r;
        layers.records.extend(record);
        log::info!(
            "layer {}/{} {} ({} bytes) -> blob sha256:{} ({} bytes) in {:.2}s",
            i + 1,
            n,
            l.digest,
            l.size,
            built.blob_id,
            built.blob_size,
            seconds
        );
        self.tell(Progress::LayerConverted {
            source_manifest: dir
                .file_name()
                .map(|d| format!("sha256:{}", d.to_string_lossy()))
                .unwrap_or_default(),
            index: i,
            total: n,
            source_digest: l.digest.clone(),
            blob_digest: format!("sha256:{}", built.blob_id),
            blob_size: built.blob_size,
        });
        layers.metrics.push(json!({
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
        layers.boot_paths.push(boot_path);
        layers.blobs.push(BlobLayer {
            digest_hex: built.blob_id.clone(),
            size: built.blob_size,
        });
        layers.metas.insert(built.blob_id.clone(), built.blob_meta);
        let dst = self.dst.clone();
        let blob_path = dir.join(&built.blob_id);
        let bdigest = format!("sha256:{}", built.blob_id);
        let backend = self.settings.backend.clone();
        let force = self.settings.backend_force_push;
        let cache_store = match (&self.cache, from_cache) {
            (Some(c), true) => Some(c.lock().await.store.clone()),
            _ => None,
        };
        let scratch = dir.to_path_buf();
        layers.pushes.spawn(async move {
            if already_pushed {
                tokio::fs::remove_file(&blob_path).await.ok();
                return Ok(());
            }
            if let Some(cs) = cache_store {
                // A cached blob: from the cache repository (mounted on the same registry).
                return copy_blob(&cs, &dst, &bdigest, &scratch).await;
            }
            match backend {
                Some(d) => {
                    let id = bdigest.trim_start_matches("sha256:").to_string();
                    let path = blob_path.clone();
                    let pushed =
                        tokio::task::spawn_blocking(move || d.push_blob(&id, &path, force))
                            .await
                            .context("the backend upload task failed")??;
                    log::info!(
                        "blob {bdigest} {} {}",
                        if pushed.skipped {
                            "already in"
                        } else {
                            "pushed to"
                        },
                        pushed.location
                    );
                    tokio::fs::remove_file(&blob_path).await.ok();
                }
                None => {
                    dst.push_blob_file(&bdigest, &blob_path).await?;
                    tokio::fs::remove_file(&blob_path).await.ok();
                }
            }
            Ok(())
        });
        Ok(())
    }

    /// Merges the layers' bootstraps into the bootstrap layer, adds the chunk dictionary's
    /// blobs the image uses, pushes the bootstrap layer and config, waits for the blob pushes,
    /// records the new cache records, and returns the manifest (not pushed yet).
    #[allow(clippy::too_many_arguments)] // the parts of one source manifest, each needed
    pub(super) async fn publish(
        &self,
        mut layers: Layers,
        m: &Manifest,
        mt: &str,
        bytes: &[u8],
        digest: &str,
        platform: Option<Platform>,
        config: &Value,
        dir: &Path,
    ) -> Result<Converted> {
        // The merged bootstrap, in the bootstrap layer.
        let merge_plan = MergePlan {
            chunk_dict: self.settings.chunk_dict.as_ref().map(|(p, _)| p.clone()),
            prefetch_fs: true,
            ..MergePlan::new(layers.boot_paths, dir.join("image.boot"))
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
                layers
                    .metas
                    .get(id)
                    .filter(|m| !m.is_empty())
                    .map(|m| (id.clone(), m.clone()))
            })
            .collect();
        // Blobs of a chunk dictionary the image uses are extra blob layers (before the
        // bootstrap layer), and must be in the target.
        for id in &merged.blob_ids {
            if layers.blobs.iter().any(|b: &BlobLayer| &b.digest_hex == id) {
                continue;
            }
            let digest = format!("sha256:{id}");
            if !self.dst.has_blob(&digest).await? {
                match self.settings.chunk_dict.as_ref().and_then(|(_, s)| s.as_ref()) {
                    Some(from) => copy_blob(from, &self.dst, &digest, dir).await?,
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
            layers.blobs.push(BlobLayer {
                digest_hex: id.clone(),
                size,
            });
        }
        let boot = bootstrap_layer::build(&merged.bootstrap, &blob_metas);
        let mut img = nydus_image(
            m,
            config,
            &layers.blobs,
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
        while let Some(r) = layers.pushes.join_next().await {
            r.context("a blob push task failed")??;
        }
        if let Some(c) = &self.cache {
            let mut c = c.lock().await;
            // The cache repository must hold the new records' blobs too.
            for r in &layers.records {
                copy_blob(&self.dst, &c.store, &r.blob.digest, dir).await?;
            }
            c.record(layers.records);
        }
        let manifest = serde_json::to_vec(&img.manifest)?;
        let media_type = img
            .manifest
            .media_type
            .clone()
            .unwrap_or_else(|| media::OCI_MANIFEST.into());
        let digest_out = format!("sha256:{}", nydus_core::digest::sha256(&manifest).to_hex());
        let platform_s = platform.as_ref().map(crate::hooks::platform_name);
        let pushed = PushedManifest {
            platform: platform_s.clone(),
            digest: digest_out.clone(),
            source_digest: digest.to_string(),
            blobs: layers
                .blobs
                .iter()
                .map(|b| format!("sha256:{}", b.digest_hex))
                .collect(),
        };
        self.tell(Progress::ManifestReady {
            platform: platform_s.clone(),
            digest: digest_out.clone(),
        });
        // Everything but the manifest is in the target: the plugins may still say no.
        let event = match &self.hooks {
            None => None,
            Some(h) => {
                let config = serde_json::from_slice(&img.config)?;
                let event = h.event(&img.manifest, config, &digest_out, platform_s)?;
                let boot = dir.join("image.boot");
                h.run(event.clone(), boot.clone()).await?;
                Some((event, boot))
            }
        };
        Ok(Converted {
            pushed,
            event,
            metrics: json!({
                "source_manifest": digest,
                "nydus_manifest": digest_out,
                "platform": platform.as_ref().map(|p| format!("{}/{}", p.os, p.architecture)),
                "bootstrap_layer": boot.digest,
                "bootstrap_layer_size": boot.gz.len(),
                "layers": layers.metrics,
            }),
            manifest,
            media_type,
            digest: digest_out,
            platform,
        })
    }

    /// Pushes the converted manifests by digest and an index naming them (and, with
    /// `--merge-platform`, the source manifests) under the target tag.
    pub(super) async fn push_index(
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
        let c = Copier {
            src: &self.src,
            dst: &self.dst,
            scratch: &self.scratch,
            backend: None,
            hooks: None,
            hooked: Default::default(),
        };
        c.copy_manifest(&d.digest, None).await.map(|_| ())
    }
}

pub(super) fn index_type(index: &Index, fetched_mt: &str, oci: bool) -> String {
    if oci {
        return media::OCI_INDEX.into();
    }
    index
        .media_type
        .clone()
        .unwrap_or_else(|| fetched_mt.to_string())
}
