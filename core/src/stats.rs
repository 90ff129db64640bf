//! Image statistics: counts by file type, sizes, chunk and deduplication figures, and how
//! each blob (layer) serves the filesystem. `nydus-image stat` and the browser inspector
//! report the same numbers from this module.

use crate::read::Filesystem;
use std::collections::{HashMap, HashSet};

use serde::Serialize;

use crate::digest::Digest;
use crate::error::DecodeError;
use crate::model::FileType;
use crate::rafs::Rafs;
use crate::source::ReadAt;

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
    /// The chunks used, by index in the blob, with their uncompressed sizes: a blob several
    /// images share counts its chunks once over all of them.
    #[serde(skip)]
    used: HashMap<u32, u32>,
}

/// Adds one image to `s`, with `seen` the digests already counted in `s` (pass the same map
/// for several images to count chunks they share once).
pub fn accumulate<R: ReadAt>(
    boot: &Rafs<R>,
    s: &mut ImageStat,
    seen: &mut HashMap<Digest, (u64, u64)>,
) -> Result<(), DecodeError> {
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
                for c in boot.all_chunks(i.nid)?.into_iter().map(|c| c.chunk) {
                    s.chunk_references += 1;
                    if let Some(b) = per_blob.get_mut(c.blob_index as usize) {
                        b.referenced_bytes += u64::from(c.uncompressed_size);
                        b.used.entry(c.index).or_insert(c.uncompressed_size);
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
    })?;
    // Blobs of earlier images stay listed; one they share is one entry, its chunks counted once.
    for b in per_blob {
        match s.blobs.iter_mut().find(|x| x.blob_id == b.blob_id) {
            Some(x) => {
                x.referenced_bytes += b.referenced_bytes;
                for (k, v) in b.used {
                    x.used.entry(k).or_insert(v);
                }
            }
            None => s.blobs.push(b),
        }
    }
    for b in &mut s.blobs {
        b.used_chunks = b.used.len() as u64;
        b.used_bytes = b.used.values().map(|&n| u64::from(n)).sum();
        b.saved_bytes = b.referenced_bytes - b.used_bytes;
        b.unused_chunks = b.stored_chunks.saturating_sub(b.used_chunks);
    }
    s.dedup_ratio = if s.unique_bytes == 0 {
        1.0
    } else {
        s.file_bytes as f64 / s.unique_bytes as f64
    };
    Ok(())
}

/// Statistics of one image on its own.
pub fn image_stat<R: ReadAt>(boot: &Rafs<R>, name: &str) -> Result<ImageStat, DecodeError> {
    let mut s = ImageStat {
        bootstrap: name.to_string(),
        ..Default::default()
    };
    accumulate(boot, &mut s, &mut HashMap::new())?;
    Ok(s)
}

/// Total regular-file bytes under each child of the directory at `path` (hard links counted
/// once), largest first: the size-by-directory figure of the inspector.
pub fn sizes_by_child<R: ReadAt>(
    boot: &Rafs<R>,
    path: &str,
) -> Result<Vec<(String, u64)>, DecodeError> {
    let prefix = format!("{}/", path.trim_end_matches('/'));
    let mut sizes: HashMap<String, u64> = HashMap::new();
    let mut seen = HashSet::new();
    boot.walk(&mut |p, i| {
        let s = String::from_utf8_lossy(p);
        if let Some(rest) = s.strip_prefix(&prefix) {
            if i.file_type == FileType::Regular && (i.nlink <= 1 || seen.insert(i.ino)) {
                let top = rest.split('/').next().unwrap_or_default().to_string();
                *sizes.entry(top).or_insert(0) += i.size;
            }
        }
        Ok(())
    })?;
    let mut v: Vec<(String, u64)> = sizes.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    Ok(v)
}

/// Paths containing `query` (case-insensitive), at most `limit`, with type and size.
pub fn find_paths<R: ReadAt>(
    boot: &Rafs<R>,
    query: &str,
    limit: usize,
) -> Result<Vec<(String, FileType, u64)>, DecodeError> {
    let q = query.to_lowercase();
    let mut out = Vec::new();
    boot.walk(&mut |p, i| {
        if out.len() < limit {
            let s = String::from_utf8_lossy(p);
            if s.to_lowercase().contains(&q) {
                out.push((s.into_owned(), i.file_type, i.size));
            }
        }
        Ok(())
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memimage::{build, worked_example, MemOptions};

    #[test]
    fn sizes_and_search() {
        let mut entries = worked_example();
        let mut f = entries[1].clone();
        f.path = b"/sub/big.txt".to_vec();
        f.data = vec![b'x'; 100];
        f.entry.size = 100;
        entries.push(f);
        let img = build(&entries, &MemOptions::default()).unwrap();
        let boot = Rafs::open(img.bootstrap).unwrap();
        assert_eq!(
            sizes_by_child(&boot, "/").unwrap(),
            vec![("sub".to_string(), 100), ("hello.txt".to_string(), 6)]
        );
        let hits = find_paths(&boot, "BIG", 10).unwrap();
        assert_eq!(
            hits,
            vec![("/sub/big.txt".to_string(), FileType::Regular, 100)]
        );
        assert_eq!(find_paths(&boot, "", 2).unwrap().len(), 2);
    }

    #[test]
    fn a_set_of_images_lists_every_blob_once() {
        let one = Rafs::open(
            build(&worked_example(), &MemOptions::default())
                .unwrap()
                .bootstrap,
        )
        .unwrap();
        let mut entries = worked_example();
        entries[1].data = b"other data".to_vec();
        entries[1].entry.size = 10;
        let two = Rafs::open(build(&entries, &MemOptions::default()).unwrap().bootstrap).unwrap();
        let alone = image_stat(&one, "one").unwrap();
        let mut total = ImageStat::default();
        let mut seen = HashMap::new();
        for b in [&one, &two, &one] {
            accumulate(b, &mut total, &mut seen).unwrap();
        }
        let ids: Vec<&str> = total.blobs.iter().map(|b| b.blob_id.as_str()).collect();
        assert_eq!(ids.len(), 2, "{ids:?}");
        assert_ne!(ids[0], ids[1]);
        // The blob of `one`, added twice, has its chunks counted once.
        let b = &total.blobs[0];
        assert_eq!(b.used_chunks, alone.blobs[0].used_chunks);
        assert_eq!(b.used_bytes, alone.blobs[0].used_bytes);
        assert_eq!(b.referenced_bytes, 2 * alone.blobs[0].referenced_bytes);
    }
}
