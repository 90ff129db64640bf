//! The FUSE daemon of the native hosts: a Nydus image mounted read-only, its metadata served
//! from the bootstrap and its file bytes fetched lazily from the image's backend, every chunk
//! verified by digest before it is cached or returned.
//!
//! - [`fs`]: the FUSE filesystem ([`fs::ImageFs`]) and the one errno mapping.
//! - [`inodes`]: FUSE inode numbers for image inodes (hard links share one).
//! - [`ahead`]: read-ahead of big files on background threads.
//! - [`neighbors`]: every chunk by blob order, to widen small reads to the chunks after them.
//! - [`prefetch`]: the prefetch table, then optionally everything, in the background, user
//!   reads first, with a bandwidth limit.
//! - [`daemon`]: mounting, stale mount points, waiting for a signal, unmounting.
//! - [`config`]: upstream nydusd's v1 and v2 JSON configurations.
//! - [`api`]: the API socket (`GET /api/v1/daemon`).

pub mod ahead;
pub mod api;
pub mod config;
pub mod daemon;
pub mod fs;
pub mod inodes;
pub mod neighbors;
pub mod prefetch;
pub mod record;

pub use daemon::{mount, Daemon, DaemonOptions, Stopped};
pub use prefetch::PrefetchOptions;
