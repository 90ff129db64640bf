//! RAFS v6 bootstraps (`rafs-v6.md`): the EROFS-compatible on-disk structures, the encoder that
//! reproduces upstream's layout byte for byte, the range-reading decoder and the checker.

pub mod check;
pub mod dir;
pub mod ondisk;
pub mod reader;
pub mod writer;
pub mod xattr;
