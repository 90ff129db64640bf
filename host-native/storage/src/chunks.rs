//! Chunk data for read-side commands: each chunk read from its blob (located lazily) and
//! verified by digest (and CRC) before it is returned. Corrupted data is an error, never
//! output.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{anyhow, Result};
use nydus_core::blob::ci::CiEntry;
use nydus_core::blob::reader::{read_chunk, read_chunk_uncompressed, read_ci_entries};
use nydus_core::model::{BlobInfo, ChunkRef};

use crate::locate::BlobLocator;
use crate::source::FileSource;

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
