// Mutations of the worked example (`rafs-v6.md` §18, and the same tree as RAFS v5) and the
// typed decode error each one must give. Shared by the native test
// (`core/tests/decode_errors.rs`) and the wasm32 golden run (`tests/wasm-golden`), which both
// `include!` this file inside a module of their own, so that the two builds check the same
// rows.

use nydus_core::error::{
    BlobProblem, ChunkProblem, DecodeError, Digested, DirProblem, ErrorKind, Feature, InodeProblem,
    Rule, SlotProblem, XattrProblem,
};
use nydus_core::memimage::{build, worked_example, MemImage, MemOptions};
use nydus_core::model::{rafs_flags, Compressor, FileType};
use nydus_core::rafs::Rafs;
use nydus_core::read::exec::{read_to_vec, BlobLayout};
use nydus_core::read::{plan, walk, Filesystem};

/// What a row does to the bootstrap.
#[derive(Debug, Clone, Copy)]
pub enum Edit {
    /// Overwrites bytes at an absolute offset.
    Write { at: u64, bytes: &'static [u8] },
    /// Cuts the file to `len` bytes.
    Truncate { len: u64 },
}

/// The error a row must give: its kind and the field or problem it names.
#[derive(Debug, Clone)]
pub enum Expect {
    /// A [`DecodeError::BadField`] on this field, breaking this rule.
    Field(&'static str, Rule),
    /// A [`DecodeError::BadField`] on this field (any rule).
    AnyRule(&'static str),
    /// A [`DecodeError::BadInode`] with this problem.
    Inode(InodeProblem),
    /// A [`DecodeError::BadChunk`] with this problem.
    Chunk(ChunkProblem),
    /// A [`DecodeError::BadBlobChunk`] with this problem.
    BlobChunk(ChunkProblem),
    /// A [`DecodeError::BadDirectory`] with this problem.
    Dir(DirProblem),
    /// A [`DecodeError::BadXattr`] with this problem.
    Xattr(XattrProblem),
    /// A [`DecodeError::BadBlobEntry`] with this problem.
    Blob(BlobProblem),
    /// A [`DecodeError::BadDeviceSlot`] with this problem.
    Slot(SlotProblem),
    /// A [`DecodeError::Unsupported`] naming this feature.
    Unsupported(Feature),
    /// A [`DecodeError::DigestMismatch`] of this.
    Digest(Digested),
    /// An error of this kind about this structure.
    About(ErrorKind, &'static str),
}

/// One mutation and the error it must give.
#[derive(Debug, Clone)]
pub struct Row {
    pub name: &'static str,
    pub edit: Edit,
    pub expect: Expect,
}

const fn w(name: &'static str, at: u64, bytes: &'static [u8], expect: Expect) -> Row {
    Row {
        name,
        edit: Edit::Write { at, bytes },
        expect,
    }
}

const fn cut(name: &'static str, len: u64, expect: Expect) -> Row {
    Row {
        name,
        edit: Edit::Truncate { len },
        expect,
    }
}

const fn blob_field(field: &'static str, value: u64, rule: Rule) -> Expect {
    Expect::Blob(BlobProblem::Field { field, value, rule })
}

/// The v6 worked example: superblock at 0x400, extended superblock at 0x480, device slot at
/// 0x580, blob table at 0x1000, root inode (nid 128) at 0x3000 with its dirents at 0x3040,
/// `hello.txt` (nid 132) at 0x3080 with its chunk index at 0x30c0, `link` (nid 135) at
/// 0x30e0, the chunk-info record at 0x4000; 0x5000 bytes.
pub const V6_ROWS: &[Row] = &[
    // EROFS superblock (§2).
    w(
        "superblock magic",
        0x400,
        &[0, 0, 0, 0],
        Expect::About(ErrorKind::BadMagic, "EROFS superblock"),
    ),
    w(
        "checksum 1",
        0x404,
        &[1],
        Expect::Field("checksum", Rule::Zero),
    ),
    w(
        "feature_compat without RAFS_V6",
        0x40b,
        &[0],
        Expect::Field("feature_compat", Rule::HasBits(0x4000_0000)),
    ),
    w(
        "blkszbits 13",
        0x40c,
        &[13],
        Expect::Field("blkszbits", Rule::Equals(12)),
    ),
    w(
        "blkszbits 9 (TARFS)",
        0x40c,
        &[9],
        Expect::Unsupported(Feature::TarfsMode),
    ),
    w(
        "sb_extslots 1",
        0x40d,
        &[1],
        Expect::Field("sb_extslots", Rule::Zero),
    ),
    w(
        "root_nid names hello.txt",
        0x40e,
        &[0x84],
        Expect::Inode(InodeProblem::RootNotDirectory),
    ),
    w("inos 0", 0x410, &[0], Expect::Field("inos", Rule::NonZero)),
    w(
        "meta_blkaddr past the end",
        0x428,
        &[6],
        Expect::Field("meta_blkaddr", Rule::AtMost(5)),
    ),
    w(
        "xattr_blkaddr 1",
        0x42c,
        &[1],
        Expect::Field("xattr_blkaddr", Rule::Zero),
    ),
    w(
        "feature_incompat without DEVICE_TABLE",
        0x450,
        &[4],
        Expect::Field("feature_incompat", Rule::Equals(0xc)),
    ),
    w("u1 1", 0x454, &[1], Expect::Field("u1", Rule::Zero)),
    w(
        "extra_devices 2 for one blob entry",
        0x456,
        &[2],
        Expect::Field(
            "blob_table_size",
            Rule::Matches {
                other: "extra_devices",
                value: 2,
            },
        ),
    ),
    w(
        "devt_slotoff 12",
        0x458,
        &[12],
        Expect::Field("devt_slotoff", Rule::Equals(11)),
    ),
    // RAFS v6 extended superblock (§3).
    w(
        "flags: an unknown bit",
        0x481,
        &[0x04],
        Expect::Field("flags", Rule::KnownBits(rafs_flags::KNOWN)),
    ),
    w(
        "flags: two compressors",
        0x480,
        &[0x17],
        Expect::Field("flags", Rule::OneBitOf(rafs_flags::COMPRESSION_MASK)),
    ),
    w(
        "flags: no digester",
        0x480,
        &[0x11],
        Expect::Field("flags", Rule::OneBitOf(rafs_flags::HASH_MASK)),
    ),
    w(
        "chunk_size 0x800",
        0x494,
        &[0, 8, 0, 0],
        Expect::Field("chunk_size", Rule::PowerOfTwoIn(0x1000, 0x100_0000)),
    ),
    w(
        "chunk_size 0x300000",
        0x494,
        &[0, 0, 0x30, 0],
        Expect::Field("chunk_size", Rule::PowerOfTwoIn(0x1000, 0x100_0000)),
    ),
    w(
        "blob_table_offset unaligned",
        0x488,
        &[0x01],
        Expect::Field("blob_table_offset", Rule::MultipleOf(4096)),
    ),
    w(
        "blob_table_offset 0",
        0x489,
        &[0],
        Expect::Field("blob_table_offset", Rule::AtLeast(4096)),
    ),
    w(
        "blob table past the end",
        0x489,
        &[0x50],
        Expect::About(ErrorKind::OutOfBounds, "blob table"),
    ),
    w(
        "blob_table_size 128",
        0x490,
        &[0x80, 0],
        Expect::Field("blob_table_size", Rule::MultipleOf(256)),
    ),
    w(
        "blob_table_size 512 for one device",
        0x491,
        &[2],
        Expect::Field(
            "blob_table_size",
            Rule::Matches {
                other: "extra_devices",
                value: 1,
            },
        ),
    ),
    w(
        "chunk table over the blob table",
        0x499,
        &[0x10],
        Expect::About(ErrorKind::Overlap, "chunk-info table"),
    ),
    w(
        "chunk_table_offset unaligned",
        0x498,
        &[8],
        Expect::Field("chunk_table_offset", Rule::MultipleOf(4096)),
    ),
    w(
        "chunk_table_size 81",
        0x4a0,
        &[0x51],
        Expect::Field("chunk_table_size", Rule::MultipleOf(80)),
    ),
    w(
        "chunk table past the end",
        0x4a0,
        &[0x40, 0x10],
        Expect::About(ErrorKind::OutOfBounds, "chunk-info table"),
    ),
    w(
        "chunk table empty",
        0x4a0,
        &[0],
        Expect::Chunk(ChunkProblem::NotInTable { blob: 0, index: 0 }),
    ),
    // The prefetch table (§6): prefetch_table_offset (u64) then prefetch_table_size (u32).
    w(
        "prefetch table in block 0",
        0x4a8,
        &[0, 0x08, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0],
        Expect::Field("prefetch_table_offset", Rule::AtLeast(4096)),
    ),
    w(
        "prefetch_table_size 3",
        0x4a8,
        &[0, 0x11, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0],
        Expect::Field("prefetch_table_size", Rule::MultipleOf(4)),
    ),
    w(
        "prefetch table over the blob table",
        0x4a8,
        &[0x80, 0x10, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0],
        Expect::About(ErrorKind::Overlap, "prefetch table"),
    ),
    w(
        "prefetch table past the end",
        0x4a8,
        &[0, 0x50, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0],
        Expect::About(ErrorKind::OutOfBounds, "prefetch table"),
    ),
    w(
        // The table then holds the root inode's first word, 5: nid 5 is zeros.
        "prefetch entry names no inode",
        0x4a8,
        &[0, 0x30, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0],
        Expect::Inode(InodeProblem::NoFileType { mode: 0 }),
    ),
    // Device slot 0 (§4).
    w(
        "device slot names another blob",
        0x580,
        b"4",
        Expect::Slot(SlotProblem::NotTheBlobId),
    ),
    w(
        "device slot tag not UTF-8",
        0x580,
        &[0xff],
        Expect::Slot(SlotProblem::TagNotUtf8),
    ),
    w(
        "device slot blocks 0",
        0x5c0,
        &[0],
        Expect::Slot(SlotProblem::ZeroBlocks),
    ),
    // Blob table entry 0 (§5).
    w(
        "blob id not UTF-8",
        0x1000,
        &[0xff],
        Expect::Blob(BlobProblem::NotUtf8 { field: "blob_id" }),
    ),
    w(
        "blob id empty",
        0x1000,
        &[0],
        Expect::Blob(BlobProblem::EmptyId),
    ),
    w(
        "blob_index 1",
        0x1040,
        &[1],
        blob_field("blob_index", 1, Rule::Equals(0)),
    ),
    w(
        "blob chunk_size differs from the superblock's",
        0x1046,
        &[0x20],
        blob_field(
            "chunk_size",
            0x20_0000,
            Rule::Matches {
                other: "the extended superblock's chunk_size",
                value: 0x10_0000,
            },
        ),
    ),
    w(
        "chunk_count 2 for one v1 ci entry",
        0x1048,
        &[2],
        blob_field("ci_uncompressed_size", 16, Rule::Equals(32)),
    ),
    w(
        "chunk_count beyond 2^24",
        0x104b,
        &[2],
        blob_field("chunk_count", 0x200_0001, Rule::AtMost(1 << 24)),
    ),
    w(
        "compression_algo 9",
        0x104c,
        &[9],
        blob_field("compression_algo", 9, Rule::Known),
    ),
    w(
        "digest_algo 5",
        0x1050,
        &[5],
        blob_field("digest_algo", 5, Rule::Known),
    ),
    w(
        "features: a bit outside 0x0fff",
        0x1055,
        &[0x10],
        blob_field("features", 0x4000_1001, Rule::KnownBits(0x7fff_0fff)),
    ),
    w(
        "features without ALIGNED",
        0x1054,
        &[0],
        blob_field("features", 0x4000_0000, Rule::HasBits(1)),
    ),
    w(
        "features: BATCH with v1 compression info",
        0x1054,
        &[0x81],
        Expect::Blob(BlobProblem::NeedsChunkInfoV2 {
            features: 0x4000_0081,
        }),
    ),
    w(
        "uncompressed_size beyond 2^44",
        0x1065,
        &[0x20],
        blob_field("uncompressed_size", 0x2000_0000_1000, Rule::AtMost(1 << 44)),
    ),
    w(
        "ci_compressor 7",
        0x106c,
        &[7],
        blob_field("ci_compressor", 7, Rule::Known),
    ),
    w(
        "ci_offset + ci_compressed_size overflows",
        0x1070,
        &[0xff; 8],
        blob_field("ci_offset", u64::MAX, Rule::AtMost(u64::MAX - 16)),
    ),
    w(
        "ci_compressed_size above ci_uncompressed_size",
        0x1078,
        &[0x20],
        blob_field("ci_compressed_size", 32, Rule::AtMost(16)),
    ),
    w(
        "ci_uncompressed_size 32 for one v1 entry",
        0x1080,
        &[0x20],
        blob_field("ci_uncompressed_size", 32, Rule::Equals(16)),
    ),
    w(
        "cipher_algo 2",
        0x10d8,
        &[2],
        blob_field("cipher_algo", 2, Rule::AtMost(1)),
    ),
    w(
        // The entry is valid; the blob's ci header is not where it says.
        "ci_offset 5",
        0x1070,
        &[5],
        Expect::About(ErrorKind::BadMagic, "blob compression-info header"),
    ),
    w(
        "ci_offset 7: the ci header would end past the blob",
        0x1070,
        &[7],
        Expect::About(ErrorKind::OutOfBounds, "blob compression-info header"),
    ),
    // The root inode (§7) and its inline directory block (§11).
    w(
        "root i_format layout 3",
        0x3000,
        &[7],
        Expect::Inode(InodeProblem::UnknownFormat(7)),
    ),
    w(
        "root i_format high bits",
        0x3000,
        &[0x15],
        Expect::Inode(InodeProblem::UnknownFormat(0x15)),
    ),
    w(
        "root i_format chunk-based",
        0x3000,
        &[9],
        Expect::Inode(InodeProblem::LayoutMismatch {
            layout: 4,
            file_type: FileType::Directory,
        }),
    ),
    w(
        "root mode without a file type",
        0x3005,
        &[0x01],
        Expect::Inode(InodeProblem::NoFileType { mode: 0o755 }),
    ),
    w(
        "root mode regular",
        0x3005,
        &[0x81],
        Expect::Inode(InodeProblem::LayoutMismatch {
            layout: 2,
            file_type: FileType::Regular,
        }),
    ),
    w(
        "root nlink 0",
        0x302c,
        &[0],
        Expect::Inode(InodeProblem::ZeroNlink),
    ),
    w(
        "root inline dirents cross a block",
        0x3008,
        &[0xd2, 0x0f],
        Expect::Inode(InodeProblem::InlineCrossesBlock),
    ),
    w(
        "first nameoff 0",
        0x3048,
        &[0, 0],
        Expect::Dir(DirProblem::FirstNameOffset(0)),
    ),
    w(
        "first nameoff 50",
        0x3048,
        &[50],
        Expect::Dir(DirProblem::FirstNameOffset(50)),
    ),
    w(
        "hello.txt nameoff after link's",
        0x3060,
        &[61],
        Expect::Dir(DirProblem::NameOutside {
            entry: 2,
            start: 61,
            end: 60,
        }),
    ),
    w(
        "link nameoff at the end of the names",
        0x306c,
        &[64],
        Expect::Dir(DirProblem::EmptyName { entry: 3 }),
    ),
    w(
        "link nameoff past the block",
        0x306c,
        &[80],
        // hello.txt's name then runs to 80, past the 64-byte block.
        Expect::Dir(DirProblem::NameOutside {
            entry: 2,
            start: 51,
            end: 80,
        }),
    ),
    w(
        "dirent file_type 9",
        0x306e,
        &[9],
        Expect::Field("file_type", Rule::Known),
    ),
    w(
        "dirent nid past the file",
        0x305b,
        &[1],
        Expect::Inode(InodeProblem::NoSuchInode),
    ),
    // hello.txt (§7, §10).
    w(
        "hello.txt i_format inline",
        0x3080,
        &[5],
        Expect::Inode(InodeProblem::LayoutMismatch {
            layout: 2,
            file_type: FileType::Regular,
        }),
    ),
    w(
        "hello.txt i_size 1 MiB + 6",
        0x308a,
        &[0x10],
        Expect::Chunk(ChunkProblem::SizeMismatch {
            holds: 6,
            needs: 0x10_0000,
        }),
    ),
    w(
        // The xattr body then covers the chunk index: a zero entry has name index 0.
        "hello.txt i_xattr_icount 2",
        0x3082,
        &[2],
        Expect::Xattr(XattrProblem::UnknownNameIndex(0)),
    ),
    w(
        "chunk index names ci 5",
        0x30c0,
        &[5],
        Expect::Chunk(ChunkProblem::NotInTable { blob: 0, index: 5 }),
    ),
    w(
        "chunk index device id 0",
        0x30c2,
        &[0],
        Expect::Chunk(ChunkProblem::DeviceZero),
    ),
    w(
        "chunk index names blob 1",
        0x30c2,
        &[2],
        Expect::Chunk(ChunkProblem::NotInTable { blob: 1, index: 0 }),
    ),
    w(
        "chunk index blkaddr 1",
        0x30c4,
        &[1],
        Expect::Chunk(ChunkProblem::BlkaddrMismatch {
            blkaddr: 1,
            uncompressed_offset: 0,
        }),
    ),
    // link (§14.4).
    w(
        "symlink size 0",
        0x30e8,
        &[0],
        Expect::Inode(InodeProblem::SymlinkSize(0)),
    ),
    w(
        "symlink size 8201",
        0x30e9,
        &[0x20],
        Expect::Inode(InodeProblem::SymlinkSize(0x2009)),
    ),
    w(
        "symlink inline target crosses a block",
        0x30e8,
        &[0xa0, 0x0f],
        Expect::Inode(InodeProblem::InlineCrossesBlock),
    ),
    w(
        // The xattr header then is the target's first bytes: h_shared_count 'o'.
        "link i_xattr_icount 1",
        0x30e2,
        &[1],
        Expect::Unsupported(Feature::SharedXattrs),
    ),
    // The chunk-info record (§12, rafs-v5.md §10).
    w(
        "record uncompressed_size 7",
        0x402c,
        &[7],
        Expect::Chunk(ChunkProblem::SizeMismatch { holds: 7, needs: 6 }),
    ),
    w(
        "record compressed_size 7",
        0x4028,
        &[7],
        Expect::BlobChunk(ChunkProblem::StoredSizeMismatch {
            stored: 7,
            uncompressed: 6,
        }),
    ),
    w(
        "record compressed_size 256 MiB",
        0x402b,
        &[0x10],
        Expect::BlobChunk(ChunkProblem::ImplausibleSizes {
            compressed: 0x1000_0006,
            uncompressed: 6,
        }),
    ),
    w(
        "record blob_index 1",
        0x4020,
        &[1],
        Expect::Chunk(ChunkProblem::NotInTable { blob: 0, index: 0 }),
    ),
    w(
        "record uncompressed_offset 4096",
        0x4039,
        &[0x10],
        Expect::Chunk(ChunkProblem::BlkaddrMismatch {
            blkaddr: 0,
            uncompressed_offset: 0x1000,
        }),
    ),
    w(
        "record digest",
        0x4000,
        &[0x8f],
        Expect::Digest(Digested::Chunk { blob: 0, index: 0 }),
    ),
    w(
        "record crc32",
        0x404c,
        &[0xbf],
        Expect::Digest(Digested::ChunkCrc { blob: 0, index: 0 }),
    ),
    w(
        "record compressed_offset past the blob",
        0x4031,
        &[0x20],
        Expect::BlobChunk(ChunkProblem::OutsideBlob {
            len: 6,
            blob_size: 4118,
        }),
    ),
    // Truncations (§1, §15).
    cut(
        "empty file",
        0,
        Expect::Field("file size", Rule::AtLeast(4096)),
    ),
    cut(
        "cut inside a block",
        0x2800,
        Expect::Field("file size", Rule::MultipleOf(4096)),
    ),
    cut(
        "cut to block 0",
        0x1000,
        Expect::Field("meta_blkaddr", Rule::AtMost(1)),
    ),
    cut(
        "cut before the chunk-info table",
        0x4000,
        Expect::About(ErrorKind::OutOfBounds, "chunk-info table"),
    ),
];

/// The same tree as RAFS v5 (`rafs-v5.md`): superblock at 0, inode table at 0x2000 (records
/// at 0x2098 root, 0x2120 `hello.txt` with its chunk record at 0x21b0, 0x2200 `link`), blob
/// table at 0x2010, extended blob table at 0x2058; 0x2298 bytes.
pub const V5_ROWS: &[Row] = &[
    w(
        // Without the v5 magic the file is read as v6, which it is not either.
        "superblock magic",
        0,
        &[0],
        Expect::Field("file size", Rule::MultipleOf(4096)),
    ),
    w(
        "s_fs_version 0x600",
        5,
        &[6],
        Expect::Field("s_fs_version", Rule::Equals(0x500)),
    ),
    w(
        "s_sb_size 4096",
        9,
        &[0x10],
        Expect::Field("s_sb_size", Rule::Equals(0x2000)),
    ),
    w(
        "s_block_size 0x800",
        12,
        &[0, 8, 0, 0],
        Expect::Field("s_block_size", Rule::PowerOfTwoIn(0x1000, 0x100_0000)),
    ),
    w(
        "s_flags: an unknown bit",
        17,
        &[0x04],
        Expect::AnyRule("s_flags"),
    ),
    w(
        "s_flags: two compressors",
        16,
        &[0x17],
        Expect::Field(
            "s_flags",
            Rule::AtMostOneBitOf(rafs_flags::COMPRESSION_MASK),
        ),
    ),
    w(
        "s_inodes_count 4 for 3 entries",
        24,
        &[4],
        Expect::Field("s_inodes_count", Rule::AtMost(3)),
    ),
    w(
        "s_inode_table_entries 0",
        56,
        &[0],
        Expect::Field("s_inode_table_entries", Rule::NonZero),
    ),
    w(
        "blob table over the inode table",
        48,
        &[0],
        Expect::About(ErrorKind::Overlap, "blob table"),
    ),
    w(
        "s_extended_blob_table_entries 2",
        68,
        &[2],
        Expect::AnyRule("s_extended_blob_table_entries"),
    ),
    w(
        "inode table entry 1 is 0",
        0x2000,
        &[0, 0],
        Expect::Inode(InodeProblem::RecordOutside(0)),
    ),
    w(
        "blob id empty",
        0x2018,
        &[0],
        Expect::Blob(BlobProblem::EmptyId),
    ),
    w(
        "root i_ino 9",
        0x20c0,
        &[9],
        Expect::Inode(InodeProblem::InoOutOfRange { ino: 9, max: 3 }),
    ),
    w(
        "root i_nlink 0",
        0x20f0,
        &[0],
        Expect::Inode(InodeProblem::ZeroNlink),
    ),
    w(
        "root i_child_count 5",
        0x20f8,
        &[5],
        Expect::Inode(InodeProblem::ChildrenOutside {
            first: 2,
            count: 5,
            max: 3,
        }),
    ),
    w(
        "hello.txt i_parent 2",
        0x2140,
        &[2],
        Expect::Inode(InodeProblem::ForeignChild {
            child: 2,
            parent: 2,
            expected: 1,
        }),
    ),
    w(
        "hello.txt i_name_size 0",
        0x2184,
        &[0],
        Expect::Inode(InodeProblem::NameSize(0)),
    ),
    w(
        "hello.txt i_child_count 2",
        0x2180,
        &[2],
        Expect::Inode(InodeProblem::ChunkCount { count: 2, size: 6 }),
    ),
    w(
        "chunk record blob_index 1",
        0x21d0,
        &[1],
        Expect::Chunk(ChunkProblem::NoSuchBlob { blob: 1, blobs: 1 }),
    ),
    w(
        "chunk record file_offset 4096",
        0x21f1,
        &[0x10],
        Expect::Chunk(ChunkProblem::FileOffset {
            found: 0x1000,
            expected: 0,
        }),
    ),
    w(
        "chunk record uncompressed_size 7",
        0x21dc,
        &[7],
        Expect::Chunk(ChunkProblem::SizeMismatch { holds: 7, needs: 6 }),
    ),
    w(
        "chunk record digest",
        0x21b0,
        &[0x8f],
        Expect::Digest(Digested::Chunk { blob: 0, index: 0 }),
    ),
    w(
        "link i_symlink_size 8",
        0x2266,
        &[8],
        Expect::Inode(InodeProblem::SymlinkSize(8)),
    ),
    w(
        "link name li/k",
        0x2282,
        b"/",
        Expect::Inode(InodeProblem::BadName),
    ),
    cut(
        "cut to a multiple of 8 inside the link target",
        0x2288,
        Expect::About(ErrorKind::OutOfBounds, "v5 symlink target"),
    ),
    cut(
        "cut to an odd size",
        0x2291,
        Expect::Field("file size", Rule::MultipleOf(8)),
    ),
];

/// The worked example, v6 (`rafs-v6.md` §18, byte for byte) or v5.
pub fn image(v5: bool) -> MemImage {
    build(
        &worked_example(),
        &MemOptions {
            compressor: Compressor::None,
            v5,
            ..Default::default()
        },
    )
    .expect("the worked example builds")
}

/// Decodes everything of a bootstrap, failing at the first error: open, each blob's
/// compression-info table (v6), the prefetch table's inodes, then a walk of the tree reading
/// every inode's xattrs, every symlink target and every file's data (through
/// `read::plan` + `read::exec`, `blob` serving blob 0).
pub fn decode_all(boot: Vec<u8>, blob: &[u8]) -> Result<(), DecodeError> {
    let fs = Rafs::open(boot)?;
    if fs.version() == 6 {
        for info in fs.blobs() {
            nydus_core::blob::reader::read_ci_entries(blob, info)?;
        }
    }
    for nid in fs.prefetch()? {
        fs.inode(nid)?;
    }
    walk(&fs, &mut |_, i| {
        fs.xattrs(i.nid)?;
        match i.file_type {
            FileType::Symlink => {
                fs.symlink(i.nid)?;
            }
            FileType::Regular => {
                let p = plan(&fs, i, 0, u64::MAX)?;
                read_to_vec(&p, |b| match b {
                    0 => Ok((blob, BlobLayout::Stored)),
                    _ => Err(DecodeError::NotFound {
                        path: format!("blob {b}"),
                    }),
                })?;
            }
            _ => {}
        }
        Ok(())
    })
}

/// Whether `e` is the error `x` describes.
pub fn matches(x: &Expect, e: &DecodeError) -> bool {
    let is = |k| e.kind() == k;
    match x {
        Expect::Field(f, r) => {
            is(ErrorKind::BadField) && e.field() == Some(f) && e.rule() == Some(*r)
        }
        Expect::AnyRule(f) => is(ErrorKind::BadField) && e.field() == Some(f),
        Expect::Inode(p) => e.inode_problem() == Some(p),
        Expect::Chunk(p) => is(ErrorKind::BadChunk) && e.chunk_problem() == Some(p),
        Expect::BlobChunk(p) => is(ErrorKind::BadBlobChunk) && e.chunk_problem() == Some(p),
        Expect::Dir(p) => e.dir_problem() == Some(p),
        Expect::Xattr(p) => e.xattr_problem() == Some(p),
        Expect::Blob(p) => is(ErrorKind::BadBlobEntry) && e.blob_problem() == Some(p),
        Expect::Slot(p) => e.slot_problem() == Some(p),
        Expect::Unsupported(f) => e.feature() == Some(f),
        Expect::Digest(d) => e.digested() == Some(d),
        Expect::About(k, what) => is(*k) && e.what() == Some(what),
    }
}

/// Applies `edit` to a copy of `boot`; fails if it would change nothing.
pub fn apply(boot: &[u8], edit: Edit) -> Result<Vec<u8>, String> {
    let mut b = boot.to_vec();
    match edit {
        Edit::Write { at, bytes } => {
            let at = at as usize;
            let end = at + bytes.len();
            if end > b.len() {
                return Err(format!("writes past the end ({end} > {})", b.len()));
            }
            if &b[at..end] == bytes {
                return Err("changes nothing".into());
            }
            b[at..end].copy_from_slice(bytes);
        }
        Edit::Truncate { len } => {
            if len >= b.len() as u64 {
                return Err("cuts nothing".into());
            }
            b.truncate(len as usize);
        }
    }
    Ok(b)
}

/// Runs every row of the v6 (or v5) table: the unmutated image decodes cleanly, each
/// mutation gives its error. Returns the number of rows, or every failure, one a line.
pub fn run(v5: bool) -> Result<usize, String> {
    let img = image(v5);
    let rows = if v5 { V5_ROWS } else { V6_ROWS };
    let label = if v5 { "v5" } else { "v6" };
    decode_all(img.bootstrap.clone(), &img.blob)
        .map_err(|e| format!("{label}: the unmutated image fails: {e}"))?;
    let mut failures = Vec::new();
    for r in rows {
        let boot = match apply(&img.bootstrap, r.edit) {
            Ok(b) => b,
            Err(why) => {
                failures.push(format!("{label} {:?}: the edit {why}", r.name));
                continue;
            }
        };
        match decode_all(boot, &img.blob) {
            Ok(()) => failures.push(format!(
                "{label} {:?}: decoded without error, expected {:?}",
                r.name, r.expect
            )),
            Err(e) if matches(&r.expect, &e) => {}
            Err(e) => failures.push(format!(
                "{label} {:?}: expected {:?}, got {e:?} ({e})",
                r.name, r.expect
            )),
        }
    }
    if failures.is_empty() {
        Ok(rows.len())
    } else {
        Err(failures.join("\n"))
    }
}
