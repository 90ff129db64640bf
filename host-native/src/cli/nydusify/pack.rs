//! `nydusify build` (`pack`): the options checked and turned into [`PackOptions`], the
//! build, and its summary line.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use nydus_host_nydusify::pack::{pack, PackOptions};

use crate::cli::image::args::{chunk_dict_path, parse_chunk_size, parse_compressor};

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
    #[arg(long = "backend-push", alias = "backend_push")]
    pub backend_push: bool,
    /// localfs, s3 or oss.
    #[arg(long = "backend-type", alias = "backend_type", default_value = "oss")]
    pub backend_type: String,
    /// The backend configuration as JSON.
    #[arg(long = "backend-config", alias = "backend_config")]
    pub backend_config: Option<String>,
    /// The backend configuration from a JSON file.
    #[arg(long = "backend-config-file", alias = "backend_config_file")]
    pub backend_config_file: Option<PathBuf>,
    /// Push the blob even if the backend has it already.
    #[arg(long = "backend-force-push", alias = "backend_force_push")]
    pub backend_force_push: bool,
    /// Chunk dictionary bootstrap (`bootstrap=<path>` or `<path>`): chunks it has are not
    /// stored again.
    #[arg(long = "chunk-dict")]
    pub chunk_dict: Option<String>,
    /// Parent bootstrap: the directory is built as a layer on top of it.
    #[arg(long = "parent-bootstrap")]
    pub parent_bootstrap: Option<PathBuf>,
    /// Compact the blobs of the parent (not built yet: an error when given).
    #[arg(long = "compact")]
    pub compact: bool,
    /// Configuration of --compact (not built yet).
    #[arg(long = "compact-config-file")]
    pub compact_config_file: Option<PathBuf>,
    /// RAFS version (5 or 6).
    #[arg(long = "fs-version", default_value = "6")]
    pub fs_version: String,
    /// Chunk compressor: none, lz4_block or zstd.
    #[arg(long = "compressor", default_value = "zstd")]
    pub compressor: String,
    /// Chunk size (power of two in [0x1000, 0x1000000]).
    #[arg(long = "chunk-size", default_value = "0x100000")]
    pub chunk_size: String,
    /// Accepted for compatibility; the build runs in process.
    #[arg(long = "nydus-image")]
    pub nydus_image: Option<PathBuf>,
}

/// The build `build`'s options describe.
pub fn options(a: &PackArgs) -> Result<PackOptions> {
    if a.compact {
        bail!("nydusify build --compact is not supported by this nydusify yet");
    }
    if a.name.is_empty() || a.name.contains('/') {
        bail!("invalid --name {:?}: a file name is expected", a.name);
    }
    let fs_version = match a.fs_version.as_str() {
        "6" => 6,
        "5" => 5,
        v => bail!("invalid --fs-version {v:?}: expected 5 or 6"),
    };
    let compressor = parse_compressor(&a.compressor)?;
    let chunk_size = parse_chunk_size(&a.chunk_size)?;
    let backend = if a.backend_push {
        Some(
            super::backend_dest(
                Some(&a.backend_type),
                a.backend_config.as_deref(),
                a.backend_config_file.as_deref(),
                "--backend",
            )?
            .context("--backend-push needs --backend-type localfs, s3 or oss")?,
        )
    } else {
        None
    };
    Ok(PackOptions {
        source_dir: a.source_dir.clone(),
        output_dir: a.output_dir.clone(),
        name: a.name.clone(),
        backend,
        force_push: a.backend_force_push,
        chunk_dict: a.chunk_dict.as_deref().map(chunk_dict_path).transpose()?,
        parent_bootstrap: a.parent_bootstrap.clone(),
        fs_version,
        compressor,
        chunk_size,
        version: concat!(env!("CARGO_PKG_NAME"), "-", env!("CARGO_PKG_VERSION")).to_string(),
    })
}

pub fn run(a: PackArgs) -> Result<()> {
    let packed = pack(&options(&a)?)?;
    log::info!(
        "built {} and {}",
        packed.bootstrap.display(),
        packed
            .blob
            .map_or("no blob (no file data)".into(), |b| b.display().to_string())
    );
    Ok(())
}
