//! Error types of the core, one enum per phase. None of them wraps `std::io::Error`: hosts
//! turn their I/O failures into [`SourceError`] (decoding) or handle them themselves.

use std::fmt;

use crate::model::FileType;

/// A failure of the host-provided byte source (file read, `File.slice`, HTTP range, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceError {
    /// Absolute offset of the failed read.
    pub offset: u64,
    /// Length of the failed read.
    pub len: u64,
    /// The host's description of the failure.
    pub message: String,
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "reading {} bytes at offset {}: {}",
            self.len, self.offset, self.message
        )
    }
}

impl std::error::Error for SourceError {}

/// The rule a field of a fixed structure breaks ([`DecodeError::BadField`],
/// [`BlobProblem::Field`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rule {
    /// Must equal this value.
    Equals(u64),
    /// Must be zero.
    Zero,
    /// Must not be zero.
    NonZero,
    /// Must be a power of two in `[lo, hi]`.
    PowerOfTwoIn(u64, u64),
    /// Only these bits may be set.
    KnownBits(u64),
    /// Every bit of this mask must be set.
    HasBits(u64),
    /// Exactly one bit of this mask must be set.
    OneBitOf(u64),
    /// At most one bit of this mask may be set.
    AtMostOneBitOf(u64),
    /// Must be a multiple of this.
    MultipleOf(u64),
    /// Must be at most this.
    AtMost(u64),
    /// Must be at least this.
    AtLeast(u64),
    /// Must agree with another field or structure, which holds this value.
    Matches { other: &'static str, value: u64 },
    /// A code or name the format does not define.
    Known,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::Equals(v) => write!(f, "must be {v:#x}"),
            Rule::Zero => write!(f, "must be 0"),
            Rule::NonZero => write!(f, "must not be 0"),
            Rule::PowerOfTwoIn(lo, hi) => {
                write!(f, "must be a power of two in {lo:#x}..={hi:#x}")
            }
            Rule::KnownBits(m) => write!(f, "has bits outside {m:#x}"),
            Rule::HasBits(m) => write!(f, "lacks bits {m:#x}"),
            Rule::OneBitOf(m) => write!(f, "must have exactly one bit of {m:#x}"),
            Rule::AtMostOneBitOf(m) => write!(f, "must have at most one bit of {m:#x}"),
            Rule::MultipleOf(m) => write!(f, "must be a multiple of {m}"),
            Rule::AtMost(m) => write!(f, "must be at most {m}"),
            Rule::AtLeast(m) => write!(f, "must be at least {m}"),
            Rule::Matches { other, value } => write!(f, "disagrees with {other} ({value})"),
            Rule::Known => write!(f, "is not defined by the format"),
        }
    }
}

/// What is wrong with an inode ([`DecodeError::BadInode`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum InodeProblem {
    /// No inode with this number or nid exists.
    NoSuchInode,
    /// `i_format` names a layout this reader does not know.
    UnknownFormat(u16),
    /// The mode has no file type.
    NoFileType { mode: u32 },
    /// `i_nlink` is 0.
    ZeroNlink,
    /// The data layout does not suit the file type.
    LayoutMismatch { layout: u16, file_type: FileType },
    /// The inline data tail crosses a block boundary.
    InlineCrossesBlock,
    /// The operation needs another file type.
    WrongType { expected: FileType, found: FileType },
    /// A symlink's size is outside `1..=4096` or disagrees with its target.
    SymlinkSize(u64),
    /// The root is not a directory.
    RootNotDirectory,
    /// `i_ino` lies outside `1..=max`.
    InoOutOfRange { ino: u64, max: u64 },
    /// The name size lies outside `1..=256`.
    NameSize(u16),
    /// A non-root inode names no parent.
    NoParent,
    /// The name holds `/`, or is `.` or `..`.
    BadName,
    /// A directory's children lie outside the inode table.
    ChildrenOutside { first: u64, count: u64, max: u64 },
    /// A child names another parent.
    ForeignChild {
        child: u64,
        parent: u64,
        expected: u64,
    },
    /// The number of chunk records does not fit the file size.
    ChunkCount { count: u64, size: u64 },
    /// The xattr table size is implausible.
    XattrTableSize(u64),
    /// The v5 inode table places the record at this offset, outside the inode records.
    RecordOutside(u64),
}

impl fmt::Display for InodeProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InodeProblem::NoSuchInode => write!(f, "no such inode"),
            InodeProblem::UnknownFormat(v) => write!(f, "unsupported i_format {v:#x}"),
            InodeProblem::NoFileType { mode } => write!(f, "mode {mode:#o} has no file type"),
            InodeProblem::ZeroNlink => write!(f, "nlink is 0"),
            InodeProblem::LayoutMismatch { layout, file_type } => {
                write!(f, "layout {layout} does not suit a {file_type:?}")
            }
            InodeProblem::InlineCrossesBlock => {
                write!(f, "inline data crosses a block boundary")
            }
            InodeProblem::WrongType { expected, found } => {
                write!(f, "is a {found:?}, not a {expected:?}")
            }
            InodeProblem::SymlinkSize(s) => {
                write!(
                    f,
                    "symlink size {s} is not 1..=4096 or disagrees with i_size"
                )
            }
            InodeProblem::RootNotDirectory => write!(f, "the root is not a directory"),
            InodeProblem::InoOutOfRange { ino, max } => write!(f, "i_ino {ino} outside 1..={max}"),
            InodeProblem::NameSize(n) => write!(f, "name size {n} outside 1..=256"),
            InodeProblem::NoParent => write!(f, "a non-root inode has no parent"),
            InodeProblem::BadName => write!(f, "invalid file name"),
            InodeProblem::ChildrenOutside { first, count, max } => {
                write!(
                    f,
                    "children {first}..+{count} outside the inode table of {max}"
                )
            }
            InodeProblem::ForeignChild {
                child,
                parent,
                expected,
            } => write!(
                f,
                "child {child} names parent {parent} instead of {expected}"
            ),
            InodeProblem::ChunkCount { count, size } => {
                write!(f, "{count} chunks for {size} bytes")
            }
            InodeProblem::XattrTableSize(s) => write!(f, "xattr table size {s}"),
            InodeProblem::RecordOutside(o) => {
                write!(f, "record offset {o} lies outside the inode records")
            }
        }
    }
}

/// What is wrong with one chunk reference of a file ([`DecodeError::BadChunk`]) or with a
/// chunk read from a blob ([`DecodeError::BadBlobChunk`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChunkProblem {
    /// `(blob, ci index)` has no record in the chunk-info table.
    NotInTable { blob: u32, index: u32 },
    /// The chunk index's `blkaddr` disagrees with the record's uncompressed offset.
    BlkaddrMismatch {
        blkaddr: u32,
        uncompressed_offset: u64,
    },
    /// The chunk holds another number of bytes than its place in the file needs.
    SizeMismatch { holds: u32, needs: u64 },
    /// The record's file offset is not the chunk's place in the file.
    FileOffset { found: u64, expected: u64 },
    /// The blob index is outside the blob table.
    NoSuchBlob { blob: u32, blobs: u32 },
    /// Device id 0 (the bootstrap itself) never holds RAFS data.
    DeviceZero,
    /// Compressed or uncompressed sizes no builder writes.
    ImplausibleSizes { compressed: u32, uncompressed: u32 },
    /// An uncompressed chunk's stored and uncompressed sizes differ.
    StoredSizeMismatch { stored: u32, uncompressed: u32 },
    /// Chunks of a file with holes are out of order, overlap or end past the file.
    Order { file_offset: u64 },
    /// The chunk's `len` bytes lie outside its blob file of `blob_size` bytes.
    OutsideBlob { len: u64, blob_size: u64 },
}

impl fmt::Display for ChunkProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChunkProblem::NotInTable { blob, index } => write!(
                f,
                "blob {blob} chunk {index} is not in the chunk-info table"
            ),
            ChunkProblem::BlkaddrMismatch {
                blkaddr,
                uncompressed_offset,
            } => write!(
                f,
                "blkaddr {blkaddr} disagrees with the record's uncompressed offset {uncompressed_offset:#x}"
            ),
            ChunkProblem::SizeMismatch { holds, needs } => {
                write!(f, "chunk holds {holds} bytes, the file needs {needs}")
            }
            ChunkProblem::FileOffset { found, expected } => {
                write!(f, "file offset {found} where {expected} is expected")
            }
            ChunkProblem::NoSuchBlob { blob, blobs } => write!(f, "blob {blob} of {blobs}"),
            ChunkProblem::DeviceZero => {
                write!(f, "device id 0 (the bootstrap itself) never holds RAFS data")
            }
            ChunkProblem::ImplausibleSizes {
                compressed,
                uncompressed,
            } => write!(
                f,
                "implausible chunk sizes (compressed {compressed}, uncompressed {uncompressed})"
            ),
            ChunkProblem::StoredSizeMismatch {
                stored,
                uncompressed,
            } => write!(
                f,
                "an uncompressed chunk's stored and uncompressed sizes differ (stored {stored}, uncompressed {uncompressed})"
            ),
            ChunkProblem::Order { file_offset } => write!(
                f,
                "chunk at file offset {file_offset} is out of order, overlaps another or ends past the file"
            ),
            ChunkProblem::OutsideBlob { len, blob_size } => write!(
                f,
                "its {len} bytes lie outside the blob file of {blob_size} bytes"
            ),
        }
    }
}

/// What is wrong with a directory block ([`DecodeError::BadDirectory`], `rafs-v6.md` §11).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DirProblem {
    /// The first dirent's `nameoff` is 0, not a multiple of 12, or past the block.
    FirstNameOffset(u16),
    /// Entry `entry`'s name range lies outside the block's names.
    NameOutside { entry: u32, start: u64, end: u64 },
    /// Entry `entry` has an empty name.
    EmptyName { entry: u32 },
}

impl DirProblem {
    /// The dirent field at fault, spelled as in the spec.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            DirProblem::FirstNameOffset(_) | DirProblem::NameOutside { .. } => Some("nameoff"),
            DirProblem::EmptyName { .. } => None,
        }
    }
}

impl fmt::Display for DirProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DirProblem::FirstNameOffset(n) => write!(
                f,
                "first name offset {n} is not a valid multiple of 12 (nameoff of entry 0)"
            ),
            DirProblem::NameOutside { entry, start, end } => write!(
                f,
                "entry {entry} has name range {start}..{end} outside the block"
            ),
            DirProblem::EmptyName { entry } => write!(f, "entry {entry} has an empty name"),
        }
    }
}

/// What is wrong with an xattr entry or pair ([`DecodeError::BadXattr`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum XattrProblem {
    /// A v6 entry's `e_name_index` names no known prefix.
    UnknownNameIndex(u8),
    /// A v5 pair has no NUL between name and value.
    NoNul,
    /// A v5 pair has an empty name.
    EmptyName,
}

impl fmt::Display for XattrProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            XattrProblem::UnknownNameIndex(i) => write!(f, "unknown name index {i}"),
            XattrProblem::NoNul => write!(f, "no NUL between name and value"),
            XattrProblem::EmptyName => write!(f, "empty name"),
        }
    }
}

/// What is wrong with a blob-table entry ([`DecodeError::BadBlobEntry`]) or with a structure
/// inside a blob file ([`DecodeError::BadBlobSection`]: ci header, ToC, section tar headers).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BlobProblem {
    /// A field holds a value the format does not allow.
    Field {
        /// Named as in the spec (`chunk_size`, `ci_uncompressed_size`, ...).
        field: &'static str,
        value: u64,
        rule: Rule,
    },
    /// The blob id is empty.
    EmptyId,
    /// The blob id is longer than 64 bytes.
    IdTooLong(u64),
    /// A text field (blob id, section name) is not UTF-8.
    NotUtf8 { field: &'static str },
    /// A field of the ci header disagrees with the blob-table entry.
    CiHeaderMismatch {
        field: &'static str,
        header: u64,
        table: u64,
    },
    /// BATCH, ZRAN or ENCRYPTED without CHUNK_INFO_V2.
    NeedsChunkInfoV2 { features: u32 },
    /// A section tar header has no ustar/GNU magic.
    TarMagic,
    /// A section tar header's checksum does not match its bytes.
    TarChecksum { recorded: u64, computed: u64 },
    /// A section tar header is not a regular-file entry.
    TarType(u8),
    /// An octal field of a section tar header does not parse.
    Unreadable { field: &'static str },
}

impl BlobProblem {
    /// The field at fault, spelled as in the spec.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            BlobProblem::Field { field, .. }
            | BlobProblem::NotUtf8 { field }
            | BlobProblem::CiHeaderMismatch { field, .. }
            | BlobProblem::Unreadable { field } => Some(field),
            BlobProblem::EmptyId | BlobProblem::IdTooLong(_) => Some("blob_id"),
            BlobProblem::NeedsChunkInfoV2 { .. } => Some("features"),
            BlobProblem::TarMagic => Some("magic"),
            BlobProblem::TarChecksum { .. } => Some("chksum"),
            BlobProblem::TarType(_) => Some("typeflag"),
        }
    }
}

impl fmt::Display for BlobProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlobProblem::Field { field, value, rule } => write!(f, "{field} {value:#x} {rule}"),
            BlobProblem::EmptyId => write!(f, "empty blob id"),
            BlobProblem::IdTooLong(n) => write!(f, "blob id of {n} bytes is longer than 64"),
            BlobProblem::NotUtf8 { field } => write!(f, "{field} is not UTF-8"),
            BlobProblem::CiHeaderMismatch {
                field,
                header,
                table,
            } => write!(f, "{field} is {header} but the blob table says {table}"),
            BlobProblem::NeedsChunkInfoV2 { features } => write!(
                f,
                "features {features:#x}: BATCH/ZRAN/ENCRYPTED need v2 compression info"
            ),
            BlobProblem::TarMagic => write!(f, "no ustar/GNU magic"),
            BlobProblem::TarChecksum { recorded, computed } => write!(
                f,
                "checksum mismatch (recorded {recorded}, computed {computed})"
            ),
            BlobProblem::TarType(t) => write!(f, "not a regular-file entry (type {t:#x})"),
            BlobProblem::Unreadable { field } => write!(f, "unreadable {field}"),
        }
    }
}

/// What is wrong with a device slot ([`DecodeError::BadDeviceSlot`], `rafs-v6.md` §4).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SlotProblem {
    /// The tag (blob id) is not UTF-8.
    TagNotUtf8,
    /// `blocks` is 0.
    ZeroBlocks,
    /// An earlier slot has the same tag.
    DuplicateTag,
    /// The tag is not the blob id of the blob-table entry with the same index.
    NotTheBlobId,
}

impl SlotProblem {
    /// The slot field at fault, spelled as in the spec.
    pub fn field(&self) -> &'static str {
        match self {
            SlotProblem::ZeroBlocks => "blocks",
            SlotProblem::TagNotUtf8 | SlotProblem::DuplicateTag | SlotProblem::NotTheBlobId => {
                "tag"
            }
        }
    }
}

impl fmt::Display for SlotProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SlotProblem::TagNotUtf8 => write!(f, "tag is not UTF-8"),
            SlotProblem::ZeroBlocks => write!(f, "blocks is 0"),
            SlotProblem::DuplicateTag => write!(f, "duplicate tag"),
            SlotProblem::NotTheBlobId => {
                write!(f, "names a different blob than the blob table")
            }
        }
    }
}

/// What an image uses that this implementation does not read ([`DecodeError::Unsupported`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Feature {
    /// TARFS mode: 512-byte blocks (`blkszbits` 9).
    TarfsMode,
    /// A RAFS v5 bootstrap given to the v6 decoder.
    RafsV5,
    /// Shared xattrs (`h_shared_count` ≠ 0).
    SharedXattrs,
    /// A blob without an inlined bootstrap, where one is needed.
    NoInlinedBootstrap,
    /// A hole inside a file, which trees cannot re-encode.
    Hole { nid: u64, file_offset: u64 },
    /// A hole at the end of a file, which trees cannot re-encode.
    TrailingHole { nid: u64 },
}

impl fmt::Display for Feature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Feature::TarfsMode => write!(f, "TARFS mode (512-byte blocks)"),
            Feature::RafsV5 => write!(f, "RAFS v5 is not read by the v6 decoder"),
            Feature::SharedXattrs => write!(f, "shared xattrs are not used by RAFS"),
            Feature::NoInlinedBootstrap => {
                write!(f, "it has no inlined bootstrap (no image.boot section)")
            }
            Feature::Hole { nid, file_offset } => write!(
                f,
                "inode {nid} has a hole at file offset {file_offset}: holes cannot be re-encoded"
            ),
            Feature::TrailingHole { nid } => {
                write!(f, "inode {nid} ends in a hole: holes cannot be re-encoded")
            }
        }
    }
}

/// What a digest was taken of ([`DecodeError::DigestMismatch`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Digested {
    /// The uncompressed bytes of chunk `index` of blob `blob` (blob-table index).
    Chunk { blob: u32, index: u32 },
    /// The CRC-32C of chunk `index` of blob `blob`.
    ChunkCrc { blob: u32, index: u32 },
    /// A section of a blob (`image.boot`, ...).
    Section(&'static str),
}

impl fmt::Display for Digested {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Digested::Chunk { blob, index } => write!(f, "chunk {index} of blob {blob}"),
            Digested::ChunkCrc { blob, index } => {
                write!(f, "CRC-32C of chunk {index} of blob {blob}")
            }
            Digested::Section(s) => write!(f, "blob section {s}"),
        }
    }
}

/// Decoding a bootstrap, a blob section or a chunk failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// A structure ends before its declared or fixed size.
    Truncated {
        what: &'static str,
        offset: u64,
        needed: u64,
        available: u64,
    },
    /// A magic number does not match.
    BadMagic {
        what: &'static str,
        offset: u64,
        found: u64,
    },
    /// A field of a fixed structure holds a value the format does not allow.
    BadField {
        /// The structure (e.g. "EROFS superblock").
        what: &'static str,
        /// The field, named as in the spec (e.g. "blkszbits").
        field: &'static str,
        /// Absolute offset of the structure.
        offset: u64,
        value: u64,
        rule: Rule,
    },
    /// An inode breaks a rule of the format.
    BadInode {
        nid: u64,
        offset: u64,
        problem: InodeProblem,
    },
    /// A chunk reference of a file breaks a rule of the format.
    BadChunk {
        nid: u64,
        /// Position of the chunk in the file (0-based).
        position: u64,
        offset: u64,
        problem: ChunkProblem,
    },
    /// Two regions of the file overlap.
    Overlap {
        what: &'static str,
        other: &'static str,
        offset: u64,
    },
    /// An offset or length points outside the file (or overflows).
    OutOfBounds {
        what: &'static str,
        offset: u64,
        len: u64,
        file_size: u64,
    },
    /// A fixed-size structure was decoded without consuming all of its bytes.
    TrailingBytes {
        what: &'static str,
        /// Absolute offset of the first byte left over.
        offset: u64,
        count: u64,
    },
    /// A directory block of directory `nid` (at `offset`) breaks a rule of the format.
    BadDirectory {
        nid: u64,
        offset: u64,
        problem: DirProblem,
    },
    /// An xattr entry of inode `nid` (at `offset`) breaks a rule of the format.
    BadXattr {
        nid: u64,
        offset: u64,
        problem: XattrProblem,
    },
    /// The blob-table entry of blob `blob` (at `offset` of the bootstrap) breaks a rule.
    BadBlobEntry {
        blob: u32,
        offset: u64,
        problem: BlobProblem,
    },
    /// Device slot `slot` (at `offset`) breaks a rule of the format.
    BadDeviceSlot {
        slot: u32,
        offset: u64,
        problem: SlotProblem,
    },
    /// A structure inside a blob file (ci header, ToC, section tar header) breaks a rule.
    BadBlobSection {
        what: &'static str,
        /// Offset in the blob file.
        offset: u64,
        problem: BlobProblem,
    },
    /// Chunk `index` of blob `blob`, at `offset` of the blob file, breaks a rule.
    BadBlobChunk {
        blob: u32,
        index: u32,
        offset: u64,
        problem: ChunkProblem,
    },
    /// The image uses a feature this implementation does not read.
    Unsupported {
        what: &'static str,
        feature: Feature,
    },
    /// Decompression of a chunk or section failed.
    Decompress {
        what: &'static str,
        offset: u64,
        reason: String,
    },
    /// A digest read back does not match the recorded one.
    DigestMismatch {
        what: Digested,
        expected: String,
        actual: String,
    },
    /// A path lookup failed.
    NotFound { path: String },
    /// The directory tree has a cycle or is deeper than allowed.
    Cycle { nid: u64 },
    /// The byte source failed.
    Source(SourceError),
}

/// The variant of a [`DecodeError`], without its fields (for tests and tables).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// [`DecodeError::Truncated`].
    Truncated,
    /// [`DecodeError::BadMagic`].
    BadMagic,
    /// [`DecodeError::BadField`].
    BadField,
    /// [`DecodeError::BadInode`].
    BadInode,
    /// [`DecodeError::BadChunk`].
    BadChunk,
    /// [`DecodeError::Overlap`].
    Overlap,
    /// [`DecodeError::OutOfBounds`].
    OutOfBounds,
    /// [`DecodeError::TrailingBytes`].
    TrailingBytes,
    /// [`DecodeError::BadDirectory`].
    BadDirectory,
    /// [`DecodeError::BadXattr`].
    BadXattr,
    /// [`DecodeError::BadBlobEntry`].
    BadBlobEntry,
    /// [`DecodeError::BadDeviceSlot`].
    BadDeviceSlot,
    /// [`DecodeError::BadBlobSection`].
    BadBlobSection,
    /// [`DecodeError::BadBlobChunk`].
    BadBlobChunk,
    /// [`DecodeError::Unsupported`].
    Unsupported,
    /// [`DecodeError::Decompress`].
    Decompress,
    /// [`DecodeError::DigestMismatch`].
    DigestMismatch,
    /// [`DecodeError::NotFound`].
    NotFound,
    /// [`DecodeError::Cycle`].
    Cycle,
    /// [`DecodeError::Source`].
    Source,
}

impl DecodeError {
    /// The variant, without its fields.
    pub fn kind(&self) -> ErrorKind {
        match self {
            DecodeError::Truncated { .. } => ErrorKind::Truncated,
            DecodeError::BadMagic { .. } => ErrorKind::BadMagic,
            DecodeError::BadField { .. } => ErrorKind::BadField,
            DecodeError::BadInode { .. } => ErrorKind::BadInode,
            DecodeError::BadChunk { .. } => ErrorKind::BadChunk,
            DecodeError::Overlap { .. } => ErrorKind::Overlap,
            DecodeError::OutOfBounds { .. } => ErrorKind::OutOfBounds,
            DecodeError::TrailingBytes { .. } => ErrorKind::TrailingBytes,
            DecodeError::BadDirectory { .. } => ErrorKind::BadDirectory,
            DecodeError::BadXattr { .. } => ErrorKind::BadXattr,
            DecodeError::BadBlobEntry { .. } => ErrorKind::BadBlobEntry,
            DecodeError::BadDeviceSlot { .. } => ErrorKind::BadDeviceSlot,
            DecodeError::BadBlobSection { .. } => ErrorKind::BadBlobSection,
            DecodeError::BadBlobChunk { .. } => ErrorKind::BadBlobChunk,
            DecodeError::Unsupported { .. } => ErrorKind::Unsupported,
            DecodeError::Decompress { .. } => ErrorKind::Decompress,
            DecodeError::DigestMismatch { .. } => ErrorKind::DigestMismatch,
            DecodeError::NotFound { .. } => ErrorKind::NotFound,
            DecodeError::Cycle { .. } => ErrorKind::Cycle,
            DecodeError::Source(_) => ErrorKind::Source,
        }
    }

    /// The structure the error is about, where it names one.
    pub fn what(&self) -> Option<&'static str> {
        match self {
            DecodeError::Truncated { what, .. }
            | DecodeError::BadMagic { what, .. }
            | DecodeError::BadField { what, .. }
            | DecodeError::Overlap { what, .. }
            | DecodeError::OutOfBounds { what, .. }
            | DecodeError::TrailingBytes { what, .. }
            | DecodeError::BadBlobSection { what, .. }
            | DecodeError::Unsupported { what, .. }
            | DecodeError::Decompress { what, .. } => Some(what),
            DecodeError::BadInode { .. } => Some("inode"),
            DecodeError::BadDirectory { .. } => Some("directory block"),
            DecodeError::BadXattr { .. } => Some("xattr entry"),
            DecodeError::BadBlobEntry { .. } => Some("blob table entry"),
            DecodeError::BadDeviceSlot { .. } => Some("device slot"),
            DecodeError::BadBlobChunk { .. } => Some("chunk"),
            // A v6 chunk index or a v5 chunk record; a walk; a host failure.
            DecodeError::BadChunk { .. }
            | DecodeError::Cycle { .. }
            | DecodeError::DigestMismatch { .. }
            | DecodeError::NotFound { .. }
            | DecodeError::Source(_) => None,
        }
    }

    /// The absolute offset the error names (of the structure, record or failed read).
    pub fn offset(&self) -> Option<u64> {
        match self {
            DecodeError::Truncated { offset, .. }
            | DecodeError::BadMagic { offset, .. }
            | DecodeError::BadField { offset, .. }
            | DecodeError::BadInode { offset, .. }
            | DecodeError::BadChunk { offset, .. }
            | DecodeError::Overlap { offset, .. }
            | DecodeError::OutOfBounds { offset, .. }
            | DecodeError::TrailingBytes { offset, .. }
            | DecodeError::BadDirectory { offset, .. }
            | DecodeError::BadXattr { offset, .. }
            | DecodeError::BadBlobEntry { offset, .. }
            | DecodeError::BadDeviceSlot { offset, .. }
            | DecodeError::BadBlobSection { offset, .. }
            | DecodeError::BadBlobChunk { offset, .. }
            | DecodeError::Decompress { offset, .. } => Some(*offset),
            DecodeError::Source(e) => Some(e.offset),
            DecodeError::Unsupported { .. }
            | DecodeError::DigestMismatch { .. }
            | DecodeError::NotFound { .. }
            | DecodeError::Cycle { .. } => None,
        }
    }

    /// The inode (v6 nid or v5 inode number) the error is about, where there is one.
    pub fn nid(&self) -> Option<u64> {
        match self {
            DecodeError::BadInode { nid, .. }
            | DecodeError::BadChunk { nid, .. }
            | DecodeError::BadDirectory { nid, .. }
            | DecodeError::BadXattr { nid, .. }
            | DecodeError::Cycle { nid } => Some(*nid),
            DecodeError::Unsupported {
                feature: Feature::Hole { nid, .. } | Feature::TrailingHole { nid },
                ..
            } => Some(*nid),
            _ => None,
        }
    }

    /// The blob-table index the error is about, where there is one.
    pub fn blob(&self) -> Option<u32> {
        match self {
            DecodeError::BadBlobEntry { blob, .. } | DecodeError::BadBlobChunk { blob, .. } => {
                Some(*blob)
            }
            DecodeError::BadDeviceSlot { slot, .. } => Some(*slot),
            DecodeError::DigestMismatch {
                what: Digested::Chunk { blob, .. } | Digested::ChunkCrc { blob, .. },
                ..
            } => Some(*blob),
            _ => None,
        }
    }

    /// The on-disk field at fault, spelled as in the spec, where the error names one.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            DecodeError::BadField { field, .. } => Some(field),
            DecodeError::BadBlobEntry { problem, .. }
            | DecodeError::BadBlobSection { problem, .. } => problem.field(),
            DecodeError::BadDeviceSlot { problem, .. } => Some(problem.field()),
            DecodeError::BadDirectory { problem, .. } => problem.field(),
            _ => None,
        }
    }

    /// The rule a field breaks, where the error names one.
    pub fn rule(&self) -> Option<Rule> {
        match self {
            DecodeError::BadField { rule, .. }
            | DecodeError::BadBlobEntry {
                problem: BlobProblem::Field { rule, .. },
                ..
            }
            | DecodeError::BadBlobSection {
                problem: BlobProblem::Field { rule, .. },
                ..
            } => Some(*rule),
            _ => None,
        }
    }

    /// The problem of a [`DecodeError::BadInode`].
    pub fn inode_problem(&self) -> Option<&InodeProblem> {
        match self {
            DecodeError::BadInode { problem, .. } => Some(problem),
            _ => None,
        }
    }

    /// The problem of a [`DecodeError::BadChunk`] or [`DecodeError::BadBlobChunk`].
    pub fn chunk_problem(&self) -> Option<&ChunkProblem> {
        match self {
            DecodeError::BadChunk { problem, .. } | DecodeError::BadBlobChunk { problem, .. } => {
                Some(problem)
            }
            _ => None,
        }
    }

    /// The problem of a [`DecodeError::BadDirectory`].
    pub fn dir_problem(&self) -> Option<&DirProblem> {
        match self {
            DecodeError::BadDirectory { problem, .. } => Some(problem),
            _ => None,
        }
    }

    /// The problem of a [`DecodeError::BadXattr`].
    pub fn xattr_problem(&self) -> Option<&XattrProblem> {
        match self {
            DecodeError::BadXattr { problem, .. } => Some(problem),
            _ => None,
        }
    }

    /// The problem of a [`DecodeError::BadBlobEntry`] or [`DecodeError::BadBlobSection`].
    pub fn blob_problem(&self) -> Option<&BlobProblem> {
        match self {
            DecodeError::BadBlobEntry { problem, .. }
            | DecodeError::BadBlobSection { problem, .. } => Some(problem),
            _ => None,
        }
    }

    /// The problem of a [`DecodeError::BadDeviceSlot`].
    pub fn slot_problem(&self) -> Option<&SlotProblem> {
        match self {
            DecodeError::BadDeviceSlot { problem, .. } => Some(problem),
            _ => None,
        }
    }

    /// The feature of a [`DecodeError::Unsupported`].
    pub fn feature(&self) -> Option<&Feature> {
        match self {
            DecodeError::Unsupported { feature, .. } => Some(feature),
            _ => None,
        }
    }

    /// What the digest of a [`DecodeError::DigestMismatch`] was taken of.
    pub fn digested(&self) -> Option<&Digested> {
        match self {
            DecodeError::DigestMismatch { what, .. } => Some(what),
            _ => None,
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Truncated { what, offset, needed, available } => write!(
                f,
                "{what} at offset {offset} is truncated: needs {needed} bytes, only {available} available"
            ),
            DecodeError::BadMagic { what, offset, found } => {
                write!(f, "{what} at offset {offset} has a bad magic number {found:#x}")
            }
            DecodeError::BadField { what, field, offset, value, rule } => write!(
                f,
                "{what} at offset {offset}: {field} {value:#x} {rule}"
            ),
            DecodeError::BadInode { nid, offset, problem } => {
                write!(f, "inode {nid} at offset {offset}: {problem}")
            }
            DecodeError::BadChunk { nid, position, offset, problem } => write!(
                f,
                "inode {nid}, chunk {position} (record at offset {offset}): {problem}"
            ),
            DecodeError::Overlap { what, other, offset } => {
                write!(f, "{what} at offset {offset} overlaps the {other}")
            }
            DecodeError::OutOfBounds { what, offset, len, file_size } => write!(
                f,
                "{what} at offset {offset} (length {len}) lies outside the file of {file_size} bytes"
            ),
            DecodeError::TrailingBytes { what, offset, count } => write!(
                f,
                "{what} has {count} trailing bytes at offset {offset}"
            ),
            DecodeError::BadDirectory { nid, offset, problem } => write!(
                f,
                "directory block at offset {offset} (inode {nid}): {problem}"
            ),
            DecodeError::BadXattr { nid, offset, problem } => write!(
                f,
                "xattr entry at offset {offset} (inode {nid}): {problem}"
            ),
            DecodeError::BadBlobEntry { blob, offset, problem } => write!(
                f,
                "blob table entry at offset {offset} (blob {blob}): {problem}"
            ),
            DecodeError::BadDeviceSlot { slot, offset, problem } => {
                write!(f, "device slot {slot} at offset {offset}: {problem}")
            }
            DecodeError::BadBlobSection { what, offset, problem } => {
                write!(f, "{what} at offset {offset} of the blob: {problem}")
            }
            DecodeError::BadBlobChunk { blob, index, offset, problem } => write!(
                f,
                "chunk {index} of blob {blob} (at offset {offset} of the blob): {problem}"
            ),
            DecodeError::Unsupported { what, feature } => {
                write!(f, "{what}: unsupported: {feature}")
            }
            DecodeError::Decompress { what, offset, reason } => {
                write!(f, "decompressing {what} at offset {offset} failed: {reason}")
            }
            DecodeError::DigestMismatch { what, expected, actual } => {
                write!(f, "digest mismatch in {what}: expected {expected}, got {actual}")
            }
            DecodeError::NotFound { path } => write!(f, "no such path in the image: {path}"),
            DecodeError::Cycle { nid } => write!(f, "directory cycle or excessive depth at nid {nid}"),
            DecodeError::Source(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for DecodeError {}

impl From<SourceError> for DecodeError {
    fn from(e: SourceError) -> Self {
        DecodeError::Source(e)
    }
}

/// Building an image failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildError {
    /// An option is out of range or options conflict.
    InvalidOption {
        option: &'static str,
        reason: String,
    },
    /// A source entry cannot be represented (bad name, bad xattr, ...).
    InvalidEntry { path: String, reason: String },
    /// Two entries claim the same path with incompatible types.
    Conflict { path: String, reason: String },
    /// A format limit was exceeded (chunk count, blob count, sizes).
    Limit { what: &'static str, reason: String },
    /// Compressing a chunk failed.
    Compress { reason: String },
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::InvalidOption { option, reason } => write!(f, "invalid {option}: {reason}"),
            BuildError::InvalidEntry { path, reason } => write!(f, "{path}: {reason}"),
            BuildError::Conflict { path, reason } => write!(f, "{path}: {reason}"),
            BuildError::Limit { what, reason } => write!(f, "{what} limit exceeded: {reason}"),
            BuildError::Compress { reason } => write!(f, "compression failed: {reason}"),
        }
    }
}

impl std::error::Error for BuildError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_variants_say_where_and_what() {
        let e = DecodeError::BadBlobEntry {
            blob: 2,
            offset: 0x1200,
            problem: BlobProblem::Field {
                field: "chunk_size",
                value: 0x20_0000,
                rule: Rule::Matches {
                    other: "the extended superblock's chunk_size",
                    value: 0x10_0000,
                },
            },
        };
        assert_eq!(
            e.to_string(),
            "blob table entry at offset 4608 (blob 2): chunk_size 0x200000 disagrees with \
             the extended superblock's chunk_size (1048576)"
        );
        assert_eq!(e.kind(), ErrorKind::BadBlobEntry);
        assert_eq!(
            (e.field(), e.blob(), e.offset()),
            (Some("chunk_size"), Some(2), Some(0x1200))
        );
        assert_eq!(
            e.rule(),
            Some(Rule::Matches {
                other: "the extended superblock's chunk_size",
                value: 0x10_0000
            })
        );

        let e = DecodeError::BadDirectory {
            nid: 128,
            offset: 0x3040,
            problem: DirProblem::EmptyName { entry: 3 },
        };
        assert_eq!(
            e.to_string(),
            "directory block at offset 12352 (inode 128): entry 3 has an empty name"
        );
        assert_eq!(
            (e.kind(), e.nid(), e.field()),
            (ErrorKind::BadDirectory, Some(128), None)
        );

        let e = DecodeError::TrailingBytes {
            what: "blob ToC entry",
            offset: 120,
            count: 8,
        };
        assert_eq!(
            e.to_string(),
            "blob ToC entry has 8 trailing bytes at offset 120"
        );

        let e = DecodeError::BadDeviceSlot {
            slot: 0,
            offset: 1408,
            problem: SlotProblem::ZeroBlocks,
        };
        assert_eq!(e.to_string(), "device slot 0 at offset 1408: blocks is 0");
        assert_eq!(e.field(), Some("blocks"));

        let e = DecodeError::Unsupported {
            what: "merging or layering an image",
            feature: Feature::Hole {
                nid: 7,
                file_offset: 4096,
            },
        };
        assert_eq!(
            e.to_string(),
            "merging or layering an image: unsupported: inode 7 has a hole at file offset \
             4096: holes cannot be re-encoded"
        );
        assert_eq!(e.nid(), Some(7));
    }

    #[test]
    fn xattr_and_section_problems_read_as_before() {
        let e = DecodeError::BadXattr {
            nid: 3,
            offset: 900,
            problem: XattrProblem::NoNul,
        };
        assert_eq!(
            e.to_string(),
            "xattr entry at offset 900 (inode 3): no NUL between name and value"
        );
        let e = DecodeError::BadBlobSection {
            what: "blob compression-info header",
            offset: 22,
            problem: BlobProblem::CiHeaderMismatch {
                field: "ci_entries",
                header: 2,
                table: 1,
            },
        };
        assert_eq!(
            e.to_string(),
            "blob compression-info header at offset 22 of the blob: ci_entries is 2 but the \
             blob table says 1"
        );
        assert_eq!(e.field(), Some("ci_entries"));
        assert_eq!(
            e.blob_problem(),
            Some(&BlobProblem::CiHeaderMismatch {
                field: "ci_entries",
                header: 2,
                table: 1
            })
        );
    }
}
