//! Where the bytes of images live locally, for every host command: local files as the core's
//! byte sources ([`source::FileSource`], `pread`), output files that appear only when complete
//! ([`atomic`]), opening images ([`open`]: a bootstrap, or one inlined in a blob), finding
//! blobs by id ([`locate`]), reading verified chunks ([`chunks`]), and the one backend
//! configuration every `--backend-*` option is parsed into ([`config`]).

pub mod atomic;
pub mod chunks;
pub mod config;
pub mod locate;
pub mod open;
pub mod source;

pub use chunks::ChunkSource;
pub use config::BackendConfig;
pub use locate::BlobLocator;
pub use open::{open_image, Image};
pub use source::FileSource;
