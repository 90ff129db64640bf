//! The plain executor of read plans: one chunk after another from [`ReadAt`] blobs, each chunk
//! verified by digest (and CRC) before a byte of it is handed on. The browser inspector, the
//! golden listings and the fuzz targets use it; the native host has its own concurrent,
//! cached executor with the same verification.

use crate::blob::reader::{check_chunk_sizes, decode_chunk, read_chunk_range, verify_chunk};
use crate::error::DecodeError;
use crate::read::plan::{ChunkExtent, Extent, ReadPlan};
use crate::source::ReadAt;

/// How a blob file holds its chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobLayout {
    /// A Nydus data blob: each chunk as stored (maybe compressed) at its compressed offset.
    Stored,
    /// An uncompressed image of the blob (`<id>.blob.data` of `--blob-cache-dir` or a blob
    /// cache): each chunk's raw bytes at its uncompressed offset.
    Uncompressed,
}

/// Zeros handed out for holes, a piece at a time.
const ZEROS: [u8; 4096] = [0; 4096];

/// Reads the whole of chunk `e` from `src`, verified.
pub fn fetch_chunk<S: ReadAt + ?Sized>(
    src: &S,
    layout: BlobLayout,
    e: &ChunkExtent,
) -> Result<Vec<u8>, DecodeError> {
    let c = &e.chunk;
    // Before anything is allocated for the claimed sizes.
    check_chunk_sizes(c)?;
    match layout {
        BlobLayout::Stored => {
            let stored = read_chunk_range(src, c, c.compressed_offset, c.compressed_size.into())?;
            decode_chunk(&stored, e.compressor, c, e.digester)
        }
        BlobLayout::Uncompressed => {
            let data = read_chunk_range(src, c, c.uncompressed_offset, c.uncompressed_size.into())?;
            verify_chunk(c, &data, e.digester)?;
            Ok(data)
        }
    }
}

/// Carries out `plan`: each piece of its bytes goes to `sink`, in order. `blob(i)` serves blob
/// table entry `i` and says how it is laid out.
pub fn execute<'s, S, B, K>(plan: &ReadPlan, mut blob: B, mut sink: K) -> Result<(), DecodeError>
where
    S: ReadAt + ?Sized + 's,
    B: FnMut(u32) -> Result<(&'s S, BlobLayout), DecodeError>,
    K: FnMut(&[u8]) -> Result<(), DecodeError>,
{
    for e in &plan.extents {
        match e {
            Extent::Hole { len } => {
                let mut left = *len;
                while left > 0 {
                    let n = left.min(ZEROS.len() as u64) as usize;
                    sink(&ZEROS[..n])?;
                    left -= n as u64;
                }
            }
            Extent::Chunk(c) => {
                let (src, layout) = blob(c.chunk.blob_index)?;
                let data = fetch_chunk(src, layout, c)?;
                let (s, t) = (c.skip as usize, c.take as usize);
                sink(data.get(s..s + t).ok_or(DecodeError::Truncated {
                    what: "chunk",
                    offset: c.chunk.compressed_offset,
                    needed: (s + t) as u64,
                    available: data.len() as u64,
                })?)?;
            }
        }
    }
    Ok(())
}

/// Carries out `plan` into a new vector.
pub fn read_to_vec<'s, S, B>(plan: &ReadPlan, blob: B) -> Result<Vec<u8>, DecodeError>
where
    S: ReadAt + ?Sized + 's,
    B: FnMut(u32) -> Result<(&'s S, BlobLayout), DecodeError>,
{
    let mut out = Vec::with_capacity(plan.len.min(1 << 30) as usize);
    execute(plan, blob, |b| {
        out.extend_from_slice(b);
        Ok(())
    })?;
    Ok(out)
}
