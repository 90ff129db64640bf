//! `nydus-image check`: the report printed (findings to stderr and the log file, a summary to
//! stdout), `--output-json`, and a non-zero exit on any error.

use std::time::Instant;

use anyhow::{bail, Result};
use nydus_core::read::Filesystem;
use nydus_host_image::check::{check, Checked};
use nydus_host_storage::atomic::write_file;
use nydus_host_storage::{open_image, ReaderOptions};
use serde_json::json;

use super::args::{bootstrap_arg, CheckArgs};
use crate::cli::out;

pub fn run(a: CheckArgs) -> Result<()> {
    let t0 = Instant::now();
    let path = bootstrap_arg(&a.bootstrap_pos, &a.bootstrap)?;
    let local = super::blobs::locator(&a.blobs)?;
    let img = open_image(&path)?;
    let reader = super::blobs::reader(&img, local, ReaderOptions::default())?;
    if a.verbose {
        let _ = img.boot.walk(&mut |p, ino| {
            out!(
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
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let Checked { blobs, report } = check(&img, reader.as_ref(), threads)?;
    for f in &report.findings {
        crate::log::record(
            crate::log::Level::Error,
            &format!("{}: {f}", path.display()),
        );
        eprintln!("{}: {f}", path.display());
    }
    let blob_ids: Vec<&str> = blobs.iter().map(|b| b.blob_id.as_str()).collect();
    out!("RAFS v{} filesystem {}", img.boot.version(), path.display());
    for (i, b) in blobs.iter().enumerate() {
        out!(
            "  blob {i}: {} chunks {} compressed {} uncompressed {} compressor {}",
            b.blob_id,
            b.chunk_count,
            b.compressed_size,
            b.uncompressed_size,
            b.compressor.name()
        );
    }
    out!(
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
