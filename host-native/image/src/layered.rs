//! `create --parent-bootstrap` and `--chunk-dict`: a layer built on top of a lower image and
//! deduplicated against it (and against a chunk dictionary).
//!
//! While the layer is built, chunk references use a build-local blob numbering: 0 is the new
//! blob, `1..=P` the parent's blobs, then the dictionary's. [`Layered::merge`] overlays the
//! finished layer on the parent (whiteouts applied) and renumbers into the final table: the
//! parent's blobs (all kept, in order), then dictionary blobs that are used, then the new blob
//! if it is used.

use std::path::Path;

use anyhow::{Context, Result};
use nydus_core::layer::{
    entries_of_image, entries_of_tree, BlobOrder, LayerEntry, Overlay, WhiteoutSpec,
};
use nydus_core::model::{BlobInfo, ChunkRef};
use nydus_core::read::Filesystem;
use nydus_core::tree::Tree;

use nydus_host_storage::open::{open_image, resolved_blobs};

/// Id of the table slot the new blob takes until its real description is known.
const NEW_BLOB: &str = "\0new blob";

#[derive(Debug)]
pub struct Layered {
    parent: Option<(Vec<LayerEntry>, Vec<BlobInfo>)>,
    dict_blobs: Vec<BlobInfo>,
    known: Vec<ChunkRef>,
    spec: WhiteoutSpec,
}

fn chunks_of(entries: &[LayerEntry], base: u32) -> impl Iterator<Item = ChunkRef> + '_ {
    entries.iter().flat_map(move |e| {
        e.chunks.iter().map(move |c| ChunkRef {
            blob_index: c.blob_index + base,
            ..*c
        })
    })
}

impl Layered {
    /// Opens the parent bootstrap and the chunk dictionary, if any (`None` when neither is given).
    pub fn open(
        parent: Option<&Path>,
        dict: Option<&Path>,
        spec: WhiteoutSpec,
        chunk_size: u32,
        fs_version: u32,
    ) -> Result<Option<Self>> {
        if parent.is_none() && dict.is_none() {
            return Ok(None);
        }
        let mut known = Vec::new();
        let mut parent_part = None;
        let mut base = 1u32;
        if let Some(p) = parent {
            let img = open_image(p).with_context(|| format!("parent bootstrap {}", p.display()))?;
            if img.boot.version() != fs_version {
                anyhow::bail!(
                    "parent bootstrap {} is RAFS v{}, this build v{fs_version}: give the same --fs-version",
                    p.display(),
                    img.boot.version()
                );
            }
            if img.boot.chunk_size() != chunk_size {
                anyhow::bail!(
                    "parent bootstrap {} has chunk size {:#x}, this build {chunk_size:#x}: give the same --chunk-size",
                    p.display(),
                    img.boot.chunk_size()
                );
            }
            let entries = entries_of_image(&img.boot)
                .with_context(|| format!("reading parent bootstrap {}", p.display()))?;
            let blobs = resolved_blobs(&img)?;
            known.extend(chunks_of(&entries, base));
            base += blobs.len() as u32;
            parent_part = Some((entries, blobs));
        }
        let mut dict_blobs = Vec::new();
        if let Some(d) = dict {
            let img = open_image(d).with_context(|| format!("chunk dict {}", d.display()))?;
            if img.boot.version() != fs_version || img.boot.chunk_size() != chunk_size {
                anyhow::bail!(
                    "chunk dict {} is RAFS v{} with chunk size {:#x}, this build v{fs_version} with {chunk_size:#x}",
                    d.display(),
                    img.boot.version(),
                    img.boot.chunk_size()
                );
            }
            let entries = entries_of_image(&img.boot)
                .with_context(|| format!("reading chunk dict {}", d.display()))?;
            known.extend(chunks_of(&entries, base));
            dict_blobs = resolved_blobs(&img)?;
        }
        // Without a parent there is nothing below to hide: entries stay as the source has them
        // (a directory walk already left whiteouts out).
        let spec = if parent_part.is_some() {
            spec
        } else {
            WhiteoutSpec::None
        };
        Ok(Some(Layered {
            parent: parent_part,
            dict_blobs,
            known,
            spec,
        }))
    }

    /// A regular file of the parent at `path` (normalized, relative), with build-local blob
    /// indexes: the target of a tar hard link into a lower layer.
    pub fn lower_file(&self, path: &[u8]) -> Option<crate::tarsrc::LowerFile> {
        let (entries, _) = self.parent.as_ref()?;
        let want: Vec<&[u8]> = path
            .split(|&b| b == b'/')
            .filter(|c| !c.is_empty())
            .collect();
        let e = entries.iter().find(|e| {
            e.path
                .split(|&b| b == b'/')
                .filter(|c| !c.is_empty())
                .eq(want.iter().copied())
        })?;
        if e.entry.file_type != nydus_core::model::FileType::Regular {
            return None;
        }
        Some(crate::tarsrc::LowerFile {
            attrs: e.entry.attrs.clone(),
            xattrs: e.entry.xattrs.clone(),
            size: e.entry.size,
            chunks: chunks_of(std::slice::from_ref(e), 1).collect(),
        })
    }

    /// Chunks new data may deduplicate against (build-local blob indexes).
    pub fn known_chunks(&self) -> &[ChunkRef] {
        &self.known
    }

    /// The merged tree, its blob table (the new blob's slot holds a placeholder) and the
    /// index of that slot, if the new blob is used.
    pub fn merge(self, layer: &Tree) -> Result<(Tree, Vec<BlobInfo>, Option<usize>)> {
        let mut o = Overlay::new();
        let mut local = vec![0u32];
        if let Some((entries, blobs)) = self.parent {
            let map: Vec<u32> = blobs.iter().map(|b| o.add_blob(b, true)).collect();
            local.extend_from_slice(&map);
            o.apply(entries, &map, WhiteoutSpec::None)
                .context("loading the parent bootstrap")?;
        }
        for b in &self.dict_blobs {
            local.push(o.add_blob(b, false));
        }
        let placeholder = BlobInfo {
            blob_id: NEW_BLOB.into(),
            ..BlobInfo::default()
        };
        local[0] = o.add_blob(&placeholder, false);
        o.apply(entries_of_tree(layer), &local, self.spec)
            .context("applying the new layer on the parent")?;
        let (tree, table) = o.finish(BlobOrder::Registered);
        let new = table.iter().position(|b| b.blob_id == NEW_BLOB);
        Ok((tree, table, new))
    }
}
