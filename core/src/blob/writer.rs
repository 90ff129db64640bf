//! The streaming blob writer (`blob.md` §3–§7). The host feeds processed chunks in blob order
//! and appends whatever bytes the writer returns to the blob file; the writer deduplicates
//! chunks, assigns offsets and ci indexes, hashes every byte (the blob id) and, at the end,
//! produces the ci table, chunk-digest array, optional inlined bootstrap and ToC.

use std::collections::HashMap;

use crate::blob::ci::{CiEntry, CiHeader};
use crate::blob::tarhdr;
use crate::blob::toc::{flag_of, TocEntry, TOC_FLAG_NONE};
use crate::blob::{
    MAX_CHUNKS_PER_BLOB, SECTION_BLOB, SECTION_BOOT, SECTION_DIGEST, SECTION_META,
    SECTION_META_HEADER, SECTION_TOC,
};
use crate::chunk::Processed;
use crate::codec::{round_up, Codec};
use crate::compress::compress;
use crate::digest::{sha256, Digest, Digester, Sha256Stream};
use crate::error::BuildError;
use crate::model::{blob_features, chunk_flags, BlobInfo, ChunkRef, Compressor};

/// What kind of blob to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobOptions {
    pub compressor: Compressor,
    pub digester: Digester,
    pub chunk_size: u32,
    /// Index of this blob in the bootstrap's blob table.
    pub blob_index: u32,
    /// Write 24-byte v2 ci entries (else 16-byte v1).
    pub chunk_info_v2: bool,
    /// The bootstrap will be inlined (`--blob-inline-meta`).
    pub inline_meta: bool,
    /// `--features blob-toc`.
    pub blob_toc: bool,
    /// Align uncompressed chunk offsets to 4 KiB (always for v6).
    pub aligned: bool,
    /// Write the compression-info table (v6); RAFS v5 blobs hold chunk data only.
    pub ci_table: bool,
    /// Further [`blob_features`] bits to record (e.g. `IS_SEPARATED_WITH_PREFETCH_FILES` for
    /// the blob `optimize` writes).
    pub extra_features: u32,
}

/// Writes one blob incrementally.
#[derive(Debug)]
pub struct BlobWriter {
    opts: BlobOptions,
    pos: u64,
    data_size: u64,
    uncompressed_end: u64,
    hasher: Sha256Stream,
    known: HashMap<(Digest, u32), ChunkRef>,
    chunks: Vec<ChunkRef>,
}

impl BlobWriter {
    pub fn new(opts: BlobOptions) -> Self {
        BlobWriter {
            opts,
            pos: 0,
            data_size: 0,
            uncompressed_end: 0,
            hasher: Sha256Stream::new(),
            known: HashMap::new(),
            chunks: Vec::new(),
        }
    }

    /// Makes an existing chunk (of a parent layer or a chunk dictionary) available for dedup.
    pub fn add_known(&mut self, c: ChunkRef) {
        self.known
            .entry((c.digest, c.uncompressed_size))
            .or_insert(c);
    }

    /// Number of chunks written to this blob so far.
    pub fn chunk_count(&self) -> u32 {
        self.chunks.len() as u32
    }

    /// Adds one chunk. Returns its reference and, unless it was deduplicated, the bytes to
    /// append to the blob.
    pub fn add(&mut self, p: Processed) -> Result<(ChunkRef, Option<Vec<u8>>), BuildError> {
        if let Some(c) = self.known.get(&(p.digest, p.uncompressed_size)) {
            return Ok((*c, None));
        }
        if p.duplicate {
            return Err(BuildError::Conflict {
                path: p.digest.to_hex(),
                reason: "a chunk marked as a duplicate has no earlier copy in the blob".into(),
            });
        }
        if self.chunks.len() as u32 >= MAX_CHUNKS_PER_BLOB {
            return Err(BuildError::Limit {
                what: "chunks per blob",
                reason: format!("a blob holds at most {MAX_CHUNKS_PER_BLOB} chunks"),
            });
        }
        let mut flags = chunk_flags::HAS_CRC32;
        if p.compressed {
            flags |= chunk_flags::COMPRESSED;
        }
        let c = ChunkRef {
            digest: p.digest,
            blob_index: self.opts.blob_index,
            index: self.chunks.len() as u32,
            flags,
            compressed_offset: self.pos,
            compressed_size: p.data.len() as u32,
            uncompressed_offset: self.uncompressed_end,
            uncompressed_size: p.uncompressed_size,
            crc32: p.crc32,
        };
        self.uncompressed_end += if self.opts.aligned {
            round_up(p.uncompressed_size as u64, 4096)
        } else {
            p.uncompressed_size as u64
        };
        self.data_size += p.data.len() as u64;
        self.known.insert((p.digest, p.uncompressed_size), c);
        self.chunks.push(c);
        self.emit(&p.data);
        Ok((c, Some(p.data)))
    }

    fn emit(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
        self.pos += bytes.len() as u64;
    }

    fn features(&self) -> u32 {
        let o = &self.opts;
        let has_chunks = !self.chunks.is_empty();
        let mut f = blob_features::CAP_TAR_TOC | o.extra_features;
        if o.inline_meta {
            f |= blob_features::INLINED_FS_META | blob_features::HAS_TAR_HEADER;
        }
        if o.blob_toc {
            f |= blob_features::HAS_TOC | blob_features::HAS_TAR_HEADER;
            if has_chunks {
                f |= blob_features::INLINED_CHUNK_DIGEST;
            }
        }
        if has_chunks && o.ci_table {
            // A v6 flag: upstream's v5 blobs never carry it, even with `--aligned-chunk`.
            if o.aligned {
                f |= blob_features::ALIGNED;
            }
            if o.chunk_info_v2 {
                f |= blob_features::CHUNK_INFO_V2;
            }
        }
        f
    }

    /// Ends the chunk data: returns the bytes to append (data-section header, ci table,
    /// digest array) and the pending blob, which knows everything but the bootstrap.
    pub fn finish_chunks(mut self) -> (Vec<u8>, PendingBlob) {
        let features = self.features();
        let tar = features & blob_features::HAS_TAR_HEADER != 0;
        let mut out = Vec::new();
        let mut toc = Vec::new();
        let mut info = BlobInfo {
            blob_id: String::new(),
            chunk_size: self.opts.chunk_size,
            chunk_count: self.chunks.len() as u32,
            compressor: self.opts.compressor,
            digester: self.opts.digester,
            features,
            uncompressed_size: self.uncompressed_end,
            ..Default::default()
        };
        let mut ci_raw = Vec::new();
        let mut ci_header = Vec::new();
        if !self.chunks.is_empty() && self.opts.ci_table {
            if tar {
                let h = tarhdr::encode(SECTION_BLOB, self.data_size);
                self.emit(&h);
                out.extend_from_slice(&h);
                // Quirk kept for byte equality: this digest covers everything written so
                // far, including the section's own tar header (blob.md §6).
                let upto = self.hasher.clone();
                toc.push(TocEntry {
                    flags: TOC_FLAG_NONE,
                    name: SECTION_BLOB.into(),
                    uncompressed_digest: upto.finish().0,
                    compressed_offset: 0,
                    compressed_size: self.data_size,
                    uncompressed_size: self.uncompressed_end,
                });
            }
            for c in &self.chunks {
                let e = CiEntry {
                    uncompressed_offset: c.uncompressed_offset,
                    uncompressed_size: c.uncompressed_size,
                    compressed_offset: c.compressed_offset,
                    compressed_size: c.compressed_size,
                    flags: c.flags,
                    data: c.crc32 as u64,
                };
                if self.opts.chunk_info_v2 {
                    e.encode_v2(&mut ci_raw);
                } else {
                    e.encode_v1(&mut ci_raw);
                }
            }
            let (ci_stored, ci_compressor) = match compress(self.opts.compressor, &ci_raw) {
                Ok(z) if self.opts.compressor != Compressor::None && z.len() < ci_raw.len() => {
                    (z, self.opts.compressor)
                }
                _ => (ci_raw.clone(), Compressor::None),
            };
            info.ci_compressor = ci_compressor;
            info.ci_offset = self.pos;
            info.ci_compressed_size = ci_stored.len() as u64;
            info.ci_uncompressed_size = ci_raw.len() as u64;
            ci_header = CiHeader {
                features,
                ci_compressor: ci_compressor.code(),
                ci_entries: info.chunk_count,
                ci_offset: info.ci_offset,
                ci_compressed_size: info.ci_compressed_size,
                ci_uncompressed_size: info.ci_uncompressed_size,
                ..Default::default()
            }
            .to_bytes();
            self.emit(&ci_stored);
            self.emit(&ci_header);
            out.extend_from_slice(&ci_stored);
            out.extend_from_slice(&ci_header);
            if tar {
                let h = tarhdr::encode(
                    SECTION_META,
                    info.ci_compressed_size + ci_header.len() as u64,
                );
                self.emit(&h);
                out.extend_from_slice(&h);
            }
            toc.push(TocEntry {
                flags: flag_of(ci_compressor),
                name: SECTION_META.into(),
                uncompressed_digest: sha256(&ci_raw).0,
                compressed_offset: info.ci_offset,
                compressed_size: info.ci_compressed_size,
                uncompressed_size: info.ci_uncompressed_size,
            });
            toc.push(TocEntry {
                flags: TOC_FLAG_NONE,
                name: SECTION_META_HEADER.into(),
                uncompressed_digest: sha256(&ci_header).0,
                compressed_offset: info.ci_offset + info.ci_compressed_size,
                compressed_size: ci_header.len() as u64,
                uncompressed_size: ci_header.len() as u64,
            });
            if self.opts.blob_toc {
                let digests: Vec<u8> = self.chunks.iter().flat_map(|c| c.digest.0).collect();
                let at = self.pos;
                let h = tarhdr::encode(SECTION_DIGEST, digests.len() as u64);
                self.emit(&digests);
                self.emit(&h);
                out.extend_from_slice(&digests);
                out.extend_from_slice(&h);
                toc.push(TocEntry {
                    flags: TOC_FLAG_NONE,
                    name: SECTION_DIGEST.into(),
                    uncompressed_digest: sha256(&digests).0,
                    compressed_offset: at,
                    compressed_size: digests.len() as u64,
                    uncompressed_size: digests.len() as u64,
                });
            }
        }
        if !self.chunks.is_empty() && !self.opts.ci_table && tar {
            // RAFS v5 with an inlined bootstrap: the chunk data is a tar section too.
            let h = tarhdr::encode(SECTION_BLOB, self.data_size);
            self.emit(&h);
            out.extend_from_slice(&h);
        }
        info.compressed_size = self.pos;
        let pending = PendingBlob {
            opts: self.opts,
            pos: self.pos,
            hasher: self.hasher,
            info,
            toc,
            ci_raw,
            ci_header,
        };
        (out, pending)
    }
}

/// A blob whose chunk data and ci table are written; only the inlined bootstrap (if any) and
/// the ToC remain.
#[derive(Debug)]
pub struct PendingBlob {
    opts: BlobOptions,
    pos: u64,
    hasher: Sha256Stream,
    info: BlobInfo,
    toc: Vec<TocEntry>,
    ci_raw: Vec<u8>,
    ci_header: Vec<u8>,
}

impl PendingBlob {
    /// The blob-table entry as known now (no id, no ToC): what an inlined bootstrap records.
    /// `compressed_size` is the current blob size (the start of `image.boot`).
    pub fn blob_info(&self) -> BlobInfo {
        self.info.clone()
    }

    /// The local cache meta file (`<id>.blob.meta`): uncompressed ci data padded to 4 KiB,
    /// then the ci header. Empty if the blob has no chunks.
    pub fn cache_meta(&self) -> Vec<u8> {
        if self.ci_header.is_empty() {
            return Vec::new();
        }
        let mut v = self.ci_raw.clone();
        v.resize(round_up(v.len() as u64, 4096) as usize, 0);
        v.extend_from_slice(&self.ci_header);
        v
    }

    /// Appends the inlined bootstrap (if `bootstrap` is given) and the ToC (with
    /// `--features blob-toc`). Returns the bytes to append, the final blob-table entry (id
    /// still empty) and the SHA-256 of the whole blob, which is its id.
    pub fn finish(mut self, bootstrap: Option<&[u8]>) -> (Vec<u8>, BlobInfo, Digest) {
        let mut out = Vec::new();
        if let Some(boot) = bootstrap {
            let (stored, c) = if self.opts.blob_toc {
                match compress(Compressor::Zstd, boot) {
                    Ok(z) if z.len() < boot.len() => (z, Compressor::Zstd),
                    _ => (boot.to_vec(), Compressor::None),
                }
            } else {
                (boot.to_vec(), Compressor::None)
            };
            let at = self.pos;
            let h = tarhdr::encode(SECTION_BOOT, stored.len() as u64);
            self.emit(&stored, &mut out);
            self.emit(&h, &mut out);
            self.toc.push(TocEntry {
                flags: flag_of(c),
                name: SECTION_BOOT.into(),
                uncompressed_digest: sha256(boot).0,
                compressed_offset: at,
                compressed_size: stored.len() as u64,
                uncompressed_size: boot.len() as u64,
            });
        } else {
            self.info.compressed_size = self.pos;
        }
        if self.opts.blob_toc {
            let mut entries = Vec::new();
            for e in &self.toc {
                e.encode(&mut entries);
            }
            let h = tarhdr::encode(SECTION_TOC, entries.len() as u64);
            let mut both = entries.clone();
            both.extend_from_slice(&h);
            self.info.toc_size = both.len() as u32;
            self.info.toc_digest = sha256(&both).0;
            self.emit(&both, &mut out);
        }
        if bootstrap.is_none() {
            self.info.compressed_size = self.pos;
        }
        (out, self.info, self.hasher.finish())
    }

    fn emit(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        self.hasher.update(bytes);
        self.pos += bytes.len() as u64;
        out.extend_from_slice(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::{process_chunk, ChunkParams};

    fn opts() -> BlobOptions {
        BlobOptions {
            compressor: Compressor::None,
            digester: Digester::Blake3,
            chunk_size: 0x10_0000,
            blob_index: 0,
            chunk_info_v2: false,
            inline_meta: false,
            blob_toc: false,
            aligned: true,
            ci_table: true,
            extra_features: 0,
        }
    }

    /// rafs-v6.md §18.1: the 4118-byte blob of the worked example.
    #[test]
    fn worked_example_blob_is_byte_exact() {
        let params = ChunkParams {
            compressor: Compressor::None,
            digester: Digester::Blake3,
        };
        let mut w = BlobWriter::new(opts());
        let (c, data) = w.add(process_chunk(b"hello\n", &params).unwrap()).unwrap();
        let mut blob = data.unwrap();
        assert_eq!(c.flags, chunk_flags::HAS_CRC32);
        let (more, pending) = w.finish_chunks();
        blob.extend_from_slice(&more);
        let (more, info, id) = pending.finish(None);
        blob.extend_from_slice(&more);
        assert_eq!(blob.len(), 4118);
        assert_eq!(&blob[..6], b"hello\n");
        assert_eq!(
            &blob[6..22],
            &[0, 0, 0, 0, 0, 0x50, 0, 0, 0, 0, 0, 0, 0, 0x50, 0, 0]
        );
        let h = CiHeader::decode_at(&blob[22..], 22).unwrap();
        assert_eq!(
            h,
            CiHeader {
                features: 0x4000_0001,
                ci_entries: 1,
                ci_offset: 6,
                ci_compressed_size: 16,
                ci_uncompressed_size: 16,
                ..Default::default()
            }
        );
        assert_eq!(id, sha256(&blob));
        assert_eq!(
            (info.compressed_size, info.uncompressed_size, info.features),
            (4118, 4096, 0x4000_0001)
        );
    }

    /// rafs-v6.md §18.8: section sizes of the nydusify-style layer.
    #[test]
    fn nydusify_layer_sections_are_placed_as_upstream() {
        let params = ChunkParams {
            compressor: Compressor::Zstd,
            digester: Digester::Blake3,
        };
        let mut w = BlobWriter::new(BlobOptions {
            compressor: Compressor::Zstd,
            inline_meta: true,
            blob_toc: true,
            ..opts()
        });
        let (_, data) = w.add(process_chunk(b"hello\n", &params).unwrap()).unwrap();
        let mut blob = data.unwrap();
        let (more, pending) = w.finish_chunks();
        blob.extend_from_slice(&more);
        assert_eq!(blob.len(), 5686);
        assert_eq!(pending.blob_info().features, 0x7000_0023);
        assert_eq!(pending.blob_info().compressed_size, 5686);
        assert_eq!(pending.blob_info().ci_compressor, Compressor::None);
        let boot = vec![0u8; 20480];
        let (more, _, id) = pending.finish(Some(&boot));
        blob.extend_from_slice(&more);
        assert_eq!(
            tarhdr::decode(&blob[blob.len() - 512..], 0).unwrap(),
            (SECTION_TOC.into(), 640)
        );
        assert_eq!(id, sha256(&blob));
    }

    #[test]
    fn a_duplicate_without_an_earlier_copy_is_refused() {
        let mut w = BlobWriter::new(opts());
        let p = crate::chunk::duplicate_chunk(b"abc", Digester::Blake3.digest(b"abc"), 0);
        assert!(w.add(p).is_err());
    }

    #[test]
    fn duplicates_are_not_stored_twice() {
        let params = ChunkParams::default();
        let mut w = BlobWriter::new(BlobOptions {
            compressor: Compressor::Zstd,
            ..opts()
        });
        let (a, da) = w
            .add(process_chunk(&[1u8; 5000], &params).unwrap())
            .unwrap();
        let (b, db) = w
            .add(process_chunk(&[1u8; 5000], &params).unwrap())
            .unwrap();
        assert!(da.is_some() && db.is_none());
        assert_eq!(a, b);
        let (c, _) = w.add(process_chunk(&[2u8; 100], &params).unwrap()).unwrap();
        assert_eq!((c.index, c.uncompressed_offset), (1, 8192));
    }
}
