//! `nydusify convert | check | copy | build` against Debian's docker-registry on loopback,
//! seeded with images built by umoci and pushed by skopeo (gzip and zstd layers; an
//! uncompressed one pushed by our client): per-layer blobs byte-identical to upstream's,
//! `check --source` comparing every path, repeatable digests, platforms and indexes,
//! tampering named by path, upload faults from a loopback proxy, and clear errors.

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use nydus_core::digest::sha256;
use nydus_core::oci::media;
use nydus_host_native::registry::{Registry, RegistryOptions};
use nydus_tests::*;
use serde_json::{json, Value};

/// Blob digests of the golden layers as upstream's `nydus-image create -t tar-rafs
/// --blob-inline-meta --features blob-toc --whiteout-spec none --prefetch-policy fs` (with `/`
/// on stdin) writes them, i.e. what upstream nydusify pushes for these layers.
const UPSTREAM_LAYER_BLOBS: [&str; 3] = [
    "eb6c2b522da4cb9d2a1f4e448fccd2ea1d368de75c5ee414b681b9f9affd3a83",
    "60e02c833188feb839d869f77df6b6769164f13e081334b7ef4f9af3cbd1a71c",
    "db8c66dc55c4a47e8310d247281cf659ffa8a2bf512b23193d6c146287aa2158",
];

/// SHA-256 of the merged bootstrap upstream's `nydus-image merge --prefetch-policy fs` (with `/`
/// on stdin) writes from the `image.boot` of those three blobs, named by their digests: what
/// upstream nydusify puts in the bootstrap layer.
const UPSTREAM_MERGED_BOOTSTRAP: &str =
    "ca1c1157630f2354e873ac9e52ef68067e30283ccbd20f3e65cefca0c9fcc841";

/// The same for `--fs-version 5` (`create -t tar-rafs --fs-version 5 --blob-inline-meta
/// --whiteout-spec none --prefetch-policy fs`, then `merge --prefetch-policy fs`), as upstream
/// writes them.
const UPSTREAM_V5_LAYER_BLOBS: [&str; 3] = [
    "c1187d689a3c653783eeec6fd4cd666118d6799d514c419147440e4cab3aea10",
    "e20965d8161c35c2f150a918b8be6764e7b86b3e6e7c882e9bb9d7601d3b074f",
    "40175d5ec89c2c5b0a839a2956d9009e24e9a1e41ef8ee3da14f8191e30b60ac",
];
const UPSTREAM_V5_MERGED_BOOTSTRAP: &str =
    "953fbf12e9672c9332c67a655cbf18ad78113d7a0cdda022aacf501680372315";

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

fn client(addr: &str) -> Registry {
    Registry::new(
        addr,
        RegistryOptions {
            plain_http: true,
            ..Default::default()
        },
    )
    .unwrap()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `nydusify convert` over plain HTTP; returns the `--output-json` metrics.
fn convert(work: &Path, source: &str, target: &str, extra: &[&str]) -> Value {
    let out = work.join(format!("convert-{}.json", std::process::id()));
    let mut args = vec![
        "convert",
        "--source",
        source,
        "--target",
        target,
        "--plain-http",
        "--work-dir",
        work.to_str().unwrap(),
        "--output-json",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    nydusify_ok(&args);
    serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap()
}

fn check(work: &Path, source: Option<&str>, target: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "check",
        "--target",
        target,
        "--plain-http",
        "--work-dir",
        work.to_str().unwrap(),
    ];
    if let Some(src) = source {
        args.extend_from_slice(&["--source", src]);
    }
    args.extend_from_slice(extra);
    nydusify(&args)
}

fn check_ok(work: &Path, source: Option<&str>, target: &str, extra: &[&str]) {
    let o = check(work, source, target, extra);
    assert!(
        o.status.success(),
        "check {target} against {source:?} failed:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        stderr(&o)
    );
}

fn blob_layer_digests(m: &Value) -> Vec<String> {
    let layers = m["layers"].as_array().unwrap();
    layers[..layers.len() - 1]
        .iter()
        .map(|l| {
            assert_eq!(l["mediaType"], media::NYDUS_BLOB, "{m}");
            assert_eq!(
                l["annotations"]["containerd.io/snapshot/nydus-blob"],
                "true"
            );
            l["digest"]
                .as_str()
                .unwrap()
                .trim_start_matches("sha256:")
                .to_string()
        })
        .collect()
}

#[test]
fn convert_is_upstream_exact_checked_and_repeatable() {
    let reg = TestRegistry::start(None);
    let t = tempfile::tempdir().unwrap();
    let (layout, tars) = seed_golden(&reg, t.path());
    let work = t.path().join("work");
    let src = format!("{}/src/golden:t", reg.addr);
    let dst = format!("{}/dst/golden:nydus", reg.addr);
    let m1 = convert(&work, &src, &dst, &[]);
    // Nothing of the conversion is left in the work directory but our metrics file.
    let left: Vec<_> = std::fs::read_dir(&work)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| !n.to_string_lossy().starts_with("convert-"))
        .collect();
    assert!(left.is_empty(), "work dir not cleaned: {left:?}");

    // skopeo reads our manifest; the blob layers are upstream's bytes.
    let raw = skopeo_raw(&dst);
    assert_eq!(raw["mediaType"], media::OCI_MANIFEST);
    assert_eq!(raw["layers"].as_array().unwrap().len(), 4);
    assert_eq!(blob_layer_digests(&raw), UPSTREAM_LAYER_BLOBS);
    let boot = &raw["layers"][3];
    assert_eq!(boot["mediaType"], media::OCI_LAYER_GZIP);
    assert_eq!(
        boot["annotations"]["containerd.io/snapshot/nydus-bootstrap"],
        "true"
    );
    assert_eq!(
        boot["annotations"]["containerd.io/snapshot/nydus-fs-version"],
        "6"
    );
    let digest = m1["target_digest"].as_str().unwrap().to_string();
    assert!(digest.starts_with("sha256:"), "{m1}");
    assert_eq!(m1["manifests"][0]["layers"].as_array().unwrap().len(), 3);

    // check: manifest, bootstrap, config and every path of the filesystem.
    let chk = t.path().join("chk");
    check_ok(&chk, Some(&src), &dst, &[]);
    for f in [
        "oci_manifest.json",
        "oci_config.json",
        "nydus_manifest.json",
        "nydus_config.json",
        "nydus_bootstrap",
        "nydus_bootstrap_debug.json",
        "nydus_output.json",
    ] {
        assert!(chk.join(f).is_file(), "check did not write {f}");
    }
    let merged = std::fs::read(chk.join("nydus_bootstrap")).unwrap();
    assert_eq!(sha256(&merged).to_hex(), UPSTREAM_MERGED_BOOTSTRAP);
    let cfg: Value =
        serde_json::from_slice(&std::fs::read(chk.join("nydus_config.json")).unwrap()).unwrap();
    assert_eq!(cfg["rootfs"]["diff_ids"].as_array().unwrap().len(), 4);
    assert_eq!(cfg["config"]["Cmd"], json!(["/bin/sh"]));

    // The same image converted again (elsewhere) has the same digest.
    let m2 = convert(&work, &src, &format!("{}/again/golden:n", reg.addr), &[]);
    assert_eq!(m2["target_digest"], m1["target_digest"]);

    // zstd layers: the same tars, so the same blobs.
    let zsrc = format!("{}/zs/golden:t", reg.addr);
    skopeo_push(&layout, "t", &zsrc, true);
    let zraw = skopeo_raw(&zsrc);
    assert_eq!(zraw["layers"][0]["mediaType"], media::OCI_LAYER_ZSTD);
    let zdst = format!("{}/zs/golden:nydus", reg.addr);
    convert(&work, &zsrc, &zdst, &[]);
    assert_eq!(blob_layer_digests(&skopeo_raw(&zdst)), UPSTREAM_LAYER_BLOBS);
    check_ok(&chk, Some(&zsrc), &zdst, &[]);

    // Uncompressed layers (skopeo cannot be told to decompress here; our client pushes them).
    let c = client(&reg.addr);
    let psrc = format!("{}/plain/golden:t", reg.addr);
    rt().block_on(async {
        let cfg_bytes = std::fs::read(chk.join("oci_config.json")).unwrap();
        let cfg_d = format!("sha256:{}", sha256(&cfg_bytes).to_hex());
        c.push_blob_bytes("plain/golden", &cfg_d, &cfg_bytes)
            .await
            .unwrap();
        let mut layers = Vec::new();
        for tar in &tars {
            let data = std::fs::read(tar).unwrap();
            let d = format!("sha256:{}", sha256(&data).to_hex());
            c.push_blob_file("plain/golden", &d, tar).await.unwrap();
            layers.push(json!({"mediaType": media::OCI_LAYER, "digest": d, "size": data.len()}));
        }
        let m = json!({"schemaVersion": 2, "mediaType": media::OCI_MANIFEST,
            "config": {"mediaType": media::OCI_CONFIG, "digest": cfg_d, "size": cfg_bytes.len()},
            "layers": layers});
        c.put_manifest(
            "plain/golden",
            "t",
            media::OCI_MANIFEST,
            m.to_string().as_bytes(),
        )
        .await
        .unwrap();
    });
    let pdst = format!("{}/plain/golden:nydus", reg.addr);
    convert(&work, &psrc, &pdst, &[]);
    assert_eq!(blob_layer_digests(&skopeo_raw(&pdst)), UPSTREAM_LAYER_BLOBS);
    check_ok(&chk, Some(&psrc), &pdst, &[]);

    // Docker media types are kept unless --oci; --oci forces OCI ones.
    let dsrc = format!("{}/docker/golden:t", reg.addr);
    let o = run(Command::new("skopeo").args([
        "copy",
        "--dest-tls-verify=false",
        "--format",
        "v2s2",
        &format!("oci:{}:t", layout.display()),
        &format!("docker://{dsrc}"),
    ]));
    assert!(o.status.success(), "{}", stderr(&o));
    let ddst = format!("{}/docker/golden:nydus", reg.addr);
    convert(&work, &dsrc, &ddst, &[]);
    let draw = skopeo_raw(&ddst);
    assert_eq!(draw["mediaType"], media::DOCKER_MANIFEST);
    assert_eq!(draw["layers"][3]["mediaType"], media::DOCKER_LAYER_GZIP);
    check_ok(&chk, Some(&dsrc), &ddst, &[]);
    let odst = format!("{}/docker/golden:oci", reg.addr);
    convert(&work, &dsrc, &odst, &["--oci"]);
    assert_eq!(skopeo_raw(&odst)["mediaType"], media::OCI_MANIFEST);
}

#[test]
fn tampering_is_named_by_path() {
    let reg = TestRegistry::start(None);
    let t = tempfile::tempdir().unwrap();
    let (layout, tars) = seed_golden(&reg, t.path());
    let work = t.path().join("work");
    let src = format!("{}/src/golden:t", reg.addr);
    let dst = format!("{}/dst/golden:nydus", reg.addr);
    convert(&work, &src, &dst, &[]);

    // A blob changed in the registry's storage: the blob and the damaged file are named.
    let data = reg.blob_data(UPSTREAM_LAYER_BLOBS[0]);
    let good = std::fs::read(&data).unwrap();
    let mut bad = good.clone();
    bad[100] ^= 0xff;
    std::fs::write(&data, &bad).unwrap();
    let o = check(&t.path().join("c1"), Some(&src), &dst, &[]);
    std::fs::write(&data, &good).unwrap();
    assert!(!o.status.success(), "a corrupted blob passed");
    let e = stderr(&o);
    assert!(
        e.contains(UPSTREAM_LAYER_BLOBS[0]) && e.contains("corrupted"),
        "{e}"
    );
    assert!(e.contains("/bin/tool: unreadable"), "{e}");

    // A consistent manifest whose bootstrap is another image's (layers 1 and 2 only).
    umoci_image(&layout, "two", &tars[..2], "amd64");
    skopeo_push(
        &layout,
        "two",
        &format!("{}/src/golden:two", reg.addr),
        false,
    );
    convert(
        &work,
        &format!("{}/src/golden:two", reg.addr),
        &format!("{}/dst/golden:two", reg.addr),
        &[],
    );
    let full = skopeo_raw(&dst);
    let two = skopeo_raw(&format!("{}/dst/golden:two", reg.addr));
    let mut swapped = full.clone();
    swapped["layers"][3] = two["layers"][2].clone();
    rt().block_on(async {
        client(&reg.addr)
            .put_manifest(
                "dst/golden",
                "swapped",
                media::OCI_MANIFEST,
                swapped.to_string().as_bytes(),
            )
            .await
            .unwrap();
    });
    let o = check(
        &t.path().join("c2"),
        Some(&src),
        &format!("{}/dst/golden:swapped", reg.addr),
        &[],
    );
    assert!(!o.status.success(), "a swapped bootstrap passed");
    let e = stderr(&o);
    assert!(
        e.contains("/bin/sh: in the Nydus image but not in the OCI image")
            && e.contains("/etc/hosts: content sha256"),
        "{e}"
    );
    // Without --source the swapped image is self-consistent.
    check_ok(
        &t.path().join("c3"),
        None,
        &format!("{}/dst/golden:swapped", reg.addr),
        &[],
    );
}

#[test]
fn platforms_indexes_and_copy() {
    let reg = TestRegistry::start(None);
    let reg2 = TestRegistry::start(None);
    let t = tempfile::tempdir().unwrap();
    let (layout, tars) = seed_golden(&reg, t.path());
    let work = t.path().join("work");
    umoci_image(&layout, "arm", &tars[..2], "arm64");
    skopeo_push(
        &layout,
        "arm",
        &format!("{}/src/golden:arm", reg.addr),
        false,
    );
    let c = client(&reg.addr);
    rt().block_on(async {
        let mut manifests = Vec::new();
        for (tag, arch) in [("t", "amd64"), ("arm", "arm64")] {
            let (mt, bytes, d) = c.get_manifest("src/golden", tag).await.unwrap();
            manifests.push(json!({"mediaType": mt, "digest": d, "size": bytes.len(),
                                  "platform": {"os": "linux", "architecture": arch}}));
        }
        let index =
            json!({"schemaVersion": 2, "mediaType": media::OCI_INDEX, "manifests": manifests});
        c.put_manifest(
            "src/golden",
            "multi",
            media::OCI_INDEX,
            index.to_string().as_bytes(),
        )
        .await
        .unwrap();
    });
    let src = format!("{}/src/golden:multi", reg.addr);

    // Default: linux/amd64 only, pushed as a single manifest.
    let one = format!("{}/dst/golden:one", reg.addr);
    let m = convert(&work, &src, &one, &["--platform", "linux/amd64"]);
    assert_eq!(m["manifests"].as_array().unwrap().len(), 1);
    assert_eq!(skopeo_raw(&one)["mediaType"], media::OCI_MANIFEST);
    check_ok(
        &t.path().join("c1"),
        Some(&src),
        &one,
        &["--platform", "linux/amd64"],
    );

    // Every platform: an index of Nydus manifests.
    let all = format!("{}/dst/golden:all", reg.addr);
    convert(&work, &src, &all, &["--all-platforms"]);
    let idx = skopeo_raw(&all);
    assert_eq!(idx["mediaType"], media::OCI_INDEX);
    assert_eq!(idx["manifests"].as_array().unwrap().len(), 2);
    for d in idx["manifests"].as_array().unwrap() {
        assert_eq!(d["artifactType"], media::NYDUS_MANIFEST_ARTIFACT);
        assert_eq!(
            d["platform"]["os.features"],
            json!(["nydus.remoteimage.v1"])
        );
    }
    check_ok(
        &t.path().join("c2"),
        Some(&src),
        &all,
        &["--platform", "linux/arm64"],
    );

    // --merge-platform: the source manifests next to the Nydus ones.
    let merged = format!("{}/dst/golden:merged", reg.addr);
    convert(
        &work,
        &src,
        &merged,
        &["--all-platforms", "--merge-platform"],
    );
    assert_eq!(
        skopeo_raw(&merged)["manifests"].as_array().unwrap().len(),
        4
    );
    check_ok(
        &t.path().join("c3"),
        Some(&src),
        &merged,
        &["--multi-platform", "--platform", "linux/arm64"],
    );
    let o = check(&t.path().join("c4"), None, &all, &["--multi-platform"]);
    assert!(
        !o.status.success(),
        "an index of Nydus manifests only passed --multi-platform"
    );

    // A platform the index lacks.
    let o = nydusify(&[
        "convert",
        "--source",
        &src,
        "--target",
        &format!("{}/dst/golden:none", reg.addr),
        "--plain-http",
        "--platform",
        "linux/s390x",
        "--work-dir",
        &s(&work),
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("no manifest for linux/s390x"),
        "{}",
        stderr(&o)
    );

    // copy: a Nydus index with all platforms to another registry, then one platform.
    let copied = format!("{}/copy/golden:all", reg2.addr);
    nydusify_ok(&[
        "copy",
        "--source",
        &all,
        "--target",
        &copied,
        "--plain-http",
        "--all-platforms",
        "--work-dir",
        &s(&work),
    ]);
    assert_eq!(skopeo_raw(&copied), idx);
    check_ok(
        &t.path().join("c5"),
        Some(&src),
        &copied,
        &["--platform", "linux/arm64"],
    );
    let arm = format!("{}/copy/golden:arm", reg2.addr);
    nydusify_ok(&[
        "copy",
        "--source",
        &all,
        "--target",
        &arm,
        "--plain-http",
        "--platform",
        "linux/arm64",
        "--work-dir",
        &s(&work),
    ]);
    assert_eq!(skopeo_raw(&arm)["mediaType"], media::OCI_MANIFEST);
    check_ok(
        &t.path().join("c6"),
        Some(&src),
        &arm,
        &["--platform", "linux/arm64"],
    );
}

/// The fault proxy (`tests/fault_proxy.py`) in front of `upstream`; killed when dropped.
struct Proxy {
    addr: String,
    child: Child,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn proxy(upstream: &str, mode: &str) -> Proxy {
    require_tool("python3", "python3");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("fault_proxy.py");
    let mut child = Command::new("python3")
        .arg(script)
        .args([upstream, mode])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting the fault proxy");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port: u16 = line.trim().parse().expect("the proxy prints its port");
    Proxy {
        addr: format!("127.0.0.1:{port}"),
        child,
    }
}

#[test]
fn upload_faults_are_retried_or_fail_cleanly() {
    let reg = TestRegistry::start(None);
    let t = tempfile::tempdir().unwrap();
    seed_golden(&reg, t.path());
    let work = t.path().join("work");
    let src = format!("{}/src/golden:t", reg.addr);
    let clean = convert(&work, &src, &format!("{}/clean/golden:n", reg.addr), &[]);
    let fast = ["--push-retry-delay", "100ms"];

    // A 500 and a dropped connection on whole-blob PUTs: retried, same digest.
    let p = proxy(&reg.addr, "once");
    let m = convert(&work, &src, &format!("{}/f1/golden:n", p.addr), &fast);
    assert_eq!(m["target_digest"], clean["target_digest"]);
    drop(p);
    // Chunked uploads: the dropped PATCH is resumed from the registry's offset.
    let p = proxy(&reg.addr, "once");
    let mut args = fast.to_vec();
    args.extend_from_slice(&["--push-chunk-size", "4KB"]);
    let m = convert(&work, &src, &format!("{}/f2/golden:n", p.addr), &args);
    assert_eq!(m["target_digest"], clean["target_digest"]);
    check_ok(
        &t.path().join("c"),
        Some(&src),
        &format!("{}/f2/golden:n", reg.addr),
        &[],
    );
    drop(p);

    // Every upload fails: a clear error, and the tag does not exist.
    let p = proxy(&reg.addr, "always");
    let o = nydusify(&[
        "convert",
        "--source",
        &src,
        "--target",
        &format!("{}/f3/golden:n", p.addr),
        "--plain-http",
        "--push-retry-count",
        "2",
        "--push-retry-delay",
        "50ms",
        "--work-dir",
        &s(&work),
    ]);
    assert!(
        !o.status.success(),
        "convert succeeded through a failing registry"
    );
    assert!(stderr(&o).contains("injected fault"), "{}", stderr(&o));
    let tagged = rt().block_on(client(&reg.addr).get_manifest("f3/golden", "n"));
    assert!(tagged.is_err(), "a failed conversion left a tag");
}

#[test]
fn errors_are_clear() {
    let reg = TestRegistry::start(None);
    let auth = TestRegistry::start(Some(("alice", "s3cret-pw")));
    let t = tempfile::tempdir().unwrap();
    seed_golden(&reg, t.path());
    let work = t.path().join("work");
    let src = format!("{}/src/golden:t", reg.addr);
    let fail = |args: &[&str], env: Option<&Path>| -> String {
        let mut cmd = Command::new(bin("nydusify"));
        cmd.args(args);
        cmd.env("DOCKER_CONFIG", env.unwrap_or(t.path()));
        let o = run(&mut cmd);
        assert!(!o.status.success(), "nydusify {args:?} succeeded");
        let e = stderr(&o);
        assert!(!e.contains("panicked"), "{e}");
        assert!(!e.contains("s3cret-pw"), "password in an error: {e}");
        e
    };
    let w = s(&work);
    let conv = |source: &str, target: &str| -> Vec<String> {
        [
            "convert",
            "--source",
            source,
            "--target",
            target,
            "--plain-http",
            "--work-dir",
            &w,
        ]
        .iter()
        .map(|x| x.to_string())
        .collect()
    };
    let call = |v: Vec<String>, env: Option<&Path>| {
        let a: Vec<&str> = v.iter().map(String::as_str).collect();
        fail(&a, env)
    };

    let e = call(
        conv(
            &format!("{}/src/golden:nope", reg.addr),
            &format!("{}/x:y", reg.addr),
        ),
        None,
    );
    assert!(e.contains("src/golden:nope") && e.contains("404"), "{e}");

    // Auth: no credentials, wrong ones, then right ones from a Docker config.json.
    let target = format!("{}/private/golden:n", auth.addr);
    let e = call(conv(&src, &target), None);
    assert!(e.contains("credentials are needed"), "{e}");
    let cfg_dir = t.path().join("docker");
    std::fs::create_dir_all(&cfg_dir).unwrap();
    let write_cfg = |pw: &str| {
        use base64_like::encode;
        std::fs::write(
            cfg_dir.join("config.json"),
            json!({"auths": {auth.addr.clone(): {"auth": encode(&format!("alice:{pw}"))}}})
                .to_string(),
        )
        .unwrap();
    };
    write_cfg("wrong-pw");
    let e = call(conv(&src, &target), Some(&cfg_dir));
    assert!(e.contains("check the credentials"), "{e}");
    write_cfg("s3cret-pw");
    let mut cmd = Command::new(bin("nydusify"));
    cmd.args(conv(&src, &target)).env("DOCKER_CONFIG", &cfg_dir);
    let o = run(&mut cmd);
    assert!(o.status.success(), "{}", stderr(&o));

    // A layer that is not a tar.
    let c = client(&reg.addr);
    rt().block_on(async {
        let cfg = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:00"]}}"#;
        let cfg_d = format!("sha256:{}", sha256(cfg).to_hex());
        c.push_blob_bytes("odd/img", &cfg_d, cfg).await.unwrap();
        let blob = b"not a layer";
        let bd = format!("sha256:{}", sha256(blob).to_hex());
        c.push_blob_bytes("odd/img", &bd, blob).await.unwrap();
        let m = json!({"schemaVersion": 2, "mediaType": media::OCI_MANIFEST,
            "config": {"mediaType": media::OCI_CONFIG, "digest": cfg_d, "size": cfg.len()},
            "layers": [{"mediaType": "application/vnd.example.model.v1", "digest": bd, "size": blob.len()}]});
        c.put_manifest("odd/img", "t", media::OCI_MANIFEST, m.to_string().as_bytes())
            .await
            .unwrap();
    });
    let e = call(
        conv(
            &format!("{}/odd/img:t", reg.addr),
            &format!("{}/odd/img:n", reg.addr),
        ),
        None,
    );
    assert!(
        e.contains("application/vnd.example.model.v1") && e.contains("not an OCI/Docker tar layer"),
        "{e}"
    );

    // Already a Nydus image.
    let nydus = format!("{}/dst/golden:n", reg.addr);
    convert(&work, &src, &nydus, &[]);
    let e = call(conv(&nydus, &format!("{}/dst/golden:nn", reg.addr)), None);
    assert!(e.contains("already a Nydus image"), "{e}");

    // Bad flags.
    let mut v = conv(&src, &nydus);
    v.extend(["--fs-version".to_string(), "7".to_string()]);
    assert!(call(v, None).contains("invalid --fs-version"));
    let mut v = conv(&src, &nydus);
    v.extend(["--compressor".to_string(), "gzip".to_string()]);
    assert!(call(v, None).contains("invalid --compressor"));
    for flag in ["--oci-ref", "--reverse"] {
        let mut v = conv(&src, &nydus);
        v.push(flag.to_string());
        let e = call(v, None);
        assert!(
            e.contains(flag) && e.contains("not supported by this nydusify yet"),
            "{e}"
        );
    }
}

/// Base64 for a Docker config's `auth` field (the tests crate has no base64 dependency).
mod base64_like {
    pub fn encode(s: &str) -> String {
        const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let b = s.as_bytes();
        let mut out = String::new();
        for c in b.chunks(3) {
            let n = (c[0] as u32) << 16
                | (*c.get(1).unwrap_or(&0) as u32) << 8
                | *c.get(2).unwrap_or(&0) as u32;
            for i in 0..4 {
                if i <= c.len() {
                    out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }
}

#[test]
fn build_packs_a_directory() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("src");
    make_tree(
        &dir,
        TreeSpec {
            big_dir_entries: 10,
            socket: false,
        },
    );
    let out = t.path().join("out");
    nydusify_ok(&[
        "build",
        "--source-dir",
        &s(&dir),
        "--output-dir",
        &s(&out),
        "--name",
        "app",
        "--backend-type",
        "localfs",
    ]);
    let meta = out.join("app.meta");
    let blob = out.join("app.blob");
    assert!(meta.is_file() && blob.is_file() && out.join("output.json").is_file());
    nydus_image_ok(&["check", "-B", &s(&meta), "-b", &s(&blob)]);
    // Pushed to a localfs backend: the blob under its id, the bootstrap by name.
    let backend = t.path().join("backend");
    nydusify_ok(&[
        "pack",
        "--source-dir",
        &s(&dir),
        "-o",
        &s(&t.path().join("out2")),
        "--name",
        "app",
        "--backend-push",
        "--backend-type",
        "localfs",
        "--backend-config",
        &json!({"dir": backend}).to_string(),
    ]);
    let j: Value =
        serde_json::from_slice(&std::fs::read(t.path().join("out2/output.json")).unwrap()).unwrap();
    let id = j["blobs"][0].as_str().unwrap();
    assert!(backend.join(id).is_file() && backend.join("app.meta").is_file());
    nydus_image_ok(&[
        "check",
        "-B",
        &s(&backend.join("app.meta")),
        "-D",
        &s(&backend),
    ]);
    let o = nydusify(&[
        "build",
        "--source-dir",
        &s(&t.path().join("missing")),
        "-o",
        &s(&out),
        "--name",
        "x",
    ]);
    assert!(!o.status.success() && stderr(&o).contains("not a directory"));
}

#[test]
fn archives_and_file_tarballs() {
    let reg = TestRegistry::start(None);
    let t = tempfile::tempdir().unwrap();
    seed_golden(&reg, t.path());
    let work = t.path().join("work");
    let src = format!("{}/src/golden:t", reg.addr);
    let clean = convert(&work, &src, &format!("{}/dst/golden:n", reg.addr), &[]);

    // convert into an OCI layout tar: skopeo reads it; copied (relative file:// path) into a
    // registry it passes check and is the same image.
    let archive = t.path().join("nydus.tar");
    let m = convert(
        &work,
        &src,
        "local/golden:nydus",
        &["--target-archive", &s(&archive)],
    );
    assert_eq!(m["target_digest"], clean["target_digest"]);
    let o = run(Command::new("skopeo").args([
        "inspect",
        "--raw",
        &format!("oci-archive:{}:nydus", archive.display()),
    ]));
    assert!(
        o.status.success(),
        "skopeo cannot read our archive: {}",
        stderr(&o)
    );
    let copied = format!("{}/fromtar/golden:n", reg.addr);
    let o = run(Command::new(bin("nydusify")).current_dir(t.path()).args([
        "copy",
        "--source",
        "file://nydus.tar",
        "--target",
        &copied,
        "--plain-http",
        "--work-dir",
        "work",
    ]));
    assert!(o.status.success(), "{}", stderr(&o));
    check_ok(&t.path().join("c1"), Some(&src), &copied, &[]);

    // A registry image exported (absolute file:// path) and converted from the archive.
    let exported = t.path().join("oci.tar");
    nydusify_ok(&[
        "copy",
        "--source",
        &src,
        "--target",
        &format!("file://{}", exported.display()),
        "--plain-http",
        "--work-dir",
        &s(&work),
    ]);
    let m = convert(
        &work,
        "archive/golden:t",
        &format!("{}/fromarchive/golden:n", reg.addr),
        &["--source-archive", &s(&exported)],
    );
    assert_eq!(m["target_digest"], clean["target_digest"]);

    // A damaged archive is refused with its name.
    let bad = t.path().join("bad.tar");
    std::fs::write(&bad, b"not a tar at all").unwrap();
    let o = nydusify(&[
        "convert",
        "--source",
        "x/y:z",
        "--source-archive",
        &s(&bad),
        "--target",
        &format!("{}/x/y:z", reg.addr),
        "--plain-http",
        "--work-dir",
        &s(&work),
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("bad.tar"), "{}", stderr(&o));
}

#[test]
fn blobs_in_a_localfs_backend() {
    let reg = TestRegistry::start(None);
    let t = tempfile::tempdir().unwrap();
    seed_golden(&reg, t.path());
    let work = t.path().join("work");
    let src = format!("{}/src/golden:t", reg.addr);
    let dst = format!("{}/be/golden:n", reg.addr);
    let backend = t.path().join("backend");
    let cfg = json!({ "dir": backend }).to_string();
    convert(
        &work,
        &src,
        &dst,
        &["--backend-type", "localfs", "--backend-config", &cfg],
    );
    // The manifest holds only the bootstrap layer; the blobs are upstream's, in the backend.
    let raw = skopeo_raw(&dst);
    assert_eq!(raw["layers"].as_array().unwrap().len(), 1, "{raw}");
    for id in UPSTREAM_LAYER_BLOBS {
        assert!(backend.join(id).is_file(), "blob {id} not in the backend");
    }
    let be = [
        "--target-backend-type",
        "localfs",
        "--target-backend-config",
        &cfg,
    ];
    check_ok(&t.path().join("c1"), Some(&src), &dst, &be);
    // Without the backend the blobs cannot be found; with a damaged blob the path is named.
    let o = check(&t.path().join("c2"), None, &dst, &[]);
    assert!(!o.status.success() && stderr(&o).contains("not a layer of the manifest"));
    let victim = backend.join(UPSTREAM_LAYER_BLOBS[0]);
    let mut data = std::fs::read(&victim).unwrap();
    data[100] ^= 0xff;
    std::fs::write(&victim, &data).unwrap();
    let o = check(&t.path().join("c3"), Some(&src), &dst, &be);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("/bin/tool: unreadable"),
        "{}",
        stderr(&o)
    );
    // A bad S3 configuration fails before any work, naming the key.
    let o = nydusify(&[
        "convert",
        "--source",
        &src,
        "--target",
        &dst,
        "--plain-http",
        "--backend-type",
        "s3",
        "--backend-config",
        "{}",
        "--work-dir",
        &s(&work),
    ]);
    assert!(
        !o.status.success() && stderr(&o).contains("needs \"region\""),
        "{}",
        stderr(&o)
    );
}

fn from_cache(m: &Value) -> Vec<bool> {
    m["manifests"][0]["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["from_cache"].as_bool().unwrap())
        .collect()
}

#[test]
fn build_cache_reuses_layers_by_chain_id() {
    let reg = TestRegistry::start(None);
    let t = tempfile::tempdir().unwrap();
    let (layout, tars) = seed_golden(&reg, t.path());
    umoci_image(&layout, "two", &tars[..2], "amd64");
    skopeo_push(
        &layout,
        "two",
        &format!("{}/src/golden:two", reg.addr),
        false,
    );
    let work = t.path().join("work");
    let src = format!("{}/src/golden:t", reg.addr);
    let cache = ["--build-cache-tag", "nydus-cache"];
    let first = convert(&work, &src, &format!("{}/bc/golden:a", reg.addr), &cache);
    assert_eq!(from_cache(&first), [false, false, false]);
    let cache_ref = format!("{}/bc/golden:nydus-cache", reg.addr);
    let c = skopeo_raw(&cache_ref);
    assert_eq!(c["annotations"]["containerd.io/snapshot/nydus-cache"], "v1");
    assert_eq!(
        c["layers"].as_array().unwrap().len(),
        6,
        "bootstrap + blob per layer"
    );

    // Again: every layer from the cache, the same image.
    let again = convert(&work, &src, &format!("{}/bc/golden:b", reg.addr), &cache);
    assert_eq!(from_cache(&again), [true, true, true]);
    assert_eq!(again["target_digest"], first["target_digest"]);

    // Another image sharing the two lower layers, cache given by reference, another repo.
    let two_src = format!("{}/src/golden:two", reg.addr);
    let two = format!("{}/other/golden:two", reg.addr);
    let m = convert(&work, &two_src, &two, &["--build-cache", &cache_ref]);
    assert_eq!(from_cache(&m), [true, true]);
    check_ok(&t.path().join("c1"), Some(&two_src), &two, &[]);

    // Other build settings do not reuse the records.
    let lz4 = format!("{}/bc/golden:lz4", reg.addr);
    let m = convert(
        &work,
        &src,
        &lz4,
        &[
            "--build-cache-tag",
            "nydus-cache",
            "--compressor",
            "lz4_block",
        ],
    );
    assert_eq!(from_cache(&m), [false, false, false]);
    check_ok(&t.path().join("c2"), Some(&src), &lz4, &[]);
}

#[test]
fn tls_registries_with_insecure_flags() {
    // The source over plain HTTP, the target over TLS with a certificate nobody trusts.
    let reg = TestRegistry::start(None);
    let tls = TestRegistry::start_with(None, true);
    let t = tempfile::tempdir().unwrap();
    seed_golden(&reg, t.path());
    let work = t.path().join("work");
    let src = format!("{}/src/golden:t", reg.addr);
    // Plain HTTP is only for the source here: --plain-http would apply to both.
    let copy = |target: &str, extra: &[&str]| {
        let mut args = vec![
            "copy",
            "--source",
            &src,
            "--target",
            target,
            "--work-dir",
            work.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        nydusify(&args)
    };
    let o = copy(&format!("{}/tls/golden:t", tls.addr), &[]);
    assert!(
        !o.status.success(),
        "copy from a plain-HTTP source without --plain-http"
    );
    // Put the source on the TLS registry with --target-insecure.
    let via = format!("{}/tls/golden:t", tls.addr);
    let o = run(Command::new("skopeo").args([
        "copy",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        &format!("docker://{src}"),
        &format!("docker://{via}"),
    ]));
    assert!(o.status.success(), "{}", stderr(&o));
    let dst = format!("{}/tls/golden:nydus", tls.addr);
    let o = nydusify(&[
        "convert",
        "--source",
        &via,
        "--target",
        &dst,
        "--work-dir",
        &s(&work),
    ]);
    assert!(!o.status.success(), "an untrusted certificate was accepted");
    let e = stderr(&o);
    assert!(e.to_lowercase().contains("certificate"), "{e}");
    nydusify_ok(&[
        "convert",
        "--source",
        &via,
        "--target",
        &dst,
        "--source-insecure",
        "--target-insecure",
        "--work-dir",
        &s(&work),
    ]);
    let o = nydusify(&[
        "check",
        "--source",
        &via,
        "--source-insecure",
        "--target",
        &dst,
        "--target-insecure",
        "--work-dir",
        &s(&t.path().join("chk")),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn prefetch_patterns_and_referrer() {
    use std::io::Write;
    let reg = TestRegistry::start(None);
    let t = tempfile::tempdir().unwrap();
    seed_golden(&reg, t.path());
    let work = t.path().join("work");
    let src = format!("{}/src/golden:t", reg.addr);
    let prefetch_of = |target: &str, dir: &str| -> Value {
        let chk = t.path().join(dir);
        check_ok(&chk, None, target, &[]);
        let o = nydus_image_ok(&[
            "inspect",
            "-B",
            &s(&chk.join("nydus_bootstrap")),
            "-R",
            "prefetch",
        ]);
        serde_json::from_slice::<Value>(&o.stdout).unwrap()["prefetch"].clone()
    };
    // Default pattern `/`: the root is prefetched.
    let dflt = format!("{}/dst/golden:default", reg.addr);
    convert(&work, &src, &dflt, &[]);
    let root_only = prefetch_of(&dflt, "c1");
    assert_eq!(root_only.as_array().unwrap().len(), 1, "{root_only}");
    assert_eq!(root_only[0]["path"], "/", "{root_only}");

    // Patterns from stdin: two directories.
    let pf = format!("{}/dst/golden:prefetch", reg.addr);
    let mut child = Command::new(bin("nydusify"))
        .args([
            "convert",
            "--source",
            &src,
            "--target",
            &pf,
            "--plain-http",
            "--prefetch-patterns",
            "--with-referrer",
            "--work-dir",
            &s(&work),
        ])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"/etc\n/bin\n/etc/hosts\nrelative\n")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("not an absolute path"),
        "{}",
        stderr(&o)
    );
    let two = prefetch_of(&pf, "c2");
    assert_eq!(
        two.as_array().unwrap().len(),
        2,
        "/etc/hosts is under /etc: {two}"
    );
    assert_ne!(two, root_only);
    let mut paths: Vec<&str> = two
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    paths.sort_unstable();
    assert_eq!(paths, ["/bin", "/etc"], "{two}");

    // --with-referrer: the Nydus manifest's subject is the source manifest.
    let raw = skopeo_raw(&pf);
    let (_, src_bytes, src_digest) = rt()
        .block_on(client(&reg.addr).get_manifest("src/golden", "t"))
        .unwrap();
    assert_eq!(raw["subject"]["digest"], src_digest.as_str());
    assert_eq!(raw["subject"]["size"], src_bytes.len());
}

#[test]
fn chunk_dictionary_blobs_are_shared() {
    let reg = TestRegistry::start(None);
    let t = tempfile::tempdir().unwrap();
    let (layout, tars) = seed_golden(&reg, t.path());
    umoci_image(&layout, "two", &tars[..2], "amd64");
    skopeo_push(
        &layout,
        "two",
        &format!("{}/src/golden:two", reg.addr),
        false,
    );
    let work = t.path().join("work");
    let src = format!("{}/src/golden:t", reg.addr);
    // The dictionary: the image of the two lower layers, converted.
    let dict = format!("{}/dict/golden:dict", reg.addr);
    convert(&work, &format!("{}/src/golden:two", reg.addr), &dict, &[]);
    let dst = format!("{}/cd/golden:n", reg.addr);
    convert(
        &work,
        &src,
        &dst,
        &["--chunk-dict", &format!("bootstrap:registry:{dict}")],
    );
    // Layers 1 and 2 found all their chunks in the dictionary: its two blobs are extra
    // layers (copied into the target repository), with their real sizes.
    let raw = skopeo_raw(&dst);
    let digests = blob_layer_digests(&raw);
    assert_eq!(digests.len(), 5, "{raw}");
    assert_eq!(&digests[3..], &UPSTREAM_LAYER_BLOBS[..2]);
    assert_eq!(
        digests[2], UPSTREAM_LAYER_BLOBS[2],
        "layer 3 shares nothing"
    );
    check_ok(&t.path().join("c1"), Some(&src), &dst, &[]);

    // A local dictionary whose blobs the target lacks: a clear error, nothing tagged.
    let chk = t.path().join("c2");
    check_ok(&chk, None, &dict, &[]);
    let local = format!("bootstrap:local:{}", chk.join("nydus_bootstrap").display());
    let o = nydusify(&[
        "convert",
        "--source",
        &src,
        "--target",
        &format!("{}/elsewhere/golden:n", reg.addr),
        "--plain-http",
        "--chunk-dict",
        &local,
        "--work-dir",
        &s(&work),
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("push the dictionary image's blobs there first"),
        "{}",
        stderr(&o)
    );
    // Into the dictionary's own repository it works.
    let same = format!("{}/dict/golden:n", reg.addr);
    convert(&work, &src, &same, &["--chunk-dict", &local]);
    check_ok(&t.path().join("c3"), Some(&src), &same, &[]);
}

#[test]
fn rafs_v5_conversion_is_upstream_exact() {
    let reg = TestRegistry::start(None);
    let t = tempfile::tempdir().unwrap();
    seed_golden(&reg, t.path());
    let work = t.path().join("work");
    let src = format!("{}/src/golden:t", reg.addr);
    let dst = format!("{}/v5/golden:n", reg.addr);
    convert(&work, &src, &dst, &["--fs-version", "5"]);
    let raw = skopeo_raw(&dst);
    assert_eq!(blob_layer_digests(&raw), UPSTREAM_V5_LAYER_BLOBS);
    assert_eq!(
        raw["layers"][3]["annotations"]["containerd.io/snapshot/nydus-fs-version"],
        "5"
    );
    let chk = t.path().join("chk");
    check_ok(&chk, Some(&src), &dst, &[]);
    let merged = std::fs::read(chk.join("nydus_bootstrap")).unwrap();
    assert_eq!(sha256(&merged).to_hex(), UPSTREAM_V5_MERGED_BOOTSTRAP);
    assert_eq!(
        &merged[..4],
        &0x5241_4653u32.to_le_bytes(),
        "a RAFS v5 superblock"
    );
}
