//! Opening images for read-side commands: bootstraps (separate, or inlined in a data blob)
//! and the chunk data behind them, always verified by digest.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use nydus_core::blob::ci::CiEntry;
use nydus_core::blob::reader::{
    extract_inline_bootstrap, read_chunk, read_chunk_uncompressed, read_ci_entries,
};
use nydus_core::model::{BlobInfo, ChunkRef};
use nydus_core::rafs::Rafs as Bootstrap;
use nydus_core::source::ReadAt;

use super::blobsrc::{BlobLocator, FileSource};

/// An opened bootstrap and the file it came from.
#[derive(Debug)]
pub struct Image {
    pub path: PathBuf,
    pub boot: Bootstrap<Vec<u8>>,
    /// Set when the bootstrap was extracted from a data blob with inline metadata.
    pub inline_blob: Option<PathBuf>,
}

/// Picks the bootstrap path from `-B` or the positional form.
pub fn bootstrap_arg(pos: &Option<PathBuf>, flag: &Option<PathBuf>) -> Result<PathBuf> {
    match (pos, flag) {
        (Some(_), Some(_)) => bail!("give the bootstrap either positionally or with -B, not both"),
        (Some(p), None) | (None, Some(p)) => Ok(p.clone()),
        (None, None) => bail!("a bootstrap is required (-B <file>)"),
    }
}

/// Largest bootstrap read into memory (metadata only; data stays in blobs).
const MAX_BOOTSTRAP: u64 = 4 << 30;

/// Opens a bootstrap file, or a data blob carrying an inline bootstrap.
pub fn open_image(path: &Path) -> Result<Image> {
    let src = FileSource::open(path)?;
    if ReadAt::size(&src) > MAX_BOOTSTRAP {
        bail!(
            "{}: {} bytes is too large for a bootstrap",
            path.display(),
            ReadAt::size(&src)
        );
    }
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    match Bootstrap::open(bytes) {
        Ok(boot) => Ok(Image {
            path: path.to_path_buf(),
            boot,
            inline_blob: None,
        }),
        Err(first) => {
            // Maybe a data blob with the bootstrap inlined (`--blob-inline-meta`).
            match extract_inline_bootstrap(&src) {
                Ok(inner) => {
                    let boot = Bootstrap::open(inner).map_err(|e| {
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

/// Where each blob's bytes are, resolved lazily, and reading chunks verified by digest.
#[derive(Debug)]
pub struct ChunkSource {
    locator: BlobLocator,
    blobs: Vec<BlobInfo>,
    open: HashMap<u32, (FileSource, bool)>,
}

impl ChunkSource {
    pub fn new(locator: BlobLocator, blobs: &[BlobInfo]) -> Self {
        Self {
            locator,
            blobs: blobs.to_vec(),
            open: HashMap::new(),
        }
    }

    /// Whether any blob location was given.
    pub fn has_blobs(&self) -> bool {
        !self.locator.is_empty()
    }

    fn blob(&mut self, index: u32) -> Result<&(FileSource, bool)> {
        if !self.open.contains_key(&index) {
            let info = self.blobs.get(index as usize).ok_or_else(|| {
                anyhow!(
                    "chunk refers to blob index {index}, but the blob table has {}",
                    self.blobs.len()
                )
            })?;
            let src = self
                .locator
                .open(&info.blob_id, self.blobs.len())?
                .ok_or_else(|| {
                    anyhow!(
                        "no blob given for blob {} (use -b <file> or -D <dir>)",
                        info.blob_id
                    )
                })?;
            let cache = self.locator.is_cache_file(&info.blob_id);
            self.open.insert(index, (src, cache));
        }
        Ok(&self.open[&index])
    }

    /// The compression-info entries of blob `index` as stored in the blob itself (`None` for
    /// an uncompressed cache file, which carries none).
    pub fn ci_entries(&mut self, index: u32) -> Result<Option<Vec<CiEntry>>> {
        let info = self.blobs.get(index as usize).cloned();
        let (src, cache) = self.blob(index)?;
        let info = info.expect("blob() checked the index");
        // RAFS v5 blobs carry no compression-info table: the bootstrap is the only index.
        let v5 = info.features & nydus_core::model::blob_features::V5_NO_EXT_BLOB_TABLE != 0
            || (info.ci_offset == 0 && info.ci_uncompressed_size == 0);
        if *cache || info.chunk_count == 0 || v5 {
            return Ok(None);
        }
        read_ci_entries(src, &info)
            .map(Some)
            .map_err(|e| anyhow!("{}: compression-info table: {e}", src.path().display()))
    }

    /// The path of blob `index`, once opened.
    pub fn blob_path(&mut self, index: u32) -> Result<PathBuf> {
        Ok(self.blob(index)?.0.path().to_path_buf())
    }

    /// Reads one chunk's uncompressed bytes, verified against its digest.
    pub fn read(&mut self, c: &ChunkRef) -> Result<Vec<u8>> {
        let info = self.blobs.get(c.blob_index as usize).cloned();
        let (src, cache) = self.blob(c.blob_index)?;
        let info = info.expect("blob() checked the index");
        let data = if *cache {
            read_chunk_uncompressed(src, c, info.digester)
        } else {
            read_chunk(src, &info, c, info.digester)
        };
        data.map_err(|e| {
            anyhow!(
                "{}: chunk {} (blob offset {:#x}): {e}",
                src.path().display(),
                c.digest.to_hex(),
                if *cache {
                    c.uncompressed_offset
                } else {
                    c.compressed_offset
                }
            )
        })
    }
}
