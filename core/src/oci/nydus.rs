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

/// A Nydus image with blob layers added: the source's blob layers unchanged, then `blobs`,
/// then `boot` as the new bootstrap layer (the old one's media type and annotations, changed
/// by `annotate`); `rootfs.diff_ids` gains the blobs' digests before the new bootstrap's diff
/// id; `edit_config` may change the rest of the config.
fn restacked(
    source: &Manifest,
    source_config: &Value,
    blobs: Vec<Descriptor>,
    boot: &BootstrapLayer,
    annotate: impl FnOnce(&mut BTreeMap<String, String>),
    edit_config: impl FnOnce(&mut Value) -> Result<(), OciError>,
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
    diff_ids.extend(blobs.iter().map(|b| json!(b.digest)));
    diff_ids.push(json!(boot.diff_id));
    edit_config(&mut c)?;
    let config = serde_json::to_vec(&c).map_err(|e| OciError::Encode {
        document: DocKind::Config,
        reason: e.to_string(),
    })?;
    let mut annotations = old_boot.annotations.clone();
    annotate(&mut annotations);
    let mut layers = source.layers[..source.layers.len() - 1].to_vec();
    layers.extend(blobs);
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
    let blob = Descriptor {
        media_type: media::NYDUS_BLOB.into(),
        digest: format!("sha256:{}", prefetch_blob.digest_hex),
        size: prefetch_blob.size,
        annotations: BTreeMap::from([(annotation::NYDUS_BLOB.to_string(), "true".to_string())]),
        ..Default::default()
    };
    restacked(
        source,
        source_config,
        vec![blob],
        boot,
        |a| {
            a.insert(
                annotation::NYDUS_SEPARATED_BLOB_WITH_PREFETCH_FILES.into(),
                prefetch_blob.digest_hex.clone(),
            );
        },
        |_| Ok(()),
    )
}

/// The blobs earlier commits added to a Nydus image: its bootstrap layer's
/// [`annotation::NYDUS_COMMIT_BLOBS`], split (empty for an image never committed).
pub fn committed_blobs(source: &Manifest) -> Vec<String> {
    source
        .layers
        .last()
        .and_then(|l| l.annotation(annotation::NYDUS_COMMIT_BLOBS))
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

/// The image `nydusify commit` pushes (`hooks-optimize-commit.md` §3): the base Nydus image's
/// blob layers unchanged, then the committed blobs (annotated as Nydus blobs, their
/// uncompressed digest their own), then the new bootstrap layer (the old one's media type and
/// annotations; the commit-blobs annotation lists the earlier commits' blobs and these).
/// `rootfs.diff_ids` gains the new blobs before the new bootstrap's diff id, and `history`
/// gains `history` before its last item when that is the bootstrap layer's (as convert
/// writes it), at the end otherwise.
pub fn committed_image(
    source: &Manifest,
    source_config: &Value,
    blobs: &[BlobLayer],
    boot: &BootstrapLayer,
    history: Value,
) -> Result<NydusImage, OciError> {
    let descriptors: Vec<Descriptor> = blobs
        .iter()
        .map(|b| {
            let digest = format!("sha256:{}", b.digest_hex);
            Descriptor {
                media_type: media::NYDUS_BLOB.into(),
                digest: digest.clone(),
                size: b.size,
                annotations: BTreeMap::from([
                    (annotation::NYDUS_BLOB.to_string(), "true".to_string()),
                    (annotation::UNCOMPRESSED.to_string(), digest),
                ]),
                ..Default::default()
            }
        })
        .collect();
    let mut commits = committed_blobs(source);
    commits.extend(descriptors.iter().map(|d| d.digest.clone()));
    restacked(
        source,
        source_config,
        descriptors,
        boot,
        |a| {
            a.insert(annotation::NYDUS_COMMIT_BLOBS.into(), commits.join(","));
        },
        |c| {
            let hist = c
                .as_object_mut()
                .ok_or(OciError::WrongType {
                    document: DocKind::Config,
                    path: "",
                    expected: JsonType::Object,
                })?
                .entry("history")
                .or_insert_with(|| json!([]))
                .as_array_mut()
                .ok_or(OciError::WrongType {
                    document: DocKind::Config,
                    path: "history",
                    expected: JsonType::Array,
                })?;
            let at = match hist.last() {
                Some(h)
                    if h.get("comment").and_then(Value::as_str)
                        == Some("Nydus Bootstrap Layer") =>
                {
                    hist.len() - 1
                }
                _ => hist.len(),
            };
            hist.insert(at, history);
            Ok(())
        },
    )
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

    #[test]
    fn committed_image_stacks_blobs_and_counts_commits() {
        let src = Manifest {
            schema_version: 2,
            media_type: Some(media::OCI_MANIFEST.into()),
            ..Default::default()
        };
        let cfg = json!({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": ["sha256:11"]},
                         "history": [{"created_by": "base"}]});
        let base_blob = BlobLayer {
            digest_hex: "aa".repeat(32),
            size: 10,
        };
        let base =
            nydus_image(&src, &cfg, &[base_blob], &build(b"b0", &[]), 6, true, false).unwrap();
        let base_cfg: Value = serde_json::from_slice(&base.config).unwrap();
        assert!(committed_blobs(&base.manifest).is_empty());
        let upper = |c: &str| BlobLayer {
            digest_hex: c.repeat(32),
            size: 3,
        };
        let boot1 = build(b"b1", &[]);
        let one = committed_image(
            &base.manifest,
            &base_cfg,
            &[upper("cc")],
            &boot1,
            json!({"created_by": "nydusify commit"}),
        )
        .unwrap();
        let m = &one.manifest;
        assert_eq!(m.layers.len(), 3);
        assert_eq!(m.layers[0], base.manifest.layers[0]);
        assert_eq!(m.layers[1].media_type, media::NYDUS_BLOB);
        assert_eq!(
            m.layers[1].annotation(annotation::UNCOMPRESSED),
            Some(m.layers[1].digest.as_str())
        );
        assert_eq!(m.layers[2].digest, boot1.digest);
        assert_eq!(
            m.layers[2].annotation(annotation::NYDUS_FS_VERSION),
            Some("6")
        );
        assert_eq!(
            committed_blobs(m),
            vec![format!("sha256:{}", "cc".repeat(32))]
        );
        let c: Value = serde_json::from_slice(&one.config).unwrap();
        assert_eq!(
            c["rootfs"]["diff_ids"],
            json!([
                format!("sha256:{}", "aa".repeat(32)),
                format!("sha256:{}", "cc".repeat(32)),
                boot1.diff_id
            ])
        );
        // The commit's history item goes before the bootstrap layer's.
        let h = c["history"].as_array().unwrap();
        assert_eq!(h.len(), 3);
        assert_eq!(h[1]["created_by"], "nydusify commit");
        assert_eq!(h[2]["comment"], "Nydus Bootstrap Layer");
        assert!(check_manifest(m, &c).is_ok());
        // A second commit stacks: both commits' blobs are listed.
        let boot2 = build(b"b2", &[]);
        let two = committed_image(m, &c, &[upper("dd")], &boot2, json!({})).unwrap();
        assert_eq!(two.manifest.layers.len(), 4);
        assert_eq!(committed_blobs(&two.manifest).len(), 2);
        // Not a Nydus image: refused.
        assert!(committed_image(&src, &cfg, &[], &boot2, json!({})).is_err());
    }
}
