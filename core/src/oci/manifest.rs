//! Manifests, indexes and descriptors (OCI image spec and Docker schema 2), kept faithful on a
//! round trip: unknown fields are preserved.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::DocKind;
use super::{media, OciError};

/// A platform of an index entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    #[serde(rename = "os.features", default, skip_serializing_if = "Vec::is_empty")]
    pub os_features: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// `os/arch[/variant]`.
    pub fn parse(s: &str) -> Option<Platform> {
        let mut it = s.split('/');
        let os = it.next().filter(|x| !x.is_empty())?.to_string();
        let architecture = it.next().filter(|x| !x.is_empty())?.to_string();
        let variant = it.next().map(str::to_string);
        if it.next().is_some() {
            return None;
        }
        Some(Platform {
            architecture,
            os,
            variant,
            ..Default::default()
        })
    }

    /// Whether an index entry's platform is the one asked for (`variant` only when asked).
    pub fn matches(&self, want: &Platform) -> bool {
        self.os == want.os
            && self.architecture == want.architecture
            && (want.variant.is_none() || self.variant == want.variant)
    }
}

/// A content descriptor.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType")]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(
        rename = "artifactType",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
}

impl Descriptor {
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.get(key).map(String::as_str)
    }
    /// The digest's hex part (`sha256:<hex>` → `<hex>`).
    pub fn digest_hex(&self) -> &str {
        self.digest.strip_prefix("sha256:").unwrap_or(&self.digest)
    }
}

/// An image manifest.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(
        rename = "artifactType",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub artifact_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Fields this model does not name, kept as they were.
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

impl Manifest {
    /// Whether this is a Docker schema 2 manifest (else OCI).
    pub fn is_docker(&self) -> bool {
        self.media_type.as_deref() == Some(media::DOCKER_MANIFEST)
            || self.config.media_type == media::DOCKER_CONFIG
    }
}

/// An image index or Docker manifest list.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Index {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// What a manifest-typed document is.
#[derive(Debug, Clone, PartialEq)]
pub enum Document {
    Manifest(Box<Manifest>),
    Index(Index),
}

/// Parses a manifest or an index, from the media type the registry gave (or the document's
/// own `mediaType`, or its shape).
pub fn parse_document(media_type: Option<&str>, bytes: &[u8]) -> Result<Document, OciError> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| OciError::NotJson {
        document: DocKind::Document,
        reason: e.to_string(),
    })?;
    let mt = media_type
        .filter(|m| !m.is_empty())
        .map(str::to_string)
        .or_else(|| {
            v.get("mediaType")
                .and_then(Value::as_str)
                .map(str::to_string)
        });
    let is_index = match mt.as_deref() {
        Some(media::OCI_INDEX) | Some(media::DOCKER_LIST) => true,
        Some(media::OCI_MANIFEST) | Some(media::DOCKER_MANIFEST) => false,
        Some(other) if v.get("manifests").is_none() && v.get("layers").is_none() => {
            return Err(OciError::UnsupportedMediaType {
                media_type: other.to_string(),
            })
        }
        _ => v.get("manifests").is_some(),
    };
    if is_index {
        serde_json::from_value(v)
            .map(Document::Index)
            .map_err(|e| OciError::Invalid {
                document: DocKind::Index,
                reason: e.to_string(),
            })
    } else {
        let m: Manifest = serde_json::from_value(v).map_err(|e| OciError::Invalid {
            document: DocKind::Manifest,
            reason: e.to_string(),
        })?;
        if m.schema_version != 2 {
            return Err(OciError::UnsupportedSchemaVersion {
                version: m.schema_version,
            });
        }
        Ok(Document::Manifest(Box::new(m)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_round_trip_with_unknown_fields() {
        let text = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
            "config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:aa","size":3},
            "layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:bb","size":5,
            "annotations":{"k":"v"}}],"x-extra":{"a":1}}"#;
        let Document::Manifest(m) = parse_document(None, text.as_bytes()).unwrap() else {
            panic!()
        };
        assert_eq!(m.layers[0].annotation("k"), Some("v"));
        assert_eq!(m.layers[0].digest_hex(), "bb");
        assert!(!m.is_docker());
        let back: Value = serde_json::to_value(&m).unwrap();
        assert_eq!(back["x-extra"]["a"], 1);
    }

    #[test]
    fn indexes_and_platforms() {
        let text = r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json",
            "manifests":[{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","digest":"sha256:cc","size":7,
            "platform":{"architecture":"arm64","os":"linux","variant":"v8"}}]}"#;
        let Document::Index(i) = parse_document(None, text.as_bytes()).unwrap() else {
            panic!()
        };
        let p = i.manifests[0].platform.as_ref().unwrap();
        assert!(p.matches(&Platform::parse("linux/arm64").unwrap()));
        assert!(!p.matches(&Platform::parse("linux/arm64/v7").unwrap()));
        assert!(Platform::parse("linux").is_none());
        assert_eq!(
            parse_document(Some("text/plain"), b"{}"),
            Err(OciError::UnsupportedMediaType {
                media_type: "text/plain".into()
            })
        );
        let e = parse_document(None, b"{").unwrap_err();
        assert!(e.to_string().starts_with("not JSON: "), "{e}");
        let v1 = br#"{"schemaVersion":1,"config":{"mediaType":"x","digest":"sha256:aa","size":1},"layers":[]}"#;
        assert_eq!(
            parse_document(None, v1),
            Err(OciError::UnsupportedSchemaVersion { version: 1 })
        );
        let e = parse_document(None, br#"{"schemaVersion":2,"layers":7}"#).unwrap_err();
        assert!(
            matches!(
                e,
                OciError::Invalid {
                    document: DocKind::Manifest,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().starts_with("invalid manifest: "), "{e}");
    }
}
