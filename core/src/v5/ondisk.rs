//! RAFS v5 on-disk structures and constants, named as in `rafs-v5.md`.

use crate::codec::{PutLe, Reader};
use crate::digest::Digest;
use crate::error::{DecodeError, XattrProblem};
use crate::model::Xattrs;

pub const RAFS_V5_SUPER_MAGIC: u32 = 0x5241_4653;
pub const RAFS_V5_SUPER_VERSION: u32 = 0x500;
pub const RAFS_V5_SUPERBLOCK_SIZE: u64 = 8192;
/// Every structure and record is aligned to this.
pub const RAFS_ALIGNMENT: u64 = 8;
pub const RAFS_V5_INODE_SIZE: u64 = 128;
pub const RAFS_V5_CHUNK_INFO_SIZE: u64 = 80;
pub const RAFS_V5_EXT_BLOB_ENTRY_SIZE: u64 = 64;
/// Largest bootstrap upstream reads.
pub const RAFS_V5_MAX_METADATA_SIZE: u64 = 0x8000_0000;
/// Per-child size of the directory pseudo size (§7.2).
pub const RAFS_V5_VIRTUAL_ENTRY_SIZE: u64 = 8;

/// `i_flags` bits (§7.1).
pub mod inode_flags {
    pub const SYMLINK: u64 = 0x1;
    pub const HARDLINK: u64 = 0x2;
    pub const XATTR: u64 = 0x4;
    pub const HAS_HOLE: u64 = 0x8;
}

pub fn align8(n: u64) -> u64 {
    n.div_ceil(RAFS_ALIGNMENT) * RAFS_ALIGNMENT
}

/// The superblock fields (§2).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SuperBlock {
    pub magic: u32,
    pub fs_version: u32,
    pub sb_size: u32,
    pub block_size: u32,
    pub flags: u64,
    pub inodes_count: u64,
    pub inode_table_offset: u64,
    pub prefetch_table_offset: u64,
    pub blob_table_offset: u64,
    pub inode_table_entries: u32,
    pub prefetch_table_entries: u32,
    pub blob_table_size: u32,
    pub extended_blob_table_entries: u32,
    pub extended_blob_table_offset: u64,
}

impl SuperBlock {
    pub fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.put_u32(self.magic);
        out.put_u32(self.fs_version);
        out.put_u32(self.sb_size);
        out.put_u32(self.block_size);
        out.put_u64(self.flags);
        out.put_u64(self.inodes_count);
        out.put_u64(self.inode_table_offset);
        out.put_u64(self.prefetch_table_offset);
        out.put_u64(self.blob_table_offset);
        out.put_u32(self.inode_table_entries);
        out.put_u32(self.prefetch_table_entries);
        out.put_u32(self.blob_table_size);
        out.put_u32(self.extended_blob_table_entries);
        out.put_u64(self.extended_blob_table_offset);
        let used = out.len() - start;
        out.put_zeros(RAFS_V5_SUPERBLOCK_SIZE as usize - used);
    }

    pub fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(SuperBlock {
            magic: r.u32()?,
            fs_version: r.u32()?,
            sb_size: r.u32()?,
            block_size: r.u32()?,
            flags: r.u64()?,
            inodes_count: r.u64()?,
            inode_table_offset: r.u64()?,
            prefetch_table_offset: r.u64()?,
            blob_table_offset: r.u64()?,
            inode_table_entries: r.u32()?,
            prefetch_table_entries: r.u32()?,
            blob_table_size: r.u32()?,
            extended_blob_table_entries: r.u32()?,
            extended_blob_table_offset: r.u64()?,
        })
    }
}

/// The fixed 128-byte part of an inode record (§7.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inode {
    pub digest: Digest,
    pub parent: u64,
    pub ino: u64,
    pub uid: u32,
    pub gid: u32,
    pub projid: u32,
    pub mode: u32,
    pub size: u64,
    pub blocks: u64,
    pub flags: u64,
    pub nlink: u32,
    pub child_index: u32,
    pub child_count: u32,
    pub name_size: u16,
    pub symlink_size: u16,
    pub rdev: u32,
    pub mtime_nsec: u32,
    pub mtime: u64,
}

impl Inode {
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.digest.0);
        out.put_u64(self.parent);
        out.put_u64(self.ino);
        out.put_u32(self.uid);
        out.put_u32(self.gid);
        out.put_u32(self.projid);
        out.put_u32(self.mode);
        out.put_u64(self.size);
        out.put_u64(self.blocks);
        out.put_u64(self.flags);
        out.put_u32(self.nlink);
        out.put_u32(self.child_index);
        out.put_u32(self.child_count);
        out.put_u16(self.name_size);
        out.put_u16(self.symlink_size);
        out.put_u32(self.rdev);
        out.put_u32(self.mtime_nsec);
        out.put_u64(self.mtime);
        out.put_zeros(8);
    }

    pub fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let i = Inode {
            digest: Digest(r.take_array()?),
            parent: r.u64()?,
            ino: r.u64()?,
            uid: r.u32()?,
            gid: r.u32()?,
            projid: r.u32()?,
            mode: r.u32()?,
            size: r.u64()?,
            blocks: r.u64()?,
            flags: r.u64()?,
            nlink: r.u32()?,
            child_index: r.u32()?,
            child_count: r.u32()?,
            name_size: r.u16()?,
            symlink_size: r.u16()?,
            rdev: r.u32()?,
            mtime_nsec: r.u32()?,
            mtime: r.u64()?,
        };
        r.skip(8)?;
        Ok(i)
    }
}

/// The 80-byte chunk record (§10) is the record of v6's chunk-info table too: one codec.
pub use crate::v6::ondisk::{decode_chunk_info as decode_chunk, encode_chunk_info as encode_chunk};

/// Encodes a v5 xattr table (§8): u64 size, then `u32 pair_size | name | 0 | value` pairs,
/// padded to 8. Empty input gives no bytes.
pub fn encode_xattrs(x: &[(Vec<u8>, Vec<u8>)], out: &mut Vec<u8>) {
    if x.is_empty() {
        return;
    }
    let size = xattr_pairs_size(x);
    out.put_u64(size);
    for (k, v) in x {
        out.put_u32((k.len() + 1 + v.len()) as u32);
        out.extend_from_slice(k);
        out.push(0);
        out.extend_from_slice(v);
    }
    out.put_zeros((align8(size) - size) as usize);
}

/// Byte length of the pairs of a v5 xattr table (unpadded, without the size field).
pub fn xattr_pairs_size(x: &[(Vec<u8>, Vec<u8>)]) -> u64 {
    x.iter()
        .map(|(k, v)| 4 + k.len() as u64 + 1 + v.len() as u64)
        .sum()
}

/// Decodes the pairs of a v5 xattr table (`body` is exactly `size` bytes, at absolute `base`);
/// `nid` is the inode the table belongs to (for errors).
pub fn decode_xattr_pairs(body: &[u8], base: u64, nid: u64) -> Result<Xattrs, DecodeError> {
    let mut r = Reader::new(body, base, "xattr table");
    let mut out = Vec::new();
    while r.remaining() > 0 {
        let at = r.offset();
        let n = r.u32()? as usize;
        let pair = r.take(n)?;
        let bad = |problem| DecodeError::BadXattr {
            nid,
            offset: at,
            problem,
        };
        let Some(z) = pair.iter().position(|&b| b == 0) else {
            return Err(bad(XattrProblem::NoNul));
        };
        if z == 0 {
            return Err(bad(XattrProblem::EmptyName));
        }
        out.push((pair[..z].to_vec(), pair[z + 1..].to_vec()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ChunkRef;

    #[test]
    fn structures_have_their_sizes() {
        let mut v = Vec::new();
        SuperBlock::default().encode(&mut v);
        assert_eq!(v.len() as u64, RAFS_V5_SUPERBLOCK_SIZE);
        let mut v = Vec::new();
        Inode::default().encode(&mut v);
        assert_eq!(v.len() as u64, RAFS_V5_INODE_SIZE);
        let mut v = Vec::new();
        encode_chunk(&ChunkRef::default(), 0, &mut v);
        assert_eq!(v.len() as u64, RAFS_V5_CHUNK_INFO_SIZE);
    }

    #[test]
    fn xattrs_round_trip() {
        let x = vec![
            (b"user.a".to_vec(), b"1".to_vec()),
            (b"security.capability".to_vec(), vec![0, 1, 2]),
        ];
        let mut v = Vec::new();
        encode_xattrs(&x, &mut v);
        assert_eq!(v.len() as u64 % 8, 0);
        let size = u64::from_le_bytes(v[..8].try_into().unwrap());
        assert_eq!(
            decode_xattr_pairs(&v[8..8 + size as usize], 8, 1).unwrap(),
            x
        );
    }
}
