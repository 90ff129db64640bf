//! The version-neutral read model: what every reader of an image (listing, unpack, check, the
//! browser inspector, `nydusify check`, the FUSE mount) sees, whichever RAFS version decoded it.
//!
//! - [`Filesystem`] is what a decoder offers: inodes ([`Inode`]), directory entries
//!   ([`DirEntry`]), symlink targets, xattrs and a file's chunks with their file offsets
//!   ([`FileChunk`]). The v5 and v6 decoders implement it; [`walk`], [`lookup`] and
//!   [`prefetch`] are written once over it.
//! - [`plan`] turns "bytes `offset..offset + len` of this file" into a [`ReadPlan`]: the chunk
//!   slices and holes that produce those bytes, reading only the chunk records it needs. The
//!   host carries the plan out its own way (a thread pool and a cache natively, `File.slice`
//!   in a browser); [`exec`] is the plain sequential executor over [`crate::source::ReadAt`]
//!   blobs.

pub mod exec;
mod fs;
mod plan;

pub use fs::{lookup, prefetch, walk, DirEntry, FileChunk, Filesystem, Inode, WalkFn, MAX_DEPTH};
pub use plan::{plan, ChunkExtent, Extent, ReadPlan};
