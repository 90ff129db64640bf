//! eStargz layers as a build source (`stargz.md`): the layer's table of contents (TOC) becomes
//! a RAFS v6 tree whose chunks are the layer's own gzip members, so the unmodified layer is
//! the data blob.
//!
//! - [`footer`] finds the TOC in a layer (the 51-byte eStargz footer or the 47-byte legacy
//!   one) and takes `stargz.index.json` out of the TOC's gzip member;
//! - [`toc`] is the TOC's JSON model;
//! - [`build`] turns a TOC into a [`crate::tree::Tree`] with chunk references, the blob-table
//!   entry of the layer and the compression-info section upstream computes for it.
//!
//! Reading such a chunk means inflating the gzip member at its offset until the chunk's
//! uncompressed size is out ([`crate::compress::decompress`] with [`crate::model::Compressor::Gzip`]);
//! the bytes are then verified against the TOC's `chunkDigest` (SHA-256).

pub mod build;
pub mod footer;
pub mod toc;

use std::fmt;

use crate::digest::Digester;
use crate::model::Compressor;
use crate::source::ReadAt;
use crate::v6::writer::{write_bootstrap, V6Options};

pub use build::{build_from_toc, StargzBuild, StargzOptions};

/// Chunk size upstream forces for images built from a TOC (`stargz.md` §3).
pub const STARGZ_DEFAULT_CHUNK_SIZE: u32 = 0x40_0000;
/// Name of the TOC's tar entry.
pub const TOC_TAR_NAME: &str = "stargz.index.json";
/// Landmark files that separate prioritized files from the rest; not part of the filesystem.
pub const PREFETCH_LANDMARK: &str = ".prefetch.landmark";
pub const NO_PREFETCH_LANDMARK: &str = ".no.prefetch.landmark";
/// Layer annotation carrying the TOC's digest.
pub const TOC_DIGEST_ANNOTATION: &str = "containerd.io/snapshot/stargz/toc.digest";

/// The TOC JSON of an eStargz layer read through `src` (located by its footer).
pub fn layer_toc<R: ReadAt + ?Sized>(src: &R) -> Result<Vec<u8>, StargzError> {
    let size = src.size();
    let tail_len = size.min(footer::FOOTER_SIZE as u64);
    let tail = src
        .read_vec(size - tail_len, tail_len)
        .map_err(|e| StargzError::Footer {
            reason: e.to_string(),
        })?;
    let (off, footer_len) = footer::toc_offset(&tail)?;
    let end = size - footer_len as u64;
    if off >= end {
        return Err(StargzError::Footer {
            reason: format!("the TOC offset {off} is past the layer's {end} bytes of members"),
        });
    }
    let member = src
        .read_vec(off, end - off)
        .map_err(|e| StargzError::TocMember {
            offset: off,
            reason: e.to_string(),
        })?;
    footer::toc_json(&member, off)
}

/// The RAFS v6 bootstrap of one eStargz layer read through `src`, naming the layer
/// `blob_id`: what `nydus-image create -t estargztoc-ref <layer>` writes, for hosts without
/// files (the browser inspector opening a layer, the WASM golden vectors).
pub fn layer_bootstrap<R: ReadAt + ?Sized>(src: &R, blob_id: &str) -> Result<Vec<u8>, StargzError> {
    let toc = layer_toc(src)?;
    let b = build_from_toc(
        &toc,
        &StargzOptions {
            blob_id: blob_id.to_string(),
            blob_size: src.size(),
        },
    )?;
    let table = if b.blob.chunk_count > 0 {
        vec![b.blob]
    } else {
        Vec::new()
    };
    write_bootstrap(
        &b.tree,
        &table,
        &V6Options {
            chunk_size: b.chunk_size,
            compressor: Compressor::Gzip,
            digester: Digester::Sha256,
            explicit_uid_gid: true,
            prefetch: Vec::new(),
            inlined_chunk_digest: false,
            force_has_xattr: false,
        },
    )
    .map_err(|e| StargzError::Encode {
        reason: e.to_string(),
    })
}

/// Why a layer or a TOC cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StargzError {
    /// The layer's last bytes are not an eStargz (or legacy stargz) footer.
    Footer { reason: String },
    /// The TOC's gzip member or its tar entry is unreadable.
    TocMember { offset: u64, reason: String },
    /// The TOC is not valid JSON of the expected shape.
    Json { reason: String },
    /// The TOC's `version` is not 1.
    Version { found: u64 },
    /// Entry `index` (named `name`) breaks a rule.
    Entry {
        index: usize,
        name: String,
        problem: String,
    },
    /// A limit of the RAFS format is exceeded.
    Limit { what: &'static str, reason: String },
    /// The bootstrap could not be encoded.
    Encode { reason: String },
}

impl fmt::Display for StargzError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StargzError::Footer { reason } => write!(f, "eStargz footer: {reason}"),
            StargzError::TocMember { offset, reason } => {
                write!(f, "eStargz TOC at offset {offset}: {reason}")
            }
            StargzError::Json { reason } => write!(f, "eStargz TOC: {reason}"),
            StargzError::Version { found } => {
                write!(f, "eStargz TOC: version {found} is not supported (only 1)")
            }
            StargzError::Entry {
                index,
                name,
                problem,
            } => write!(f, "eStargz TOC entry {index} ({name:?}): {problem}"),
            StargzError::Limit { what, reason } => write!(f, "eStargz TOC: {what}: {reason}"),
            StargzError::Encode { reason } => write!(f, "eStargz bootstrap: {reason}"),
        }
    }
}

impl std::error::Error for StargzError {}
