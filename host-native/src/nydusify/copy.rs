//! `nydusify copy --source REF --target REF`: an image (OCI or Nydus, a manifest or an index)
//! from one registry to another, or to / from an OCI image-layout tar (`file://<path>`), blob
//! by blob. Blobs the target has are skipped, blobs in
//! another repository of the same registry are mounted, the rest stream through a scratch file
//! (bounded memory, digest verified on the way in).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use nydus_core::oci::manifest::{parse_document, Descriptor, Document, Platform};
use nydus_core::oci::reference::Reference;

use super::convert::{parse_byte_size, parse_duration};
use super::store::{ArchiveIn, LayoutOut, Store};
use super::{host_platform, is_nydus_entry, registry_for};

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

pub fn run(a: CopyArgs) -> Result<()> {
    if a.source_backend_type.is_some() {
        bail!("nydusify copy --source-backend-type is not supported by this nydusify yet");
    }
    let want = match &a.platform {
        Some(p) => Platform::parse(p)
            .with_context(|| format!("invalid --platform {p:?}: expected os/arch[/variant]"))?,
        None => host_platform(),
    };
    let delay = parse_duration(&a.push_retry_delay)
        .with_context(|| format!("invalid --push-retry-delay {:?}", a.push_retry_delay))?;
    let chunk = parse_byte_size(&a.push_chunk_size)
        .with_context(|| format!("invalid --push-chunk-size {:?}", a.push_chunk_size))?;
    std::fs::create_dir_all(&a.work_dir)
        .with_context(|| format!("creating the work directory {}", a.work_dir.display()))?;
    let scratch = tempfile::Builder::new()
        .prefix("nydusify-copy-")
        .tempdir_in(&a.work_dir)
        .with_context(|| format!("creating a directory in {}", a.work_dir.display()))?;
    // `file://<path>` (relative or absolute) is an OCI image-layout tar.
    let (src, src_ref) = match a.source.strip_prefix("file://") {
        Some(p) => (
            Store::Archive(Arc::new(ArchiveIn::open(Path::new(p))?)),
            "latest".to_string(),
        ),
        None => {
            let r = Reference::parse(&a.source).map_err(|e| anyhow!("--source: {e}"))?;
            let reg = registry_for(
                &r.host,
                a.source_insecure,
                a.plain_http,
                a.push_retry_count,
                delay,
                0,
            )?;
            (Store::registry(reg, &r.repository), r.target().to_string())
        }
    };
    let (dst, tag) = match a.target.strip_prefix("file://") {
        Some(p) => (
            Store::Layout(Arc::new(LayoutOut::create(scratch.path(), Path::new(p))?)),
            if src_ref.starts_with("sha256:") {
                "latest".to_string()
            } else {
                src_ref.clone()
            },
        ),
        None => {
            let r = Reference::parse(&a.target).map_err(|e| anyhow!("--target: {e}"))?;
            let reg = registry_for(
                &r.host,
                a.target_insecure,
                a.plain_http,
                a.push_retry_count,
                delay,
                chunk,
            )?;
            (Store::registry(reg, &r.repository), r.target().to_string())
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let digest = rt.block_on(async {
        let c = Copier {
            src: &src,
            dst: &dst,
            scratch: scratch.path(),
        };
        let (mt, bytes, digest) = src.get_manifest(&src_ref).await?;
        match parse_document(Some(&mt), &bytes).map_err(|e| anyhow!("{}: {e}", a.source))? {
            Document::Manifest(_) => c.copy_manifest(&digest, Some(&tag)).await,
            Document::Index(index) if a.all_platforms => {
                for d in &index.manifests {
                    c.copy_manifest(&d.digest, None).await?;
                }
                dst.put_manifest(&tag, &mt, &bytes).await
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
                c.copy_manifest(&pick.digest, Some(&tag)).await
            }
        }
    })?;
    dst.finish()?;
    crate::log::info(&format!("copied {} to {} ({digest})", a.source, a.target));
    Ok(())
}

pub(crate) struct Copier<'a> {
    pub src: &'a Store,
    pub dst: &'a Store,
    pub scratch: &'a Path,
}

impl Copier<'_> {
    /// Copies the manifest `digest` with its config and layers; stores it under `tag` (or its
    /// digest). Returns its digest.
    pub(crate) async fn copy_manifest(&self, digest: &str, tag: Option<&str>) -> Result<String> {
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
