//! Request signing for the object-store backends, without I/O.
//!
//! A [`Request`] is a plain value (method, scheme, host, raw path, query pairs, headers, payload
//! hash); a signer turns it and a [`Timestamp`] passed in by the caller into the headers to add
//! ([`Signed`]). Nothing here opens a socket or reads a clock: any HTTP client sends the result,
//! and the signers are tested against fixed vectors produced by the official clients
//! (`tests/sign_vectors.py`, files in `vectors/`). The shape follows rusty-s3.
//!
//! - [`sigv4`]: AWS Signature Version 4 for S3 (`AWS4-HMAC-SHA256`), path-style buckets.
//! - [`oss`]: Alibaba Cloud OSS signatures V1 (`OSS ak:sig`) and V4 (`OSS4-HMAC-SHA256`),
//!   virtual-hosted buckets.
//! - [`crc64`]: the CRC-64/ECMA-182 OSS reports in `x-oss-hash-crc64ecma`.
//!
//! Secrets live in [`Secret`], whose `Debug` prints `***` and which has no `Display`.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

pub mod crc64;
pub mod oss;
pub mod sigv4;
mod time;

pub use time::Timestamp;

/// A secret (an access key secret). Its `Debug` prints `***`; it has no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(secret: impl Into<String>) -> Self {
        Secret(secret.into())
    }

    /// The secret itself, for the signers (and nothing that prints or logs).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// An access key pair.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret: Secret,
}

impl Credentials {
    pub fn new(access_key_id: impl Into<String>, secret: impl Into<String>) -> Self {
        Credentials {
            access_key_id: access_key_id.into(),
            secret: Secret::new(secret),
        }
    }
}

/// An HTTP method.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    Get,
    Head,
    Put,
    Post,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Put => "PUT",
            Method::Post => "POST",
            Method::Delete => "DELETE",
        }
    }

    /// `GET`, `HEAD`, ... (upper case only).
    pub fn parse(s: &str) -> Option<Method> {
        Some(match s {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "PUT" => Method::Put,
            "POST" => Method::Post,
            "DELETE" => Method::Delete,
            _ => return None,
        })
    }
}

/// `http` or `https`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    pub fn parse(s: &str) -> Option<Scheme> {
        match s {
            "http" => Some(Scheme::Http),
            "https" => Some(Scheme::Https),
            _ => None,
        }
    }

    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

/// What the signature says about the body.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Payload {
    /// The body is not hashed (`UNSIGNED-PAYLOAD`).
    Unsigned,
    /// The sha256 of the body.
    Sha256([u8; 32]),
}

/// `UNSIGNED-PAYLOAD`, the payload hash of an unhashed body.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

impl Payload {
    /// The sha256 of `body`.
    pub fn of(body: &[u8]) -> Payload {
        Payload::Sha256(Sha256::digest(body).into())
    }

    /// The sha256 of an empty body (GET, HEAD, DELETE, most POSTs).
    pub fn empty() -> Payload {
        Payload::of(b"")
    }

    /// `UNSIGNED-PAYLOAD` or 64 lower-case hex digits.
    pub fn parse(s: &str) -> Option<Payload> {
        if s == UNSIGNED_PAYLOAD {
            return Some(Payload::Unsigned);
        }
        if s.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            let pair = s.get(2 * i..2 * i + 2)?;
            if pair.bytes().any(|b| b.is_ascii_uppercase()) {
                return None;
            }
            *byte = u8::from_str_radix(pair, 16).ok()?;
        }
        Some(Payload::Sha256(out))
    }

    /// The value of `x-amz-content-sha256`.
    pub fn as_header_value(&self) -> String {
        match self {
            Payload::Unsigned => UNSIGNED_PAYLOAD.to_string(),
            Payload::Sha256(h) => hex(h),
        }
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_header_value())
    }
}

/// One HTTP request to sign, as a value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    pub scheme: Scheme,
    /// `host[:port]`, as in the URL.
    pub host: String,
    /// The raw (not URI-encoded) path, starting with `/`: `/bucket/key` for S3 path-style,
    /// `/key` for OSS virtual-hosted style. The signers and [`Request::url`] encode it.
    pub path: String,
    /// Query parameters in the order they are sent, raw; a value may be empty (`uploads`).
    pub query: Vec<(String, String)>,
    /// Headers to send and sign besides those the signer adds.
    pub headers: Vec<(String, String)>,
    /// The body's hash (only SigV4 signs it; OSS V4 always says `UNSIGNED-PAYLOAD`).
    pub payload: Payload,
}

impl Request {
    /// A request without query, headers or body (the payload is the empty body's hash).
    pub fn new(method: Method, scheme: Scheme, host: impl Into<String>, path: &str) -> Self {
        let path = if path.starts_with('/') {
            path.to_string()
        } else {
            format!("/{path}")
        };
        Request {
            method,
            scheme,
            host: host.into(),
            path,
            query: Vec::new(),
            headers: Vec::new(),
            payload: Payload::empty(),
        }
    }

    /// Adds a query parameter (`value` may be empty).
    pub fn with_query(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.query.push((key.into(), value.into()));
        self
    }

    /// Adds a header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn with_payload(mut self, payload: Payload) -> Self {
        self.payload = payload;
        self
    }

    /// The first header named `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `Host` header an HTTP client sends for this request: the request's `host` header if
    /// it has one, else [`Request::host`] lower-cased, without the scheme's default port.
    pub fn host_header(&self) -> String {
        if let Some(h) = self.header("host") {
            return h.to_string();
        }
        let host = self.host.to_ascii_lowercase();
        let default = format!(":{}", self.scheme.default_port());
        match host.strip_suffix(&default) {
            Some(bare) if !bare.is_empty() => bare.to_string(),
            _ => host,
        }
    }

    /// The URL to send: the path and query URI-encoded ([`uri_encode`]), an empty query value
    /// sent as a bare key (`?uploads`).
    pub fn url(&self) -> String {
        let mut url = format!(
            "{}://{}{}",
            self.scheme.as_str(),
            self.host,
            uri_encode(&self.path, true)
        );
        for (i, (k, v)) in self.query.iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            url.push_str(&uri_encode(k, false));
            if !v.is_empty() {
                url.push('=');
                url.push_str(&uri_encode(v, false));
            }
        }
        url
    }

    /// The request with `signed`'s headers added (replacing headers of the same names).
    pub fn with_signed(mut self, signed: &Signed) -> Self {
        self.headers.retain(|(n, _)| {
            !signed
                .headers
                .iter()
                .any(|(s, _)| s.eq_ignore_ascii_case(n))
        });
        self.headers.extend(signed.headers.iter().cloned());
        self
    }
}

/// What a signer produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signed {
    /// The headers to add, names lower-case, sorted by name (`authorization`, the date, ...).
    pub headers: Vec<(String, String)>,
    /// The canonical request that was hashed (SigV4 and OSS V4; `None` for OSS V1).
    pub canonical_request: Option<String>,
    /// The string whose HMAC is the signature.
    pub string_to_sign: String,
}

impl Signed {
    /// The value of the added header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

impl From<SystemTime> for Timestamp {
    fn from(t: SystemTime) -> Self {
        let unix_seconds = match t.duration_since(UNIX_EPOCH) {
            Ok(d) => d.as_secs() as i64,
            Err(e) => -(e.duration().as_secs_f64().ceil() as i64),
        };
        Timestamp { unix_seconds }
    }
}

/// URI-encodes `s` as SigV4 and OSS V4 want it: every byte of its UTF-8 except the unreserved
/// characters `A-Z a-z 0-9 - _ . ~` becomes `%XX` (upper-case hex); `/` is kept when
/// `keep_slash` (paths) and encoded otherwise (query keys and values).
pub fn uri_encode(s: &str, keep_slash: bool) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (keep_slash && b == b'/')
        {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 15) as usize] as char);
        }
    }
    out
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(HEX[(b >> 4) as usize] as char);
        out.push(HEX[(b & 15) as usize] as char);
    }
    out
}

pub(crate) fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    use hmac::{Hmac, Mac};
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(msg);
    mac.finalize().into_bytes().into()
}

pub(crate) fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

/// Header values as signatures canonicalize them: leading and trailing whitespace removed.
pub(crate) fn trim(v: &str) -> &str {
    v.trim_matches(|c: char| c == ' ' || c == '\t')
}

#[cfg(test)]
pub(crate) mod vectors {
    //! The request value as `tests/sign_vectors.py` writes it, for the vector tests.

    use serde::{Deserialize, Serialize};

    use super::{Method, Payload, Request, Scheme};

    /// Fields in sorted order: the vector files are written with sorted keys, and the tests
    /// require serde_json to reproduce them byte for byte.
    #[derive(Clone, Debug, Deserialize, Serialize)]
    pub struct JsonRequest {
        pub headers: Vec<(String, String)>,
        pub host: String,
        pub method: String,
        pub path: String,
        pub payload: String,
        pub query: Vec<(String, String)>,
        pub scheme: String,
    }

    impl JsonRequest {
        pub fn to_request(&self) -> Request {
            let mut r = Request::new(
                Method::parse(&self.method).unwrap(),
                Scheme::parse(&self.scheme).unwrap(),
                self.host.clone(),
                &self.path,
            );
            r.query = self.query.clone();
            r.headers = self.headers.clone();
            r.payload = Payload::parse(&self.payload).unwrap();
            r
        }
    }

    /// serde_json's pretty form plus the newline the Python writer ends with.
    pub fn to_json<T: Serialize>(doc: &T) -> String {
        serde_json::to_string_pretty(doc).unwrap() + "\n"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_printed() {
        let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        let creds = Credentials::new("AKIAIOSFODNN7EXAMPLE", secret);
        assert_eq!(format!("{:?}", creds.secret), "***");
        for shown in [format!("{creds:?}"), format!("{creds:#?}")] {
            assert!(!shown.contains(secret), "{shown}");
            assert!(!shown.contains("wJalr"), "{shown}");
            assert!(shown.contains("AKIAIOSFODNN7EXAMPLE"), "{shown}");
        }
        let bucket = oss::Bucket::new(Scheme::Https, "oss-cn-hangzhou.aliyuncs.com", "b");
        let req = bucket.object(Method::Get, "k");
        let signed = oss::sign_v1(&req, "b", &creds, Timestamp { unix_seconds: 0 });
        let signed4 = oss::sign_v4(
            &req,
            &oss::V4Params::new("b", "cn-hangzhou"),
            &creds,
            Timestamp { unix_seconds: 0 },
        );
        let s3 = sigv4::Bucket::new(Scheme::Http, "127.0.0.1:9000", "us-east-1", "b");
        let signed_s3 = s3.sign(
            &s3.object(Method::Get, "k"),
            &creds,
            Timestamp { unix_seconds: 0 },
        );
        for shown in [
            format!("{signed:?}"),
            format!("{signed4:?}"),
            format!("{signed_s3:?}"),
            format!("{:?}", req.clone().with_signed(&signed)),
        ] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }

    #[test]
    fn uri_encoding() {
        assert_eq!(uri_encode("a-b_c.d~e/f", true), "a-b_c.d~e/f");
        assert_eq!(uri_encode("a-b_c.d~e/f", false), "a-b_c.d~e%2Ff");
        assert_eq!(
            uri_encode("a b+c=d&é€", false),
            "a%20b%2Bc%3Dd%26%C3%A9%E2%82%AC"
        );
        assert_eq!(uri_encode("$*()!'", true), "%24%2A%28%29%21%27");
    }

    #[test]
    fn payload_round_trip() {
        let e = Payload::empty();
        assert_eq!(
            e.as_header_value(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(Payload::parse(&e.as_header_value()), Some(e));
        assert_eq!(Payload::parse("UNSIGNED-PAYLOAD"), Some(Payload::Unsigned));
        assert_eq!(Payload::parse("E3B0"), None);
        assert_eq!(
            Payload::parse("E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"),
            None
        );
    }

    #[test]
    fn urls_and_hosts() {
        let r = Request::new(Method::Put, Scheme::Https, "S3.example.com:443", "/b/a b+c")
            .with_query("uploadId", "x/y")
            .with_query("partNumber", "1")
            .with_query("uploads", "");
        assert_eq!(
            r.url(),
            "https://S3.example.com:443/b/a%20b%2Bc?uploadId=x%2Fy&partNumber=1&uploads"
        );
        assert_eq!(r.host_header(), "s3.example.com");
        let r = Request::new(Method::Get, Scheme::Http, "127.0.0.1:9000", "k");
        assert_eq!(r.path, "/k");
        assert_eq!(r.host_header(), "127.0.0.1:9000");
        let r = Request::new(Method::Get, Scheme::Http, "[::1]:80", "/");
        assert_eq!(r.host_header(), "[::1]");
        let r = r.with_header("Host", "other");
        assert_eq!(r.host_header(), "other");
    }

    #[test]
    fn signed_headers_replace() {
        let r = Request::new(Method::Get, Scheme::Http, "h", "/")
            .with_header("X-Amz-Date", "old")
            .with_header("Range", "bytes=0-1");
        let s = Signed {
            headers: vec![("x-amz-date".into(), "new".into())],
            canonical_request: None,
            string_to_sign: String::new(),
        };
        let r = r.with_signed(&s);
        assert_eq!(r.header("x-amz-date"), Some("new"));
        assert_eq!(r.header("range"), Some("bytes=0-1"));
        assert_eq!(r.headers.len(), 2);
    }

    #[test]
    fn timestamps_from_system_time() {
        use std::time::Duration;
        let t = UNIX_EPOCH + Duration::from_secs(1369353600);
        assert_eq!(Timestamp::from(t).unix_seconds, 1369353600);
        let before = UNIX_EPOCH - Duration::from_millis(1500);
        assert_eq!(Timestamp::from(before).unix_seconds, -2);
    }
}
