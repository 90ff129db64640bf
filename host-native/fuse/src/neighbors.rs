//! Every chunk of the image by blob, in blob order: what widens a small read to the chunks
//! stored after it (upstream's read amplification), so reading many small files that lie
//! next to each other in a blob costs one backend request per batch, not one per file.
//!
//! Built once in the background after mounting (reads go unwidened until it is ready), and
//! only for images of at most [`MAX_CHUNKS`] chunks, so its memory stays bounded.

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};

use nydus_core::read::{ChunkExtent, Filesystem, ReadPlan};

use crate::prefetch::every_chunk;

/// Largest chunk count indexed (about 80 bytes each).
pub const MAX_CHUNKS: usize = 1 << 20;

/// The chunks of each blob, sorted by stored offset, each once.
#[derive(Debug, Default)]
pub struct Neighbors {
    by_blob: Vec<Vec<ChunkExtent>>,
}

impl Neighbors {
    /// Indexes the chunks of `fs`; `None` when the image has more than [`MAX_CHUNKS`] or its
    /// bootstrap cannot be read.
    pub fn build<F: Filesystem + ?Sized>(fs: &F) -> Option<Neighbors> {
        let all = every_chunk(fs, &mut HashSet::new(), MAX_CHUNKS).ok()??;
        let plan = ReadPlan::whole_chunks(&all, fs.blobs()).ok()?;
        let mut by_blob: Vec<Vec<ChunkExtent>> = vec![Vec::new(); fs.blobs().len()];
        for e in plan.chunks() {
            if let Some(v) = by_blob.get_mut(e.chunk.blob_index as usize) {
                v.push(*e);
            }
        }
        Some(Neighbors { by_blob })
    }

    /// The chunks stored right after `last` in its blob, for which `wanted` says yes, while
    /// each starts within `gap` bytes of the one before and their stored bytes stay within
    /// `budget`.
    pub fn after(
        &self,
        last: &ChunkExtent,
        budget: u64,
        gap: u64,
        wanted: impl Fn(&ChunkExtent) -> bool,
    ) -> Vec<ChunkExtent> {
        let Some(v) = self.by_blob.get(last.chunk.blob_index as usize) else {
            return Vec::new();
        };
        let key = (last.chunk.compressed_offset, last.chunk.uncompressed_offset);
        let start =
            v.partition_point(|e| (e.chunk.compressed_offset, e.chunk.uncompressed_offset) <= key);
        let mut end = last.chunk.compressed_offset + u64::from(last.chunk.compressed_size);
        let mut used = 0u64;
        let mut out = Vec::new();
        for e in &v[start..] {
            let size = u64::from(e.chunk.compressed_size);
            if e.chunk.compressed_offset > end + gap || used + size > budget {
                break;
            }
            end = e.chunk.compressed_offset + size;
            if wanted(e) {
                used += size;
                out.push(*e);
            }
        }
        out
    }
}

/// The index, built on a background thread; empty until then.
#[derive(Debug, Default, Clone)]
pub struct Lazy(Arc<OnceLock<Option<Neighbors>>>);

impl Lazy {
    /// Starts building the index of `fs`.
    pub fn start<F: Filesystem + Send + Sync + 'static>(fs: Arc<F>) -> Lazy {
        let me = Lazy::default();
        let cell = me.0.clone();
        let _ = std::thread::Builder::new()
            .name("neighbors".into())
            .spawn(move || {
                let _ = cell.set(Neighbors::build(&*fs));
            });
        me
    }

    /// The index once it is ready.
    pub fn get(&self) -> Option<&Neighbors> {
        self.0.get().and_then(Option::as_ref)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nydus_core::memimage::{build, MemEntry, MemOptions};
    use nydus_core::model::Compressor;
    use nydus_core::rafs::Rafs;
    use nydus_core::read::lookup;

    #[test]
    fn small_files_widen_to_the_files_stored_after_them() {
        let mut entries = vec![MemEntry::dir(b"/")];
        for i in 0..20u8 {
            let p = format!("/f{i:02}");
            entries.push(MemEntry::file(p.as_bytes(), vec![i; 3000]));
        }
        let img = build(
            &entries,
            &MemOptions {
                chunk_size: 0x1000,
                compressor: Compressor::None,
                ..Default::default()
            },
        )
        .unwrap();
        let fs = Rafs::open(img.bootstrap).unwrap();
        let n = Neighbors::build(&fs).unwrap();
        let nid = lookup(&fs, b"/f03").unwrap().unwrap();
        let first =
            ReadPlan::whole_chunks(&[fs.all_chunks(nid).unwrap()[0].chunk], fs.blobs()).unwrap();
        let last = first.chunks().next().unwrap();
        let next = n.after(last, 3000 * 5, 0, |_| true);
        assert_eq!(next.len(), 5);
        assert!(next
            .windows(2)
            .all(|w| w[0].chunk.compressed_offset < w[1].chunk.compressed_offset));
        assert!(next[0].chunk.compressed_offset > last.chunk.compressed_offset);
        // Cached ones are skipped (they cost nothing of the budget).
        let skip = next[0].chunk.index;
        let next2 = n.after(last, 3000 * 5, 0, |e| e.chunk.index != skip);
        assert_eq!(next2.len(), 5);
        assert!(next2.iter().all(|e| e.chunk.index != skip));
        // The blob's end.
        let tail = n.by_blob[0].last().unwrap();
        assert!(n.after(tail, 1 << 20, 0, |_| true).is_empty());
    }
}
