//! Moving blobs and manifests between stores, whatever they are: a blob the target has is
//! skipped, one in another repository of the same registry is mounted, the rest stream
//! through a scratch file (bounded memory, digest verified on the way in).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, bail, Context, Result};
use nydus_core::oci::bootstrap_layer;
use nydus_core::oci::check::is_nydus;
use nydus_core::oci::manifest::{parse_document, Document, Manifest, Platform};
use nydus_core::plugin::HookEvent;
use nydus_host_storage::local::Backend;

use crate::hooks::Hooks;
use crate::store::Store;

/// Copies one blob unless the target has it: mounted across repositories of one registry,
/// otherwise streamed through a scratch file (verified on the way in).
pub async fn copy_blob(src: &Store, dst: &Store, digest: &str, scratch: &Path) -> Result<()> {
    if dst.has_blob(digest).await? {
        return Ok(());
    }
    if let (
        Store::Registry {
            reg: s,
            repo: srepo,
        },
        Store::Registry {
            reg: d,
            repo: drepo,
        },
    ) = (src, dst)
    {
        if s.host() == d.host() && srepo != drepo && d.mount_blob(drepo, srepo, digest).await? {
            return Ok(());
        }
    }
    let tmp = tempfile::Builder::new()
        .prefix("blob-")
        .tempfile_in(scratch)
        .with_context(|| format!("creating a scratch file in {}", scratch.display()))?;
    src.blob_to_file(digest, tmp.path()).await?;
    dst.push_blob_file(digest, tmp.path()).await
}

/// Copies manifests with everything they name from one store to another.
#[derive(Debug)]
pub struct Copier<'a> {
    pub src: &'a Store,
    pub dst: &'a Store,
    pub scratch: &'a Path,
    /// Where the blobs of Nydus images are when their manifests do not list them (a storage
    /// backend): fetched and added as layers ([`crate::external`]).
    pub backend: Option<&'a Arc<dyn Backend>>,
    /// Hook plugins run before each Nydus manifest is stored; what they saw is kept in
    /// `hooked` for the after-push hooks.
    pub hooks: Option<&'a Hooks>,
    pub hooked: Mutex<Vec<(HookEvent, PathBuf)>>,
}

impl Copier<'_> {
    /// Copies the manifest `digest` with its config and layers; stores it under `tag` (or its
    /// digest). Returns its digest.
    pub async fn copy_manifest(&self, digest: &str, tag: Option<&str>) -> Result<String> {
        Ok(self.copy_manifest_sized(digest, tag).await?.0)
    }

    /// [`Copier::copy_manifest`], returning the digest and size of the manifest stored (which
    /// differs from the source's when blobs came from the backend).
    pub async fn copy_manifest_sized(
        &self,
        digest: &str,
        tag: Option<&str>,
    ) -> Result<(String, u64)> {
        let (mt, bytes, digest) = self.src.get_manifest(digest).await?;
        let m = match parse_document(Some(&mt), &bytes).map_err(|e| anyhow!("{digest}: {e}"))? {
            Document::Manifest(m) => m,
            Document::Index(_) => bail!(
                "{}: {digest}: an index inside an index",
                self.src.describe()
            ),
        };
        let rewritten = match self.backend {
            Some(b) if is_nydus(&m) => {
                crate::external::attach_backend_blobs(self.src, self.dst, b, &m, self.scratch)
                    .await
                    .with_context(|| format!("{}: {digest}", self.src.describe()))?
            }
            _ => None,
        };
        // The source's config is not needed when a new one replaces it.
        let config = Some(&m.config).filter(|_| rewritten.is_none());
        for b in config.into_iter().chain(m.layers.iter()) {
            copy_blob(self.src, self.dst, &b.digest, self.scratch).await?;
        }
        let (bytes, digest) = match rewritten {
            Some(m) => {
                let b = serde_json::to_vec(&m).context("encoding the manifest")?;
                let d = format!("sha256:{}", nydus_core::digest::sha256(&b).to_hex());
                (b, d)
            }
            None => (bytes, digest),
        };
        if let Some(h) = self.hooks {
            let stored: Manifest = serde_json::from_slice(&bytes).context("the manifest")?;
            if is_nydus(&stored) {
                self.before_push(h, &stored, &digest).await?;
            } else {
                log::info!("{digest} is not a Nydus manifest: no hook runs for it");
            }
        }
        let d = self
            .dst
            .put_manifest(tag.unwrap_or(&digest), &mt, &bytes)
            .await?;
        Ok((d, bytes.len() as u64))
    }

    /// The `before_push_manifest` hooks of the Nydus manifest `m` (its blobs are in the
    /// target): its config and bootstrap read back from where they were copied from.
    async fn before_push(&self, h: &Hooks, m: &Manifest, digest: &str) -> Result<()> {
        let from = |d: &str| {
            let d = d.to_string();
            async move {
                match self.dst {
                    // An archive being written cannot be read back; the source has the bytes
                    // (a config rewritten on the way was pushed to the target, not there).
                    Store::Layout(_) => self.src.blob_bytes(&d).await,
                    _ => self.dst.blob_bytes(&d).await,
                }
            }
        };
        let config: serde_json::Value = serde_json::from_slice(&from(&m.config.digest).await?)
            .with_context(|| format!("the config of {digest} is not JSON"))?;
        let platform = match (config["os"].as_str(), config["architecture"].as_str()) {
            (Some(os), Some(arch)) => Some(crate::hooks::platform_name(&Platform {
                os: os.into(),
                architecture: arch.into(),
                variant: config["variant"].as_str().map(str::to_string),
                ..Default::default()
            })),
            _ => None,
        };
        let layer = m
            .layers
            .last()
            .expect("a Nydus manifest has a bootstrap layer");
        let gz = from(&layer.digest).await?;
        let boot = bootstrap_layer::extract_bootstrap(&gz, 1 << 30)
            .map_err(|e| anyhow!("the bootstrap layer of {digest}: {e}"))?;
        let path = self
            .scratch
            .join(format!("{}.boot", digest.trim_start_matches("sha256:")));
        nydus_host_storage::atomic::write_file(&path, &boot)?;
        let event = h.event(m, config, digest, platform)?;
        h.run(event.clone(), path.clone()).await?;
        self.hooked.lock().expect("hooked").push((event, path));
        Ok(())
    }
}
