//! `nydus-image create`: the options checked and turned into a build [`Plan`], the build, and
//! `--output-json`.

use anyhow::{bail, Context, Result};
use nydus_core::digest::Digester;
use nydus_core::layer::WhiteoutSpec;
use nydus_core::model::Compressor;
use nydus_host_image::create::{build, BlobTarget, Plan};
use nydus_host_image::stargz::{self, StargzPlan};
use nydus_host_image::tarsrc;
use nydus_host_storage::atomic::{write_file, Scratch};
use nydus_host_storage::config::{self, BackendConfig, LocalBlobs};
use serde_json::json;

use super::args::{chunk_dict_path, parse_chunk_size, parse_compressor, parse_size, CreateArgs};

fn not_built(what: &str) -> anyhow::Error {
    anyhow::anyhow!("{what} is not supported by this nydus-image yet")
}

/// The build plan of `create`'s options.
/// The directory the blob is built in before it is uploaded: next to the bootstrap.
fn scratch_parent(a: &CreateArgs) -> std::path::PathBuf {
    a.bootstrap
        .as_deref()
        .and_then(|b| b.parent())
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| ".".into(), |p| p.to_path_buf())
}

/// A backend the blob is uploaded to after the build, and the scratch directory it is built in.
pub type Upload = Option<(BackendConfig, Scratch)>;

/// The build plan of `create`'s options.
pub fn plan(a: &CreateArgs) -> Result<Plan> {
    plan_upload(a).map(|(p, _)| p)
}

/// The build plan, and the remote backend the blob goes to.
pub fn plan_upload(a: &CreateArgs) -> Result<(Plan, Upload)> {
    let tar = match a.source_type.as_str() {
        "dir-rafs" | "directory" => false,
        "tar-rafs" | "targz-rafs" => true,
        "estargztoc-ref" | "stargz_index" => {
            bail!("internal: -t {} is built by run_stargz", a.source_type)
        }
        "estargz-rafs" | "targz-ref" | "estargz-ref" | "tar-tarfs" => {
            return Err(not_built(&format!("source type {}", a.source_type)))
        }
        t => bail!("invalid --type {t:?}: expected dir-rafs, tar-rafs, targz-rafs, estargz-rafs, targz-ref, estargz-ref, estargztoc-ref or tar-tarfs"),
    };
    let v5 = match a.fs_version.as_str() {
        "6" => false,
        "5" => true,
        v => bail!("invalid --fs-version {v:?}: expected 5 or 6"),
    };
    if a.encrypt {
        return Err(not_built("--encrypt"));
    }
    if parse_size(&a.batch_size) != Some(0) {
        return Err(not_built("--batch-size other than 0"));
    }
    if parse_size(&a.blob_offset) != Some(0) {
        return Err(not_built("--blob-offset other than 0"));
    }
    if a.aligned_chunk && !v5 {
        bail!("--aligned-chunk applies to RAFS v5 only (v6 chunks are always aligned)");
    }
    if v5 {
        for (given, what) in [
            (
                a.features.iter().any(|f| f == "blob-toc"),
                "--features blob-toc",
            ),
            (a.blob_cache_dir.is_some(), "--blob-cache-dir"),
        ] {
            if given {
                bail!("{what} needs RAFS v6 (--fs-version 6)");
            }
        }
    }
    let chunk_size = parse_chunk_size(&a.chunk_size)?;
    let digester = Digester::from_name(&a.digester).with_context(|| {
        format!(
            "invalid --digester {:?}: expected blake3 or sha256",
            a.digester
        )
    })?;
    let mut blob_toc = false;
    for f in &a.features {
        match f.as_str() {
            "blob-toc" => blob_toc = true,
            "" => {}
            f => bail!("invalid --features {f:?}: expected blob-toc"),
        }
    }
    let prefetch_fs = match a.prefetch_policy.as_str() {
        "fs" => true,
        "none" => false,
        "blob" => return Err(not_built("--prefetch-policy blob")),
        p => bail!("invalid --prefetch-policy {p:?}: expected fs, blob or none"),
    };
    let whiteout = WhiteoutSpec::from_name(&a.whiteout_spec).with_context(|| {
        format!(
            "invalid --whiteout-spec {:?}: expected oci, overlayfs or none",
            a.whiteout_spec
        )
    })?;
    let chunk_dict = a.chunk_dict.as_deref().map(chunk_dict_path).transpose()?;

    let mut blob = a.blob.clone().map(BlobTarget::File);
    if let Some(d) = &a.blob_dir {
        if blob.is_some() {
            bail!("--blob and --blob-dir conflict");
        }
        blob = Some(BlobTarget::Dir(d.clone()));
    }
    let mut remote = None;
    if let Some(t) = &a.backend_type {
        if blob.is_some() {
            bail!("--backend-type conflicts with --blob and --blob-dir");
        }
        let c = config::parse(
            super::blobs::BACKEND,
            t,
            a.backend_config.as_deref(),
            a.backend_config_file.as_deref(),
        )?;
        blob = Some(match c {
            BackendConfig::Localfs { blobs, .. } => match blobs {
                LocalBlobs::Dir(d) => BlobTarget::Dir(d),
                LocalBlobs::File(f) => BlobTarget::File(f),
            },
            other => {
                // Built into a scratch directory, then uploaded (`run`).
                if a.bootstrap.is_none() && !a.blob_inline_meta {
                    bail!(
                        "--backend-type {} needs --bootstrap (or --blob-inline-meta): only the blob goes to the backend",
                        other.kind()
                    );
                }
                let scratch = Scratch::new_in(&scratch_parent(a), ".nydus-upload-")
                    .context("creating a scratch directory for the blob")?;
                let dir = scratch.path().to_path_buf();
                remote = Some((other, scratch));
                BlobTarget::Dir(dir)
            }
        });
    }
    let mut compressor = match &a.compressor {
        Some(c) => parse_compressor(c)?,
        None => Compressor::Zstd,
    };
    if let Some(d) = &a.blob_cache_dir {
        if blob.is_some() || a.blob_inline_meta {
            bail!("--blob-cache-dir conflicts with --blob, --blob-dir and --blob-inline-meta");
        }
        if a.compressor.is_some() && compressor != Compressor::None {
            bail!("--blob-cache-dir writes uncompressed data and conflicts with --compressor");
        }
        compressor = Compressor::None;
        blob = Some(BlobTarget::CacheDir(d.clone()));
    }
    if a.blob_inline_meta {
        if a.bootstrap.is_some() {
            bail!("--blob-inline-meta conflicts with --bootstrap");
        }
        if a.blob_id.is_some() {
            bail!("--blob-inline-meta conflicts with --blob-id");
        }
        if blob.is_none() {
            bail!("--blob-inline-meta needs --blob or --blob-dir");
        }
    } else if a.bootstrap.is_none() && !matches!(blob, Some(BlobTarget::Dir(_))) {
        bail!("--bootstrap is required unless --blob-dir or --blob-inline-meta is given");
    }
    if let Some(id) = &a.blob_id {
        if id.is_empty() || id.len() > 64 || !id.is_ascii() || id.contains('/') {
            bail!("invalid --blob-id {id:?}: at most 64 ASCII characters, no '/'");
        }
    }
    if blob.is_none() {
        bail!(
            "no blob output: give --blob, --blob-dir, --blob-cache-dir or --backend-type localfs"
        );
    }
    let threads = a
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    // With a remote backend, the bootstrap is written in the scratch directory too and moved
    // into place once the blob is in the backend: it never names a blob that is not there.
    let bootstrap = match (&remote, &a.bootstrap) {
        (Some((_, scratch)), Some(_)) => Some(scratch.path().join("bootstrap")),
        _ => a.bootstrap.clone(),
    };
    Ok((
        Plan {
            source: a.source.clone(),
            bootstrap,
            blob,
            inline_meta: a.blob_inline_meta,
            blob_toc,
            compressor,
            digester,
            chunk_size,
            whiteout,
            prefetch_fs,
            blob_id: a.blob_id.clone(),
            explicit_uid_gid: !a.repeatable,
            threads,
            check: !a.disable_check,
            tar,
            parent: a.parent_bootstrap.clone(),
            chunk_dict,
            v5,
            aligned_chunk: a.aligned_chunk,
            dir: Default::default(),
        },
        remote,
    ))
}

pub fn run(a: CreateArgs) -> Result<()> {
    for (path, flag) in [
        (&a.bootstrap, "--bootstrap"),
        (&a.blob, "--blob"),
        (&a.output_json, "--output-json"),
    ] {
        if let Some(path) = path {
            crate::cli::check_output_path(path, flag)?;
        }
    }
    if matches!(a.source_type.as_str(), "estargztoc-ref" | "stargz_index") {
        return run_stargz(&a);
    }
    let (p, upload) = plan_upload(&a)?;
    // Output directories are made as upstream makes them.
    for (d, flag) in [
        (&a.blob_dir, "--blob-dir"),
        (&a.blob_cache_dir, "--blob-cache-dir"),
    ] {
        if let Some(d) = d {
            std::fs::create_dir_all(d)
                .with_context(|| format!("{flag} {}: creating the directory", d.display()))?;
        }
    }
    let patterns = if p.prefetch_fs {
        super::read_prefetch_patterns()?
    } else {
        Vec::new()
    };
    let input = if p.tar {
        Some(tarsrc::open_layer(&p.source)?)
    } else {
        None
    };
    // Into a bucket, the blob goes up while it is built (the finished file otherwise).
    let dest = match &upload {
        Some((backend, _)) => Some(nydus_host_nydusify::backend::BlobDest::new(backend)?),
        None => None,
    };
    let what = format!("create {}", p.source.display());
    let (streamed, tee) = match dest.as_ref().and_then(|d| d.streamed(&what)) {
        Some((s, sink)) => (Some(s), Some(sink)),
        None => (None, None),
    };
    let b = build(&p, &patterns, input, tee)?;
    if let (Some((_, scratch)), Some(dest)) = (upload, dest) {
        let blob = scratch.path().join(&b.blob_id);
        if b.table_ids.contains(&b.blob_id) {
            let pushed = match streamed
                .and_then(|s| s.finish(&b.blob_id, b.blob_size, a.backend_force_push))
            {
                Some(p) => p,
                None => dest.push_blob(&b.blob_id, &blob, a.backend_force_push)?,
            };
            log::info!(
                "blob {} {} {}",
                b.blob_id,
                if pushed.skipped {
                    "already in"
                } else {
                    "pushed to"
                },
                pushed.location
            );
        }
        if let (Some(built), Some(dest)) = (&b.bootstrap_path, &a.bootstrap) {
            std::fs::rename(built, dest)
                .with_context(|| format!("moving the bootstrap to {}", dest.display()))?;
        }
    }
    if let Some(j) = &a.output_json {
        let v = json!({
            "version": concat!(env!("CARGO_PKG_NAME"), "-", env!("CARGO_PKG_VERSION")),
            "bootstrap": a.bootstrap.as_ref().or(b.bootstrap_path.as_ref()).map(|b| b.display().to_string()).unwrap_or_default(),
            "blobs": b.table_ids,
            "external_bootstrap": "",
            "external_blobs": [],
            "trace": b.trace,
            "fs_version": if p.v5 { "5" } else { "6" },
            "compressor": p.compressor.name(),
        });
        write_file(j, serde_json::to_string_pretty(&v)?.as_bytes())?;
    }
    let boot = a.bootstrap.as_ref().or(b.bootstrap_path.as_ref());
    log::info!(
        "built RAFS v{}{}: blob {} ({} bytes, {}), {} blob(s) in its table",
        if p.v5 { 5 } else { 6 },
        boot.map(|b| format!(" {}", b.display()))
            .unwrap_or_default(),
        b.blob_id,
        b.blob_size,
        p.compressor.name(),
        b.table_ids.len()
    );
    Ok(())
}

/// The plan of `-t estargztoc-ref`: RAFS v6, gzip, SHA-256 and the TOC's chunk size are
/// forced (`stargz.md` §3); no blob is written.
pub fn stargz_plan(a: &CreateArgs) -> Result<StargzPlan> {
    let t = &a.source_type;
    for (given, what) in [
        (a.blob.is_some(), "--blob"),
        (a.blob_dir.is_some(), "--blob-dir"),
        (a.blob_inline_meta, "--blob-inline-meta"),
        (a.backend_type.is_some(), "--backend-type"),
        (a.chunk_dict.is_some(), "--chunk-dict"),
        (a.encrypt, "--encrypt"),
        (a.fs_version != "6", "--fs-version 5"),
    ] {
        if given {
            bail!(
                "-t {t} writes no blob (the eStargz layer is the blob) and conflicts with {what}"
            );
        }
    }
    if let Some(c) = &a.compressor {
        if c != "gzip" {
            log::info!("-t {t} uses gzip (the layer's own compression), not --compressor {c}");
        }
    }
    let bootstrap = a
        .bootstrap
        .clone()
        .with_context(|| format!("-t {t} needs --bootstrap"))?;
    if let Some(id) = &a.blob_id {
        if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            bail!("invalid --blob-id {id:?}: the hex of the eStargz layer's sha256 digest (64 characters, no `sha256:`)");
        }
    }
    let blob_size = a
        .blob_data_size
        .as_deref()
        .map(|s| {
            u64::from_str_radix(s.trim_start_matches("0x").trim_start_matches("0X"), 16)
                .with_context(|| format!("invalid --blob-data-size {s:?}: a hex number"))
        })
        .transpose()?;
    let whiteout = WhiteoutSpec::from_name(&a.whiteout_spec).with_context(|| {
        format!(
            "invalid --whiteout-spec {:?}: expected oci, overlayfs or none",
            a.whiteout_spec
        )
    })?;
    let prefetch = match a.prefetch_policy.as_str() {
        "fs" => super::read_prefetch_patterns()?,
        "none" => Vec::new(),
        p => bail!("invalid --prefetch-policy {p:?} for -t {t}: expected fs or none"),
    };
    Ok(StargzPlan {
        source: a.source.clone(),
        bootstrap,
        blob_id: a.blob_id.clone(),
        blob_size,
        parent: a.parent_bootstrap.clone(),
        whiteout,
        explicit_uid_gid: !a.repeatable,
        cache_dir: a.blob_cache_dir.clone(),
        prefetch,
        check: !a.disable_check,
    })
}

fn run_stargz(a: &CreateArgs) -> Result<()> {
    let p = stargz_plan(a)?;
    let b = stargz::build(&p)?;
    if let Some(j) = &a.output_json {
        let v = json!({
            "version": concat!(env!("CARGO_PKG_NAME"), "-", env!("CARGO_PKG_VERSION")),
            "bootstrap": p.bootstrap.display().to_string(),
            "blobs": b.table_ids,
            "external_bootstrap": "",
            "external_blobs": [],
            "fs_version": "6",
            "compressor": "gzip",
            "toc_digest": format!("sha256:{}", b.toc_digest),
        });
        write_file(j, serde_json::to_string_pretty(&v)?.as_bytes())?;
    }
    log::info!(
        "built RAFS v6 {} from the eStargz TOC of blob {} ({} chunks, chunk size {:#x}), {} blob(s) in its table",
        p.bootstrap.display(),
        b.blob.blob_id,
        b.blob.chunk_count,
        b.blob.chunk_size,
        b.table_ids.len()
    );
    Ok(())
}
