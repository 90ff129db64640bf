//! The manifest and bootstrap rules of `nydusify check` (`oci-nydus-image.md` §8, rules 1–2).

use serde_json::Value;

use super::manifest::Manifest;
use super::{annotation, media};
use crate::report::Report;

/// Whether a manifest is a Nydus image (its last layer is the bootstrap layer).
pub fn is_nydus(m: &Manifest) -> bool {
    m.layers
        .last()
        .is_some_and(|l| l.annotation(annotation::NYDUS_BOOTSTRAP) == Some("true"))
}

/// Rule 1 for one image: a Nydus image's last layer is the bootstrap layer and every other
/// layer a Nydus blob; `len(rootfs.diff_ids) == len(layers)` for any image.
pub fn check_manifest(m: &Manifest, config: &Value) -> Report {
    let mut rep = Report::default();
    if is_nydus(m) {
        let last = m.layers.last().expect("is_nydus");
        if last.media_type != media::OCI_LAYER_GZIP && last.media_type != media::DOCKER_LAYER_GZIP {
            rep.error(
                "manifest",
                format!("the bootstrap layer has media type {}", last.media_type),
            );
        }
        for (i, l) in m.layers[..m.layers.len() - 1].iter().enumerate() {
            if l.media_type != media::NYDUS_BLOB
                || l.annotation(annotation::NYDUS_BLOB) != Some("true")
            {
                rep.error(
                    format!("layer {i} ({})", l.digest),
                    format!(
                        "not a Nydus blob layer (media type {}, nydus-blob {:?})",
                        l.media_type,
                        l.annotation(annotation::NYDUS_BLOB)
                    ),
                );
            }
        }
    }
    let diff_ids = config
        .pointer("/rootfs/diff_ids")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    if diff_ids != m.layers.len() {
        rep.error(
            "config",
            format!(
                "{diff_ids} rootfs.diff_ids for {} manifest layers",
                m.layers.len()
            ),
        );
    }
    rep
}

/// Rule 1 across images: the source and target `config.config` objects are equal
/// (`ArgsEscaped` ignored).
pub fn compare_configs(source: &Value, target: &Value) -> Report {
    let strip = |v: &Value| {
        let mut c = v.get("config").cloned().unwrap_or(Value::Null);
        if let Some(o) = c.as_object_mut() {
            o.remove("ArgsEscaped");
        }
        c
    };
    let mut rep = Report::default();
    let (a, b) = (strip(source), strip(target));
    if a != b {
        rep.error(
            "config",
            format!("source config {a} differs from target config {b}"),
        );
    }
    rep
}

/// Rule 2: every blob id in the bootstrap's blob table is the digest of one of the manifest's
/// blob layers (layers annotated `nydus-ref` are not compared).
pub fn check_bootstrap_blobs(m: &Manifest, blob_ids: &[String]) -> Report {
    let mut rep = Report::default();
    let layers: Vec<&str> = m
        .layers
        .iter()
        .filter(|l| {
            l.media_type == media::NYDUS_BLOB && l.annotation(annotation::NYDUS_REF).is_none()
        })
        .map(|l| l.digest_hex())
        .collect();
    // An image whose blobs went to a storage backend lists none (upstream's convert with a
    // backend): say where to look once, not only per blob.
    let hint = if layers.is_empty() {
        " (the manifest lists no blob layers: if the blobs are in a storage backend, name it \
         with --target-backend-type and --target-backend-config)"
    } else {
        ""
    };
    for id in blob_ids {
        if !layers.contains(&id.as_str()) {
            rep.error(
                "bootstrap",
                format!("blob {id} of the bootstrap is not a layer of the manifest{hint}"),
            );
        }
    }
    rep
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::manifest::Descriptor;
    use serde_json::json;

    fn layer(mt: &str, ann: &[(&str, &str)], d: &str) -> Descriptor {
        Descriptor {
            media_type: mt.into(),
            digest: format!("sha256:{d}"),
            size: 1,
            annotations: ann
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn manifest_rules() {
        let m = Manifest {
            schema_version: 2,
            layers: vec![
                layer(media::NYDUS_BLOB, &[(annotation::NYDUS_BLOB, "true")], "aa"),
                layer(media::OCI_LAYER_GZIP, &[], "bb"),
                layer(
                    media::OCI_LAYER_GZIP,
                    &[(annotation::NYDUS_BOOTSTRAP, "true")],
                    "cc",
                ),
            ],
            ..Default::default()
        };
        let rep = check_manifest(&m, &json!({"rootfs": {"diff_ids": ["a", "b"]}}));
        assert_eq!(rep.errors(), 2, "{:?}", rep.findings);
        let rep = check_bootstrap_blobs(&m, &["aa".into(), "dd".into()]);
        assert_eq!(rep.errors(), 1);
        assert!(compare_configs(
            &json!({"config": {"Cmd": ["sh"], "ArgsEscaped": true}}),
            &json!({"config": {"Cmd": ["sh"]}})
        )
        .is_ok());
        assert!(
            !compare_configs(&json!({"config": {"Cmd": ["sh"]}}), &json!({"config": {}})).is_ok()
        );
    }
}
