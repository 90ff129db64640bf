//! Moving blobs and manifests between stores, whatever they are: a blob the target has is
//! skipped, one in another repository of the same registry is mounted, the rest stream
//! through a scratch file (bounded memory, digest verified on the way in).

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use nydus_core::oci::manifest::{parse_document, Document};

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
}

impl Copier<'_> {
    /// Copies the manifest `digest` with its config and layers; stores it under `tag` (or its
    /// digest). Returns its digest.
    pub async fn copy_manifest(&self, digest: &str, tag: Option<&str>) -> Result<String> {
        let (mt, bytes, digest) = self.src.get_manifest(digest).await?;
        let m = match parse_document(Some(&mt), &bytes).map_err(|e| anyhow!("{digest}: {e}"))? {
            Document::Manifest(m) => m,
            Document::Index(_) => bail!(
                "{}: {digest}: an index inside an index",
                self.src.describe()
            ),
        };
        for b in std::iter::once(&m.config).chain(m.layers.iter()) {
            copy_blob(self.src, self.dst, &b.digest, self.scratch).await?;
        }
        self.dst
            .put_manifest(tag.unwrap_or(&digest), &mt, &bytes)
            .await
    }
}
