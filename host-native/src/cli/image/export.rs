//! `nydus-image export --block`: one raw disk image the kernel's EROFS driver mounts without
//! nydusd (`rafs-v6.md` §16.3): the bootstrap's blocks at 0, each blob's uncompressed bytes at
//! `mapped_blkaddr × 4096`, holes in between.

use std::collections::HashSet;
use std::os::unix::fs::FileExt;

use anyhow::{bail, Context, Result};
use nydus_core::v6::reader::Bootstrap;

use nydus_host_storage::{open_image, BlobLocator, ChunkSource};

use super::args::ExportArgs;
use nydus_host_storage::atomic::AtomicFile;

const BLOCK: u64 = 4096;

/// Where each blob lands in the disk image: `(blob index, byte offset, uncompressed size)`.
fn placement(boot: &Bootstrap<Vec<u8>>) -> Result<Vec<(u32, u64, u64)>> {
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

pub fn run(a: ExportArgs) -> Result<()> {
    if !a.block {
        bail!("export needs --block (the only export format)");
    }
    if a.verity {
        bail!("--verity is not supported by this nydus-image yet");
    }
    if !(1..=32).contains(&a.threads) {
        bail!("invalid --threads {}: expected 1..32", a.threads);
    }
    let path = a.bootstrap.clone().context("export needs --bootstrap")?;
    let img = open_image(&path)?;
    if img.inline_blob.is_some() {
        bail!(
            "{}: export needs a separate bootstrap, not a blob with inline metadata",
            path.display()
        );
    }
    let boot_bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let locator = BlobLocator::new(None, a.localfs_dir.clone(), Vec::new())?;
    if locator.is_empty() && !img.boot.blobs().is_empty() {
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
    let output = a.output.clone().unwrap_or_else(|| {
        let mut p = path.clone().into_os_string();
        p.push(".disk");
        p.into()
    });
    let dest = output.display().to_string();
    let mut out = AtomicFile::create(&output)?;
    out.file()
        .write_all_at(&boot_bytes, 0)
        .with_context(|| format!("writing {dest}"))?;
    let table = img
        .boot
        .chunk_table()
        .with_context(|| format!("{}: reading the chunk-info table", path.display()))?;
    let mut source = ChunkSource::new(locator, img.boot.blobs());
    let mut done = HashSet::new();
    for c in &table {
        if !done.insert((c.blob_index, c.index)) {
            continue;
        }
        let i = c.blob_index as usize;
        let &(_, base, _) = places
            .get(i)
            .context("chunk refers to a blob outside the blob table")?;
        let limit = places.get(i + 1).map_or(u64::MAX, |p| p.1);
        let at = base + c.uncompressed_offset;
        let stop = at + u64::from(c.uncompressed_size);
        if stop > limit {
            bail!(
                "{}: chunk {} would overlap the next blob in the disk image",
                path.display(),
                c.digest.to_hex()
            );
        }
        let data = source.read(c)?;
        out.file()
            .write_all_at(&data, at)
            .with_context(|| format!("writing {dest}"))?;
        end = end.max(stop);
    }
    out.file()
        .set_len(end.next_multiple_of(BLOCK))
        .with_context(|| format!("sizing {dest}"))?;
    out.commit()?;
    println!(
        "exported {} ({} blocks) to {dest}",
        path.display(),
        end.div_ceil(BLOCK)
    );
    Ok(())
}
