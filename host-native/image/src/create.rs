//! The builder (`nydus-image create`): a directory or an OCI layer tar stream to a RAFS
//! bootstrap and data blob, per a validated [`Plan`].

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use nydus_core::blob::writer::{BlobOptions, BlobWriter};
use nydus_core::chunk::ChunkParams;
use nydus_core::digest::{sha256, Digester};
use nydus_core::layer::WhiteoutSpec;
use nydus_core::model::{blob_features, BlobInfo, ChunkRef, Compressor};
use nydus_core::tree::{NodeId, Tree};
use nydus_core::v5::writer::V5Options;
use nydus_core::v6::writer::{write_bootstrap, V6Options};
use nydus_host_storage::atomic::{write_file, AtomicFile};
use serde_json::json;

use crate::layered::Layered;
use crate::pipeline::{self, Delivered, FileJob};
use crate::prefetch::prefetch_nodes;
use crate::walk::walk_dir;
pub use crate::walk::DirOptions;

/// Where the data blob goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobTarget {
    /// A blob file at this path.
    File(PathBuf),
    /// A directory; the blob is named by its id.
    Dir(PathBuf),
    /// `<id>.blob.data` + `<id>.blob.meta` in this directory (uncompressed, aligned).
    CacheDir(PathBuf),
}

/// Validated build options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub source: PathBuf,
    pub bootstrap: Option<PathBuf>,
    pub blob: Option<BlobTarget>,
    pub inline_meta: bool,
    pub blob_toc: bool,
    pub compressor: Compressor,
    pub digester: Digester,
    pub chunk_size: u32,
    pub whiteout: WhiteoutSpec,
    pub prefetch_fs: bool,
    pub blob_id: Option<String>,
    pub explicit_uid_gid: bool,
    pub threads: usize,
    pub check: bool,
    /// The source is a layer tar stream (tar-rafs / targz-rafs).
    pub tar: bool,
    pub parent: Option<PathBuf>,
    pub chunk_dict: Option<PathBuf>,
    pub v5: bool,
    pub aligned_chunk: bool,
    /// How a directory source is read (`nydusify commit`'s needs; all off by default).
    pub dir: DirOptions,
}

/// Where a copy of the blob's bytes goes as they are written (an upload streaming alongside
/// the build). A sink that can take no more (its reader went away) ignores the rest: the
/// build goes on and its outputs are whole.
pub trait BlobSink: Send {
    /// Takes the next bytes of the blob (never empty), once they are in the blob file.
    fn write(&mut self, bytes: &[u8]);

    /// The file the blob is being written to, before the first write (not called when the
    /// blob goes to no file, as `--blob-cache-dir`): a sink may read what was written back
    /// from it rather than keep the bytes. The file is renamed when the build commits.
    fn spool(&mut self, _file: &std::fs::File) {}
}

impl Plan {
    /// What `nydusify convert` runs per layer (`oci-nydus-image.md` §7): a tar stream to a
    /// blob with the bootstrap inlined and a ToC, whiteouts kept for the merge, the blob named
    /// by its digest in `dir`.
    pub fn layer(dir: PathBuf, compressor: Compressor, chunk_size: u32) -> Plan {
        Plan {
            source: PathBuf::from("-"),
            bootstrap: None,
            blob: Some(BlobTarget::Dir(dir)),
            inline_meta: true,
            blob_toc: true,
            compressor,
            digester: Digester::Blake3,
            chunk_size,
            whiteout: WhiteoutSpec::None,
            prefetch_fs: true,
            blob_id: None,
            explicit_uid_gid: true,
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            check: true,
            tar: true,
            parent: None,
            chunk_dict: None,
            v5: false,
            aligned_chunk: false,
            dir: DirOptions::default(),
        }
    }
}

/// What a build produced (outputs are committed).
#[derive(Debug, Clone)]
pub struct Built {
    pub bootstrap: Vec<u8>,
    pub bootstrap_path: Option<PathBuf>,
    /// The new blob's id (its SHA-256 hex unless `--blob-id` overrides it).
    pub blob_id: String,
    /// Bytes written to the blob.
    pub blob_size: u64,
    /// Ids of the bootstrap's blob table.
    pub table_ids: Vec<String>,
    /// `<id>.blob.meta` content (ci data padded to 4 KiB + ci header); empty without chunks.
    pub blob_meta: Vec<u8>,
    pub trace: serde_json::Value,
}

/// Where blob bytes go while building.
struct BlobOut {
    file: Option<AtomicFile>,
    /// `.blob.data` for `--blob-cache-dir`: raw chunks at their uncompressed offsets.
    cache_data: Option<AtomicFile>,
    cache_dir: Option<PathBuf>,
    written: u64,
    tee: Option<Box<dyn BlobSink>>,
}

impl BlobOut {
    fn append(&mut self, bytes: &[u8]) -> Result<()> {
        if let Some(f) = &mut self.file {
            let dest = f.dest().to_path_buf();
            f.file()
                .write_all(bytes)
                .with_context(|| format!("writing blob {}", dest.display()))?;
        }
        if let Some(t) = &mut self.tee {
            if !bytes.is_empty() {
                t.write(bytes);
            }
        }
        self.written += bytes.len() as u64;
        Ok(())
    }
}

/// Builds per `p`: from the directory `p.source`, or (tar sources) from the decompressed layer
/// stream `input`. `patterns` are the prefetch patterns (used with `p.prefetch_fs`); `tee`
/// also receives the blob's bytes as they are written.
pub fn build(
    p: &Plan,
    patterns: &[String],
    input: Option<Box<dyn Read + Send>>,
    tee: Option<Box<dyn BlobSink>>,
) -> Result<Built> {
    let t0 = Instant::now();
    let mut out = BlobOut {
        file: None,
        cache_data: None,
        cache_dir: None,
        written: 0,
        tee,
    };
    match p.blob.as_ref().context("a build needs a blob output")? {
        BlobTarget::File(f) => out.file = Some(AtomicFile::create(f)?),
        BlobTarget::Dir(d) => {
            std::fs::create_dir_all(d)
                .with_context(|| format!("creating the blob directory {}", d.display()))?;
            out.file = Some(AtomicFile::create(&d.join("blob"))?)
        }
        BlobTarget::CacheDir(d) => {
            out.cache_data = Some(AtomicFile::create(&d.join("blob.data"))?);
            out.cache_dir = Some(d.clone());
        }
    }
    if let (Some(t), Some(f)) = (&mut out.tee, &mut out.file) {
        t.spool(f.file());
    }
    let mut writer = BlobWriter::new(BlobOptions {
        compressor: p.compressor,
        digester: p.digester,
        chunk_size: p.chunk_size,
        blob_index: 0,
        chunk_info_v2: false,
        inline_meta: p.inline_meta,
        blob_toc: p.blob_toc,
        aligned: !p.v5 || p.aligned_chunk,
        ci_table: !p.v5,
        extra_features: 0,
    });
    let layered = Layered::open(
        p.parent.as_deref(),
        p.chunk_dict.as_deref(),
        p.whiteout,
        p.chunk_size,
        if p.v5 { 5 } else { 6 },
    )?;
    for c in layered.iter().flat_map(|l| l.known_chunks()) {
        writer.add_known(*c);
    }
    let params = ChunkParams {
        compressor: p.compressor,
        digester: p.digester,
    };
    // Chunks by the id the pipeline was fed under (a node id, or a stream entry's token).
    let mut chunks: HashMap<usize, Vec<ChunkRef>> = HashMap::new();
    let mut raw_bytes = 0u64;
    let mut sink = |d: Delivered<'_>| -> Result<()> {
        raw_bytes += d.raw.len() as u64;
        let (cref, stored) = writer.add(d.processed).map_err(anyhow::Error::new)?;
        if let Some(bytes) = stored {
            out.append(&bytes)?;
            if let Some(cd) = &mut out.cache_data {
                cd.file()
                    .write_all_at(d.raw, cref.uncompressed_offset)
                    .context("writing the blob cache data file")?;
            }
        }
        chunks.entry(d.id).or_default().push(cref);
        Ok(())
    };
    let (mut tree, prefetch, t_walk, t_data, t1): (Tree, Vec<NodeId>, _, _, _);
    if p.tar {
        // Stream order is blob order: entries and data are read in one pass.
        t1 = Instant::now();
        let shown = p.source.display().to_string();
        let input = input.context("a tar build needs an input stream")?;
        let lookup = |path: &[u8]| layered.as_ref().and_then(|l| l.lower_file(path));
        let read = pipeline::run_source(
            move |feeder| crate::tarsrc::read_layer(input, &shown, feeder, Some(&lookup)),
            p.chunk_size,
            params,
            p.threads,
            &mut sink,
        )?;
        chunks.extend(read.preset);
        tree = read.builder.finish();
        t_walk = t0.elapsed();
        t_data = t1.elapsed();
        for id in 0..tree.len() {
            let n = tree.node(id);
            if n.file_type == nydus_core::model::FileType::Regular && n.size > 0 {
                let token = n.link_key.map_or(n.source, |k| k.1) as usize;
                let c = chunks.get(&token).cloned().unwrap_or_default();
                tree.set_chunks(id, c);
            }
        }
        prefetch = prefetch_nodes(&tree, patterns, layered.is_none());
    } else {
        // On a parent, whiteouts are kept for the overlay to apply.
        let spec = if p.parent.is_some() {
            WhiteoutSpec::None
        } else {
            p.whiteout
        };
        let walked = walk_dir(&p.source, spec, &p.dir)?;
        tree = walked.builder.finish();
        t_walk = t0.elapsed();
        prefetch = prefetch_nodes(&tree, patterns, layered.is_none());
        let order = tree.data_order(&prefetch);
        let files: Vec<FileJob> = order
            .iter()
            .map(|&id| FileJob {
                id,
                path: walked.sources[tree.node(id).source as usize].clone(),
                size: tree.node(id).size,
            })
            .collect();
        t1 = Instant::now();
        pipeline::run(files, p.chunk_size, params, p.threads, &mut sink)?;
        t_data = t1.elapsed();
        for (id, c) in chunks.drain() {
            tree.set_chunks(id, c);
        }
    }

    let (trailing, pending) = writer.finish_chunks();
    out.append(&trailing)?;
    let blob_meta = pending.cache_meta();
    let has_data = pending.blob_info().chunk_count > 0;
    // The final view and blob table; `new_slot` is where the new blob goes in the table.
    let (tree, mut table, new_slot, prefetch) = match layered {
        Some(l) => {
            let (merged, table, slot) = l.merge(&tree)?;
            let pf = prefetch_nodes(&merged, patterns, true);
            (merged, table, slot, pf)
        }
        None => {
            let table = if has_data {
                vec![BlobInfo::default()]
            } else {
                Vec::new()
            };
            (tree, table, has_data.then_some(0), prefetch)
        }
    };
    let v6 = |blobs: &[BlobInfo]| V6Options {
        chunk_size: p.chunk_size,
        compressor: p.compressor,
        digester: p.digester,
        explicit_uid_gid: p.explicit_uid_gid,
        prefetch: if blobs.is_empty() {
            Vec::new()
        } else {
            prefetch.clone()
        },
        inlined_chunk_digest: p.blob_toc
            && blobs
                .iter()
                .all(|b| b.features & blob_features::INLINED_CHUNK_DIGEST != 0),
        force_has_xattr: false,
    };
    let encode = |blobs: &[BlobInfo]| -> Result<Vec<u8>> {
        let bytes = if p.v5 {
            let o = V5Options {
                chunk_size: p.chunk_size,
                compressor: p.compressor,
                digester: p.digester,
                explicit_uid_gid: p.explicit_uid_gid,
                prefetch_table: p.prefetch_fs,
                prefetch: prefetch.clone(),
                tar_source: p.tar,
                hardlink_flag: p.tar,
            };
            nydus_core::v5::writer::write_bootstrap(&tree, blobs, &o)
        } else {
            write_bootstrap(&tree, blobs, &v6(blobs))
        };
        bytes.map_err(anyhow::Error::new)
    };
    let (bootstrap, info, blob_id) = if p.inline_meta {
        // The bootstrap inside the blob names its own blob "x" × 64; readers substitute the
        // blob's digest (blob.md §7).
        if let Some(i) = new_slot {
            let mut pre = pending.blob_info();
            pre.blob_id = "x".repeat(64);
            table[i] = pre;
        }
        let boot = encode(&table)?;
        let (more, info, digest) = pending.finish(Some(&boot));
        out.append(&more)?;
        (boot, info, digest.to_hex())
    } else {
        let (more, mut info, digest) = pending.finish(None);
        out.append(&more)?;
        info.blob_id = p.blob_id.clone().unwrap_or_else(|| digest.to_hex());
        if let Some(i) = new_slot {
            table[i] = info.clone();
        }
        let boot = encode(&table)?;
        let id = info.blob_id.clone();
        (boot, info, id)
    };
    let table_ids: Vec<String> = table
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if Some(i) == new_slot {
                blob_id.clone()
            } else {
                b.blob_id.clone()
            }
        })
        .collect();

    let t_meta = t1.elapsed() - t_data;
    let t2 = Instant::now();
    if p.check {
        crate::check::self_check(&bootstrap)
            .context("post-build validation of the new bootstrap")?;
    }

    // Commit outputs: data first, bootstrap last, so a bootstrap never names missing data.
    if let Some(mut f) = out.file.take() {
        if let Some(BlobTarget::Dir(d)) = &p.blob {
            f.set_dest(d.join(&blob_id));
        }
        f.commit()?;
    }
    if let (Some(mut cd), Some(dir)) = (out.cache_data.take(), out.cache_dir.clone()) {
        let size = info.uncompressed_size.next_multiple_of(4096);
        cd.file()
            .set_len(size)
            .context("sizing the blob cache data file")?;
        cd.set_dest(dir.join(format!("{blob_id}.blob.data")));
        cd.commit()?;
        write_file(&dir.join(format!("{blob_id}.blob.meta")), &blob_meta)?;
    }
    let bootstrap_path = match (&p.bootstrap, &p.blob) {
        (Some(b), _) => Some(b.clone()),
        (None, Some(BlobTarget::Dir(d))) if !p.inline_meta => {
            Some(d.join(sha256(&bootstrap).to_hex()))
        }
        _ => None,
    };
    if let Some(bp) = &bootstrap_path {
        write_file(bp, &bootstrap)?;
    }
    let t_commit = t2.elapsed();
    let total = t0.elapsed();
    Ok(Built {
        bootstrap,
        bootstrap_path,
        blob_id,
        blob_size: out.written,
        table_ids,
        blob_meta,
        trace: json!({
            "walk_seconds": t_walk.as_secs_f64(),
            "data_seconds": t_data.as_secs_f64(),
            "bootstrap_seconds": t_meta.as_secs_f64(),
            "check_and_commit_seconds": t_commit.as_secs_f64(),
            "total_seconds": total.as_secs_f64(),
            "files": tree.len(),
            "raw_bytes": raw_bytes,
            "blob_bytes": out.written,
        }),
    })
}
