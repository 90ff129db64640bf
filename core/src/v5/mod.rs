//! RAFS v5 bootstraps (`rafs-v5.md`): on-disk structures, the encoder, the decoder and the
//! checker. v5 keeps names and per-file chunk records in the bootstrap; nydusd reads it over
//! FUSE (the kernel cannot mount v5).

pub mod check;
pub mod ondisk;
pub mod reader;
pub mod writer;
