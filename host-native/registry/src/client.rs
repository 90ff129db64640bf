//! The client of one registry host: sending requests (authenticating on a 401, retrying
//! transient failures with backoff), turning answers into errors, and everything that reads:
//! manifests, blob sizes, blobs pulled streaming and verified by digest, cross-repository
//! mounts, manifest pushes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use nydus_core::digest::Sha256Stream;
use reqwest::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, LOCATION, RANGE};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::auth::{credentials_hint, parse_challenge, BearerToken, Challenge, Credentials};
use crate::error::{classify, ErrorKind, RegistryError, Result};

/// How to reach one registry.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Speak HTTP instead of HTTPS.
    pub plain_http: bool,
    /// Do not verify the TLS certificate, and fall back to plain HTTP when the registry does
    /// not speak TLS (as Docker and upstream nydusify do for an insecure registry).
    pub insecure: bool,
    /// Extra CA certificate (PEM) to trust, besides the system's trust store (or
    /// `SSL_CERT_FILE` / `SSL_CERT_DIR` when set) and the `certs.d` directories.
    pub ca_cert: Option<PathBuf>,
    /// Docker-style `certs.d` directories: every `<dir>/<host[:port]>/*.crt` is a CA
    /// certificate trusted for this registry. Default: `docker_certs_dirs`.
    pub certs_d: Vec<PathBuf>,
    pub credentials: Option<Credentials>,
    /// Attempts after the first for a failed request or upload chunk.
    pub retries: u32,
    pub retry_delay: Duration,
    /// Upload blobs larger than this in chunks of this size (0: one PUT).
    pub chunk_size: u64,
    /// A bearer token sent as is until the registry refuses it (then the usual challenge).
    pub token: Option<BearerToken>,
    /// An HTTP proxy every request goes through.
    pub proxy: Option<ProxyOptions>,
    /// `host[:port]` that blob reads the registry redirects go to instead of the host the
    /// redirect names (same scheme, path and query).
    pub blob_redirected_host: Option<String>,
    /// Time allowed to open a connection.
    pub connect_timeout: Duration,
    /// Time allowed for one blob read by range ([`Registry::blob_range`], plus a second per
    /// MiB asked) and one size lookup ([`Registry::blob_size`]), answer and body; `None`:
    /// unbounded. Whole-blob pulls, uploads and manifests are not bounded by it.
    pub read_timeout: Option<Duration>,
}

/// An HTTP proxy in front of the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyOptions {
    /// `http://host:port`.
    pub url: String,
    /// Go straight to the registry when the proxy cannot be reached (and keep doing so for
    /// `PROXY_RETRY_AFTER` before trying it again).
    pub fallback: bool,
}

/// How long a proxy that could not be reached is bypassed (with fallback).
pub const PROXY_RETRY_AFTER: Duration = Duration::from_secs(10);

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            plain_http: false,
            insecure: false,
            ca_cert: None,
            certs_d: docker_certs_dirs(),
            credentials: None,
            retries: 3,
            retry_delay: Duration::from_millis(500),
            chunk_size: 0,
            token: None,
            proxy: None,
            blob_redirected_host: None,
            connect_timeout: Duration::from_secs(10),
            read_timeout: None,
        }
    }
}

/// Where Docker looks for per-registry CA certificates: `/etc/docker/certs.d` and the
/// rootless daemon's `$XDG_CONFIG_HOME/docker/certs.d` (`~/.config/docker/certs.d`).
pub fn docker_certs_dirs() -> Vec<PathBuf> {
    let mut dirs = vec![PathBuf::from("/etc/docker/certs.d")];
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".config")));
    if let Some(c) = config {
        dirs.push(c.join("docker/certs.d"));
    }
    dirs
}

/// The CA certificates of `host` in the `certs.d` directories (`*.crt` files, each a PEM
/// bundle), with the file each came from.
fn certs_d_roots(host: &str, dirs: &[PathBuf]) -> Result<Vec<reqwest::Certificate>> {
    let mut roots = Vec::new();
    for d in dirs {
        let dir = d.join(host);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "crt"))
            .collect();
        files.sort();
        for f in files {
            roots.extend(read_pem_bundle(host, &f)?);
            log::debug!("{host}: trusting the CA certificates of {}", f.display());
        }
    }
    Ok(roots)
}

fn read_pem_bundle(host: &str, f: &Path) -> Result<Vec<reqwest::Certificate>> {
    let pem = std::fs::read(f)
        .map_err(|e| RegistryError::io(host, format!("reading {}", f.display()), e))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
        let msg = format!("{}: not a PEM certificate", f.display());
        RegistryError::new(ErrorKind::Protocol, host, "reading a CA certificate", msg).caused_by(e)
    })?;
    if certs.is_empty() {
        let msg = format!("{}: no PEM certificate in it", f.display());
        return Err(RegistryError::new(
            ErrorKind::Protocol,
            host,
            "reading a CA certificate",
            msg,
        ));
    }
    Ok(certs)
}

/// A client of one registry host.
#[derive(Debug)]
pub struct Registry {
    pub(crate) http: reqwest::Client,
    /// Speaking plain HTTP: asked for, or fallen back to (insecure, no TLS there).
    plain: AtomicBool,
    /// Whether the registry answered once: a refused connection before that is final.
    answered: AtomicBool,
    host: String,
    pub(crate) opts: RegistryOptions,
    /// Bearer tokens by scope.
    tokens: Mutex<HashMap<String, String>>,
    /// The proxy's client and whether to fall back to `http` when it is down.
    proxied: Option<(reqwest::Client, bool)>,
    /// Until when the proxy is bypassed after it could not be reached.
    proxy_down: Mutex<Option<Instant>>,
}

const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
    application/vnd.oci.image.index.v1+json, \
    application/vnd.docker.distribution.manifest.v2+json, \
    application/vnd.docker.distribution.manifest.list.v2+json";

/// What a request is for, in errors: the repository and the operation.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Op<'a> {
    pub repo: &'a str,
    pub action: &'a str,
}

impl Registry {
    pub fn new(host: &str, opts: RegistryOptions) -> Result<Registry> {
        let mut roots = certs_d_roots(host, &opts.certs_d)?;
        if let Some(ca) = &opts.ca_cert {
            roots.extend(read_pem_bundle(host, ca)?);
        }
        let client = |proxy: Option<&str>| -> Result<reqwest::Client> {
            let mut b = reqwest::Client::builder()
                .connect_timeout(opts.connect_timeout)
                .danger_accept_invalid_certs(opts.insecure);
            for c in &roots {
                b = b.add_root_certificate(c.clone());
            }
            if opts.blob_redirected_host.is_some() {
                // Redirects are followed by the client code, to the host given.
                b = b.redirect(reqwest::redirect::Policy::none());
            }
            if let Some(p) = proxy {
                let p = reqwest::Proxy::all(p).map_err(|e| {
                    let msg = "proxy.url is not a proxy URL";
                    RegistryError::new(ErrorKind::Protocol, host, "setting up the proxy", msg)
                        .caused_by(e)
                })?;
                b = b.proxy(p);
            } else {
                b = b.no_proxy();
            }
            b.build().map_err(|e| {
                let msg = "setting up the HTTP client";
                RegistryError::new(ErrorKind::Protocol, host, msg, msg).caused_by(e)
            })
        };
        let http = client(None)?;
        let proxied = match &opts.proxy {
            Some(p) => Some((client(Some(&p.url))?, p.fallback)),
            None => None,
        };
        Ok(Registry {
            http,
            plain: AtomicBool::new(opts.plain_http),
            answered: AtomicBool::new(false),
            host: host.to_string(),
            opts,
            tokens: Mutex::new(HashMap::new()),
            proxied,
            proxy_down: Mutex::new(None),
        })
    }

    /// Sends a request, through the proxy when there is one. With fallback, a proxy that
    /// cannot be reached (refused, timed out) is bypassed: this request goes straight to the
    /// registry when its body can be sent again, and so do the next ones for
    /// [`PROXY_RETRY_AFTER`].
    pub(crate) async fn execute(&self, req: RequestBuilder) -> reqwest::Result<Response> {
        let (client, built) = req.build_split();
        let mut built = built?;
        // Requests built before a fallback to plain HTTP, or from a URL kept by the caller.
        if self.plain.load(Ordering::Relaxed)
            && built.url().scheme() == "https"
            && self.is_our_host(built.url())
        {
            let _ = built.url_mut().set_scheme("http");
        }
        let Some((proxy, fallback)) = &self.proxied else {
            return client.execute(built).await;
        };
        let bypass = {
            let mut down = self.proxy_down.lock().expect("proxy lock");
            match *down {
                Some(t) if t > Instant::now() => *fallback,
                Some(_) => {
                    *down = None;
                    false
                }
                None => false,
            }
        };
        if bypass {
            return self.http.execute(built).await;
        }
        let again = built.try_clone();
        match proxy.execute(built).await {
            Err(e) if *fallback && (e.is_connect() || e.is_timeout()) => {
                *self.proxy_down.lock().expect("proxy lock") =
                    Some(Instant::now() + PROXY_RETRY_AFTER);
                match again {
                    Some(r) => {
                        log::warn!(
                            "{}: the proxy cannot be reached ({}); going to the registry directly",
                            self.host,
                            describe(e)
                        );
                        self.http.execute(r).await
                    }
                    // A streamed body cannot be sent twice: the caller's retry goes direct.
                    None => Err(e),
                }
            }
            r => r,
        }
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// Whether `u` is this registry (host and port).
    fn is_our_host(&self, u: &reqwest::Url) -> bool {
        let hp = match (u.host_str(), u.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            _ => return false,
        };
        hp == self.host
    }

    /// Attempts after the first for failed requests.
    pub fn retries(&self) -> u32 {
        self.opts.retries
    }

    pub(crate) fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_string()
        } else {
            let scheme = if self.plain.load(Ordering::Relaxed) {
                "http"
            } else {
                "https"
            };
            format!("{scheme}://{}{path}", self.host)
        }
    }

    /// Whether requests go over plain HTTP (asked for, or fallen back to).
    pub fn plain_http(&self) -> bool {
        self.plain.load(Ordering::Relaxed)
    }

    /// A transport failure of `op` (`what` says which step, e.g. `request failed`).
    pub(crate) fn transport(&self, op: Op<'_>, what: &str, e: reqwest::Error) -> RegistryError {
        let kind = classify(&e);
        let msg = format!("{}: {what}: {}", self.host, describe(e));
        RegistryError::new(kind, &self.host, op.action, msg).repo(op.repo)
    }

    /// Sends a request built by `make`, authenticating on a 401 and retrying transient
    /// failures (transport errors of kind [`ErrorKind::Transient`] and 5xx answers, `retries`
    /// times, with backoff) when `retry` is set.
    pub(crate) async fn send(
        &self,
        op: Op<'_>,
        scope: &str,
        retry: bool,
        make: &(dyn Fn() -> RequestBuilder + Sync),
    ) -> Result<Response> {
        let mut attempt = 0u32;
        let mut authed_basic = false;
        // Whether this call fetched a token already: a 401 to a cached token means it expired
        // (or lost its scope) and a new one is fetched once; a 401 to a fresh one is final.
        let mut fetched_token = false;
        // A token given as is goes first, until the registry refuses it.
        let mut given_token = self.opts.token.is_some();
        loop {
            let mut req = make();
            let cached = self.tokens.lock().expect("token lock").get(scope).cloned();
            if let Some(t) = cached {
                req = req.bearer_auth(t);
            } else if let (true, Some(t)) = (given_token, &self.opts.token) {
                req = req.bearer_auth(&t.0);
            } else if authed_basic {
                if let Some(c) = &self.opts.credentials {
                    req = req.basic_auth(&c.username, Some(&c.password));
                }
            }
            let resp = match self.execute(req).await {
                Ok(r) => {
                    self.answered.store(true, Ordering::Relaxed);
                    r
                }
                Err(e) => {
                    let kind = classify(&e);
                    let to_us = e
                        .url()
                        .is_some_and(|u| u.scheme() == "https" && self.is_our_host(u));
                    if kind == ErrorKind::Protocol
                        && to_us
                        && self.opts.insecure
                        && !self.answered.load(Ordering::Relaxed)
                        && !self.plain.swap(true, Ordering::Relaxed)
                    {
                        log::warn!(
                            "{}: no TLS there ({}); insecure: using plain HTTP",
                            self.host,
                            describe(e)
                        );
                        continue;
                    }
                    let refused = kind == ErrorKind::Transient
                        && e.is_connect()
                        && !self.answered.load(Ordering::Relaxed);
                    let why = describe(e);
                    if refused {
                        // Nothing listens there (or never did in this run): retrying for
                        // half a minute would only hide a wrong address.
                        let msg = format!("{}: cannot connect: {why}", self.host);
                        return Err(
                            RegistryError::new(kind, &self.host, op.action, msg).repo(op.repo)
                        );
                    }
                    if retry && attempt < self.opts.retries && kind == ErrorKind::Transient {
                        attempt += 1;
                        log::warn!("{}: {why} (retry {attempt})", self.host);
                        tokio::time::sleep(self.opts.retry_delay * attempt).await;
                        continue;
                    }
                    let msg = format!("{}: request failed: {why}", self.host);
                    return Err(RegistryError::new(kind, &self.host, op.action, msg).repo(op.repo));
                }
            };
            if resp.status() == StatusCode::UNAUTHORIZED {
                if given_token && !self.tokens.lock().expect("token lock").contains_key(scope) {
                    given_token = false;
                    log::warn!(
                        "{}: the registry_token given was refused for {scope}",
                        self.host
                    );
                }
                let challenge = resp
                    .headers()
                    .get("www-authenticate")
                    .and_then(|h| h.to_str().ok())
                    .and_then(parse_challenge);
                match challenge {
                    Some(Challenge::Basic) if !authed_basic && self.opts.credentials.is_some() => {
                        authed_basic = true;
                        continue;
                    }
                    Some(Challenge::Bearer { realm, service }) if !fetched_token => {
                        fetched_token = true;
                        if self
                            .tokens
                            .lock()
                            .expect("token lock")
                            .remove(scope)
                            .is_some()
                        {
                            log::info!(
                                "{}: token for {scope} refused, fetching a new one",
                                self.host
                            );
                        }
                        let t = self
                            .token(&realm, service.as_deref(), scope)
                            .await
                            .map_err(|e| e.repo(op.repo))?;
                        self.tokens
                            .lock()
                            .expect("token lock")
                            .insert(scope.to_string(), t);
                        continue;
                    }
                    _ => {
                        let msg = format!(
                            "{}: authentication failed for {scope} (HTTP 401){}",
                            self.host,
                            credentials_hint(self.opts.credentials.is_some(), true)
                        );
                        return Err(RegistryError::new(
                            ErrorKind::Auth,
                            &self.host,
                            op.action,
                            msg,
                        )
                        .repo(op.repo)
                        .status(StatusCode::UNAUTHORIZED));
                    }
                }
            }
            let kind = ErrorKind::of_status(resp.status());
            if !resp.status().is_success()
                && kind == ErrorKind::Transient
                && retry
                && attempt < self.opts.retries
            {
                attempt += 1;
                log::warn!("{}: HTTP {} (retry {attempt})", self.host, resp.status());
                tokio::time::sleep(self.opts.retry_delay * attempt).await;
                continue;
            }
            return Ok(resp);
        }
    }

    /// The error an unexpected answer to `op` is: its status and the registry's message.
    pub(crate) async fn error_of(&self, op: Op<'_>, resp: Response) -> RegistryError {
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
        let msg = format!("{}: {}: HTTP {status}: {detail}", self.host, op.action);
        RegistryError::new(ErrorKind::of_status(status), &self.host, op.action, msg)
            .repo(op.repo)
            .status(status)
    }

    /// With `blob_redirected_host`, the client follows no redirects itself: a blob request
    /// the registry redirects is sent here to that host instead of the one the redirect
    /// names (same scheme, path and query; no registry credentials), and further redirects
    /// are followed as they come, each bounded by `timeout` when given. Other answers are
    /// returned as they are.
    async fn follow_blob_redirect(
        &self,
        op: Op<'_>,
        mut resp: Response,
        method: Method,
        range: Option<&str>,
        timeout: Option<Duration>,
    ) -> Result<Response> {
        let Some(host) = &self.opts.blob_redirected_host else {
            return Ok(resp);
        };
        let bad = |msg: String| {
            RegistryError::new(ErrorKind::Protocol, &self.host, op.action, msg).repo(op.repo)
        };
        for hop in 0..10 {
            if !resp.status().is_redirection() {
                return Ok(resp);
            }
            let Some(loc) = location(&resp) else {
                return Ok(resp);
            };
            let mut url = resp.url().join(&loc).map_err(|e| {
                bad(format!(
                    "{}: {}: a redirect to an invalid location: {e}",
                    self.host, op.action
                ))
            })?;
            if hop == 0 {
                let (name, port) = match host.rsplit_once(':') {
                    Some((n, p)) if !n.is_empty() && p.parse::<u16>().is_ok() => {
                        (n, p.parse::<u16>().ok())
                    }
                    _ => (host.as_str(), None),
                };
                let set = url.set_host(Some(name)).is_ok() && url.set_port(port).is_ok();
                if !set {
                    return Err(bad(format!(
                        "{}: blob_redirected_host {host:?} cannot be the host of a URL",
                        self.host
                    )));
                }
                log::debug!("{}: {}: redirected, read from {host}", self.host, op.action);
            }
            let mut req = self.http.request(method.clone(), url);
            if let Some(r) = range {
                req = req.header(RANGE, r);
            }
            if let Some(t) = timeout {
                req = req.timeout(t);
            }
            resp = self
                .execute(req)
                .await
                .map_err(|e| self.transport(op, "following a blob redirect", e))?;
        }
        Err(bad(format!(
            "{}: {}: more than 10 redirects",
            self.host, op.action
        )))
    }

    /// A manifest or index: its media type, bytes and digest (verified when `reference` is a
    /// digest).
    pub async fn get_manifest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<(String, Vec<u8>, String)> {
        let action = format!("manifest {repo}:{reference}");
        let op = Op {
            repo,
            action: &action,
        };
        let url = self.url(&format!("/v2/{repo}/manifests/{reference}"));
        let scope = format!("repository:{repo}:pull");
        let resp = self
            .send(op, &scope, true, &|| {
                self.http.get(&url).header(ACCEPT, MANIFEST_ACCEPT)
            })
            .await?;
        if !resp.status().is_success() {
            return Err(self.error_of(op, resp).await);
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
            .map_err(|e| self.transport(op, &format!("reading {action}"), e))?
            .to_vec();
        let digest = format!("sha256:{}", nydus_core::digest::sha256(&bytes).to_hex());
        if reference.starts_with("sha256:") && reference != digest {
            let msg = format!(
                "{}: manifest {repo}@{reference} has digest {digest}: the registry served other bytes",
                self.host
            );
            return Err(
                RegistryError::new(ErrorKind::Protocol, &self.host, action, msg).repo(repo),
            );
        }
        Ok((mt, bytes, digest))
    }

    /// Size of a blob if the repository has it.
    pub async fn blob_size(&self, repo: &str, digest: &str) -> Result<Option<u64>> {
        let action = format!("blob {repo}@{digest}");
        let op = Op {
            repo,
            action: &action,
        };
        let url = self.url(&format!("/v2/{repo}/blobs/{digest}"));
        let scope = format!("repository:{repo}:pull");
        let timeout = self.opts.read_timeout;
        let resp = self
            .send(op, &scope, true, &|| timed(self.http.head(&url), timeout))
            .await?;
        let resp = self
            .follow_blob_redirect(op, resp, Method::HEAD, None, timeout)
            .await?;
        match resp.status() {
            s if s.is_success() => Ok(resp
                .headers()
                .get(CONTENT_LENGTH)
                .and_then(|h| h.to_str().ok())
                .and_then(|s| s.parse().ok())),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(self.error_of(op, resp).await),
        }
    }

    /// Streams a blob into `out`, verifying its SHA-256 against `digest`; returns its size.
    pub async fn pull_blob<W: AsyncWrite + Unpin>(
        &self,
        repo: &str,
        digest: &str,
        out: &mut W,
    ) -> Result<u64> {
        let action = format!("blob {repo}@{digest}");
        let op = Op {
            repo,
            action: &action,
        };
        let mut body = self.blob_body(op, digest).await?;
        let mut h = Sha256Stream::new();
        let mut n = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk =
                chunk.map_err(|e| self.transport(op, &format!("reading blob {digest}"), e))?;
            h.update(&chunk);
            n += chunk.len() as u64;
            out.write_all(&chunk)
                .await
                .map_err(|e| RegistryError::io(&self.host, format!("writing blob {digest}"), e))?;
        }
        self.verify_blob(op, digest, h)?;
        out.flush().await.ok();
        Ok(n)
    }

    /// Streams a blob piece by piece into `each`; the SHA-256 is checked against `digest` after
    /// the last piece (an error then means the pieces were not the blob). Returns the size.
    /// `each` may fail with its own error type, which the client's errors convert into.
    pub async fn pull_blob_each<E: From<RegistryError>>(
        &self,
        repo: &str,
        digest: &str,
        mut each: impl AsyncFnMut(Bytes) -> std::result::Result<(), E>,
    ) -> std::result::Result<u64, E> {
        let action = format!("blob {repo}@{digest}");
        let op = Op {
            repo,
            action: &action,
        };
        let mut body = self.blob_body(op, digest).await?;
        let mut h = Sha256Stream::new();
        let mut n = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk =
                chunk.map_err(|e| self.transport(op, &format!("reading blob {digest}"), e))?;
            h.update(&chunk);
            n += chunk.len() as u64;
            each(chunk).await?;
        }
        self.verify_blob(op, digest, h)?;
        Ok(n)
    }

    async fn blob_body(
        &self,
        op: Op<'_>,
        digest: &str,
    ) -> Result<impl futures_util::Stream<Item = reqwest::Result<Bytes>>> {
        let url = self.url(&format!("/v2/{}/blobs/{digest}", op.repo));
        let scope = format!("repository:{}:pull", op.repo);
        let resp = self.send(op, &scope, true, &|| self.http.get(&url)).await?;
        let resp = self
            .follow_blob_redirect(op, resp, Method::GET, None, None)
            .await?;
        if !resp.status().is_success() {
            return Err(self.error_of(op, resp).await);
        }
        Ok(resp.bytes_stream())
    }

    /// Bytes `offset..offset + len` of a blob, by a `Range` request. A transient failure,
    /// also one that cuts the body short, is retried (`retries` times, with backoff). The
    /// bytes are not verified here: a range is not the whole blob, whose digest is all the
    /// registry names; callers verify what they read (chunk digests).
    pub async fn blob_range(
        &self,
        repo: &str,
        digest: &str,
        offset: u64,
        len: u64,
    ) -> Result<Vec<u8>> {
        let action = format!("blob {repo}@{digest} bytes {offset}+{len}");
        let op = Op {
            repo,
            action: &action,
        };
        if len == 0 {
            return Ok(Vec::new());
        }
        let url = self.url(&format!("/v2/{repo}/blobs/{digest}"));
        let scope = format!("repository:{repo}:pull");
        let range = format!("bytes={offset}-{}", offset + len - 1);
        let timeout = self
            .opts
            .read_timeout
            .map(|t| t + Duration::from_secs(len >> 20));
        let mut attempt = 0u32;
        loop {
            let resp = self
                .send(op, &scope, true, &|| {
                    timed(self.http.get(&url).header(RANGE, &range), timeout)
                })
                .await?;
            let resp = match self
                .follow_blob_redirect(op, resp, Method::GET, Some(&range), timeout)
                .await
            {
                Ok(r) => r,
                Err(e) if e.is_transient() && attempt < self.opts.retries => {
                    attempt += 1;
                    log::warn!("{e} (retry {attempt})");
                    tokio::time::sleep(self.opts.retry_delay * attempt).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let status = resp.status();
            let skip = match status {
                StatusCode::PARTIAL_CONTENT => 0,
                // The whole blob: the registry ignored the range.
                StatusCode::OK => offset,
                StatusCode::RANGE_NOT_SATISFIABLE => {
                    let msg = format!(
                        "{}: blob {repo}@{digest}: bytes {offset}..{} lie beyond its end",
                        self.host,
                        offset + len
                    );
                    return Err(RegistryError::new(
                        ErrorKind::OutOfRange,
                        &self.host,
                        &action,
                        msg,
                    )
                    .repo(repo)
                    .status(status));
                }
                _ => return Err(self.error_of(op, resp).await),
            };
            match self.read_range_body(op, resp, skip, len).await {
                Ok(v) => return Ok(v),
                Err(e) if e.is_transient() && attempt < self.opts.retries => {
                    attempt += 1;
                    log::warn!("{e} (retry {attempt})");
                    tokio::time::sleep(self.opts.retry_delay * attempt).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// `len` bytes of a body after its first `skip`; a body ending early is a transient
    /// failure (a dropped connection), one too long for a 206 is a protocol error.
    async fn read_range_body(
        &self,
        op: Op<'_>,
        resp: Response,
        skip: u64,
        len: u64,
    ) -> Result<Vec<u8>> {
        let partial = resp.status() == StatusCode::PARTIAL_CONTENT;
        let mut body = resp.bytes_stream();
        let mut out = Vec::with_capacity(len as usize);
        let mut to_skip = skip;
        while let Some(piece) = body.next().await {
            let piece =
                piece.map_err(|e| self.transport(op, &format!("reading {}", op.action), e))?;
            let mut piece = &piece[..];
            let s = (to_skip as usize).min(piece.len());
            to_skip -= s as u64;
            piece = &piece[s..];
            let want = len as usize - out.len();
            if partial && piece.len() > want {
                let msg = format!(
                    "{}: {}: the registry sent more bytes than asked",
                    self.host, op.action
                );
                return Err(
                    RegistryError::new(ErrorKind::Protocol, &self.host, op.action, msg)
                        .repo(op.repo),
                );
            }
            out.extend_from_slice(&piece[..piece.len().min(want)]);
            if out.len() as u64 == len {
                return Ok(out);
            }
        }
        if !partial && to_skip == 0 && (out.len() as u64) < len {
            // The whole blob came and ended before the range did.
            let msg = format!(
                "{}: {}: the blob ends at byte {}",
                self.host,
                op.action,
                skip + out.len() as u64
            );
            return Err(
                RegistryError::new(ErrorKind::OutOfRange, &self.host, op.action, msg).repo(op.repo),
            );
        }
        let msg = format!(
            "{}: {}: the answer ended after {} of {len} bytes",
            self.host,
            op.action,
            out.len()
        );
        Err(RegistryError::new(ErrorKind::Transient, &self.host, op.action, msg).repo(op.repo))
    }

    fn verify_blob(&self, op: Op<'_>, digest: &str, h: Sha256Stream) -> Result<()> {
        let got = format!("sha256:{}", h.finish().to_hex());
        if got != digest {
            let msg = format!(
                "{}: blob {}@{digest} has digest {got}: corrupted in the registry or in transit",
                self.host, op.repo
            );
            return Err(
                RegistryError::new(ErrorKind::Protocol, &self.host, op.action, msg).repo(op.repo),
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
        let action = format!("mounting {digest} from {from}");
        let op = Op {
            repo,
            action: &action,
        };
        let url = self.url(&format!("/v2/{repo}/blobs/uploads/"));
        let scope = format!("repository:{repo}:pull,push repository:{from}:pull");
        let resp = self
            .send(op, &scope, true, &|| {
                self.http
                    .post(&url)
                    .query(&[("mount", digest), ("from", from)])
                    .header(CONTENT_LENGTH, 0)
            })
            .await?;
        match resp.status() {
            StatusCode::CREATED => Ok(true),
            StatusCode::ACCEPTED => Ok(false),
            _ => Err(self.error_of(op, resp).await),
        }
    }

    /// Pushes a manifest or index under `reference` (tag or digest); returns its digest.
    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<String> {
        let action = format!("pushing manifest {repo}:{reference}");
        let op = Op {
            repo,
            action: &action,
        };
        let url = self.url(&format!("/v2/{repo}/manifests/{reference}"));
        let scope = format!("repository:{repo}:pull,push");
        let resp = self
            .send(op, &scope, true, &|| {
                self.http
                    .put(&url)
                    .header(CONTENT_TYPE, media_type)
                    .body(bytes.to_vec())
            })
            .await?;
        if resp.status() != StatusCode::CREATED {
            return Err(self.error_of(op, resp).await);
        }
        Ok(format!(
            "sha256:{}",
            nydus_core::digest::sha256(bytes).to_hex()
        ))
    }
}

/// `req` bounded by `timeout` (answer and body), if given.
fn timed(req: RequestBuilder, timeout: Option<Duration>) -> RequestBuilder {
    match timeout {
        Some(t) => req.timeout(t),
        None => req,
    }
}

/// A transport error with its causes (TLS, connection), never the URL's credentials.
pub(crate) fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut s = if e.is_timeout() {
        "timed out: ".to_string()
    } else {
        String::new()
    };
    s.push_str(&e.to_string());
    let mut src = std::error::Error::source(&e);
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

pub(crate) fn location(r: &Response) -> Option<String> {
    r.headers()
        .get(LOCATION)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
}
