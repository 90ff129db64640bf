//! `nydus-image stat`: file, chunk and deduplication statistics over one or more bootstraps.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use nydus_core::digest::Digest;
use nydus_core::model::FileType;
use serde::Serialize;

use super::args::StatArgs;
use super::open::{open_image, Image};
use crate::atomic::write_file;

/// Statistics of one image, or of a set of images taken together.
#[derive(Debug, Default, Clone, Serialize)]
pub struct ImageStat {
    pub bootstrap: String,
    pub inodes: u64,
    pub files: u64,
    pub empty_files: u64,
    pub directories: u64,
    pub symlinks: u64,
    pub special_files: u64,
    pub hardlinks: u64,
    /// Sum of regular file sizes (hard links counted once).
    pub file_bytes: u64,
    /// Chunk references from files.
    pub chunk_references: u64,
    /// Chunks with distinct digests.
    pub unique_chunks: u64,
    /// Uncompressed bytes of the distinct chunks.
    pub unique_bytes: u64,
    /// Compressed bytes of the distinct chunks.
    pub unique_compressed_bytes: u64,
    /// `file_bytes / unique_bytes` (1.0 = no duplication).
    pub dedup_ratio: f64,
    /// Per blob (layer) of the image's blob table: what it stores and what the view uses.
    pub blobs: Vec<BlobStat>,
}

/// How one blob (one layer's data) serves an image.
#[derive(Debug, Default, Clone, Serialize)]
pub struct BlobStat {
    pub blob_id: String,
    /// Chunks stored in the blob (from the blob table).
    pub stored_chunks: u64,
    pub compressed_size: u64,
    /// Distinct chunks of this blob that files of the view refer to.
    pub used_chunks: u64,
    /// Uncompressed bytes of those distinct chunks.
    pub used_bytes: u64,
    /// Bytes of file content served from this blob, every reference counted.
    pub referenced_bytes: u64,
    /// `referenced_bytes - used_bytes`: what deduplication saved this blob from storing again
    /// (within a layer, and for chunks later layers reuse instead of storing).
    pub saved_bytes: u64,
    /// Stored chunks nothing in the view uses (hidden by upper layers, or dictionary chunks).
    pub unused_chunks: u64,
}

/// Adds one image to `s`, with `seen` the digests already counted in `s`.
fn accumulate(
    img: &Image,
    s: &mut ImageStat,
    seen: &mut HashMap<Digest, (u64, u64)>,
) -> Result<()> {
    let boot = &img.boot;
    let mut links: HashMap<u64, u32> = HashMap::new();
    let mut per_blob: Vec<BlobStat> = boot
        .blobs()
        .iter()
        .map(|b| BlobStat {
            blob_id: b.blob_id.clone(),
            stored_chunks: b.chunk_count as u64,
            compressed_size: b.compressed_size,
            ..Default::default()
        })
        .collect();
    let mut used: std::collections::HashSet<(u32, u32)> = std::collections::HashSet::new();
    boot.walk(&mut |_, i| {
        s.inodes += 1;
        match i.file_type {
            FileType::Regular => {
                if i.nlink > 1 {
                    let n = links.entry(i.ino).or_insert(0);
                    *n += 1;
                    if *n > 1 {
                        s.hardlinks += 1;
                        return Ok(());
                    }
                }
                s.files += 1;
                if i.size == 0 {
                    s.empty_files += 1;
                }
                s.file_bytes += i.size;
                for c in boot.chunks(i.nid)? {
                    s.chunk_references += 1;
                    if let Some(b) = per_blob.get_mut(c.blob_index as usize) {
                        b.referenced_bytes += u64::from(c.uncompressed_size);
                        if used.insert((c.blob_index, c.index)) {
                            b.used_chunks += 1;
                            b.used_bytes += u64::from(c.uncompressed_size);
                        }
                    }
                    if let std::collections::hash_map::Entry::Vacant(v) = seen.entry(c.digest) {
                        v.insert((u64::from(c.uncompressed_size), u64::from(c.compressed_size)));
                        s.unique_chunks += 1;
                        s.unique_bytes += u64::from(c.uncompressed_size);
                        s.unique_compressed_bytes += u64::from(c.compressed_size);
                    }
                }
            }
            FileType::Directory => s.directories += 1,
            FileType::Symlink => s.symlinks += 1,
            _ => s.special_files += 1,
        }
        Ok(())
    })
    .with_context(|| format!("{}: walking the filesystem", img.path.display()))?;
    for b in &mut per_blob {
        b.saved_bytes = b.referenced_bytes - b.used_bytes;
        b.unused_chunks = b.stored_chunks.saturating_sub(b.used_chunks);
    }
    s.blobs = per_blob;
    s.dedup_ratio = if s.unique_bytes == 0 {
        1.0
    } else {
        s.file_bytes as f64 / s.unique_bytes as f64
    };
    Ok(())
}

fn stat_one(img: &Image) -> Result<ImageStat> {
    let mut s = ImageStat {
        bootstrap: img.path.display().to_string(),
        ..Default::default()
    };
    accumulate(img, &mut s, &mut HashMap::new())?;
    Ok(s)
}

/// Every file in `dir` that opens as a bootstrap, sorted by name; others are skipped.
fn bootstraps_in(dir: &Path) -> Result<Vec<Image>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading directory {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    Ok(paths.iter().filter_map(|p| open_image(p).ok()).collect())
}

fn print_stat(s: &ImageStat) {
    println!("{}", s.bootstrap);
    println!(
        "  inodes {}: files {} (empty {}), directories {}, symlinks {}, special {}, extra hard links {}",
        s.inodes, s.files, s.empty_files, s.directories, s.symlinks, s.special_files, s.hardlinks
    );
    println!(
        "  file bytes {}, chunk references {}, unique chunks {} ({} bytes, {} compressed), dedup ratio {:.3}",
        s.file_bytes, s.chunk_references, s.unique_chunks, s.unique_bytes, s.unique_compressed_bytes, s.dedup_ratio
    );
    for (i, b) in s.blobs.iter().enumerate() {
        println!(
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
    let per_image: Vec<ImageStat> = images.iter().map(stat_one).collect::<Result<_>>()?;
    let mut total = ImageStat {
        bootstrap: "(all)".into(),
        ..Default::default()
    };
    let mut seen = HashMap::new();
    for img in &images {
        accumulate(img, &mut total, &mut seen)?;
    }
    // The target after deduplication against everything else.
    let target_stat = match &target {
        Some(t) => {
            let mut s = ImageStat {
                bootstrap: t.path.display().to_string(),
                ..Default::default()
            };
            accumulate(t, &mut s, &mut seen)?;
            Some(s)
        }
        None => None,
    };
    for s in &per_image {
        print_stat(s);
    }
    if per_image.len() > 1 {
        print_stat(&total);
    }
    if let Some(t) = &target_stat {
        println!("target after deduplication against the other images:");
        print_stat(t);
    }
    if let Some(j) = &a.output_json {
        let v = serde_json::json!({ "images": per_image, "total": total, "target": target_stat });
        write_file(j, serde_json::to_string_pretty(&v)?.as_bytes())?;
    }
    Ok(())
}
