//! Where built blobs (and, for `pack --backend-push`, bootstraps) are pushed: a localfs
//! directory, an S3 or OSS bucket (`nydus_host_storage::upload`), or a registry repository by
//! digest. One value for every command that writes to a backend: `nydus-image create`,
//! `nydusify convert`, `pack`, `copy`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use nydus_host_image::create::BlobSink;
use nydus_host_registry::Registry;
use nydus_host_storage::config::{BackendConfig, LocalBlobs, RegistryConfig};
use nydus_host_storage::object::ObjectClient;
use nydus_host_storage::object_client;
use nydus_host_storage::upload_stream::{StreamFeed, StreamUpload};

use crate::store::copy_verified;

/// A backend to push to.
#[derive(Debug, Clone)]
pub enum BlobDest {
    /// A localfs directory: blobs named by id.
    Dir(PathBuf),
    /// An S3 or OSS bucket: blobs at `{object_prefix}{id}`, bootstraps at `{meta_prefix}{name}`.
    Bucket(Arc<ObjectClient>),
    /// A registry repository: blobs by digest.
    Registry(Box<RegistryConfig>),
}

/// What a push did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// Where it went (a path or URL, no credentials).
    pub location: String,
    /// It was there already.
    pub skipped: bool,
}

impl BlobDest {
    /// The destination of a backend configuration (a localfs one needs `dir`).
    pub fn new(c: &BackendConfig) -> Result<BlobDest> {
        Ok(match c {
            BackendConfig::Localfs { blobs, .. } => match blobs {
                LocalBlobs::Dir(d) => BlobDest::Dir(d.clone()),
                LocalBlobs::File(_) => {
                    bail!("a localfs backend to push to needs \"dir\", not \"blob_file\"")
                }
            },
            BackendConfig::Registry(r) => {
                // Refused keys fail here, before any work.
                nydus_host_storage::registry_options(r)?;
                BlobDest::Registry(Box::new(r.clone()))
            }
            other => BlobDest::Bucket(object_client(other)?.context("an object store")?),
        })
    }

    /// Where the destination is, for messages.
    pub fn describe(&self) -> String {
        match self {
            BlobDest::Dir(d) => d.display().to_string(),
            BlobDest::Bucket(c) => c.describe(""),
            BlobDest::Registry(r) => format!("{}/{}", r.host, r.repo),
        }
    }

    /// Pushes blob `id` (its SHA-256 hex, the file `path`); skipped when the backend has it,
    /// unless `force`. Blocking: async callers run it with `spawn_blocking`.
    pub fn push_blob(&self, id: &str, path: &Path, force: bool) -> Result<Pushed> {
        match self {
            BlobDest::Dir(d) => {
                let dest = d.join(id);
                if !force && dest.is_file() {
                    return Ok(Pushed {
                        location: dest.display().to_string(),
                        skipped: true,
                    });
                }
                std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
                copy_verified(path, &dest, &format!("sha256:{id}"))?;
                Ok(Pushed {
                    location: dest.display().to_string(),
                    skipped: false,
                })
            }
            BlobDest::Bucket(c) => {
                let key = c.blob_key(id);
                let up = c.upload_file(&key, path, force)?;
                Ok(Pushed {
                    location: c.describe(&up.key),
                    skipped: up.skipped,
                })
            }
            BlobDest::Registry(r) => push_to_registry(r, id, path),
        }
    }

    /// Pushes a bootstrap file as `{meta_prefix}{name}` (buckets) or `{dir}/{name}` (localfs).
    /// For a bucket: an upload that goes up while the blob built from `what` (a stable name
    /// of the build) is built, and the sink the build feeds (`None` for other destinations:
    /// they take the finished file).
    pub fn streamed(&self, what: &str) -> Option<(Streamed, Box<dyn BlobSink>)> {
        match self {
            BlobDest::Bucket(c) => {
                let (upload, feed) = c.stream_upload(what);
                Some((
                    Streamed {
                        client: c.clone(),
                        upload,
                    },
                    Box::new(BucketSink(feed)),
                ))
            }
            _ => None,
        }
    }

    pub fn push_meta(&self, name: &str, path: &Path, force: bool) -> Result<Pushed> {
        match self {
            BlobDest::Dir(d) => {
                std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
                let dest = d.join(name);
                let bytes =
                    std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
                nydus_host_storage::atomic::write_file(&dest, &bytes)?;
                Ok(Pushed {
                    location: dest.display().to_string(),
                    skipped: false,
                })
            }
            BlobDest::Bucket(c) => {
                let key = format!("{}{name}", c.meta_prefix);
                let up = c.upload_file(&key, path, force)?;
                Ok(Pushed {
                    location: c.describe(&up.key),
                    skipped: up.skipped,
                })
            }
            BlobDest::Registry(_) => {
                bail!(
                    "a bootstrap cannot be pushed to a registry backend on its own (push an image)"
                )
            }
        }
    }
}

/// The registry client of a registry backend configuration.
/// A blob upload streamed into a bucket while the blob is built.
#[derive(Debug)]
pub struct Streamed {
    client: Arc<ObjectClient>,
    upload: StreamUpload,
}

impl Streamed {
    /// The blob is built: the upload finished under its key. `None` when nothing was
    /// streamed (a blob under one part) or streaming failed (logged; nothing is left in the
    /// bucket): the caller pushes the finished file.
    pub fn finish(self, id: &str, size: u64, force: bool) -> Option<Pushed> {
        let key = self.client.blob_key(id);
        match self.upload.finish(&key, size, force) {
            Ok(Some(up)) => Some(Pushed {
                location: self.client.describe(&up.key),
                skipped: up.skipped,
            }),
            Ok(None) => None,
            Err(e) => {
                log::warn!("streaming blob sha256:{id} failed ({e}); uploading it as a whole");
                None
            }
        }
    }
}

/// The builder's blob bytes, told to a streamed bucket upload (which reads them back from the
/// blob file).
struct BucketSink(StreamFeed);

impl BlobSink for BucketSink {
    fn write(&mut self, bytes: &[u8]) {
        self.0.wrote(bytes.len());
    }

    fn spool(&mut self, file: &std::fs::File) {
        self.0.spool(file);
    }
}

pub fn registry_client(r: &RegistryConfig) -> Result<Registry> {
    Ok(Registry::new(
        &r.host,
        nydus_host_storage::registry_options(r)?,
    )?)
}

fn push_to_registry(r: &RegistryConfig, id: &str, path: &Path) -> Result<Pushed> {
    let reg = registry_client(r)?;
    let digest = format!("sha256:{id}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let had = rt.block_on(reg.blob_size(&r.repo, &digest))?.is_some();
    if !had {
        rt.block_on(reg.push_blob_file(&r.repo, &digest, path))?;
    }
    Ok(Pushed {
        location: format!("{}/{}@{digest}", r.host, r.repo),
        skipped: had,
    })
}
