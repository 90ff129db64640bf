//! `nydusify copy --source REF --target REF`: an image (OCI or Nydus, a manifest or an index)
//! from one registry to another, blob by blob. Blobs the target has are skipped, blobs in
//! another repository of the same registry are mounted, the rest stream through a scratch file
//! (bounded memory, digest verified on the way in).

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use nydus_core::oci::manifest::{parse_document, Descriptor, Document, Platform};
use nydus_core::oci::reference::Reference;

use super::convert::{parse_byte_size, parse_duration};
use super::{host_platform, is_nydus_entry, registry_for};
use crate::registry::Registry;

#[derive(Debug, Args)]
pub struct CopyArgs {
    /// Source image reference.
    #[arg(long = "source", env = "SOURCE")]
    pub source: String,
    /// Target image reference.
    #[arg(long = "target", env = "TARGET")]
    pub target: String,
    #[arg(long = "source-insecure")]
    pub source_insecure: bool,
    #[arg(long = "target-insecure")]
    pub target_insecure: bool,
    /// Speak plain HTTP to the registries.
    #[arg(long = "plain-http")]
    pub plain_http: bool,
    /// Platform to copy out of an index (os/arch[/variant]; default linux/<host arch>).
    #[arg(long = "platform")]
    pub platform: Option<String>,
    /// Copy the whole index with every platform.
    #[arg(long = "all-platforms")]
    pub all_platforms: bool,
    /// Push blobs in chunks of this size (`0MB`: one PUT).
    #[arg(long = "push-chunk-size", default_value = "0MB")]
    pub push_chunk_size: String,
    #[arg(long = "push-retry-count", default_value_t = 3)]
    pub push_retry_count: u32,
    #[arg(long = "push-retry-delay", default_value = "5s")]
    pub push_retry_delay: String,
    /// Scratch space (a fresh directory inside it is used and removed).
    #[arg(long = "work-dir", default_value = "./tmp")]
    pub work_dir: PathBuf,
    /// Accepted for compatibility.
    #[arg(long = "nydus-image")]
    pub nydus_image: Option<PathBuf>,
    #[arg(long = "source-backend-type")]
    pub source_backend_type: Option<String>,
}

/// Copies one blob unless the target repository has it.
pub async fn copy_blob(
    src: &Registry,
    srepo: &str,
    dst: &Registry,
    drepo: &str,
    digest: &str,
    scratch: &Path,
) -> Result<()> {
    if dst.blob_size(drepo, digest).await?.is_some() {
        return Ok(());
    }
    if src.host() == dst.host() && srepo != drepo && dst.mount_blob(drepo, srepo, digest).await? {
        return Ok(());
    }
    let tmp = tempfile::Builder::new()
        .prefix("blob-")
        .tempfile_in(scratch)
        .with_context(|| format!("creating a scratch file in {}", scratch.display()))?;
    let mut f = tokio::fs::File::create(tmp.path())
        .await
        .with_context(|| format!("opening {}", tmp.path().display()))?;
    src.pull_blob(srepo, digest, &mut f).await?;
    drop(f);
    dst.push_blob_file(drepo, digest, tmp.path()).await
}

pub fn run(a: CopyArgs) -> Result<()> {
    if a.source_backend_type.is_some() {
        bail!("nydusify copy --source-backend-type is not supported by this nydusify yet");
    }
    for r in [&a.source, &a.target] {
        if r.starts_with("file://") {
            bail!("nydusify copy with file:// tarballs is not supported by this nydusify yet");
        }
    }
    let source = Reference::parse(&a.source).map_err(|e| anyhow!("--source: {e}"))?;
    let target = Reference::parse(&a.target).map_err(|e| anyhow!("--target: {e}"))?;
    let want = match &a.platform {
        Some(p) => Platform::parse(p)
            .with_context(|| format!("invalid --platform {p:?}: expected os/arch[/variant]"))?,
        None => host_platform(),
    };
    let delay = parse_duration(&a.push_retry_delay)
        .with_context(|| format!("invalid --push-retry-delay {:?}", a.push_retry_delay))?;
    let chunk = parse_byte_size(&a.push_chunk_size)
        .with_context(|| format!("invalid --push-chunk-size {:?}", a.push_chunk_size))?;
    let src = registry_for(
        &source.host,
        a.source_insecure,
        a.plain_http,
        a.push_retry_count,
        delay,
        0,
    )?;
    let dst = registry_for(
        &target.host,
        a.target_insecure,
        a.plain_http,
        a.push_retry_count,
        delay,
        chunk,
    )?;
    std::fs::create_dir_all(&a.work_dir)
        .with_context(|| format!("creating the work directory {}", a.work_dir.display()))?;
    let scratch = tempfile::Builder::new()
        .prefix("nydusify-copy-")
        .tempdir_in(&a.work_dir)
        .with_context(|| format!("creating a directory in {}", a.work_dir.display()))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let digest = rt.block_on(async {
        let c = Copier {
            src: &src,
            srepo: &source.repository,
            dst: &dst,
            drepo: &target.repository,
            scratch: scratch.path(),
        };
        let (mt, bytes, digest) = src
            .get_manifest(&source.repository, source.target())
            .await?;
        match parse_document(Some(&mt), &bytes).map_err(|e| anyhow!("{}: {e}", a.source))? {
            Document::Manifest(_) => c.copy_manifest(&digest, Some(target.target())).await,
            Document::Index(index) if a.all_platforms => {
                for d in &index.manifests {
                    c.copy_manifest(&d.digest, None).await?;
                }
                dst.put_manifest(&target.repository, target.target(), &mt, &bytes)
                    .await
            }
            Document::Index(index) => {
                let pick: &Descriptor = index
                    .manifests
                    .iter()
                    .filter(|d| d.platform.as_ref().is_some_and(|p| p.matches(&want)))
                    .min_by_key(|d| is_nydus_entry(d))
                    .with_context(|| {
                        format!(
                            "{}: the index has no manifest for {}/{}",
                            a.source, want.os, want.architecture
                        )
                    })?;
                c.copy_manifest(&pick.digest, Some(target.target())).await
            }
        }
    })?;
    crate::log::info(&format!("copied {} to {} ({digest})", a.source, a.target));
    Ok(())
}

pub(crate) struct Copier<'a> {
    pub src: &'a Registry,
    pub srepo: &'a str,
    pub dst: &'a Registry,
    pub drepo: &'a str,
    pub scratch: &'a Path,
}

impl Copier<'_> {
    /// Copies the manifest `digest` with its config and layers; pushes it under `tag` (or its
    /// digest). Returns its digest.
    pub(crate) async fn copy_manifest(&self, digest: &str, tag: Option<&str>) -> Result<String> {
        let (mt, bytes, digest) = self.src.get_manifest(self.srepo, digest).await?;
        let m = match parse_document(Some(&mt), &bytes).map_err(|e| anyhow!("{digest}: {e}"))? {
            Document::Manifest(m) => m,
            Document::Index(_) => bail!("{}: {digest}: an index inside an index", self.srepo),
        };
        for b in std::iter::once(&m.config).chain(m.layers.iter()) {
            copy_blob(
                self.src,
                self.srepo,
                self.dst,
                self.drepo,
                &b.digest,
                self.scratch,
            )
            .await?;
        }
        self.dst
            .put_manifest(self.drepo, tag.unwrap_or(&digest), &mt, &bytes)
            .await
    }
}
