//! `nydus-image export --block`: one raw disk image the kernel's EROFS driver mounts without
//! nydusd (`rafs-v6.md` §16.3): the bootstrap's blocks at 0, each blob's uncompressed bytes at
//! `mapped_blkaddr × 4096`, holes in between.

use std::collections::HashSet;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Mutex;

use anyhow::{anyhow, bail, Context, Result};
use nydus_core::read::{ChunkExtent, Filesystem, ReadPlan};
use nydus_core::source::ReadAt;
use nydus_core::v6::reader::Bootstrap;
use nydus_host_storage::atomic::AtomicFile;
use nydus_host_storage::{open_image, Localfs, ReaderOptions};

const BLOCK: u64 = 4096;

/// Where each blob lands in the disk image: `(blob index, byte offset, uncompressed size)`.
fn placement<R: ReadAt>(boot: &Bootstrap<R>) -> Result<Vec<(u32, u64, u64)>> {
    let slots = boot.device_slots();
    let mut out = Vec::new();
    for (i, b) in boot.blobs().iter().enumerate() {
        let slot = slots
            .get(i)
            .with_context(|| format!("blob {} has no device slot", b.blob_id))?;
        out.push((
            i as u32,
            u64::from(slot.mapped_blkaddr) * BLOCK,
            u64::from(slot.blocks) * BLOCK,
        ));
    }
    Ok(out)
}

/// What to export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportOptions {
    /// A RAFS v6 bootstrap (not one inlined in a blob).
    pub bootstrap: PathBuf,
    /// The directory holding its blobs (named by id, or `<id>.blob.data` cache files).
    pub blob_dir: Option<PathBuf>,
    /// The disk image to write.
    pub output: PathBuf,
    /// Threads reading and verifying chunks.
    pub threads: usize,
}

/// Writes the disk image; returns its size in 4 KiB blocks.
pub fn export_block(o: &ExportOptions) -> Result<u64> {
    let path = &o.bootstrap;
    let img = open_image(path)?;
    if img.inline_blob.is_some() {
        bail!(
            "{}: export needs a separate bootstrap, not a blob with inline metadata",
            path.display()
        );
    }
    let boot_bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let local = Localfs::new(None, o.blob_dir.clone(), Vec::new())?;
    if local.is_empty() && !img.boot.blobs().is_empty() {
        bail!("export needs --localfs-dir <dir> holding the image's blobs");
    }
    let v6 = img.boot.as_v6().with_context(|| {
        format!(
            "{}: export --block needs a RAFS v6 image (the kernel cannot mount v5)",
            img.path.display()
        )
    })?;
    let places = placement(v6)?;
    let mut end = boot_bytes.len() as u64;
    for &(_, off, size) in &places {
        if off < end {
            bail!(
                "{}: blob at block {} overlaps the bootstrap or the previous blob",
                path.display(),
                off / BLOCK
            );
        }
        end = off + size;
    }
    let dest = o.output.display().to_string();
    let mut out = AtomicFile::create(&o.output)?;
    out.file()
        .write_all_at(&boot_bytes, 0)
        .with_context(|| format!("writing {dest}"))?;
    let table = img
        .boot
        .chunk_table()
        .with_context(|| format!("{}: reading the chunk-info table", path.display()))?;
    let mut done = HashSet::new();
    let unique: Vec<_> = table
        .iter()
        .filter(|c| done.insert((c.blob_index, c.index)))
        .copied()
        .collect();
    let mut at = Vec::with_capacity(unique.len());
    for c in &unique {
        let i = c.blob_index as usize;
        let &(_, base, _) = places
            .get(i)
            .context("chunk refers to a blob outside the blob table")?;
        let limit = places.get(i + 1).map_or(u64::MAX, |p| p.1);
        let start = base + c.uncompressed_offset;
        let stop = start + u64::from(c.uncompressed_size);
        if stop > limit {
            bail!(
                "{}: chunk {} would overlap the next blob in the disk image",
                path.display(),
                c.digest.to_hex()
            );
        }
        at.push(start);
        end = end.max(stop);
    }
    let plan = ReadPlan::whole_chunks(&unique, img.boot.blobs())
        .with_context(|| format!("{}: the chunk-info table", path.display()))?;
    let chunks: Vec<ChunkExtent> = plan.chunks().copied().collect();
    if let Some(reader) = img.chunk_reader(local, ReaderOptions::default())? {
        let first_error = Mutex::new(None);
        let file: &std::fs::File = out.file();
        reader.for_each_chunk(&chunks, o.threads, |k, r| {
            let written = r.map_err(anyhow::Error::new).and_then(|data| {
                file.write_all_at(&data, at[k])
                    .with_context(|| format!("writing {dest}"))
            });
            if let Err(e) = written {
                first_error
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get_or_insert(e);
            }
        });
        if let Some(e) = first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
            return Err(e);
        }
    } else if !chunks.is_empty() {
        return Err(anyhow!("{}: no blobs to export from", path.display()));
    }
    out.file()
        .set_len(end.next_multiple_of(BLOCK))
        .with_context(|| format!("sizing {dest}"))?;
    out.commit()?;
    Ok(end.div_ceil(BLOCK))
}
