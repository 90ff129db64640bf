//! `nydusify check --target REF`: rules 1 and 2 of `oci-nydus-image.md` §8 against a
//! registry. The manifest (an index is resolved by platform, preferring the Nydus entry),
//! config and bootstrap layer are fetched (verified by digest) and written to `--work-dir`;
//! the merged bootstrap is checked in process, and every blob it names must be a layer.

use anyhow::{anyhow, bail, Context, Result};
use nydus_core::oci::bootstrap_layer::extract_bootstrap;
use nydus_core::oci::check::{check_bootstrap_blobs, check_manifest, is_nydus};
use nydus_core::oci::manifest::{parse_document, Document, Manifest, Platform};
use nydus_core::oci::reference::Reference;
use nydus_core::rafs::Rafs;
use nydus_core::report::Report;

use super::{host_platform, is_nydus_entry, registry_for, CheckArgs};
use crate::atomic::write_file;
use crate::registry::Registry;

/// Largest bootstrap layer fetched into memory.
const MAX_BOOTSTRAP_LAYER: usize = 1 << 30;

pub fn run(a: CheckArgs) -> Result<()> {
    if a.source.is_some() {
        bail!("nydusify check --source (the filesystem comparison) is not supported by this nydusify yet");
    }
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
    let report = rt.block_on(check(&reg, &target, &want, &a))?;
    for f in &report.findings {
        eprintln!("{}: {f}", a.target);
    }
    if !report.is_ok() {
        bail!("{}: {} problem(s) found", a.target, report.errors());
    }
    println!(
        "{}: the Nydus image passes the manifest and bootstrap checks",
        a.target
    );
    Ok(())
}

async fn check(
    reg: &Registry,
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
    let rafs = match Rafs::open(boot) {
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
    report
        .findings
        .extend(check_bootstrap_blobs(&manifest, &ids).findings);
    Ok(report)
}
