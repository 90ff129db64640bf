//! `nydusify` as a library: Nydus images in registries and OCI image-layout archives.
//! Everything runs in process, with the builder (`nydus_host_image`) as a library, and the
//! options are typed structs (the command line lives in the CLI crate).
//!
//! [`convert`] turns an OCI image into a Nydus image ([`cache`] is its build cache),
//! [`copy`] copies images blob by blob (with [`external`], blobs from a storage backend become
//! layers), [`mount`] serves an image with FUSE, [`check`] (with [`fscheck`]) checks a Nydus image
//! against its rules and its source, [`pack`] builds a directory into a bootstrap and blob.
//! [`optimize`] gathers a prefetch list's data into one blob; [`commit`] makes a new image of
//! a running container's changes (asking containerd through [`containerd`]).
//! Under them: [`store`] is where images live (a registry repository, a layout tar read in
//! place, a layout being written), [`transfer`] moves blobs and manifests between stores,
//! [`stream`] turns pulls into blocking readers for the builder.
//!
//! # Converting an image
//!
//! [`convert::convert`] takes [`convert::ConvertOptions`] (start from
//! [`convert::ConvertOptions::new`]: upstream's defaults) and returns a
//! [`convert::ConvertOutcome`]: the digest the target tag names, the Nydus manifests pushed
//! with their blobs, metrics and timings. Hook plugins (any
//! [`nydus_core::plugin::HookRunner`]; `nydus_host_plugin::Hooks` runs WebAssembly plugins in
//! wasmtime) run before and after the manifest push; a progress callback ([`convert::ProgressFn`]) is told of every
//! layer and push. `examples/converter.rs` is a whole program; the `nydusify` binary uses the
//! same calls.
//!
//! ```no_run
//! use nydus_core::oci::reference::Reference;
//! use nydus_host_nydusify::convert::{convert, ConvertOptions, Progress, ProgressFn};
//!
//! let mut o = ConvertOptions::new(
//!     Reference::parse("localhost:5000/app:1.0")?,
//!     Reference::parse("localhost:5000/app:1.0-nydus")?,
//! );
//! o.source_plain_http = true;
//! o.target_plain_http = true;
//! o.progress = Some(ProgressFn::new(|p| {
//!     if let Progress::LayerConverted { blob_digest, .. } = p {
//!         println!("built {blob_digest}");
//!     }
//! }));
//! let done = convert(&o)?;
//! println!("{} ({} manifests)", done.target_digest, done.manifests.len());
//! # Ok::<(), anyhow::Error>(())
//! ```

pub mod backend;
pub mod cache;
pub mod check;
pub mod commit;
pub mod containerd;
pub mod convert;
pub mod copy;
pub mod external;
pub mod fscheck;
pub mod hooks;
pub mod mount;
pub mod optimize;
pub mod pack;
pub mod resolve;
pub mod store;
pub mod stream;
pub mod transfer;

use std::time::Duration;

use anyhow::Result;
use nydus_core::oci::annotation;
use nydus_core::oci::manifest::{Descriptor, Platform};
use nydus_core::oci::media;
use nydus_host_registry::{Credentials, Registry, RegistryOptions};

/// `linux/<host arch>` in OCI names.
pub fn host_platform() -> Platform {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    Platform {
        os: "linux".into(),
        architecture: arch.into(),
        ..Default::default()
    }
}

/// Whether an index entry is marked as a Nydus manifest (either marker of §5).
pub fn is_nydus_entry(d: &Descriptor) -> bool {
    d.artifact_type.as_deref() == Some(media::NYDUS_MANIFEST_ARTIFACT)
        || d.platform.as_ref().is_some_and(|p| {
            p.os_features
                .iter()
                .any(|f| f == annotation::NYDUS_OS_FEATURE)
        })
}

/// A client of `host` with credentials from the Docker config.
pub fn registry_for(
    host: &str,
    insecure: bool,
    plain_http: bool,
    retries: u32,
    retry_delay: Duration,
    chunk_size: u64,
) -> Result<Registry> {
    Ok(Registry::new(
        host,
        RegistryOptions {
            plain_http,
            insecure,
            credentials: Credentials::from_docker_config(host, None)?,
            retries,
            retry_delay,
            chunk_size,
            ..Default::default()
        },
    )?)
}
