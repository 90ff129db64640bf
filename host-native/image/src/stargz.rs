//! `create -t estargztoc-ref` (legacy `stargz_index`): a bootstrap whose chunks are the gzip
//! members of an unmodified eStargz layer (`stargz.md`), built from the layer's TOC, given as
//! the extracted `stargz.index.json` or as the layer file itself (the TOC found by its
//! footer). No data blob is written: the layer is the blob.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use nydus_core::digest::{sha256, Digester, Sha256Stream};
use nydus_core::layer::WhiteoutSpec;
use nydus_core::model::{BlobInfo, Compressor};
use nydus_core::source::ReadAt;
use nydus_core::stargz::{build_from_toc, layer_toc, StargzOptions};
use nydus_core::v6::writer::{write_bootstrap, V6Options};
use nydus_host_storage::atomic::write_file;
use nydus_host_storage::source::FileSource;

use crate::layered::Layered;
use crate::prefetch::prefetch_nodes;

/// What to build from a TOC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StargzPlan {
    /// The TOC JSON, or an eStargz layer file (told apart by the gzip magic).
    pub source: PathBuf,
    pub bootstrap: PathBuf,
    /// The layer's id (digest hex); required for a TOC, the layer's SHA-256 by default.
    pub blob_id: Option<String>,
    /// The layer's size; required for a TOC, the file's size by default.
    pub blob_size: Option<u64>,
    pub parent: Option<PathBuf>,
    pub whiteout: WhiteoutSpec,
    pub explicit_uid_gid: bool,
    /// Where to write the layer's `<id>.blob.meta` (`--blob-cache-dir`): the ci upstream nydusd
    /// needs in its work directory to read the layer.
    pub cache_dir: Option<PathBuf>,
    /// Prefetch patterns (`--prefetch-policy fs`).
    pub prefetch: Vec<String>,
    pub check: bool,
}

/// What a TOC build produced (the bootstrap is written).
#[derive(Debug, Clone)]
pub struct StargzBuilt {
    pub bootstrap: Vec<u8>,
    /// The layer's blob-table entry.
    pub blob: BlobInfo,
    /// Ids of the bootstrap's blob table.
    pub table_ids: Vec<String>,
    /// SHA-256 of the TOC JSON: the layer's `containerd.io/snapshot/stargz/toc.digest`.
    pub toc_digest: String,
    /// The ci section upstream computes for the layer (ci data, then its 4096-byte header).
    pub ci_section: Vec<u8>,
}

/// A TOC source: its JSON and, for a layer file, the layer's size and SHA-256 hex.
#[derive(Debug, Clone)]
pub struct TocSource {
    pub json: Vec<u8>,
    pub layer: Option<(u64, String)>,
}

/// Reads the TOC of `path`: a JSON file, or an eStargz layer whose footer locates it.
pub fn read_toc(path: &Path, want_digest: bool) -> Result<TocSource> {
    let shown = path.display();
    let src = FileSource::open(path)?;
    let mut magic = [0u8; 2];
    if src.size() < 2 || src.read_exact_at(0, &mut magic).is_err() || magic != [0x1f, 0x8b] {
        let json = std::fs::read(path).with_context(|| format!("{shown}: reading the TOC"))?;
        return Ok(TocSource { json, layer: None });
    }
    let json = layer_toc(&src).with_context(|| format!("{shown}"))?;
    let digest = if want_digest {
        let mut h = Sha256Stream::new();
        let mut f = File::open(path).with_context(|| format!("{shown}: opening"))?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = f
                .read(&mut buf)
                .with_context(|| format!("{shown}: hashing the layer"))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        h.finish().to_hex()
    } else {
        String::new()
    };
    Ok(TocSource {
        json,
        layer: Some((src.size(), digest)),
    })
}

/// Builds per `p` and writes the bootstrap.
pub fn build(p: &StargzPlan) -> Result<StargzBuilt> {
    let shown = p.source.display();
    let src = read_toc(&p.source, p.blob_id.is_none())?;
    let (blob_id, blob_size) = match (&src.layer, &p.blob_id, p.blob_size) {
        (_, Some(id), Some(size)) => (id.clone(), size),
        (Some((size, digest)), id, given) => (
            id.clone().unwrap_or_else(|| digest.clone()),
            given.unwrap_or(*size),
        ),
        (None, None, _) => {
            bail!("{shown}: a TOC needs --blob-id (the hex of the eStargz layer's digest)")
        }
        (None, _, None) => {
            bail!("{shown}: a TOC needs --blob-data-size (the eStargz layer's size, hex)")
        }
    };
    if let Some((size, _)) = &src.layer {
        if blob_size > *size {
            bail!("{shown}: --blob-data-size {blob_size:#x} is larger than the layer's {size:#x} bytes");
        }
    }
    let built = build_from_toc(&src.json, &StargzOptions { blob_id, blob_size })
        .with_context(|| format!("{shown}"))?;
    let layered = Layered::open(p.parent.as_deref(), None, p.whiteout, built.chunk_size, 6)?;
    let has_data = built.blob.chunk_count > 0;
    let (tree, mut table, slot) = match layered {
        Some(l) => l.merge(&built.tree)?,
        None => {
            let table = if has_data {
                vec![BlobInfo::default()]
            } else {
                Vec::new()
            };
            (built.tree, table, has_data.then_some(0))
        }
    };
    if let Some(i) = slot {
        table[i] = built.blob.clone();
    }
    let prefetch = prefetch_nodes(&tree, &p.prefetch, true);
    let bootstrap = write_bootstrap(
        &tree,
        &table,
        &V6Options {
            chunk_size: built.chunk_size,
            compressor: Compressor::Gzip,
            digester: Digester::Sha256,
            explicit_uid_gid: p.explicit_uid_gid,
            prefetch: if table.is_empty() {
                Vec::new()
            } else {
                prefetch
            },
            inlined_chunk_digest: false,
            force_has_xattr: false,
        },
    )
    .map_err(anyhow::Error::new)?;
    if p.check {
        crate::check::self_check(&bootstrap)
            .context("post-build validation of the new bootstrap")?;
    }
    if let Some(d) = &p.cache_dir {
        std::fs::create_dir_all(d)
            .with_context(|| format!("creating the blob cache directory {}", d.display()))?;
        if has_data {
            write_file(
                &d.join(format!("{}.blob.meta", built.blob.blob_id)),
                &built.cache_meta,
            )?;
        }
    }
    write_file(&p.bootstrap, &bootstrap)?;
    Ok(StargzBuilt {
        table_ids: table.iter().map(|b| b.blob_id.clone()).collect(),
        bootstrap,
        blob: built.blob,
        toc_digest: sha256(&src.json).to_hex(),
        ci_section: built.ci_section,
    })
}
