//! Reading blobs back: the ci table, single chunks (always verified by digest and CRC), the
//! ToC and an inlined bootstrap. Every offset and length is checked against the source size
//! before it is read.

use crate::blob::ci::{
    decode_entries, CiEntry, CiHeader, CI_HEADER_SIZE, CI_V1_ENTRY_SIZE, CI_V2_ENTRY_SIZE,
};
use crate::blob::tarhdr::{self, TAR_HEADER_SIZE};
use crate::blob::toc::{TocEntry, TOC_ENTRY_SIZE};
use crate::blob::{MAX_CHUNK_SIZE, SECTION_BOOT, SECTION_TOC};
use crate::codec::{Codec, Reader};
use crate::compress::decompress;
use crate::digest::{sha256, Digester};
use crate::error::{BlobProblem, ChunkProblem, DecodeError, Digested, Feature, Rule};
use crate::model::{blob_features, chunk_flags, BlobInfo, ChunkRef, Compressor};
use crate::source::ReadAt;

/// Largest inlined bootstrap accepted (4 GiB).
pub const MAX_BOOTSTRAP_SIZE: u64 = 1 << 32;

/// Reads and validates the ci header of `info`'s blob against the blob-table entry.
pub fn read_ci_header<R: ReadAt + ?Sized>(
    src: &R,
    info: &BlobInfo,
) -> Result<CiHeader, DecodeError> {
    let at =
        info.ci_offset
            .checked_add(info.ci_compressed_size)
            .ok_or(DecodeError::OutOfBounds {
                what: "compression-info table",
                offset: info.ci_offset,
                len: info.ci_compressed_size,
                file_size: src.size(),
            })?;
    if at
        .checked_add(CI_HEADER_SIZE as u64)
        .is_none_or(|end| end > src.size())
    {
        return Err(DecodeError::OutOfBounds {
            what: "blob compression-info header",
            offset: at,
            len: CI_HEADER_SIZE as u64,
            file_size: src.size(),
        });
    }
    let bytes = src.read_vec(at, CI_HEADER_SIZE as u64)?;
    let h = CiHeader::decode_at(&bytes, at)?;
    let mismatch = |field, header, table| DecodeError::BadBlobSection {
        what: "blob compression-info header",
        offset: at,
        problem: BlobProblem::CiHeaderMismatch {
            field,
            header,
            table,
        },
    };
    if h.ci_entries != info.chunk_count
        && info.features & blob_features::IS_CHUNKDICT_GENERATED == 0
    {
        return Err(mismatch(
            "ci_entries",
            h.ci_entries as u64,
            info.chunk_count as u64,
        ));
    }
    for (f, a, b) in [
        (
            "ci_compressor",
            h.ci_compressor as u64,
            info.ci_compressor.code() as u64,
        ),
        ("ci_offset", h.ci_offset, info.ci_offset),
        (
            "ci_compressed_size",
            h.ci_compressed_size,
            info.ci_compressed_size,
        ),
        (
            "ci_uncompressed_size",
            h.ci_uncompressed_size,
            info.ci_uncompressed_size,
        ),
    ] {
        if a != b {
            return Err(mismatch(f, a, b));
        }
    }
    Ok(h)
}

/// Reads, decompresses and decodes the ci entries of a blob.
pub fn read_ci_entries<R: ReadAt + ?Sized>(
    src: &R,
    info: &BlobInfo,
) -> Result<Vec<CiEntry>, DecodeError> {
    read_ci_header(src, info)?;
    let v2 = info.features & blob_features::CHUNK_INFO_V2 != 0;
    let entry = if v2 {
        CI_V2_ENTRY_SIZE
    } else {
        CI_V1_ENTRY_SIZE
    } as u64;
    let need = entry * info.chunk_count as u64;
    let rule = if info.ci_uncompressed_size < need {
        Some(Rule::AtLeast(need))
    } else if info.ci_uncompressed_size > need + (1 << 30) {
        Some(Rule::AtMost(need + (1 << 30)))
    } else {
        None
    };
    if let Some(rule) = rule {
        return Err(DecodeError::BadBlobSection {
            what: "compression-info table",
            offset: info.ci_offset,
            problem: BlobProblem::Field {
                field: "ci_uncompressed_size",
                value: info.ci_uncompressed_size,
                rule,
            },
        });
    }
    let stored = src.read_vec(info.ci_offset, info.ci_compressed_size)?;
    let raw = if info.ci_compressor == Compressor::None {
        stored
    } else {
        decompress(
            info.ci_compressor,
            &stored,
            info.ci_uncompressed_size as usize,
            "compression-info table",
            info.ci_offset,
        )?
    };
    decode_entries(&raw, info.chunk_count, v2, info.ci_offset)
}

fn bad_chunk(c: &ChunkRef, problem: ChunkProblem) -> DecodeError {
    DecodeError::BadBlobChunk {
        blob: c.blob_index,
        index: c.index,
        offset: c.compressed_offset,
        problem,
    }
}

/// Checks that a chunk's sizes are ones a builder writes (1..=16 MiB uncompressed, at most
/// twice that stored), before anything is read or allocated for them.
pub fn check_chunk_sizes(c: &ChunkRef) -> Result<(), DecodeError> {
    if c.uncompressed_size == 0
        || c.uncompressed_size > MAX_CHUNK_SIZE
        || c.compressed_size > MAX_CHUNK_SIZE * 2
    {
        return Err(bad_chunk(
            c,
            ChunkProblem::ImplausibleSizes {
                compressed: c.compressed_size,
                uncompressed: c.uncompressed_size,
            },
        ));
    }
    Ok(())
}

/// Reads `len` bytes at `offset` of chunk `c`'s blob file `src` (its stored bytes, or its
/// bytes in an uncompressed cache file), refusing a range outside the file.
pub fn read_chunk_range<R: ReadAt + ?Sized>(
    src: &R,
    c: &ChunkRef,
    offset: u64,
    len: u64,
) -> Result<Vec<u8>, DecodeError> {
    let blob_size = src.size();
    if offset.checked_add(len).is_none_or(|end| end > blob_size) {
        return Err(DecodeError::BadBlobChunk {
            blob: c.blob_index,
            index: c.index,
            offset,
            problem: ChunkProblem::OutsideBlob { len, blob_size },
        });
    }
    Ok(src.read_vec(offset, len)?)
}

/// Verifies a chunk's uncompressed bytes against its digest and, if it has one, its CRC-32C.
pub fn verify_chunk(c: &ChunkRef, data: &[u8], digester: Digester) -> Result<(), DecodeError> {
    let actual = digester.digest(data);
    if actual != c.digest {
        return Err(DecodeError::DigestMismatch {
            what: Digested::Chunk {
                blob: c.blob_index,
                index: c.index,
            },
            expected: c.digest.to_hex(),
            actual: actual.to_hex(),
        });
    }
    if c.flags & chunk_flags::HAS_CRC32 != 0 {
        let crc = crc32c::crc32c(data);
        if crc != c.crc32 {
            return Err(DecodeError::DigestMismatch {
                what: Digested::ChunkCrc {
                    blob: c.blob_index,
                    index: c.index,
                },
                expected: format!("{:08x}", c.crc32),
                actual: format!("{crc:08x}"),
            });
        }
    }
    Ok(())
}

/// Turns the stored bytes of chunk `c` (its `compressed_size` bytes at `compressed_offset`)
/// into its uncompressed bytes, verified by digest and CRC. `compressor` is the blob's.
pub fn decode_chunk(
    stored: &[u8],
    compressor: Compressor,
    c: &ChunkRef,
    digester: Digester,
) -> Result<Vec<u8>, DecodeError> {
    check_chunk_sizes(c)?;
    if stored.len() as u64 != u64::from(c.compressed_size) {
        return Err(DecodeError::Truncated {
            what: "chunk",
            offset: c.compressed_offset,
            needed: c.compressed_size.into(),
            available: stored.len() as u64,
        });
    }
    let data = if c.is_compressed() {
        decompress(
            compressor,
            stored,
            c.uncompressed_size as usize,
            "chunk",
            c.compressed_offset,
        )?
    } else {
        if stored.len() != c.uncompressed_size as usize {
            return Err(bad_chunk(
                c,
                ChunkProblem::StoredSizeMismatch {
                    stored: stored.len() as u32,
                    uncompressed: c.uncompressed_size,
                },
            ));
        }
        stored.to_vec()
    };
    verify_chunk(c, &data, digester)?;
    Ok(data)
}

/// Reads one chunk from a (compressed) blob, decompresses it and verifies its digest and CRC.
pub fn read_chunk<R: ReadAt + ?Sized>(
    src: &R,
    info: &BlobInfo,
    c: &ChunkRef,
    digester: Digester,
) -> Result<Vec<u8>, DecodeError> {
    check_chunk_sizes(c)?;
    let stored = read_chunk_range(src, c, c.compressed_offset, c.compressed_size.into())?;
    decode_chunk(&stored, info.compressor, c, digester)
}

/// Reads one chunk from an uncompressed cache file (`<id>.blob.data`) at its uncompressed
/// offset and verifies it.
pub fn read_chunk_uncompressed<R: ReadAt + ?Sized>(
    src: &R,
    c: &ChunkRef,
    digester: Digester,
) -> Result<Vec<u8>, DecodeError> {
    check_chunk_sizes(c)?;
    let data = read_chunk_range(src, c, c.uncompressed_offset, c.uncompressed_size.into())?;
    verify_chunk(c, &data, digester)?;
    Ok(data)
}

/// Reads the ToC at the end of a blob, if it has one (`Ok(None)` if the last tar header is
/// not `rafs.blob.toc`).
pub fn read_toc<R: ReadAt + ?Sized>(src: &R) -> Result<Option<Vec<TocEntry>>, DecodeError> {
    let size = src.size();
    if size < TAR_HEADER_SIZE as u64 {
        return Ok(None);
    }
    let hdr_at = size - TAR_HEADER_SIZE as u64;
    let Ok((name, len)) = tarhdr::decode(&src.read_vec(hdr_at, TAR_HEADER_SIZE as u64)?, hdr_at)
    else {
        return Ok(None);
    };
    if name != SECTION_TOC {
        return Ok(None);
    }
    let max = (28 * TOC_ENTRY_SIZE as u64).min(hdr_at);
    let rule = if len % TOC_ENTRY_SIZE as u64 != 0 {
        Some(Rule::MultipleOf(TOC_ENTRY_SIZE as u64))
    } else if len > max {
        Some(Rule::AtMost(max))
    } else {
        None
    };
    if let Some(rule) = rule {
        return Err(DecodeError::BadBlobSection {
            what: "blob ToC",
            offset: hdr_at,
            problem: BlobProblem::Field {
                field: "size",
                value: len,
                rule,
            },
        });
    }
    let at = hdr_at - len;
    let bytes = src.read_vec(at, len)?;
    let mut r = Reader::new(&bytes, at, "blob ToC");
    let mut out = Vec::new();
    while r.remaining() > 0 {
        let mut e = r.sub(TOC_ENTRY_SIZE, "blob ToC entry")?;
        out.push(TocEntry::decode(&mut e)?);
    }
    Ok(Some(out))
}

/// Extracts the bootstrap inlined in a blob (`--blob-inline-meta`): through the ToC when
/// present (verifying its SHA-256), else the `image.boot` section at the very end.
pub fn extract_inline_bootstrap<R: ReadAt + ?Sized>(src: &R) -> Result<Vec<u8>, DecodeError> {
    let not_inline = || DecodeError::Unsupported {
        what: "blob",
        feature: Feature::NoInlinedBootstrap,
    };
    if let Some(toc) = read_toc(src)? {
        let e = toc
            .iter()
            .find(|e| e.name == SECTION_BOOT)
            .ok_or_else(not_inline)?;
        let bad = |field, value, rule| DecodeError::BadBlobSection {
            what: "blob ToC entry image.boot",
            offset: e.compressed_offset,
            problem: BlobProblem::Field { field, value, rule },
        };
        let c = e
            .compressor()
            .ok_or_else(|| bad("flags", e.flags.into(), Rule::Known))?;
        for (field, value) in [
            ("uncompressed_size", e.uncompressed_size),
            ("compressed_size", e.compressed_size),
        ] {
            if value > MAX_BOOTSTRAP_SIZE {
                return Err(bad(field, value, Rule::AtMost(MAX_BOOTSTRAP_SIZE)));
            }
        }
        let stored = src.read_vec(e.compressed_offset, e.compressed_size)?;
        let boot = decompress(
            c,
            &stored,
            e.uncompressed_size as usize,
            "inlined bootstrap",
            e.compressed_offset,
        )?;
        let actual = sha256(&boot);
        if actual.0 != e.uncompressed_digest {
            return Err(DecodeError::DigestMismatch {
                what: Digested::Section(SECTION_BOOT),
                expected: crate::digest::hex(&e.uncompressed_digest),
                actual: actual.to_hex(),
            });
        }
        return Ok(boot);
    }
    let size = src.size();
    if size < TAR_HEADER_SIZE as u64 {
        return Err(not_inline());
    }
    let hdr_at = size - TAR_HEADER_SIZE as u64;
    let (name, len) = tarhdr::decode(&src.read_vec(hdr_at, TAR_HEADER_SIZE as u64)?, hdr_at)
        .map_err(|_| not_inline())?;
    if name != SECTION_BOOT || len > hdr_at || len > MAX_BOOTSTRAP_SIZE {
        return Err(not_inline());
    }
    Ok(src.read_vec(hdr_at - len, len)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blob::writer::{BlobOptions, BlobWriter};
    use crate::chunk::{process_chunk, ChunkParams};

    fn build(inline: bool, toc: bool, v2: bool) -> (Vec<u8>, BlobInfo, Vec<ChunkRef>) {
        let params = ChunkParams::default();
        let mut w = BlobWriter::new(BlobOptions {
            compressor: Compressor::Zstd,
            digester: Digester::Blake3,
            chunk_size: 0x1000,
            blob_index: 0,
            chunk_info_v2: v2,
            inline_meta: inline,
            blob_toc: toc,
            aligned: true,
            ci_table: true,
            extra_features: 0,
        });
        let mut blob = Vec::new();
        let mut refs = Vec::new();
        for i in 0..20u8 {
            let raw: Vec<u8> = (0..3000u32).map(|j| (j as u8).wrapping_mul(i)).collect();
            let (c, d) = w.add(process_chunk(&raw, &params).unwrap()).unwrap();
            refs.push(c);
            blob.extend(d.unwrap_or_default());
        }
        let (more, p) = w.finish_chunks();
        blob.extend(more);
        let (more, info, _) = p.finish(inline.then_some(&b"bootstrap bytes"[..]));
        blob.extend(more);
        (blob, info, refs)
    }

    #[test]
    fn chunks_and_ci_read_back() {
        for (inline, toc, v2) in [
            (false, false, false),
            (true, true, true),
            (false, true, false),
        ] {
            let (blob, info, refs) = build(inline, toc, v2);
            let ci = read_ci_entries(&blob, &info).unwrap();
            assert_eq!(ci.len(), info.chunk_count as usize);
            for c in &refs {
                let e = ci[c.index as usize];
                assert_eq!(
                    (e.compressed_offset, e.compressed_size),
                    (c.compressed_offset, c.compressed_size)
                );
                assert_eq!(
                    read_chunk(&blob, &info, c, Digester::Blake3).unwrap().len(),
                    3000
                );
            }
            if inline {
                assert_eq!(extract_inline_bootstrap(&blob).unwrap(), b"bootstrap bytes");
            } else {
                assert!(extract_inline_bootstrap(&blob).is_err());
            }
        }
    }

    #[test]
    fn a_corrupted_byte_is_detected() {
        let (mut blob, info, refs) = build(false, false, false);
        let c = refs[3];
        blob[c.compressed_offset as usize + 1] ^= 0x40;
        assert!(read_chunk(&blob, &info, &c, Digester::Blake3).is_err());
        let mut bad = info.clone();
        bad.ci_offset += 1;
        assert!(read_ci_entries(&blob, &bad).is_err());
    }
}
