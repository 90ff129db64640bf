//! HTTP for the object-store backends: blocking clients shared by every thread, requests
//! retried with backoff on transient failures (5xx, dropped connections, timeouts), never on
//! 4xx, and errors that never carry a URL's query or a credential.
//!
//! Why blocking: [`crate::store::BlobStore`] is synchronous and called from many reader
//! threads at once (the chunk reader, read-ahead, FUSE workers). `reqwest::blocking` runs one
//! tokio runtime on its own thread per client and hands each request to it, so any number of
//! plain threads share one connection pool without each owning a runtime, and no caller needs
//! to be async. It must not be called on a tokio worker thread: async callers (nydusify) call
//! the stores from `spawn_blocking`. Clients are kept for the life of the process (a blocking
//! client must not be dropped inside an async context, and connections are worth reusing).

use std::net::SocketAddr;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use reqwest::blocking::{Client, RequestBuilder, Response};

use crate::config::HttpOptions;
use crate::store::{StoreError, StoreErrorKind};

/// Everything a client is built from.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ClientKey {
    connect_timeout: Duration,
    skip_verify: bool,
    proxy: Option<String>,
    resolve: Vec<(String, SocketAddr)>,
}

fn client(key: &ClientKey) -> Result<Client, String> {
    static CLIENTS: OnceLock<Mutex<Vec<(ClientKey, Client)>>> = OnceLock::new();
    let mut all = CLIENTS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some((_, c)) = all.iter().find(|(k, _)| k == key) {
        return Ok(c.clone());
    }
    let mut b = Client::builder()
        .connect_timeout(key.connect_timeout)
        .timeout(None)
        .pool_max_idle_per_host(64)
        .danger_accept_invalid_certs(key.skip_verify)
        .user_agent(concat!("nydus-rs/", env!("CARGO_PKG_VERSION")));
    for (name, addr) in &key.resolve {
        b = b.resolve(name, *addr);
    }
    b = match &key.proxy {
        Some(p) => b.proxy(reqwest::Proxy::all(p).map_err(|e| format!("proxy.url: {e}"))?),
        None => b,
    };
    let c = b
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {}", chain(&e)))?;
    all.push((key.clone(), c.clone()));
    Ok(c)
}

/// The HTTP side of one backend: its client (and its proxy's), timeouts and retries.
#[derive(Clone)]
pub struct Http {
    direct: Client,
    /// Reads go here first; `true`: straight to the backend when the proxy is unreachable.
    proxied: Option<(Client, bool)>,
    pub opts: HttpOptions,
}

impl std::fmt::Debug for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http")
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

/// What to do with a request's answer.
#[derive(Debug)]
pub enum Outcome<T> {
    Done(T),
    /// An error; retried if its kind is transient.
    Fail(StoreError),
}

impl Http {
    /// Clients for `opts`; `resolve` pins host names to addresses (names under `localhost`,
    /// which RFC 6761 reserves for loopback, as a bucket's virtual host on a test server).
    pub fn new(opts: &HttpOptions, resolve: Vec<(String, SocketAddr)>) -> Result<Http, String> {
        let key = ClientKey {
            connect_timeout: opts.connect_timeout,
            skip_verify: opts.skip_verify,
            proxy: None,
            resolve,
        };
        let direct = client(&key)?;
        let proxied = match &opts.proxy {
            Some(p) => Some((
                client(&ClientKey {
                    proxy: Some(p.url.clone()),
                    ..key
                })?,
                p.fallback,
            )),
            None => None,
        };
        Ok(Http {
            direct,
            proxied,
            opts: opts.clone(),
        })
    }

    /// Sends the request `make` builds (called again for every attempt: requests are signed
    /// anew and bodies reopened), and lets `handle` judge the answer. Transient failures are
    /// retried up to `retry_limit` times with exponential backoff; `via_proxy`: reads, which
    /// go through the configured proxy (and straight to the backend when it is down and
    /// fallback is allowed).
    pub fn run<T>(
        &self,
        via_proxy: bool,
        make: &dyn Fn(&Client) -> Result<RequestBuilder, StoreError>,
        handle: &mut dyn FnMut(Response) -> Outcome<T>,
        err: &dyn Fn(StoreErrorKind, String) -> StoreError,
    ) -> Result<T, StoreError> {
        let mut attempt = 0u32;
        loop {
            let r = self.once(via_proxy, make, handle, err);
            match r {
                Ok(v) => return Ok(v),
                Err(e)
                    if e.kind == StoreErrorKind::Transient && attempt < self.opts.retry_limit =>
                {
                    let delay = Duration::from_millis(100u64 << attempt.min(6));
                    log::warn!("{e}; retrying in {:.1}s", delay.as_secs_f64());
                    std::thread::sleep(delay);
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn once<T>(
        &self,
        via_proxy: bool,
        make: &dyn Fn(&Client) -> Result<RequestBuilder, StoreError>,
        handle: &mut dyn FnMut(Response) -> Outcome<T>,
        err: &dyn Fn(StoreErrorKind, String) -> StoreError,
    ) -> Result<T, StoreError> {
        if let (true, Some((proxy, fallback))) = (via_proxy, &self.proxied) {
            match make(proxy)?.send() {
                Ok(resp) => return judge(resp, handle),
                Err(e) if *fallback && (e.is_connect() || e.is_timeout()) => {
                    log::warn!(
                        "the proxy cannot be reached ({}); reading from the backend directly",
                        chain(&e)
                    );
                }
                Err(e) => return Err(err(classify(&e), transport(&e))),
            }
        }
        match make(&self.direct)?.send() {
            Ok(resp) => judge(resp, handle),
            Err(e) => Err(err(classify(&e), transport(&e))),
        }
    }
}

fn judge<T>(
    resp: Response,
    handle: &mut dyn FnMut(Response) -> Outcome<T>,
) -> Result<T, StoreError> {
    match handle(resp) {
        Outcome::Done(v) => Ok(v),
        Outcome::Fail(e) => Err(e),
    }
}

/// The kind of an unsuccessful HTTP status.
pub fn status_kind(status: u16) -> StoreErrorKind {
    match status {
        401 | 403 => StoreErrorKind::Auth,
        404 => StoreErrorKind::NotFound,
        416 => StoreErrorKind::Short,
        // 501: the server does not implement the request; asking again will not change that.
        408 | 429 | 500 | 502..=599 => StoreErrorKind::Transient,
        _ => StoreErrorKind::Failed,
    }
}

/// An unsuccessful answer described: the status and the `<Code>`/`<Message>` of an S3 or OSS
/// XML error body (these never hold a secret).
pub fn describe_failure(resp: Response) -> (StoreErrorKind, String) {
    let status = resp.status().as_u16();
    let body = resp.text().unwrap_or_default();
    let code = xml_text(&body, "Code");
    let message = xml_text(&body, "Message");
    let mut s = format!("HTTP {status}");
    if let Some(c) = code {
        s.push_str(&format!(" {c}"));
    }
    if let Some(m) = message {
        s.push_str(&format!(": {m}"));
    }
    (status_kind(status), s)
}

/// The text of the first `<tag>...</tag>` of `xml`, entities decoded.
pub fn xml_text(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = xml.find(&open)? + open.len();
    let len = xml[start..].find(&close)?;
    Some(
        xml[start..start + len]
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&"),
    )
}

/// A transport failure described without its URL (which could carry a query) and with its
/// causes.
pub fn transport(e: &reqwest::Error) -> String {
    let mut s = String::new();
    if e.is_timeout() {
        s.push_str("timed out: ");
    }
    s.push_str(&chain(e));
    s
}

fn chain(e: &reqwest::Error) -> String {
    let bare = e.to_string();
    let mut s = match e.url() {
        Some(u) => bare
            .replace(&format!(" ({u})"), "")
            .replace(u.as_str(), "<url>"),
        None => bare,
    };
    let mut src = std::error::Error::source(e);
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

/// The kind of a transport failure from its type, never its text: a TLS failure surfaces as
/// an `io::Error` of kind `InvalidData` and fails the same way again; a builder or redirect
/// error too. Everything else (refused, reset or dropped connections, timeouts, a body cut
/// short) may go away.
pub fn classify(e: &reqwest::Error) -> StoreErrorKind {
    if e.is_builder() || e.is_redirect() {
        return StoreErrorKind::Failed;
    }
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::InvalidData {
                return StoreErrorKind::Failed;
            }
            if let Some(inner) = io.get_ref() {
                cause = Some(inner as &(dyn std::error::Error + 'static));
                continue;
            }
        }
        cause = c.source();
    }
    StoreErrorKind::Transient
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_xml_errors() {
        assert_eq!(status_kind(403), StoreErrorKind::Auth);
        assert_eq!(status_kind(404), StoreErrorKind::NotFound);
        assert_eq!(status_kind(503), StoreErrorKind::Transient);
        assert_eq!(status_kind(400), StoreErrorKind::Failed);
        assert_eq!(status_kind(416), StoreErrorKind::Short);
        let x = "<Error><Code>NoSuchKey</Code><Message>a &amp; b</Message></Error>";
        assert_eq!(xml_text(x, "Code").as_deref(), Some("NoSuchKey"));
        assert_eq!(xml_text(x, "Message").as_deref(), Some("a & b"));
        assert_eq!(xml_text(x, "UploadId"), None);
    }
}
