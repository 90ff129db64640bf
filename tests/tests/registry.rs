//! The registry client against Debian's `docker-registry` on loopback: blobs pushed whole and
//! in chunks, skipped when present, mounted across repositories, pulled streaming and verified
//! by digest (a blob corrupted in the registry's storage is caught); manifests pushed and read
//! back; basic auth with a bcrypt htpasswd, credentials from a Docker config.json, and clear
//! errors that never show the password.

use std::path::Path;

use nydus_core::digest::sha256;
use nydus_host_native::registry::{Credentials, Registry, RegistryOptions};
use nydus_tests::*;

fn digest(b: &[u8]) -> String {
    format!("sha256:{}", sha256(b).to_hex())
}

fn client(r: &TestRegistry, creds: Option<Credentials>, chunk: u64) -> Registry {
    Registry::new(
        &r.addr,
        RegistryOptions {
            plain_http: true,
            credentials: creds,
            chunk_size: chunk,
            ..Default::default()
        },
    )
    .unwrap()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

#[test]
fn blobs_and_manifests_round_trip() {
    let reg = TestRegistry::start(None);
    let t = tempfile::tempdir().unwrap();
    let c = client(&reg, None, 1 << 20);
    rt().block_on(async {
        let big = noise(3 * 1024 * 1024 + 17, 21);
        let big_path = t.path().join("big");
        std::fs::write(&big_path, &big).unwrap();
        let big_d = digest(&big);
        assert_eq!(c.blob_size("a/b", &big_d).await.unwrap(), None);
        c.push_blob_file("a/b", &big_d, &big_path).await.unwrap();
        assert_eq!(c.blob_size("a/b", &big_d).await.unwrap(), Some(big.len() as u64));
        // Present: skipped (and still fine).
        c.push_blob_file("a/b", &big_d, &big_path).await.unwrap();
        let cfg = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
        let cfg_d = digest(cfg);
        c.push_blob_bytes("a/b", &cfg_d, cfg).await.unwrap();
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{cfg_d}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{big_d}","size":{}}}]}}"#,
            cfg.len(),
            big.len()
        );
        let md = c
            .put_manifest("a/b", "v1", "application/vnd.oci.image.manifest.v1+json", manifest.as_bytes())
            .await
            .unwrap();
        let (mt, bytes, d) = c.get_manifest("a/b", "v1").await.unwrap();
        assert_eq!((mt.as_str(), d.as_str()), ("application/vnd.oci.image.manifest.v1+json", md.as_str()));
        assert_eq!(bytes, manifest.as_bytes());
        assert_eq!(c.get_manifest("a/b", &md).await.unwrap().1, bytes);
        let mut got = Vec::new();
        c.pull_blob("a/b", &big_d, &mut got).await.unwrap();
        assert!(got == big, "pulled bytes");
        assert_eq!(c.pull_blob_bytes("a/b", &cfg_d).await.unwrap(), cfg);
        // Cross-repository mount.
        assert!(c.mount_blob("c/d", "a/b", &big_d).await.unwrap());
        assert_eq!(c.blob_size("c/d", &big_d).await.unwrap(), Some(big.len() as u64));
        // Unknown tag: a clear error.
        let e = c.get_manifest("a/b", "nope").await.unwrap_err().to_string();
        assert!(e.contains("a/b:nope") && e.contains("404"), "{e}");
        // A blob corrupted in the registry's storage is caught by its digest.
        let data = reg.blob_data(&big_d);
        let mut bytes = std::fs::read(&data).unwrap();
        bytes[1000] ^= 1;
        std::fs::write(&data, &bytes).unwrap();
        let mut sink = Vec::new();
        let e = c.pull_blob("a/b", &big_d, &mut sink).await.unwrap_err().to_string();
        assert!(e.contains(&big_d) && e.contains("corrupted"), "{e}");
    });
}

#[test]
fn basic_auth_and_docker_config() {
    let reg = TestRegistry::start(Some(("alice", "pa55-word")));
    let t = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let d = digest(b"x");
        let anon = client(&reg, None, 0);
        let e = anon.blob_size("a/b", &d).await.unwrap_err().to_string();
        assert!(
            e.contains("401") && e.contains("credentials are needed"),
            "{e}"
        );
        let wrong = client(
            &reg,
            Some(Credentials {
                username: "alice".into(),
                password: "wrong-secret".into(),
            }),
            0,
        );
        let e = wrong
            .push_blob_bytes("a/b", &d, b"x")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("check the credentials") && !e.contains("wrong-secret"),
            "{e}"
        );
        // Credentials from a Docker config.json.
        let cfg = t.path().join("config.json");
        std::fs::write(
            &cfg,
            format!(
                r#"{{"auths":{{"{}":{{"auth":"YWxpY2U6cGE1NS13b3Jk"}}}}}}"#,
                reg.addr
            ),
        )
        .unwrap();
        let creds = Credentials::from_docker_config(&reg.addr, Some(Path::new(&cfg)))
            .unwrap()
            .expect("config.json has the registry");
        let ok = client(&reg, Some(creds), 0);
        ok.push_blob_bytes("a/b", &d, b"x").await.unwrap();
        assert_eq!(ok.pull_blob_bytes("a/b", &d).await.unwrap(), b"x");
    });
}

#[test]
fn tls_with_a_custom_ca_or_insecure() {
    let reg = TestRegistry::start_with(None, true);
    let tls = |ca: Option<std::path::PathBuf>, insecure: bool| {
        Registry::new(
            &reg.addr,
            RegistryOptions {
                ca_cert: ca,
                insecure,
                ..Default::default()
            },
        )
        .unwrap()
    };
    rt().block_on(async {
        let d = digest(b"tls");
        let e = tls(None, false).blob_size("a/b", &d).await.unwrap_err();
        assert!(
            format!("{e:#}").contains(&reg.addr) && format!("{e:#}").contains("certificate"),
            "{e:#}"
        );
        let ca = tls(Some(reg.cert()), false);
        ca.push_blob_bytes("a/b", &d, b"tls").await.unwrap();
        assert_eq!(
            tls(None, true).pull_blob_bytes("a/b", &d).await.unwrap(),
            b"tls"
        );
    });
}

#[test]
fn bearer_token_flow() {
    let reg = TestRegistry::start_token(("bob", "t0ken-pw"));
    let rt = rt();
    // Without credentials the token service refuses; with them, push and pull work.
    let anon = client(&reg, None, 0);
    let e = rt
        .block_on(anon.push_blob_bytes("tok/repo", &digest(b"x"), b"x"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("token service refused") && e.contains("credentials are needed"),
        "{e}"
    );
    let creds = Credentials {
        username: "bob".into(),
        password: "t0ken-pw".into(),
    };
    let c = client(&reg, Some(creds.clone()), 1 << 10);
    rt.block_on(async {
        let data = noise(5000, 4);
        let d = digest(&data);
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("b");
        std::fs::write(&p, &data).unwrap();
        c.push_blob_file("tok/repo", &d, &p).await.unwrap();
        assert_eq!(c.pull_blob_bytes("tok/repo", &d).await.unwrap(), data);
    });
    let wrong = client(
        &reg,
        Some(Credentials {
            username: "bob".into(),
            password: "nope".into(),
        }),
        0,
    );
    let e = rt
        .block_on(wrong.blob_size("tok/repo", &digest(b"x")))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("check the credentials") && !e.contains("nope"),
        "{e}"
    );
}

/// The registry as a blob store: an image built by `nydus-image create` whose blob lives only
/// in a registry (bearer-token auth) is read back file by file through the chunk reader, by
/// `Range` requests, each chunk verified; a token that expires is fetched again; a blob
/// corrupted in the registry's storage fails with the blob named, never with wrong bytes.
#[test]
fn registry_backend_serves_chunks_and_renews_expired_tokens() {
    use nydus_core::model::FileType;
    use nydus_core::read::{plan, walk, Filesystem};
    use nydus_host_native::storage::{open_image, ChunkReader, ReaderOptions, RegistryBackend};
    use std::os::unix::ffi::OsStrExt;
    use std::sync::Arc;

    // Tokens refused 5 s after they are issued.
    let reg = TestRegistry::start_token_ttl(("bob", "t0ken-pw"), -55);
    let t = tempfile::tempdir().unwrap();
    let (src, boot, blob) = (
        t.path().join("src"),
        t.path().join("boot"),
        t.path().join("blob"),
    );
    std::fs::create_dir_all(&src).unwrap();
    make_tree(
        &src,
        TreeSpec {
            big_dir_entries: 20,
            socket: false,
        },
    );
    let s = |p: &Path| p.to_str().unwrap().to_string();
    nydus_image_ok(&["create", "-B", &s(&boot), "-b", &s(&blob), &s(&src)]);
    let img = open_image(&boot).unwrap();
    let blobs = img.boot.blobs().to_vec();
    assert_eq!(blobs.len(), 1);
    let data = std::fs::read(&blob).unwrap();
    let d = digest(&data);
    assert_eq!(
        d,
        format!("sha256:{}", blobs[0].blob_id),
        "blob id is its digest"
    );
    let creds = Credentials {
        username: "bob".into(),
        password: "t0ken-pw".into(),
    };
    rt().block_on(client(&reg, Some(creds.clone()), 0).push_blob_file("img/data", &d, &blob))
        .unwrap();

    let opts = RegistryOptions {
        plain_http: true,
        credentials: Some(creds),
        retries: 1,
        retry_delay: std::time::Duration::from_millis(50),
        ..Default::default()
    };
    let backend = Arc::new(RegistryBackend::new(&reg.addr, "img/data", opts).unwrap());
    let read_all = |reader: &ChunkReader| -> Result<usize, String> {
        let mut files = Vec::new();
        walk(&img.boot, &mut |path, ino| {
            if ino.file_type == FileType::Regular {
                files.push((path.to_vec(), ino.clone()));
            }
            Ok(())
        })
        .unwrap();
        for (path, ino) in &files {
            let p = plan(&img.boot, ino, 0, ino.size).unwrap();
            let got = reader.read_to_vec(&p).map_err(|e| e.to_string())?;
            let rel = std::ffi::OsStr::from_bytes(&path[1..]);
            let want = std::fs::read(src.join(rel)).unwrap();
            assert!(got == want, "{} differs", String::from_utf8_lossy(path));
        }
        Ok(files.len())
    };
    let no_cache = ReaderOptions {
        memory_bytes: 0,
        ..Default::default()
    };
    let pulls = |reg: &TestRegistry| {
        reg.token_log()
            .iter()
            .filter(|l| l.as_str() == "repository:img/data:pull")
            .count()
    };
    let start = pulls(&reg);
    let reader = ChunkReader::new(&blobs, backend.clone(), no_cache);
    let n = read_all(&reader).unwrap();
    assert!(n > 20, "{n} files");
    let fetched = reader
        .stats()
        .backend_reads
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(fetched > 0);
    let before = pulls(&reg);
    assert_eq!(
        before,
        start + 1,
        "one token for every read: {:?}",
        reg.token_log()
    );
    // The token expires; the next reads get a 401 and fetch a new one.
    std::thread::sleep(std::time::Duration::from_secs(6));
    read_all(&ChunkReader::new(&blobs, backend.clone(), no_cache)).unwrap();
    assert_eq!(pulls(&reg), before + 1, "{:?}", reg.token_log());

    // Corrupt the blob in the registry's storage: reads fail naming it.
    let stored = reg.blob_data(&d);
    let mut bad = std::fs::read(&stored).unwrap();
    for b in &mut bad[..64] {
        *b ^= 0x5a;
    }
    std::fs::write(&stored, &bad).unwrap();
    let e = read_all(&ChunkReader::new(&blobs, backend, no_cache)).unwrap_err();
    assert!(e.contains(&d) && e.contains("/v2/img/data/blobs/"), "{e}");
    assert!(!e.contains("t0ken-pw"), "{e}");
}
