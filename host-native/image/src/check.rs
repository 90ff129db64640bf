//! `nydus-image check`: every invariant of a bootstrap and, given the blobs, every chunk's
//! data read back and verified by digest, all findings in one report; and the validation
//! every build and merge runs on what it wrote before committing it.

use std::collections::HashSet;

use anyhow::{bail, Result};
use nydus_core::model::BlobInfo;
use nydus_core::rafs::Rafs as Bootstrap;
use nydus_core::report::Report;
use nydus_host_storage::open::{resolved_blobs, Image};
use nydus_host_storage::{BlobLocator, ChunkSource};

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

/// Checks an opened image: every invariant of its bootstrap and, when `locator` gives blobs
/// (or the image is a blob carrying its bootstrap, then read from that blob), each blob's
/// compression-info table against the bootstrap and every distinct chunk read back and
/// verified by digest.
pub fn check(img: &Image, locator: BlobLocator) -> Result<Checked> {
    let mut locator = locator;
    if let Some(b) = &img.inline_blob {
        if locator.is_empty() {
            locator = BlobLocator::single(b.clone());
        }
    }
    let mut report = img.boot.check();
    // A blob's own inline bootstrap names it "x" × 64: resolved to the file's id.
    let blobs = resolved_blobs(img)?;
    let mut chunks = ChunkSource::new(locator, &blobs);
    if chunks.has_blobs() {
        verify_data(&img.boot, &mut chunks, &mut report);
    }
    Ok(Checked { blobs, report })
}

/// Reads back every distinct chunk of the image and verifies its digest.
fn verify_data(boot: &Bootstrap<Vec<u8>>, chunks: &mut ChunkSource, report: &mut Report) {
    let table = match boot.chunk_table() {
        Ok(t) => t,
        Err(e) => {
            report.error("chunk-info table", e.to_string());
            return;
        }
    };
    // The blob's own ci table is what nydusd fetches by: it must agree with the bootstrap.
    for i in 0..boot.blobs().len() as u32 {
        let id = &boot.blobs()[i as usize].blob_id;
        match chunks.ci_entries(i) {
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
    for c in &table {
        if !seen.insert((c.blob_index, c.index)) {
            continue;
        }
        match chunks.read(c) {
            Ok(_) => report.chunks_verified += 1,
            Err(e) => report.error(format!("blob {}", c.blob_index), format!("{e:#}")),
        }
    }
}
