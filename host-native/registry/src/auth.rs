//! Credentials and authentication: user name and password given or read from a Docker
//! `config.json`, the `WWW-Authenticate` challenge, basic auth and the bearer-token flow.
//! Credentials are never printed: `Debug` redacts the password and no message includes either.

use std::path::{Path, PathBuf};

use base64::Engine;

use crate::client::{describe, Registry};
use crate::error::{classify, ErrorKind, RegistryError, Result};

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
            Err(e) => {
                return Err(RegistryError::io(
                    host,
                    format!("reading {}", path.display()),
                    e,
                ))
            }
        };
        let bad = |what: String| {
            let msg = format!("{}: {what}", path.display());
            RegistryError::new(ErrorKind::Auth, host, "reading credentials", msg)
        };
        let v: serde_json::Value =
            serde_json::from_slice(&text).map_err(|e| bad("not JSON".into()).caused_by(e))?;
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
                .map_err(|e| bad(format!("auths.{host}.auth is not base64")).caused_by(e))?;
            let s = String::from_utf8(raw)
                .map_err(|e| bad(format!("auths.{host}.auth is not UTF-8")).caused_by(e))?;
            let (u, p) = s
                .split_once(':')
                .ok_or_else(|| bad(format!("auths.{host}.auth is not user:password")))?;
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

/// A bearer token given as is (a backend's `registry_token`), sent before any challenge.
/// `Debug` redacts it.
#[derive(Clone, PartialEq, Eq)]
pub struct BearerToken(pub String);

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerToken(<redacted>)")
    }
}

/// What `WWW-Authenticate` asks for.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

pub(crate) fn parse_challenge(h: &str) -> Option<Challenge> {
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

/// The hint closing an authentication failure: whether credentials were given at all.
pub(crate) fn credentials_hint(given: bool, docker_login: bool) -> &'static str {
    match (given, docker_login) {
        (true, _) => ": check the credentials",
        (false, true) => ": credentials are needed (docker login, or give them)",
        (false, false) => ": credentials are needed",
    }
}

impl Registry {
    /// A bearer token for `scope` from the token service at `realm`.
    pub(crate) async fn token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: &str,
    ) -> Result<String> {
        let host = self.host();
        let action = format!("token for {scope}");
        let mut req = self.http.get(realm).query(&[("scope", scope)]);
        if let Some(s) = service {
            req = req.query(&[("service", s)]);
        }
        if let Some(c) = &self.opts.credentials {
            req = req.basic_auth(&c.username, Some(&c.password));
        }
        let resp = self.execute(req).await.map_err(|e| {
            let kind = classify(&e);
            let msg = format!("{host}: token request failed: {}", describe(e));
            RegistryError::new(kind, host, action.clone(), msg)
        })?;
        if !resp.status().is_success() {
            let status = resp.status();
            let msg = format!(
                "{host}: the token service refused {scope} (HTTP {status}){}",
                credentials_hint(self.opts.credentials.is_some(), false)
            );
            return Err(RegistryError::new(ErrorKind::Auth, host, action, msg).status(status));
        }
        let body = resp.bytes().await.map_err(|e| {
            let kind = classify(&e);
            let msg = format!("{host}: token response: {}", describe(e));
            RegistryError::new(kind, host, action.clone(), msg)
        })?;
        let v: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
            let msg = format!("{host}: token response is not JSON: {e}");
            RegistryError::new(ErrorKind::Protocol, host, action.clone(), msg)
        })?;
        v.get("token")
            .or_else(|| v.get("access_token"))
            .and_then(|t| t.as_str())
            .map(str::to_string)
            .ok_or_else(|| {
                let msg = format!("{host}: the token response has no token");
                RegistryError::new(ErrorKind::Protocol, host, action, msg)
            })
    }
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

    #[test]
    fn unreadable_docker_config_is_an_auth_error_without_the_secret() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("config.json");
        std::fs::write(&p, r#"{"auths":{"h:1":{"auth":"not base64 s3cret!"}}}"#).unwrap();
        let e = Credentials::from_docker_config("h:1", Some(&p)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Auth);
        assert!(e.to_string().contains("is not base64"), "{e}");
        assert!(!e.to_string().contains("s3cret"), "{e}");
    }
}
