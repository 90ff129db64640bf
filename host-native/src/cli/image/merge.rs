//! `nydus-image merge`: the options checked and turned into a [`MergePlan`], the merge, and
//! `--output-json`.

use anyhow::{bail, Context, Result};
use nydus_core::digest::Digest;
use nydus_core::layer::WhiteoutSpec;
use nydus_host_image::merge::{merge, MergePlan};
use nydus_host_storage::atomic::write_file;
use serde_json::json;

use super::args::{chunk_dict_path, MergeArgs};

fn hex32(s: &str, what: &str) -> Result<Digest> {
    let s = s.strip_prefix("sha256:").unwrap_or(s);
    Digest::from_hex(s).with_context(|| format!("invalid {what} {s:?}: expected 64 hex digits"))
}

fn each<T, U>(list: &Option<Vec<T>>, f: impl Fn(&T) -> Result<U>) -> Result<Option<Vec<U>>> {
    list.as_ref()
        .map(|l| l.iter().map(f).collect::<Result<Vec<U>>>())
        .transpose()
}

/// The merge plan of `merge`'s options.
pub fn plan(a: &MergeArgs) -> Result<MergePlan> {
    if a.config.is_some() {
        bail!("merge --config (reading blobs through a backend) is not supported by this nydus-image yet");
    }
    let n = a.sources.len();
    for (what, len) in [
        ("--blob-digests", a.blob_digests.as_ref().map(Vec::len)),
        (
            "--original-blob-ids",
            a.original_blob_ids.as_ref().map(Vec::len),
        ),
        ("--blob-sizes", a.blob_sizes.as_ref().map(Vec::len)),
        (
            "--blob-toc-digests",
            a.blob_toc_digests.as_ref().map(Vec::len),
        ),
        ("--blob-toc-sizes", a.blob_toc_sizes.as_ref().map(Vec::len)),
    ] {
        if let Some(len) = len {
            if len != n {
                bail!("{what} has {len} entries but there are {n} sources");
            }
        }
    }
    let whiteout = WhiteoutSpec::from_name(&a.whiteout_spec).with_context(|| {
        format!(
            "invalid --whiteout-spec {:?}: expected oci, overlayfs or none",
            a.whiteout_spec
        )
    })?;
    let prefetch_fs = match a.prefetch_policy.as_str() {
        "fs" => true,
        "none" => false,
        "blob" => bail!("--prefetch-policy blob is not supported by this nydus-image yet"),
        p => bail!("invalid --prefetch-policy {p:?}: expected fs, blob or none"),
    };

    Ok(MergePlan {
        sources: a.sources.clone(),
        bootstrap: a.bootstrap.clone(),
        parent_bootstrap: a.parent_bootstrap.clone(),
        chunk_dict: a.chunk_dict.as_deref().map(chunk_dict_path).transpose()?,
        prefetch_fs,
        whiteout,
        blob_digests: each(&a.blob_digests, |d| hex32(d, "--blob-digests entry"))?,
        original_blob_ids: a.original_blob_ids.clone(),
        blob_sizes: a.blob_sizes.clone(),
        blob_toc_digests: each(&a.blob_toc_digests, |d| {
            hex32(d, "--blob-toc-digests entry")
        })?,
        blob_toc_sizes: each(&a.blob_toc_sizes, |&s| {
            u32::try_from(s).with_context(|| format!("--blob-toc-sizes entry {s} is too large"))
        })?,
    })
}

pub fn run(a: MergeArgs) -> Result<()> {
    crate::cli::check_output_path(&a.bootstrap, "--bootstrap")?;
    if let Some(j) = &a.output_json {
        crate::cli::check_output_path(j, "--output-json")?;
    }
    let plan = plan(&a)?;
    let patterns = if plan.prefetch_fs {
        super::read_prefetch_patterns()?
    } else {
        Vec::new()
    };
    let m = merge(&plan, &patterns)?;
    if let Some(j) = &a.output_json {
        let v = json!({
            "version": concat!(env!("CARGO_PKG_NAME"), "-", env!("CARGO_PKG_VERSION")),
            "bootstrap": a.bootstrap.display().to_string(),
            "blobs": m.blob_ids,
            "external_bootstrap": "",
            "external_blobs": [],
            "trace": {"files": m.files},
            "fs_version": m.fs_version.to_string(),
            "compressor": m.compressor.name(),
        });
        write_file(j, serde_json::to_string_pretty(&v)?.as_bytes())?;
    }
    Ok(())
}
