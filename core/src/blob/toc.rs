//! The blob ToC (`rafs.blob.toc`, `blob.md` §6): 128-byte entries locating each section.

use crate::codec::{Codec, PutLe, Reader};
use crate::error::{BlobProblem, DecodeError};
use crate::model::Compressor;

/// Size of one ToC entry.
pub const TOC_ENTRY_SIZE: usize = 128;
/// ToC entry flag: content stored raw.
pub const TOC_FLAG_NONE: u32 = 0x1;
/// ToC entry flag: content is one zstd frame.
pub const TOC_FLAG_ZSTD: u32 = 0x2;
/// ToC entry flag: content is one LZ4 block.
pub const TOC_FLAG_LZ4_BLOCK: u32 = 0x4;

/// One ToC entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TocEntry {
    pub flags: u32,
    pub name: String,
    /// SHA-256 of the uncompressed content.
    pub uncompressed_digest: [u8; 32],
    pub compressed_offset: u64,
    pub compressed_size: u64,
    pub uncompressed_size: u64,
}

impl TocEntry {
    /// The compressor named by `flags`.
    pub fn compressor(&self) -> Option<Compressor> {
        match self.flags {
            TOC_FLAG_NONE => Some(Compressor::None),
            TOC_FLAG_ZSTD => Some(Compressor::Zstd),
            TOC_FLAG_LZ4_BLOCK => Some(Compressor::Lz4Block),
            _ => None,
        }
    }
}

/// The ToC flag for a section compressor.
pub fn flag_of(c: Compressor) -> u32 {
    match c {
        Compressor::Zstd => TOC_FLAG_ZSTD,
        Compressor::Lz4Block => TOC_FLAG_LZ4_BLOCK,
        _ => TOC_FLAG_NONE,
    }
}

impl Codec for TocEntry {
    const SIZE: usize = TOC_ENTRY_SIZE;
    const NAME: &'static str = "blob ToC entry";
    fn encode(&self, out: &mut Vec<u8>) {
        out.put_u32(self.flags);
        out.put_u32(0);
        out.put_padded(self.name.as_bytes(), 16);
        out.extend_from_slice(&self.uncompressed_digest);
        out.put_u64(self.compressed_offset);
        out.put_u64(self.compressed_size);
        out.put_u64(self.uncompressed_size);
        out.put_zeros(48);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let at = r.offset();
        let flags = r.u32()?;
        r.skip(4)?;
        let raw = r.take(16)?;
        let end = raw.iter().position(|&b| b == 0).unwrap_or(16);
        let name =
            String::from_utf8(raw[..end].to_vec()).map_err(|_| DecodeError::BadBlobSection {
                what: Self::NAME,
                offset: at,
                problem: BlobProblem::NotUtf8 { field: "name" },
            })?;
        let uncompressed_digest = r.take_array()?;
        let e = TocEntry {
            flags,
            name,
            uncompressed_digest,
            compressed_offset: r.u64()?,
            compressed_size: r.u64()?,
            uncompressed_size: r.u64()?,
        };
        r.skip(48)?;
        Ok(e)
    }
}
