//! `nydus-image` as a library: the builder and the read-side commands, driven by typed plans
//! and options, returning values. No command line, no async runtime: the CLI crate parses
//! flags into plans and prints what these functions return; nydusify calls the same builder
//! per layer.
//!
//! The builder: [`walk`] turns a directory into tree entries, [`tarsrc`] reads an OCI layer
//! stream in one pass, [`pipeline`] digests and compresses chunks on all cores in order,
//! [`create`] builds a bootstrap and blob per a [`create::Plan`] ([`layered`] for a parent
//! bootstrap or chunk dictionary), [`merge`] overlays per-layer bootstraps per a
//! [`merge::MergePlan`], [`optimize`] gathers a prefetch list's data into one new blob
//! per an [`optimize::OptimizePlan`], [`prefetch`] holds the prefetch-pattern helpers both share.
//!
//! The read-side commands take an opened image (`nydus_host_storage::open_image`) and typed
//! options and return values: [`check`] a report (and the validation every build runs),
//! [`inspect`] JSON answers to requests, [`stat`] statistics, [`unpack`] a tar archive
//! written to a given output, [`export`] a raw disk image. Every chunk they read goes through
//! `nydus_host_storage::ChunkSource`, which verifies it.

pub mod check;
pub mod create;
pub mod export;
pub mod inspect;
pub mod layered;
pub mod merge;
pub mod optimize;
pub mod pipeline;
pub mod prefetch;
pub mod stargz;
pub mod stat;
pub mod tarsrc;
pub mod unpack;
pub mod walk;
