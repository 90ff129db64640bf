//! The RAFS v5 encoder (`rafs-v5.md` §1–§10): a finished [`Tree`] with its chunks and the blob
//! table to bootstrap bytes, laid out as upstream lays them out.

use crate::codec::PutLe;
use crate::digest::{Digest, Digester};
use crate::error::BuildError;
use crate::model::{digester_rafs_flag, mode, rafs_flags, BlobInfo, Compressor, FileType};
use crate::tree::{NodeId, Tree, ROOT};
use crate::v5::ondisk::*;

/// Options of a v5 build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V5Options {
    pub chunk_size: u32,
    pub compressor: Compressor,
    pub digester: Digester,
    pub explicit_uid_gid: bool,
    /// `--prefetch-policy fs`: a prefetch table is written (possibly empty).
    pub prefetch_table: bool,
    /// Nodes matched by prefetch patterns, in pattern order.
    pub prefetch: Vec<NodeId>,
    /// The source was a tar stream: non-devices get `i_rdev = 0xFFFFFFFF` (§7.1).
    pub tar_source: bool,
    /// Hard-linked files carry the HARDLINK flag (tar sources, and merges of their layers).
    pub hardlink_flag: bool,
}

/// Bottom-up Merkle digests of every node (§9), by node id.
fn digests(tree: &Tree, d: Digester) -> Vec<Digest> {
    let mut out = vec![Digest::default(); tree.len()];
    // Children always have larger ids than their parent.
    for id in (0..tree.len()).rev() {
        let n = tree.node(id);
        out[id] = match n.file_type {
            FileType::Regular => {
                let cat: Vec<u8> = tree.chunks(id).iter().flat_map(|c| c.digest.0).collect();
                d.digest(&cat)
            }
            FileType::Symlink => d.digest(n.symlink.as_deref().unwrap_or_default()),
            FileType::Directory => {
                let cat: Vec<u8> = n.children.iter().flat_map(|&c| out[c].0).collect();
                d.digest(&cat)
            }
            _ => d.digest(b""),
        };
    }
    out
}

fn dir_pseudo_size(tree: &Tree, id: NodeId) -> u64 {
    let s: u64 = tree
        .node(id)
        .children
        .iter()
        .map(|&c| tree.node(c).name.len() as u64 + RAFS_V5_VIRTUAL_ENTRY_SIZE)
        .sum();
    if s == 0 {
        4096
    } else {
        s.div_ceil(4096) * 4096
    }
}

/// `i_child_index` of every directory: the build inode number its children get, or would
/// get (an empty directory records the number that was next when it was numbered, §3).
fn child_indexes(tree: &Tree) -> Vec<u32> {
    let mut out = vec![0u32; tree.len()];
    let mut next = 1usize;
    let mut stack = vec![ROOT];
    while let Some(dir) = stack.pop() {
        let kids = &tree.node(dir).children;
        out[dir] = next as u32 + 1;
        next += kids.len();
        stack.extend(
            kids.iter()
                .rev()
                .copied()
                .filter(|&k| tree.node(k).is_dir()),
        );
    }
    out
}

/// Nodes in depth-first pre-order (record order).
fn preorder(tree: &Tree) -> Vec<NodeId> {
    let mut out = Vec::with_capacity(tree.len());
    let mut stack = vec![ROOT];
    while let Some(id) = stack.pop() {
        out.push(id);
        stack.extend(tree.node(id).children.iter().rev().copied());
    }
    out
}

fn record_size(tree: &Tree, id: NodeId) -> u64 {
    let n = tree.node(id);
    let mut s = RAFS_V5_INODE_SIZE + align8(name_of(tree, id).len() as u64);
    if let Some(t) = &n.symlink {
        s += align8(t.len() as u64);
    }
    if !n.xattrs.is_empty() {
        s += 8 + align8(xattr_pairs_size(&n.xattrs));
    }
    if n.file_type == FileType::Regular {
        s += tree.chunks(id).len() as u64 * RAFS_V5_CHUNK_INFO_SIZE;
    }
    s
}

fn name_of(tree: &Tree, id: NodeId) -> &[u8] {
    if id == ROOT {
        b"/"
    } else {
        &tree.node(id).name
    }
}

fn check_tree(tree: &Tree, blobs: &[BlobInfo], o: &V5Options) -> Result<(), BuildError> {
    if !o.chunk_size.is_power_of_two() || !(0x1000..=0x100_0000).contains(&o.chunk_size) {
        return Err(BuildError::InvalidOption {
            option: "chunk size",
            reason: format!(
                "{:#x} is not a power of two in [4 KiB, 16 MiB]",
                o.chunk_size
            ),
        });
    }
    for id in 0..tree.len() {
        let n = tree.node(id);
        let shown = || String::from_utf8_lossy(&tree.path(id)).into_owned();
        if let Some(t) = &n.symlink {
            if t.len() > u16::MAX as usize {
                return Err(BuildError::InvalidEntry {
                    path: shown(),
                    reason: format!("symlink target of {} bytes is too long", t.len()),
                });
            }
        }
        for (k, _) in &n.xattrs {
            let ok = [&b"user."[..], b"security.", b"trusted."]
                .iter()
                .any(|p| k.starts_with(p))
                || k == b"system.posix_acl_access"
                || k == b"system.posix_acl_default";
            if !ok {
                return Err(BuildError::InvalidEntry {
                    path: shown(),
                    reason: format!(
                        "xattr {:?} has a prefix RAFS v5 cannot store",
                        String::from_utf8_lossy(k)
                    ),
                });
            }
        }
        if let Some(c) = tree
            .chunks(id)
            .iter()
            .find(|c| c.blob_index as usize >= blobs.len())
        {
            return Err(BuildError::InvalidEntry {
                path: shown(),
                reason: format!("chunk refers to blob {} of {}", c.blob_index, blobs.len()),
            });
        }
    }
    Ok(())
}

/// Encodes the bootstrap.
pub fn write_bootstrap(
    tree: &Tree,
    blobs: &[BlobInfo],
    o: &V5Options,
) -> Result<Vec<u8>, BuildError> {
    check_tree(tree, blobs, o)?;
    let e = tree.len() as u64;
    let inode_table_size = align8(4 * e);
    let prefetch: Vec<u32> = o.prefetch.iter().map(|&id| id as u32 + 1).collect();
    let prefetch_size = align8(4 * prefetch.len() as u64);
    let prefetch_table_offset = RAFS_V5_SUPERBLOCK_SIZE + inode_table_size;
    let blob_table_offset = prefetch_table_offset + prefetch_size;
    let mut bt = Vec::new();
    for (i, b) in blobs.iter().enumerate() {
        if i > 0 {
            bt.push(0);
        }
        bt.put_u32(0);
        bt.put_u32(0);
        bt.extend_from_slice(b.blob_id.as_bytes());
    }
    bt.resize(align8(bt.len() as u64) as usize, 0);
    let ext_offset = blob_table_offset + bt.len() as u64;
    let records_start = ext_offset + RAFS_V5_EXT_BLOB_ENTRY_SIZE * blobs.len() as u64;

    let order = preorder(tree);
    let mut offsets = vec![0u64; tree.len()];
    let mut at = records_start;
    for &id in &order {
        offsets[id] = at;
        at += record_size(tree, id);
    }
    if at > RAFS_V5_MAX_METADATA_SIZE {
        return Err(BuildError::Limit {
            what: "bootstrap size",
            reason: format!("{at} bytes, RAFS v5 allows at most 2 GiB"),
        });
    }
    let has_xattr = tree.nodes().iter().any(|n| !n.xattrs.is_empty());
    let mut flags = o.compressor.rafs_flag() | digester_rafs_flag(o.digester);
    if o.explicit_uid_gid {
        flags |= rafs_flags::EXPLICIT_UID_GID;
    }
    if has_xattr {
        flags |= rafs_flags::HAS_XATTR;
    }
    let unique = tree
        .nodes()
        .iter()
        .filter(|n| n.hardlink_of.is_none())
        .count() as u64;
    let sb = SuperBlock {
        magic: RAFS_V5_SUPER_MAGIC,
        fs_version: RAFS_V5_SUPER_VERSION,
        sb_size: RAFS_V5_SUPERBLOCK_SIZE as u32,
        block_size: o.chunk_size,
        flags,
        inodes_count: unique,
        inode_table_offset: RAFS_V5_SUPERBLOCK_SIZE,
        prefetch_table_offset,
        blob_table_offset,
        inode_table_entries: e as u32,
        prefetch_table_entries: prefetch.len() as u32,
        blob_table_size: bt.len() as u32,
        extended_blob_table_entries: blobs.len() as u32,
        extended_blob_table_offset: ext_offset,
    };
    let mut out = Vec::with_capacity(at as usize);
    sb.encode(&mut out);
    for off in &offsets {
        out.put_u32((off >> 3) as u32);
    }
    out.resize((RAFS_V5_SUPERBLOCK_SIZE + inode_table_size) as usize, 0);
    for p in &prefetch {
        out.put_u32(*p);
    }
    out.resize(blob_table_offset as usize, 0);
    out.extend_from_slice(&bt);
    for b in blobs {
        out.put_u32(b.chunk_count);
        out.put_u32(b.features);
        out.put_u64(b.uncompressed_size);
        out.put_u64(b.compressed_size);
        out.put_zeros(40);
    }
    let dg = digests(tree, o.digester);
    let ci = child_indexes(tree);
    for &id in &order {
        debug_assert_eq!(out.len() as u64, offsets[id]);
        encode_record(tree, id, &dg, ci[id], o, &mut out);
    }
    Ok(out)
}

fn encode_record(
    tree: &Tree,
    id: NodeId,
    dg: &[Digest],
    child_index: u32,
    o: &V5Options,
    out: &mut Vec<u8>,
) {
    let n = tree.node(id);
    let name = name_of(tree, id);
    let chunks = if n.file_type == FileType::Regular {
        tree.chunks(id)
    } else {
        &[]
    };
    let size = match n.file_type {
        FileType::Directory => dir_pseudo_size(tree, id),
        FileType::Regular | FileType::Symlink => n.size,
        _ => 0,
    };
    let xsize = if n.xattrs.is_empty() {
        0
    } else {
        align8(xattr_pairs_size(&n.xattrs))
    };
    let mut flags = 0;
    if n.file_type == FileType::Symlink {
        flags |= inode_flags::SYMLINK;
    }
    if !n.xattrs.is_empty() {
        flags |= inode_flags::XATTR;
    }
    if o.hardlink_flag && n.file_type == FileType::Regular && n.nlink > 1 {
        flags |= inode_flags::HARDLINK;
    }
    let (child_index, child_count) = match n.file_type {
        FileType::Directory => {
            debug_assert!(n
                .children
                .first()
                .is_none_or(|&c| c as u32 + 1 == child_index));
            (child_index, n.children.len() as u32)
        }
        FileType::Regular => (0, chunks.len() as u32),
        _ => (0, 0),
    };
    let rdev = if n.file_type.is_device() || !o.tar_source {
        // Non-devices: 0 from a directory walk, or the value a decoded v5 layer carried.
        n.attrs.rdev
    } else {
        u32::MAX
    };
    let (uid, gid) = if o.explicit_uid_gid {
        (n.attrs.uid, n.attrs.gid)
    } else {
        (0, 0)
    };
    let inode = Inode {
        digest: dg[id],
        parent: if id == ROOT { 0 } else { n.parent as u64 + 1 },
        ino: n.hardlink_of.unwrap_or(id) as u64 + 1,
        uid,
        gid,
        projid: 0,
        mode: (n.attrs.mode & !mode::S_IFMT) | n.file_type.mode_bits(),
        size,
        blocks: (size + xsize).div_ceil(512),
        flags,
        nlink: n.nlink,
        child_index,
        child_count,
        name_size: name.len() as u16,
        symlink_size: n.symlink.as_ref().map_or(0, |t| t.len() as u16),
        rdev,
        mtime_nsec: n.attrs.mtime_nsec,
        mtime: n.attrs.mtime,
    };
    inode.encode(out);
    out.extend_from_slice(name);
    out.resize(align8(out.len() as u64) as usize, 0);
    if let Some(t) = &n.symlink {
        out.extend_from_slice(t);
        out.resize(align8(out.len() as u64) as usize, 0);
    }
    encode_xattrs(&n.xattrs, out);
    for (k, c) in chunks.iter().enumerate() {
        encode_chunk(c, k as u64 * o.chunk_size as u64, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Attrs;
    use crate::tree::{Entry, TreeBuilder};
    use crate::v5::reader::Bootstrap;

    fn dir() -> Entry {
        Entry {
            file_type: FileType::Directory,
            attrs: Attrs {
                mode: 0o755,
                ..Attrs::default()
            },
            xattrs: vec![],
            size: 0,
            symlink: None,
            link_key: None,
            source: 0,
        }
    }

    #[test]
    fn empty_directories_record_the_next_number() {
        let mut b = TreeBuilder::new();
        b.insert(b"a", dir()).unwrap();
        b.insert(b"b/x", dir()).unwrap();
        let t = b.finish();
        let o = V5Options {
            chunk_size: 0x10_0000,
            compressor: Compressor::Zstd,
            digester: Digester::Blake3,
            explicit_uid_gid: true,
            prefetch_table: false,
            prefetch: vec![],
            tar_source: false,
            hardlink_flag: false,
        };
        let boot = Bootstrap::open(write_bootstrap(&t, &[], &o).unwrap()).unwrap();
        // root = 1, a = 2, b = 3 (children of the root), then a's (none) and b's (x = 4).
        let ci = |n: u64| boot.record(n).unwrap().inode.child_index;
        assert_eq!((ci(1), ci(2), ci(3), ci(4)), (2, 4, 4, 5));
        assert_eq!(crate::v5::check::check(&boot).findings, vec![]);
    }
}
