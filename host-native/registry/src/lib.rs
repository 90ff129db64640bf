//! An OCI distribution-spec registry client (reqwest + tokio): manifests and blobs, pulled
//! streaming and verified by digest, pushed monolithically or in chunks (resuming a failed
//! chunk from the registry's upload status), skipped when present, mounted across
//! repositories. Authentication: anonymous, basic, and the bearer-token flow, with
//! credentials given or read from a Docker `config.json`, or a bearer token given as is. TLS
//! with a custom CA, or verification off (`--*-insecure`), or plain HTTP; an HTTP proxy (with
//! fallback to the registry when it is down); blob redirects sent to another host.
//!
//! Every failure is a [`RegistryError`] whose [`ErrorKind`] decides retries: transient ones
//! (5xx, dropped connections) are retried with backoff, authentication, not-found and
//! protocol failures (TLS, unexpected answers) are not. Credentials never appear in errors
//! or log lines. This crate depends on no other host crate.

mod auth;
mod client;
mod error;
mod upload;

pub use auth::{BearerToken, Credentials};
pub use client::{ProxyOptions, Registry, RegistryOptions};
pub use error::{chain as error_chain, ErrorKind, RegistryError, Result};

use nydus_core::oci::media;

/// Whether a manifest media type is one this client accepts.
pub fn is_known_manifest_type(mt: &str) -> bool {
    [
        media::OCI_MANIFEST,
        media::OCI_INDEX,
        media::DOCKER_MANIFEST,
        media::DOCKER_LIST,
    ]
    .contains(&mt)
}
