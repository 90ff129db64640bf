//! The client's one error type: what kind of failure (which decides retries), where (host,
//! repository), doing what, and the registry's answer (HTTP status) when there was one.
//! Credentials never appear in it: transport errors are described without their URL, and no
//! message is built from a credential.

use std::fmt;

use reqwest::StatusCode;

/// What kind of failure an error is; retries are decided from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A 5xx answer, a dropped connection or a timeout: worth retrying.
    Transient,
    /// 401/403, a token service's refusal, or credentials that cannot be read.
    Auth,
    /// The registry has no such manifest, blob or upload session (404).
    NotFound,
    /// An unexpected answer, a TLS or certificate failure, a malformed document or a digest
    /// mismatch: retrying would fail the same way.
    Protocol,
    /// A local file (blob, CA certificate, Docker config) could not be read or written.
    Io,
    /// A range asked of a blob lies beyond its end (416, or a whole blob shorter than it).
    OutOfRange,
}

impl ErrorKind {
    /// The kind of an unsuccessful HTTP answer.
    pub fn of_status(status: StatusCode) -> ErrorKind {
        match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => ErrorKind::Auth,
            StatusCode::NOT_FOUND => ErrorKind::NotFound,
            s if s.is_server_error() => ErrorKind::Transient,
            _ => ErrorKind::Protocol,
        }
    }
}

/// A failed registry operation.
#[derive(Debug)]
pub struct RegistryError {
    kind: ErrorKind,
    host: String,
    repository: Option<String>,
    action: String,
    status: Option<u16>,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

/// Results of the registry client.
pub type Result<T, E = RegistryError> = std::result::Result<T, E>;

impl RegistryError {
    /// An error of `kind` on `host` while doing `action`, shown as `message` (which names the
    /// host itself where it should).
    pub(crate) fn new(
        kind: ErrorKind,
        host: &str,
        action: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        RegistryError {
            kind,
            host: host.to_string(),
            repository: None,
            action: action.into(),
            status: None,
            message: message.into(),
            source: None,
        }
    }

    /// A local I/O failure while doing `action` (shown as `action`, the cause as its source).
    pub(crate) fn io(host: &str, action: impl Into<String>, e: std::io::Error) -> Self {
        let action = action.into();
        RegistryError::new(ErrorKind::Io, host, action.clone(), action).caused_by(e)
    }

    pub(crate) fn repo(mut self, repo: &str) -> Self {
        self.repository = Some(repo.to_string());
        self
    }

    pub(crate) fn status(mut self, status: StatusCode) -> Self {
        self.status = Some(status.as_u16());
        self
    }

    pub(crate) fn caused_by(mut self, e: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(e));
        self
    }

    /// This error as the cause of a new message (same kind, host, repository and status).
    pub(crate) fn context(self, message: impl Into<String>) -> Self {
        RegistryError {
            kind: self.kind,
            host: self.host.clone(),
            repository: self.repository.clone(),
            action: self.action.clone(),
            status: self.status,
            message: message.into(),
            source: Some(Box::new(self)),
        }
    }

    /// The same error shown as `message` (which includes what the old message said).
    pub(crate) fn reworded(mut self, message: impl Into<String>) -> Self {
        self.message = message.into();
        self
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Whether the operation may succeed if tried again.
    pub fn is_transient(&self) -> bool {
        self.kind == ErrorKind::Transient
    }

    /// The registry host (`host[:port]`).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The repository, when the operation was on one.
    pub fn repository(&self) -> Option<&str> {
        self.repository.as_deref()
    }

    /// What was being done (`manifest a/b:v1`, `pushing sha256:… to a/b`, ...).
    pub fn action(&self) -> &str {
        &self.action
    }

    /// The HTTP status of the registry's answer, when it answered.
    pub fn http_status(&self) -> Option<u16> {
        self.status
    }
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for RegistryError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// An error and its causes, `: `-separated (for log lines and for callers that show a
/// [`RegistryError`] as text). A cause whose text the message already holds (an error
/// reworded with `RegistryError::context`) is not repeated.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        let c_s = c.to_string();
        if !s.contains(&c_s) {
            s.push_str(": ");
            s.push_str(&c_s);
        }
        src = c.source();
    }
    s
}

/// The kind of a transport failure, from the error's type (never its text): a TLS failure
/// (certificate, handshake, a corrupt record from a server that does not speak TLS) surfaces
/// as an `io::Error` of kind `InvalidData`, HTTP spoken to a TLS server as a hyper parse
/// error; both fail the same way again. Everything else (refused, reset or dropped
/// connections, timeouts, name resolution) may go away.
pub(crate) fn classify(e: &reqwest::Error) -> ErrorKind {
    if e.is_builder() || e.is_redirect() {
        return ErrorKind::Protocol;
    }
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(c) = cause {
        if c.downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_parse)
        {
            return ErrorKind::Protocol;
        }
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::InvalidData {
                return ErrorKind::Protocol;
            }
            // `io::Error::source` skips the wrapped error itself: look at it directly.
            if let Some(inner) = io.get_ref() {
                cause = Some(inner as &(dyn std::error::Error + 'static));
                continue;
            }
        }
        cause = c.source();
    }
    ErrorKind::Transient
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_have_kinds() {
        assert_eq!(
            ErrorKind::of_status(StatusCode::UNAUTHORIZED),
            ErrorKind::Auth
        );
        assert_eq!(ErrorKind::of_status(StatusCode::FORBIDDEN), ErrorKind::Auth);
        assert_eq!(
            ErrorKind::of_status(StatusCode::NOT_FOUND),
            ErrorKind::NotFound
        );
        assert_eq!(
            ErrorKind::of_status(StatusCode::BAD_GATEWAY),
            ErrorKind::Transient
        );
        assert_eq!(
            ErrorKind::of_status(StatusCode::RANGE_NOT_SATISFIABLE),
            ErrorKind::Protocol
        );
    }

    #[test]
    fn context_keeps_the_kind_and_shows_the_cause() {
        let e = RegistryError::new(ErrorKind::Transient, "h:1", "pushing x", "h:1: HTTP 500")
            .repo("a/b")
            .status(StatusCode::INTERNAL_SERVER_ERROR)
            .context("gave up after 4 attempts");
        assert!(e.is_transient());
        assert_eq!(
            (e.host(), e.repository(), e.http_status()),
            ("h:1", Some("a/b"), Some(500))
        );
        assert_eq!(e.to_string(), "gave up after 4 attempts");
        let cause = std::error::Error::source(&e).unwrap().to_string();
        assert_eq!(cause, "h:1: HTTP 500");
    }

    /// A loopback server that answers the first bytes of every connection with `reply` (and
    /// then closes it).
    async fn server(reply: &'static [u8]) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            while let Ok((mut c, _)) = l.accept().await {
                let mut buf = [0u8; 512];
                let _ = c.read(&mut buf).await;
                let _ = c.write_all(reply).await;
            }
        });
        addr
    }

    async fn failure(addr: &str, plain_http: bool) -> RegistryError {
        let opts = crate::RegistryOptions {
            plain_http,
            retries: 0,
            ..Default::default()
        };
        let reg = crate::Registry::new(addr, opts).unwrap();
        reg.blob_size("a/b", "sha256:00").await.unwrap_err()
    }

    #[tokio::test]
    async fn transport_failures_are_classified_by_type() {
        // HTTPS to a server that does not speak TLS: a corrupt record, not retried.
        let http = server(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").await;
        let e = failure(&http, false).await;
        assert_eq!(e.kind(), ErrorKind::Protocol, "{e}");
        assert_eq!((e.host(), e.repository()), (http.as_str(), Some("a/b")));
        // HTTP to a server answering with a TLS alert: a parse error, not retried.
        let tls = server(b"\x15\x03\x03\x00\x02\x02\x46").await;
        let e = failure(&tls, true).await;
        assert_eq!(e.kind(), ErrorKind::Protocol, "{e}");
        // A connection closed without an answer: transient.
        let gone = server(b"").await;
        let e = failure(&gone, true).await;
        assert_eq!(e.kind(), ErrorKind::Transient, "{e}");
        // Nothing listening: transient (the registry may be starting).
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let closed = l.local_addr().unwrap().to_string();
        drop(l);
        let e = failure(&closed, true).await;
        assert_eq!(e.kind(), ErrorKind::Transient, "{e}");
    }
}
