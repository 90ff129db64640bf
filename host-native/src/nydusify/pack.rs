//! `nydusify build` (`pack`): a local directory to `<output-dir>/<name>.meta` (bootstrap) and
//! `<output-dir>/<name>.blob` (data blob, renamed to its digest when built on a parent or
//! pushed), with the builder's `output.json`; `--backend-push` copies them to a localfs
//! backend.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use nydus_core::digest::Digester;
use nydus_core::layer::WhiteoutSpec;
use serde_json::json;

use crate::cli::image::args::{chunk_dict_path, parse_chunk_size, parse_compressor};
use nydus_host_image::create::{self, BlobTarget, Plan};
use nydus_host_storage::atomic::write_file;

#[derive(Debug, Args)]
pub struct PackArgs {
    /// The directory to pack.
    #[arg(long = "source-dir", alias = "target-dir")]
    pub source_dir: PathBuf,
    /// Where the bootstrap, blob and output.json go.
    #[arg(long = "output-dir", short = 'o')]
    pub output_dir: PathBuf,
    /// Name of the outputs (`<name>.meta`, `<name>.blob`).
    #[arg(long = "name", alias = "meta", alias = "bootstrap")]
    pub name: String,
    /// Copy the outputs to the backend.
    #[arg(long = "backend-push")]
    pub backend_push: bool,
    #[arg(long = "backend-type", default_value = "oss")]
    pub backend_type: String,
    #[arg(long = "backend-config")]
    pub backend_config: Option<String>,
    #[arg(long = "backend-config-file")]
    pub backend_config_file: Option<PathBuf>,
    #[arg(long = "chunk-dict")]
    pub chunk_dict: Option<String>,
    #[arg(long = "parent-bootstrap")]
    pub parent_bootstrap: Option<PathBuf>,
    #[arg(long = "compact")]
    pub compact: bool,
    #[arg(long = "compact-config-file")]
    pub compact_config_file: Option<PathBuf>,
    #[arg(long = "fs-version", default_value = "6")]
    pub fs_version: String,
    #[arg(long = "compressor", default_value = "zstd")]
    pub compressor: String,
    #[arg(long = "chunk-size", default_value = "0x100000")]
    pub chunk_size: String,
    /// Accepted for compatibility; the build runs in process.
    #[arg(long = "nydus-image")]
    pub nydus_image: Option<PathBuf>,
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

pub fn run(a: PackArgs) -> Result<()> {
    if a.compact {
        bail!("nydusify build --compact is not supported by this nydusify yet");
    }
    if a.name.is_empty() || a.name.contains('/') {
        bail!("invalid --name {:?}: a file name is expected", a.name);
    }
    let v5 = match a.fs_version.as_str() {
        "6" => false,
        "5" => true,
        v => bail!("invalid --fs-version {v:?}: expected 5 or 6"),
    };
    let compressor = parse_compressor(&a.compressor)?;
    let chunk_size = parse_chunk_size(&a.chunk_size)?;
    let backend = if a.backend_push {
        Some(
            super::backend_dir(
                Some(&a.backend_type),
                a.backend_config.as_deref(),
                a.backend_config_file.as_deref(),
                "--backend",
            )?
            .context("--backend-push needs --backend-type localfs")?,
        )
    } else {
        None
    };
    if !a.source_dir.is_dir() {
        bail!("--source-dir {}: not a directory", a.source_dir.display());
    }
    std::fs::create_dir_all(&a.output_dir)
        .with_context(|| format!("creating {}", a.output_dir.display()))?;
    let meta = meta_path(&a.output_dir, &a.name);
    let blob = blob_path(&a.output_dir, &a.name);
    let plan = Plan {
        source: a.source_dir.clone(),
        bootstrap: Some(meta.clone()),
        blob: Some(BlobTarget::File(blob.clone())),
        inline_meta: false,
        blob_toc: false,
        compressor,
        digester: Digester::Blake3,
        chunk_size,
        whiteout: WhiteoutSpec::Oci,
        prefetch_fs: false,
        blob_id: None,
        explicit_uid_gid: true,
        threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
        check: true,
        tar: false,
        parent: a.parent_bootstrap.clone(),
        chunk_dict: a.chunk_dict.as_deref().map(chunk_dict_path).transpose()?,
        v5,
        aligned_chunk: false,
    };
    let built = create::build(&plan, &[], None, None)?;
    let has_data = built.table_ids.contains(&built.blob_id);
    let blob_out = if !has_data {
        std::fs::remove_file(&blob).ok();
        None
    } else if a.parent_bootstrap.is_some() || a.backend_push {
        let renamed = a.output_dir.join(&built.blob_id);
        std::fs::rename(&blob, &renamed)
            .with_context(|| format!("renaming {} to its digest", blob.display()))?;
        Some(renamed)
    } else {
        Some(blob)
    };
    write_file(
        &a.output_dir.join("output.json"),
        serde_json::to_string_pretty(&json!({
            "version": concat!(env!("CARGO_PKG_NAME"), "-", env!("CARGO_PKG_VERSION")),
            "bootstrap": meta.display().to_string(),
            "blobs": built.table_ids,
            "trace": built.trace,
            "fs_version": a.fs_version,
            "compressor": compressor.name(),
        }))?
        .as_bytes(),
    )?;
    let (mut meta_out, mut blob_shown) = (meta.clone(), blob_out.clone());
    if let Some(dir) = backend {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        if let Some(b) = &blob_out {
            let dest = dir.join(&built.blob_id);
            copy_atomic(b, &dest)?;
            blob_shown = Some(dest);
        }
        let dest = dir.join(meta.file_name().expect("a file name"));
        copy_atomic(&meta, &dest)?;
        meta_out = dest;
    }
    crate::log::info(&format!(
        "built {} and {}",
        meta_out.display(),
        blob_shown.map_or("no blob (no file data)".into(), |b| b.display().to_string())
    ));
    Ok(())
}

fn copy_atomic(from: &Path, to: &Path) -> Result<()> {
    let mut out = nydus_host_storage::atomic::AtomicFile::create(to)?;
    let mut input =
        std::fs::File::open(from).with_context(|| format!("opening {}", from.display()))?;
    std::io::copy(&mut input, out.file())
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    out.commit()
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
