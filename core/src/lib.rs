//! Sans-IO core of a Nydus (RAFS) image toolchain.
//!
//! This crate encodes, decodes and checks RAFS v6 (EROFS-compatible) bootstraps and Nydus data
//! blobs. It never opens a file or socket, never reads a clock, an environment variable or
//! spawns a thread: hosts hand it bytes (or a [`source::ReadAt`] that serves byte ranges on
//! demand) and get bytes, values or plans back. The same code therefore runs in the native
//! `nydus-image` binary, in wasmtime and in the browser (`wasm32-unknown-unknown`).
//!
//! Data flow of a build (see `ARCHITECTURE.md`):
//! 1. the host adds entries to a [`tree::TreeBuilder`] (paths, attributes, xattrs, links);
//! 2. the finished [`tree::Tree`] tells the host in which order to read file data
//!    ([`tree::Tree::data_order`]);
//! 3. the host cuts each file into chunks and runs [`chunk::process_chunk`] on them (in
//!    parallel, it is a pure function), then feeds the results, in order, to a
//!    [`blob::writer::BlobWriter`], which deduplicates them and returns the bytes to append;
//! 4. the bootstrap encoder ([`v6::writer`]) turns the tree, its chunk references and the blob
//!    table into bootstrap bytes.
//!
//! Decoding goes the other way: [`v6::reader`] opens a bootstrap through a [`source::ReadAt`],
//! reading only the byte ranges it needs and checking every offset and length before use.
#![forbid(unsafe_code)]

pub mod blob;
pub mod chunk;
pub mod codec;
pub mod compress;
pub mod digest;
pub mod error;
pub mod layer;
pub mod listing;
pub mod memimage;
pub mod model;
pub mod oci;
pub mod plugin;
pub mod prefetch_list;
pub mod rafs;
pub mod read;
pub mod report;
pub mod source;
pub mod stargz;
pub mod stats;
pub mod tree;
pub mod v5;
pub mod v6;
