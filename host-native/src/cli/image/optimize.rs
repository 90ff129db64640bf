//! `nydus-image optimize`: a prefetch list read, the listed data gathered into a new blob by
//! [`nydus_host_image::optimize`], a summary printed and `--output-json` written.

use anyhow::{Context, Result};
use nydus_host_image::optimize::{optimize, read_prefetch_list, OptimizePlan};
use nydus_host_storage::atomic::write_file;
use nydus_host_storage::{open_image, ReaderOptions};
use serde_json::json;

use super::args::OptimizeArgs;
use crate::cli::out;

pub fn run(a: OptimizeArgs) -> Result<()> {
    let (prefetch, mut warnings) = read_prefetch_list(&a.prefetch_files)?;
    let local = super::blobs::locator(&a.blobs)?;
    let img = open_image(&a.bootstrap)?;
    let reader = super::blobs::reader(&img, local, ReaderOptions::default())?.with_context(|| {
        format!(
            "{}: no blobs to read the prefetch data from (use -b <file>, -D <dir> or --backend-type)",
            a.bootstrap.display()
        )
    })?;
    let output_blob_dir = match &a.output_blob_dir {
        Some(d) => d.clone(),
        None => match a.output_bootstrap.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => ".".into(),
        },
    };
    let plan = OptimizePlan {
        prefetch,
        output_bootstrap: a.output_bootstrap.clone(),
        output_blob_dir,
        strict: a.strict,
    };
    let o = optimize(&img, &reader, &plan)?;
    warnings.extend(o.warnings.iter().cloned());
    out!(
        "optimized {} into {}: blob {} ({} chunks, {} bytes, {} uncompressed), {} prefetch entries",
        a.bootstrap.display(),
        a.output_bootstrap.display(),
        o.blob_id,
        o.chunks,
        o.blob_size,
        o.uncompressed_bytes,
        o.prefetch_files.len()
    );
    if let Some(j) = &a.output_json {
        let v = json!({
            "bootstrap": a.output_bootstrap,
            "prefetch_blob_id": o.blob_id,
            "prefetch_blob_path": o.blob_path,
            "prefetch_blob_size": o.blob_size,
            "prefetch_chunks": o.chunks,
            "prefetch_uncompressed_bytes": o.uncompressed_bytes,
            "prefetch_files": o.prefetch_files,
            "blobs": o.blob_ids,
            "warnings": warnings,
        });
        write_file(j, serde_json::to_string_pretty(&v)?.as_bytes())?;
    }
    Ok(())
}
