//! `nydusify build` (`pack`): a local directory to `<output-dir>/<name>.meta` (bootstrap) and
//! `<output-dir>/<name>.blob` (data blob, renamed to its digest when built on a parent or
//! pushed), with the builder's `output.json`; with a backend (`--backend-push`), the blob goes
//! to it by id (`{object_prefix}{id}` in a bucket) and the bootstrap by name
//! (`{meta_prefix}{name}`).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use nydus_core::digest::Digester;
use nydus_core::layer::WhiteoutSpec;
use nydus_core::model::Compressor;
use nydus_host_image::create::{self, BlobTarget, Plan};
use nydus_host_storage::atomic::write_file;
use serde_json::json;

/// What to build (validated).
#[derive(Debug, Clone)]
pub struct PackOptions {
    /// The directory to pack.
    pub source_dir: PathBuf,
    /// Where the bootstrap, blob and output.json go.
    pub output_dir: PathBuf,
    /// Name of the outputs (`<name>.meta`, `<name>.blob`): a file name.
    pub name: String,
    /// Push the outputs to this backend.
    pub backend: Option<crate::backend::BlobDest>,
    /// Push even what the backend has already.
    pub force_push: bool,
    pub chunk_dict: Option<PathBuf>,
    pub parent_bootstrap: Option<PathBuf>,
    /// RAFS version (5 or 6).
    pub fs_version: u32,
    pub compressor: Compressor,
    pub chunk_size: u32,
    /// What output.json's `version` says (the program that built it).
    pub version: String,
}

/// Where the outputs are (in the backend when there is one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packed {
    pub bootstrap: PathBuf,
    /// `None` when the directory has no file data.
    pub blob: Option<PathBuf>,
}

/// `<dir>/<name>.meta`, or `<dir>/<name>` when the name has an extension.
fn meta_path(dir: &Path, name: &str) -> PathBuf {
    if Path::new(name).extension().is_some() {
        dir.join(name)
    } else {
        dir.join(format!("{name}.meta"))
    }
}

/// `<dir>/<name without extension>.blob`.
fn blob_path(dir: &Path, name: &str) -> PathBuf {
    let stem = match Path::new(name).extension() {
        Some(_) => Path::new(name)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| name.to_string()),
        None => name.to_string(),
    };
    dir.join(format!("{stem}.blob"))
}

/// Builds per `o`.
pub fn pack(o: &PackOptions) -> Result<Packed> {
    if !o.source_dir.is_dir() {
        bail!("--source-dir {}: not a directory", o.source_dir.display());
    }
    std::fs::create_dir_all(&o.output_dir)
        .with_context(|| format!("creating {}", o.output_dir.display()))?;
    let meta = meta_path(&o.output_dir, &o.name);
    let blob = blob_path(&o.output_dir, &o.name);
    let plan = Plan {
        source: o.source_dir.clone(),
        bootstrap: Some(meta.clone()),
        blob: Some(BlobTarget::File(blob.clone())),
        inline_meta: false,
        blob_toc: false,
        compressor: o.compressor,
        digester: Digester::Blake3,
        chunk_size: o.chunk_size,
        whiteout: WhiteoutSpec::Oci,
        prefetch_fs: false,
        blob_id: None,
        explicit_uid_gid: true,
        threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
        check: true,
        tar: false,
        parent: o.parent_bootstrap.clone(),
        chunk_dict: o.chunk_dict.clone(),
        v5: o.fs_version == 5,
        aligned_chunk: false,
        dir: Default::default(),
    };
    let built = create::build(&plan, &[], None, None)?;
    let has_data = built.table_ids.contains(&built.blob_id);
    let blob_out = if !has_data {
        std::fs::remove_file(&blob).ok();
        None
    } else if o.parent_bootstrap.is_some() || o.backend.is_some() {
        let renamed = o.output_dir.join(&built.blob_id);
        std::fs::rename(&blob, &renamed)
            .with_context(|| format!("renaming {} to its digest", blob.display()))?;
        Some(renamed)
    } else {
        Some(blob)
    };
    write_file(
        &o.output_dir.join("output.json"),
        serde_json::to_string_pretty(&json!({
            "version": o.version,
            "bootstrap": meta.display().to_string(),
            "blobs": built.table_ids,
            "trace": built.trace,
            "fs_version": o.fs_version.to_string(),
            "compressor": o.compressor.name(),
        }))?
        .as_bytes(),
    )?;
    let (mut meta_out, mut blob_shown) = (meta.clone(), blob_out.clone());
    if let Some(dest) = &o.backend {
        // The blob first: a bootstrap in the backend never names a missing blob.
        if let Some(b) = &blob_out {
            let pushed = dest.push_blob(&built.blob_id, b, o.force_push)?;
            blob_shown = Some(PathBuf::from(pushed.location));
        }
        let name = meta
            .file_name()
            .expect("a file name")
            .to_string_lossy()
            .into_owned();
        meta_out = PathBuf::from(dest.push_meta(&name, &meta, true)?.location);
    }
    Ok(Packed {
        bootstrap: meta_out,
        blob: blob_shown,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_names() {
        let d = Path::new("/o");
        assert_eq!(meta_path(d, "img"), PathBuf::from("/o/img.meta"));
        assert_eq!(meta_path(d, "img.boot"), PathBuf::from("/o/img.boot"));
        assert_eq!(blob_path(d, "img"), PathBuf::from("/o/img.blob"));
        assert_eq!(blob_path(d, "img.boot"), PathBuf::from("/o/img.blob"));
    }
}
