//! Opening images: a bootstrap file, or a data blob carrying its bootstrap inline
//! (`--blob-inline-meta`), and the blob table with an inline blob's placeholder id resolved.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use nydus_core::blob::reader::extract_inline_bootstrap;
use nydus_core::error::SourceError;
use nydus_core::model::BlobInfo;
use nydus_core::rafs::Rafs as Bootstrap;
use nydus_core::read::Filesystem;
use nydus_core::source::ReadAt;

use crate::cached::CachedFile;
use crate::local::Localfs;
use crate::reader::{ChunkReader, ReaderOptions};
use crate::source::FileSource;

/// Where an opened bootstrap's bytes are: its file, read by range through a block cache, or
/// (inlined in a blob) the extracted bytes.
#[derive(Debug)]
pub enum BootSource {
    File(CachedFile),
    Bytes(Vec<u8>),
}

impl ReadAt for BootSource {
    fn size(&self) -> u64 {
        match self {
            BootSource::File(f) => f.size(),
            BootSource::Bytes(b) => b.size(),
        }
    }
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), SourceError> {
        match self {
            BootSource::File(f) => f.read_exact_at(offset, buf),
            BootSource::Bytes(b) => b.read_exact_at(offset, buf),
        }
    }
}

/// An opened bootstrap, read by range (never read whole), and the file it came from.
#[derive(Debug)]
pub struct Image {
    pub path: PathBuf,
    pub boot: Bootstrap<BootSource>,
    /// Set when the bootstrap was extracted from a data blob with inline metadata.
    pub inline_blob: Option<PathBuf>,
}

impl Image {
    /// A chunk reader of this image's blobs from `local`; when no blob location is given and
    /// the image is a blob carrying its bootstrap, that blob itself. `None` when there is
    /// nothing to read blobs from.
    /// A chunk reader over the image's blobs in `backend` (S3, OSS, a registry, ...).
    pub fn chunk_reader_with(
        &self,
        backend: Arc<dyn crate::local::Backend>,
        opts: ReaderOptions,
    ) -> Result<ChunkReader> {
        Ok(ChunkReader::new(&resolved_blobs(self)?, backend, opts))
    }

    pub fn chunk_reader(&self, local: Localfs, opts: ReaderOptions) -> Result<Option<ChunkReader>> {
        let local = match (&self.inline_blob, local.is_empty()) {
            (Some(b), true) => Localfs::file(b.clone()),
            (_, true) => return Ok(None),
            (_, false) => local,
        };
        Ok(Some(ChunkReader::new(
            &resolved_blobs(self)?,
            Arc::new(local),
            opts,
        )))
    }
}

/// Largest bootstrap accepted (metadata only; data stays in blobs).
const MAX_BOOTSTRAP: u64 = 4 << 30;

/// Bytes of a bootstrap file kept in memory while it is read.
const BOOTSTRAP_CACHE: u64 = 16 << 20;

/// Opens a bootstrap file (read by range from then on), or a data blob carrying an inline
/// bootstrap.
pub fn open_image(path: &Path) -> Result<Image> {
    let src = FileSource::open(path)?;
    if ReadAt::size(&src) > MAX_BOOTSTRAP {
        bail!(
            "{}: {} bytes is too large for a bootstrap",
            path.display(),
            ReadAt::size(&src)
        );
    }
    let file = CachedFile::open(path, BOOTSTRAP_CACHE)
        .with_context(|| format!("opening {}", path.display()))?;
    match Bootstrap::open(BootSource::File(file)) {
        Ok(boot) => Ok(Image {
            path: path.to_path_buf(),
            boot,
            inline_blob: None,
        }),
        Err(first) => {
            // Maybe a data blob with the bootstrap inlined (`--blob-inline-meta`).
            match extract_inline_bootstrap(&src) {
                Ok(inner) => {
                    let boot = Bootstrap::open(BootSource::Bytes(inner)).map_err(|e| {
                        anyhow!(
                            "{}: the bootstrap inlined in this blob is invalid: {e}",
                            path.display()
                        )
                    })?;
                    Ok(Image {
                        path: path.to_path_buf(),
                        boot,
                        inline_blob: Some(path.to_path_buf()),
                    })
                }
                Err(_) => Err(anyhow!(
                    "{}: not a valid RAFS bootstrap (v5 or v6): {first}",
                    path.display()
                )),
            }
        }
    }
}

/// The id of a blob file that carries an inline bootstrap (which names its own blob `"x"` ×
/// 64): the file name when it is a 64-hex digest (the `-D` layout), else the SHA-256 of the
/// file.
pub fn inline_blob_id(path: &Path) -> Result<String> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    if name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(name.to_ascii_lowercase());
    }
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut h = nydus_core::digest::Sha256Stream::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = std::io::Read::read(&mut f, &mut buf)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finish().to_hex())
}

/// The blob table of an image, with the placeholder id of an inline bootstrap's own blob
/// replaced by the blob file's id.
pub fn resolved_blobs(img: &Image) -> Result<Vec<BlobInfo>> {
    let mut blobs = img.boot.blobs().to_vec();
    if let Some(file) = &img.inline_blob {
        let placeholder = "x".repeat(64);
        if blobs.iter().any(|b| b.blob_id == placeholder) {
            let id = inline_blob_id(file)?;
            for b in &mut blobs {
                if b.blob_id == placeholder {
                    b.blob_id = id.clone();
                }
            }
        }
    }
    Ok(blobs)
}
