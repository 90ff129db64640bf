//! An OCI distribution-spec registry client (reqwest + tokio): manifests and blobs, pulled
//! streaming and verified by digest, pushed monolithically or in chunks (resuming a failed
//! chunk from the registry's upload status), skipped when present, mounted across
//! repositories. Authentication: anonymous, basic, and the bearer-token flow, with
//! credentials given or read from a Docker `config.json`. TLS with a custom CA, or
//! verification off (`--*-insecure`), or plain HTTP. Credentials never appear in errors.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine;
use bytes::Bytes;
use futures_util::StreamExt;
use nydus_core::digest::Sha256Stream;
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWrite, AsyncWriteExt};

use nydus_core::oci::media;

/// User name and password for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Credentials {{ username: {:?}, password: <redacted> }}",
            self.username
        )
    }
}

impl Credentials {
    /// The credentials a Docker `config.json` (`$DOCKER_CONFIG/config.json`, else
    /// `~/.docker/config.json`, or `path`) holds for `host` (`auths.<host>.auth`, base64 of
    /// `user:password`, or `username`/`password`).
    pub fn from_docker_config(host: &str, path: Option<&Path>) -> Result<Option<Credentials>> {
        let path: PathBuf = match path {
            Some(p) => p.to_path_buf(),
            None => match std::env::var_os("DOCKER_CONFIG") {
                Some(d) => PathBuf::from(d).join("config.json"),
                None => match std::env::var_os("HOME") {
                    Some(h) => PathBuf::from(h).join(".docker/config.json"),
                    None => return Ok(None),
                },
            },
        };
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let v: serde_json::Value = serde_json::from_slice(&text)
            .with_context(|| format!("{}: not JSON", path.display()))?;
        let auths = v.get("auths").and_then(|a| a.as_object());
        let Some(entry) = auths.and_then(|a| {
            a.iter()
                .find(|(k, _)| {
                    let k = k
                        .trim_start_matches("https://")
                        .trim_start_matches("http://");
                    k.trim_end_matches('/') == host
                })
                .map(|(_, v)| v)
        }) else {
            return Ok(None);
        };
        if let Some(a) = entry.get("auth").and_then(|a| a.as_str()) {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(a)
                .with_context(|| format!("{}: auths.{host}.auth is not base64", path.display()))?;
            let s = String::from_utf8(raw)
                .with_context(|| format!("{}: auths.{host}.auth is not UTF-8", path.display()))?;
            let (u, p) = s.split_once(':').with_context(|| {
                format!("{}: auths.{host}.auth is not user:password", path.display())
            })?;
            return Ok(Some(Credentials {
                username: u.into(),
                password: p.into(),
            }));
        }
        match (
            entry.get("username").and_then(|x| x.as_str()),
            entry.get("password").and_then(|x| x.as_str()),
        ) {
            (Some(u), Some(p)) => Ok(Some(Credentials {
                username: u.into(),
                password: p.into(),
            })),
            _ => Ok(None),
        }
    }
}

/// How to reach one registry.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Speak HTTP instead of HTTPS.
    pub plain_http: bool,
    /// Do not verify the TLS certificate.
    pub insecure: bool,
    /// Extra CA certificate (PEM) to trust.
    pub ca_cert: Option<PathBuf>,
    pub credentials: Option<Credentials>,
    /// Attempts after the first for a failed request or upload chunk.
    pub retries: u32,
    pub retry_delay: Duration,
    /// Upload blobs larger than this in chunks of this size (0: one PUT).
    pub chunk_size: u64,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            plain_http: false,
            insecure: false,
            ca_cert: None,
            credentials: None,
            retries: 3,
            retry_delay: Duration::from_millis(500),
            chunk_size: 0,
        }
    }
}

/// A client of one registry host.
#[derive(Debug)]
pub struct Registry {
    http: reqwest::Client,
    base: String,
    host: String,
    opts: RegistryOptions,
    /// Bearer tokens by scope.
    tokens: Mutex<HashMap<String, String>>,
}

/// What `WWW-Authenticate` asks for.
#[derive(Debug, PartialEq, Eq)]
enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

fn parse_challenge(h: &str) -> Option<Challenge> {
    let (scheme, rest) = h.trim().split_once(' ').unwrap_or((h.trim(), ""));
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Some(Challenge::Basic),
        "bearer" => {
            let mut realm = None;
            let mut service = None;
            for part in rest.split(',') {
                let Some((k, v)) = part.trim().split_once('=') else {
                    continue;
                };
                let v = v.trim().trim_matches('"').to_string();
                match k.trim() {
                    "realm" => realm = Some(v),
                    "service" => service = Some(v),
                    _ => {}
                }
            }
            Some(Challenge::Bearer {
                realm: realm?,
                service,
            })
        }
        _ => None,
    }
}

const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
    application/vnd.oci.image.index.v1+json, \
    application/vnd.docker.distribution.manifest.v2+json, \
    application/vnd.docker.distribution.manifest.list.v2+json";

impl Registry {
    pub fn new(host: &str, opts: RegistryOptions) -> Result<Registry> {
        let mut b = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .danger_accept_invalid_certs(opts.insecure);
        if let Some(ca) = &opts.ca_cert {
            let pem = std::fs::read(ca).with_context(|| format!("reading {}", ca.display()))?;
            let cert = reqwest::Certificate::from_pem(&pem)
                .with_context(|| format!("{}: not a PEM certificate", ca.display()))?;
            b = b.add_root_certificate(cert);
        }
        let http = b.build().context("setting up the HTTP client")?;
        let scheme = if opts.plain_http { "http" } else { "https" };
        Ok(Registry {
            http,
            base: format!("{scheme}://{host}"),
            host: host.to_string(),
            opts,
            tokens: Mutex::new(HashMap::new()),
        })
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// Attempts after the first for failed requests.
    pub fn retries(&self) -> u32 {
        self.opts.retries
    }

    fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_string()
        } else {
            format!("{}{path}", self.base)
        }
    }

    async fn token(&self, realm: &str, service: Option<&str>, scope: &str) -> Result<String> {
        let mut req = self.http.get(realm).query(&[("scope", scope)]);
        if let Some(s) = service {
            req = req.query(&[("service", s)]);
        }
        if let Some(c) = &self.opts.credentials {
            req = req.basic_auth(&c.username, Some(&c.password));
        }
        let resp = req
            .send()
            .await
            .map_err(|e| anyhow!("{}: token request failed: {}", self.host, describe(e)))?;
        if !resp.status().is_success() {
            bail!(
                "{}: the token service refused {} (HTTP {}){}",
                self.host,
                scope,
                resp.status(),
                if self.opts.credentials.is_some() {
                    ": check the credentials"
                } else {
                    ": credentials are needed"
                }
            );
        }
        let body = resp
            .bytes()
            .await
            .map_err(|e| anyhow!("{}: token response: {}", self.host, describe(e)))?;
        let v: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| anyhow!("{}: token response is not JSON: {e}", self.host))?;
        v.get("token")
            .or_else(|| v.get("access_token"))
            .and_then(|t| t.as_str())
            .map(str::to_string)
            .ok_or_else(|| anyhow!("{}: the token response has no token", self.host))
    }

    /// Sends a request built by `make`, authenticating on a 401 and retrying transport errors
    /// and 5xx answers (`retries` times, with backoff) when `retry` is set.
    async fn send(
        &self,
        scope: &str,
        retry: bool,
        make: &(dyn Fn() -> RequestBuilder + Sync),
    ) -> Result<Response> {
        let mut attempt = 0u32;
        let mut authed_basic = false;
        loop {
            let mut req = make();
            if let Some(t) = self.tokens.lock().expect("token lock").get(scope) {
                req = req.bearer_auth(t);
            } else if authed_basic {
                if let Some(c) = &self.opts.credentials {
                    req = req.basic_auth(&c.username, Some(&c.password));
                }
            }
            let result = req.send().await;
            let resp = match result {
                Ok(r) => r,
                Err(e) if retry && attempt < self.opts.retries && is_transient(&e) => {
                    attempt += 1;
                    crate::log::warn(&format!("{}: {} (retry {attempt})", self.host, describe(e)));
                    tokio::time::sleep(self.opts.retry_delay * attempt).await;
                    continue;
                }
                Err(e) => bail!("{}: request failed: {}", self.host, describe(e)),
            };
            if resp.status() == StatusCode::UNAUTHORIZED {
                let challenge = resp
                    .headers()
                    .get("www-authenticate")
                    .and_then(|h| h.to_str().ok())
                    .and_then(parse_challenge);
                let have_token = self.tokens.lock().expect("token lock").contains_key(scope);
                match challenge {
                    Some(Challenge::Basic) if !authed_basic && self.opts.credentials.is_some() => {
                        authed_basic = true;
                        continue;
                    }
                    Some(Challenge::Bearer { realm, service }) if !have_token => {
                        let t = self.token(&realm, service.as_deref(), scope).await?;
                        self.tokens
                            .lock()
                            .expect("token lock")
                            .insert(scope.to_string(), t);
                        continue;
                    }
                    _ => bail!(
                        "{}: authentication failed for {scope} (HTTP 401){}",
                        self.host,
                        if self.opts.credentials.is_some() {
                            ": check the credentials"
                        } else {
                            ": credentials are needed (docker login, or give them)"
                        }
                    ),
                }
            }
            if resp.status().is_server_error() && retry && attempt < self.opts.retries {
                attempt += 1;
                crate::log::warn(&format!(
                    "{}: HTTP {} (retry {attempt})",
                    self.host,
                    resp.status()
                ));
                tokio::time::sleep(self.opts.retry_delay * attempt).await;
                continue;
            }
            return Ok(resp);
        }
    }

    async fn error_of(&self, what: &str, resp: Response) -> anyhow::Error {
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        let detail = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| {
                v.pointer("/errors/0/message")
                    .and_then(|m| m.as_str())
                    .map(str::to_string)
            })
            .unwrap_or_else(|| body.chars().take(200).collect());
        anyhow!("{}: {what}: HTTP {status}: {detail}", self.host)
    }

    /// A manifest or index: its media type, bytes and digest (verified when `reference` is a
    /// digest).
    pub async fn get_manifest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<(String, Vec<u8>, String)> {
        let url = self.url(&format!("/v2/{repo}/manifests/{reference}"));
        let scope = format!("repository:{repo}:pull");
        let resp = self
            .send(&scope, true, &|| {
                self.http.get(&url).header(ACCEPT, MANIFEST_ACCEPT)
            })
            .await?;
        if !resp.status().is_success() {
            return Err(self
                .error_of(&format!("manifest {repo}:{reference}"), resp)
                .await);
        }
        let mt = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| {
                anyhow!(
                    "{}: reading manifest {repo}:{reference}: {}",
                    self.host,
                    describe(e)
                )
            })?
            .to_vec();
        let digest = format!("sha256:{}", nydus_core::digest::sha256(&bytes).to_hex());
        if reference.starts_with("sha256:") && reference != digest {
            bail!(
                "{}: manifest {repo}@{reference} has digest {digest}: the registry served other bytes",
                self.host
            );
        }
        Ok((mt, bytes, digest))
    }

    /// Size of a blob if the repository has it.
    pub async fn blob_size(&self, repo: &str, digest: &str) -> Result<Option<u64>> {
        let url = self.url(&format!("/v2/{repo}/blobs/{digest}"));
        let scope = format!("repository:{repo}:pull");
        let resp = self.send(&scope, true, &|| self.http.head(&url)).await?;
        match resp.status() {
            s if s.is_success() => Ok(resp
                .headers()
                .get(CONTENT_LENGTH)
                .and_then(|h| h.to_str().ok())
                .and_then(|s| s.parse().ok())),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(self.error_of(&format!("blob {repo}@{digest}"), resp).await),
        }
    }

    /// Streams a blob into `out`, verifying its SHA-256 against `digest`; returns its size.
    pub async fn pull_blob<W: AsyncWrite + Unpin>(
        &self,
        repo: &str,
        digest: &str,
        out: &mut W,
    ) -> Result<u64> {
        let mut body = self.blob_body(repo, digest).await?;
        let mut h = Sha256Stream::new();
        let mut n = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk
                .map_err(|e| anyhow!("{}: reading blob {digest}: {}", self.host, describe(e)))?;
            h.update(&chunk);
            n += chunk.len() as u64;
            out.write_all(&chunk)
                .await
                .with_context(|| format!("writing blob {digest}"))?;
        }
        self.verify_blob(repo, digest, h)?;
        out.flush().await.ok();
        Ok(n)
    }

    /// Streams a blob piece by piece into `each`; the SHA-256 is checked against `digest` after
    /// the last piece (an error then means the pieces were not the blob). Returns the size.
    pub async fn pull_blob_each(
        &self,
        repo: &str,
        digest: &str,
        mut each: impl AsyncFnMut(Bytes) -> Result<()>,
    ) -> Result<u64> {
        let mut body = self.blob_body(repo, digest).await?;
        let mut h = Sha256Stream::new();
        let mut n = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk
                .map_err(|e| anyhow!("{}: reading blob {digest}: {}", self.host, describe(e)))?;
            h.update(&chunk);
            n += chunk.len() as u64;
            each(chunk).await?;
        }
        self.verify_blob(repo, digest, h)?;
        Ok(n)
    }

    async fn blob_body(
        &self,
        repo: &str,
        digest: &str,
    ) -> Result<impl futures_util::Stream<Item = reqwest::Result<Bytes>>> {
        let url = self.url(&format!("/v2/{repo}/blobs/{digest}"));
        let scope = format!("repository:{repo}:pull");
        let resp = self.send(&scope, true, &|| self.http.get(&url)).await?;
        if !resp.status().is_success() {
            return Err(self.error_of(&format!("blob {repo}@{digest}"), resp).await);
        }
        Ok(resp.bytes_stream())
    }

    fn verify_blob(&self, repo: &str, digest: &str, h: Sha256Stream) -> Result<()> {
        let got = format!("sha256:{}", h.finish().to_hex());
        if got != digest {
            bail!(
                "{}: blob {repo}@{digest} has digest {got}: corrupted in the registry or in transit",
                self.host
            );
        }
        Ok(())
    }

    /// A small blob (config) in memory, verified.
    pub async fn pull_blob_bytes(&self, repo: &str, digest: &str) -> Result<Vec<u8>> {
        let mut v = Vec::new();
        self.pull_blob(repo, digest, &mut v).await?;
        Ok(v)
    }

    /// Asks the registry to mount a blob from another repository; true if it did.
    pub async fn mount_blob(&self, repo: &str, from: &str, digest: &str) -> Result<bool> {
        let url = self.url(&format!("/v2/{repo}/blobs/uploads/"));
        let scope = format!("repository:{repo}:pull,push repository:{from}:pull");
        let resp = self
            .send(&scope, true, &|| {
                self.http
                    .post(&url)
                    .query(&[("mount", digest), ("from", from)])
                    .header(CONTENT_LENGTH, 0)
            })
            .await?;
        match resp.status() {
            StatusCode::CREATED => Ok(true),
            StatusCode::ACCEPTED => Ok(false),
            _ => Err(self
                .error_of(&format!("mounting {digest} from {from}"), resp)
                .await),
        }
    }

    async fn start_upload(&self, repo: &str) -> Result<String> {
        let url = self.url(&format!("/v2/{repo}/blobs/uploads/"));
        let scope = format!("repository:{repo}:pull,push");
        let resp = self
            .send(&scope, true, &|| {
                self.http.post(&url).header(CONTENT_LENGTH, 0)
            })
            .await?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(self
                .error_of(&format!("starting an upload to {repo}"), resp)
                .await);
        }
        location(&resp).ok_or_else(|| anyhow!("{}: upload started without a Location", self.host))
    }

    /// How much of an upload the registry has (its `Range: 0-N`) and the session's current
    /// location. `None` when that is unknown: registries answer `0-0` both for no byte and
    /// for one byte received, so the upload must start over.
    async fn upload_offset(&self, repo: &str, loc: &str) -> Result<(Option<u64>, String)> {
        let url = self.url(loc);
        let scope = format!("repository:{repo}:pull,push");
        let resp = self.send(&scope, true, &|| self.http.get(&url)).await?;
        if resp.status() != StatusCode::NO_CONTENT {
            return Err(self.error_of("upload status", resp).await);
        }
        let next = location(&resp).unwrap_or_else(|| loc.to_string());
        Ok((
            range_end(resp.headers()).filter(|&e| e > 0).map(|e| e + 1),
            next,
        ))
    }

    /// Pushes a blob file unless the repository already has it. Large blobs go up in chunks
    /// (`chunk_size`); a failed chunk is resumed from the offset the registry reports.
    pub async fn push_blob_file(&self, repo: &str, digest: &str, path: &Path) -> Result<()> {
        if self.blob_size(repo, digest).await?.is_some() {
            return Ok(());
        }
        let size = tokio::fs::metadata(path)
            .await
            .with_context(|| format!("{}", path.display()))?
            .len();
        let mut f = tokio::fs::File::open(path)
            .await
            .with_context(|| format!("opening {}", path.display()))?;
        let scope = format!("repository:{repo}:pull,push");
        let mut loc = self.start_upload(repo).await?;
        let cs = self.opts.chunk_size;
        if cs > 0 && size > cs {
            let mut off = 0u64;
            let mut failures = 0u32;
            while off < size {
                let len = cs.min(size - off);
                f.seek(std::io::SeekFrom::Start(off)).await?;
                let mut buf = vec![0u8; len as usize];
                f.read_exact(&mut buf)
                    .await
                    .with_context(|| format!("reading {}", path.display()))?;
                let result = self.patch_chunk(&scope, &loc, off, Bytes::from(buf)).await;
                match result {
                    Ok(r) if r.status() == StatusCode::ACCEPTED => {
                        loc = location(&r).unwrap_or(loc);
                        off += len;
                    }
                    other => {
                        failures += 1;
                        let why = match other {
                            Ok(r) => self.error_of("upload chunk", r).await.to_string(),
                            Err(e) => e.to_string(),
                        };
                        if failures > self.opts.retries {
                            bail!("{}: uploading {digest} to {repo}: {why}", self.host);
                        }
                        crate::log::warn(&format!("{why}; resuming the upload"));
                        tokio::time::sleep(self.opts.retry_delay * failures).await;
                        // Resume where the registry is; if it cannot say (or has dropped
                        // the session), start over.
                        match self.upload_offset(repo, &loc).await {
                            Ok((Some(o), next)) => {
                                off = o;
                                loc = next;
                            }
                            status => {
                                if let Err(e) = status {
                                    crate::log::warn(&format!("{e:#}; starting the upload over"));
                                }
                                off = 0;
                                loc = self.start_upload(repo).await?;
                            }
                        }
                    }
                }
            }
            return self.commit_upload(repo, &loc, digest).await;
        }
        drop(f);
        self.put_whole(repo, digest, loc, size, &|| file_body(path))
            .await
    }

    /// Uploads a blob in one PUT to the session at `loc`, the body made by `body` for each
    /// attempt; a failed upload starts over in a new session (a registry may have kept part of
    /// the failed body).
    async fn put_whole(
        &self,
        repo: &str,
        digest: &str,
        mut loc: String,
        size: u64,
        body: &(dyn Fn() -> reqwest::Body + Sync),
    ) -> Result<()> {
        let scope = format!("repository:{repo}:pull,push");
        let mut failures = 0u32;
        loop {
            let url = self.url(&with_digest(&loc, digest));
            let result = self
                .send(&scope, false, &|| {
                    self.http
                        .put(&url)
                        .header(CONTENT_TYPE, "application/octet-stream")
                        .header(CONTENT_LENGTH, size)
                        .body(body())
                })
                .await;
            let why = match result {
                Ok(r) if r.status() == StatusCode::CREATED => return Ok(()),
                Ok(r) if !r.status().is_server_error() => {
                    return Err(self
                        .error_of(&format!("pushing {digest} to {repo}"), r)
                        .await)
                }
                Ok(r) => {
                    self.error_of(&format!("pushing {digest} to {repo}"), r)
                        .await
                }
                Err(e) => e,
            };
            failures += 1;
            if failures > self.opts.retries {
                return Err(why.context(format!("gave up after {failures} attempts")));
            }
            crate::log::warn(&format!(
                "{why:#}; restarting the upload (retry {failures})"
            ));
            tokio::time::sleep(self.opts.retry_delay * failures).await;
            loc = self.start_upload(repo).await?;
        }
    }

    /// Uploads a blob whose digest is not known yet, as it is produced: the pieces received
    /// on `rx` go up in chunks of about `piece` bytes (PATCH), until the channel closes.
    /// Returns the upload's location and the bytes sent; [`Registry::commit_upload`] then
    /// names the digest. Any failure ends it (the caller falls back to a whole upload).
    pub async fn push_blob_stream(
        &self,
        repo: &str,
        mut rx: tokio::sync::mpsc::Receiver<Bytes>,
        piece: usize,
    ) -> Result<(String, u64)> {
        let scope = format!("repository:{repo}:pull,push");
        let mut loc = self.start_upload(repo).await?;
        let mut off = 0u64;
        let mut buf: Vec<u8> = Vec::with_capacity(piece);
        loop {
            let next = rx.recv().await;
            if let Some(b) = &next {
                buf.extend_from_slice(b);
                if buf.len() < piece {
                    continue;
                }
            }
            if !buf.is_empty() {
                let body = Bytes::from(std::mem::replace(&mut buf, Vec::with_capacity(piece)));
                let len = body.len() as u64;
                let resp = self.patch_chunk(&scope, &loc, off, body).await?;
                if resp.status() != StatusCode::ACCEPTED {
                    return Err(self.error_of("streaming upload", resp).await);
                }
                loc = location(&resp).unwrap_or(loc);
                off += len;
            }
            if next.is_none() {
                return Ok((loc, off));
            }
        }
    }

    /// Sends one chunk of an upload (PATCH with its `Content-Range` at `off`).
    async fn patch_chunk(&self, scope: &str, loc: &str, off: u64, body: Bytes) -> Result<Response> {
        let url = self.url(loc);
        let len = body.len() as u64;
        let range = format!("{}-{}", off, off + len - 1);
        self.send(scope, false, &|| {
            self.http
                .request(Method::PATCH, &url)
                .header(CONTENT_TYPE, "application/octet-stream")
                .header("Content-Range", &range)
                .header(CONTENT_LENGTH, len)
                .body(body.clone())
        })
        .await
    }

    /// Completes a chunked upload (at `loc`) as blob `digest`.
    pub async fn commit_upload(&self, repo: &str, loc: &str, digest: &str) -> Result<()> {
        let scope = format!("repository:{repo}:pull,push");
        let url = self.url(&with_digest(loc, digest));
        let resp = self
            .send(&scope, true, &|| {
                self.http.put(&url).header(CONTENT_LENGTH, 0)
            })
            .await?;
        if resp.status() != StatusCode::CREATED {
            return Err(self
                .error_of(&format!("committing {digest} to {repo}"), resp)
                .await);
        }
        Ok(())
    }

    /// Pushes a small blob (a config) unless present.
    pub async fn push_blob_bytes(&self, repo: &str, digest: &str, data: &[u8]) -> Result<()> {
        if self.blob_size(repo, digest).await?.is_some() {
            return Ok(());
        }
        let loc = self.start_upload(repo).await?;
        let data = Bytes::copy_from_slice(data);
        self.put_whole(repo, digest, loc, data.len() as u64, &|| {
            reqwest::Body::from(data.clone())
        })
        .await
    }

    /// Pushes a manifest or index under `reference` (tag or digest); returns its digest.
    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<String> {
        let url = self.url(&format!("/v2/{repo}/manifests/{reference}"));
        let scope = format!("repository:{repo}:pull,push");
        let resp = self
            .send(&scope, true, &|| {
                self.http
                    .put(&url)
                    .header(CONTENT_TYPE, media_type)
                    .body(bytes.to_vec())
            })
            .await?;
        if resp.status() != StatusCode::CREATED {
            return Err(self
                .error_of(&format!("pushing manifest {repo}:{reference}"), resp)
                .await);
        }
        Ok(format!(
            "sha256:{}",
            nydus_core::digest::sha256(bytes).to_hex()
        ))
    }
}

/// A request body streaming the file at `path` (read again for every attempt).
fn file_body(path: &Path) -> reqwest::Body {
    let path = path.to_path_buf();
    let stream = futures_util::stream::unfold(None, move |state: Option<tokio::fs::File>| {
        let path = path.clone();
        async move {
            let mut f = match state {
                Some(f) => f,
                None => match tokio::fs::File::open(&path).await {
                    Ok(f) => f,
                    Err(e) => return Some((Err(e), None)),
                },
            };
            let mut buf = vec![0u8; 1 << 20];
            match f.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok(Bytes::from(buf)), Some(f)))
                }
                Err(e) => Some((Err(e), None)),
            }
        }
    });
    reqwest::Body::wrap_stream(stream)
}

/// Whether a transport error may go away on a retry: not a TLS or protocol failure (an
/// untrusted certificate, HTTPS spoken to an HTTP server) that would fail the same way.
fn is_transient(e: &reqwest::Error) -> bool {
    let msg = describe_ref(e).to_ascii_lowercase();
    ![
        "certificate",
        "tls",
        "ssl",
        "handshake",
        "invalid http",
        "corrupt message",
    ]
    .iter()
    .any(|w| msg.contains(w))
}

/// An error with its causes (see [`describe`] for what may be shown).
fn describe_ref(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

/// A transport error with its causes (TLS, connection), never the URL's credentials.
fn describe(e: reqwest::Error) -> String {
    describe_ref(&e.without_url())
}

fn location(r: &Response) -> Option<String> {
    r.headers()
        .get(LOCATION)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
}

fn range_end(h: &HeaderMap<HeaderValue>) -> Option<u64> {
    h.get("range")
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.rsplit('-').next())
        .and_then(|n| n.trim().parse().ok())
}

fn with_digest(loc: &str, digest: &str) -> String {
    let sep = if loc.contains('?') { '&' } else { '?' };
    format!("{loc}{sep}digest={}", digest.replace(':', "%3A"))
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_parse() {
        assert_eq!(parse_challenge("Basic realm=\"x\""), Some(Challenge::Basic));
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth/token",service="reg",scope="repository:a:pull""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth/token".into(),
                service: Some("reg".into())
            })
        );
        assert_eq!(parse_challenge("Digest x"), None);
    }

    #[test]
    fn digests_join_locations() {
        assert_eq!(
            with_digest("/u/1?_state=a", "sha256:ab"),
            "/u/1?_state=a&digest=sha256%3Aab"
        );
        assert_eq!(with_digest("/u/1", "sha256:ab"), "/u/1?digest=sha256%3Aab");
    }

    #[test]
    fn credentials_come_from_docker_config_and_never_print() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("config.json");
        let auth = base64::engine::general_purpose::STANDARD.encode("me:s3cret");
        std::fs::write(
            &p,
            format!(r#"{{"auths":{{"https://127.0.0.1:5000/":{{"auth":"{auth}"}}}}}}"#),
        )
        .unwrap();
        let c = Credentials::from_docker_config("127.0.0.1:5000", Some(&p))
            .unwrap()
            .unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("me", "s3cret"));
        assert!(!format!("{c:?}").contains("s3cret"));
        assert!(Credentials::from_docker_config("other:1", Some(&p))
            .unwrap()
            .is_none());
    }
}
