//! `nydus-image optimize`: the data a container reads while it starts, gathered into one new
//! blob (`hooks-optimize-commit.md` §2, policy `separated-blob-with-prefetch-files`).
//!
//! The image is read back as a tree (its chunks attached, its blob table kept whole); the
//! chunks that hold the listed files' ranges are fetched through the [`ChunkReader`] (so each
//! is verified by digest before it is copied, where upstream copies unverified bytes and
//! panics on a read error), recompressed into a new blob appended to the blob table with
//! `IS_SEPARATED_WITH_PREFETCH_FILES`, and the listed files' chunk references for those ranges
//! point into it; every other chunk is unchanged. The new bootstrap's prefetch table lists the
//! files (upstream leaves it empty). Outputs are written to temporary names and renamed.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use nydus_core::blob::writer::{BlobOptions, BlobWriter};
use nydus_core::chunk::{compress_chunk, ChunkParams};
use nydus_core::layer::{entries_of_image, BlobOrder, Overlay, WhiteoutSpec};
use nydus_core::model::{blob_features, rafs_flags, BlobInfo, ChunkRef, FileType};
use nydus_core::prefetch_list::{coalesce, PrefetchList};
use nydus_core::read::{ChunkExtent, Filesystem};
use nydus_core::tree::{NodeId, Tree};
use nydus_core::v5::writer::V5Options;
use nydus_core::v6::writer::{write_bootstrap, V6Options};
use nydus_host_storage::atomic::{write_file, AtomicFile};
use nydus_host_storage::{ChunkReader, Image};

/// What to optimize and where the results go.
#[derive(Debug, Clone)]
pub struct OptimizePlan {
    /// The files (and ranges) to gather.
    pub prefetch: PrefetchList,
    /// The new bootstrap.
    pub output_bootstrap: PathBuf,
    /// Directory for the new blob (named by its id) and its `<id>.blob.meta`.
    pub output_blob_dir: PathBuf,
    /// A listed path missing from the image, or a range past a file's end, is an error
    /// (else a warning and the item is left out or cut).
    pub strict: bool,
}

/// What an optimization wrote.
#[derive(Debug, Clone)]
pub struct Optimized {
    pub bootstrap: Vec<u8>,
    /// The new blob's id (SHA-256 of its bytes) and where it was written.
    pub blob_id: String,
    pub blob_path: PathBuf,
    pub blob_size: u64,
    /// Chunks copied into the new blob, and their uncompressed bytes.
    pub chunks: u32,
    pub uncompressed_bytes: u64,
    /// The paths in the new prefetch table, in list order.
    pub prefetch_files: Vec<String>,
    /// The blob table of the new bootstrap (the new blob last).
    pub blob_ids: Vec<String>,
    /// Items left out or cut (each also logged).
    pub warnings: Vec<String>,
}

/// Chunks fetched and recompressed per batch: bounds memory to a few tens of MiB.
const BATCH: usize = 32;

/// The chunks of one file with their file offsets.
fn file_offsets(chunks: &[ChunkRef]) -> Vec<u64> {
    let mut at = 0u64;
    chunks
        .iter()
        .map(|c| {
            let o = at;
            at += u64::from(c.uncompressed_size);
            o
        })
        .collect()
}

/// Regular files at or under `id`, in build order.
fn regular_under(tree: &Tree, id: NodeId) -> Vec<NodeId> {
    let mut stack = vec![id];
    let mut out = Vec::new();
    while let Some(n) = stack.pop() {
        let node = tree.node(n);
        if node.file_type == FileType::Regular {
            out.push(n);
        }
        stack.extend(node.children.iter().copied());
    }
    out.sort_unstable();
    out
}

/// Which byte ranges of which files (by hard-link leader) are wanted, and the nodes for the
/// prefetch table.
struct Selection {
    /// Leader node → its wanted `(offset, length)` ranges (coalesced).
    ranges: Vec<(NodeId, Vec<(u64, u64)>)>,
    table: Vec<NodeId>,
    warnings: Vec<String>,
}

fn select(tree: &Tree, list: &PrefetchList, strict: bool) -> Result<Selection> {
    let mut warnings = Vec::new();
    let mut warn = |msg: String| -> Result<()> {
        if strict {
            bail!("{msg} (--strict)");
        }
        log::warn!("{msg}");
        warnings.push(msg);
        Ok(())
    };
    let mut order: Vec<NodeId> = Vec::new();
    let mut by_leader: HashMap<NodeId, Vec<(u64, u64)>> = HashMap::new();
    let mut table = Vec::new();
    for f in &list.files {
        let Some(id) = tree.lookup(f.path.as_bytes()) else {
            warn(format!("prefetch file {}: not in the image", f.path))?;
            continue;
        };
        let node = tree.node(id);
        let files = match node.file_type {
            FileType::Regular => vec![id],
            FileType::Directory => {
                if f.ranges.is_some() {
                    warn(format!(
                        "prefetch file {}: a directory has no byte ranges; taking all its files",
                        f.path
                    ))?;
                }
                regular_under(tree, id)
            }
            other => {
                warn(format!(
                    "prefetch file {}: a {other:?} holds no data: skipped",
                    f.path
                ))?;
                continue;
            }
        };
        if !table.contains(&id) {
            table.push(id);
        }
        for n in files {
            let leader = tree.node(n).hardlink_of.unwrap_or(n);
            let size = tree.node(leader).size;
            let wanted: Vec<(u64, u64)> = match (&f.ranges, n == id) {
                (Some(rs), true) => {
                    let mut v = Vec::new();
                    for &(off, len) in rs {
                        let end = off + len;
                        if off >= size {
                            warn(format!(
                                "prefetch file {}: range {off}-{end} starts past its end ({size} bytes): skipped",
                                f.path
                            ))?;
                        } else if end > size {
                            warn(format!(
                                "prefetch file {}: range {off}-{end} ends past its end ({size} bytes): cut to {off}-{size}",
                                f.path
                            ))?;
                            v.push((off, size - off));
                        } else {
                            v.push((off, len));
                        }
                    }
                    v
                }
                _ if size > 0 => vec![(0, size)],
                _ => Vec::new(),
            };
            if wanted.is_empty() {
                continue;
            }
            if !by_leader.contains_key(&leader) {
                order.push(leader);
            }
            by_leader.entry(leader).or_default().extend(wanted);
        }
    }
    let ranges = order
        .into_iter()
        .map(|l| {
            let mut r = by_leader.remove(&l).unwrap_or_default();
            coalesce(&mut r);
            (l, r)
        })
        .collect();
    Ok(Selection {
        ranges,
        table,
        warnings,
    })
}

/// Optimizes `img` (its blobs read by `reader`) per `plan`.
pub fn optimize(img: &Image, reader: &ChunkReader, plan: &OptimizePlan) -> Result<Optimized> {
    let path = img.path.display().to_string();
    let boot = &img.boot;
    let v5 = boot.version() == 5;
    if boot.flags() & rafs_flags::TARFS_MODE != 0 {
        bail!("{path}: a tarfs image keeps its data in the layer tars and cannot be optimized");
    }
    // The image as a tree, its blob table kept whole and in order.
    let mut overlay = Overlay::new();
    let source_blobs: Vec<BlobInfo> = reader.blobs().to_vec();
    let map: Vec<u32> = source_blobs
        .iter()
        .map(|b| {
            let mut m = b.clone();
            m.features &= !blob_features::INLINED_FS_META;
            overlay.add_blob(&m, true)
        })
        .collect();
    let entries = entries_of_image(boot).with_context(|| format!("reading {path}"))?;
    overlay
        .apply(entries, &map, WhiteoutSpec::None)
        .with_context(|| format!("reading {path}"))?;
    let (mut tree, mut table) = overlay.finish(BlobOrder::Registered);
    if table.len() != source_blobs.len() {
        bail!("{path}: the blob table names a blob twice");
    }
    if table.len() >= nydus_core::v6::writer::MAX_BLOBS {
        bail!(
            "{path}: the image already has {} blobs; an optimized image can have at most {}",
            table.len(),
            nydus_core::v6::writer::MAX_BLOBS
        );
    }

    let sel = select(&tree, &plan.prefetch, plan.strict)?;

    // The chunks to copy, in list order, each once.
    let mut wanted: Vec<ChunkRef> = Vec::new();
    let mut seen: HashMap<(u32, u32), usize> = HashMap::new();
    for (leader, ranges) in &sel.ranges {
        let chunks = tree.chunks(*leader);
        let offs = file_offsets(chunks);
        for (c, &o) in chunks.iter().zip(&offs) {
            let end = o + u64::from(c.uncompressed_size);
            if ranges.iter().any(|&(ro, rl)| ro < end && o < ro + rl)
                && !seen.contains_key(&(c.blob_index, c.index))
            {
                seen.insert((c.blob_index, c.index), wanted.len());
                wanted.push(*c);
            }
        }
    }
    if wanted.is_empty() {
        bail!(
            "{}: the prefetch list selects no file data of {path}",
            plan.output_bootstrap.display()
        );
    }

    let blob_index = table.len() as u32;
    let all = |bit: u32| source_blobs.iter().all(|b| b.features & bit != 0);
    let any = |bit: u32| source_blobs.iter().any(|b| b.features & bit != 0);
    let params = ChunkParams {
        compressor: boot.compressor(),
        digester: boot.digester(),
    };
    let mut writer = BlobWriter::new(BlobOptions {
        compressor: params.compressor,
        digester: params.digester,
        chunk_size: boot.chunk_size(),
        blob_index,
        chunk_info_v2: !v5 && any(blob_features::CHUNK_INFO_V2),
        inline_meta: false,
        blob_toc: !source_blobs.is_empty() && all(blob_features::HAS_TOC),
        aligned: !v5,
        ci_table: !v5,
        extra_features: blob_features::IS_SEPARATED_WITH_PREFETCH_FILES,
    });
    if !plan.output_blob_dir.is_dir() {
        bail!(
            "output blob directory {} does not exist",
            plan.output_blob_dir.display()
        );
    }
    let mut out = AtomicFile::create(&plan.output_blob_dir.join(".optimized-blob"))?;
    let mut moved: Vec<Option<ChunkRef>> = vec![None; wanted.len()];
    let mut uncompressed = 0u64;
    for (b, batch) in wanted.chunks(BATCH).enumerate() {
        let extents: Vec<ChunkExtent> = batch
            .iter()
            .map(|c| {
                let info = &source_blobs[c.blob_index as usize];
                ChunkExtent {
                    chunk: *c,
                    compressor: info.compressor,
                    digester: info.digester,
                    skip: 0,
                    take: c.uncompressed_size,
                }
            })
            .collect();
        let got = reader.fetch(&extents);
        let raw: Vec<_> = got
            .into_iter()
            .zip(batch)
            .map(|(r, c)| {
                r.with_context(|| {
                    format!(
                        "{path}: reading chunk {} of blob {}",
                        c.index, source_blobs[c.blob_index as usize].blob_id
                    )
                })
            })
            .collect::<Result<_>>()?;
        // Recompress on all cores (a stripe each); append in order.
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let processed: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let (raw, batch) = (&raw, batch);
                    s.spawn(move || {
                        (t..raw.len())
                            .step_by(threads)
                            .map(|i| {
                                let r: &[u8] = &raw[i];
                                (
                                    i,
                                    compress_chunk(r, batch[i].digest, crc32c::crc32c(r), &params),
                                )
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            let mut all: Vec<_> = handles
                .into_iter()
                .flat_map(|h| h.join().expect("compression does not panic"))
                .collect();
            all.sort_unstable_by_key(|(i, _)| *i);
            all.into_iter().map(|(_, p)| p).collect()
        });
        for (k, p) in processed.into_iter().enumerate() {
            let p = p.map_err(anyhow::Error::new)?;
            uncompressed += u64::from(p.uncompressed_size);
            let (c, bytes) = writer.add(p).map_err(anyhow::Error::new)?;
            if let Some(bytes) = bytes {
                out.file()
                    .write_all(&bytes)
                    .context("writing the new blob")?;
            }
            moved[b * BATCH + k] = Some(c);
        }
    }
    let copied = writer.chunk_count();
    let (tail, pending) = writer.finish_chunks();
    out.file()
        .write_all(&tail)
        .context("writing the new blob")?;
    let meta = pending.cache_meta();
    let (tail, mut info, id) = pending.finish(None);
    out.file()
        .write_all(&tail)
        .context("writing the new blob")?;
    info.blob_id = id.to_hex();
    let blob_path = plan.output_blob_dir.join(&info.blob_id);
    let blob_size = info.compressed_size;

    // Repoint the listed ranges' chunks (hard links share their leader's chunks).
    for (leader, ranges) in &sel.ranges {
        let chunks = tree.chunks(*leader).to_vec();
        let offs = file_offsets(&chunks);
        let new: Vec<ChunkRef> = chunks
            .iter()
            .zip(&offs)
            .map(|(c, &o)| {
                let end = o + u64::from(c.uncompressed_size);
                if ranges.iter().any(|&(ro, rl)| ro < end && o < ro + rl) {
                    let k = seen[&(c.blob_index, c.index)];
                    moved[k].expect("every wanted chunk was copied")
                } else {
                    *c
                }
            })
            .collect();
        tree.set_chunks(*leader, new);
    }
    table.push(info);

    let flags = boot.flags();
    let opts = V6Options {
        chunk_size: boot.chunk_size(),
        compressor: boot.compressor(),
        digester: boot.digester(),
        explicit_uid_gid: flags & rafs_flags::EXPLICIT_UID_GID != 0,
        prefetch: sel.table.clone(),
        inlined_chunk_digest: table
            .iter()
            .all(|b| b.features & blob_features::INLINED_CHUNK_DIGEST != 0),
        force_has_xattr: flags & rafs_flags::HAS_XATTR != 0,
    };
    let bytes = if v5 {
        let hardlink_flag = match boot {
            nydus_core::rafs::Rafs::V5(b) => b
                .has_hardlink_flag()
                .with_context(|| format!("reading {path}"))?,
            _ => false,
        };
        let o = V5Options {
            chunk_size: opts.chunk_size,
            compressor: opts.compressor,
            digester: opts.digester,
            explicit_uid_gid: opts.explicit_uid_gid,
            prefetch_table: true,
            prefetch: opts.prefetch.clone(),
            tar_source: false,
            hardlink_flag,
        };
        nydus_core::v5::writer::write_bootstrap(&tree, &table, &o)
    } else {
        write_bootstrap(&tree, &table, &opts)
    }
    .map_err(anyhow::Error::new)?;
    crate::check::self_check(&bytes).context("validation of the optimized bootstrap")?;

    // Data first, bootstrap last, so a bootstrap never names a missing blob.
    out.set_dest(blob_path.clone());
    out.commit()?;
    if !meta.is_empty() {
        write_file(
            &plan
                .output_blob_dir
                .join(format!("{}.blob.meta", table[blob_index as usize].blob_id)),
            &meta,
        )?;
    }
    write_file(&plan.output_bootstrap, &bytes)?;
    Ok(Optimized {
        bootstrap: bytes,
        blob_id: table[blob_index as usize].blob_id.clone(),
        blob_path,
        blob_size,
        chunks: copied,
        uncompressed_bytes: uncompressed,
        prefetch_files: sel
            .table
            .iter()
            .map(|&n| String::from_utf8_lossy(&tree.path(n)).into_owned())
            .collect(),
        blob_ids: table.iter().map(|b| b.blob_id.clone()).collect(),
        warnings: sel.warnings,
    })
}

/// Reads a prefetch list file, naming it in errors and logging each warning.
pub fn read_prefetch_list(path: &Path) -> Result<(PrefetchList, Vec<String>)> {
    let bytes = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let (list, warnings) = nydus_core::prefetch_list::parse(&bytes)
        .with_context(|| format!("{}: bad prefetch list", path.display()))?;
    let warnings = warnings
        .into_iter()
        .map(|w| {
            let m = format!("{}: item {}: {}", path.display(), w.at, w.message);
            log::warn!("{m}");
            m
        })
        .collect();
    Ok((list, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_follow_chunk_sizes() {
        let c = |n| ChunkRef {
            uncompressed_size: n,
            ..Default::default()
        };
        assert_eq!(file_offsets(&[c(10), c(20), c(5)]), vec![0, 10, 30]);
    }
}
