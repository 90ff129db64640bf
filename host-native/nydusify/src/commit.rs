//! `nydusify commit` (`hooks-optimize-commit.md` §3): a running container's changes as a new
//! Nydus image, as `nerdctl commit` makes an OCI one.
//!
//! containerd's API ([`crate::containerd`]) names the container's image, its task and its
//! snapshot, whose overlay mount gives the upper directory on the host: nothing enters the
//! container's namespaces (upstream's `nsenter` fails in privileged containers, nydus#1802).
//! The base image's bootstrap is pulled (an OCI base is first converted to Nydus, pushed
//! untagged into the target repository, through the build cache when one is named); the
//! container is paused while its upper directory is built as one layer on that bootstrap
//! (overlayfs whiteouts and opaque directories applied, overlayfs's own xattrs dropped) and
//! resumed whatever happens; then the base's blobs (mounted or copied when the target is
//! another repository), the new blob, the bootstrap layer, the config (one history item
//! more) and the manifest are pushed, the manifest last: a failure tags nothing.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{anyhow, bail, Context, Result};
use nydus_core::layer::WhiteoutSpec;
use nydus_core::oci::bootstrap_layer::{build_with, extract_files};
use nydus_core::oci::check::is_nydus;
use nydus_core::oci::manifest::{Manifest, Platform};
use nydus_core::oci::nydus::{committed_blobs, committed_image, BlobLayer};
use nydus_core::oci::reference::Reference;
use nydus_core::read::Filesystem;
use nydus_host_image::create::{build, BlobTarget, DirOptions, Plan};
use nydus_host_storage::atomic::{write_file, Scratch};
use nydus_host_storage::open_image;
use nydus_host_storage::sign::Timestamp;
use serde_json::json;

use crate::containerd::Containerd;
use crate::convert::{convert, BuildCacheOptions, ConvertOptions};
use crate::registry_for;
use crate::store::Store;
use crate::transfer::copy_blob;

/// What to commit and where the image goes.
#[derive(Debug, Clone)]
pub struct CommitOptions {
    /// The container's id, or a unique prefix of it.
    pub container: String,
    pub namespace: String,
    /// containerd's socket.
    pub containerd_address: PathBuf,
    pub target: Reference,
    /// The target as the user wrote it (messages).
    pub target_shown: String,
    /// Refuse when the base image already holds this many committed layers.
    pub maximum_times: usize,
    /// Directories of the container (mount points: volumes, tmpfs) committed as layers of
    /// their own, read through `/proc/<pid>/root` (the container's mount namespace as the
    /// host sees it, no `nsenter`).
    pub with_paths: Vec<PathBuf>,
    /// Paths of the container left out of the commit.
    pub without_paths: Vec<PathBuf>,
    pub source_insecure: bool,
    pub target_insecure: bool,
    pub source_plain_http: bool,
    pub target_plain_http: bool,
    /// The platform picked out of the base image's index.
    pub platform: Platform,
    /// Where an OCI base's converted layers are cached (and looked up).
    pub build_cache: Option<BuildCacheOptions>,
    /// Scratch space (a fresh directory inside it is used and removed).
    pub work_dir: PathBuf,
    pub retries: u32,
    pub retry_delay: Duration,
    /// Push blobs in chunks of this size (0: one PUT).
    pub push_chunk_size: u64,
}

/// What a commit did.
#[derive(Debug, Clone)]
pub struct CommitOutcome {
    /// The container's full id.
    pub container: String,
    /// The image it runs, and whether it was converted on the way.
    pub base_image: String,
    pub base_converted: bool,
    /// The pushed manifest.
    pub manifest_digest: String,
    /// The new blob (`None` when the changes hold no file data: deletions, metadata).
    pub blob: Option<String>,
    pub blob_size: u64,
    /// The blobs of the `with_paths` directories (those with file data), in order.
    pub mount_blobs: Vec<String>,
    /// Committed layers in the new image (the earlier commits' and this one).
    pub committed_layers: usize,
    /// Seconds the container was paused, and spent pulling (and converting), building and
    /// pushing.
    pub paused_seconds: f64,
    pub pull_seconds: f64,
    pub build_seconds: f64,
    pub push_seconds: f64,
}

/// Largest bootstrap layer pulled into memory.
const MAX_BOOTSTRAP_LAYER: usize = 1 << 30;

/// The base image: where its manifest, config and blobs are.
struct Base {
    store: Store,
    manifest: Manifest,
    config: serde_json::Value,
    files: Vec<(String, Vec<u8>)>,
    converted: bool,
}

/// Commits per `o`.
pub fn commit(o: &CommitOptions) -> Result<CommitOutcome> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    // containerd first: a wrong socket, an unknown or stopped container fail before any
    // registry traffic.
    let (ctd, info, dirs) = rt.block_on(async {
        let ctd = Containerd::connect(&o.containerd_address, &o.namespace).await?;
        let id = ctd.resolve_id(&o.container).await?;
        let info = ctd.inspect(&id).await?;
        let dirs = ctd.overlay_dirs(&info).await?;
        Ok::<_, anyhow::Error>((ctd, info, dirs))
    })?;
    let md = std::fs::metadata(&dirs.upper).with_context(|| {
        format!(
            "container {}: its upper directory {} (commit runs on containerd's host, as root)",
            info.id,
            dirs.upper.display()
        )
    })?;
    if !md.is_dir() {
        bail!(
            "container {}: {} is not a directory",
            info.id,
            dirs.upper.display()
        );
    }
    std::fs::create_dir_all(&o.work_dir)
        .with_context(|| format!("creating the work directory {}", o.work_dir.display()))?;
    let scratch = Scratch::new_in(&o.work_dir, "nydusify-commit-")?;
    let dir = scratch.path().to_path_buf();

    let t0 = Instant::now();
    let base_ref = Reference::parse(&info.image)
        .map_err(|e| anyhow!("container {}: its image {:?}: {e}", info.id, info.image))?;
    let base = pull_base(o, &rt, &base_ref, &info.image)?;
    let earlier = committed_blobs(&base.manifest);
    if earlier.len() >= o.maximum_times {
        bail!(
            "{}: reached maximum committed times {} ({} committed layers; --maximum-times)",
            info.image,
            o.maximum_times,
            earlier.len()
        );
    }
    let boot = base
        .files
        .iter()
        .find(|(n, _)| {
            n == nydus_core::oci::BOOTSTRAP_PATH || n == nydus_core::oci::LEGACY_BOOTSTRAP_PATH
        })
        .map(|(_, d)| d.clone())
        .with_context(|| format!("{}: the bootstrap layer holds no image.boot", info.image))?;
    let base_boot = dir.join("base.boot");
    write_file(&base_boot, &boot)?;
    let img =
        open_image(&base_boot).with_context(|| format!("{}: the base bootstrap", info.image))?;
    let pull_seconds = t0.elapsed().as_secs_f64();

    // The layers, taken while the container is paused; resumed whatever the builds did.
    let blob_dir = dir.join("blobs");
    let upper_plan = Plan {
        source: dirs.upper.clone(),
        bootstrap: Some(dir.join("upper.boot")),
        blob: Some(BlobTarget::Dir(blob_dir.clone())),
        inline_meta: false,
        blob_toc: true,
        compressor: img.boot.compressor(),
        digester: img.boot.digester(),
        chunk_size: img.boot.chunk_size(),
        whiteout: WhiteoutSpec::Overlayfs,
        prefetch_fs: true,
        blob_id: None,
        explicit_uid_gid: true,
        threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
        check: true,
        tar: false,
        parent: Some(base_boot.clone()),
        chunk_dict: None,
        v5: img.boot.version() == 5,
        aligned_chunk: false,
        dir: DirOptions {
            overlay_upper: true,
            exclude: o
                .without_paths
                .iter()
                .chain(&o.with_paths)
                .map(|p| p.as_os_str().as_bytes().to_vec())
                .collect(),
            graft_at: None,
        },
    };
    drop(img);
    let t1 = Instant::now();
    rt.block_on(ctd.pause(&info.id))?;
    let paused = Instant::now();
    let built = build_layers(&upper_plan, o, info.pid, &dir);
    let resumed = rt.block_on(ctd.resume(&info.id));
    let paused_seconds = paused.elapsed().as_secs_f64();
    let layers = built.with_context(|| format!("container {}: building its changes", info.id))?;
    resumed?;
    let final_boot = &layers.last().expect("the upper layer").bootstrap;
    // The blobs with data, each once, upper first (an unchanged path adds none).
    let mut new_blobs: Vec<BlobLayer> = Vec::new();
    let mut new_metas: Vec<(String, Vec<u8>)> = Vec::new();
    let mut kinds: Vec<bool> = Vec::new();
    for (i, b) in layers.iter().enumerate() {
        let d = format!("sha256:{}", b.blob_id);
        let known = base.manifest.layers.iter().any(|l| l.digest == d)
            || new_blobs.iter().any(|x| x.digest_hex == b.blob_id);
        if b.table_ids.contains(&b.blob_id) && !known {
            new_blobs.push(BlobLayer {
                digest_hex: b.blob_id.clone(),
                size: b.blob_size,
            });
            if !b.blob_meta.is_empty() {
                new_metas.push((b.blob_id.clone(), b.blob_meta.clone()));
            }
            kinds.push(i == 0);
        }
    }
    let has_blob = kinds.first() == Some(&true);
    let mut metas: Vec<(String, Vec<u8>)> = base
        .files
        .iter()
        .filter_map(|(n, d)| {
            let id = n.strip_prefix("image/")?.strip_suffix(".blob.meta")?;
            Some((id.to_string(), d.clone()))
        })
        .collect();
    metas.extend(new_metas);
    let layer = build_with(final_boot, &metas, &[]);
    let created = Timestamp::from(SystemTime::now()).rfc3339();
    let history = json!({
        "created": created,
        "created_by": format!("nydusify commit --container {}", info.id),
        "comment": format!("Nydus Commit Layer: changes of container {}", info.id),
        "empty_layer": new_blobs.is_empty(),
    });
    let image = committed_image(&base.manifest, &base.config, &new_blobs, &layer, history)
        .map_err(|e| anyhow!("{}: {e}", info.image))?;
    let build_seconds = t1.elapsed().as_secs_f64();

    // Push: blobs, bootstrap layer, config, then the manifest.
    let t2 = Instant::now();
    let t = &o.target;
    let dst = Store::registry(
        registry_for(
            &t.host,
            o.target_insecure,
            o.target_plain_http,
            o.retries,
            o.retry_delay,
            o.push_chunk_size,
        )?,
        &t.repository,
    );
    let manifest_bytes = serde_json::to_vec(&image.manifest)?;
    let media_type = image
        .manifest
        .media_type
        .clone()
        .unwrap_or_else(|| nydus_core::oci::media::OCI_MANIFEST.to_string());
    let digest = rt.block_on(async {
        for l in &base.manifest.layers[..base.manifest.layers.len() - 1] {
            copy_blob(&base.store, &dst, &l.digest, &dir)
                .await
                .with_context(|| format!("copying base blob {} to {}", l.digest, o.target_shown))?;
        }
        for b in &new_blobs {
            let d = format!("sha256:{}", b.digest_hex);
            if !dst.has_blob(&d).await? {
                dst.push_blob_file(&d, &blob_dir.join(&b.digest_hex))
                    .await
                    .with_context(|| format!("pushing the committed blob {d}"))?;
            }
        }
        dst.push_blob_bytes(&layer.digest, &layer.gz)
            .await
            .context("pushing the bootstrap layer")?;
        dst.push_blob_bytes(&image.manifest.config.digest, &image.config)
            .await
            .context("pushing the config")?;
        dst.put_manifest(t.target(), &media_type, &manifest_bytes)
            .await
            .context("pushing the manifest")
    })?;
    let push_seconds = t2.elapsed().as_secs_f64();
    Ok(CommitOutcome {
        container: info.id,
        base_image: info.image,
        base_converted: base.converted,
        manifest_digest: digest,
        blob: has_blob.then(|| new_blobs[0].digest_hex.clone()),
        blob_size: if has_blob { new_blobs[0].size } else { 0 },
        mount_blobs: new_blobs
            .iter()
            .zip(&kinds)
            .filter(|(_, upper)| !**upper)
            .map(|(b, _)| b.digest_hex.clone())
            .collect(),
        committed_layers: earlier.len() + new_blobs.len(),
        paused_seconds,
        pull_seconds,
        build_seconds,
        push_seconds,
    })
}

/// Builds the upper directory on the base, then each `--with-path` directory on the result;
/// the last build's bootstrap is the committed image's.
fn build_layers(
    upper: &Plan,
    o: &CommitOptions,
    pid: u32,
    dir: &Path,
) -> Result<Vec<nydus_host_image::create::Built>> {
    let mut out = vec![build(upper, &["/".to_string()], None, None)?];
    let mut parent = upper.bootstrap.clone().expect("a bootstrap output");
    for (i, p) in o.with_paths.iter().enumerate() {
        // The container's mount namespace as the host sees it: /proc/<pid>/root resolves the
        // path through the container's root and mounts.
        let src = PathBuf::from(format!("/proc/{pid}/root")).join(p.strip_prefix("/").unwrap_or(p));
        let md = std::fs::metadata(&src)
            .with_context(|| format!("--with-path {}: {}", p.display(), src.display()))?;
        if !md.is_dir() {
            bail!(
                "--with-path {}: not a directory in the container",
                p.display()
            );
        }
        let boot = dir.join(format!("mount-{i}.boot"));
        let plan = Plan {
            source: src,
            bootstrap: Some(boot.clone()),
            parent: Some(parent.clone()),
            dir: DirOptions {
                overlay_upper: false,
                exclude: o
                    .without_paths
                    .iter()
                    .filter_map(|x| x.strip_prefix(p).ok())
                    .filter(|x| !x.as_os_str().is_empty())
                    .map(|x| [b"/", x.as_os_str().as_bytes()].concat())
                    .collect(),
                graft_at: Some(p.as_os_str().as_bytes().to_vec()),
            },
            ..upper.clone()
        };
        out.push(
            build(&plan, &["/".to_string()], None, None)
                .with_context(|| format!("--with-path {}", p.display()))?,
        );
        parent = boot;
    }
    Ok(out)
}

/// Splits `--with-path` values: paths to commit as layers of their own, and (`!path`) paths
/// left out. Each must be absolute, without `..`, and not `/`.
pub fn parse_with_paths(values: &[String]) -> Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for v in values {
        let (list, p) = match v.strip_prefix('!') {
            Some(p) => (&mut without, p),
            None => (&mut with, v.as_str()),
        };
        let path = PathBuf::from(p.trim_end_matches('/'));
        if !path.is_absolute()
            || path.as_os_str() == "/"
            || path.as_os_str().is_empty()
            || path.components().any(|c| {
                matches!(
                    c,
                    std::path::Component::ParentDir | std::path::Component::CurDir
                )
            })
        {
            bail!("--with-path {v:?}: an absolute path in the container (not /, no '..') expected");
        }
        if !list.contains(&path) {
            list.push(path);
        }
    }
    Ok((with, without))
}

/// The base image as a Nydus image: as it is, or converted (pushed untagged into the target
/// repository).
fn pull_base(
    o: &CommitOptions,
    rt: &tokio::runtime::Runtime,
    base_ref: &Reference,
    shown: &str,
) -> Result<Base> {
    let reg = registry_for(
        &base_ref.host,
        o.source_insecure,
        o.source_plain_http,
        o.retries,
        o.retry_delay,
        0,
    )?;
    let (m, _) = rt.block_on(crate::resolve::manifest_for(
        &reg,
        &base_ref.repository,
        base_ref.target(),
        &o.platform,
        shown,
    ))?;
    let (store, manifest, converted) = if is_nydus(&m) {
        (Store::registry(reg, &base_ref.repository), m, false)
    } else {
        // An OCI base (the overlayfs snapshotter ran it): converted first. Its Nydus
        // manifest is pushed by digest only; the commit's manifest takes the tag.
        let mut c = ConvertOptions::new(base_ref.clone(), o.target.clone());
        c.source_insecure = o.source_insecure;
        c.target_insecure = o.target_insecure;
        c.source_plain_http = o.source_plain_http;
        c.target_plain_http = o.target_plain_http;
        c.platforms = vec![o.platform.clone()];
        c.build_cache = o.build_cache.clone();
        c.work_dir = o.work_dir.clone();
        c.retries = o.retries;
        c.retry_delay = o.retry_delay;
        c.push_chunk_size = o.push_chunk_size;
        c.untagged = true;
        let done = convert(&c).with_context(|| format!("converting the base image {shown}"))?;
        let digest = done
            .manifests
            .first()
            .map(|p| p.digest.clone())
            .context("the conversion pushed no manifest")?;
        let t = &o.target;
        let reg = registry_for(
            &t.host,
            o.target_insecure,
            o.target_plain_http,
            o.retries,
            o.retry_delay,
            0,
        )?;
        let (m, _) = rt.block_on(crate::resolve::manifest_for(
            &reg,
            &t.repository,
            &digest,
            &o.platform,
            shown,
        ))?;
        (Store::registry(reg, &t.repository), m, true)
    };
    let (config, gz) = rt.block_on(async {
        let config = store
            .blob_bytes(&manifest.config.digest)
            .await
            .with_context(|| format!("{shown}: pulling the config"))?;
        let last = manifest.layers.last().context("no layers")?;
        let gz = store
            .blob_bytes(&last.digest)
            .await
            .with_context(|| format!("{shown}: pulling the bootstrap layer"))?;
        Ok::<_, anyhow::Error>((config, gz))
    })?;
    let config: serde_json::Value = serde_json::from_slice(&config)
        .with_context(|| format!("{shown}: the config is not JSON"))?;
    let files = extract_files(&gz, MAX_BOOTSTRAP_LAYER).map_err(|e| {
        anyhow!(
            "{shown}: bootstrap layer {}: {e}",
            manifest
                .layers
                .last()
                .map(|l| l.digest.as_str())
                .unwrap_or("")
        )
    })?;
    Ok(Base {
        store,
        manifest,
        config,
        files,
        converted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_paths_split_into_included_and_excluded() {
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let (w, wo) = parse_with_paths(&v(&["/data/", "!/tmp/cache", "/data"])).unwrap();
        assert_eq!(w, vec![PathBuf::from("/data")]);
        assert_eq!(wo, vec![PathBuf::from("/tmp/cache")]);
        for bad in ["data", "/", "!/a/../b", "!"] {
            assert!(parse_with_paths(&v(&[bad])).is_err(), "{bad}");
        }
    }
}
