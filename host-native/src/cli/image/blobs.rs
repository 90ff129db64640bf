//! The read-side commands' blob options (`-b`, `-D`, `--backend-type` with
//! `--backend-config[-file]`): local files, or a backend (S3, OSS, a registry) opened with
//! [`nydus_host_storage::open_backend`].

use std::sync::Arc;

use anyhow::Result;
use nydus_host_storage::config::{self, BackendConfig, BackendFlags, LocalBlobs};
use nydus_host_storage::local::Backend;
use nydus_host_storage::{open_backend, ChunkReader, Image, Localfs, ReaderOptions};

use super::args::BlobSourceArgs;

/// The commands' backend options.
pub const BACKEND: BackendFlags<'static> = BackendFlags {
    prefix: "--backend",
    tool: "nydus-image",
    config_file: true,
};

/// Where the blobs of a read-side command are.
#[derive(Debug)]
pub enum Blobs {
    /// `-b`, `-D`, or a localfs backend.
    Local(Localfs),
    /// A remote backend.
    Remote(Arc<dyn Backend>),
}

/// Where blobs are per the options: a backend configuration (its type defaults to localfs)
/// takes the place of `-b` or `-D`.
pub fn locator(a: &BlobSourceArgs) -> Result<Blobs> {
    let (mut single, mut dir, mut alt) = (a.blob.clone(), a.blob_dir.clone(), Vec::new());
    let configured = a.backend_config.is_some() || a.backend_config_file.is_some();
    if configured || a.backend_type.is_some() {
        let kind = a.backend_type.as_deref().unwrap_or("localfs");
        let c = config::parse(
            BACKEND,
            kind,
            a.backend_config.as_deref(),
            a.backend_config_file.as_deref(),
        )?;
        match c {
            BackendConfig::Localfs { blobs, alt_dirs } => {
                match blobs {
                    LocalBlobs::Dir(d) => dir = Some(d),
                    LocalBlobs::File(f) => single = Some(f),
                }
                alt = alt_dirs;
            }
            remote => {
                if single.is_some() || dir.is_some() {
                    anyhow::bail!(
                        "--backend-type {} conflicts with --blob and --blob-dir",
                        remote.kind()
                    );
                }
                return Ok(Blobs::Remote(open_backend(&remote)?));
            }
        }
    }
    Ok(Blobs::Local(Localfs::new(single, dir, alt)?))
}

/// The chunk reader of `img` over `blobs` (`None`: no blobs given and none inlined).
pub fn reader(img: &Image, blobs: Blobs, opts: ReaderOptions) -> Result<Option<ChunkReader>> {
    match blobs {
        Blobs::Local(l) => img.chunk_reader(l, opts),
        Blobs::Remote(b) => Ok(Some(img.chunk_reader_with(b, opts)?)),
    }
}
