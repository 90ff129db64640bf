//! Native hosts of the Nydus core: the `nydus-image` and `nydusify` commands.
//!
//! The core does every encoding and decoding; this crate owns what touches the OS: walking
//! directories, reading files on all cores, writing outputs atomically, and the command line.

// The doc comments of the argument structs are clap's help text, written for the terminal
// (`<path>`, `[dir]`), not rustdoc markup.
#[allow(rustdoc::invalid_html_tags, rustdoc::broken_intra_doc_links)]
pub mod cli;
pub mod interrupt;
pub mod log;
pub mod memory;

pub use nydus_host_image as image;
pub use nydus_host_nydusify as nydusify;
pub use nydus_host_registry as registry;
pub use nydus_host_storage as storage;
