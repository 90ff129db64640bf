//! `nydus-image stat`: the statistics printed, and `--output-json`.

use anyhow::{bail, Result};
use nydus_core::stats::ImageStat;
use nydus_host_image::stat::{bootstraps_in, stat, Stats};
use nydus_host_storage::atomic::write_file;
use nydus_host_storage::open_image;

use super::args::StatArgs;
use crate::cli::out;

fn print_stat(s: &ImageStat) {
    out!("{}", s.bootstrap);
    out!(
        "  inodes {}: files {} (empty {}), directories {}, symlinks {}, special {}, extra hard links {}",
        s.inodes, s.files, s.empty_files, s.directories, s.symlinks, s.special_files, s.hardlinks
    );
    out!(
        "  file bytes {}, chunk references {}, unique chunks {} ({} bytes, {} compressed), dedup ratio {:.3}",
        s.file_bytes, s.chunk_references, s.unique_chunks, s.unique_bytes, s.unique_compressed_bytes, s.dedup_ratio
    );
    for (i, b) in s.blobs.iter().enumerate() {
        out!(
            "  blob {i} {}: stores {} chunks ({} bytes compressed), serves {} bytes from {} chunks ({} bytes), dedup saved {} bytes, {} chunks unused",
            b.blob_id, b.stored_chunks, b.compressed_size, b.referenced_bytes, b.used_chunks, b.used_bytes, b.saved_bytes, b.unused_chunks
        );
    }
}

pub fn run(a: StatArgs) -> Result<()> {
    let mut images = Vec::new();
    match (&a.bootstrap_pos, &a.bootstrap) {
        (Some(_), Some(_)) => bail!("give the bootstrap either positionally or with -B, not both"),
        (Some(p), None) | (None, Some(p)) => images.push(open_image(p)?),
        (None, None) => {}
    }
    if let Some(d) = &a.blob_dir {
        images.extend(bootstraps_in(d)?);
    }
    let target = a.target.as_ref().map(|t| open_image(t)).transpose()?;
    if images.is_empty() && target.is_none() {
        bail!("nothing to do: give -B <bootstrap>, -D <dir of bootstraps> or -T <target>");
    }
    let Stats {
        images: per_image,
        total,
        target: target_stat,
    } = stat(&images, target.as_ref())?;
    for s in &per_image {
        print_stat(s);
    }
    if per_image.len() > 1 {
        print_stat(&total);
    }
    if let Some(t) = &target_stat {
        out!("target after deduplication against the other images:");
        print_stat(t);
    }
    if let Some(j) = &a.output_json {
        let v = serde_json::json!({ "images": per_image, "total": total, "target": target_stat });
        write_file(j, serde_json::to_string_pretty(&v)?.as_bytes())?;
    }
    Ok(())
}
