//! The error type of the pure OCI code: documents, references, the bootstrap layer, the
//! rewritten config and the layer view. Hosts wrap it with their own context (the registry,
//! the digest); its `Display` is the sentence after that context.

use std::fmt;

/// Which kind of document or archive an [`OciError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DocKind {
    /// A manifest or an index, before its kind is known.
    Document,
    /// An image manifest.
    Manifest,
    /// An image index (or Docker manifest list).
    Index,
    /// An image config.
    Config,
    /// The Nydus bootstrap layer (gzip tar).
    BootstrapLayer,
    /// A source layer of an image.
    Layer,
}

impl fmt::Display for DocKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DocKind::Document => "document",
            DocKind::Manifest => "manifest",
            DocKind::Index => "index",
            DocKind::Config => "config",
            DocKind::BootstrapLayer => "bootstrap layer",
            DocKind::Layer => "layer",
        })
    }
}

/// The JSON type a member must have ([`OciError::WrongType`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum JsonType {
    /// A JSON object.
    Object,
    /// A JSON array.
    Array,
}

impl fmt::Display for JsonType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            JsonType::Object => "a JSON object",
            JsonType::Array => "an array",
        })
    }
}

/// What is wrong with an image reference ([`OciError::Reference`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReferenceProblem {
    /// Empty, with whitespace, or with a URL scheme.
    Shape,
    /// A digest of another algorithm than sha256.
    DigestAlgorithm,
    /// The sha256 digest is not 64 hex digits.
    DigestHex,
    /// A repository component is empty or not lowercase `[a-z0-9._-]`.
    Repository,
    /// The tag is empty, longer than 128 or has characters outside `[A-Za-z0-9._-]`.
    Tag,
}

impl fmt::Display for ReferenceProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ReferenceProblem::Shape => "expected [host/]repository[:tag][@digest] without a scheme",
            ReferenceProblem::DigestAlgorithm => "only sha256 digests are supported",
            ReferenceProblem::DigestHex => "the digest is not 64 hex digits",
            ReferenceProblem::Repository => "the repository must be lowercase path components",
            ReferenceProblem::Tag => "invalid tag",
        })
    }
}

/// Parsing, unpacking or rewriting an OCI document, reference or layer failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum OciError {
    /// The document is not JSON.
    NotJson { document: DocKind, reason: String },
    /// The document is JSON but not a valid document of its kind.
    Invalid { document: DocKind, reason: String },
    /// The registry or the document names a media type that is neither manifest nor index.
    UnsupportedMediaType { media_type: String },
    /// A manifest's `schemaVersion` is not 2.
    UnsupportedSchemaVersion { version: u32 },
    /// A member of a document (`path`, dotted; empty for the document itself) has the wrong
    /// JSON type.
    WrongType {
        document: DocKind,
        path: &'static str,
        expected: JsonType,
    },
    /// Serializing a document failed.
    Encode { document: DocKind, reason: String },
    /// An image reference does not parse.
    Reference {
        reference: String,
        problem: ReferenceProblem,
    },
    /// The gzip stream of a layer does not decode (or exceeds the size limit).
    Gzip { document: DocKind, reason: String },
    /// A tar header field of a layer does not parse.
    TarHeader {
        document: DocKind,
        /// Offset of the header in the uncompressed tar.
        offset: u64,
        field: &'static str,
    },
    /// A tar entry of a layer ends past the end of the archive.
    Truncated {
        document: DocKind,
        /// Offset of the entry's header in the uncompressed tar.
        offset: u64,
    },
    /// A layer lacks a file it must hold.
    Missing {
        document: DocKind,
        path: &'static str,
    },
    /// A hard link of a layer names a target that exists in no layer so far.
    DanglingHardLink { path: String, target: String },
}

impl OciError {
    /// The document kind the error is about, where there is one.
    pub fn document(&self) -> Option<DocKind> {
        match self {
            OciError::NotJson { document, .. }
            | OciError::Invalid { document, .. }
            | OciError::WrongType { document, .. }
            | OciError::Encode { document, .. }
            | OciError::Gzip { document, .. }
            | OciError::TarHeader { document, .. }
            | OciError::Truncated { document, .. }
            | OciError::Missing { document, .. } => Some(*document),
            OciError::UnsupportedMediaType { .. } => Some(DocKind::Document),
            OciError::UnsupportedSchemaVersion { .. } => Some(DocKind::Manifest),
            OciError::DanglingHardLink { .. } => Some(DocKind::Layer),
            OciError::Reference { .. } => None,
        }
    }
}

impl fmt::Display for OciError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OciError::NotJson { reason, .. } => write!(f, "not JSON: {reason}"),
            OciError::Invalid { document, reason } => write!(f, "invalid {document}: {reason}"),
            OciError::UnsupportedMediaType { media_type } => {
                write!(f, "unsupported media type {media_type}")
            }
            OciError::UnsupportedSchemaVersion { version } => {
                write!(f, "unsupported schemaVersion {version}")
            }
            OciError::WrongType {
                document,
                path: "",
                expected,
            } => write!(f, "the image {document} is not {expected}"),
            OciError::WrongType {
                document,
                path,
                expected,
            } => write!(f, "{document}.{path} is not {expected}"),
            OciError::Encode { document, reason } => {
                write!(f, "encoding the {document}: {reason}")
            }
            OciError::Reference { reference, problem } => {
                write!(f, "invalid image reference {reference:?}: {problem}")
            }
            OciError::Gzip { reason, .. } => f.write_str(reason),
            OciError::TarHeader { offset, field, .. } => {
                write!(f, "bad {field} in a tar header (at offset {offset})")
            }
            OciError::Truncated { document, offset } => {
                write!(f, "the {document} is truncated (entry at offset {offset})")
            }
            OciError::Missing { path, .. } => write!(f, "the layer holds no {path}"),
            OciError::DanglingHardLink { path, target } => {
                write!(f, "hard link {path} to {target}, which does not exist")
            }
        }
    }
}

impl std::error::Error for OciError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_read_as_before() {
        let e = OciError::WrongType {
            document: DocKind::Config,
            path: "",
            expected: JsonType::Object,
        };
        assert_eq!(e.to_string(), "the image config is not a JSON object");
        let e = OciError::WrongType {
            document: DocKind::Config,
            path: "history",
            expected: JsonType::Array,
        };
        assert_eq!(e.to_string(), "config.history is not an array");
        let e = OciError::Reference {
            reference: "A/b".into(),
            problem: ReferenceProblem::Repository,
        };
        assert_eq!(
            e.to_string(),
            "invalid image reference \"A/b\": the repository must be lowercase path components"
        );
        assert_eq!(
            OciError::Missing {
                document: DocKind::BootstrapLayer,
                path: crate::oci::BOOTSTRAP_PATH
            }
            .to_string(),
            "the layer holds no image/image.boot"
        );
    }
}
