//! The one backend configuration: where a command's blobs live, as `--backend-type` with
//! `--backend-config <json>` or `--backend-config-file <file>` (and nydusify's
//! `--target-backend-*` / `--source-backend-*`) describe it. Every command parses it with
//! [`parse`]; [`crate::open_backend`] opens it for reading, [`crate::upload`] writes to it.
//!
//! Types and keys (`shared/spec/backends.md` §1):
//! - `localfs`: `{"dir": D}` (blobs named by id in D) or `{"blob_file": F}` (one blob), with
//!   `"alt_dirs": [..]` searched after `dir` by commands that read blobs. `dir` wins when both
//!   are given; an empty string is the same as the key left out (upstream's defaults).
//! - `registry`: `scheme`, `host`, `repo`, `auth` (base64 of `user:password`; the
//!   `IMAGE_PULL_AUTH` environment variable overrides it), `registry_token`, `skip_verify`,
//!   `ca_cert_files`, `blob_redirected_host`, `blob_url_scheme`.
//! - `s3`: `endpoint` (`host[:port]`, no scheme; `s3.amazonaws.com` when left out), `scheme`
//!   (`https`), `region` (required), `bucket_name` (required), `access_key_id`,
//!   `access_key_secret`, `object_prefix`, `meta_prefix`, `part_size` (ours: bytes of a
//!   multipart part and the single-PUT threshold, 200 MiB by default).
//! - `oss`: `endpoint` (required), `scheme`, `bucket_name`, `access_key_id`,
//!   `access_key_secret`, `object_prefix`, `meta_prefix`, `region` (V4; else taken from an
//!   `oss-<region>.aliyuncs.com` endpoint), `signature_version` (`v4`, the default, or `v1`),
//!   `part_size`. As upstream, the OSS keys take JSON strings only (numbers as strings).
//! - every remote type: `timeout`, `connect_timeout` (seconds, default 5), `retry_limit`
//!   (ours: 3 by default; upstream 0), `skip_verify`, `proxy: {url, fallback}` (reads go through
//!   the HTTP proxy at `url`, and straight to the backend when it is down and `fallback`, the
//!   default, holds), and the nydusd keys accepted and unused (`ping_url`, `check_interval`,
//!   `use_http` of `proxy`; `mirrors`).
//!
//! An access key pair is both keys or neither (anonymous requests). Unknown keys, values of
//! the wrong JSON type, a missing bucket, region or endpoint, an endpoint with a scheme or a
//! path, a bad `auth` are errors naming the key, before any work. Secrets are kept as
//! [`Secret`], which never prints.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine as _;
use serde_json::{Map, Value};

use crate::sign::{oss::region_from_endpoint, Credentials, Scheme, Secret};

/// A parsed backend configuration.
/// New backend types become variants here, so that every command has to decide about them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendConfig {
    /// Blobs in local files.
    Localfs {
        /// The blob directory or the one blob file.
        blobs: LocalBlobs,
        /// Further directories searched for blobs after `dir`.
        alt_dirs: Vec<PathBuf>,
    },
    /// Blobs in an OCI registry repository, by digest.
    Registry(RegistryConfig),
    /// Blobs in an S3 bucket (path-style URLs, SigV4).
    S3(S3Config),
    /// Blobs in an Alibaba Cloud OSS bucket (virtual-hosted URLs, V4 or V1 signatures).
    Oss(OssConfig),
}

/// Where a localfs backend's blobs are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalBlobs {
    /// `{"dir": D}`: blobs named by id in D.
    Dir(PathBuf),
    /// `{"blob_file": F}`: one blob file.
    File(PathBuf),
}

/// What every remote backend takes about its HTTP connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpOptions {
    /// Time allowed for one read request (`timeout`; uploads get more per byte sent).
    pub timeout: Duration,
    /// Time allowed to connect (`connect_timeout`).
    pub connect_timeout: Duration,
    /// Retries of a request that failed transiently (5xx, a dropped connection, a timeout).
    pub retry_limit: u32,
    /// Accept any TLS certificate (`skip_verify`).
    pub skip_verify: bool,
    /// An HTTP proxy for reads (`proxy.url`), and whether to go direct when it is down.
    pub proxy: Option<ProxyConfig>,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            retry_limit: 3,
            skip_verify: false,
            proxy: None,
        }
    }
}

/// `proxy: {"url": ..., "fallback": true}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyConfig {
    /// `http://host:port` of the proxy.
    pub url: String,
    /// Read straight from the backend when the proxy cannot be reached.
    pub fallback: bool,
}

/// A registry repository as a blob backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryConfig {
    pub scheme: Scheme,
    /// `host[:port]`.
    pub host: String,
    /// `namespace/name`.
    pub repo: String,
    /// `user:password` as given in `auth` (base64), decoded.
    pub auth: Option<(String, Secret)>,
    /// A bearer token to send as is (`registry_token`).
    pub registry_token: Option<Secret>,
    /// Extra CA certificates (PEM files).
    pub ca_cert_files: Vec<PathBuf>,
    /// The host that redirected blob requests go to instead (`blob_redirected_host`).
    pub blob_redirected_host: Option<String>,
    pub http: HttpOptions,
}

/// An S3 bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Config {
    pub scheme: Scheme,
    /// `host[:port]`.
    pub endpoint: String,
    pub region: String,
    pub bucket_name: String,
    /// `None`: anonymous requests.
    pub credentials: Option<Credentials>,
    /// Blobs are at `{object_prefix}{blob_id}`.
    pub object_prefix: String,
    /// Bootstraps pushed by `pack` are at `{meta_prefix}{name}`.
    pub meta_prefix: String,
    /// Bytes of a multipart part; smaller objects go in one PUT.
    pub part_size: u64,
    pub http: HttpOptions,
}

/// How OSS requests are signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OssSignature {
    /// `OSS ak:signature` (what upstream sends; old deployments).
    V1,
    /// `OSS4-HMAC-SHA256` (the default).
    V4,
}

/// An OSS bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OssConfig {
    pub scheme: Scheme,
    /// `host[:port]`, without the bucket (`oss-cn-hangzhou.aliyuncs.com`).
    pub endpoint: String,
    pub bucket_name: String,
    /// The region V4 signs for (given, or from the endpoint); `None` only with V1.
    pub region: Option<String>,
    pub signature: OssSignature,
    pub credentials: Option<Credentials>,
    pub object_prefix: String,
    pub meta_prefix: String,
    pub part_size: u64,
    pub http: HttpOptions,
}

/// Upstream's part size (and single-PUT threshold).
pub const DEFAULT_PART_SIZE: u64 = 200 << 20;
/// The largest part S3 and OSS take.
pub const MAX_PART_SIZE: u64 = 5 << 30;

impl BackendConfig {
    /// The blob directory of a localfs backend (`None` for a single blob file or another type).
    pub fn dir(&self) -> Option<&Path> {
        match self {
            BackendConfig::Localfs {
                blobs: LocalBlobs::Dir(d),
                ..
            } => Some(d),
            _ => None,
        }
    }

    /// The type's name as `--backend-type` spells it.
    pub fn kind(&self) -> &'static str {
        match self {
            BackendConfig::Localfs { .. } => "localfs",
            BackendConfig::Registry(_) => "registry",
            BackendConfig::S3(_) => "s3",
            BackendConfig::Oss(_) => "oss",
        }
    }
}

/// How a command names its backend options, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackendFlags<'a> {
    /// The options' common prefix: `--backend`, `--target-backend` or `--source-backend`.
    pub prefix: &'a str,
    /// The program, for messages.
    pub tool: &'a str,
    /// Whether the command has `<prefix>-config-file`.
    pub config_file: bool,
}

/// Parses backend type `kind` with its configuration: the JSON text `config`, else the file
/// `config_file` (`config` wins when both are given).
pub fn parse(
    flags: BackendFlags<'_>,
    kind: &str,
    config: Option<&str>,
    config_file: Option<&Path>,
) -> Result<BackendConfig> {
    let p = flags.prefix;
    if !["localfs", "registry", "s3", "oss"].contains(&kind) {
        bail!("invalid {p}-type {kind:?}: expected localfs, registry, oss or s3");
    }
    let (text, shown) = match (config, config_file) {
        (Some(_), Some(_)) => bail!("give {p}-config or {p}-config-file, not both"),
        (Some(c), None) => (c.to_string(), format!("{p}-config")),
        (None, Some(f)) => (
            std::fs::read_to_string(f)
                .with_context(|| format!("reading {p}-config-file {}", f.display()))?,
            format!("{p}-config-file {}", f.display()),
        ),
        (None, None) if flags.config_file => {
            bail!("{p}-type {kind} needs {p}-config or {p}-config-file")
        }
        (None, None) => bail!("{p}-type {kind} needs {p}-config"),
    };
    let v: Value =
        serde_json::from_str(&text).with_context(|| format!("{shown} is not valid JSON"))?;
    let env_auth = std::env::var("IMAGE_PULL_AUTH").ok();
    parse_value(kind, &v, env_auth.as_deref()).map_err(|e| anyhow!("{shown}: {e}"))
}

/// Parses a configuration already read as JSON (a nydusd config's `backend.config`).
/// `env_auth` is `IMAGE_PULL_AUTH`, which overrides a registry's `auth`.
pub fn parse_value(kind: &str, v: &Value, env_auth: Option<&str>) -> Result<BackendConfig, String> {
    let obj = v
        .as_object()
        .ok_or_else(|| format!("a {kind} configuration is a JSON object"))?;
    match kind {
        "localfs" => localfs(obj),
        "registry" => registry(&Keys::new(obj, kind, false), env_auth),
        "s3" => s3(&Keys::new(obj, kind, false)),
        "oss" => oss(&Keys::new(obj, kind, true)),
        other => Err(format!(
            "invalid backend type {other:?}: expected localfs, registry, oss or s3"
        )),
    }
}

fn localfs(obj: &Map<String, Value>) -> Result<BackendConfig, String> {
    let string = |key: &str| -> Result<Option<PathBuf>, String> {
        match obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(PathBuf::from(s))),
            Some(_) => Err(format!("{key:?} must be a string")),
        }
    };
    for k in obj.keys() {
        if !["dir", "blob_file", "alt_dirs"].contains(&k.as_str()) {
            return Err(format!(
                "unknown key {k:?} for a localfs backend (expected dir, blob_file or alt_dirs)"
            ));
        }
    }
    let dir = string("dir")?;
    let file = string("blob_file")?;
    let alt_dirs = match obj.get("alt_dirs") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|d| match d {
                Value::String(s) => Ok(PathBuf::from(s)),
                _ => Err("\"alt_dirs\" must be an array of strings".to_string()),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err("\"alt_dirs\" must be an array of strings".into()),
    };
    let blobs = match (dir, file) {
        (Some(d), _) => LocalBlobs::Dir(d),
        (None, Some(f)) => LocalBlobs::File(f),
        (None, None) => return Err("a localfs backend needs \"dir\" or \"blob_file\"".into()),
    };
    Ok(BackendConfig::Localfs { blobs, alt_dirs })
}

/// Keys every remote type takes.
const HTTP_KEYS: &[&str] = &[
    "timeout",
    "connect_timeout",
    "retry_limit",
    "skip_verify",
    "proxy",
    "mirrors",
];

/// Typed access to one configuration object's keys, errors naming the key.
struct Keys<'a> {
    obj: &'a Map<String, Value>,
    kind: &'a str,
    /// Upstream's OSS configuration is a map of strings: other JSON types are refused.
    strings_only: bool,
}

impl<'a> Keys<'a> {
    fn new(obj: &'a Map<String, Value>, kind: &'a str, strings_only: bool) -> Self {
        Keys {
            obj,
            kind,
            strings_only,
        }
    }

    fn only(&self, keys: &[&str]) -> Result<(), String> {
        for k in self.obj.keys() {
            if !keys.contains(&k.as_str()) && !HTTP_KEYS.contains(&k.as_str()) {
                let mut all: Vec<&str> = keys.to_vec();
                all.extend(HTTP_KEYS);
                return Err(format!(
                    "unknown key {k:?} for backend type {} (expected one of {})",
                    self.kind,
                    all.join(", ")
                ));
            }
        }
        Ok(())
    }

    /// A string value; empty or absent is `None`.
    fn string(&self, key: &str) -> Result<Option<String>, String> {
        match self.obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(format!("{key:?} must be a string")),
        }
    }

    fn required(&self, key: &str) -> Result<String, String> {
        self.string(key)?
            .ok_or_else(|| format!("a {} backend needs {key:?}", self.kind))
    }

    fn bool(&self, key: &str, default: bool) -> Result<bool, String> {
        match self.obj.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(Value::Bool(b)) if !self.strings_only => Ok(*b),
            Some(Value::String(s)) => match s.as_str() {
                "true" => Ok(true),
                "false" => Ok(false),
                "" => Ok(default),
                _ => Err(format!("{key:?} must be true or false")),
            },
            Some(_) if self.strings_only => Err(format!(
                "{key:?} must be a string (\"true\" or \"false\"): an oss configuration takes strings only"
            )),
            Some(_) => Err(format!("{key:?} must be true or false")),
        }
    }

    fn number(&self, key: &str) -> Result<Option<u64>, String> {
        let bad = || format!("{key:?} must be a non-negative integer");
        match self.obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) if !self.strings_only => n.as_u64().map(Some).ok_or_else(bad),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| bad()),
            Some(_) if self.strings_only => Err(format!(
                "{key:?} must be a string holding an integer: an oss configuration takes strings only"
            )),
            Some(_) => Err(bad()),
        }
    }

    fn scheme(&self) -> Result<Scheme, String> {
        match self.string("scheme")? {
            None => Ok(Scheme::Https),
            Some(s) => Scheme::parse(&s)
                .ok_or_else(|| format!("\"scheme\" must be \"http\" or \"https\", not {s:?}")),
        }
    }

    /// `host[:port]`: no scheme, no path.
    fn host(&self, key: &str, value: String) -> Result<String, String> {
        if value.contains("://") {
            return Err(format!(
                "{key:?} must be host[:port] without a scheme (give \"scheme\" apart): {value:?}"
            ));
        }
        if value.contains('/') || value.contains(char::is_whitespace) || value.starts_with(':') {
            return Err(format!(
                "{key:?} must be host[:port], without a path: {value:?}"
            ));
        }
        if let Some((_, port)) = value.rsplit_once(':') {
            if !value.ends_with(']') && port.parse::<u16>().is_err() {
                return Err(format!("{key:?} has an invalid port: {value:?}"));
            }
        }
        Ok(value)
    }

    fn http(&self) -> Result<HttpOptions, String> {
        let d = HttpOptions::default();
        let secs = |key: &str, default: Duration| -> Result<Duration, String> {
            Ok(match self.number(key)? {
                Some(0) | None => default,
                Some(n) => Duration::from_secs(n),
            })
        };
        let proxy = match self.obj.get("proxy") {
            None | Some(Value::Null) => None,
            Some(Value::Object(p)) => {
                let keys = Keys::new(p, "proxy", self.strings_only);
                for k in p.keys() {
                    if !["url", "fallback", "ping_url", "check_interval", "use_http"]
                        .contains(&k.as_str())
                    {
                        return Err(format!(
                            "unknown key \"proxy.{k}\" (expected url, fallback, ping_url, check_interval or use_http)"
                        ));
                    }
                }
                let e = |m: String| format!("proxy.{m}");
                keys.string("ping_url").map_err(e)?;
                keys.number("check_interval").map_err(e)?;
                keys.bool("use_http", false).map_err(e)?;
                match keys.string("url").map_err(e)? {
                    None => None,
                    Some(url) => {
                        if !url.starts_with("http://") && !url.starts_with("https://") {
                            return Err(format!(
                                "\"proxy.url\" must be an http:// or https:// URL: {url:?}"
                            ));
                        }
                        Some(ProxyConfig {
                            url,
                            fallback: keys.bool("fallback", true).map_err(e)?,
                        })
                    }
                }
            }
            Some(_) => {
                return Err("\"proxy\" must be an object {\"url\": ..., \"fallback\": ...}".into())
            }
        };
        if let Some(m) = self.obj.get("mirrors") {
            if !matches!(m, Value::Array(_) | Value::Null) {
                return Err("\"mirrors\" must be an array".into());
            }
        }
        let retry_limit = match self.number("retry_limit")? {
            None => d.retry_limit,
            Some(n) => u32::try_from(n).map_err(|_| "\"retry_limit\" is too large".to_string())?,
        };
        Ok(HttpOptions {
            timeout: secs("timeout", d.timeout)?,
            connect_timeout: secs("connect_timeout", d.connect_timeout)?,
            retry_limit,
            skip_verify: self.bool("skip_verify", false)?,
            proxy,
        })
    }

    fn credentials(&self) -> Result<Option<Credentials>, String> {
        match (
            self.string("access_key_id")?,
            self.string("access_key_secret")?,
        ) {
            (Some(id), Some(secret)) => Ok(Some(Credentials::new(id, secret))),
            (None, None) => Ok(None),
            (Some(_), None) => Err(format!(
                "a {} backend with \"access_key_id\" needs \"access_key_secret\"",
                self.kind
            )),
            (None, Some(_)) => Err(format!(
                "a {} backend with \"access_key_secret\" needs \"access_key_id\"",
                self.kind
            )),
        }
    }

    fn bucket(&self) -> Result<String, String> {
        let b = self.required("bucket_name")?;
        let ok = (3..=63).contains(&b.len())
            && b.bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b".-_".contains(&c));
        if !ok {
            return Err(format!(
                "\"bucket_name\" {b:?} is not a bucket name (3 to 63 of a-z, 0-9, '.', '-')"
            ));
        }
        Ok(b)
    }

    fn part_size(&self) -> Result<u64, String> {
        match self.number("part_size")? {
            None => Ok(DEFAULT_PART_SIZE),
            Some(n) if (1..=MAX_PART_SIZE).contains(&n) => Ok(n),
            Some(n) => Err(format!(
                "\"part_size\" {n} is out of range (1 byte to 5 GiB)"
            )),
        }
    }

    fn prefix(&self, key: &str) -> Result<String, String> {
        let p = self.string(key)?.unwrap_or_default();
        if p.starts_with('/') {
            return Err(format!("{key:?} must not start with '/': {p:?}"));
        }
        Ok(p)
    }
}

const REGISTRY_KEYS: &[&str] = &[
    "scheme",
    "host",
    "repo",
    "auth",
    "registry_token",
    "ca_cert_files",
    "blob_redirected_host",
    "blob_url_scheme",
];

fn registry(k: &Keys<'_>, env_auth: Option<&str>) -> Result<BackendConfig, String> {
    k.only(REGISTRY_KEYS)?;
    let host = k.required("host")?;
    let host = k.host("host", host)?;
    let repo = k.required("repo")?;
    if repo.starts_with('/') || repo.ends_with('/') || repo.contains("//") || repo.contains(':') {
        return Err(format!("\"repo\" must be namespace/name: {repo:?}"));
    }
    let (auth_text, from) = match env_auth.filter(|a| !a.is_empty()) {
        Some(a) => (Some(a.to_string()), "IMAGE_PULL_AUTH"),
        None => (k.string("auth")?, "\"auth\""),
    };
    let auth = match auth_text {
        None => None,
        Some(a) => {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(a.trim())
                .map_err(|_| format!("{from} is not base64 (of user:password)"))?;
            let text = String::from_utf8(raw)
                .map_err(|_| format!("{from} is not base64 of UTF-8 text"))?;
            let (user, pass) = text
                .split_once(':')
                .ok_or_else(|| format!("{from} is not base64 of user:password (no ':')"))?;
            Some((user.to_string(), Secret::new(pass)))
        }
    };
    let ca_cert_files = match k.obj.get("ca_cert_files") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(PathBuf::from(s)),
                _ => Err("\"ca_cert_files\" must be an array of strings".to_string()),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err("\"ca_cert_files\" must be an array of strings".into()),
    };
    let blob_redirected_host = match k.string("blob_redirected_host")? {
        Some(h) => Some(k.host("blob_redirected_host", h)?),
        None => None,
    };
    if let Some(s) = k.string("blob_url_scheme")? {
        Scheme::parse(&s).ok_or_else(|| {
            format!("\"blob_url_scheme\" must be \"http\" or \"https\", not {s:?}")
        })?;
    }
    Ok(BackendConfig::Registry(RegistryConfig {
        scheme: k.scheme()?,
        host,
        repo,
        auth,
        registry_token: k.string("registry_token")?.map(Secret::new),
        ca_cert_files,
        blob_redirected_host,
        http: k.http()?,
    }))
}

const S3_KEYS: &[&str] = &[
    "endpoint",
    "scheme",
    "region",
    "bucket_name",
    "access_key_id",
    "access_key_secret",
    "object_prefix",
    "meta_prefix",
    "part_size",
];

fn s3(k: &Keys<'_>) -> Result<BackendConfig, String> {
    k.only(S3_KEYS)?;
    let endpoint = k
        .string("endpoint")?
        .unwrap_or_else(|| "s3.amazonaws.com".into());
    Ok(BackendConfig::S3(S3Config {
        scheme: k.scheme()?,
        endpoint: k.host("endpoint", endpoint)?,
        region: k
            .string("region")?
            .ok_or("an s3 backend needs \"region\" (requests are signed for a region)")?,
        bucket_name: k.bucket()?,
        credentials: k.credentials()?,
        object_prefix: k.prefix("object_prefix")?,
        meta_prefix: k.prefix("meta_prefix")?,
        part_size: k.part_size()?,
        http: k.http()?,
    }))
}

const OSS_KEYS: &[&str] = &[
    "endpoint",
    "scheme",
    "region",
    "bucket_name",
    "access_key_id",
    "access_key_secret",
    "object_prefix",
    "meta_prefix",
    "part_size",
    "signature_version",
];

fn oss(k: &Keys<'_>) -> Result<BackendConfig, String> {
    k.only(OSS_KEYS)?;
    let endpoint = k.required("endpoint")?;
    let endpoint = k.host("endpoint", endpoint)?;
    let signature = match k.string("signature_version")?.as_deref() {
        None | Some("v4") | Some("4") => OssSignature::V4,
        Some("v1") | Some("1") => OssSignature::V1,
        Some(s) => {
            return Err(format!(
                "\"signature_version\" must be \"v4\" or \"v1\", not {s:?}"
            ))
        }
    };
    let region = k
        .string("region")?
        .or_else(|| region_from_endpoint(&endpoint));
    if signature == OssSignature::V4 && region.is_none() {
        return Err(format!(
            "an oss backend signing with V4 needs \"region\": endpoint {endpoint:?} does not \
             name one (oss-<region>.aliyuncs.com); give \"region\", or \"signature_version\": \"v1\""
        ));
    }
    Ok(BackendConfig::Oss(OssConfig {
        scheme: k.scheme()?,
        endpoint,
        bucket_name: k.bucket()?,
        region,
        signature,
        credentials: k.credentials()?,
        object_prefix: k.prefix("object_prefix")?,
        meta_prefix: k.prefix("meta_prefix")?,
        part_size: k.part_size()?,
        http: k.http()?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const IMAGE: BackendFlags<'static> = BackendFlags {
        prefix: "--backend",
        tool: "nydus-image",
        config_file: true,
    };

    fn local(blobs: LocalBlobs) -> BackendConfig {
        BackendConfig::Localfs {
            blobs,
            alt_dirs: Vec::new(),
        }
    }

    fn ok(kind: &str, config: &str) -> BackendConfig {
        parse_value(kind, &serde_json::from_str(config).unwrap(), None).unwrap()
    }

    fn err(kind: &str, config: &str) -> String {
        format!("{:#}", parse(IMAGE, kind, Some(config), None).unwrap_err())
    }

    #[test]
    fn parses_localfs_configs() {
        assert_eq!(
            parse(IMAGE, "localfs", Some(r#"{"dir":"/d"}"#), None).unwrap(),
            local(LocalBlobs::Dir("/d".into()))
        );
        assert_eq!(
            parse(IMAGE, "localfs", Some(r#"{"blob_file":"/f"}"#), None).unwrap(),
            local(LocalBlobs::File("/f".into()))
        );
        assert_eq!(
            ok(
                "localfs",
                r#"{"dir":"/d","alt_dirs":["/a","/b"],"blob_file":""}"#
            ),
            BackendConfig::Localfs {
                blobs: LocalBlobs::Dir("/d".into()),
                alt_dirs: vec!["/a".into(), "/b".into()],
            }
        );
        assert!(parse(IMAGE, "localfs", Some("{"), None).is_err());
    }

    /// The S3 example of `oci-nydus-image.md` §10.1, its values filled in.
    #[test]
    fn parses_the_s3_example() {
        let c = ok(
            "s3",
            r#"{ "endpoint": "localhost:9000", "scheme": "http", "region": "us-east-1",
                 "access_key_id": "AK", "access_key_secret": "SK",
                 "bucket_name": "nydus", "object_prefix": "nydus/" }"#,
        );
        let BackendConfig::S3(s) = c else {
            panic!("{c:?}")
        };
        assert_eq!(s.scheme, Scheme::Http);
        assert_eq!(s.endpoint, "localhost:9000");
        assert_eq!(s.region, "us-east-1");
        assert_eq!(s.bucket_name, "nydus");
        assert_eq!(s.object_prefix, "nydus/");
        assert_eq!(s.meta_prefix, "");
        assert_eq!(s.part_size, DEFAULT_PART_SIZE);
        assert_eq!(s.credentials, Some(Credentials::new("AK", "SK")));
        assert_eq!(s.http, HttpOptions::default());
        // The endpoint defaults to AWS's; anonymous without keys; numbers and proxies.
        let BackendConfig::S3(s) = ok(
            "s3",
            r#"{"region":"eu-west-1","bucket_name":"b-1.x","part_size":5242880,"timeout":30,
                "retry_limit":0,"proxy":{"url":"http://127.0.0.1:65001","fallback":false}}"#,
        ) else {
            panic!()
        };
        assert_eq!(s.endpoint, "s3.amazonaws.com");
        assert_eq!(s.scheme, Scheme::Https);
        assert_eq!(s.credentials, None);
        assert_eq!(s.part_size, 5 << 20);
        assert_eq!(s.http.timeout, Duration::from_secs(30));
        assert_eq!(s.http.retry_limit, 0);
        assert_eq!(
            s.http.proxy,
            Some(ProxyConfig {
                url: "http://127.0.0.1:65001".into(),
                fallback: false
            })
        );
    }

    /// The OSS example of §10.1, its values filled in; V4 by default, V1 on request.
    #[test]
    fn parses_the_oss_example() {
        let BackendConfig::Oss(o) = ok(
            "oss",
            r#"{ "endpoint": "oss-cn-hangzhou.aliyuncs.com", "scheme": "https",
                 "access_key_id": "AK", "access_key_secret": "SK",
                 "bucket_name": "nydus", "object_prefix": "nydus/" }"#,
        ) else {
            panic!()
        };
        assert_eq!(o.signature, OssSignature::V4);
        assert_eq!(o.region.as_deref(), Some("cn-hangzhou"));
        assert_eq!(o.object_prefix, "nydus/");
        let BackendConfig::Oss(o) = ok(
            "oss",
            r#"{"endpoint":"region.aliyuncs.com","bucket_name":"nydus","signature_version":"v1",
                "meta_prefix":"meta/","part_size":"1048576","retry_limit":"2"}"#,
        ) else {
            panic!()
        };
        assert_eq!(o.signature, OssSignature::V1);
        assert_eq!(o.region, None);
        assert_eq!(o.meta_prefix, "meta/");
        assert_eq!(o.part_size, 1 << 20);
        assert_eq!(o.http.retry_limit, 2);
        let BackendConfig::Oss(o) = ok(
            "oss",
            r#"{"endpoint":"localhost:9100","scheme":"http","bucket_name":"nydus","region":"cn-x"}"#,
        ) else {
            panic!()
        };
        assert_eq!(o.region.as_deref(), Some("cn-x"));
    }

    /// The registry example of issue 13 (`{"scheme","host","repo","auth"}`).
    #[test]
    fn parses_the_registry_example() {
        let auth = base64::engine::general_purpose::STANDARD.encode("user:pa:ss");
        let text = format!(
            r#"{{"scheme":"https","host":"registry.example.com:5000","repo":"library/app","auth":"{auth}"}}"#
        );
        let BackendConfig::Registry(r) = ok("registry", &text) else {
            panic!()
        };
        assert_eq!(r.host, "registry.example.com:5000");
        assert_eq!(r.repo, "library/app");
        assert_eq!(r.auth, Some(("user".into(), Secret::new("pa:ss"))));
        assert!(!format!("{r:?}").contains("pa:ss"));
        // IMAGE_PULL_AUTH overrides `auth`.
        let other = base64::engine::general_purpose::STANDARD.encode("u2:p2");
        let BackendConfig::Registry(r) = parse_value(
            "registry",
            &serde_json::from_str(&text).unwrap(),
            Some(&other),
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(r.auth, Some(("u2".into(), Secret::new("p2"))));
    }

    #[test]
    fn errors_name_the_flag_and_the_key() {
        assert!(err("ftp", "{}").contains("invalid --backend-type \"ftp\""));
        let e = err("localfs", r#"{"dir":"/d","readahead":true}"#);
        assert!(
            e.contains("--backend-config") && e.contains("\"readahead\""),
            "{e}"
        );
        let e = err("localfs", r#"{"dir":5}"#);
        assert!(e.contains("\"dir\" must be a string"), "{e}");
        let e = err("localfs", r#"{"dir":"/d","alt_dirs":"/a"}"#);
        assert!(e.contains("\"alt_dirs\" must be an array"), "{e}");
        assert!(err("localfs", "{").contains("--backend-config is not valid JSON"));
        assert!(err("localfs", "{}").contains("needs \"dir\" or \"blob_file\""));
        let e = parse(IMAGE, "localfs", None, None).unwrap_err().to_string();
        assert_eq!(
            e,
            "--backend-type localfs needs --backend-config or --backend-config-file"
        );
        let no_file = BackendFlags {
            config_file: false,
            ..IMAGE
        };
        let e = parse(no_file, "s3", None, None).unwrap_err().to_string();
        assert_eq!(e, "--backend-type s3 needs --backend-config");

        let s3 = |extra: &str| {
            err(
                "s3",
                &format!(r#"{{"region":"r","bucket_name":"bkt"{extra}}}"#),
            )
        };
        for (config, wanted) in [
            (
                s3(r#","endpoint":"http://h:1""#),
                "\"endpoint\" must be host[:port] without a scheme",
            ),
            (s3(r#","endpoint":"h:1/x""#), "without a path"),
            (s3(r#","endpoint":"h:99999""#), "invalid port"),
            (
                s3(r#","bucket":"x""#),
                "unknown key \"bucket\" for backend type s3",
            ),
            (
                s3(r#","scheme":"ftp""#),
                "\"scheme\" must be \"http\" or \"https\"",
            ),
            (s3(r#","access_key_id":"a""#), "needs \"access_key_secret\""),
            (s3(r#","part_size":0"#), "\"part_size\" 0 is out of range"),
            (
                s3(r#","timeout":"x""#),
                "\"timeout\" must be a non-negative integer",
            ),
            (
                s3(r#","proxy":{"url":"127.0.0.1:1"}"#),
                "\"proxy.url\" must be an http://",
            ),
            (s3(r#","proxy":{"urls":""}"#), "unknown key \"proxy.urls\""),
            (
                s3(r#","object_prefix":7"#),
                "\"object_prefix\" must be a string",
            ),
            (err("s3", r#"{"bucket_name":"bkt"}"#), "needs \"region\""),
            (
                err("s3", r#"{"region":"r","bucket_name":""}"#),
                "needs \"bucket_name\"",
            ),
            (
                err("s3", r#"{"region":"r","bucket_name":"a/b"}"#),
                "is not a bucket name",
            ),
            (err("oss", r#"{"bucket_name":"bkt"}"#), "needs \"endpoint\""),
            (
                err("oss", r#"{"endpoint":"h:1","bucket_name":"bkt"}"#),
                "needs \"region\"",
            ),
            (
                err(
                    "oss",
                    r#"{"endpoint":"oss-cn-x.aliyuncs.com","bucket_name":"bkt","timeout":5}"#,
                ),
                "\"timeout\" must be a string holding an integer",
            ),
            (
                err(
                    "oss",
                    r#"{"endpoint":"oss-cn-x.aliyuncs.com","bucket_name":"bkt","skip_verify":true}"#,
                ),
                "\"skip_verify\" must be a string",
            ),
            (
                err(
                    "oss",
                    r#"{"endpoint":"oss-cn-x.aliyuncs.com","bucket_name":"bkt","signature_version":"v2"}"#,
                ),
                "\"signature_version\" must be \"v4\" or \"v1\"",
            ),
            (
                err("registry", r#"{"host":"h","repo":"a/b","auth":"%%%"}"#),
                "\"auth\" is not base64",
            ),
            (
                err("registry", r#"{"host":"h","repo":"a/b","auth":"dXNlcg=="}"#),
                "(no ':')",
            ),
            (err("registry", r#"{"repo":"a/b"}"#), "needs \"host\""),
            (err("registry", r#"{"host":"h"}"#), "needs \"repo\""),
            (
                err("registry", r#"{"host":"h","repo":"a/b","region":"x"}"#),
                "unknown key \"region\"",
            ),
        ] {
            assert!(config.contains(wanted), "{config} lacks {wanted}");
            assert!(config.starts_with("--backend-config: "), "{config}");
        }
        // A secret is never in an error.
        let e = err(
            "s3",
            r#"{"region":"r","bucket_name":"bkt","access_key_secret":"S3CR3T"}"#,
        );
        assert!(!e.contains("S3CR3T"), "{e}");
    }

    #[test]
    fn config_files_are_read_and_named() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("backend.json");
        std::fs::write(&f, r#"{"dir":"/d"}"#).unwrap();
        let target = BackendFlags {
            prefix: "--target-backend",
            tool: "nydusify",
            config_file: true,
        };
        let c = parse(target, "localfs", None, Some(&f)).unwrap();
        assert_eq!(c.dir(), Some(Path::new("/d")));
        std::fs::write(&f, r#"{"dir":[]}"#).unwrap();
        let e = format!(
            "{:#}",
            parse(target, "localfs", None, Some(&f)).unwrap_err()
        );
        assert!(
            e.contains("--target-backend-config-file") && e.contains("\"dir\" must be a string"),
            "{e}"
        );
        let e = format!(
            "{:#}",
            parse(target, "localfs", None, Some(&t.path().join("none"))).unwrap_err()
        );
        assert!(e.contains("reading --target-backend-config-file"), "{e}");
    }
}
