//! OCI and Docker image models and the Nydus image layout in a registry
//! (`oci-nydus-image.md`): media types and annotations, manifests, indexes and descriptors,
//! the bootstrap layer, the rewritten image config, and the manifest/bootstrap rules of
//! `nydusify check`. Pure: hosts fetch and push the bytes.

pub mod bootstrap_layer;
pub mod check;
pub mod error;
pub mod fsview;
pub mod manifest;
pub mod nydus;
pub mod reference;

pub use error::OciError;

/// Media types (`oci-nydus-image.md` §1).
pub mod media {
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
    pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
    pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
    pub const NYDUS_BLOB: &str = "application/vnd.oci.image.layer.nydus.blob.v1";
    pub const NYDUS_MANIFEST_ARTIFACT: &str = "application/vnd.nydus.image.manifest.v1+json";
    pub const NYDUS_CONFIG: &str = "application/vnd.nydus.image.config.v1+json";
}

/// Annotation keys and values (`oci-nydus-image.md` §1).
pub mod annotation {
    pub const NYDUS_BLOB: &str = "containerd.io/snapshot/nydus-blob";
    pub const NYDUS_BOOTSTRAP: &str = "containerd.io/snapshot/nydus-bootstrap";
    pub const NYDUS_FS_VERSION: &str = "containerd.io/snapshot/nydus-fs-version";
    pub const NYDUS_REF: &str = "containerd.io/snapshot/nydus-ref";
    pub const UNCOMPRESSED: &str = "containerd.io/uncompressed";
    /// On the bootstrap layer of an optimized image: the id of its prefetch blob.
    pub const NYDUS_SEPARATED_BLOB_WITH_PREFETCH_FILES: &str =
        "containerd.io/snapshot/nydus-separated-blob-with-prefetch-files";
    /// `platform.os.features` entry marking Nydus manifests in an index.
    /// On a committed image's bootstrap layer: the blobs `nydusify commit` added, in order,
    /// comma-separated (`sha256:…,sha256:…`); their count bounds `--maximum-times`.
    pub const NYDUS_COMMIT_BLOBS: &str = "containerd.io/snapshot/nydus-commit-blobs";
    pub const NYDUS_OS_FEATURE: &str = "nydus.remoteimage.v1";
}

/// Path of the merged bootstrap inside the bootstrap layer (and the legacy one).
pub const BOOTSTRAP_PATH: &str = "image/image.boot";
/// The prefetch list an optimized image was built from, inside its bootstrap layer.
pub const PREFETCH_FILES_PATH: &str = "image/prefetch.files";
pub const LEGACY_BOOTSTRAP_PATH: &str = "image.boot";
