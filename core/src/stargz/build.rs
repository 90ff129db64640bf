//! A TOC to a RAFS v6 tree whose chunks are the layer's gzip members (`stargz.md` §3).

use std::collections::HashMap;

use base64::Engine;

use super::toc::{parse_rfc3339, Toc, TocEntry};
use super::{StargzError, NO_PREFETCH_LANDMARK, PREFETCH_LANDMARK, STARGZ_DEFAULT_CHUNK_SIZE};
use crate::blob::ci::{CiEntry, CiHeader};
use crate::codec::{round_up, Codec};
use crate::compress::compress;
use crate::digest::{Digest, Digester};
use crate::model::{
    blob_features, chunk_flags, encode_rdev, Attrs, BlobInfo, ChunkRef, Compressor, FileType,
};
use crate::tree::{split_path, Entry, Tree, TreeBuilder};

/// The largest chunk RAFS holds.
const MAX_CHUNK_SIZE: u64 = 16 << 20;
/// Device number of the made-up link keys grouping TOC hard links.
const TOC_LINK_DEV: u64 = u64::MAX - 1;

/// What the build needs besides the TOC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StargzOptions {
    /// The layer's id: the hex of its digest without `sha256:`.
    pub blob_id: String,
    /// The layer's size in bytes (bounds the last chunk's stored range).
    pub blob_size: u64,
}

/// A tree built from a TOC.
#[derive(Debug, Clone)]
pub struct StargzBuild {
    /// Chunks reference blob index 0: the layer.
    pub tree: Tree,
    /// The layer's blob-table entry (gzip, SHA-256, ci as upstream computes it).
    pub blob: BlobInfo,
    /// The compression-info section upstream would append to a blob (ci data, then the
    /// 4096-byte ci header): `stargz.md` §3's test vector is its SHA-256.
    pub ci_section: Vec<u8>,
    /// The blob cache's `<id>.blob.meta` for the layer (uncompressed ci padded to 4 KiB, then
    /// the ci header): upstream nydusd takes a reference layer's ci from its work directory,
    /// the layer itself holding none.
    pub cache_meta: Vec<u8>,
    /// The RAFS chunk size chosen (the TOC's own, else 4 MiB).
    pub chunk_size: u32,
    /// Paths listed before `.prefetch.landmark` (the layer's prioritized files), in order.
    pub prioritized: Vec<Vec<u8>>,
}

/// One chunk as the TOC gives it.
struct TocChunk {
    entry: usize,
    file: usize,
    size: u64,
    offset: u64,
    digest: Digest,
}

fn entry_err(i: usize, e: &TocEntry, problem: impl Into<String>) -> StargzError {
    StargzError::Entry {
        index: i,
        name: e.name.clone(),
        problem: problem.into(),
    }
}

fn sha256_of(i: usize, e: &TocEntry, field: &str, v: &str) -> Result<Digest, StargzError> {
    v.strip_prefix("sha256:")
        .filter(|h| h.len() == 64)
        .and_then(Digest::from_hex)
        .ok_or_else(|| entry_err(i, e, format!("{field} {v:?} is not sha256:<64 hex digits>")))
}

/// The path of an entry, relative, without `./`, leading or trailing slashes.
fn rel_path(name: &str) -> Vec<u8> {
    let parts: Vec<&str> = name
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    parts.join("/").into_bytes()
}

/// The RAFS chunk size for `toc`: the size of the first chunk of the first chunked file,
/// else 4 MiB (or the next power of two holding the largest unchunked file, up to 16 MiB).
fn chunk_size_of(toc: &Toc) -> Result<u32, StargzError> {
    if let Some((i, e)) = toc
        .entries
        .iter()
        .enumerate()
        .find(|(_, e)| e.kind == "reg" && e.chunk_size != 0)
    {
        let cs = e.chunk_size;
        if !cs.is_power_of_two() || !(4096..=MAX_CHUNK_SIZE).contains(&cs) {
            return Err(entry_err(
                i,
                e,
                format!("chunkSize {cs} is not a power of two from 4 KiB to 16 MiB"),
            ));
        }
        return Ok(cs as u32);
    }
    let largest = toc
        .entries
        .iter()
        .filter(|e| e.kind == "reg")
        .map(|e| e.size)
        .max()
        .unwrap_or(0);
    Ok((STARGZ_DEFAULT_CHUNK_SIZE as u64)
        .max(largest.next_power_of_two())
        .min(MAX_CHUNK_SIZE) as u32)
}

/// Builds the tree of `toc_json`. Hard links must point at earlier regular files of the same
/// TOC; whiteouts (`.wh.` entries) stay entries for a layered build to apply.
pub fn build_from_toc(toc_json: &[u8], o: &StargzOptions) -> Result<StargzBuild, StargzError> {
    let toc = super::toc::parse_toc(toc_json)?;
    if toc.entries.is_empty() {
        return Err(StargzError::Json {
            reason: "the TOC lists no entries".into(),
        });
    }
    let chunk_size = chunk_size_of(&toc)?;
    let cs = chunk_size as u64;
    let mut b = TreeBuilder::new();
    let mut chunks: Vec<TocChunk> = Vec::new();
    // Per regular file (token): its size and where its next chunk must start.
    let mut files: Vec<(u64, u64)> = Vec::new();
    let mut current: Option<(Vec<u8>, usize)> = None;
    let mut group_of: HashMap<u64, (u64, u64)> = HashMap::new();
    let mut prioritized = Vec::new();
    let mut landmark_seen = false;
    for (i, e) in toc.entries.iter().enumerate() {
        let err = |p: String| entry_err(i, e, p);
        if e.name.is_empty() {
            return Err(err("empty name".into()));
        }
        let rel = rel_path(&e.name);
        split_path(&rel).map_err(|x| err(x.to_string()))?;
        if e.inner_offset != 0 {
            return Err(err(format!(
                "innerOffset {} (several payloads in one gzip stream) is not supported",
                e.inner_offset
            )));
        }
        if e.kind == "chunk" {
            let token = current
                .as_ref()
                .filter(|(p, _)| *p == rel)
                .map(|(_, t)| *t)
                .ok_or_else(|| {
                    err("a chunk entry that does not follow its file's reg entry".into())
                })?;
            let (size, next) = files[token];
            if e.chunk_offset != next {
                return Err(err(format!(
                    "chunkOffset {} where the file's next chunk starts at {next}",
                    e.chunk_offset
                )));
            }
            let len = if e.chunk_size == 0 {
                size.saturating_sub(next)
            } else {
                e.chunk_size
            };
            add_chunk(i, e, token, next, len, size, cs, &mut chunks)?;
            files[token].1 = next + len;
            continue;
        }
        // The previous file must be complete.
        if let Some((_, t)) = current.take() {
            let (size, next) = files[t];
            if next != size {
                return Err(err(format!(
                    "the previous file's chunks end at {next} of its {size} bytes"
                )));
            }
        }
        if rel == PREFETCH_LANDMARK.as_bytes() || rel == NO_PREFETCH_LANDMARK.as_bytes() {
            if rel == PREFETCH_LANDMARK.as_bytes() {
                landmark_seen = true;
            }
            continue;
        }
        let (mtime, mtime_nsec) = if e.modtime.is_empty() {
            (0, 0)
        } else {
            parse_rfc3339(&e.modtime)
                .ok_or_else(|| err(format!("modtime {:?} is not RFC 3339", e.modtime)))?
        };
        let mut attrs = Attrs {
            mode: (e.mode & 0o7777) as u32,
            uid: e.uid,
            gid: e.gid,
            mtime,
            mtime_nsec,
            rdev: 0,
        };
        let mut xattrs = Vec::new();
        for (k, v) in &e.xattrs {
            let value = base64::engine::general_purpose::STANDARD
                .decode(v)
                .map_err(|x| err(format!("xattr {k:?}: value is not base64: {x}")))?;
            xattrs.push((k.as_bytes().to_vec(), value));
        }
        let plain = Entry::new;
        let new = match e.kind.as_str() {
            "dir" => plain(FileType::Directory, attrs, xattrs, None),
            "reg" => {
                let token = files.len();
                if e.chunk_offset != 0 {
                    return Err(err(format!(
                        "a reg entry with chunkOffset {}",
                        e.chunk_offset
                    )));
                }
                let len = if e.chunk_size == 0 {
                    e.size
                } else {
                    e.chunk_size
                };
                files.push((e.size, len));
                if e.size > 0 {
                    add_chunk(i, e, token, 0, len, e.size, cs, &mut chunks)?;
                }
                current = Some((rel.clone(), token));
                if !landmark_seen {
                    prioritized.push(rel.clone());
                }
                Entry {
                    size: e.size,
                    source: token as u64,
                    ..plain(FileType::Regular, attrs, xattrs, None)
                }
            }
            "symlink" => {
                if e.link_name.is_empty() {
                    return Err(err("a symlink without linkName".into()));
                }
                plain(
                    FileType::Symlink,
                    attrs,
                    xattrs,
                    Some(e.link_name.as_bytes().to_vec()),
                )
            }
            "char" | "block" => {
                attrs.rdev = encode_rdev(e.dev_major, e.dev_minor);
                let ft = if e.kind == "char" {
                    FileType::CharDevice
                } else {
                    FileType::BlockDevice
                };
                plain(ft, attrs, xattrs, None)
            }
            "fifo" => plain(FileType::Fifo, attrs, xattrs, None),
            "hardlink" => {
                let target = rel_path(&e.link_name);
                let tid = b.lookup(&target).ok_or_else(|| {
                    err(format!(
                        "hard link to {:?}, which is not an earlier entry of this TOC",
                        e.link_name
                    ))
                })?;
                let tn = b.node(tid).clone();
                match tn.file_type {
                    FileType::Regular => {
                        let key = *group_of
                            .entry(tn.source)
                            .or_insert((TOC_LINK_DEV, tn.source));
                        b.set_link_key(tid, key);
                        Entry {
                            size: tn.size,
                            link_key: Some(key),
                            source: tn.source,
                            ..plain(FileType::Regular, tn.attrs.clone(), tn.xattrs.clone(), None)
                        }
                    }
                    FileType::Directory => return Err(err("a hard link to a directory".into())),
                    // RAFS links only regular files: a link to anything else is a copy.
                    ft => plain(ft, tn.attrs.clone(), tn.xattrs.clone(), tn.symlink.clone()),
                }
            }
            other => return Err(err(format!("unknown type {other:?}"))),
        };
        if rel.is_empty() && new.file_type != FileType::Directory {
            return Err(err("the root must be a directory".into()));
        }
        b.insert(&rel, new).map_err(|x| err(x.to_string()))?;
    }
    if let Some((_, t)) = current {
        let (size, next) = files[t];
        if next != size {
            let i = toc.entries.len() - 1;
            return Err(entry_err(
                i,
                &toc.entries[i],
                format!("the file's chunks end at {next} of its {size} bytes"),
            ));
        }
    }
    if !landmark_seen {
        prioritized.clear();
    }
    let Placed {
        refs,
        blob,
        ci_section,
        cache_meta,
    } = place_chunks(&toc, &chunks, o, chunk_size)?;
    let mut per_file: Vec<Vec<ChunkRef>> = (0..files.len()).map(|_| Vec::new()).collect();
    for (c, r) in chunks.iter().zip(refs) {
        per_file[c.file].push(r);
    }
    let mut tree = b.finish();
    for id in 0..tree.len() {
        let n = tree.node(id);
        if n.file_type == FileType::Regular && n.size > 0 {
            let token = n.link_key.map_or(n.source, |k| k.1) as usize;
            let c = per_file[token].clone();
            tree.set_chunks(id, c);
        }
    }
    Ok(StargzBuild {
        tree,
        blob,
        ci_section,
        cache_meta,
        chunk_size,
        prioritized,
    })
}

#[allow(clippy::too_many_arguments)]
fn add_chunk(
    i: usize,
    e: &TocEntry,
    file: usize,
    file_offset: u64,
    len: u64,
    file_size: u64,
    cs: u64,
    chunks: &mut Vec<TocChunk>,
) -> Result<(), StargzError> {
    let err = |p: String| entry_err(i, e, p);
    if len == 0 || file_offset + len > file_size {
        return Err(err(format!(
            "a chunk of {len} bytes at {file_offset} does not fit the file's {file_size} bytes"
        )));
    }
    if len > cs || (file_offset + len < file_size && len != cs) {
        return Err(err(format!(
            "a chunk of {len} bytes: every chunk but a file's last must be the chunk size {cs}, \
             and none larger"
        )));
    }
    if e.chunk_digest.is_empty() {
        return Err(err("a chunk without chunkDigest".into()));
    }
    let digest = sha256_of(i, e, "chunkDigest", &e.chunk_digest)?;
    chunks.push(TocChunk {
        entry: i,
        file,
        size: len,
        offset: e.offset,
        digest,
    });
    Ok(())
}

/// The chunks placed in the layer, and the layer's blob-table entry and ci.
struct Placed {
    refs: Vec<ChunkRef>,
    blob: BlobInfo,
    ci_section: Vec<u8>,
    cache_meta: Vec<u8>,
}

/// Stored ranges, uncompressed offsets and the ci of the chunks in TOC order: each stored
/// range starts at the member's offset and is the gzip size bound of its content, capped by
/// the next chunk's member (the last by the layer's end).
fn place_chunks(
    toc: &Toc,
    chunks: &[TocChunk],
    o: &StargzOptions,
    chunk_size: u32,
) -> Result<Placed, StargzError> {
    if chunks.len() > crate::blob::MAX_CHUNKS_PER_BLOB as usize {
        return Err(StargzError::Limit {
            what: "chunks per blob",
            reason: format!(
                "{} chunks (at most {})",
                chunks.len(),
                crate::blob::MAX_CHUNKS_PER_BLOB
            ),
        });
    }
    let mut refs = Vec::with_capacity(chunks.len());
    let mut uncompressed = 0u64;
    let mut end = 0u64;
    let mut ci_raw = Vec::with_capacity(chunks.len() * 16);
    for (k, c) in chunks.iter().enumerate() {
        let e = &toc.entries[c.entry];
        let next = chunks.get(k + 1).map_or(o.blob_size, |n| n.offset);
        if c.offset >= next {
            let what = if k + 1 == chunks.len() {
                format!(
                    "offset {} is not inside the {}-byte layer",
                    c.offset, o.blob_size
                )
            } else {
                format!(
                    "offset {} is not before the next chunk's offset {next} (entries out of order)",
                    c.offset
                )
            };
            return Err(entry_err(c.entry, e, what));
        }
        let bound = c.size + 10 + 8 + 5 + (c.size / (16 << 10)) * 5 + 128;
        let stored = bound.min(next - c.offset);
        if stored > MAX_CHUNK_SIZE {
            return Err(entry_err(
                c.entry,
                e,
                format!("a stored range of {stored} bytes (at most 16 MiB)"),
            ));
        }
        let r = ChunkRef {
            digest: c.digest,
            blob_index: 0,
            index: k as u32,
            flags: chunk_flags::COMPRESSED,
            compressed_offset: c.offset,
            compressed_size: stored as u32,
            uncompressed_offset: uncompressed,
            uncompressed_size: c.size as u32,
            crc32: 0,
        };
        CiEntry {
            uncompressed_offset: r.uncompressed_offset,
            uncompressed_size: r.uncompressed_size,
            compressed_offset: r.compressed_offset,
            compressed_size: r.compressed_size,
            flags: r.flags,
            data: 0,
        }
        .encode_v1(&mut ci_raw);
        uncompressed += round_up(c.size, 4096);
        end = end.max(c.offset + stored);
        refs.push(r);
    }
    let features = blob_features::ALIGNED | blob_features::CAP_TAR_TOC;
    // The ci is stored zstd-compressed when that is smaller, as upstream does for reference
    // blobs' metadata.
    let (ci_stored, ci_compressor) = match compress(Compressor::Zstd, &ci_raw) {
        Ok(z) if z.len() < ci_raw.len() => (z, Compressor::Zstd),
        _ => (ci_raw.clone(), Compressor::None),
    };
    // Upstream's builder records the ci at offset 0 (nothing was written before it: the
    // section is never stored in the layer). Its nydusd, though, takes the data of a blob
    // with CAP_TAR_TOC to end where the ci starts: the bootstrap and the cache's
    // `.blob.meta` say the ci follows the last member's range, so nydusd reads the layer.
    let blob = BlobInfo {
        blob_id: o.blob_id.clone(),
        chunk_size,
        chunk_count: refs.len() as u32,
        compressor: Compressor::Gzip,
        digester: Digester::Sha256,
        features,
        compressed_size: end,
        uncompressed_size: uncompressed,
        ci_compressor,
        ci_offset: end,
        ci_compressed_size: ci_stored.len() as u64,
        ci_uncompressed_size: ci_raw.len() as u64,
        ..Default::default()
    };
    let header_at = |ci_offset: u64| {
        CiHeader {
            features,
            ci_compressor: ci_compressor.code(),
            ci_entries: blob.chunk_count,
            ci_offset,
            ci_compressed_size: blob.ci_compressed_size,
            ci_uncompressed_size: blob.ci_uncompressed_size,
            ..Default::default()
        }
        .to_bytes()
    };
    let mut ci_section = ci_stored;
    ci_section.extend_from_slice(&header_at(0));
    let mut cache_meta = ci_raw;
    cache_meta.resize(round_up(cache_meta.len() as u64, 4096) as usize, 0);
    cache_meta.extend_from_slice(&header_at(end));
    Ok(Placed {
        refs,
        blob,
        ci_section,
        cache_meta,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::sha256;

    /// The entries of upstream's `estargz_sample.json` (`stargz.md` §3): a directory, busybox
    /// and a hard link to it, the musl loader and the prefetch landmark.
    const SAMPLE: &str = include_str!("../../tests/golden/stargz/sample-toc.json");

    fn opts() -> StargzOptions {
        StargzOptions {
            blob_id: "ab".repeat(32),
            blob_size: 0x100_0000,
        }
    }

    /// Upstream's unit test: the ci section of the sample is 4128 bytes with SHA-256
    /// bd4eff3f…834e (upstream names the blob by it when no blob id is given).
    #[test]
    fn upstream_test_vector() {
        let b = build_from_toc(SAMPLE.as_bytes(), &opts()).unwrap();
        assert_eq!(b.ci_section.len(), 4128);
        assert_eq!(
            sha256(&b.ci_section).to_hex(),
            "bd4eff3fe6f5a352457c076d2133583e43db895b4af08d717b3fbcaeca89834e"
        );
        assert_eq!(b.chunk_size, 0x40_0000);
        assert_eq!(b.blob.chunk_count, 2);
        assert_eq!(b.blob.compressor, Compressor::Gzip);
        // busybox's range is capped by the loader's member; the loader's by its gzip bound.
        let bb = b.tree.lookup(b"bin/busybox").unwrap();
        let c = b.tree.chunks(bb)[0];
        assert_eq!(
            (
                c.compressed_offset,
                c.compressed_size,
                c.uncompressed_offset
            ),
            (126, 512301, 0)
        );
        let ld = b.tree.lookup(b"lib/ld-musl-x86_64.so.1").unwrap();
        let c = b.tree.chunks(ld)[0];
        assert_eq!(
            (
                c.compressed_offset,
                c.compressed_size,
                c.uncompressed_offset
            ),
            (512427, 580470, 835584)
        );
        // Kept where upstream drops it: the mtime. The link shares busybox's inode and data.
        assert_eq!(b.tree.node(bb).attrs.mtime, 1_560_361_965);
        let link = b.tree.lookup(b"bin/busybox2").unwrap();
        assert_eq!(b.tree.chunks(link), b.tree.chunks(bb));
        assert_eq!(b.tree.node(bb).nlink, 2);
        assert!(b.tree.lookup(b".prefetch.landmark").is_none());
        assert_eq!(
            b.prioritized,
            vec![b"bin/busybox".to_vec(), b"lib/ld-musl-x86_64.so.1".to_vec()]
        );
    }

    /// The cache's `.blob.meta`: the raw ci padded to 4 KiB, then a header placing the ci
    /// right after the last member's range (where upstream nydusd takes the data to end).
    #[test]
    fn the_cache_meta_is_what_nydusd_reads() {
        let b = build_from_toc(SAMPLE.as_bytes(), &opts()).unwrap();
        assert_eq!(b.cache_meta.len(), 8192);
        let h = CiHeader::decode_at(&b.cache_meta[4096..], 4096).unwrap();
        assert_eq!(
            (
                h.ci_offset,
                h.ci_entries,
                h.ci_uncompressed_size,
                h.features
            ),
            (b.blob.compressed_size, 2, 32, 0x4000_0001)
        );
        assert_eq!(b.blob.ci_offset, b.blob.compressed_size);
        // The raw ci is the vector's (whose header says offset 0, as upstream's builder).
        assert_eq!(&b.cache_meta[..32], &b.ci_section[..32]);
        assert!(b.cache_meta[32..4096].iter().all(|&x| x == 0));
        let mut r = crate::codec::Reader::new(&b.cache_meta[16..32], 16, "ci");
        let e = CiEntry::decode_v1(&mut r).unwrap();
        assert_eq!(
            (e.compressed_offset, e.uncompressed_offset),
            (512427, 835584)
        );
    }

    fn err_of(json: &str) -> StargzError {
        build_from_toc(json.as_bytes(), &opts()).unwrap_err()
    }

    const D: &str = "sha256:8b7c559b8cccca0d30d01bc4b5dc944766208a53d18a03aa8afe97252207521f";

    #[test]
    fn bad_tocs_name_the_entry() {
        let two = |o1: u64, o2: u64| {
            format!(
                r#"{{"version":1,"entries":[{{"name":"a","type":"reg","size":5,"offset":{o1},"chunkDigest":"{D}"}},{{"name":"b","type":"reg","size":5,"offset":{o2},"chunkDigest":"{D}"}}]}}"#
            )
        };
        // Out of order.
        match err_of(&two(500, 100)) {
            StargzError::Entry {
                index: 0,
                name,
                problem,
            } => {
                assert_eq!(name, "a");
                assert!(problem.contains("out of order"), "{problem}");
            }
            e => panic!("{e:?}"),
        }
        // Past the layer.
        match err_of(&two(100, 0x100_0000)) {
            StargzError::Entry {
                index: 1, problem, ..
            } => assert!(problem.contains("layer"), "{problem}"),
            e => panic!("{e:?}"),
        }
        let one = |fields: &str| format!(r#"{{"version":1,"entries":[{{"name":"a",{fields}}}]}}"#);
        for (fields, want) in [
            (
                r#""type":"reg","size":5,"offset":1"#.to_string(),
                "chunkDigest",
            ),
            (
                r#""type":"reg","size":5,"offset":1,"chunkDigest":"md5:00""#.to_string(),
                "sha256",
            ),
            (r#""type":"sock""#.to_string(), "unknown type"),
            (r#""type":"symlink""#.to_string(), "linkName"),
            (
                r#""type":"hardlink","linkName":"nowhere""#.to_string(),
                "earlier entry",
            ),
            (
                r#""type":"dir","modtime":"yesterday""#.to_string(),
                "RFC 3339",
            ),
            (
                r#""type":"dir","xattrs":{"user.a":"!!"}"#.to_string(),
                "base64",
            ),
            (
                format!(r#""type":"reg","size":5,"offset":1,"innerOffset":3,"chunkDigest":"{D}""#),
                "innerOffset",
            ),
            (
                format!(
                    r#""type":"chunk","size":5,"offset":1,"chunkOffset":4,"chunkDigest":"{D}""#
                ),
                "follow",
            ),
            (
                format!(
                    r#""type":"reg","size":9000000,"chunkSize":4194304,"offset":1,"chunkDigest":"{D}""#
                ),
                "chunks end",
            ),
        ] {
            match err_of(&one(&fields)) {
                StargzError::Entry {
                    index: 0, problem, ..
                } => {
                    assert!(problem.contains(want), "{fields}: {problem}")
                }
                e => panic!("{fields}: {e:?}"),
            }
        }
        assert!(matches!(
            err_of(r#"{"version":1,"entries":[]}"#),
            StargzError::Json { .. }
        ));
        assert!(matches!(err_of("[1,2"), StargzError::Json { .. }));
    }

    const TWO: &[u8] = include_bytes!("../../tests/golden/stargz/two.esgz");
    const TWO_LISTING: &str = include_str!("../../tests/golden/stargz/two.listing");

    /// A real eStargz layer (made by ctr-remote 0.12: a whiteout and one small file) to a
    /// bootstrap that lists and reads back as the golden listing, every chunk inflated from
    /// its member.
    #[test]
    fn a_real_layer_reads_back() {
        let boot =
            super::super::layer_bootstrap(TWO, &crate::digest::sha256(TWO).to_hex()).unwrap();
        let b = crate::rafs::Rafs::open(boot).unwrap();
        assert!(b.check().findings.is_empty(), "{:?}", b.check().findings);
        let l = crate::listing::listing(&b, &[TWO]).unwrap();
        assert_eq!(l, TWO_LISTING, "{l}");
        // A damaged member is an error, never other bytes.
        let toc = super::super::layer_toc(TWO).unwrap();
        let t = crate::stargz::toc::parse_toc(&toc).unwrap();
        let two = t.entries.iter().find(|e| e.name == "etc/two").unwrap();
        let mut bad = TWO.to_vec();
        bad[two.offset as usize + 12] ^= 0xff;
        assert!(crate::listing::listing(&b, &[&bad]).is_err());
    }

    #[test]
    fn chunked_files_and_special_entries() {
        let mb4 = 4u64 << 20;
        let json = format!(
            r#"{{"version":1,"entries":[
            {{"name":"./","type":"dir","mode":16877,"uid":1,"gid":2}},
            {{"name":"big","type":"reg","size":{},"chunkSize":{mb4},"offset":100,"chunkDigest":"{D}","xattrs":{{"user.k":"dmFs"}}}},
            {{"name":"big","type":"chunk","chunkOffset":{mb4},"chunkSize":{mb4},"offset":200,"chunkDigest":"{D}"}},
            {{"name":"big","type":"chunk","chunkOffset":{},"offset":300,"chunkDigest":"{D}"}},
            {{"name":"dev/null","type":"char","devMajor":1,"devMinor":3,"mode":438}},
            {{"name":"fifo","type":"fifo","mode":420}},
            {{"name":".wh.gone","type":"reg","size":0}}
            ]}}"#,
            2 * mb4 + 10,
            2 * mb4
        );
        let b = build_from_toc(json.as_bytes(), &opts()).unwrap();
        let big = b.tree.lookup(b"big").unwrap();
        let c = b.tree.chunks(big);
        assert_eq!(c.len(), 3);
        assert_eq!(
            c.iter().map(|c| c.uncompressed_size).collect::<Vec<_>>(),
            [4 << 20, 4 << 20, 10]
        );
        assert_eq!(
            c.iter().map(|c| c.compressed_size).collect::<Vec<_>>(),
            [100, 100, 161]
        );
        assert_eq!(
            b.tree.node(big).xattrs,
            vec![(b"user.k".to_vec(), b"val".to_vec())]
        );
        let null = b.tree.node(b.tree.lookup(b"dev/null").unwrap());
        assert_eq!(
            (null.file_type, null.attrs.rdev),
            (FileType::CharDevice, 0x103)
        );
        assert!(b.tree.lookup(b"fifo").is_some() && b.tree.lookup(b".wh.gone").is_some());
        assert_eq!((b.tree.node(0).attrs.uid, b.tree.node(0).attrs.gid), (1, 2));
        assert!(b.prioritized.is_empty());
    }
}
