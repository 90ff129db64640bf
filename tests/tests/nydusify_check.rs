//! `nydusify check --target` against Debian's docker-registry: a Nydus image built from three
//! layers with our `nydus-image` (per-layer blobs with inline bootstraps, then `merge`), packed
//! and pushed with the core's OCI module and the registry client, passes the manifest and
//! bootstrap rules and leaves the fetched files in `--work-dir`; a manifest missing a blob
//! layer, and a plain OCI image, fail with the problem named.

use std::path::Path;

use nydus_core::digest::sha256;
use nydus_core::oci::bootstrap_layer;
use nydus_core::oci::manifest::{Descriptor, Manifest};
use nydus_core::oci::media;
use nydus_core::oci::nydus::{nydus_image, BlobLayer};
use nydus_host_native::registry::{Registry, RegistryOptions};
use nydus_tests::*;
use serde_json::json;

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

#[test]
fn check_passes_a_good_image_and_names_problems() {
    let reg = TestRegistry::start(None);
    let t = tempfile::tempdir().unwrap();
    golden_layers(t.path());
    let blobs = t.path().join("blobs");
    let mut layers = Vec::new();
    for i in 1..=3 {
        let j = t.path().join("l.json");
        nydus_image_ok(&[
            "create",
            "-t",
            "tar-rafs",
            "--whiteout-spec",
            "none",
            "--blob-inline-meta",
            "--features",
            "blob-toc",
            "--blob-dir",
            &s(&blobs),
            "-J",
            &s(&j),
            &s(&t.path().join(format!("layer{i}.tar"))),
        ]);
        let id = first_blob_id(&j);
        let size = std::fs::metadata(blobs.join(&id)).unwrap().len();
        layers.push(BlobLayer {
            digest_hex: id,
            size,
        });
    }
    let merged = t.path().join("merged.boot");
    let mut args = vec!["merge".to_string(), "-B".into(), s(&merged)];
    args.extend(layers.iter().map(|l| s(&blobs.join(&l.digest_hex))));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    nydus_image_ok(&args);
    let boot = std::fs::read(&merged).unwrap();
    let boot_layer = bootstrap_layer::build(&boot, &[]);
    let source = Manifest {
        schema_version: 2,
        media_type: Some(media::OCI_MANIFEST.into()),
        config: Descriptor {
            media_type: media::OCI_CONFIG.into(),
            ..Default::default()
        },
        ..Default::default()
    };
    let config = json!({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/sh"]},
                        "rootfs": {"type": "layers", "diff_ids": []}});
    let img = nydus_image(&source, &config, &layers, &boot_layer, 6, true, false).unwrap();
    let c = Registry::new(
        &reg.addr,
        RegistryOptions {
            plain_http: true,
            ..Default::default()
        },
    )
    .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let push = |tag: &str, m: &Manifest, cfg: &[u8]| {
        rt.block_on(async {
            for l in &layers {
                c.push_blob_file(
                    "x/y",
                    &format!("sha256:{}", l.digest_hex),
                    &blobs.join(&l.digest_hex),
                )
                .await
                .unwrap();
            }
            c.push_blob_bytes("x/y", &boot_layer.digest, &boot_layer.gz)
                .await
                .unwrap();
            let cd = format!("sha256:{}", sha256(cfg).to_hex());
            c.push_blob_bytes("x/y", &cd, cfg).await.unwrap();
            c.put_manifest(
                "x/y",
                tag,
                media::OCI_MANIFEST,
                &serde_json::to_vec(m).unwrap(),
            )
            .await
            .unwrap();
        })
    };
    push("nydus", &img.manifest, &img.config);
    let work = t.path().join("work");
    let target = format!("{}/x/y:nydus", reg.addr);
    let o = nydusify(&[
        "check",
        "--target",
        &target,
        "--plain-http",
        "--work-dir",
        &s(&work),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(std::fs::read(work.join("nydus_bootstrap")).unwrap() == boot);
    for f in [
        "nydus_manifest.json",
        "nydus_config.json",
        "nydus_output.json",
    ] {
        assert!(work.join(f).exists(), "{f}");
    }

    // A manifest without its second blob layer (config diff ids adjusted): the bootstrap
    // names a blob that is not a layer.
    let mut broken = img.manifest.clone();
    let gone = broken.layers.remove(1);
    let mut cfg: serde_json::Value = serde_json::from_slice(&img.config).unwrap();
    cfg["rootfs"]["diff_ids"].as_array_mut().unwrap().remove(1);
    let cfg = serde_json::to_vec(&cfg).unwrap();
    broken.config.digest = format!("sha256:{}", sha256(&cfg).to_hex());
    broken.config.size = cfg.len() as u64;
    push("broken", &broken, &cfg);
    let o = nydusify(&[
        "check",
        "--target",
        &format!("{}/x/y:broken", reg.addr),
        "--plain-http",
        "--work-dir",
        &s(&work),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains(gone.digest_hex()) && err.contains("not a layer"),
        "{err}"
    );

    // A plain OCI image is not a Nydus image.
    let mut oci = img.manifest.clone();
    oci.layers.last_mut().unwrap().annotations.clear();
    push("oci", &oci, &img.config);
    let o = nydusify(&[
        "check",
        "--target",
        &format!("{}/x/y:oci", reg.addr),
        "--plain-http",
        "--work-dir",
        &s(&work),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("not a Nydus image"), "{err}");

    // A usage error names what is missing (commit without --container).
    let o = nydusify(&["commit", "--target", "b"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--container"));
}
