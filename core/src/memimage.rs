//! Building a whole image in memory: the sequential reference pipeline. Hosts with real
//! filesystems use their own parallel pipeline; this one serves tests, golden vectors (the
//! same bytes in the native and WASM builds), fuzzing seeds and small in-browser builds.

use crate::blob::writer::{BlobOptions, BlobWriter};
use crate::chunk::{process_chunk, ChunkParams};
use crate::digest::Digester;
use crate::error::BuildError;
use crate::model::{Attrs, BlobInfo, Compressor, FileType};
use crate::tree::{Entry, TreeBuilder};
use crate::v6::writer::{write_bootstrap, V6Options};

/// One entry with its content (regular files).
#[derive(Debug, Clone)]
pub struct MemEntry {
    pub path: Vec<u8>,
    pub entry: Entry,
    pub data: Vec<u8>,
}

impl MemEntry {
    fn new(path: &[u8], file_type: FileType, mode: u32, data: Vec<u8>) -> MemEntry {
        MemEntry {
            path: path.to_vec(),
            entry: Entry {
                file_type,
                attrs: Attrs {
                    mode: file_type.mode_bits() | mode,
                    ..Default::default()
                },
                xattrs: Vec::new(),
                size: 0,
                symlink: None,
                link_key: None,
                source: 0,
            },
            data,
        }
    }
    /// A directory (mode 0755, root-owned, mtime 0).
    pub fn dir(path: &[u8]) -> MemEntry {
        Self::new(path, FileType::Directory, 0o755, Vec::new())
    }
    /// A regular file holding `data` (mode 0644).
    pub fn file(path: &[u8], data: Vec<u8>) -> MemEntry {
        Self::new(path, FileType::Regular, 0o644, data)
    }
    /// A symlink to `target`.
    pub fn symlink(path: &[u8], target: &[u8]) -> MemEntry {
        let mut e = Self::new(path, FileType::Symlink, 0o777, Vec::new());
        e.entry.symlink = Some(target.to_vec());
        e
    }
}

/// Options of an in-memory build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemOptions {
    pub compressor: Compressor,
    pub digester: Digester,
    pub chunk_size: u32,
    pub inline_meta: bool,
    pub blob_toc: bool,
    pub explicit_uid_gid: bool,
    /// Write RAFS v5 instead of v6 (no ci table, unaligned chunks, no inline metadata).
    pub v5: bool,
}

impl Default for MemOptions {
    fn default() -> Self {
        MemOptions {
            compressor: Compressor::Zstd,
            digester: Digester::Blake3,
            chunk_size: 0x10_0000,
            inline_meta: false,
            blob_toc: false,
            explicit_uid_gid: true,
            v5: false,
        }
    }
}

/// The result of an in-memory build.
#[derive(Debug, Clone)]
pub struct MemImage {
    /// The bootstrap (also inlined in `blob` with `inline_meta`).
    pub bootstrap: Vec<u8>,
    pub blob: Vec<u8>,
    /// The blob's table entry with its final id (`sha256(blob)` unless inline).
    pub blob_info: BlobInfo,
}

/// Builds a single-layer image from `entries` (in any order).
pub fn build(entries: &[MemEntry], o: &MemOptions) -> Result<MemImage, BuildError> {
    if o.v5 && (o.inline_meta || o.blob_toc) {
        return Err(BuildError::InvalidOption {
            option: "v5",
            reason: "RAFS v5 in-memory builds take neither inline metadata nor a ToC".into(),
        });
    }
    let mut b = TreeBuilder::new();
    for (i, e) in entries.iter().enumerate() {
        let mut entry = e.entry.clone();
        entry.source = i as u64;
        entry.size = e.data.len() as u64;
        b.insert(&e.path, entry)?;
    }
    let mut tree = b.finish();
    let params = ChunkParams {
        compressor: o.compressor,
        digester: o.digester,
    };
    let mut w = BlobWriter::new(BlobOptions {
        compressor: o.compressor,
        digester: o.digester,
        chunk_size: o.chunk_size,
        blob_index: 0,
        chunk_info_v2: false,
        inline_meta: o.inline_meta,
        blob_toc: o.blob_toc,
        aligned: !o.v5,
        ci_table: !o.v5,
        extra_features: 0,
    });
    let mut blob = Vec::new();
    for id in tree.data_order(&[]) {
        let data = &entries[tree.node(id).source as usize].data;
        let mut refs = Vec::new();
        for piece in data.chunks(o.chunk_size as usize) {
            let (c, stored) = w.add(process_chunk(piece, &params)?)?;
            blob.extend(stored.unwrap_or_default());
            refs.push(c);
        }
        tree.set_chunks(id, refs);
    }
    let (more, pending) = w.finish_chunks();
    blob.extend(more);
    let has_data = pending.blob_info().chunk_count > 0;
    let v6 = V6Options {
        chunk_size: o.chunk_size,
        compressor: o.compressor,
        digester: o.digester,
        explicit_uid_gid: o.explicit_uid_gid,
        prefetch: Vec::new(),
        inlined_chunk_digest: o.blob_toc,
        force_has_xattr: false,
    };
    let encode = |tree: &crate::tree::Tree, blobs: &[BlobInfo]| {
        if o.v5 {
            crate::v5::writer::write_bootstrap(
                tree,
                blobs,
                &crate::v5::writer::V5Options {
                    chunk_size: o.chunk_size,
                    compressor: o.compressor,
                    digester: o.digester,
                    explicit_uid_gid: o.explicit_uid_gid,
                    prefetch_table: false,
                    prefetch: Vec::new(),
                    tar_source: false,
                    hardlink_flag: false,
                },
            )
        } else {
            write_bootstrap(tree, blobs, &v6)
        }
    };
    if o.inline_meta {
        let mut pre = pending.blob_info();
        pre.blob_id = "x".repeat(64);
        let blobs = if has_data { vec![pre] } else { Vec::new() };
        let bootstrap = encode(&tree, &blobs)?;
        let (more, mut info, id) = pending.finish(Some(&bootstrap));
        blob.extend(more);
        info.blob_id = id.to_hex();
        Ok(MemImage {
            bootstrap,
            blob,
            blob_info: info,
        })
    } else {
        let (more, mut info, id) = pending.finish(None);
        blob.extend(more);
        info.blob_id = id.to_hex();
        let blobs = if has_data {
            vec![info.clone()]
        } else {
            Vec::new()
        };
        let bootstrap = encode(&tree, &blobs)?;
        Ok(MemImage {
            bootstrap,
            blob,
            blob_info: info,
        })
    }
}

/// The tree of `rafs-v6.md` §18: `hello.txt` ("hello\n") and `link -> hello.txt`, mtimes
/// 1700000000, root mtime 0.
pub fn worked_example() -> Vec<MemEntry> {
    let e = |ft: FileType, mode: u32, mtime: u64, symlink: Option<&[u8]>| Entry {
        file_type: ft,
        attrs: Attrs {
            mode,
            mtime,
            ..Default::default()
        },
        xattrs: Vec::new(),
        size: 0,
        symlink: symlink.map(|s| s.to_vec()),
        link_key: None,
        source: 0,
    };
    vec![
        MemEntry {
            path: b"/".to_vec(),
            entry: e(FileType::Directory, 0o755, 0, None),
            data: Vec::new(),
        },
        MemEntry {
            path: b"/hello.txt".to_vec(),
            entry: e(FileType::Regular, 0o644, 1_700_000_000, None),
            data: b"hello\n".to_vec(),
        },
        MemEntry {
            path: b"/link".to_vec(),
            entry: e(FileType::Symlink, 0o777, 1_700_000_000, Some(b"hello.txt")),
            data: Vec::new(),
        },
    ]
}
