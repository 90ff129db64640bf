//! Error types of the core, one enum per phase. None of them wraps `std::io::Error`: hosts
//! turn their I/O failures into [`SourceError`] (decoding) or handle them themselves.

use std::fmt;

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
        what: String,
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
