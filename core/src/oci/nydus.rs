//! The manifest and config of a native Nydus image built from an OCI/Docker source image
//! (`oci-nydus-image.md` §2, §4).

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::bootstrap_layer::BootstrapLayer;
use super::error::{DocKind, JsonType, OciError};
use super::manifest::{Descriptor, Manifest};
use super::{annotation, media};
use crate::digest::sha256;

/// One converted layer: the Nydus blob pushed for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobLayer {
    /// SHA-256 hex of the blob (its id in the merged bootstrap).
    pub digest_hex: String,
    pub size: u64,
}

/// The converted image: its manifest and the config bytes the manifest names.
#[derive(Debug, Clone, PartialEq)]
pub struct NydusImage {
    pub manifest: Manifest,
    pub config: Vec<u8>,
}

/// The source config with `rootfs.diff_ids` and `history` rewritten for the Nydus layers.
/// With `external` (blobs in a storage backend, not in the manifest) only the bootstrap
/// layer is listed and the history is replaced by its one item.
pub fn rewrite_config(
    source_config: &Value,
    blobs: &[BlobLayer],
    boot: &BootstrapLayer,
    external: bool,
) -> Result<Value, OciError> {
    let wrong = |path, expected| OciError::WrongType {
        document: DocKind::Config,
        path,
        expected,
    };
    let mut c = source_config.clone();
    let obj = c.as_object_mut().ok_or(wrong("", JsonType::Object))?;
    let mut diff_ids: Vec<Value> = if external {
        Vec::new()
    } else {
        blobs
            .iter()
            .map(|b| json!(format!("sha256:{}", b.digest_hex)))
            .collect()
    };
    diff_ids.push(json!(boot.diff_id));
    let rootfs = obj
        .entry("rootfs")
        .or_insert_with(|| json!({"type": "layers"}));
    let rootfs = rootfs
        .as_object_mut()
        .ok_or(wrong("rootfs", JsonType::Object))?;
    rootfs.insert("type".into(), json!("layers"));
    rootfs.insert("diff_ids".into(), Value::Array(diff_ids));
    let history = obj.entry("history").or_insert_with(|| json!([]));
    if external {
        *history = json!([]);
    }
    history
        .as_array_mut()
        .ok_or(wrong("history", JsonType::Array))?
        .push(json!({"created_by": "Nydus Converter", "comment": "Nydus Bootstrap Layer"}));
    Ok(c)
}

/// Builds the Nydus manifest (blob layers in source order, then the bootstrap layer) and its
/// config. `oci` forces OCI media types; otherwise the source manifest's family is kept.
/// `external`: the blobs live in a storage backend and the manifest lists only the bootstrap
/// layer (§2).
pub fn nydus_image(
    source: &Manifest,
    source_config: &Value,
    blobs: &[BlobLayer],
    boot: &BootstrapLayer,
    fs_version: u32,
    oci: bool,
    external: bool,
) -> Result<NydusImage, OciError> {
    let config = serde_json::to_vec(&rewrite_config(source_config, blobs, boot, external)?)
        .map_err(|e| OciError::Encode {
            document: DocKind::Config,
            reason: e.to_string(),
        })?;
    let docker = !oci && source.is_docker();
    let ann = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let mut layers: Vec<Descriptor> = blobs
        .iter()
        .filter(|_| !external)
        .map(|b| Descriptor {
            media_type: media::NYDUS_BLOB.into(),
            digest: format!("sha256:{}", b.digest_hex),
            size: b.size,
            annotations: ann(&[(annotation::NYDUS_BLOB, "true")]),
            ..Default::default()
        })
        .collect();
    let fs = fs_version.to_string();
    layers.push(Descriptor {
        media_type: if docker {
            media::DOCKER_LAYER_GZIP
        } else {
            media::OCI_LAYER_GZIP
        }
        .into(),
        digest: boot.digest.clone(),
        size: boot.gz.len() as u64,
        annotations: ann(&[
            (annotation::NYDUS_BOOTSTRAP, "true"),
            (annotation::NYDUS_FS_VERSION, &fs),
        ]),
        ..Default::default()
    });
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(
            if docker {
                media::DOCKER_MANIFEST
            } else {
                media::OCI_MANIFEST
            }
            .into(),
        ),
        config: Descriptor {
            media_type: if docker {
                media::DOCKER_CONFIG
            } else {
                media::OCI_CONFIG
            }
            .into(),
            digest: format!("sha256:{}", sha256(&config).to_hex()),
            size: config.len() as u64,
            ..Default::default()
        },
        layers,
        ..Default::default()
    };
    Ok(NydusImage { manifest, config })
}

/// The image `nydusify optimize` pushes (`hooks-optimize-commit.md` §2): the source Nydus
/// image's blob layers unchanged, then the prefetch blob, then the new bootstrap layer (the
/// old one's media type and annotations, plus the prefetch blob's id); `rootfs.diff_ids`
/// gains the prefetch blob before the new bootstrap's diff id; the history is kept as is.
pub fn optimized_image(
    source: &Manifest,
    source_config: &Value,
    prefetch_blob: &BlobLayer,
    boot: &BootstrapLayer,
) -> Result<NydusImage, OciError> {
    let wrong = |path, expected| OciError::WrongType {
        document: DocKind::Config,
        path,
        expected,
    };
    let old_boot = source
        .layers
        .last()
        .filter(|l| l.annotation(annotation::NYDUS_BOOTSTRAP) == Some("true"))
        .ok_or_else(|| OciError::Invalid {
            document: DocKind::Manifest,
            reason: "not a Nydus image: the last layer is not a Nydus bootstrap layer".into(),
        })?;
    let mut c = source_config.clone();
    let diff_ids = c
        .pointer_mut("/rootfs/diff_ids")
        .and_then(Value::as_array_mut)
        .ok_or(wrong("rootfs.diff_ids", JsonType::Array))?;
    if diff_ids.len() != source.layers.len() {
        return Err(OciError::Invalid {
            document: DocKind::Config,
            reason: format!(
                "{} rootfs.diff_ids for {} manifest layers",
                diff_ids.len(),
                source.layers.len()
            ),
        });
    }
    diff_ids.pop();
    diff_ids.push(json!(format!("sha256:{}", prefetch_blob.digest_hex)));
    diff_ids.push(json!(boot.diff_id));
    let config = serde_json::to_vec(&c).map_err(|e| OciError::Encode {
        document: DocKind::Config,
        reason: e.to_string(),
    })?;
    let mut layers = source.layers[..source.layers.len() - 1].to_vec();
    layers.push(Descriptor {
        media_type: media::NYDUS_BLOB.into(),
        digest: format!("sha256:{}", prefetch_blob.digest_hex),
        size: prefetch_blob.size,
        annotations: BTreeMap::from([(annotation::NYDUS_BLOB.to_string(), "true".to_string())]),
        ..Default::default()
    });
    let mut annotations = old_boot.annotations.clone();
    annotations.insert(
        annotation::NYDUS_SEPARATED_BLOB_WITH_PREFETCH_FILES.into(),
        prefetch_blob.digest_hex.clone(),
    );
    layers.push(Descriptor {
        media_type: old_boot.media_type.clone(),
        digest: boot.digest.clone(),
        size: boot.gz.len() as u64,
        annotations,
        ..Default::default()
    });
    let mut manifest = source.clone();
    manifest.config.digest = format!("sha256:{}", sha256(&config).to_hex());
    manifest.config.size = config.len() as u64;
    manifest.layers = layers;
    Ok(NydusImage { manifest, config })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::bootstrap_layer::build;
    use crate::oci::check::check_manifest;

    #[test]
    fn nydus_manifest_has_blob_layers_then_the_bootstrap() {
        let src = Manifest {
            schema_version: 2,
            media_type: Some(media::DOCKER_MANIFEST.into()),
            config: Descriptor {
                media_type: media::DOCKER_CONFIG.into(),
                ..Default::default()
            },
            ..Default::default()
        };
        let cfg = json!({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
                         "rootfs": {"type": "layers", "diff_ids": ["sha256:11", "sha256:22"]},
                         "history": [{"created_by": "x"}]});
        let boot = build(b"boot", &[]);
        let blobs = vec![
            BlobLayer {
                digest_hex: "aa".repeat(32),
                size: 10,
            },
            BlobLayer {
                digest_hex: "bb".repeat(32),
                size: 20,
            },
        ];
        let img = nydus_image(&src, &cfg, &blobs, &boot, 6, false, false).unwrap();
        let m = &img.manifest;
        assert_eq!(m.media_type.as_deref(), Some(media::DOCKER_MANIFEST));
        assert_eq!(m.layers.len(), 3);
        assert_eq!(m.layers[2].media_type, media::DOCKER_LAYER_GZIP);
        assert_eq!(
            m.layers[2].annotation(annotation::NYDUS_FS_VERSION),
            Some("6")
        );
        let c: Value = serde_json::from_slice(&img.config).unwrap();
        assert_eq!(c["rootfs"]["diff_ids"][2], json!(boot.diff_id));
        assert_eq!(c["history"].as_array().unwrap().len(), 2);
        assert_eq!(c["config"], cfg["config"]);
        assert!(check_manifest(m, &c).is_ok());
        let oci = nydus_image(&src, &cfg, &blobs, &boot, 6, true, false).unwrap();
        assert_eq!(oci.manifest.layers[2].media_type, media::OCI_LAYER_GZIP);
        assert_eq!(oci.manifest.config.media_type, media::OCI_CONFIG);
        // Blobs in a backend: only the bootstrap layer, one diff id, one history item.
        let ext = nydus_image(&src, &cfg, &blobs, &boot, 6, true, true).unwrap();
        assert_eq!(ext.manifest.layers.len(), 1);
        let c: Value = serde_json::from_slice(&ext.config).unwrap();
        assert_eq!(c["rootfs"]["diff_ids"], json!([boot.diff_id]));
        assert_eq!(c["history"].as_array().unwrap().len(), 1);
        assert!(check_manifest(&ext.manifest, &c).is_ok());

        // Optimized: one more blob layer before the new bootstrap layer.
        let new_boot = build(b"boot2", &[]);
        let prefetch = BlobLayer {
            digest_hex: "cc".repeat(32),
            size: 5,
        };
        let src_cfg: Value = serde_json::from_slice(&img.config).unwrap();
        let opt = optimized_image(&img.manifest, &src_cfg, &prefetch, &new_boot).unwrap();
        let m = &opt.manifest;
        assert_eq!(m.layers.len(), 4);
        assert_eq!(m.layers[..2], img.manifest.layers[..2]);
        assert_eq!(m.layers[2].digest, format!("sha256:{}", "cc".repeat(32)));
        assert_eq!(m.layers[3].digest, new_boot.digest);
        assert_eq!(
            m.layers[3].annotation(annotation::NYDUS_SEPARATED_BLOB_WITH_PREFETCH_FILES),
            Some("cc".repeat(32).as_str())
        );
        assert_eq!(
            m.layers[3].annotation(annotation::NYDUS_FS_VERSION),
            Some("6")
        );
        let c: Value = serde_json::from_slice(&opt.config).unwrap();
        assert_eq!(
            c["rootfs"]["diff_ids"],
            json!([
                format!("sha256:{}", "aa".repeat(32)),
                format!("sha256:{}", "bb".repeat(32)),
                format!("sha256:{}", "cc".repeat(32)),
                new_boot.diff_id
            ])
        );
        assert_eq!(c["history"], src_cfg["history"]);
        assert!(check_manifest(m, &c).is_ok());
        // Not a Nydus image: refused.
        assert!(optimized_image(&src, &cfg, &prefetch, &new_boot).is_err());
    }
}
