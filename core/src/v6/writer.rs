//! The RAFS v6 bootstrap encoder. It reproduces upstream's metadata layout (`rafs-v6.md` §13)
//! byte for byte: same placement of inodes, directory blocks and symlink bodies, same
//! partial-block reuse, same tables.

use std::collections::{BTreeMap, VecDeque};

use crate::codec::{round_down, round_up, Codec};
use crate::digest::{Digest, Digester};
use crate::error::BuildError;
use crate::model::{rafs_flags, BlobInfo, ChunkRef, Compressor, FileType};
use crate::tree::{NodeId, Tree, ROOT};
use crate::v6::dir::{self, DirEntry};
use crate::v6::ondisk::*;
use crate::v6::xattr;

/// Filesystem-level options of a bootstrap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V6Options {
    pub chunk_size: u32,
    /// Recorded in the super flags (per-blob compressors are in the blob table).
    pub compressor: Compressor,
    pub digester: Digester,
    /// Keep real uid/gid (upstream default; off with `--repeatable`).
    pub explicit_uid_gid: bool,
    /// Nodes matched by prefetch patterns, in pattern order (written only with blobs).
    pub prefetch: Vec<NodeId>,
    /// Every blob carries its chunk-digest array (`--features blob-toc`).
    pub inlined_chunk_digest: bool,
    /// Set HAS_XATTR even without xattrs (as `merge` does).
    pub force_has_xattr: bool,
}

/// Largest number of blobs in one image.
pub const MAX_BLOBS: usize = 254;

const B: u64 = EROFS_BLOCK_SIZE;

/// Partially used metadata blocks, by free space in 32-byte units (§13).
struct Allocator {
    cursor: u64,
    queues: Vec<VecDeque<u64>>,
}

impl Allocator {
    fn new() -> Self {
        Allocator {
            cursor: B,
            queues: vec![VecDeque::new(); (B / 32) as usize],
        }
    }
    fn add_partial(&mut self, off: u64) {
        if off % B != 0 {
            self.queues[((B - off % B) / 32) as usize].push_back(round_down(off, B));
        }
    }
    fn alloc_partial(&mut self, size: u64) -> Option<u64> {
        if size >= B {
            return None;
        }
        let need = size.div_ceil(32);
        for q in need..B.div_ceil(32) {
            if let Some(b) = self.queues[q as usize].pop_front() {
                let r = b + B - 32 * q;
                self.add_partial(r + 32 * need);
                return Some(r);
            }
        }
        None
    }
    fn align(&mut self, a: u64) {
        self.cursor = round_up(self.cursor, a);
    }
    /// Places an inode with a "tail" (directory or symlink): returns `(off, dirents_offset,
    /// inline)`.
    fn place_with_tail(&mut self, isz: u64, d: u64) -> (u64, u64, bool) {
        let tail = d % B;
        let r = if tail != 0 && isz + tail <= B {
            let off = match self.alloc_partial(isz + tail) {
                Some(o) => o,
                None => {
                    if B - self.cursor % B < isz + tail {
                        self.add_partial(self.cursor);
                        self.align(B);
                    }
                    let o = self.cursor;
                    self.cursor += isz + tail;
                    o
                }
            };
            if d != tail {
                self.add_partial(self.cursor);
                self.align(B);
            }
            let dirents = self.cursor;
            self.cursor += round_down(d, B);
            (off, dirents, true)
        } else {
            let off = match self.alloc_partial(isz) {
                Some(o) => o,
                None => {
                    let o = self.cursor;
                    self.cursor += isz;
                    o
                }
            };
            self.add_partial(self.cursor);
            self.align(B);
            let dirents = self.cursor;
            self.cursor += d;
            self.align(B);
            (off, dirents, false)
        };
        self.align(32);
        r
    }
    fn place_file(&mut self, total: u64) -> u64 {
        let off = match self.alloc_partial(total) {
            Some(o) => o,
            None => {
                let o = self.cursor;
                self.cursor += total;
                o
            }
        };
        self.align(32);
        off
    }
    fn place_special(&mut self, isz: u64) -> u64 {
        let off = self.cursor;
        self.cursor += isz;
        self.align(32);
        off
    }
}

/// Per-node encoding state.
#[derive(Default, Clone)]
struct Slot {
    xattr: Vec<u8>,
    icount: u16,
    /// Directory size or symlink length.
    d: u64,
    off: u64,
    dirents: u64,
    inline: bool,
    placed: bool,
}

fn err_entry(tree: &Tree, id: NodeId, reason: String) -> BuildError {
    BuildError::InvalidEntry {
        path: String::from_utf8_lossy(&tree.path(id)).into_owned(),
        reason,
    }
}

/// The sorted entry names of a directory, `.` and `..` included.
fn dir_names(tree: &Tree, id: NodeId) -> Vec<&[u8]> {
    let mut names: Vec<&[u8]> = vec![b".", b".."];
    names.extend(
        tree.node(id)
            .children
            .iter()
            .map(|&c| tree.node(c).name.as_slice()),
    );
    names.sort_unstable();
    names
}

fn validate(tree: &Tree, blobs: &[BlobInfo], o: &V6Options) -> Result<(), BuildError> {
    let cs = o.chunk_size as u64;
    if !cs.is_power_of_two() || !(0x1000..=RAFS_MAX_CHUNK_SIZE).contains(&cs) {
        return Err(BuildError::InvalidOption {
            option: "chunk size",
            reason: format!("{cs:#x} is not a power of two in 0x1000..=0x1000000"),
        });
    }
    if blobs.len() > MAX_BLOBS {
        return Err(BuildError::Limit {
            what: "blobs",
            reason: format!("{} blobs, at most {MAX_BLOBS}", blobs.len()),
        });
    }
    for (i, b) in blobs.iter().enumerate() {
        if b.blob_id.is_empty() || b.blob_id.len() > 64 {
            return Err(BuildError::InvalidOption {
                option: "blob id",
                reason: format!("blob {i}: id must be 1..=64 bytes"),
            });
        }
        if b.chunk_size != o.chunk_size {
            return Err(BuildError::InvalidOption {
                option: "chunk size",
                reason: format!(
                    "blob {} uses chunk size {:#x}, the image {cs:#x}",
                    b.blob_id, b.chunk_size
                ),
            });
        }
    }
    if tree.is_empty() || tree.len() > u32::MAX as usize {
        return Err(BuildError::Limit {
            what: "inodes",
            reason: format!("{} tree entries", tree.len()),
        });
    }
    Ok(())
}

/// The chunk format (`i_u`) of a regular file (§10.1).
fn chunk_format(size: u64, chunks: &[ChunkRef], chunk_size: u64) -> u32 {
    let contiguous = size > chunk_size
        && chunks.windows(2).all(|w| {
            w[0].blob_index == w[1].blob_index
                && w[1].uncompressed_offset == w[0].uncompressed_offset + chunk_size
        });
    let ics = if contiguous {
        size.next_power_of_two()
    } else {
        chunk_size
    };
    (EROFS_CHUNK_FORMAT_INDEXES as u32) | (ics.trailing_zeros() - EROFS_BLOCK_BITS as u32)
}

/// Encodes a bootstrap for `tree`, whose regular files carry their chunks, referring to
/// `blobs` (blob-table order = chunk `blob_index`).
pub fn write_bootstrap(
    tree: &Tree,
    blobs: &[BlobInfo],
    o: &V6Options,
) -> Result<Vec<u8>, BuildError> {
    validate(tree, blobs, o)?;
    let cs = o.chunk_size as u64;
    let n = tree.len();
    let mut slots = vec![Slot::default(); n];
    let mut has_xattr = false;
    for (id, node) in tree.nodes().iter().enumerate() {
        if node.hardlink_of.is_some() {
            continue;
        }
        let (body, icount) = xattr::encode(&tree.path(id), &node.xattrs)?;
        has_xattr |= icount > 0;
        let s = &mut slots[id];
        s.xattr = body;
        s.icount = icount;
        s.d = match node.file_type {
            FileType::Directory => dir::dir_size(&dir_names(tree, id), B),
            FileType::Symlink => {
                let len = node.symlink.as_ref().map_or(0, |t| t.len() as u64);
                if len == 0 || len > B {
                    return Err(err_entry(
                        tree,
                        id,
                        format!("symlink target of {len} bytes (must be 1..=4096)"),
                    ));
                }
                len
            }
            _ => 0,
        };
        if node.file_type == FileType::Regular {
            let want = node.size.div_ceil(cs);
            let got = tree.chunks(id).len() as u64;
            if want != got {
                return Err(err_entry(
                    tree,
                    id,
                    format!(
                        "{got} chunks recorded for {} bytes ({want} expected)",
                        node.size
                    ),
                ));
            }
            if let Some(c) = tree
                .chunks(id)
                .iter()
                .find(|c| c.blob_index as usize >= blobs.len())
            {
                return Err(err_entry(
                    tree,
                    id,
                    format!("chunk refers to blob {} of {}", c.blob_index, blobs.len()),
                ));
            }
        }
    }

    // Placement, in the order of §13.
    let mut a = Allocator::new();
    let place = |a: &mut Allocator, slots: &mut Vec<Slot>, id: NodeId| {
        let leader = tree.node(id).hardlink_of.unwrap_or(id);
        if slots[leader].placed {
            return;
        }
        let node = tree.node(leader);
        let s = &mut slots[leader];
        let isz = EROFS_INODE_EXTENDED_SIZE + s.xattr.len() as u64;
        match node.file_type {
            FileType::Directory | FileType::Symlink => {
                let (off, dirents, inline) = a.place_with_tail(isz, s.d);
                (s.off, s.dirents, s.inline) = (off, dirents, inline);
            }
            FileType::Regular => {
                let total =
                    round_up(isz, 8) + EROFS_CHUNK_INDEX_SIZE * tree.chunks(leader).len() as u64;
                s.off = a.place_file(total);
            }
            _ => s.off = a.place_special(isz),
        }
        s.placed = true;
    };
    let place_files = |a: &mut Allocator, slots: &mut Vec<Slot>, dir: NodeId| {
        for &c in &tree.node(dir).children {
            if !tree.node(c).is_dir() {
                place(a, slots, c);
            }
        }
    };
    place(&mut a, &mut slots, ROOT);
    place_files(&mut a, &mut slots, ROOT);
    let mut stack: Vec<(NodeId, usize)> = vec![(ROOT, 0)];
    while let Some(top) = stack.last_mut() {
        let (d, i) = *top;
        let kids = &tree.node(d).children;
        match kids[i..].iter().position(|&c| tree.node(c).is_dir()) {
            Some(j) => {
                top.1 = i + j + 1;
                let c = kids[i + j];
                place(&mut a, &mut slots, c);
                place_files(&mut a, &mut slots, c);
                stack.push((c, 0));
            }
            None => {
                stack.pop();
            }
        }
    }
    let nid =
        |id: NodeId| slots[tree.node(id).hardlink_of.unwrap_or(id)].off / EROFS_INODE_SLOT_SIZE;

    // Fixed regions.
    let nblobs = blobs.len() as u64;
    let blob_table_offset = round_up(EROFS_DEVTABLE_OFFSET + EROFS_DEVT_SLOT_SIZE * nblobs, B);
    let prefetch: Vec<u32> = if nblobs > 0 {
        o.prefetch.iter().map(|&p| nid(p) as u32).collect()
    } else {
        Vec::new()
    };
    let prefetch_offset = blob_table_offset + RAFS_V6_BLOB_ENTRY_SIZE * nblobs;
    let meta = if nblobs > 0 {
        round_up(prefetch_offset + 4 * prefetch.len() as u64, B)
    } else {
        0
    };

    // Meta area.
    let mut out = vec![0u8; (meta + a.cursor.max(B)) as usize];
    let mut high = 0u64;
    let mut put = |out: &mut Vec<u8>, at: u64, bytes: &[u8]| {
        let at = (at + meta) as usize;
        if out.len() < at + bytes.len() {
            out.resize(at + bytes.len(), 0);
        }
        out[at..at + bytes.len()].copy_from_slice(bytes);
        high = high.max((at + bytes.len()) as u64);
    };
    for (id, node) in tree.nodes().iter().enumerate() {
        if node.hardlink_of.is_some() {
            continue;
        }
        let s = &slots[id];
        let mut content = Vec::new();
        let (layout, size, u) = match node.file_type {
            FileType::Directory => {
                let mut entries: Vec<DirEntry> = vec![
                    DirEntry {
                        name: b".".to_vec(),
                        nid: nid(id),
                        file_type: FileType::Directory.erofs_code(),
                    },
                    DirEntry {
                        name: b"..".to_vec(),
                        nid: nid(node.parent),
                        file_type: FileType::Directory.erofs_code(),
                    },
                ];
                for &c in &node.children {
                    let cn = tree.node(c);
                    entries.push(DirEntry {
                        name: cn.name.clone(),
                        nid: nid(c),
                        file_type: cn.file_type.erofs_code(),
                    });
                }
                entries.sort_by(|x, y| x.name.cmp(&y.name));
                content = dir::encode(&entries, B);
                debug_assert_eq!(content.len() as u64, s.d);
                let layout = if s.inline {
                    EROFS_INODE_FLAT_INLINE
                } else {
                    EROFS_INODE_FLAT_PLAIN
                };
                (layout, s.d, ((s.dirents + meta) / B) as u32)
            }
            FileType::Symlink => {
                content = node.symlink.clone().unwrap_or_default();
                let layout = if s.inline {
                    EROFS_INODE_FLAT_INLINE
                } else {
                    EROFS_INODE_FLAT_PLAIN
                };
                (layout, s.d, ((s.dirents + meta) / B) as u32)
            }
            FileType::Regular => (
                EROFS_INODE_CHUNK_BASED,
                node.size,
                chunk_format(node.size, tree.chunks(id), cs),
            ),
            _ => (EROFS_INODE_FLAT_PLAIN, 0, node.attrs.rdev),
        };
        let (uid, gid) = if o.explicit_uid_gid {
            (node.attrs.uid, node.attrs.gid)
        } else {
            (0, 0)
        };
        let inode = RawInode {
            format: layout << 1 | 1,
            xattr_icount: s.icount,
            mode: ((node.attrs.mode & 0o7777) | node.file_type.mode_bits()) as u16,
            nlink: node.nlink,
            size,
            u,
            ino: node.ino,
            uid,
            gid,
            mtime: node.attrs.mtime,
            mtime_nsec: node.attrs.mtime_nsec,
        };
        let mut rec = Vec::with_capacity(64 + s.xattr.len());
        inode.encode_extended(&mut rec);
        rec.extend_from_slice(&s.xattr);
        let isz = rec.len() as u64;
        put(&mut out, s.off, &rec);
        match node.file_type {
            FileType::Directory | FileType::Symlink => {
                let tail = (s.d % B) as usize;
                if s.inline {
                    let full = content.len() - tail;
                    put(&mut out, s.off + isz, &content[full..]);
                    if full > 0 {
                        put(&mut out, s.dirents, &content[..full]);
                    }
                } else {
                    put(&mut out, s.dirents, &content);
                }
            }
            FileType::Regular => {
                let mut idx = Vec::with_capacity(8 * tree.chunks(id).len());
                for c in tree.chunks(id) {
                    encode_chunk_index(c, &mut idx);
                }
                put(&mut out, s.off + round_up(isz, 8), &idx);
            }
            _ => {}
        }
    }
    let chunk_table_offset = round_up(high.max(meta + B), B);
    out.resize(chunk_table_offset as usize, 0);

    // Chunk-info table: unique by (digest, blob), last visited reference wins.
    let mut table: BTreeMap<(Digest, u32), (ChunkRef, u64)> = BTreeMap::new();
    for id in 0..n {
        if tree.node(id).file_type == FileType::Regular && tree.node(id).hardlink_of.is_none() {
            for (i, c) in tree.chunks(id).iter().enumerate() {
                table.insert((c.digest, c.blob_index), (*c, i as u64 * cs));
            }
        }
    }
    for (c, fo) in table.values() {
        encode_chunk_info(c, *fo, &mut out);
    }
    let chunk_table_size = RAFS_V6_CHUNK_INFO_SIZE * table.len() as u64;
    out.resize(round_up(out.len() as u64, B) as usize, 0);
    let file_size = out.len() as u64;

    // Device slots and blob table.
    let mut pos = file_size;
    let mut devs = Vec::new();
    let mut btab = Vec::new();
    let mut blocks = 0u64;
    for (i, b) in blobs.iter().enumerate() {
        let blk = b.uncompressed_size / B;
        let mapped = round_up(pos, EROFS_DEVICE_SEGMENT_ALIGN) / B;
        pos = (mapped + blk) * B;
        blocks += blk;
        DeviceSlot {
            tag: b.blob_id.as_bytes().to_vec(),
            blocks: blk as u32,
            mapped_blkaddr: mapped as u32,
        }
        .encode(&mut devs);
        encode_blob_entry(b, i as u32, &mut btab);
    }
    let at = EROFS_DEVTABLE_OFFSET as usize;
    out[at..at + devs.len()].copy_from_slice(&devs);
    let at = blob_table_offset as usize;
    out[at..at + btab.len()].copy_from_slice(&btab);
    let at = prefetch_offset as usize;
    for (k, p) in prefetch.iter().enumerate() {
        out[at + 4 * k..at + 4 * k + 4].copy_from_slice(&p.to_le_bytes());
    }

    let mut flags = o.compressor.rafs_flag()
        | rafs_flags::ENCRYPTION_NONE
        | crate::model::digester_rafs_flag(o.digester);
    if o.explicit_uid_gid {
        flags |= rafs_flags::EXPLICIT_UID_GID;
    }
    if has_xattr || o.force_has_xattr {
        flags |= rafs_flags::HAS_XATTR;
    }
    if o.inlined_chunk_digest {
        flags |= rafs_flags::INLINED_CHUNK_DIGEST;
    }
    let sb = SuperBlock {
        magic: EROFS_SUPER_MAGIC,
        feature_compat: EROFS_FEATURE_COMPAT_RAFS_V6,
        blkszbits: EROFS_BLOCK_BITS,
        root_nid: nid(ROOT) as u16,
        inos: n as u64,
        blocks: blocks as u32,
        meta_blkaddr: (meta / B) as u32,
        feature_incompat: RAFS_V6_FEATURE_INCOMPAT,
        extra_devices: nblobs as u16,
        devt_slotoff: (EROFS_DEVTABLE_OFFSET / EROFS_DEVT_SLOT_SIZE) as u16,
        ..Default::default()
    };
    let ext = ExtSuperBlock {
        flags,
        blob_table_offset,
        blob_table_size: (RAFS_V6_BLOB_ENTRY_SIZE * nblobs) as u32,
        chunk_size: o.chunk_size,
        chunk_table_offset,
        chunk_table_size,
        prefetch_table_offset: if prefetch.is_empty() {
            0
        } else {
            prefetch_offset
        },
        prefetch_table_size: 4 * prefetch.len() as u32,
    };
    let at = EROFS_SUPER_OFFSET as usize;
    out[at..at + SuperBlock::SIZE].copy_from_slice(&sb.to_bytes());
    let at = RAFS_V6_EXT_SUPER_OFFSET as usize;
    out[at..at + ExtSuperBlock::SIZE].copy_from_slice(&ext.to_bytes());
    Ok(out)
}
