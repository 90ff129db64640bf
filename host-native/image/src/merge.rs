//! Merging (`nydus-image merge`): per-layer bootstraps, lowest first, overlaid into one
//! bootstrap (`oci-nydus-image.md` §3, `cli.md` §1.2), per a validated [`MergePlan`].

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use nydus_core::digest::Digest;
use nydus_core::layer::{entries_of_image, BlobOrder, Overlay, WhiteoutSpec};
use nydus_core::model::{blob_features, rafs_flags, BlobInfo};
use nydus_core::read::Filesystem;
use nydus_core::v5::writer::V5Options;
use nydus_core::v6::writer::{write_bootstrap, V6Options};

use nydus_host_storage::atomic::write_file;
use nydus_host_storage::open::{open_image, resolved_blobs, Image};

/// Layers that cannot be merged (different chunk size, version, uid/gid mode): exit code 2.
#[derive(Debug)]
pub struct Inconsistent(pub String);

impl std::fmt::Display for Inconsistent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "inconsistent filesystems: {}", self.0)
    }
}

impl std::error::Error for Inconsistent {}

/// The blob id a source's own blob gets by default: the file name without any extension.
pub fn blob_id_from_path(path: &Path) -> Result<String> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .with_context(|| format!("{}: no file name to take a blob id from", path.display()))?;
    let stem = name.split('.').next().unwrap_or_default();
    if stem.is_empty() {
        bail!(
            "{}: cannot take a blob id from this file name",
            path.display()
        );
    }
    Ok(stem.to_string())
}

fn per_source<'a, T>(list: &'a Option<Vec<T>>, i: usize, what: &str) -> Result<Option<&'a T>> {
    Ok(match list {
        Some(l) => Some(
            l.get(i)
                .with_context(|| format!("{what}: no entry for source {}", i + 1))?,
        ),
        None => None,
    })
}

/// Validated merge options. The per-source lists, when given, have one entry per source and
/// describe that source's own blob in the merged table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergePlan {
    /// Per-layer bootstraps (or data blobs with an inline bootstrap), lowest layer first.
    pub sources: Vec<PathBuf>,
    /// The merged bootstrap to write.
    pub bootstrap: PathBuf,
    /// A bootstrap that is the lowest layer.
    pub parent_bootstrap: Option<PathBuf>,
    /// A chunk dictionary whose blobs may appear in the sources' blob tables.
    pub chunk_dict: Option<PathBuf>,
    /// List the prefetch patterns' files in the merged bootstrap.
    pub prefetch_fs: bool,
    /// Whiteout convention of the upper layers.
    pub whiteout: WhiteoutSpec,
    /// The new blob id (digest): the blob's id, or for a separate-metadata blob its
    /// metadata digest.
    pub blob_digests: Option<Vec<Digest>>,
    /// The blob id to use instead of the file name stem.
    pub original_blob_ids: Option<Vec<String>>,
    /// The blob's compressed size (or a separate-metadata blob's metadata size).
    pub blob_sizes: Option<Vec<u64>>,
    pub blob_toc_digests: Option<Vec<Digest>>,
    pub blob_toc_sizes: Option<Vec<u32>>,
}

impl MergePlan {
    /// A plain merge of `sources` into `bootstrap` (OCI whiteouts, no prefetch list).
    pub fn new(sources: Vec<PathBuf>, bootstrap: PathBuf) -> MergePlan {
        MergePlan {
            sources,
            bootstrap,
            parent_bootstrap: None,
            chunk_dict: None,
            prefetch_fs: false,
            whiteout: WhiteoutSpec::Oci,
            blob_digests: None,
            original_blob_ids: None,
            blob_sizes: None,
            blob_toc_digests: None,
            blob_toc_sizes: None,
        }
    }
}

/// The fixed properties all merged layers must share.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Shape {
    version: u32,
    chunk_size: u32,
    explicit_uid_gid: bool,
    tarfs: bool,
    /// v5 only: inode digests are Merkle trees, so every layer must use the same digester.
    v5_digester: Option<nydus_core::digest::Digester>,
}

fn shape(img: &Image) -> Shape {
    let flags = img.boot.flags();
    Shape {
        version: img.boot.version(),
        chunk_size: img.boot.chunk_size(),
        explicit_uid_gid: flags & rafs_flags::EXPLICIT_UID_GID != 0,
        tarfs: flags & rafs_flags::TARFS_MODE != 0,
        v5_digester: (img.boot.version() == 5).then(|| img.boot.digester()),
    }
}

/// What a merge wrote to `--bootstrap`.
#[derive(Debug, Clone)]
pub struct Merged {
    pub bootstrap: Vec<u8>,
    /// The merged blob table's ids.
    pub blob_ids: Vec<String>,
    pub files: usize,
    pub fs_version: u32,
    pub compressor: nydus_core::model::Compressor,
}

/// Merges per `a` with prefetch `patterns` (used with `a.prefetch_fs`) and writes the
/// bootstrap.
pub fn merge(a: &MergePlan, patterns: &[String]) -> Result<Merged> {
    if a.sources.is_empty() {
        bail!("nothing to merge: no source bootstraps");
    }
    let n = a.sources.len();
    for (what, len) in [
        ("blob digests", a.blob_digests.as_ref().map(Vec::len)),
        (
            "original blob ids",
            a.original_blob_ids.as_ref().map(Vec::len),
        ),
        ("blob sizes", a.blob_sizes.as_ref().map(Vec::len)),
        (
            "blob ToC digests",
            a.blob_toc_digests.as_ref().map(Vec::len),
        ),
        ("blob ToC sizes", a.blob_toc_sizes.as_ref().map(Vec::len)),
    ] {
        if let Some(len) = len {
            if len != n {
                bail!("{len} {what} given for {n} sources");
            }
        }
    }
    let spec = a.whiteout;
    let prefetch_fs = a.prefetch_fs;

    let mut overlay = Overlay::new();
    let mut shape0: Option<(Shape, PathBuf)> = None;
    let mut check_shape = |img: &Image| -> Result<()> {
        let s = shape(img);
        match &shape0 {
            None => shape0 = Some((s, img.path.clone())),
            Some((s0, p0)) if *s0 != s => {
                return Err(Inconsistent(format!(
                    "{} is RAFS v{} (digester {:?}) with chunk size {:#x}, explicit uid/gid {}, tarfs {}; {} is v{}, {:#x}, {}, {}",
                    img.path.display(),
                    s.version,
                    s.v5_digester,
                    s.chunk_size,
                    s.explicit_uid_gid,
                    s.tarfs,
                    p0.display(),
                    s0.version,
                    s0.chunk_size,
                    s0.explicit_uid_gid,
                    s0.tarfs
                ))
                .into())
            }
            Some(_) => {}
        }
        Ok(())
    };
    if let Some(p) = &a.parent_bootstrap {
        let img = open_image(p).with_context(|| format!("parent bootstrap {}", p.display()))?;
        check_shape(&img)?;
        let map: Vec<u32> = resolved_blobs(&img)?
            .iter()
            .map(|b| overlay.add_blob(&merged_blob(b), false))
            .collect();
        let entries =
            entries_of_image(&img.boot).with_context(|| format!("reading {}", p.display()))?;
        overlay
            .apply(entries, &map, spec)
            .with_context(|| format!("applying {}", p.display()))?;
    }
    let mut dict_ids: HashSet<String> = HashSet::new();
    if let Some(path) = &a.chunk_dict {
        let img = open_image(path).with_context(|| format!("chunk dict {}", path.display()))?;
        dict_ids.extend(resolved_blobs(&img)?.iter().map(|b| b.blob_id.clone()));
    }

    let mut compressor = None;
    let mut hardlink_flag = false;
    let mut digester = None;
    for (i, path) in a.sources.iter().enumerate() {
        let img = open_image(path)?;
        check_shape(&img)?;
        compressor = Some(img.boot.compressor());
        if let nydus_core::rafs::Rafs::V5(b) = &img.boot {
            hardlink_flag |= b
                .has_hardlink_flag()
                .with_context(|| format!("reading {}", path.display()))?;
        }
        digester = Some(img.boot.digester());
        let mut own_seen = false;
        let mut map = Vec::new();
        for b in img.boot.blobs() {
            let mut m = merged_blob(b);
            if !dict_ids.contains(&b.blob_id) {
                if own_seen {
                    bail!(
                        "{}: a per-layer bootstrap has more than one data blob of its own",
                        path.display()
                    );
                }
                own_seen = true;
                m.blob_id = match per_source(&a.original_blob_ids, i, "original blob ids")? {
                    Some(id) => id.clone(),
                    None => {
                        let id = blob_id_from_path(path)?;
                        let digest = id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit());
                        if !digest && per_source(&a.blob_digests, i, "blob digests")?.is_none() {
                            log::warn!(
                                "{}: blob id {id:?} is taken from the file name and is not a \
                                 64-hex digest: name per-layer bootstraps by their blob's digest \
                                 (or give --original-blob-ids / --blob-digests) so that readers \
                                 find the blob",
                                path.display()
                            );
                        }
                        id
                    }
                };
                if let Some(d) = per_source(&a.blob_digests, i, "blob digests")? {
                    if m.features & blob_features::SEPARATE != 0 {
                        m.meta_digest = d.0;
                    } else {
                        m.blob_id = d.to_hex();
                    }
                }
                if let Some(&s) = per_source(&a.blob_sizes, i, "blob sizes")? {
                    if m.features & blob_features::SEPARATE != 0 {
                        m.meta_size = s;
                    } else {
                        m.compressed_size = s;
                    }
                }
                if let Some(d) = per_source(&a.blob_toc_digests, i, "blob ToC digests")? {
                    m.toc_digest = d.0;
                }
                if let Some(&s) = per_source(&a.blob_toc_sizes, i, "blob ToC sizes")? {
                    m.toc_size = s;
                }
            }
            map.push(overlay.add_blob(&m, false));
        }
        let entries =
            entries_of_image(&img.boot).with_context(|| format!("reading {}", path.display()))?;
        overlay
            .apply(entries, &map, spec)
            .with_context(|| format!("applying layer {}", path.display()))?;
    }

    let (shape, _) = shape0.expect("at least one source");
    let (tree, blobs) = overlay.finish(BlobOrder::FirstUse);
    let prefetch = if blobs.is_empty() || !prefetch_fs {
        Vec::new()
    } else {
        crate::prefetch::prefetch_nodes(&tree, patterns, true)
    };
    let opts = V6Options {
        chunk_size: shape.chunk_size,
        compressor: compressor.expect("at least one source"),
        digester: digester.expect("at least one source"),
        explicit_uid_gid: shape.explicit_uid_gid,
        prefetch,
        inlined_chunk_digest: blobs
            .iter()
            .all(|b| b.features & blob_features::INLINED_CHUNK_DIGEST != 0),
        force_has_xattr: true,
    };
    let boot = if shape.version == 5 {
        let o = V5Options {
            chunk_size: opts.chunk_size,
            compressor: opts.compressor,
            digester: opts.digester,
            explicit_uid_gid: opts.explicit_uid_gid,
            prefetch_table: prefetch_fs,
            prefetch: opts.prefetch.clone(),
            tar_source: false,
            hardlink_flag,
        };
        nydus_core::v5::writer::write_bootstrap(&tree, &blobs, &o)
    } else {
        write_bootstrap(&tree, &blobs, &opts)
    }
    .map_err(anyhow::Error::new)?;
    crate::check::self_check(&boot).context("post-merge validation of the new bootstrap")?;
    write_file(&a.bootstrap, &boot)?;
    Ok(Merged {
        bootstrap: boot,
        blob_ids: blobs.iter().map(|b| b.blob_id.clone()).collect(),
        files: tree.len(),
        fs_version: shape.version,
        compressor: opts.compressor,
    })
}

/// A blob table entry as it appears in a merged bootstrap: the bootstrap is no longer inside
/// the blob as far as the merged image is concerned.
fn merged_blob(b: &BlobInfo) -> BlobInfo {
    let mut m = b.clone();
    m.features &= !blob_features::INLINED_FS_META;
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_ids_from_names() {
        assert_eq!(blob_id_from_path(Path::new("/x/abc.boot")).unwrap(), "abc");
        assert_eq!(blob_id_from_path(Path::new("abc.tar.gz")).unwrap(), "abc");
        assert_eq!(blob_id_from_path(Path::new("abc")).unwrap(), "abc");
        assert!(blob_id_from_path(Path::new("/x/.hidden")).is_err());
    }
}
