//! The read-side commands' blob options (`-b`, `-D`, `--backend-type` with
//! `--backend-config[-file]`) as a localfs backend.

use anyhow::Result;
use nydus_host_storage::config::{self, BackendConfig, BackendFlags, LocalBlobs};
use nydus_host_storage::Localfs;

use super::args::BlobSourceArgs;

/// The read-side commands' backend options.
const READ_BACKEND: BackendFlags<'static> = BackendFlags {
    prefix: "--backend",
    tool: "nydus-image",
    config_file: true,
};

/// `create`'s backend options (the older syntax: no `--backend-config-file`).
pub const CREATE_BACKEND: BackendFlags<'static> = BackendFlags {
    config_file: false,
    ..READ_BACKEND
};

/// Where blobs are per the options: a backend configuration (its type defaults to localfs)
/// takes the place of `-b` or `-D`.
pub fn locator(a: &BlobSourceArgs) -> Result<Localfs> {
    let (mut single, mut dir, mut alt) = (a.blob.clone(), a.blob_dir.clone(), Vec::new());
    let configured = a.backend_config.is_some() || a.backend_config_file.is_some();
    if configured || a.backend_type.is_some() {
        let kind = a.backend_type.as_deref().unwrap_or("localfs");
        let c = config::parse(
            READ_BACKEND,
            kind,
            a.backend_config.as_deref(),
            a.backend_config_file.as_deref(),
        )?;
        match c {
            BackendConfig::Localfs { blobs, alt_dirs } => {
                match blobs {
                    LocalBlobs::Dir(d) => dir = Some(d),
                    LocalBlobs::File(f) => single = Some(f),
                }
                alt = alt_dirs;
            }
        }
    }
    Localfs::new(single, dir, alt)
}
