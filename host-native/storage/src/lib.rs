//! Where the bytes of images live for the native hosts, and the one way they are read back.
//!
//! - [`store`]: [`store::BlobStore`], one blob's bytes served by range from any thread (local
//!   files now; the S3, OSS and registry backends implement the same trait).
//! - [`local`]: [`local::Backend`] resolves a bootstrap's blob table to stores;
//!   [`local::Localfs`] is the localfs backend (a directory, extra directories, one file).
//! - [`reader`]: [`reader::ChunkReader`] carries out the core's read plans from many threads:
//!   merged range reads, every chunk verified before use, one fetch per chunk however many
//!   threads want it, an in-memory and an on-disk cache ([`blobcache`], upstream's layout).
//! - [`registry`]: [`registry::RegistryBackend`], blobs read by `Range` from a registry
//!   repository.
//! - [`ahead`]: many plans read in order on all cores (unpack, check, `nydusify check`).
//! - [`open`]: opening images (a bootstrap file read by range through [`cached`], or one
//!   inlined in a blob); [`source`]: local files as the core's byte sources; [`atomic`]:
//!   outputs that appear only when complete; [`config`]: the one backend configuration every
//!   `--backend-*` option is parsed into; [`sign`]: request signing for the object stores.
//! - [`open_backend`]: a backend configuration opened for reading, whatever its type (the
//!   one call every reader uses: check, unpack, inspect, nydusify check, the mount):
//!   localfs, S3, OSS and registry configurations.
//! - [`object`]: the S3 and OSS backends (HEAD and ranged GETs, signed; [`http`]: shared
//!   blocking clients, retries, a proxy with fallback); [`upload`]: files put into a bucket,
//!   multipart above the part size, parallel, aborted on failure.

pub mod ahead;
pub mod atomic;
pub mod blobcache;
pub mod cached;
pub mod config;
pub mod http;
pub mod local;
pub mod object;
pub mod open;
pub mod reader;
pub mod registry;
pub mod sign;
pub mod source;
pub mod store;
pub mod upload;
pub mod upload_stream;

pub use config::BackendConfig;
pub use local::Localfs;
pub use open::{open_image, Image};
pub use reader::{ChunkReader, ReaderOptions};
pub use registry::RegistryBackend;
pub use source::FileSource;

use std::sync::Arc;

use config::{LocalBlobs, RegistryConfig};
use local::Backend;
use nydus_host_registry::{BearerToken, Credentials, ProxyOptions, RegistryOptions};
use object::{ObjectBackend, ObjectClient};

/// The registry client's options for a registry backend configuration: `auth`,
/// `registry_token` (a bearer token sent as is), `proxy` (every request through it, straight
/// to the registry when it is down and `fallback`), `blob_redirected_host`, TLS options,
/// retries, `connect_timeout` and `timeout` (each blob read by range and size lookup; plus a
/// second per MiB read, as the object stores' reads).
pub fn registry_options(r: &RegistryConfig) -> anyhow::Result<RegistryOptions> {
    if r.ca_cert_files.len() > 1 {
        anyhow::bail!("registry backend: \"ca_cert_files\" takes one certificate file here");
    }
    Ok(RegistryOptions {
        plain_http: r.scheme == sign::Scheme::Http,
        insecure: r.http.skip_verify,
        ca_cert: r.ca_cert_files.first().cloned(),
        credentials: r.auth.as_ref().map(|(user, pass)| Credentials {
            username: user.clone(),
            password: pass.expose().to_string(),
        }),
        retries: r.http.retry_limit,
        token: r
            .registry_token
            .as_ref()
            .map(|t| BearerToken(t.expose().to_string())),
        proxy: r.http.proxy.as_ref().map(|p| ProxyOptions {
            url: p.url.clone(),
            fallback: p.fallback,
        }),
        blob_redirected_host: r.blob_redirected_host.clone(),
        connect_timeout: r.http.connect_timeout,
        read_timeout: Some(r.http.timeout),
        ..Default::default()
    })
}

/// Opens a backend configuration for reading blobs: localfs directories (which must exist),
/// an S3 or OSS bucket, or a registry repository ([`RegistryBackend`], by digest). Nothing is sent yet: blobs are looked up when opened, and their bytes read by
/// range as the chunk reader asks. A `proxy` in the configuration is used for reads, with
/// fallback to the backend itself when the proxy is down (if `fallback`).
pub fn open_backend(c: &BackendConfig) -> anyhow::Result<Arc<dyn Backend>> {
    Ok(match c {
        BackendConfig::Localfs { blobs, alt_dirs } => {
            let (file, dir) = match blobs {
                LocalBlobs::Dir(d) => (None, Some(d.clone())),
                LocalBlobs::File(f) => (Some(f.clone()), None),
            };
            Arc::new(Localfs::new(file, dir, alt_dirs.clone())?)
        }
        BackendConfig::S3(s) => Arc::new(ObjectBackend {
            client: Arc::new(ObjectClient::s3(s).map_err(anyhow::Error::msg)?),
        }),
        BackendConfig::Oss(o) => Arc::new(ObjectBackend {
            client: Arc::new(ObjectClient::oss(o).map_err(anyhow::Error::msg)?),
        }),
        BackendConfig::Registry(r) => Arc::new(RegistryBackend::new(
            &r.host,
            &r.repo,
            registry_options(r)?,
        )?),
    })
}

/// The bucket client of an S3 or OSS configuration (`None` for other types): for uploads.
pub fn object_client(c: &BackendConfig) -> anyhow::Result<Option<Arc<ObjectClient>>> {
    Ok(match c {
        BackendConfig::S3(s) => Some(Arc::new(ObjectClient::s3(s).map_err(anyhow::Error::msg)?)),
        BackendConfig::Oss(o) => Some(Arc::new(ObjectClient::oss(o).map_err(anyhow::Error::msg)?)),
        _ => None,
    })
}

#[cfg(test)]
pub(crate) mod testimg {
    //! An image built in memory, its blob written to a directory, for the tests of this crate.

    use std::path::PathBuf;

    use nydus_core::memimage::{build, MemEntry, MemOptions};
    use nydus_core::model::{BlobInfo, Compressor};
    use nydus_core::rafs::Rafs;

    pub const CS: u32 = 0x1000;

    /// Distinct bytes for file `seed`.
    pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| ((i as u32).wrapping_mul(2654435761) >> 13) as u8 ^ seed)
            .collect()
    }

    pub struct Img {
        pub dir: tempfile::TempDir,
        pub boot: Rafs<Vec<u8>>,
        pub blobs: Vec<BlobInfo>,
        pub files: Vec<(String, Vec<u8>)>,
        pub blob_path: PathBuf,
    }

    /// Files `/f0`..: sizes given, chunk size 4 KiB, zstd.
    pub fn image(sizes: &[usize]) -> Img {
        let mut entries = vec![MemEntry::dir(b"/")];
        let mut files = Vec::new();
        for (i, &n) in sizes.iter().enumerate() {
            let p = format!("/f{i:03}");
            let d = pattern(n, i as u8);
            entries.push(MemEntry::file(p.as_bytes(), d.clone()));
            files.push((p, d));
        }
        let img = build(
            &entries,
            &MemOptions {
                chunk_size: CS,
                compressor: Compressor::Zstd,
                ..Default::default()
            },
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let blob_path = dir.path().join(&img.blob_info.blob_id);
        std::fs::write(&blob_path, &img.blob).unwrap();
        let boot = Rafs::open(img.bootstrap).unwrap();
        let blobs = nydus_core::read::Filesystem::blobs(&boot).to_vec();
        Img {
            dir,
            boot,
            blobs,
            files,
            blob_path,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn options(config: &str) -> RegistryOptions {
        let v = serde_json::from_str(config).unwrap();
        let BackendConfig::Registry(r) = config::parse_value("registry", &v, None).unwrap() else {
            panic!("not a registry configuration")
        };
        registry_options(&r).unwrap()
    }

    #[test]
    fn registry_timeouts_reach_the_client() {
        let o = options(
            r#"{"host":"r:5000","repo":"a/b","timeout":7,"connect_timeout":3,"retry_limit":1}"#,
        );
        assert_eq!(o.connect_timeout, Duration::from_secs(3));
        assert_eq!(o.read_timeout, Some(Duration::from_secs(7)));
        assert_eq!(o.retries, 1);
        // Left out (or 0): 5 seconds each.
        for c in [
            r#"{"host":"r:5000","repo":"a/b"}"#,
            r#"{"host":"r:5000","repo":"a/b","timeout":0,"connect_timeout":0}"#,
        ] {
            let o = options(c);
            assert_eq!(o.connect_timeout, Duration::from_secs(5), "{c}");
            assert_eq!(o.read_timeout, Some(Duration::from_secs(5)), "{c}");
        }
    }
}
