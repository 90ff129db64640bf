//! `nydusify check`: rules 1 and 2 of `oci-nydus-image.md` §8 against a registry. The
//! manifest (an index is resolved by platform, preferring the Nydus entry), config and
//! bootstrap layer are fetched (verified by digest) and written to the work directory; the
//! merged bootstrap is checked in process, and every blob it names must be a layer (or, with
//! a backend, in the backend). With a source image, rule 3 and the config comparison
//! ([`crate::fscheck`]).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use nydus_core::oci::check::{check_bootstrap_blobs, check_manifest, compare_configs, is_nydus};
use nydus_core::oci::manifest::{parse_document, Document, Platform};
use nydus_core::oci::reference::Reference;
use nydus_core::rafs::Rafs;
use nydus_core::read::Filesystem;
use nydus_core::report::Report;
use nydus_host_registry::Registry;
use nydus_host_storage::atomic::write_file;

use crate::{is_nydus_entry, registry_for};

/// An image reference and how the user wrote it (for messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    pub reference: Reference,
    pub shown: String,
}

/// What to check (validated).
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// The Nydus image.
    pub target: ImageRef,
    /// The source OCI image: enables the config and filesystem comparison.
    pub source: Option<ImageRef>,
    pub source_insecure: bool,
    pub target_insecure: bool,
    /// Speak plain HTTP to the source registry.
    pub source_plain_http: bool,
    /// Speak plain HTTP to the target registry.
    pub target_plain_http: bool,
    /// The manifest to check in an index.
    pub platform: Platform,
    /// Require an index holding both OCI and Nydus manifests.
    pub multi_platform: bool,
    /// The backend holding the Nydus blobs (not the registry).
    pub backend: Option<CheckBackend>,
    /// Where the fetched manifests, config and bootstrap are written.
    pub work_dir: PathBuf,
}

/// Checks per `o`; every finding is in the report.
/// Where `check` finds the Nydus blobs when they are not in the registry.
#[derive(Debug, Clone)]
pub enum CheckBackend {
    /// A localfs directory: each blob's whole digest is checked.
    Dir(PathBuf),
    /// S3, OSS or another repository: blobs opened (HEAD) and, compared with a source, every
    /// chunk read by range and verified.
    Remote(Arc<dyn nydus_host_storage::local::Backend>),
}

pub fn check(o: &CheckOptions) -> Result<Report> {
    let target = &o.target.reference;
    let reg = registry_for(
        &target.host,
        o.target_insecure,
        o.target_plain_http,
        3,
        std::time::Duration::from_millis(500),
        0,
    )?;
    std::fs::create_dir_all(&o.work_dir)
        .with_context(|| format!("creating {}", o.work_dir.display()))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let reg = Arc::new(reg);
    rt.block_on(check_with(&reg, o))
}

async fn check_with(reg: &Arc<Registry>, o: &CheckOptions) -> Result<Report> {
    let (target, want) = (&o.target.reference, &o.platform);
    let repo = &target.repository;
    let (manifest, index) =
        crate::resolve::manifest_for(reg, repo, target.target(), want, &o.target.shown).await?;
    if o.multi_platform {
        let Some(index) = &index else {
            bail!(
                "{}: --multi-platform needs an index, the target is a single manifest",
                o.target.shown
            );
        };
        let nydus = index.manifests.iter().filter(|d| is_nydus_entry(d)).count();
        if nydus == 0 || nydus == index.manifests.len() {
            bail!(
                "{}: --multi-platform needs an index with both OCI and Nydus manifests",
                o.target.shown
            );
        }
    }
    let out = |name: &str, data: &[u8]| write_file(&o.work_dir.join(name), data);
    out(
        "nydus_manifest.json",
        &serde_json::to_vec_pretty(&manifest)?,
    )?;
    let config_bytes = reg.pull_blob_bytes(repo, &manifest.config.digest).await?;
    out("nydus_config.json", &config_bytes)?;
    let config: serde_json::Value = serde_json::from_slice(&config_bytes)
        .with_context(|| format!("{}: the image config is not JSON", o.target.shown))?;

    // Rule 1: the manifest.
    let mut report = check_manifest(&manifest, &config);
    if !is_nydus(&manifest) {
        report.error(
            "manifest",
            "not a Nydus image: the last layer is not annotated as the bootstrap layer",
        );
        return Ok(report);
    }
    // Rule 2: the bootstrap.
    let boot = crate::resolve::bootstrap_of(reg, repo, &manifest, &o.target.shown).await?;
    out("nydus_bootstrap", &boot)?;
    let rafs = match Rafs::open(boot.clone()) {
        Ok(r) => r,
        Err(e) => {
            report.error("bootstrap", format!("not a valid RAFS bootstrap: {e}"));
            return Ok(report);
        }
    };
    let fs = rafs.check();
    let ids: Vec<String> = rafs.blobs().iter().map(|b| b.blob_id.clone()).collect();
    out(
        "nydus_output.json",
        &serde_json::to_vec_pretty(&serde_json::json!({
            "fs_version": rafs.version().to_string(),
            "compressor": rafs.compressor().name(),
            "blobs": ids,
            "findings": fs.findings,
            "inodes": fs.inodes,
            "chunks": fs.chunks,
        }))?,
    )?;
    report.findings.extend(fs.findings.into_iter().map(|mut f| {
        f.location = format!("bootstrap: {}", f.location);
        f
    }));
    match &o.backend {
        // Blobs in a remote backend: the manifest lists none; each must be there.
        Some(CheckBackend::Remote(b)) => {
            for (i, id) in ids.iter().enumerate() {
                let (b, id2, n) = (b.clone(), id.clone(), ids.len());
                let opened = tokio::task::spawn_blocking(move || b.open(&id2, i as u32, n))
                    .await
                    .context("the backend task failed")?;
                if let Err(e) = opened {
                    report.error(
                        "bootstrap",
                        format!("blob {id} of the bootstrap is not readable in the backend: {e}"),
                    );
                }
            }
        }
        // Blobs in a storage backend: the manifest lists none; each must be there.
        Some(CheckBackend::Dir(d)) => {
            for id in &ids {
                if !d.join(id).is_file() {
                    report.error(
                        "bootstrap",
                        format!(
                            "blob {id} of the bootstrap is not in the backend {}",
                            d.display()
                        ),
                    );
                }
            }
        }
        None => {
            report
                .findings
                .extend(check_bootstrap_blobs(&manifest, &ids).findings);
            // Runtimes fetch by descriptor: its size must be the blob's.
            for l in &manifest.layers {
                match reg.blob_size(repo, &l.digest).await? {
                    Some(n) if n == l.size => {}
                    Some(n) => report.error(
                        "manifest",
                        format!(
                            "layer {}: the descriptor says {} bytes, the registry has {n}",
                            l.digest, l.size
                        ),
                    ),
                    None => report.error(
                        "manifest",
                        format!("layer {} is not in the registry", l.digest),
                    ),
                }
            }
        }
    }
    if let Some(source) = &o.source {
        if report.is_ok() {
            compare_with_source(reg, o, source, &config, boot, &mut report).await?;
        } else {
            report.error(
                "filesystem",
                "not compared with the source: the Nydus image failed the checks above",
            );
        }
    }
    Ok(report)
}

/// Rule 3 (and the config comparison of rule 1): the source image's config and merged layers
/// against the Nydus image's.
async fn compare_with_source(
    reg: &Arc<Registry>,
    o: &CheckOptions,
    source: &ImageRef,
    nydus_config: &serde_json::Value,
    boot: Vec<u8>,
    report: &mut Report,
) -> Result<()> {
    let (target, want, backend) = (&o.target.reference, &o.platform, o.backend.as_ref());
    let (sref, source) = (&source.reference, &source.shown);
    let src = Arc::new(registry_for(
        &sref.host,
        o.source_insecure,
        o.source_plain_http,
        3,
        std::time::Duration::from_millis(500),
        0,
    )?);
    let (mt, bytes, _) = src.get_manifest(&sref.repository, sref.target()).await?;
    let manifest = match parse_document(Some(&mt), &bytes).map_err(|e| anyhow!("{source}: {e}"))? {
        Document::Manifest(m) => *m,
        Document::Index(index) => {
            let pick = index
                .manifests
                .iter()
                .filter(|d| !is_nydus_entry(d))
                .find(|d| d.platform.as_ref().is_some_and(|p| p.matches(want)))
                .with_context(|| {
                    format!(
                        "{source}: the index has no OCI manifest for {}/{}",
                        want.os, want.architecture
                    )
                })?;
            let (mt, bytes, _) = src.get_manifest(&sref.repository, &pick.digest).await?;
            match parse_document(Some(&mt), &bytes).map_err(|e| anyhow!("{source}: {e}"))? {
                Document::Manifest(m) => *m,
                Document::Index(_) => bail!("{source}: an index inside an index"),
            }
        }
    };
    let out = |name: &str, data: &[u8]| write_file(&o.work_dir.join(name), data);
    out("oci_manifest.json", &serde_json::to_vec_pretty(&manifest)?)?;
    let config_bytes = src
        .pull_blob_bytes(&sref.repository, &manifest.config.digest)
        .await?;
    out("oci_config.json", &config_bytes)?;
    let config: serde_json::Value = serde_json::from_slice(&config_bytes)
        .with_context(|| format!("{source}: the image config is not JSON"))?;
    report
        .findings
        .extend(compare_configs(&config, nydus_config).findings);
    if is_nydus(&manifest) {
        report.error(
            "source",
            "the source image is a Nydus image, not an OCI image",
        );
        return Ok(());
    }
    let view = super::fscheck::oci_view(src, &sref.repository, &manifest).await?;
    let scratch = nydus_host_storage::atomic::Scratch::new_in(&o.work_dir, "nydus-blobs-")?;
    let blobs = match backend {
        Some(CheckBackend::Dir(d)) => super::fscheck::BlobsFrom::Dir(d),
        Some(CheckBackend::Remote(b)) => super::fscheck::BlobsFrom::Backend(b.clone()),
        None => super::fscheck::BlobsFrom::Registry(reg, &target.repository, scratch.path()),
    };
    let nydus = match super::fscheck::nydus_files(blobs, boot).await {
        Ok(f) => f,
        Err(e) => {
            report.error("filesystem", format!("{e:#}"));
            return Ok(());
        }
    };
    for p in nydus.problems {
        report.error("data", p);
    }
    let files = nydus.files;
    let listing: Vec<serde_json::Value> = files
        .iter()
        .map(|(p, m)| {
            serde_json::json!({
                "path": format!("/{}", String::from_utf8_lossy(p)),
                "type": format!("{:?}", m.file_type),
                "mode": format!("{:o}", m.mode),
                "uid": m.uid,
                "gid": m.gid,
                "size": m.size,
                "sha256": m.digest.map(|d| nydus_core::digest::Digest(d).to_hex()),
            })
        })
        .collect();
    out(
        "nydus_bootstrap_debug.json",
        &serde_json::to_vec_pretty(&listing)?,
    )?;
    let diffs = nydus_core::oci::fsview::compare(&view, &files);
    log::info!(
        "compared {} paths of {source} with {}: {} difference(s)",
        view.files.len(),
        o.target.shown,
        diffs.len()
    );
    for d in diffs {
        report.error("filesystem", d);
    }
    Ok(())
}
