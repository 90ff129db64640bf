//! Processing one chunk: digest, CRC-32C and compression (`blob.md` §1). A pure function, so
//! hosts run it on as many threads as they like and feed the results, in order, to
//! [`crate::blob::writer::BlobWriter`].

use crate::compress::compress;
use crate::digest::{Digest, Digester};
use crate::error::BuildError;
use crate::model::Compressor;

/// How chunks of one blob are processed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChunkParams {
    pub compressor: Compressor,
    pub digester: Digester,
}

/// One processed chunk, ready to be appended to a blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Processed {
    /// Digest of the uncompressed bytes.
    pub digest: Digest,
    /// The bytes to store: compressed, or the raw bytes if compression did not shrink them.
    pub data: Vec<u8>,
    /// Whether `data` is compressed.
    pub compressed: bool,
    pub uncompressed_size: u32,
    /// CRC-32C of the uncompressed bytes.
    pub crc32: u32,
    /// Compression was skipped because an earlier chunk of the blob has the same content
    /// (`data` is empty); the blob writer must already know that chunk.
    pub duplicate: bool,
}

/// Digest and CRC of a chunk, the part of [`process_chunk`] needed to find duplicates.
pub fn fingerprint(raw: &[u8], params: &ChunkParams) -> Result<(Digest, u32), BuildError> {
    if raw.is_empty() || raw.len() > 0x100_0000 {
        return Err(BuildError::Limit {
            what: "chunk size",
            reason: format!("a chunk must hold 1..=16 MiB, got {} bytes", raw.len()),
        });
    }
    Ok((params.digester.digest(raw), crc32c::crc32c(raw)))
}

/// A chunk known to duplicate an earlier one: fingerprinted, not compressed.
pub fn duplicate_chunk(raw: &[u8], digest: Digest, crc32: u32) -> Processed {
    Processed {
        digest,
        data: Vec::new(),
        compressed: false,
        uncompressed_size: raw.len() as u32,
        crc32,
        duplicate: true,
    }
}

/// Compresses a fingerprinted chunk (the rest of [`process_chunk`]).
pub fn compress_chunk(
    raw: &[u8],
    digest: Digest,
    crc32: u32,
    params: &ChunkParams,
) -> Result<Processed, BuildError> {
    let (data, compressed) = match params.compressor {
        Compressor::None => (raw.to_vec(), false),
        c => {
            let z = compress(c, raw)?;
            if z.len() < raw.len() {
                (z, true)
            } else {
                (raw.to_vec(), false)
            }
        }
    };
    Ok(Processed {
        digest,
        data,
        compressed,
        uncompressed_size: raw.len() as u32,
        crc32,
        duplicate: false,
    })
}

/// Digests and compresses one chunk of at most 16 MiB.
pub fn process_chunk(raw: &[u8], params: &ChunkParams) -> Result<Processed, BuildError> {
    let (digest, crc32) = fingerprint(raw, params)?;
    compress_chunk(raw, digest, crc32, params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiny_chunk_is_stored_raw_with_crc() {
        // rafs-v6.md §18.7: "hello\n" has CRC-32C 0x353DD8BE and is stored raw under zstd.
        let p = process_chunk(b"hello\n", &ChunkParams::default()).unwrap();
        assert!(!p.compressed);
        assert_eq!(p.data, b"hello\n");
        assert_eq!(p.crc32, 0x353D_D8BE);
        assert_eq!(p.uncompressed_size, 6);
    }

    #[test]
    fn compressible_chunk_is_compressed() {
        let raw = vec![7u8; 65536];
        let p = process_chunk(&raw, &ChunkParams::default()).unwrap();
        assert!(p.compressed);
        assert!(p.data.len() < 100);
        assert!(process_chunk(&[], &ChunkParams::default()).is_err());
    }
}
