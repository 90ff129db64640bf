//! The in-memory model shared by the encoders, decoders, checker and hosts: file types,
//! attributes, chunk references and blob descriptions, with the flag constants of the spec.

/// RAFS super flags (`rafs-v6.md` §3.1), spelled as in the spec.
pub mod rafs_flags {
    pub const COMPRESSION_NONE: u64 = 0x0000_0001;
    pub const COMPRESSION_LZ4: u64 = 0x0000_0002;
    pub const HASH_BLAKE3: u64 = 0x0000_0004;
    pub const HASH_SHA256: u64 = 0x0000_0008;
    pub const EXPLICIT_UID_GID: u64 = 0x0000_0010;
    pub const HAS_XATTR: u64 = 0x0000_0020;
    pub const COMPRESSION_GZIP: u64 = 0x0000_0040;
    pub const COMPRESSION_ZSTD: u64 = 0x0000_0080;
    pub const INLINED_CHUNK_DIGEST: u64 = 0x0000_0100;
    pub const TARFS_MODE: u64 = 0x0000_0200;
    pub const ENCRYPTION_NONE: u64 = 0x0100_0000;
    pub const ENCRYPTION_AES_128_XTS: u64 = 0x0200_0000;
    /// Reserved "compat" bits accepted by readers.
    pub const RESERVED_COMPAT: u64 = 0xFC00_0000;
    /// Every bit a reader accepts.
    pub const KNOWN: u64 = 0x3FF | ENCRYPTION_NONE | ENCRYPTION_AES_128_XTS | RESERVED_COMPAT;
    /// The four compression bits (exactly one must be set).
    pub const COMPRESSION_MASK: u64 =
        COMPRESSION_NONE | COMPRESSION_LZ4 | COMPRESSION_GZIP | COMPRESSION_ZSTD;
    /// The two hash bits (exactly one must be set).
    pub const HASH_MASK: u64 = HASH_BLAKE3 | HASH_SHA256;
}

/// Blob feature bits (`blob.md` §2).
pub mod blob_features {
    pub const ALIGNED: u32 = 0x0000_0001;
    pub const INLINED_FS_META: u32 = 0x0000_0002;
    pub const CHUNK_INFO_V2: u32 = 0x0000_0004;
    pub const ZRAN: u32 = 0x0000_0008;
    pub const SEPARATE: u32 = 0x0000_0010;
    pub const INLINED_CHUNK_DIGEST: u32 = 0x0000_0020;
    pub const TARFS: u32 = 0x0000_0040;
    pub const BATCH: u32 = 0x0000_0080;
    pub const ENCRYPTED: u32 = 0x0000_0100;
    pub const IS_CHUNKDICT_GENERATED: u32 = 0x0000_0200;
    pub const IS_SEPARATED_WITH_PREFETCH_FILES: u32 = 0x0000_0400;
    pub const EXTERNAL: u32 = 0x0000_0800;
    pub const HAS_TAR_HEADER: u32 = 0x1000_0000;
    pub const HAS_TOC: u32 = 0x2000_0000;
    pub const CAP_TAR_TOC: u32 = 0x4000_0000;
    /// Internal "v5 without extended blob table" bit; never valid on disk.
    pub const V5_NO_EXT_BLOB_TABLE: u32 = 0x8000_0000;
}

/// Chunk flags of the 80-byte chunk-info record (`rafs-v5.md` §10).
pub mod chunk_flags {
    pub const COMPRESSED: u32 = 0x1;
    pub const HOLECHUNK: u32 = 0x2;
    pub const ENCRYPTED: u32 = 0x4;
    pub const BATCH: u32 = 0x8;
    pub const HAS_CRC32: u32 = 0x10;
}

/// POSIX file-type bits of `st_mode`.
pub mod mode {
    pub const S_IFMT: u32 = 0o170000;
    pub const S_IFSOCK: u32 = 0o140000;
    pub const S_IFLNK: u32 = 0o120000;
    pub const S_IFREG: u32 = 0o100000;
    pub const S_IFBLK: u32 = 0o060000;
    pub const S_IFDIR: u32 = 0o040000;
    pub const S_IFCHR: u32 = 0o020000;
    pub const S_IFIFO: u32 = 0o010000;
}

/// Chunk compression algorithm (`blob.md` §1.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Compressor {
    /// Code 0: raw bytes.
    None,
    /// Code 1: one raw LZ4 block.
    Lz4Block,
    /// Code 2: one gzip member (decode only for native blobs).
    Gzip,
    /// Code 3: one zstd frame, level 3. The default.
    #[default]
    Zstd,
}

impl Compressor {
    pub fn code(self) -> u32 {
        match self {
            Compressor::None => 0,
            Compressor::Lz4Block => 1,
            Compressor::Gzip => 2,
            Compressor::Zstd => 3,
        }
    }
    pub fn from_code(code: u32) -> Option<Self> {
        Some(match code {
            0 => Compressor::None,
            1 => Compressor::Lz4Block,
            2 => Compressor::Gzip,
            3 => Compressor::Zstd,
            _ => return None,
        })
    }
    /// The name used on the command line and in JSON output.
    pub fn name(self) -> &'static str {
        match self {
            Compressor::None => "none",
            Compressor::Lz4Block => "lz4_block",
            Compressor::Gzip => "gzip",
            Compressor::Zstd => "zstd",
        }
    }
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "none" => Compressor::None,
            "lz4_block" => Compressor::Lz4Block,
            "gzip" => Compressor::Gzip,
            "zstd" => Compressor::Zstd,
            _ => return None,
        })
    }
    /// The RAFS super flag recording this compressor.
    pub fn rafs_flag(self) -> u64 {
        match self {
            Compressor::None => rafs_flags::COMPRESSION_NONE,
            Compressor::Lz4Block => rafs_flags::COMPRESSION_LZ4,
            Compressor::Gzip => rafs_flags::COMPRESSION_GZIP,
            Compressor::Zstd => rafs_flags::COMPRESSION_ZSTD,
        }
    }
    /// The compressor RAFS super flags record (none if no compression bit is set).
    pub fn from_rafs_flags(f: u64) -> Self {
        if f & rafs_flags::COMPRESSION_ZSTD != 0 {
            Compressor::Zstd
        } else if f & rafs_flags::COMPRESSION_LZ4 != 0 {
            Compressor::Lz4Block
        } else if f & rafs_flags::COMPRESSION_GZIP != 0 {
            Compressor::Gzip
        } else {
            Compressor::None
        }
    }
}

/// The RAFS super flag recording a digester.
pub fn digester_rafs_flag(d: crate::digest::Digester) -> u64 {
    match d {
        crate::digest::Digester::Blake3 => rafs_flags::HASH_BLAKE3,
        crate::digest::Digester::Sha256 => rafs_flags::HASH_SHA256,
    }
}

/// The digester RAFS super flags record (blake3 unless the sha256 bit is set).
pub fn digester_of_rafs_flags(f: u64) -> crate::digest::Digester {
    if f & rafs_flags::HASH_SHA256 != 0 {
        crate::digest::Digester::Sha256
    } else {
        crate::digest::Digester::Blake3
    }
}

/// The type of a filesystem entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileType {
    Regular,
    Directory,
    Symlink,
    CharDevice,
    BlockDevice,
    Fifo,
    Socket,
}

impl FileType {
    /// From the `S_IFMT` bits of a mode.
    pub fn from_mode(m: u32) -> Option<Self> {
        Some(match m & mode::S_IFMT {
            mode::S_IFREG => FileType::Regular,
            mode::S_IFDIR => FileType::Directory,
            mode::S_IFLNK => FileType::Symlink,
            mode::S_IFCHR => FileType::CharDevice,
            mode::S_IFBLK => FileType::BlockDevice,
            mode::S_IFIFO => FileType::Fifo,
            mode::S_IFSOCK => FileType::Socket,
            _ => return None,
        })
    }
    /// The `S_IFMT` bits of this type.
    pub fn mode_bits(self) -> u32 {
        match self {
            FileType::Regular => mode::S_IFREG,
            FileType::Directory => mode::S_IFDIR,
            FileType::Symlink => mode::S_IFLNK,
            FileType::CharDevice => mode::S_IFCHR,
            FileType::BlockDevice => mode::S_IFBLK,
            FileType::Fifo => mode::S_IFIFO,
            FileType::Socket => mode::S_IFSOCK,
        }
    }
    /// EROFS dirent `file_type` (`rafs-v6.md` §11.1).
    pub fn erofs_code(self) -> u8 {
        match self {
            FileType::Regular => 1,
            FileType::Directory => 2,
            FileType::CharDevice => 3,
            FileType::BlockDevice => 4,
            FileType::Fifo => 5,
            FileType::Socket => 6,
            FileType::Symlink => 7,
        }
    }
    /// Inverse of [`FileType::erofs_code`].
    pub fn from_erofs_code(code: u8) -> Option<Self> {
        Some(match code {
            1 => FileType::Regular,
            2 => FileType::Directory,
            3 => FileType::CharDevice,
            4 => FileType::BlockDevice,
            5 => FileType::Fifo,
            6 => FileType::Socket,
            7 => FileType::Symlink,
            _ => return None,
        })
    }
    pub fn is_device(self) -> bool {
        matches!(self, FileType::CharDevice | FileType::BlockDevice)
    }
}

/// Linux "new" device encoding truncated to 32 bits (`rafs-v6.md` §7.4).
pub fn encode_rdev(major: u32, minor: u32) -> u32 {
    (minor & 0xff) | ((major & 0xfff) << 8) | ((minor & !0xff) << 12)
}

/// Inverse of [`encode_rdev`]: `(major, minor)`.
pub fn decode_rdev(rdev: u32) -> (u32, u32) {
    let major = (rdev >> 8) & 0xfff;
    let minor = (rdev & 0xff) | ((rdev >> 12) & 0xfff00);
    (major, minor)
}

/// Glibc `dev_t` split (as returned by `stat`): `(major, minor)`.
pub fn split_dev_t(dev: u64) -> (u32, u32) {
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    (major as u32, minor as u32)
}

/// Inverse of [`split_dev_t`].
pub fn make_dev_t(major: u32, minor: u32) -> u64 {
    let (ma, mi) = (major as u64, minor as u64);
    ((ma & 0xfffff000) << 32) | ((ma & 0xfff) << 8) | ((mi & 0xffffff00) << 12) | (mi & 0xff)
}

/// Attributes of one inode as stored in the image.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Attrs {
    /// Full `st_mode` (type and permission bits).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: u64,
    pub mtime_nsec: u32,
    /// Device number in the 32-bit Linux "new" encoding ([`encode_rdev`]); 0 for non-devices.
    pub rdev: u32,
}

/// Extended attributes of one inode: `(full name, value)` pairs, sorted by name.
pub type Xattrs = Vec<(Vec<u8>, Vec<u8>)>;

/// One chunk of a file as stored in a blob: the semantic content of the 80-byte chunk-info
/// record (`rafs-v5.md` §10) minus the per-file `file_offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ChunkRef {
    /// Digest of the uncompressed chunk.
    pub digest: crate::digest::Digest,
    /// Index into the blob table.
    pub blob_index: u32,
    /// Chunk (ci) index within the blob.
    pub index: u32,
    /// [`chunk_flags`] bits.
    pub flags: u32,
    pub compressed_offset: u64,
    pub compressed_size: u32,
    pub uncompressed_offset: u64,
    pub uncompressed_size: u32,
    /// CRC-32C of the uncompressed bytes if `flags & HAS_CRC32`, else 0.
    pub crc32: u32,
}

impl ChunkRef {
    /// Whether the stored bytes are compressed (else raw).
    pub fn is_compressed(&self) -> bool {
        self.flags & chunk_flags::COMPRESSED != 0
    }
}

/// The description of one blob in a bootstrap's blob table (`rafs-v6.md` §5).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BlobInfo {
    /// Blob id: normally 64 lowercase hex characters.
    pub blob_id: String,
    pub chunk_size: u32,
    pub chunk_count: u32,
    pub compressor: Compressor,
    pub digester: crate::digest::Digester,
    /// [`blob_features`] bits.
    pub features: u32,
    pub compressed_size: u64,
    pub uncompressed_size: u64,
    pub toc_size: u32,
    pub toc_digest: [u8; 32],
    pub ci_compressor: Compressor,
    pub ci_offset: u64,
    pub ci_compressed_size: u64,
    pub ci_uncompressed_size: u64,
    pub meta_digest: [u8; 32],
    pub meta_size: u64,
    pub cipher_iv: u64,
    pub cipher_algo: u32,
}

impl BlobInfo {
    /// An eStargz layer referenced as it is (`stargz.md`): gzip chunks, no ci table or other
    /// Nydus section inside the blob (upstream calls it a legacy stargz blob).
    pub fn is_stargz(&self) -> bool {
        self.compressor == Compressor::Gzip && self.features & blob_features::SEPARATE == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rdev_round_trips() {
        for (ma, mi) in [(0, 0), (1, 3), (8, 1), (259, 65536), (4095, 0xfffff)] {
            assert_eq!(decode_rdev(encode_rdev(ma, mi)), (ma, mi));
            assert_eq!(split_dev_t(make_dev_t(ma, mi)), (ma, mi));
        }
        assert_eq!(encode_rdev(1, 3), 0x103);
    }

    #[test]
    fn codes_round_trip() {
        for c in [
            Compressor::None,
            Compressor::Lz4Block,
            Compressor::Gzip,
            Compressor::Zstd,
        ] {
            assert_eq!(Compressor::from_code(c.code()), Some(c));
            assert_eq!(Compressor::from_name(c.name()), Some(c));
        }
    }
}
