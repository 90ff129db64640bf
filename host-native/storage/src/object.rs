//! The S3 and OSS backends: one [`ObjectClient`] per bucket signs requests (SigV4 path-style
//! for S3; OSS V4 or V1, virtual-hosted) and sends them through [`crate::http`]. Blobs are read
//! with HEAD (size, existence) and ranged GETs ([`ObjectBlob`], a [`BlobStore`]);
//! [`ObjectBackend`] resolves a bootstrap's blob ids to `{object_prefix}{id}`. Uploads are in
//! [`crate::upload`].

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use nydus_core::read::exec::BlobLayout;
use reqwest::blocking::{Client, RequestBuilder, Response};

use crate::config::{HttpOptions, OssConfig, OssSignature, S3Config};
use crate::http::{describe_failure, Http, Outcome};
use crate::local::{Backend, OpenBlob};
use crate::sign::{oss, sigv4, Credentials, Method, Payload, Request, Timestamp};
use crate::store::{BlobStore, StoreError, StoreErrorKind};

/// How a bucket is addressed and signed.
#[derive(Debug, Clone)]
enum Flavor {
    S3(sigv4::Bucket),
    Oss(oss::Bucket, OssSignature),
}

/// A bucket: requests signed and sent, with retries.
#[derive(Debug, Clone)]
pub struct ObjectClient {
    flavor: Flavor,
    credentials: Option<Credentials>,
    pub(crate) http: Http,
    /// Blobs are at `{object_prefix}{id}`.
    pub object_prefix: String,
    /// Bootstraps (`pack`) are at `{meta_prefix}{name}`.
    pub meta_prefix: String,
    /// Bytes of a multipart part, and the single-PUT threshold.
    pub part_size: u64,
}

/// What a HEAD said about an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectInfo {
    pub size: u64,
    /// `x-oss-hash-crc64ecma` (OSS).
    pub crc64: Option<u64>,
}

impl ObjectClient {
    /// An S3 bucket.
    pub fn s3(c: &S3Config) -> Result<ObjectClient, String> {
        Ok(ObjectClient {
            flavor: Flavor::S3(sigv4::Bucket::new(
                c.scheme,
                c.endpoint.clone(),
                c.region.clone(),
                c.bucket_name.clone(),
            )),
            credentials: c.credentials.clone(),
            http: Http::new(&c.http, Vec::new())?,
            object_prefix: c.object_prefix.clone(),
            meta_prefix: c.meta_prefix.clone(),
            part_size: c.part_size,
        })
    }

    /// An OSS bucket. A bucket on a `localhost` endpoint (a test server) is reached at
    /// `{bucket}.localhost:port`, pinned to the loopback address (RFC 6761).
    pub fn oss(c: &OssConfig) -> Result<ObjectClient, String> {
        let mut bucket = oss::Bucket::new(c.scheme, c.endpoint.clone(), c.bucket_name.clone());
        if let Some(r) = &c.region {
            bucket = bucket.with_region(r.clone());
        }
        let resolve = loopback_pins(&bucket.host(), c.scheme.default_port(), &c.http);
        Ok(ObjectClient {
            flavor: Flavor::Oss(bucket, c.signature),
            credentials: c.credentials.clone(),
            http: Http::new(&c.http, resolve)?,
            object_prefix: c.object_prefix.clone(),
            meta_prefix: c.meta_prefix.clone(),
            part_size: c.part_size,
        })
    }

    /// The key of blob `id`.
    pub fn blob_key(&self, id: &str) -> String {
        format!("{}{id}", self.object_prefix)
    }

    /// How messages name object `key`: its URL (no credentials in it).
    pub fn describe(&self, key: &str) -> String {
        self.request(Method::Get, key).url()
    }

    /// An unsigned request on object `key` (`""`: the bucket).
    pub fn request(&self, method: Method, key: &str) -> Request {
        match &self.flavor {
            Flavor::S3(b) if key.is_empty() => b.bucket(method),
            Flavor::S3(b) => b.object(method, key),
            Flavor::Oss(b, _) => b.object(method, key),
        }
    }

    /// `req` with its signature headers, signed now (as is without credentials).
    pub fn sign(&self, req: Request) -> Result<Request, StoreError> {
        let Some(creds) = &self.credentials else {
            return Ok(req);
        };
        let at = Timestamp::from(SystemTime::now());
        let signed = match &self.flavor {
            Flavor::S3(b) => b.sign(&req, creds, at),
            Flavor::Oss(b, OssSignature::V1) => b.sign_v1(&req, creds, at),
            Flavor::Oss(b, OssSignature::V4) => {
                b.sign_v4(&req, creds, at, &[]).map_err(|e| StoreError {
                    blob: req.url(),
                    offset: 0,
                    len: 0,
                    kind: StoreErrorKind::Failed,
                    message: e.to_string(),
                })?
            }
        };
        Ok(req.with_signed(&signed))
    }

    /// A reqwest request for the signed `req`.
    pub(crate) fn builder(client: &Client, req: &Request) -> RequestBuilder {
        let method = match req.method {
            Method::Get => reqwest::Method::GET,
            Method::Head => reqwest::Method::HEAD,
            Method::Put => reqwest::Method::PUT,
            Method::Post => reqwest::Method::POST,
            Method::Delete => reqwest::Method::DELETE,
        };
        let mut b = client.request(method, req.url());
        for (n, v) in &req.headers {
            // The client sends `Host` from the URL: the same value the signers signed.
            if !n.eq_ignore_ascii_case("host") {
                b = b.header(n.as_str(), v.as_str());
            }
        }
        b
    }

    /// The bucket's name.
    pub(crate) fn bucket_name(&self) -> &str {
        match &self.flavor {
            Flavor::S3(b) => &b.name,
            Flavor::Oss(b, _) => &b.name,
        }
    }

    /// Whether S3 wants the payload hashed: SigV4 signs `x-amz-content-sha256`.
    pub(crate) fn is_s3(&self) -> bool {
        matches!(self.flavor, Flavor::S3(_))
    }

    /// HEAD of `key`: `None` if it does not exist.
    pub fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StoreError> {
        let shown = self.describe(key);
        let err = |kind, message| StoreError {
            blob: shown.clone(),
            offset: 0,
            len: 0,
            kind,
            message,
        };
        let timeout = self.http.opts.timeout;
        self.http.run(
            true,
            &|c| {
                let req = self.sign(self.request(Method::Head, key))?;
                Ok(Self::builder(c, &req).timeout(timeout))
            },
            &mut |resp: Response| {
                let status = resp.status().as_u16();
                if status == 404 {
                    return Outcome::Done(None);
                }
                if !resp.status().is_success() {
                    let (kind, m) = describe_failure(resp);
                    return Outcome::Fail(err(kind, m));
                }
                let header = |n: &str| {
                    resp.headers()
                        .get(n)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                };
                match header("content-length") {
                    Some(size) => Outcome::Done(Some(ObjectInfo {
                        size,
                        crc64: header("x-oss-hash-crc64ecma"),
                    })),
                    None => Outcome::Fail(err(
                        StoreErrorKind::Failed,
                        "HEAD answered without a Content-Length".into(),
                    )),
                }
            },
            &err,
        )
    }

    /// Fills `buf` from `key` at `offset` with a ranged GET.
    pub fn get_range(&self, key: &str, offset: u64, buf: &mut [u8]) -> Result<(), StoreError> {
        let len = buf.len() as u64;
        if len == 0 {
            return Ok(());
        }
        let shown = self.describe(key);
        let err = |kind, message| StoreError {
            blob: shown.clone(),
            offset,
            len,
            kind,
            message,
        };
        let range = format!("bytes={offset}-{}", offset + len - 1);
        // Reads are small (a batch of chunks): `timeout`, plus time for big ones at 1 MiB/s.
        let timeout = self.http.opts.timeout + Duration::from_secs(len >> 20);
        self.http.run(
            true,
            &|c| {
                let req = self.sign(self.request(Method::Get, key).with_header("range", &range))?;
                Ok(Self::builder(c, &req).timeout(timeout))
            },
            &mut |mut resp: Response| {
                let status = resp.status().as_u16();
                if !resp.status().is_success() {
                    let (kind, m) = describe_failure(resp);
                    return Outcome::Fail(err(kind, m));
                }
                if status != 206 && !(status == 200 && offset == 0) {
                    return Outcome::Fail(err(
                        StoreErrorKind::Failed,
                        format!("a ranged GET answered HTTP {status}"),
                    ));
                }
                if let Some(n) = resp.content_length() {
                    if n < len {
                        return Outcome::Fail(err(
                            StoreErrorKind::Short,
                            format!("the object has no bytes there (answered {n} bytes)"),
                        ));
                    }
                }
                match std::io::Read::read_exact(&mut resp, buf) {
                    Ok(()) => Outcome::Done(()),
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Outcome::Fail(err(
                        StoreErrorKind::Transient,
                        "the answer was cut short".into(),
                    )),
                    Err(e) => Outcome::Fail(err(
                        StoreErrorKind::Transient,
                        format!("reading the answer: {e}"),
                    )),
                }
            },
            &err,
        )
    }

    /// Deletes `key` (absent is fine).
    pub fn delete(&self, key: &str) -> Result<(), StoreError> {
        let shown = self.describe(key);
        let err = |kind, message| StoreError {
            blob: shown.clone(),
            offset: 0,
            len: 0,
            kind,
            message,
        };
        let timeout = self.http.opts.timeout;
        self.http.run(
            false,
            &|c| {
                let req = self.sign(self.request(Method::Delete, key))?;
                Ok(Self::builder(c, &req).timeout(timeout))
            },
            &mut |resp: Response| {
                if resp.status().is_success() || resp.status().as_u16() == 404 {
                    Outcome::Done(())
                } else {
                    let (kind, m) = describe_failure(resp);
                    Outcome::Fail(err(kind, m))
                }
            },
            &err,
        )
    }

    /// A signed request with a body whose sha256 S3 signs (OSS sends `UNSIGNED-PAYLOAD`).
    pub(crate) fn with_body(&self, req: Request, body: &[u8]) -> Request {
        if self.is_s3() {
            req.with_payload(Payload::of(body))
        } else {
            req
        }
    }
}

/// Host pins for a bucket host under `localhost` (`nydus.localhost:9000`): the loopback
/// address, whatever the system resolver says about subdomains of `localhost`.
fn loopback_pins(host: &str, default_port: u16, _http: &HttpOptions) -> Vec<(String, SocketAddr)> {
    let (name, port) = match host.rsplit_once(':') {
        Some((n, p)) if !n.ends_with(']') && !n.contains(':') => {
            (n, p.parse().unwrap_or(default_port))
        }
        _ => (host, default_port),
    };
    if name.ends_with(".localhost") {
        if let Ok(mut a) = ("127.0.0.1", port).to_socket_addrs() {
            if let Some(a) = a.next() {
                return vec![(name.to_string(), a)];
            }
        }
    }
    Vec::new()
}

/// One blob in a bucket, read by range.
#[derive(Debug)]
pub struct ObjectBlob {
    client: Arc<ObjectClient>,
    key: String,
    size: OnceLock<u64>,
}

impl ObjectBlob {
    pub fn new(client: Arc<ObjectClient>, key: String) -> Self {
        ObjectBlob {
            client,
            key,
            size: OnceLock::new(),
        }
    }
}

impl BlobStore for ObjectBlob {
    fn describe(&self) -> String {
        self.client.describe(&self.key)
    }
    fn size(&self) -> Result<u64, StoreError> {
        if let Some(s) = self.size.get() {
            return Ok(*s);
        }
        match self.client.head(&self.key)? {
            Some(i) => Ok(*self.size.get_or_init(|| i.size)),
            None => Err(StoreError {
                blob: self.describe(),
                offset: 0,
                len: 0,
                kind: StoreErrorKind::NotFound,
                message: "no such object".into(),
            }),
        }
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), StoreError> {
        if let Some(&size) = self.size.get() {
            let len = buf.len() as u64;
            if offset.checked_add(len).is_none_or(|e| e > size) {
                return Err(StoreError {
                    blob: self.describe(),
                    offset,
                    len,
                    kind: StoreErrorKind::Short,
                    message: format!("the object has only {size} bytes"),
                });
            }
        }
        self.client.get_range(&self.key, offset, buf)
    }
    fn exists(&self) -> Result<bool, StoreError> {
        Ok(self.client.head(&self.key)?.is_some())
    }
}

/// A bucket as a backend: blob `id` is the object `{object_prefix}{id}`.
#[derive(Debug, Clone)]
pub struct ObjectBackend {
    pub client: Arc<ObjectClient>,
}

impl Backend for ObjectBackend {
    fn open(&self, id: &str, _index: u32, _count: usize) -> Result<OpenBlob, StoreError> {
        if id.is_empty()
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err(StoreError {
                blob: id.to_string(),
                offset: 0,
                len: 0,
                kind: StoreErrorKind::NotFound,
                message: "a blob id that is not an object name".into(),
            });
        }
        let key = self.client.blob_key(id);
        let blob = ObjectBlob::new(self.client.clone(), key);
        // The size now: a missing blob fails here, naming its URL.
        blob.size()?;
        Ok(OpenBlob {
            store: Arc::new(blob),
            layout: BlobLayout::Stored,
        })
    }

    fn describe(&self) -> String {
        let url = self.client.describe("");
        url.trim_end_matches('/').to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn localhost_buckets_are_pinned_to_loopback() {
        let h = HttpOptions::default();
        let p = loopback_pins("nydus.localhost:9000", 80, &h);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].0, "nydus.localhost");
        assert_eq!(p[0].1.port(), 9000);
        assert!(p[0].1.ip().is_loopback());
        assert!(loopback_pins("nydus.oss-cn-hangzhou.aliyuncs.com", 443, &h).is_empty());
    }
}
