//! `nydusify copy`: an image (OCI or Nydus, a manifest or an index) from one registry to
//! another, or to / from an OCI image-layout tar, blob by blob ([`crate::transfer`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use nydus_core::oci::manifest::{parse_document, Descriptor, Document, Platform};
use nydus_core::oci::reference::Reference;
use nydus_host_storage::BackendConfig;

use nydus_core::plugin::HookRunner;

use crate::hooks::Hooks;
use crate::store::{ArchiveIn, LayoutOut, Store};
use crate::transfer::Copier;
use crate::{is_nydus_entry, registry_for};

/// Where an image is read from or written to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A registry repository, by tag or digest.
    Registry(Reference),
    /// An OCI image-layout tar (`file://<path>`).
    Archive(PathBuf),
}

/// What to copy (validated).
#[derive(Debug, Clone)]
pub struct CopyOptions {
    pub source: Location,
    pub target: Location,
    /// How the user named the source, for messages.
    pub source_shown: String,
    pub source_insecure: bool,
    pub target_insecure: bool,
    /// Speak plain HTTP to the source registry.
    pub source_plain_http: bool,
    /// Speak plain HTTP to the target registry.
    pub target_plain_http: bool,
    /// The platform to copy out of an index.
    pub platform: Platform,
    /// Copy the whole index with every platform.
    pub all_platforms: bool,
    pub retries: u32,
    pub retry_delay: Duration,
    /// Push blobs in chunks of this size (0: one PUT).
    pub push_chunk_size: u64,
    /// Scratch space (a fresh directory inside it is used and removed).
    pub work_dir: PathBuf,
    /// Where the blobs of a Nydus source are when its manifests list only the bootstrap
    /// layer (`--source-backend-*`): copied into the target as blob layers.
    pub source_backend: Option<BackendConfig>,
    /// Hook plugins run before each Nydus manifest is stored (a rejection aborts with nothing
    /// tagged) and after the tag is pushed. Manifests that are not Nydus images get none.
    pub hooks: Option<Arc<dyn HookRunner>>,
    /// How the user named the target, for hook events.
    pub target_shown: String,
}

/// Copies per `o`; returns the digest of what the target now holds under the tag.
pub fn copy(o: &CopyOptions) -> Result<String> {
    let scratch = nydus_host_storage::atomic::Scratch::new_in(&o.work_dir, "nydusify-copy-")?;
    let (src, src_ref) = match &o.source {
        Location::Archive(p) => (
            Store::Archive(Arc::new(ArchiveIn::open(p)?)),
            "latest".to_string(),
        ),
        Location::Registry(r) => {
            let reg = registry_for(
                &r.host,
                o.source_insecure,
                o.source_plain_http,
                o.retries,
                o.retry_delay,
                0,
            )?;
            (Store::registry(reg, &r.repository), r.target().to_string())
        }
    };
    let (dst, tag) = match &o.target {
        Location::Archive(p) => (
            Store::Layout(Arc::new(LayoutOut::create(scratch.path(), p)?)),
            if src_ref.starts_with("sha256:") {
                "latest".to_string()
            } else {
                src_ref.clone()
            },
        ),
        Location::Registry(r) => {
            let reg = registry_for(
                &r.host,
                o.target_insecure,
                o.target_plain_http,
                o.retries,
                o.retry_delay,
                o.push_chunk_size,
            )?;
            (Store::registry(reg, &r.repository), r.target().to_string())
        }
    };
    let backend = match &o.source_backend {
        Some(c) => Some(
            nydus_host_storage::open_backend(c)
                .with_context(|| format!("opening the source backend ({})", c.kind()))?,
        ),
        None => None,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let hooks = o
        .hooks
        .clone()
        .filter(|h| !h.is_empty())
        .map(|runner| Hooks {
            runner,
            source_ref: o.source_shown.clone(),
            target_ref: o.target_shown.clone(),
        });
    let c = Copier {
        src: &src,
        dst: &dst,
        scratch: scratch.path(),
        backend: backend.as_ref(),
        hooks: hooks.as_ref(),
        hooked: Default::default(),
    };
    let digest = rt.block_on(async {
        let (mt, bytes, digest) = src.get_manifest(&src_ref).await?;
        match parse_document(Some(&mt), &bytes).map_err(|e| anyhow!("{}: {e}", o.source_shown))? {
            Document::Manifest(_) => c.copy_manifest(&digest, Some(&tag)).await,
            Document::Index(index) if o.all_platforms => {
                let mut changed = Vec::new();
                for d in &index.manifests {
                    let (digest, size) = c.copy_manifest_sized(&d.digest, None).await?;
                    if digest != d.digest {
                        changed.push((d.digest.clone(), digest, size));
                    }
                }
                if changed.is_empty() {
                    dst.put_manifest(&tag, &mt, &bytes).await
                } else {
                    // Manifests that gained blob layers have new digests: the index names them.
                    let bytes = renamed_index(&bytes, &changed)
                        .with_context(|| format!("{}: rewriting the index", o.source_shown))?;
                    dst.put_manifest(&tag, &mt, &bytes).await
                }
            }
            Document::Index(index) => {
                let pick: &Descriptor = index
                    .manifests
                    .iter()
                    .filter(|d| d.platform.as_ref().is_some_and(|p| p.matches(&o.platform)))
                    .min_by_key(|d| is_nydus_entry(d))
                    .with_context(|| {
                        format!(
                            "{}: the index has no manifest for {}/{}",
                            o.source_shown, o.platform.os, o.platform.architecture
                        )
                    })?;
                c.copy_manifest(&pick.digest, Some(&tag)).await
            }
        }
    })?;
    dst.finish()?;
    if let Some(h) = &hooks {
        let before = std::mem::take(&mut *c.hooked.lock().expect("hooked"));
        rt.block_on(h.after_push(before));
    }
    Ok(digest)
}

/// The index `bytes` with the manifests `(old digest, new digest, new size)` renamed; every
/// other field kept as it was.
fn renamed_index(bytes: &[u8], changed: &[(String, String, u64)]) -> Result<Vec<u8>> {
    let mut v: serde_json::Value = serde_json::from_slice(bytes).context("not JSON")?;
    let entries = v
        .get_mut("manifests")
        .and_then(serde_json::Value::as_array_mut)
        .context("no manifests array")?;
    for e in entries {
        let Some(d) = e.get("digest").and_then(|d| d.as_str()) else {
            continue;
        };
        if let Some((_, new, size)) = changed.iter().find(|(old, _, _)| old == d) {
            e["digest"] = serde_json::json!(new);
            e["size"] = serde_json::json!(size);
        }
    }
    serde_json::to_vec(&v).context("encoding the index")
}
