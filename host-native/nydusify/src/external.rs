//! Blobs that live in a storage backend, brought into an image as layers: `nydusify copy
//! --source-backend-*`, as upstream's copier does. A Nydus image converted with its blobs in
//! S3, OSS or a localfs directory has a manifest with the bootstrap layer only; copied with
//! the backend named, every blob its bootstrap's blob table names and its manifest lacks is
//! read from the backend (by range, verified against its id, the blob's SHA-256), pushed to
//! the target as a Nydus blob layer, and listed in the manifest before the bootstrap layer,
//! with its diff id in the config, so the copy is a self-contained image.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use nydus_core::digest::Sha256Stream;
use nydus_core::oci::bootstrap_layer::extract_bootstrap;
use nydus_core::oci::manifest::{Descriptor, Manifest};
use nydus_core::oci::{annotation, media};
use nydus_core::rafs::Rafs;
use nydus_core::read::exec::BlobLayout;
use nydus_core::read::Filesystem;
use nydus_host_storage::local::Backend;
use serde_json::{json, Value};

use crate::store::Store;

/// Largest bootstrap layer read into memory.
const MAX_BOOTSTRAP_LAYER: usize = 1 << 30;

/// Bytes asked of the backend at once.
const RANGE: u64 = 8 << 20;

/// The manifest `m` (a Nydus image in `src`) and its config rewritten to carry the blobs its
/// bootstrap names but its layers lack, those blobs fetched from `backend` and pushed to
/// `dst` (the new config too). `None` when the manifest lists every blob already.
pub async fn attach_backend_blobs(
    src: &Store,
    dst: &Store,
    backend: &Arc<dyn Backend>,
    m: &Manifest,
    scratch: &Path,
) -> Result<Option<Manifest>> {
    let boot_layer = m.layers.last().context("the manifest has no layers")?;
    let gz = src.blob_bytes(&boot_layer.digest).await?;
    let boot = extract_bootstrap(&gz, MAX_BOOTSTRAP_LAYER)
        .map_err(|e| anyhow!("bootstrap layer {}: {e}", boot_layer.digest))?;
    let rafs = Rafs::open(boot).map_err(|e| {
        anyhow!(
            "bootstrap layer {}: not a RAFS bootstrap: {e}",
            boot_layer.digest
        )
    })?;
    let ids: Vec<String> = rafs.blobs().iter().map(|b| b.blob_id.clone()).collect();
    let mut missing: Vec<&str> = Vec::new();
    for id in &ids {
        let listed = m.layers.iter().any(|l| l.digest_hex() == id.as_str());
        if !listed && !missing.contains(&id.as_str()) {
            missing.push(id);
        }
    }
    if missing.is_empty() {
        return Ok(None);
    }
    let mut added = Vec::new();
    for id in &missing {
        let index = ids
            .iter()
            .position(|i| i == id)
            .expect("an id of the table") as u32;
        let digest = format!("sha256:{id}");
        let size = if let Some(n) = dst.blob_size(&digest).await? {
            log::info!("blob {id} is in {} already", dst.describe());
            n
        } else {
            let tmp = tempfile::Builder::new()
                .prefix("backend-blob-")
                .tempfile_in(scratch)
                .with_context(|| format!("creating a scratch file in {}", scratch.display()))?;
            let (b, i, n, path) = (
                backend.clone(),
                id.to_string(),
                ids.len(),
                tmp.path().to_path_buf(),
            );
            let size = tokio::task::spawn_blocking(move || fetch(&*b, &i, index, n, &path))
                .await
                .context("the backend reader task failed")??;
            log::info!(
                "pushing blob {id} ({size} bytes) from {} to {}",
                backend.describe(),
                dst.describe()
            );
            dst.push_blob_file(&digest, tmp.path()).await?;
            size
        };
        added.push(Descriptor {
            media_type: media::NYDUS_BLOB.into(),
            digest,
            size,
            annotations: [(annotation::NYDUS_BLOB.to_string(), "true".to_string())].into(),
            ..Default::default()
        });
    }
    // The config: one diff id per layer, the blobs' (their digests: blobs are stored
    // uncompressed as far as OCI is concerned) before the bootstrap layer's.
    let config_bytes = src.blob_bytes(&m.config.digest).await?;
    let mut config: Value = serde_json::from_slice(&config_bytes)
        .with_context(|| format!("the image config {} is not JSON", m.config.digest))?;
    let diff_ids = config
        .pointer_mut("/rootfs/diff_ids")
        .and_then(Value::as_array_mut)
        .with_context(|| {
            format!(
                "the image config {} has no rootfs.diff_ids array",
                m.config.digest
            )
        })?;
    let at = diff_ids.len().saturating_sub(1);
    for (k, d) in added.iter().enumerate() {
        diff_ids.insert(at + k, json!(d.digest));
    }
    let config_bytes = serde_json::to_vec(&config).context("encoding the image config")?;
    let config_digest = format!(
        "sha256:{}",
        nydus_core::digest::sha256(&config_bytes).to_hex()
    );
    dst.push_blob_bytes(&config_digest, &config_bytes).await?;
    let mut out = m.clone();
    out.config.digest = config_digest;
    out.config.size = config_bytes.len() as u64;
    let boot_desc = out.layers.pop().expect("the bootstrap layer");
    out.layers.extend(added);
    out.layers.push(boot_desc);
    Ok(Some(out))
}

/// Copies blob `id` (entry `index` of `count`) from `backend` into the file `path` by range,
/// checking that its SHA-256 is its id; returns its size.
fn fetch(backend: &dyn Backend, id: &str, index: u32, count: usize, path: &Path) -> Result<u64> {
    let blob = backend
        .open(id, index, count)
        .map_err(|e| anyhow!("blob {id} in {}: {e}", backend.describe()))?;
    if blob.layout != BlobLayout::Stored {
        bail!(
            "blob {id} in {}: only an uncompressed cache of it is there, not the blob",
            backend.describe()
        );
    }
    let store = blob.store;
    let size = store.size().map_err(|e| anyhow!("blob {id}: {e}"))?;
    let mut out = std::io::BufWriter::with_capacity(
        1 << 20,
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
    );
    let mut h = Sha256Stream::new();
    let mut buf = vec![0u8; RANGE.min(size) as usize];
    let mut off = 0u64;
    while off < size {
        let n = RANGE.min(size - off) as usize;
        store
            .read_at(off, &mut buf[..n])
            .map_err(|e| anyhow!("blob {id}: {e}"))?;
        h.update(&buf[..n]);
        out.write_all(&buf[..n])
            .with_context(|| format!("writing {}", path.display()))?;
        off += n as u64;
    }
    out.flush()
        .with_context(|| format!("writing {}", path.display()))?;
    let got = h.finish().to_hex();
    if got != id {
        bail!(
            "blob {id} in {} has SHA-256 {got}: it is not the blob the bootstrap names",
            store.describe()
        );
    }
    Ok(size)
}
