//! Every command that writes or reads blobs, against real object stores on 127.0.0.1:
//! `s3s-fs` (S3, verifies SigV4) and `tests/oss_server.py` (OSS, checks V4 and V1 signatures
//! as Alibaba documents them). The same flow runs on both: `nydusify convert` with the blobs in
//! the bucket (a manifest with the bootstrap layer only), `nydusify check` comparing data
//! through the backend (and finding a blob corrupted in the bucket), `nydusify pack
//! --backend-push` (bootstrap under `meta_prefix`, blob under `object_prefix`), `nydus-image
//! create` to the bucket, read back by `check`, `unpack` and `inspect`, a blob over the part
//! size (multipart) read back identical, uploads through a proxy that drops connections
//! (retried) or always fails (nothing left: no object, no unfinished multipart upload, no
//! tag), and a wrong secret (a clean failure that never prints it).

use std::path::{Path, PathBuf};

use nydus_tests::*;
use serde_json::{json, Value};

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// 5 MiB: the smallest part S3 takes (but the last); the OSS server is told the same.
const PART: u64 = 5 << 20;

/// One object store under test.
enum Store {
    S3(S3Server),
    Oss(OssServer, &'static str),
}

impl Store {
    fn kind(&self) -> &'static str {
        match self {
            Store::S3(_) => "s3",
            Store::Oss(..) => "oss",
        }
    }

    fn port(&self) -> u16 {
        match self {
            Store::S3(s) => s.port,
            Store::Oss(o, _) => o.port,
        }
    }

    /// The configuration of the bucket `nydus` reached at `port` (the server's or a proxy's),
    /// with `secret`.
    fn config_via(&self, port: u16, secret: &str, extra: Value) -> String {
        let mut v = match self {
            Store::S3(_) => json!({
                "endpoint": format!("127.0.0.1:{port}"), "scheme": "http", "region": "us-east-1",
                "access_key_id": TEST_AK, "access_key_secret": secret,
                "bucket_name": "nydus", "object_prefix": "blobs/", "meta_prefix": "meta/",
                "part_size": PART,
            }),
            // Virtual-hosted: the bucket's host is `nydus.localhost:PORT`.
            Store::Oss(_, version) => json!({
                "endpoint": format!("localhost:{port}"), "scheme": "http", "region": "cn-test",
                "access_key_id": TEST_AK, "access_key_secret": secret,
                "bucket_name": "nydus", "object_prefix": "blobs/", "meta_prefix": "meta/",
                "part_size": PART.to_string(), "signature_version": version,
            }),
        };
        for (k, val) in extra.as_object().unwrap() {
            v[k] = val.clone();
        }
        v.to_string()
    }

    fn config(&self) -> String {
        self.config_via(self.port(), TEST_SK, json!({}))
    }

    fn object(&self, key: &str) -> PathBuf {
        match self {
            Store::S3(s) => s.object(key),
            Store::Oss(o, _) => o.object(key),
        }
    }

    fn open_uploads(&self) -> Vec<String> {
        match self {
            Store::S3(s) => s.open_uploads(),
            Store::Oss(o, _) => o.open_uploads(),
        }
    }

    fn objects(&self) -> Vec<PathBuf> {
        let root = match self {
            Store::S3(s) => s.dir.path().join("nydus"),
            Store::Oss(o, _) => o.dir.path().join("nydus"),
        };
        let mut out = Vec::new();
        let mut todo = vec![root];
        while let Some(d) = todo.pop() {
            let Ok(rd) = std::fs::read_dir(&d) else {
                continue;
            };
            for e in rd {
                let p = e.unwrap().path();
                if p.is_dir() {
                    todo.push(p);
                } else {
                    out.push(p);
                }
            }
        }
        out
    }
}

fn s3() -> Store {
    Store::S3(S3Server::start())
}

fn oss(version: &'static str) -> Store {
    Store::Oss(OssServer::start("cn-test", PART), version)
}

fn sha256_hex(data: &[u8]) -> String {
    nydus_core::digest::sha256(data).to_hex()
}

/// `nydusify convert` of `src` to `dst` with the blobs in the store; returns the output.
fn convert(work: &Path, src: &str, dst: &str, kind: &str, cfg: &str) -> std::process::Output {
    nydusify(&[
        "convert",
        "--source",
        src,
        "--target",
        dst,
        "--plain-http",
        "--work-dir",
        &s(work),
        "--backend-type",
        kind,
        "--backend-config",
        cfg,
    ])
}

fn check(work: &Path, src: &str, dst: &str, kind: &str, cfg: &str) -> std::process::Output {
    nydusify(&[
        "check",
        "--source",
        src,
        "--target",
        dst,
        "--plain-http",
        "--work-dir",
        &s(work),
        "--target-backend-type",
        kind,
        "--target-backend-config",
        cfg,
    ])
}

/// The golden layers as `src/golden:t` in `reg`.
fn seed(reg: &TestRegistry, t: &Path) -> String {
    seed_golden(reg, t);
    format!("{}/src/golden:t", reg.addr)
}

fn tag_exists(reference: &str) -> bool {
    std::process::Command::new("skopeo")
        .args([
            "inspect",
            "--tls-verify=false",
            "--raw",
            &format!("docker://{reference}"),
        ])
        .output()
        .expect("skopeo")
        .status
        .success()
}

/// convert → check (data compared through the backend) → a blob corrupted in the bucket is
/// found; a failing upload leaves no tag and nothing in the bucket.
fn convert_and_check(store: &Store) {
    let reg = TestRegistry::start(None);
    let t = tempfile::tempdir().unwrap();
    let src = seed(&reg, t.path());
    let dst = format!("{}/be/golden:{}", reg.addr, store.kind());
    let kind = store.kind();
    let cfg = store.config();
    let o = convert(&t.path().join("w1"), &src, &dst, kind, &cfg);
    assert!(o.status.success(), "convert: {}", stderr(&o));
    // The manifest holds the bootstrap layer only; every blob is in the bucket under its id.
    let raw = skopeo_raw(&dst);
    assert_eq!(raw["layers"].as_array().unwrap().len(), 1, "{raw}");
    let blobs: Vec<PathBuf> = store
        .objects()
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("blobs"))
        .collect();
    assert_eq!(blobs.len(), 3, "{blobs:?}");
    for b in &blobs {
        let data = std::fs::read(b).unwrap();
        let name = b.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.ends_with(&sha256_hex(&data)),
            "{name} is not its digest"
        );
    }
    let o = check(&t.path().join("c1"), &src, &dst, kind, &cfg);
    assert!(
        o.status.success(),
        "check: {}{}",
        String::from_utf8_lossy(&o.stdout),
        stderr(&o)
    );
    // `copy --source-backend-*`: the blobs come from the bucket into the target repository
    // as blob layers before the bootstrap layer; the copy is checked without a backend, its
    // data compared with the source.
    let copied = format!("{}/copied/golden:{}", reg.addr, kind);
    let copy = |to: &str, w: &str, cfg: &str| {
        nydusify(&[
            "copy",
            "--source",
            &dst,
            "--target",
            to,
            "--plain-http",
            "--work-dir",
            &s(&t.path().join(w)),
            "--source-backend-type",
            kind,
            "--source-backend-config",
            cfg,
        ])
    };
    let o = copy(&copied, "k1", &cfg);
    assert!(o.status.success(), "copy: {}", stderr(&o));
    let raw = skopeo_raw(&copied);
    let layers = raw["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 4, "{raw}");
    for l in &layers[..3] {
        assert_eq!(
            l["mediaType"], "application/vnd.oci.image.layer.nydus.blob.v1",
            "{raw}"
        );
        assert_eq!(
            l["annotations"]["containerd.io/snapshot/nydus-blob"], "true",
            "{raw}"
        );
        let id = l["digest"].as_str().unwrap().trim_start_matches("sha256:");
        assert!(
            blobs.iter().any(|b| b.to_string_lossy().ends_with(id)),
            "{id} {blobs:?}"
        );
    }
    assert_eq!(
        layers[3]["annotations"]["containerd.io/snapshot/nydus-bootstrap"],
        "true"
    );
    let o = nydusify(&[
        "check",
        "--source",
        &src,
        "--target",
        &copied,
        "--plain-http",
        "--work-dir",
        &s(&t.path().join("k2")),
    ]);
    assert!(
        o.status.success(),
        "check of the copy: {}{}",
        String::from_utf8_lossy(&o.stdout),
        stderr(&o)
    );
    // The blobs are not under that prefix: the copy fails naming a blob, and pushes no tag.
    let nowhere = store.config_via(store.port(), TEST_SK, json!({"object_prefix": "nowhere/"}));
    let lost = format!("{}/copied/lost:{}", reg.addr, kind);
    let o = copy(&lost, "k3", &nowhere);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("nowhere/"), "{}", stderr(&o));
    assert!(!stderr(&o).contains(TEST_SK), "{}", stderr(&o));
    assert!(!tag_exists(&lost), "a tag was pushed after a failed copy");
    // A blob damaged in the bucket: check names the file it breaks.
    let victim = blobs
        .iter()
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    let mut data = std::fs::read(victim).unwrap();
    data[100] ^= 0xff;
    std::fs::write(victim, &data).unwrap();
    let o = check(&t.path().join("c2"), &src, &dst, kind, &cfg);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("unreadable in the Nydus image"),
        "{}",
        stderr(&o)
    );
    data[100] ^= 0xff;
    std::fs::write(victim, &data).unwrap();
    // Uploads through a proxy that drops the first PUT of a blob: retried, converted again
    // (forced: the blobs are there), and checked.
    let (p, _k) = object_proxy(store.port(), &["PUT:blobs/:1:drop", "PUT:blobs/:3:500"]);
    let via = store.config_via(p, TEST_SK, json!({}));
    let dst2 = format!("{}/be/retried:{}", reg.addr, kind);
    let o = nydusify(&[
        "convert",
        "--source",
        &src,
        "--target",
        &dst2,
        "--plain-http",
        "--work-dir",
        &s(&t.path().join("w2")),
        "--backend-type",
        kind,
        "--backend-config",
        &via,
        "--backend-force-push",
    ]);
    assert!(
        o.status.success(),
        "convert through the proxy: {}",
        stderr(&o)
    );
    let o = check(&t.path().join("c3"), &src, &dst2, kind, &cfg);
    assert!(o.status.success(), "check: {}", stderr(&o));
    // A proxy failing every blob PUT: convert fails and pushes no tag.
    let (p, _k2) = object_proxy(store.port(), &["PUT:other/:*:503"]);
    let failing = store.config_via(p, TEST_SK, json!({"retry_limit": if kind == "oss" { json!("1") } else { json!(1) }, "object_prefix": "other/"}));
    let dst3 = format!("{}/be/failed:{}", reg.addr, kind);
    let o = convert(&t.path().join("w3"), &src, &dst3, kind, &failing);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("HTTP 503"), "{}", stderr(&o));
    assert!(!tag_exists(&dst3), "a tag was pushed after a failed upload");
    assert!(
        !store
            .objects()
            .iter()
            .any(|p| p.to_string_lossy().contains("other")),
        "{:?}",
        store.objects()
    );
    assert!(
        store.open_uploads().is_empty(),
        "{:?}",
        store.open_uploads()
    );
    // A wrong secret: a clean failure, the secret never shown, no tag.
    let wrong = store.config_via(
        store.port(),
        "WRONG-s3cr3t-Zq9",
        json!({"object_prefix": "wrong/"}),
    );
    let dst4 = format!("{}/be/wrong:{}", reg.addr, kind);
    let json_out = t.path().join("wrong.json");
    let o = nydusify(&[
        "convert",
        "--source",
        &src,
        "--target",
        &dst4,
        "--plain-http",
        "--work-dir",
        &s(&t.path().join("w4")),
        "--backend-type",
        kind,
        "--backend-config",
        &wrong,
        "--output-json",
        &s(&json_out),
    ]);
    assert!(!o.status.success());
    let all = format!("{}{}", String::from_utf8_lossy(&o.stdout), stderr(&o));
    assert!(all.contains("HTTP 403"), "{all}");
    assert!(!all.contains("WRONG-s3cr3t-Zq9"), "{all}");
    assert!(!all.contains(TEST_SK), "{all}");
    if let Ok(j) = std::fs::read_to_string(&json_out) {
        assert!(!j.contains("WRONG-s3cr3t-Zq9"), "{j}");
    }
    assert!(!tag_exists(&dst4));
}

/// `nydus-image create` to the bucket (one PUT, and multipart for a blob over the part size),
/// read back by `check`, `unpack` and `inspect`; `nydusify pack --backend-push`.
fn create_read_and_pack(store: &Store) {
    let t = tempfile::tempdir().unwrap();
    let kind = store.kind();
    let cfg = store.config();
    let tree = t.path().join("tree");
    make_tree(
        &tree,
        TreeSpec {
            big_dir_entries: 50,
            socket: false,
        },
    );
    // A file bigger than two parts: the blob goes multipart.
    std::fs::write(tree.join("big.bin"), noise((12 << 20) + 77, 42)).unwrap();
    let boot = t.path().join("image.boot");
    let j = t.path().join("create.json");
    nydus_image_ok(&[
        "create",
        "-B",
        &s(&boot),
        "--backend-type",
        kind,
        "--backend-config",
        &cfg,
        "-J",
        &s(&j),
        &s(&tree),
    ]);
    let id = first_blob_id(&j);
    let obj = store.object(&format!("blobs/{id}"));
    let blob = std::fs::read(&obj).unwrap();
    assert!(blob.len() as u64 > 2 * PART, "{} bytes", blob.len());
    assert_eq!(sha256_hex(&blob), id);
    assert!(store.open_uploads().is_empty());
    // The same image built locally gives the same blob, and the same tar from both.
    let local_boot = t.path().join("local.boot");
    let local_blob = t.path().join("local.blob");
    nydus_image_ok(&[
        "create",
        "-B",
        &s(&local_boot),
        "-b",
        &s(&local_blob),
        &s(&tree),
    ]);
    assert_eq!(std::fs::read(&local_blob).unwrap(), blob);
    let be = ["--backend-type", kind, "--backend-config", &cfg];
    let mut args = vec!["check", "-B", boot.to_str().unwrap()];
    args.extend(be);
    let o = nydus_image_ok(&args);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("chunks verified by digest"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let tar_remote = t.path().join("remote.tar");
    let mut args = vec![
        "unpack",
        "-B",
        boot.to_str().unwrap(),
        "--output",
        tar_remote.to_str().unwrap(),
    ];
    args.extend(be);
    nydus_image_ok(&args);
    let tar_local = t.path().join("local.tar");
    nydus_image_ok(&[
        "unpack",
        "-B",
        &s(&local_boot),
        "-b",
        &s(&local_blob),
        "--output",
        &s(&tar_local),
    ]);
    assert_eq!(
        std::fs::read(&tar_remote).unwrap(),
        std::fs::read(&tar_local).unwrap()
    );
    let mut args = vec![
        "inspect",
        "-B",
        boot.to_str().unwrap(),
        "--request",
        "stats",
    ];
    args.extend(be);
    nydus_image_ok(&args);
    // A blob damaged in the bucket: check fails naming the chunk; unpack writes nothing.
    let mut bad = blob.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x5a;
    std::fs::write(&obj, &bad).unwrap();
    let mut args = vec!["check", "-B", boot.to_str().unwrap()];
    args.extend(be);
    let o = nydus_image(&args);
    assert!(!o.status.success());
    let tar_bad = t.path().join("bad.tar");
    let mut args = vec![
        "unpack",
        "-B",
        boot.to_str().unwrap(),
        "--output",
        tar_bad.to_str().unwrap(),
    ];
    args.extend(be);
    let o = nydus_image(&args);
    assert!(!o.status.success());
    assert!(!tar_bad.exists());
    std::fs::write(&obj, &blob).unwrap();
    // With a wrong secret: no bootstrap, no object, the secret never printed.
    let boot2 = t.path().join("wrong.boot");
    let wrong = store.config_via(
        store.port(),
        "WRONG-s3cr3t-Zq9",
        json!({"object_prefix": "wrong/"}),
    );
    let o = nydus_image(&[
        "create",
        "-B",
        &s(&boot2),
        "--backend-type",
        kind,
        "--backend-config",
        &wrong,
        &s(&tree),
    ]);
    assert!(!o.status.success());
    assert!(!stderr(&o).contains("WRONG-s3cr3t-Zq9"), "{}", stderr(&o));
    assert!(stderr(&o).contains("HTTP 403"), "{}", stderr(&o));
    assert!(
        !boot2.exists(),
        "a bootstrap naming a blob that was not uploaded"
    );
    assert!(std::fs::read_dir(t.path()).unwrap().all(|e| !e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .starts_with(".nydus-upload-")));
    // pack --backend-push: the blob under object_prefix, the bootstrap under meta_prefix.
    let out = t.path().join("packed");
    nydusify_ok(&[
        "pack",
        "--source-dir",
        &s(&tree),
        "--output-dir",
        &s(&out),
        "--name",
        "app",
        "--backend-push",
        "--backend-type",
        kind,
        "--backend-config",
        &cfg,
    ]);
    let meta = std::fs::read(store.object("meta/app.meta")).unwrap();
    assert_eq!(meta, std::fs::read(out.join("app.meta")).unwrap());
    let packed_ids: Vec<String> =
        serde_json::from_slice::<Value>(&std::fs::read(out.join("output.json")).unwrap()).unwrap()
            ["blobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
    assert_eq!(packed_ids.len(), 1);
    assert!(store.object(&format!("blobs/{}", packed_ids[0])).is_file());
    let meta_path = s(&out.join("app.meta"));
    let mut args = vec!["check", "-B", &meta_path];
    args.extend(be);
    nydus_image_ok(&args);
}

#[test]
fn s3_convert_and_check() {
    convert_and_check(&s3());
}

#[test]
fn s3_create_read_and_pack() {
    create_read_and_pack(&s3());
}

#[test]
fn oss_v4_convert_and_check() {
    convert_and_check(&oss("v4"));
}

#[test]
fn oss_v4_create_read_and_pack() {
    create_read_and_pack(&oss("v4"));
}

#[test]
fn oss_v1_create_read_and_pack() {
    create_read_and_pack(&oss("v1"));
}

/// A layer whose blob is over the part size goes up while it is built: its parts into a
/// temporary object, copied to the blob's key at the end; nothing temporary remains. With every
/// part of the streamed upload failing, the finished file is uploaded instead.
fn streamed_upload(store: &Store) {
    let reg = TestRegistry::start(None);
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("big");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("noise.bin"), noise(16 << 20, 7)).unwrap();
    std::fs::write(root.join("small"), b"small").unwrap();
    let tar = t.path().join("big.tar");
    let o = std::process::Command::new("tar")
        .arg("-C")
        .arg(&root)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .output()
        .unwrap();
    assert!(o.status.success(), "tar: {}", stderr(&o));
    let layout = t.path().join("layout");
    umoci_image(&layout, "big", &[tar], "amd64");
    let src = format!("{}/src/big:1", reg.addr);
    skopeo_push(&layout, "big", &src, false);
    let kind = store.kind();
    let under = |prefix: &str| -> Vec<PathBuf> {
        store
            .objects()
            .into_iter()
            .filter(|p| p.to_string_lossy().contains(prefix))
            .collect()
    };
    let no_leftovers = || {
        let temp: Vec<PathBuf> = store
            .objects()
            .into_iter()
            .filter(|p| p.to_string_lossy().contains("nydus-upload"))
            .collect();
        assert!(temp.is_empty(), "temporary objects left: {temp:?}");
        assert!(
            store.open_uploads().is_empty(),
            "{:?}",
            store.open_uploads()
        );
    };
    let one_blob = |prefix: &str| {
        let blobs = under(prefix);
        assert_eq!(blobs.len(), 1, "{blobs:?}");
        let data = std::fs::read(&blobs[0]).unwrap();
        assert!(
            data.len() as u64 > PART,
            "{} bytes: not over the part size",
            data.len()
        );
        let name = blobs[0].file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.ends_with(&sha256_hex(&data)),
            "{name} is not its digest"
        );
    };

    let cfg = store.config_via(store.port(), TEST_SK, json!({"object_prefix": "streamed/"}));
    let dst = format!("{}/be/streamed:{kind}", reg.addr);
    let o = convert(&t.path().join("w1"), &src, &dst, kind, &cfg);
    assert!(o.status.success(), "convert: {}", stderr(&o));
    assert!(stderr(&o).contains("streamed to"), "{}", stderr(&o));
    one_blob("streamed");
    no_leftovers();
    let o = check(&t.path().join("c1"), &src, &dst, kind, &cfg);
    assert!(o.status.success(), "check: {}", stderr(&o));

    // Every part of the streamed upload fails: the file goes up after the build.
    let (p, _k) = object_proxy(store.port(), &["PUT:nydus-upload:*:503"]);
    let retry = if kind == "oss" { json!("1") } else { json!(1) };
    let via = store.config_via(
        p,
        TEST_SK,
        json!({"object_prefix": "fallback/", "retry_limit": retry}),
    );
    let dst2 = format!("{}/be/fallback:{kind}", reg.addr);
    let o = convert(&t.path().join("w2"), &src, &dst2, kind, &via);
    assert!(o.status.success(), "convert: {}", stderr(&o));
    assert!(
        stderr(&o).contains("uploading it as a whole"),
        "{}",
        stderr(&o)
    );
    one_blob("fallback");
    no_leftovers();
    let cfg2 = store.config_via(store.port(), TEST_SK, json!({"object_prefix": "fallback/"}));
    let o = check(&t.path().join("c2"), &src, &dst2, kind, &cfg2);
    assert!(o.status.success(), "check: {}", stderr(&o));
}

#[test]
fn s3_streamed_upload() {
    streamed_upload(&s3());
}

#[test]
fn oss_v4_streamed_upload() {
    streamed_upload(&oss("v4"));
}

/// `nydus-image create` to the bucket, stopped by `signal` while its multipart upload is
/// under way. SIGINT: the upload is aborted before the process exits (no parts, no object).
/// SIGKILL: nothing can be done then, so the next run aborts what the killed one left.
fn interrupted_upload(store: &Store, signal: &str) {
    use std::os::unix::process::ExitStatusExt;
    let t = tempfile::tempdir().unwrap();
    let tree = t.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    // 40 MiB of incompressible data: 8 parts of 5 MiB.
    for i in 0..5u64 {
        std::fs::write(tree.join(format!("f{i}")), noise(8 << 20, 2 * i + 41)).unwrap();
    }
    let boot = t.path().join("image.boot");
    let cfg = store.config();
    let args = [
        "create",
        "-B",
        &s(&boot),
        "--backend-type",
        store.kind(),
        "--backend-config",
        &cfg,
        &s(&tree),
    ];
    let child = std::process::Command::new(bin("nydus-image"))
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while store.open_uploads().is_empty() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "no multipart upload began within 60 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    // Past the initiation's answer: parts are on their way.
    std::thread::sleep(std::time::Duration::from_millis(20));
    let pid = child.id().to_string();
    assert!(
        run(std::process::Command::new("kill").args([&format!("-{signal}"), &pid]))
            .status
            .success()
    );
    let o = child.wait_with_output().unwrap();
    assert!(
        !boot.exists(),
        "a bootstrap naming a blob that is not there"
    );
    let blobs = || {
        store
            .objects()
            .into_iter()
            .filter(|p| {
                !p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            })
            .collect::<Vec<_>>()
    };
    if signal == "INT" {
        assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
        assert!(
            stderr(&o).contains("aborting the multipart upload"),
            "{}",
            stderr(&o)
        );
        assert_eq!(
            store.open_uploads(),
            Vec::<String>::new(),
            "parts left in the bucket"
        );
        assert_eq!(blobs(), Vec::<PathBuf>::new());
        return;
    }
    assert_eq!(o.status.signal(), Some(9));
    assert!(
        !store.open_uploads().is_empty(),
        "a killed upload cannot clean up"
    );
    let o = nydus_image_ok(&args);
    assert!(
        stderr(&o).contains("left by an earlier run"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        store.open_uploads(),
        Vec::<String>::new(),
        "the stale upload stays"
    );
    assert_eq!(blobs().len(), 1, "{:?}", blobs());
}

#[test]
fn interrupted_uploads_leave_no_parts() {
    interrupted_upload(&s3(), "INT");
    interrupted_upload(&oss("v4"), "INT");
    // s3s-fs cannot list multipart uploads (501): the clean-up of a killed run's upload is
    // shown on the OSS server, which can.
    interrupted_upload(&oss("v4"), "KILL");
}

/// A registry backend that accepts connections and never answers: a read fails after the
/// configured `timeout` and its retries, naming the timeout, instead of hanging.
#[test]
fn a_registry_that_never_answers_times_out() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in listener.incoming() {
            held.push(c);
        }
    });
    let t = tempfile::tempdir().unwrap();
    let tree = t.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    std::fs::write(tree.join("f"), noise(1 << 20, 5)).unwrap();
    let boot = t.path().join("image.boot");
    nydus_image_ok(&[
        "create",
        "-B",
        &s(&boot),
        "-b",
        &s(&t.path().join("blob")),
        &s(&tree),
    ]);
    let cfg = json!({"scheme": "http", "host": format!("127.0.0.1:{port}"), "repo": "x/y",
        "timeout": 1, "retry_limit": 1})
    .to_string();
    let started = std::time::Instant::now();
    let o = nydus_image(&[
        "check",
        "-B",
        &s(&boot),
        "--backend-type",
        "registry",
        "--backend-config",
        &cfg,
    ]);
    let took = started.elapsed();
    assert!(!o.status.success());
    assert!(took < std::time::Duration::from_secs(10), "took {took:?}");
    let out = format!("{}{}", String::from_utf8_lossy(&o.stdout), stderr(&o));
    assert!(out.contains("timed out"), "{out}");
}

/// Bad configurations fail before any work, naming the key; underscore spellings work.
#[test]
fn bad_configurations_name_the_key() {
    let t = tempfile::tempdir().unwrap();
    let tree = t.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    std::fs::write(tree.join("f"), b"data").unwrap();
    let boot = t.path().join("b.boot");
    for (kind, cfg, wanted) in [
        ("s3", r#"{"bucket_name":"b-1"}"#, "needs \"region\""),
        ("s3", r#"{"region":"r"}"#, "needs \"bucket_name\""),
        (
            "s3",
            r#"{"region":"r","bucket_name":"bkt","endpoint":"http://127.0.0.1:9"}"#,
            "without a scheme",
        ),
        (
            "s3",
            r#"{"region":"r","bucket_name":"bkt","bucket":"x"}"#,
            "unknown key \"bucket\"",
        ),
        (
            "oss",
            r#"{"endpoint":"oss-cn-x.aliyuncs.com","bucket_name":"bkt","timeout":5}"#,
            "\"timeout\" must be a string",
        ),
        (
            "oss",
            r#"{"endpoint":"127.0.0.1:9","bucket_name":"bkt"}"#,
            "needs \"region\"",
        ),
        (
            "registry",
            r#"{"host":"h","repo":"r/x","auth":"!!"}"#,
            "\"auth\" is not base64",
        ),
        ("ftp", "{}", "invalid --backend-type \"ftp\""),
    ] {
        let o = nydus_image(&[
            "create",
            "-B",
            &s(&boot),
            "--backend_type",
            kind,
            "--backend_config",
            cfg,
            &s(&tree),
        ]);
        assert_eq!(o.status.code(), Some(1), "{kind} {cfg}: {}", stderr(&o));
        assert!(stderr(&o).contains(wanted), "{kind} {cfg}: {}", stderr(&o));
        assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
        assert!(!boot.exists());
    }
    // A configuration file, named in its error.
    let f = t.path().join("cfg.json");
    std::fs::write(&f, r#"{"region":"r","bucket_name":"bkt","part_size":-1}"#).unwrap();
    let o = nydus_image(&[
        "check",
        "-B",
        &s(&boot),
        "--backend-type",
        "s3",
        "--backend-config-file",
        &s(&f),
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("cfg.json") && stderr(&o).contains("\"part_size\""),
        "{}",
        stderr(&o)
    );
}

/// Base64 (standard alphabet, padded): the tests crate has no base64 dependency.
fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `nydus-image create` with the seed's registry backend configuration
/// (`{"scheme","host","repo","auth"}`) against docker-registry with basic auth: the blob is
/// pushed to the repository by digest, then read back through ranges by `check` and
/// `unpack`, identical to a local build; a wrong password fails cleanly and is never shown.
#[test]
fn registry_create_check_unpack() {
    let reg = TestRegistry::start(Some(("nydus", "reg-pass-77")));
    let t = tempfile::tempdir().unwrap();
    let tree = t.path().join("tree");
    make_tree(
        &tree,
        TreeSpec {
            big_dir_entries: 20,
            socket: false,
        },
    );
    let cfg = json!({"scheme": "http", "host": reg.addr, "repo": "nydus/blobs",
                     "auth": base64(b"nydus:reg-pass-77")})
    .to_string();
    let boot = t.path().join("image.boot");
    let j = t.path().join("create.json");
    nydus_image_ok(&[
        "create",
        "-B",
        &s(&boot),
        "--backend-type",
        "registry",
        "--backend-config",
        &cfg,
        "-J",
        &s(&j),
        &s(&tree),
    ]);
    let id = first_blob_id(&j);
    let stored = std::fs::read(reg.blob_data(&id)).unwrap();
    assert_eq!(sha256_hex(&stored), id);
    let be = ["--backend-type", "registry", "--backend-config", &cfg];
    let mut args = vec!["check", "-B", boot.to_str().unwrap()];
    args.extend(be);
    nydus_image_ok(&args);
    let tar = t.path().join("r.tar");
    let mut args = vec![
        "unpack",
        "-B",
        boot.to_str().unwrap(),
        "--output",
        tar.to_str().unwrap(),
    ];
    args.extend(be);
    nydus_image_ok(&args);
    let (lb, lblob, ltar) = (
        t.path().join("l.boot"),
        t.path().join("l.blob"),
        t.path().join("l.tar"),
    );
    nydus_image_ok(&["create", "-B", &s(&lb), "-b", &s(&lblob), &s(&tree)]);
    nydus_image_ok(&[
        "unpack",
        "-B",
        &s(&lb),
        "-b",
        &s(&lblob),
        "--output",
        &s(&ltar),
    ]);
    assert_eq!(std::fs::read(&tar).unwrap(), std::fs::read(&ltar).unwrap());
    // A wrong password: no bootstrap, the password never printed.
    let bad = json!({"scheme": "http", "host": reg.addr, "repo": "nydus/other",
                     "auth": base64(b"nydus:WRONG-pass-Zq9")})
    .to_string();
    let boot2 = t.path().join("bad.boot");
    let o = nydus_image(&[
        "create",
        "-B",
        &s(&boot2),
        "--backend-type",
        "registry",
        "--backend-config",
        &bad,
        &s(&tree),
    ]);
    assert!(!o.status.success());
    assert!(!stderr(&o).contains("WRONG-pass-Zq9"), "{}", stderr(&o));
    assert!(!boot2.exists());
}

/// A bearer token for `scope` from the token service of `reg` (found from the registry's
/// challenge), asked as `user:password` (Python's urllib: the tests crate has no HTTP client).
fn token_for(reg: &TestRegistry, scope: &str, user: &str, password: &str) -> String {
    let script = r#"
import base64, json, re, sys, urllib.error, urllib.parse, urllib.request
addr, scope, user, pw = sys.argv[1:]
try:
    urllib.request.urlopen(f"http://{addr}/v2/")
except urllib.error.HTTPError as e:
    h = e.headers["WWW-Authenticate"]
realm = re.search(r'realm="([^"]+)"', h).group(1)
service = re.search(r'service="([^"]+)"', h).group(1)
q = urllib.parse.urlencode({"service": service, "scope": scope})
req = urllib.request.Request(f"{realm}?{q}")
req.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode())
print(json.load(urllib.request.urlopen(req))["token"])
"#;
    let o = std::process::Command::new("python3")
        .args(["-c", script, &reg.addr, scope, user, password])
        .output()
        .expect("python3");
    assert!(o.status.success(), "token: {}", stderr(&o));
    String::from_utf8(o.stdout).unwrap().trim().to_string()
}

/// The registry backend's `registry_token` (a bearer token sent as is: reads work with no
/// `auth` and no new token is issued; a bogus one fails without being shown) and `proxy`
/// (requests go through it: a proxy failing blob reads fails them; a working one serves
/// them; one that is down is bypassed with `fallback` and fails the reads without).
#[test]
fn registry_token_and_proxy() {
    let (user, pass) = ("nydus", "tok-pass-31");
    let reg = TestRegistry::start_token((user, pass));
    let t = tempfile::tempdir().unwrap();
    let tree = t.path().join("tree");
    make_tree(
        &tree,
        TreeSpec {
            big_dir_entries: 5,
            socket: false,
        },
    );
    let repo = "nydus/tok";
    let with_auth = json!({"scheme": "http", "host": reg.addr, "repo": repo,
                           "auth": base64(format!("{user}:{pass}").as_bytes())});
    let boot = t.path().join("image.boot");
    nydus_image_ok(&[
        "create",
        "-B",
        &s(&boot),
        "--backend-type",
        "registry",
        "--backend-config",
        &with_auth.to_string(),
        &s(&tree),
    ]);
    let check_with = |cfg: &Value| {
        nydus_image(&[
            "check",
            "-B",
            &s(&boot),
            "--backend-type",
            "registry",
            "--backend-config",
            &cfg.to_string(),
        ])
    };
    // The token given, no credentials: every read is authorized by it.
    let token = token_for(&reg, &format!("repository:{repo}:pull"), user, pass);
    let issued = reg.token_log().len();
    let cfg = json!({"scheme": "http", "host": reg.addr, "repo": repo, "registry_token": token});
    let o = check_with(&cfg);
    assert!(
        o.status.success(),
        "check with registry_token: {}",
        stderr(&o)
    );
    assert_eq!(reg.token_log().len(), issued, "{:?}", reg.token_log());
    // A bogus token: refused, then the challenge needs credentials there are none of.
    let bogus = "bogus-token-Xq7Zr";
    let o = check_with(&json!({"scheme": "http", "host": reg.addr, "repo": repo,
                               "registry_token": bogus, "retry_limit": 0}));
    assert!(!o.status.success());
    assert!(!stderr(&o).contains(bogus), "{}", stderr(&o));
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));

    // Through a proxy that answers every blob GET with 500: the reads went there and fail.
    let port: u16 = reg.addr.rsplit(':').next().unwrap().parse().unwrap();
    let via = |proxy: u16, fallback: bool| {
        let mut c = with_auth.clone();
        c["retry_limit"] = json!(0);
        c["proxy"] = json!({"url": format!("http://127.0.0.1:{proxy}"), "fallback": fallback});
        c
    };
    let (p, _k) = object_proxy(port, &["GET:/blobs/:*:500"]);
    let o = check_with(&via(p, false));
    assert!(!o.status.success());
    assert!(stderr(&o).contains("500"), "{}", stderr(&o));
    // A working proxy serves them.
    let (p2, _k2) = object_proxy(port, &[]);
    let o = check_with(&via(p2, false));
    assert!(
        o.status.success(),
        "check through the proxy: {}",
        stderr(&o)
    );
    // A proxy that is down: straight to the registry with fallback, a failure without.
    let down = free_port();
    let o = check_with(&via(down, true));
    assert!(o.status.success(), "check with fallback: {}", stderr(&o));
    assert!(
        stderr(&o).contains("proxy cannot be reached"),
        "{}",
        stderr(&o)
    );
    let o = check_with(&via(down, false));
    assert!(!o.status.success());
}
