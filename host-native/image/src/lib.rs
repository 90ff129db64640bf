//! `nydus-image` as a library: the builder and the read-side commands, driven by typed plans
//! and options, returning values. No command line, no async runtime: the CLI crate parses
//! flags into plans and prints what these functions return; nydusify calls the same builder
//! per layer.
//!
//! The builder: [`walk`] turns a directory into tree entries, [`tarsrc`] reads an OCI layer
//! stream in one pass, [`pipeline`] digests and compresses chunks on all cores in order,
//! [`create`] builds a bootstrap and blob per a [`create::Plan`] ([`layered`] for a parent
//! bootstrap or chunk dictionary), [`merge`] overlays per-layer bootstraps per a
//! [`merge::MergePlan`], [`prefetch`] holds the prefetch-pattern helpers both share.

pub mod check;
pub mod create;
pub mod layered;
pub mod merge;
pub mod pipeline;
pub mod prefetch;
pub mod tarsrc;
pub mod walk;
