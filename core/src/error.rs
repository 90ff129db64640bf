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

/// The rule a field of a fixed structure breaks ([`DecodeError::BadField`]).
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
    /// Exactly one bit of this mask must be set.
    OneBitOf(u64),
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
            Rule::OneBitOf(m) => write!(f, "must have exactly one bit of {m:#x}"),
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
        }
    }
}

/// What is wrong with one chunk reference of a file ([`DecodeError::BadChunk`]).
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
                "an uncompressed chunk stores {stored} bytes but holds {uncompressed}"
            ),
            ChunkProblem::Order { file_offset } => write!(
                f,
                "chunk at file offset {file_offset} is out of order, overlaps another or ends past the file"
            ),
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
    /// A field holds a value the format does not allow.
    Malformed {
        what: &'static str,
        offset: u64,
        reason: String,
    },
    /// An offset or length points outside the file (or overflows).
    OutOfBounds {
        what: &'static str,
        offset: u64,
        len: u64,
        file_size: u64,
    },
    /// The image uses a feature this implementation does not read.
    Unsupported { what: &'static str, reason: String },
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
            DecodeError::Malformed { what, offset, reason } => {
                write!(f, "{what} at offset {offset} is malformed: {reason}")
            }
            DecodeError::OutOfBounds { what, offset, len, file_size } => write!(
                f,
                "{what} at offset {offset} (length {len}) lies outside the file of {file_size} bytes"
            ),
            DecodeError::Unsupported { what, reason } => write!(f, "{what}: unsupported: {reason}"),
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
