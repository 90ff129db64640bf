//! `nydusify check --target REF`: rules 1 and 2 of `oci-nydus-image.md` §8 against a
//! registry. The manifest (an index is resolved by platform, preferring the Nydus entry),
//! config and bootstrap layer are fetched (verified by digest) and written to `--work-dir`;
//! the merged bootstrap is checked in process, and every blob it names must be a layer.

use anyhow::{anyhow, bail, Context, Result};
use nydus_core::oci::bootstrap_layer::extract_bootstrap;
use nydus_core::oci::check::{check_bootstrap_blobs, check_manifest, compare_configs, is_nydus};
use nydus_core::oci::manifest::{parse_document, Document, Manifest, Platform};
use nydus_core::oci::reference::Reference;
use nydus_core::rafs::Rafs;
use nydus_core::report::Report;

use super::{host_platform, is_nydus_entry, registry_for, CheckArgs};
use crate::registry::Registry;
use nydus_host_storage::atomic::write_file;

/// Largest bootstrap layer fetched into memory.
const MAX_BOOTSTRAP_LAYER: usize = 1 << 30;

pub fn run(a: CheckArgs) -> Result<()> {
    let target = Reference::parse(&a.target).map_err(|e| anyhow!(e))?;
    let want = match &a.platform {
        Some(p) => Platform::parse(p)
            .with_context(|| format!("invalid --platform {p:?}: expected os/arch[/variant]"))?,
        None => host_platform(),
    };
    let reg = registry_for(
        &target.host,
        a.target_insecure,
        a.plain_http,
        3,
        std::time::Duration::from_millis(500),
        0,
    )?;
    std::fs::create_dir_all(&a.work_dir)
        .with_context(|| format!("creating {}", a.work_dir.display()))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let reg = std::sync::Arc::new(reg);
    let report = rt.block_on(check(&reg, &target, &want, &a))?;
    for f in &report.findings {
        eprintln!("{}: {f}", a.target);
    }
    if !report.is_ok() {
        bail!("{}: {} problem(s) found", a.target, report.errors());
    }
    println!(
        "{}: the Nydus image passes the manifest, bootstrap{} checks",
        a.target,
        if a.source.is_some() {
            ", config and filesystem"
        } else {
            ""
        }
    );
    Ok(())
}

async fn check(
    reg: &std::sync::Arc<Registry>,
    target: &Reference,
    want: &Platform,
    a: &CheckArgs,
) -> Result<Report> {
    let repo = &target.repository;
    let (mt, bytes, _) = reg.get_manifest(repo, target.target()).await?;
    let manifest: Manifest =
        match parse_document(Some(&mt), &bytes).map_err(|e| anyhow!("{}: {e}", a.target))? {
            Document::Manifest(m) => *m,
            Document::Index(index) => {
                let nydus: Vec<_> = index
                    .manifests
                    .iter()
                    .filter(|d| is_nydus_entry(d))
                    .collect();
                if a.multi_platform && (nydus.is_empty() || nydus.len() == index.manifests.len()) {
                    bail!(
                        "{}: --multi-platform needs an index with both OCI and Nydus manifests",
                        a.target
                    );
                }
                let pick = index
                    .manifests
                    .iter()
                    .filter(|d| d.platform.as_ref().is_some_and(|p| p.matches(want)))
                    .max_by_key(|d| is_nydus_entry(d))
                    .with_context(|| {
                        format!(
                            "{}: the index has no manifest for {}/{}",
                            a.target, want.os, want.architecture
                        )
                    })?;
                let (mt, bytes, _) = reg.get_manifest(repo, &pick.digest).await?;
                match parse_document(Some(&mt), &bytes).map_err(|e| anyhow!("{}: {e}", a.target))? {
                    Document::Manifest(m) => *m,
                    Document::Index(_) => bail!("{}: an index inside an index", a.target),
                }
            }
        };
    if a.multi_platform && !matches!(parse_document(Some(&mt), &bytes), Ok(Document::Index(_))) {
        bail!(
            "{}: --multi-platform needs an index, the target is a single manifest",
            a.target
        );
    }
    let out = |name: &str, data: &[u8]| write_file(&a.work_dir.join(name), data);
    out(
        "nydus_manifest.json",
        &serde_json::to_vec_pretty(&manifest)?,
    )?;
    let config_bytes = reg.pull_blob_bytes(repo, &manifest.config.digest).await?;
    out("nydus_config.json", &config_bytes)?;
    let config: serde_json::Value = serde_json::from_slice(&config_bytes)
        .with_context(|| format!("{}: the image config is not JSON", a.target))?;

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
    let layer = manifest.layers.last().expect("is_nydus");
    let mut gz = Vec::new();
    reg.pull_blob(repo, &layer.digest, &mut gz).await?;
    let boot = extract_bootstrap(&gz, MAX_BOOTSTRAP_LAYER)
        .map_err(|e| anyhow!("{}: bootstrap layer {}: {e}", a.target, layer.digest))?;
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
    let backend = super::backend_dir(
        a.target_backend_type.as_deref(),
        a.target_backend_config.as_deref(),
        a.target_backend_config_file.as_deref(),
        "--target-backend",
    )?;
    match &backend {
        // Blobs in a storage backend: the manifest lists none; each must be there.
        Some(d) => {
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
    if let Some(source) = &a.source {
        if report.is_ok() {
            compare_with_source(
                reg,
                target,
                source,
                want,
                a,
                &config,
                boot,
                backend.as_deref(),
                &mut report,
            )
            .await?;
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
#[allow(clippy::too_many_arguments)]
async fn compare_with_source(
    reg: &std::sync::Arc<Registry>,
    target: &Reference,
    source: &str,
    want: &Platform,
    a: &CheckArgs,
    nydus_config: &serde_json::Value,
    boot: Vec<u8>,
    backend: Option<&std::path::Path>,
    report: &mut Report,
) -> Result<()> {
    let sref = Reference::parse(source).map_err(|e| anyhow!("--source: {e}"))?;
    let src = std::sync::Arc::new(registry_for(
        &sref.host,
        a.source_insecure,
        a.plain_http,
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
    let out = |name: &str, data: &[u8]| write_file(&a.work_dir.join(name), data);
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
    let scratch = tempfile::Builder::new()
        .prefix("nydus-blobs-")
        .tempdir_in(&a.work_dir)
        .with_context(|| format!("creating a directory in {}", a.work_dir.display()))?;
    let blobs = match backend {
        Some(d) => super::fscheck::BlobsFrom::Dir(d),
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
    crate::log::info(&format!(
        "compared {} paths of {source} with {}: {} difference(s)",
        view.files.len(),
        a.target,
        diffs.len()
    ));
    for d in diffs {
        report.error("filesystem", d);
    }
    Ok(())
}
