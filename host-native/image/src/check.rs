//! `nydus-image check`: every invariant of a bootstrap and, given the blobs, every chunk's
//! data read back and verified by digest, all findings in one report; and the validation
//! every build and merge runs on what it wrote before committing it.

use std::collections::HashSet;

use std::sync::Mutex;

use anyhow::{anyhow, bail, Result};
use nydus_core::blob::ci::CiEntry;
use nydus_core::blob::reader::read_ci_entries;
use nydus_core::model::{blob_features, BlobInfo};
use nydus_core::rafs::Rafs as Bootstrap;
use nydus_core::read::exec::BlobLayout;
use nydus_core::read::{ChunkExtent, Filesystem, ReadPlan};
use nydus_core::report::Report;
use nydus_core::source::ReadAt;
use nydus_host_storage::open::{resolved_blobs, Image};
use nydus_host_storage::store::StoreSource;
use nydus_host_storage::ChunkReader;

/// Checks a bootstrap's bytes as the post-build validation of `create` and `merge`.
pub fn self_check(bootstrap: &[u8]) -> Result<()> {
    let boot = Bootstrap::open(bootstrap.to_vec())
        .map_err(|e| anyhow::anyhow!("the new bootstrap does not decode: {e}"))?;
    let report = boot.check();
    if !report.is_ok() {
        let list: Vec<String> = report.findings.iter().map(|f| f.to_string()).collect();
        bail!(
            "the new bootstrap violates the format:\n  {}",
            list.join("\n  ")
        );
    }
    Ok(())
}

/// What checking an image found.
#[derive(Debug)]
pub struct Checked {
    /// The blob table, an inline bootstrap's placeholder id resolved to its blob's.
    pub blobs: Vec<BlobInfo>,
    /// Every finding; [`Report::is_ok`] says whether the image passed.
    pub report: Report,
}

/// Checks an opened image: every invariant of its bootstrap and, with a chunk `reader`, each
/// blob's compression-info table against the bootstrap and every distinct chunk read back
/// (on `threads` threads) and verified by digest. Every bad chunk is a finding of its own.
pub fn check(img: &Image, reader: Option<&ChunkReader>, threads: usize) -> Result<Checked> {
    let mut report = img.boot.check();
    // A blob's own inline bootstrap names it "x" × 64: resolved to the file's id.
    let blobs = resolved_blobs(img)?;
    if let Some(r) = reader {
        verify_data(&img.boot, r, threads, &mut report);
    }
    Ok(Checked { blobs, report })
}

/// The compression-info entries of blob `index` as stored in the blob itself (`None` for an
/// uncompressed blob image or a v5 blob, which carry none).
fn ci_entries(reader: &ChunkReader, index: u32) -> Result<Option<Vec<CiEntry>>> {
    let info = &reader.blobs()[index as usize];
    let v5 = info.features & blob_features::V5_NO_EXT_BLOB_TABLE != 0
        || (info.ci_offset == 0 && info.ci_uncompressed_size == 0);
    let blob = reader.open_blob(index)?;
    if blob.layout == BlobLayout::Uncompressed || info.chunk_count == 0 || v5 || info.is_stargz() {
        return Ok(None);
    }
    let src = StoreSource::new(blob.store.as_ref())?;
    read_ci_entries(&src, info)
        .map(Some)
        .map_err(|e| anyhow!("{}: compression-info table: {e}", blob.store.describe()))
}

/// Reads back every distinct chunk of the image and verifies its digest.
fn verify_data<R: ReadAt + Sync>(
    boot: &Bootstrap<R>,
    reader: &ChunkReader,
    threads: usize,
    report: &mut Report,
) {
    let table = match boot.chunk_table() {
        Ok(t) => t,
        Err(e) => {
            report.error("chunk-info table", e.to_string());
            return;
        }
    };
    // Each blob is opened and its size compared with what the bootstrap says it holds
    // first: a missing or cut blob is one finding, not one per chunk.
    let mut unusable = HashSet::new();
    for i in 0..boot.blobs().len() as u32 {
        if let Some(problem) = blob_problem(reader, i, &table) {
            report.error(
                format!("blob {}", reader.blobs()[i as usize].blob_id),
                problem,
            );
            unusable.insert(i);
        }
    }
    // The blob's own ci table is what nydusd fetches by: it must agree with the bootstrap.
    for i in 0..boot.blobs().len() as u32 {
        if unusable.contains(&i) {
            continue;
        }
        let id = &format!("blob {}", reader.blobs()[i as usize].blob_id);
        match ci_entries(reader, i) {
            Ok(Some(ci)) => {
                let mut last_end = 0u64;
                for (k, e) in ci.iter().enumerate() {
                    if e.uncompressed_offset < last_end || e.uncompressed_offset % 4096 != 0 {
                        report.error(id, format!("ci entry {k}: uncompressed offsets not 4 KiB aligned and increasing"));
                    }
                    last_end = e.uncompressed_offset + u64::from(e.uncompressed_size);
                }
                for c in table.iter().filter(|c| c.blob_index == i) {
                    match ci.get(c.index as usize) {
                        None => report.error(
                            id,
                            format!(
                                "chunk {} has ci index {} beyond the blob's table",
                                c.digest, c.index
                            ),
                        ),
                        Some(e) => {
                            if (
                                e.compressed_offset,
                                e.compressed_size,
                                e.uncompressed_offset,
                                e.uncompressed_size,
                            ) != (
                                c.compressed_offset,
                                c.compressed_size,
                                c.uncompressed_offset,
                                c.uncompressed_size,
                            ) || e.is_compressed() != c.is_compressed()
                            {
                                report.error(id, format!("ci entry {} disagrees with the bootstrap's record of chunk {}", c.index, c.digest));
                            }
                        }
                    }
                }
            }
            Ok(None) => {}
            Err(e) => report.error(id, format!("{e:#}")),
        }
    }
    let mut seen = HashSet::new();
    let unique: Vec<_> = table
        .iter()
        .filter(|c| !unusable.contains(&c.blob_index))
        .filter(|c| seen.insert((c.blob_index, c.index)))
        .copied()
        .collect();
    let plan = match ReadPlan::whole_chunks(&unique, boot.blobs()) {
        Ok(p) => p,
        Err(e) => {
            report.error("chunk-info table", e.to_string());
            return;
        }
    };
    let chunks: Vec<ChunkExtent> = plan.chunks().copied().collect();
    let results = Mutex::new(Vec::new());
    reader.for_each_chunk(&chunks, threads, |_, r| {
        if let Err(e) = r {
            results.lock().unwrap_or_else(|p| p.into_inner()).push(e);
        }
    });
    let mut failed = results.into_inner().unwrap_or_else(|p| p.into_inner());
    failed.sort_by_key(|e| (e.blob.clone(), e.chunk.as_ref().map(|c| c.index)));
    report.chunks_verified += (chunks.len() - failed.len()) as u64;
    // The first few bad chunks of a blob each, then one line for the rest.
    let mut shown: Option<(String, usize)> = None;
    let mut more: Vec<(String, usize)> = Vec::new();
    for e in failed {
        let n = match &mut shown {
            Some((b, n)) if *b == e.blob => {
                *n += 1;
                *n
            }
            _ => {
                shown = Some((e.blob.clone(), 1));
                1
            }
        };
        if n <= CHUNKS_SHOWN_PER_BLOB {
            report.error(format!("blob {}", e.blob), e.detail());
        } else {
            match more.last_mut() {
                Some((b, k)) if *b == e.blob => *k += 1,
                _ => more.push((e.blob.clone(), 1)),
            }
        }
    }
    for (blob, k) in more {
        report.error(
            format!("blob {blob}"),
            format!("and {k} more bad chunk(s) of this blob"),
        );
    }
}

/// Bad chunks listed one by one per blob before the rest are counted in one line.
const CHUNKS_SHOWN_PER_BLOB: usize = 3;

/// Why blob `index` cannot be read at all: it cannot be opened, or it is shorter than the
/// chunks and the compression-info table the bootstrap places in it.
fn blob_problem(
    reader: &ChunkReader,
    index: u32,
    table: &[nydus_core::model::ChunkRef],
) -> Option<String> {
    let blob = match reader.open_blob(index) {
        Ok(b) => b,
        Err(e) => return Some(e.detail()),
    };
    let size = match blob.store.size() {
        Ok(n) => n,
        Err(e) => return Some(format!("{}: {e}", blob.store.describe())),
    };
    let info = &reader.blobs()[index as usize];
    let chunks_end = table
        .iter()
        .filter(|c| c.blob_index == index)
        .map(|c| match blob.layout {
            BlobLayout::Stored => c.compressed_offset + u64::from(c.compressed_size),
            BlobLayout::Uncompressed => c.uncompressed_offset + u64::from(c.uncompressed_size),
        })
        .max()
        .unwrap_or(0);
    let ci_end = match blob.layout {
        BlobLayout::Stored if info.ci_offset > 0 && !info.is_stargz() => {
            info.ci_offset + info.ci_compressed_size
        }
        _ => 0,
    };
    let want = chunks_end.max(ci_end);
    (size < want).then(|| {
        format!(
            "{}: {size} bytes, but the bootstrap places data up to byte {want} in it: a cut or a different blob",
            blob.store.describe()
        )
    })
}
