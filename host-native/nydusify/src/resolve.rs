//! An image reference resolved to one manifest: a manifest as is, an index by platform
//! (preferring its Nydus entry when both an OCI and a Nydus manifest match), and a Nydus
//! manifest's bootstrap.

use anyhow::{anyhow, bail, Context, Result};
use nydus_core::oci::bootstrap_layer::extract_bootstrap;
use nydus_core::oci::manifest::{parse_document, Document, Index, Manifest, Platform};
use nydus_host_registry::Registry;

use crate::is_nydus_entry;

/// The manifest of `reference` in `repo` for platform `want`, and the index it was picked
/// from (if it was one). `shown` names the image in errors.
pub async fn manifest_for(
    reg: &Registry,
    repo: &str,
    reference: &str,
    want: &Platform,
    shown: &str,
) -> Result<(Manifest, Option<Index>)> {
    let (mt, bytes, _) = reg.get_manifest(repo, reference).await?;
    match parse_document(Some(&mt), &bytes).map_err(|e| anyhow!("{shown}: {e}"))? {
        Document::Manifest(m) => Ok((*m, None)),
        Document::Index(index) => {
            let pick = index
                .manifests
                .iter()
                .filter(|d| d.platform.as_ref().is_some_and(|p| p.matches(want)))
                .max_by_key(|d| is_nydus_entry(d))
                .with_context(|| {
                    format!(
                        "{shown}: the index has no manifest for {}/{}",
                        want.os, want.architecture
                    )
                })?;
            let (mt, bytes, _) = reg.get_manifest(repo, &pick.digest).await?;
            match parse_document(Some(&mt), &bytes).map_err(|e| anyhow!("{shown}: {e}"))? {
                Document::Manifest(m) => Ok((*m, Some(index))),
                Document::Index(_) => bail!("{shown}: an index inside an index"),
            }
        }
    }
}

/// Largest bootstrap layer pulled into memory.
const MAX_BOOTSTRAP_LAYER: usize = 1 << 30;

/// The bootstrap (`image/image.boot`) of Nydus manifest `m` in `repo`: its last layer, pulled
/// (verified by digest) and extracted.
pub async fn bootstrap_of(
    reg: &Registry,
    repo: &str,
    m: &Manifest,
    shown: &str,
) -> Result<Vec<u8>> {
    let layer = m
        .layers
        .last()
        .with_context(|| format!("{shown}: the manifest has no layers"))?;
    let mut gz = Vec::new();
    reg.pull_blob(repo, &layer.digest, &mut gz).await?;
    extract_bootstrap(&gz, MAX_BOOTSTRAP_LAYER)
        .map_err(|e| anyhow!("{shown}: bootstrap layer {}: {e}", layer.digest))
}
