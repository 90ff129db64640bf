//! `nydus-image check`: every invariant of the bootstrap and, given the blobs, every chunk's
//! data read back and verified by digest. All findings are listed; any error exits non-zero.

use std::collections::HashSet;
use std::time::Instant;

use anyhow::{bail, Result};
use nydus_core::rafs::Rafs as Bootstrap;
use nydus_core::report::Report;
use serde_json::json;

use super::args::CheckArgs;
use nydus_host_storage::open::{open_image, resolved_blobs};
use nydus_host_storage::{BlobLocator, ChunkSource};

use super::args::bootstrap_arg;
use nydus_host_storage::atomic::write_file;

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

pub fn run(a: CheckArgs) -> Result<()> {
    let t0 = Instant::now();
    let path = bootstrap_arg(&a.bootstrap_pos, &a.bootstrap)?;
    let mut locator = super::blobs::locator(&a.blobs)?;
    let img = open_image(&path)?;
    if let Some(b) = &img.inline_blob {
        if locator.is_empty() {
            locator = BlobLocator::single(b.clone());
        }
    }
    let mut report = img.boot.check();
    if a.verbose {
        let _ = img.boot.walk(&mut |p, ino| {
            println!(
                "{} nid {} ino {} mode {:o} uid {} gid {} size {} nlink {}",
                String::from_utf8_lossy(p),
                ino.nid,
                ino.ino,
                ino.attrs.mode,
                ino.attrs.uid,
                ino.attrs.gid,
                ino.size,
                ino.nlink
            );
            Ok(())
        });
    }
    // A blob's own inline bootstrap names it "x" × 64: resolved to the file's id.
    let blobs = resolved_blobs(&img)?;
    let mut chunks = ChunkSource::new(locator, &blobs);
    if chunks.has_blobs() {
        verify_data(&img.boot, &mut chunks, &mut report);
    }
    for f in &report.findings {
        crate::log::record(
            crate::log::Level::Error,
            &format!("{}: {f}", path.display()),
        );
        eprintln!("{}: {f}", path.display());
    }
    let blob_ids: Vec<&str> = blobs.iter().map(|b| b.blob_id.as_str()).collect();
    println!("RAFS v{} filesystem {}", img.boot.version(), path.display());
    for (i, b) in blobs.iter().enumerate() {
        println!(
            "  blob {i}: {} chunks {} compressed {} uncompressed {} compressor {}",
            b.blob_id,
            b.chunk_count,
            b.compressed_size,
            b.uncompressed_size,
            b.compressor.name()
        );
    }
    println!(
        "  {} inodes, {} chunk references, {} chunks verified by digest, {} errors, {} warnings",
        report.inodes,
        report.chunks,
        report.chunks_verified,
        report.errors(),
        report.findings.len() - report.errors()
    );
    if let Some(j) = &a.output_json {
        let v = json!({
            "version": concat!(env!("CARGO_PKG_NAME"), "-", env!("CARGO_PKG_VERSION")),
            "bootstrap": path.display().to_string(),
            "blobs": blob_ids,
            "trace": { "total_seconds": t0.elapsed().as_secs_f64() },
            "fs_version": img.boot.version().to_string(),
            "compressor": img.boot.compressor().name(),
            "findings": report.findings,
            "inodes": report.inodes,
            "chunks": report.chunks,
            "chunks_verified": report.chunks_verified,
        });
        write_file(j, serde_json::to_string(&v)?.as_bytes())?;
    }
    if !report.is_ok() {
        bail!("{}: {} problem(s) found", path.display(), report.errors());
    }
    Ok(())
}
