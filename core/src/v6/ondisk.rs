//! On-disk structures of a RAFS v6 bootstrap, with field names and constants as in
//! `rafs-v6.md` §2–§12. Each one encodes to and decodes from its exact size.

use crate::codec::{Codec, PutLe, Reader};
use crate::digest::{Digest, Digester};
use crate::error::{BlobProblem, DecodeError, Rule};
use crate::model::{BlobInfo, ChunkRef, Compressor};

/// EROFS block size used by RAFS v6 (non-TARFS).
pub const EROFS_BLOCK_SIZE: u64 = 4096;
pub const EROFS_BLOCK_BITS: u8 = 12;
/// Offset of the EROFS superblock.
pub const EROFS_SUPER_OFFSET: u64 = 1024;
pub const EROFS_SUPER_MAGIC: u32 = 0xE0F5_E1E2;
/// Offset of the RAFS v6 extended superblock.
pub const RAFS_V6_EXT_SUPER_OFFSET: u64 = 1152;
/// Offset of the device table.
pub const EROFS_DEVTABLE_OFFSET: u64 = 1408;
pub const EROFS_DEVT_SLOT_SIZE: u64 = 128;
pub const EROFS_FEATURE_COMPAT_RAFS_V6: u32 = 0x4000_0000;
pub const EROFS_FEATURE_INCOMPAT_CHUNKED_FILE: u32 = 0x4;
pub const EROFS_FEATURE_INCOMPAT_DEVICE_TABLE: u32 = 0x8;
pub const RAFS_V6_FEATURE_INCOMPAT: u32 =
    EROFS_FEATURE_INCOMPAT_CHUNKED_FILE | EROFS_FEATURE_INCOMPAT_DEVICE_TABLE;
/// Blob-table entry size.
pub const RAFS_V6_BLOB_ENTRY_SIZE: u64 = 256;
/// Chunk-info record size.
pub const RAFS_V6_CHUNK_INFO_SIZE: u64 = 80;
/// Chunk index size.
pub const EROFS_CHUNK_INDEX_SIZE: u64 = 8;
/// `blkaddr` of a chunk index that maps no data: the chunk is a hole of zeros.
pub const EROFS_NULL_ADDR: u32 = 0xFFFF_FFFF;
/// Dirent size.
pub const EROFS_DIRENT_SIZE: u64 = 12;
/// Inode slot size (nid unit).
pub const EROFS_INODE_SLOT_SIZE: u64 = 32;
pub const EROFS_INODE_COMPACT_SIZE: u64 = 32;
pub const EROFS_INODE_EXTENDED_SIZE: u64 = 64;
/// Data layouts (`i_format` bits 1..3).
pub const EROFS_INODE_FLAT_PLAIN: u16 = 0;
pub const EROFS_INODE_FLAT_INLINE: u16 = 2;
pub const EROFS_INODE_CHUNK_BASED: u16 = 4;
/// Chunk format bit: 8-byte chunk indexes follow the inode.
pub const EROFS_CHUNK_FORMAT_INDEXES: u16 = 0x20;
pub const EROFS_CHUNK_FORMAT_BLKBITS_MASK: u16 = 0x1f;
/// The mapped_blkaddr segment alignment of the device table.
pub const EROFS_DEVICE_SEGMENT_ALIGN: u64 = 0x80000;
/// Largest chunk size.
pub const RAFS_MAX_CHUNK_SIZE: u64 = 0x100_0000;

/// The EROFS superblock (offset 1024, 128 bytes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SuperBlock {
    pub magic: u32,
    pub checksum: u32,
    pub feature_compat: u32,
    pub blkszbits: u8,
    pub extslots: u8,
    pub root_nid: u16,
    pub inos: u64,
    pub build_time: u64,
    pub build_time_nsec: u32,
    pub blocks: u32,
    pub meta_blkaddr: u32,
    pub xattr_blkaddr: u32,
    pub uuid: [u8; 16],
    pub volume_name: [u8; 16],
    pub feature_incompat: u32,
    pub u1: u16,
    pub extra_devices: u16,
    pub devt_slotoff: u16,
}

impl Codec for SuperBlock {
    const SIZE: usize = 128;
    const NAME: &'static str = "EROFS superblock";
    fn encode(&self, o: &mut Vec<u8>) {
        o.put_u32(self.magic);
        o.put_u32(self.checksum);
        o.put_u32(self.feature_compat);
        o.put_u8(self.blkszbits);
        o.put_u8(self.extslots);
        o.put_u16(self.root_nid);
        o.put_u64(self.inos);
        o.put_u64(self.build_time);
        o.put_u32(self.build_time_nsec);
        o.put_u32(self.blocks);
        o.put_u32(self.meta_blkaddr);
        o.put_u32(self.xattr_blkaddr);
        o.extend_from_slice(&self.uuid);
        o.extend_from_slice(&self.volume_name);
        o.put_u32(self.feature_incompat);
        o.put_u16(self.u1);
        o.put_u16(self.extra_devices);
        o.put_u16(self.devt_slotoff);
        o.put_zeros(38);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let s = SuperBlock {
            magic: r.u32()?,
            checksum: r.u32()?,
            feature_compat: r.u32()?,
            blkszbits: r.u8()?,
            extslots: r.u8()?,
            root_nid: r.u16()?,
            inos: r.u64()?,
            build_time: r.u64()?,
            build_time_nsec: r.u32()?,
            blocks: r.u32()?,
            meta_blkaddr: r.u32()?,
            xattr_blkaddr: r.u32()?,
            uuid: r.take_array()?,
            volume_name: r.take_array()?,
            feature_incompat: r.u32()?,
            u1: r.u16()?,
            extra_devices: r.u16()?,
            devt_slotoff: r.u16()?,
        };
        r.skip(38)?;
        Ok(s)
    }
}

/// The RAFS v6 extended superblock (offset 1152, 256 bytes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtSuperBlock {
    pub flags: u64,
    pub blob_table_offset: u64,
    pub blob_table_size: u32,
    pub chunk_size: u32,
    pub chunk_table_offset: u64,
    pub chunk_table_size: u64,
    pub prefetch_table_offset: u64,
    pub prefetch_table_size: u32,
}

impl Codec for ExtSuperBlock {
    const SIZE: usize = 256;
    const NAME: &'static str = "RAFS v6 extended superblock";
    fn encode(&self, o: &mut Vec<u8>) {
        o.put_u64(self.flags);
        o.put_u64(self.blob_table_offset);
        o.put_u32(self.blob_table_size);
        o.put_u32(self.chunk_size);
        o.put_u64(self.chunk_table_offset);
        o.put_u64(self.chunk_table_size);
        o.put_u64(self.prefetch_table_offset);
        o.put_u32(self.prefetch_table_size);
        o.put_u32(0);
        o.put_zeros(200);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let s = ExtSuperBlock {
            flags: r.u64()?,
            blob_table_offset: r.u64()?,
            blob_table_size: r.u32()?,
            chunk_size: r.u32()?,
            chunk_table_offset: r.u64()?,
            chunk_table_size: r.u64()?,
            prefetch_table_offset: r.u64()?,
            prefetch_table_size: r.u32()?,
        };
        r.skip(204)?;
        Ok(s)
    }
}

/// One EROFS device slot (128 bytes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceSlot {
    /// Blob id bytes (zero-padded to 64).
    pub tag: Vec<u8>,
    pub blocks: u32,
    pub mapped_blkaddr: u32,
}

impl Codec for DeviceSlot {
    const SIZE: usize = 128;
    const NAME: &'static str = "EROFS device slot";
    fn encode(&self, o: &mut Vec<u8>) {
        o.put_padded(&self.tag, 64);
        o.put_u32(self.blocks);
        o.put_u32(self.mapped_blkaddr);
        o.put_zeros(56);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let raw = r.take(64)?;
        let end = raw.iter().position(|&b| b == 0).unwrap_or(64);
        let s = DeviceSlot {
            tag: raw[..end].to_vec(),
            blocks: r.u32()?,
            mapped_blkaddr: r.u32()?,
        };
        r.skip(56)?;
        Ok(s)
    }
}

/// Encodes a blob-table entry (256 bytes) for blob `index`.
pub fn encode_blob_entry(b: &BlobInfo, index: u32, o: &mut Vec<u8>) {
    o.put_padded(b.blob_id.as_bytes(), 64);
    o.put_u32(index);
    o.put_u32(b.chunk_size);
    o.put_u32(b.chunk_count);
    o.put_u32(b.compressor.code());
    o.put_u32(b.digester.code());
    o.put_u32(b.features);
    o.put_u64(b.compressed_size);
    o.put_u64(b.uncompressed_size);
    o.put_u32(b.toc_size);
    o.put_u32(b.ci_compressor.code());
    o.put_u64(b.ci_offset);
    o.put_u64(b.ci_compressed_size);
    o.put_u64(b.ci_uncompressed_size);
    o.extend_from_slice(&b.toc_digest);
    o.extend_from_slice(&b.meta_digest);
    o.put_u64(b.meta_size);
    o.put_u64(b.cipher_iv);
    o.put_u32(b.cipher_algo);
    o.put_zeros(36);
}

/// Decodes blob-table entry `blob`: `(recorded blob_index, info)`. Codes are validated.
pub fn decode_blob_entry(r: &mut Reader<'_>, blob: u32) -> Result<(u32, BlobInfo), DecodeError> {
    let at = r.offset();
    let bad = |problem| DecodeError::BadBlobEntry {
        blob,
        offset: at,
        problem,
    };
    let unknown = |field, value: u32| {
        bad(BlobProblem::Field {
            field,
            value: value.into(),
            rule: Rule::Known,
        })
    };
    let raw = r.take(64)?;
    let end = raw.iter().position(|&b| b == 0).unwrap_or(64);
    let blob_id = String::from_utf8(raw[..end].to_vec())
        .map_err(|_| bad(BlobProblem::NotUtf8 { field: "blob_id" }))?;
    let index = r.u32()?;
    let chunk_size = r.u32()?;
    let chunk_count = r.u32()?;
    let comp = r.u32()?;
    let compressor =
        Compressor::from_code(comp).ok_or_else(|| unknown("compression_algo", comp))?;
    let dig = r.u32()?;
    let digester = Digester::from_code(dig).ok_or_else(|| unknown("digest_algo", dig))?;
    let features = r.u32()?;
    let compressed_size = r.u64()?;
    let uncompressed_size = r.u64()?;
    let toc_size = r.u32()?;
    let cic = r.u32()?;
    let ci_compressor = Compressor::from_code(cic).ok_or_else(|| unknown("ci_compressor", cic))?;
    let info = BlobInfo {
        blob_id,
        chunk_size,
        chunk_count,
        compressor,
        digester,
        features,
        compressed_size,
        uncompressed_size,
        toc_size,
        ci_compressor,
        ci_offset: r.u64()?,
        ci_compressed_size: r.u64()?,
        ci_uncompressed_size: r.u64()?,
        toc_digest: r.take_array()?,
        meta_digest: r.take_array()?,
        meta_size: r.u64()?,
        cipher_iv: r.u64()?,
        cipher_algo: r.u32()?,
    };
    r.skip(36)?;
    Ok((index, info))
}

/// An inode header, compact or extended, as decoded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawInode {
    pub format: u16,
    pub xattr_icount: u16,
    pub mode: u16,
    pub nlink: u32,
    pub size: u64,
    pub u: u32,
    pub ino: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: u64,
    pub mtime_nsec: u32,
}

impl RawInode {
    pub fn is_extended(&self) -> bool {
        self.format & 1 != 0
    }
    pub fn layout(&self) -> u16 {
        (self.format >> 1) & 0x7
    }
    /// Size of the inode record itself (32 or 64).
    pub fn inode_size(&self) -> u64 {
        if self.is_extended() {
            EROFS_INODE_EXTENDED_SIZE
        } else {
            EROFS_INODE_COMPACT_SIZE
        }
    }
    /// Size of the inline xattr body.
    pub fn xattr_size(&self) -> u64 {
        if self.xattr_icount == 0 {
            0
        } else {
            12 + 4 * (self.xattr_icount as u64 - 1)
        }
    }

    /// Encodes an extended inode (64 bytes).
    pub fn encode_extended(&self, o: &mut Vec<u8>) {
        o.put_u16(self.format);
        o.put_u16(self.xattr_icount);
        o.put_u16(self.mode);
        o.put_u16(0);
        o.put_u64(self.size);
        o.put_u32(self.u);
        o.put_u32(self.ino);
        o.put_u32(self.uid);
        o.put_u32(self.gid);
        o.put_u64(self.mtime);
        o.put_u32(self.mtime_nsec);
        o.put_u32(self.nlink);
        o.put_zeros(16);
    }

    /// Decodes a compact or extended inode from `r` (which must hold at least 64 bytes for
    /// an extended one).
    pub fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let format = r.u16()?;
        let xattr_icount = r.u16()?;
        let mode = r.u16()?;
        if format & 1 == 0 {
            let nlink = r.u16()? as u32;
            let size = r.u32()? as u64;
            r.skip(4)?;
            let u = r.u32()?;
            let ino = r.u32()?;
            let uid = r.u16()? as u32;
            let gid = r.u16()? as u32;
            r.skip(4)?;
            Ok(RawInode {
                format,
                xattr_icount,
                mode,
                nlink,
                size,
                u,
                ino,
                uid,
                gid,
                mtime: 0,
                mtime_nsec: 0,
            })
        } else {
            r.skip(2)?;
            let size = r.u64()?;
            let u = r.u32()?;
            let ino = r.u32()?;
            let uid = r.u32()?;
            let gid = r.u32()?;
            let mtime = r.u64()?;
            let mtime_nsec = r.u32()?;
            let nlink = r.u32()?;
            r.skip(16)?;
            Ok(RawInode {
                format,
                xattr_icount,
                mode,
                nlink,
                size,
                u,
                ino,
                uid,
                gid,
                mtime,
                mtime_nsec,
            })
        }
    }
}

/// Encodes a chunk index (8 bytes).
pub fn encode_chunk_index(c: &ChunkRef, o: &mut Vec<u8>) {
    o.put_u16(c.index as u16);
    o.put_u16(((c.blob_index + 1) & 0xff) as u16 | (((c.index >> 16) & 0xff) << 8) as u16);
    o.put_u32((c.uncompressed_offset / EROFS_BLOCK_SIZE) as u32);
}

/// A decoded chunk index: `Some((blob_index, ci index, blkaddr))`, or `None` for a hole
/// (`blkaddr` = [`EROFS_NULL_ADDR`], whatever the device id).
pub fn decode_chunk_index(r: &mut Reader<'_>) -> Result<Option<(u32, u32, u32)>, DecodeError> {
    let at = r.offset();
    let lo = r.u16()? as u32;
    let dev = r.u16()? as u32;
    let blkaddr = r.u32()?;
    if blkaddr == EROFS_NULL_ADDR {
        return Ok(None);
    }
    let device = dev & 0xff;
    if device == 0 {
        return Err(DecodeError::BadField {
            what: "chunk index",
            field: "device_id",
            offset: at,
            value: 0,
            rule: Rule::NonZero,
        });
    }
    Ok(Some((device - 1, lo | (dev >> 8) << 16, blkaddr)))
}

/// Encodes a chunk-info record (80 bytes, `rafs-v5.md` §10).
pub fn encode_chunk_info(c: &ChunkRef, file_offset: u64, o: &mut Vec<u8>) {
    o.extend_from_slice(&c.digest.0);
    o.put_u32(c.blob_index);
    o.put_u32(c.flags);
    o.put_u32(c.compressed_size);
    o.put_u32(c.uncompressed_size);
    o.put_u64(c.compressed_offset);
    o.put_u64(c.uncompressed_offset);
    o.put_u64(file_offset);
    o.put_u32(c.index);
    o.put_u32(c.crc32);
}

/// Decodes a chunk-info record: `(chunk, file_offset)`.
pub fn decode_chunk_info(r: &mut Reader<'_>) -> Result<(ChunkRef, u64), DecodeError> {
    let digest = Digest(r.take_array()?);
    let blob_index = r.u32()?;
    let flags = r.u32()?;
    let compressed_size = r.u32()?;
    let uncompressed_size = r.u32()?;
    let compressed_offset = r.u64()?;
    let uncompressed_offset = r.u64()?;
    let file_offset = r.u64()?;
    let index = r.u32()?;
    let crc32 = r.u32()?;
    Ok((
        ChunkRef {
            digest,
            blob_index,
            index,
            flags,
            compressed_offset,
            compressed_size,
            uncompressed_offset,
            uncompressed_size,
            crc32,
        },
        file_offset,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_index_round_trips_24_bit_indexes() {
        let c = ChunkRef {
            digest: Digest::default(),
            blob_index: 3,
            index: 0x12_3456,
            flags: 0,
            compressed_offset: 0,
            compressed_size: 1,
            uncompressed_offset: 0x5000,
            uncompressed_size: 1,
            crc32: 0,
        };
        let mut v = Vec::new();
        encode_chunk_index(&c, &mut v);
        assert_eq!(
            decode_chunk_index(&mut Reader::new(&v, 0, "t"))
                .unwrap()
                .unwrap(),
            (3, 0x12_3456, 5)
        );
    }

    #[test]
    fn inode_round_trips() {
        let i = RawInode {
            format: 9,
            mode: 0o100644,
            nlink: 1,
            size: 6,
            u: 0x28,
            ino: 2,
            mtime: 1_700_000_000,
            ..Default::default()
        };
        let mut v = Vec::new();
        i.encode_extended(&mut v);
        assert_eq!(v.len(), 64);
        assert_eq!(RawInode::decode(&mut Reader::new(&v, 0, "t")).unwrap(), i);
    }
}
