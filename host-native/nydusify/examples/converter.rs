//! Converting an OCI image into a Nydus image with `nydusify` as a library: what upstream's
//! `contrib/nydusify/examples/converter/main.go` does, with a progress callback and hook
//! plugins.
//!
//! ```text
//! cargo run --release --example converter -- SOURCE TARGET [--plain-http] [--work-dir DIR]
//!     [--platform os/arch] [--hook-plugin WASM]...
//! ```
//!
//! It prints each converted layer as it is done, then the digest the target tag names and,
//! per platform, the Nydus manifest and its blobs.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use nydus_core::oci::manifest::Platform;
use nydus_core::oci::reference::Reference;
use nydus_host_nydusify::convert::{convert, ConvertOptions, Progress, ProgressFn};
use nydus_host_plugin::{Hooks, Limits};

fn main() -> Result<()> {
    let mut positional = Vec::new();
    let (mut plain_http, mut work_dir, mut platform, mut plugins) =
        (false, None, None, Vec::<PathBuf>::new());
    let mut args = std::env::args();
    args.next(); // the program's name
    while let Some(a) = args.next() {
        let mut value = || args.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--plain-http" => plain_http = true,
            "--work-dir" => work_dir = Some(PathBuf::from(value()?)),
            "--platform" => platform = Some(value()?),
            "--hook-plugin" => plugins.push(value()?.into()),
            _ if a.starts_with("--") => bail!("unknown option {a}"),
            _ => positional.push(a),
        }
    }
    let [source, target] = positional.as_slice() else {
        bail!("usage: converter SOURCE TARGET [--plain-http] [--work-dir DIR] [--platform os/arch] [--hook-plugin WASM]...");
    };

    // Upstream's defaults (RAFS v6, zstd, 1 MiB chunks, the host's platform), then ours.
    let mut o = ConvertOptions::new(
        Reference::parse(source).context("SOURCE")?,
        Reference::parse(target).context("TARGET")?,
    );
    o.source_plain_http = plain_http;
    o.target_plain_http = plain_http;
    if let Some(d) = work_dir {
        o.work_dir = d;
    }
    if let Some(p) = platform {
        o.platforms = vec![Platform::parse(&p).context("--platform: expected os/arch")?];
    }
    if !plugins.is_empty() {
        let cache = o.work_dir.join("hook-plugins");
        o.hooks = Some(Arc::new(Hooks::load(
            &plugins,
            Limits::default(),
            Some(&cache),
        )?));
    }
    o.progress = Some(ProgressFn::new(|p| match p {
        Progress::LayerConverted {
            index,
            total,
            source_digest,
            blob_digest,
            blob_size,
            ..
        } => println!(
            "layer {}/{total}: {source_digest} -> {blob_digest} ({blob_size} bytes)",
            index + 1
        ),
        Progress::ManifestReady { platform, digest } => println!(
            "manifest {digest} ready ({})",
            platform.as_deref().unwrap_or("-")
        ),
        Progress::Pushed { tag, digest } => println!("pushed {tag}: {digest}"),
        _ => {}
    }));

    let done = convert(&o)?;
    println!("target {target} is {}", done.target_digest);
    for m in &done.manifests {
        println!(
            "  {} {} from {}, blobs {}",
            m.platform.as_deref().unwrap_or("-"),
            m.digest,
            m.source_digest,
            m.blobs.join(" ")
        );
    }
    println!(
        "converted in {:.2}s (pull {:?}, convert {:?}, push {:?})",
        done.elapsed.as_secs_f64(),
        done.phases.pull,
        done.phases.convert,
        done.phases.push
    );
    Ok(())
}
