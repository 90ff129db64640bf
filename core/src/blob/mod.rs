//! Nydus data blobs (`blob.md`): the tar-header wrapping of sections, the compression-info
//! ("ci") table, the ToC, the streaming writer and the verifying reader.

pub mod chunkmap;
pub mod ci;
pub mod reader;
pub mod tarhdr;
pub mod toc;
pub mod writer;

/// Tar name of the chunk-data section.
pub const SECTION_BLOB: &str = "image.blob";
/// Tar name of the ci section (ci data + header).
pub const SECTION_META: &str = "blob.meta";
/// ToC name of the ci header alone.
pub const SECTION_META_HEADER: &str = "blob.meta.header";
/// Tar name of the chunk-digest array.
pub const SECTION_DIGEST: &str = "blob.digest";
/// Tar name of an inlined bootstrap.
pub const SECTION_BOOT: &str = "image.boot";
/// Tar name of the ToC.
pub const SECTION_TOC: &str = "rafs.blob.toc";

/// Largest chunk count of one blob (chunk indexes are 24-bit; `blob.md` §1.1).
pub const MAX_CHUNKS_PER_BLOB: u32 = 0xFF_FFFF;
/// Largest chunk (and chunk size).
pub const MAX_CHUNK_SIZE: u32 = 0x100_0000;
