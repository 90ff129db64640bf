//! Image references: `[host[:port]/]repository[:tag][@sha256:digest]`, with Docker Hub's
//! defaults (`docker.io`, `library/`, `latest`).

use std::fmt;

use super::error::{OciError, ReferenceProblem};

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// Registry host (and port).
    pub host: String,
    /// Repository path (`library/ubuntu`).
    pub repository: String,
    pub tag: Option<String>,
    /// `sha256:<hex>`.
    pub digest: Option<String>,
}

impl Reference {
    pub fn parse(s: &str) -> Result<Reference, OciError> {
        let bad = |problem| OciError::Reference {
            reference: s.to_string(),
            problem,
        };
        if s.is_empty() || s.contains(char::is_whitespace) || s.contains("://") {
            return Err(bad(ReferenceProblem::Shape));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => {
                let hex = d
                    .strip_prefix("sha256:")
                    .ok_or_else(|| bad(ReferenceProblem::DigestAlgorithm))?;
                if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(bad(ReferenceProblem::DigestHex));
                }
                (r, Some(d.to_string()))
            }
            None => (s, None),
        };
        let (host, path) = match rest.split_once('/') {
            Some((h, p)) if h.contains('.') || h.contains(':') || h == "localhost" => {
                (h.to_string(), p.to_string())
            }
            _ => ("docker.io".to_string(), rest.to_string()),
        };
        let (repo, tag) = match path.rsplit_once(':') {
            Some((r, t)) if !t.contains('/') => (r.to_string(), Some(t.to_string())),
            _ => (path.clone(), None),
        };
        if repo.is_empty()
            || repo.split('/').any(|c| {
                c.is_empty()
                    || !c.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b)
                    })
            })
        {
            return Err(bad(ReferenceProblem::Repository));
        }
        if let Some(t) = &tag {
            if t.is_empty()
                || t.len() > 128
                || !t
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
            {
                return Err(bad(ReferenceProblem::Tag));
            }
        }
        let repository = if host == "docker.io" && !repo.contains('/') {
            format!("library/{repo}")
        } else {
            repo
        };
        let tag = if tag.is_none() && digest.is_none() {
            Some("latest".to_string())
        } else {
            tag
        };
        Ok(Reference {
            host,
            repository,
            tag,
            digest,
        })
    }

    /// What to put after `/manifests/`: the digest if given, else the tag.
    pub fn target(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }

    /// The same repository with another tag (and no digest).
    pub fn with_tag(&self, tag: &str) -> Reference {
        Reference {
            tag: Some(tag.to_string()),
            digest: None,
            ..self.clone()
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.host, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_references() {
        let r = Reference::parse("127.0.0.1:5000/a/b:v1").unwrap();
        assert_eq!(
            (r.host.as_str(), r.repository.as_str()),
            ("127.0.0.1:5000", "a/b")
        );
        assert_eq!(r.target(), "v1");
        let r = Reference::parse("ubuntu").unwrap();
        assert_eq!(r.to_string(), "docker.io/library/ubuntu:latest");
        let d = format!("sha256:{}", "a".repeat(64));
        let r = Reference::parse(&format!("localhost/x@{d}")).unwrap();
        assert_eq!((r.tag.as_deref(), r.target()), (None, d.as_str()));
        for (bad, problem) in [
            ("", ReferenceProblem::Shape),
            ("http://x/y", ReferenceProblem::Shape),
            ("Host/UPPER", ReferenceProblem::Repository),
            ("x:y:z/", ReferenceProblem::Repository),
            ("a@sha256:12", ReferenceProblem::DigestHex),
            ("a@md5:12", ReferenceProblem::DigestAlgorithm),
            ("a/b:", ReferenceProblem::Tag),
        ] {
            assert_eq!(
                Reference::parse(bad),
                Err(OciError::Reference {
                    reference: bad.to_string(),
                    problem
                }),
                "{bad}"
            );
        }
        assert_eq!(
            Reference::parse("a/b:").unwrap_err().to_string(),
            "invalid image reference \"a/b:\": invalid tag"
        );
    }
}
