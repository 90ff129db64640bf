//! `nydusify convert --build-cache REF`: converted layers reused by source chain id, in
//! upstream's cache image format v1. The cache is a manifest whose layers are, per record, a
//! gzip layer holding that layer's own bootstrap (`image/image.boot`, plus its
//! `image/<blob>.blob.meta`) annotated with the source chain id and its diff id, and the
//! layer's Nydus blob annotated with the same chain id; the manifest carries
//! `containerd.io/snapshot/nydus-cache: v1` and the RAFS version. Newest records first, at
//! most `--build-cache-max-records`.

use std::collections::HashMap;

use anyhow::{anyhow, Result};
use nydus_core::digest::sha256;
use nydus_core::oci::annotation;
use nydus_core::oci::manifest::{parse_document, Descriptor, Document, Manifest};
use nydus_core::oci::media;
use serde_json::json;

use crate::store::Store;

/// Manifest annotation naming the cache format.
pub const CACHE_ANNOTATION: &str = "containerd.io/snapshot/nydus-cache";
pub const CACHE_VERSION: &str = "v1";
/// Layer annotation: the chain id of the source layers up to this one.
pub const SOURCE_CHAIN_ID: &str = "containerd.io/snapshot/nydus-source-chainid";

/// One cached layer conversion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub chain_id: String,
    /// The gzip layer with the layer's own bootstrap.
    pub bootstrap: Descriptor,
    /// The layer's Nydus blob.
    pub blob: Descriptor,
}

/// Chain ids of layers with these diff ids (OCI image spec): the first is its diff id, each
/// next one is `sha256(<previous chain id> + " " + <diff id>)`.
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(prev) => format!(
                "sha256:{}",
                sha256(format!("{prev} {d}").as_bytes()).to_hex()
            ),
        };
        out.push(next);
    }
    out
}

/// The build cache: where it lives and its records.
#[derive(Debug)]
pub struct BuildCache {
    pub store: Store,
    tag: String,
    records: Vec<Record>,
    max: usize,
    oci: bool,
    /// RAFS version of the records ("5" or "6").
    fs_version: String,
}

impl BuildCache {
    /// Reads the cache image `tag` from `store`; a missing or other-version cache starts empty.
    pub async fn import(
        store: Store,
        tag: &str,
        max: usize,
        oci: bool,
        fs_version: &str,
    ) -> Result<BuildCache> {
        let mut cache = BuildCache {
            store,
            tag: tag.to_string(),
            records: Vec::new(),
            max,
            oci,
            fs_version: fs_version.to_string(),
        };
        let (mt, bytes, _) = match cache.store.get_manifest(tag).await {
            Ok(m) => m,
            Err(e) => {
                log::info!(
                    "build cache {}:{tag} not read ({e:#}); starting an empty one",
                    cache.store.describe()
                );
                return Ok(cache);
            }
        };
        let m: Manifest = match parse_document(Some(&mt), &bytes) {
            Ok(Document::Manifest(m)) => *m,
            _ => {
                log::warn!(
                    "build cache {}:{tag} is not an image manifest; starting an empty one",
                    cache.store.describe()
                );
                return Ok(cache);
            }
        };
        if m.annotations.get(CACHE_ANNOTATION).map(String::as_str) != Some(CACHE_VERSION)
            || m.annotations
                .get(annotation::NYDUS_FS_VERSION)
                .is_some_and(|v| *v != cache.fs_version)
        {
            log::warn!(
                "build cache {}:{tag} has another version or RAFS version; starting an empty one",
                cache.store.describe()
            );
            return Ok(cache);
        }
        let mut boots: HashMap<String, Descriptor> = HashMap::new();
        let mut order: Vec<String> = Vec::new();
        let mut blobs: HashMap<String, Descriptor> = HashMap::new();
        for l in &m.layers {
            let Some(chain) = l.annotation(SOURCE_CHAIN_ID) else {
                continue;
            };
            if l.annotation(annotation::NYDUS_BOOTSTRAP) == Some("true") {
                if !boots.contains_key(chain) {
                    order.push(chain.to_string());
                }
                boots.insert(chain.to_string(), l.clone());
            } else if l.annotation(annotation::NYDUS_BLOB) == Some("true") {
                blobs.insert(chain.to_string(), l.clone());
            }
        }
        for chain in order {
            if let (Some(b), Some(blob)) = (boots.remove(&chain), blobs.remove(&chain)) {
                cache.records.push(Record {
                    chain_id: chain,
                    bootstrap: b,
                    blob,
                });
            }
        }
        log::info!(
            "build cache {}:{tag}: {} record(s)",
            cache.store.describe(),
            cache.records.len()
        );
        Ok(cache)
    }

    pub fn lookup(&self, chain_id: &str) -> Option<&Record> {
        self.records.iter().find(|r| r.chain_id == chain_id)
    }

    /// Puts `new` records first (replacing older ones of the same chain ids), keeping at most
    /// `max`.
    pub fn record(&mut self, new: Vec<Record>) {
        let mut all = new;
        for r in self.records.drain(..) {
            if !all.iter().any(|n| n.chain_id == r.chain_id) {
                all.push(r);
            }
        }
        all.truncate(self.max);
        self.records = all;
    }

    /// A bootstrap cache layer descriptor for `chain_id`.
    pub fn bootstrap_desc(
        &self,
        chain_id: &str,
        digest: &str,
        size: u64,
        diff_id: &str,
    ) -> Descriptor {
        let mut d = Descriptor {
            media_type: if self.oci {
                media::OCI_LAYER_GZIP
            } else {
                media::DOCKER_LAYER_GZIP
            }
            .into(),
            digest: digest.to_string(),
            size,
            ..Default::default()
        };
        for (k, v) in [
            (annotation::NYDUS_BOOTSTRAP, "true"),
            (annotation::NYDUS_FS_VERSION, self.fs_version.as_str()),
            (SOURCE_CHAIN_ID, chain_id),
            (annotation::UNCOMPRESSED, diff_id),
        ] {
            d.annotations.insert(k.to_string(), v.to_string());
        }
        d
    }

    /// A blob cache layer descriptor for `chain_id`.
    pub fn blob_desc(chain_id: &str, digest: &str, size: u64) -> Descriptor {
        let mut d = Descriptor {
            media_type: media::NYDUS_BLOB.into(),
            digest: digest.to_string(),
            size,
            ..Default::default()
        };
        d.annotations
            .insert(annotation::NYDUS_BLOB.to_string(), "true".to_string());
        d.annotations
            .insert(SOURCE_CHAIN_ID.to_string(), chain_id.to_string());
        d
    }

    /// Pushes the cache image (config and manifest; its layers are pushed as they are made).
    pub async fn export(&self) -> Result<String> {
        let mut layers = Vec::new();
        let mut diff_ids = Vec::new();
        for r in &self.records {
            diff_ids.push(
                r.bootstrap
                    .annotation(annotation::UNCOMPRESSED)
                    .ok_or_else(|| anyhow!("a cache record without a diff id"))?
                    .to_string(),
            );
            layers.push(r.bootstrap.clone());
            diff_ids.push(r.blob.digest.clone());
            layers.push(r.blob.clone());
        }
        let config = serde_json::to_vec(&json!({
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }))?;
        let config_digest = format!("sha256:{}", sha256(&config).to_hex());
        self.store.push_blob_bytes(&config_digest, &config).await?;
        let (mt, cmt) = if self.oci {
            (media::OCI_MANIFEST, media::OCI_CONFIG)
        } else {
            (media::DOCKER_MANIFEST, media::DOCKER_CONFIG)
        };
        let mut m = Manifest {
            schema_version: 2,
            media_type: Some(mt.into()),
            config: Descriptor {
                media_type: cmt.into(),
                digest: config_digest,
                size: config.len() as u64,
                ..Default::default()
            },
            layers,
            ..Default::default()
        };
        m.annotations
            .insert(CACHE_ANNOTATION.into(), CACHE_VERSION.into());
        m.annotations
            .insert(annotation::NYDUS_FS_VERSION.into(), self.fs_version.clone());
        let bytes = serde_json::to_vec(&m)?;
        self.store.put_manifest(&self.tag, mt, &bytes).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_follow_the_oci_rule() {
        let d = vec!["sha256:aa".to_string(), "sha256:bb".to_string()];
        let c = chain_ids(&d);
        assert_eq!(c[0], "sha256:aa");
        assert_eq!(
            c[1],
            format!("sha256:{}", sha256(b"sha256:aa sha256:bb").to_hex())
        );
        assert!(chain_ids(&[]).is_empty());
    }
}
