//! The FUSE mount end to end: `nydusify mount` of images converted by our `nydusify` into
//! Debian's docker-registry (seeded by umoci + skopeo), and the `nydusd`-compatible entry with
//! upstream's configurations. Each mount is compared with its source tree (type, mode, owner,
//! size, content, xattrs, links, rdev, mtime, hard-link groups); a loopback proxy in front of
//! the registry counts what is fetched and can play dead.

use std::io::{BufRead, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nydus_tests::*;
use serde_json::{json, Value};

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

fn convert(work: &Path, src: &str, dst: &str, extra: &[&str]) {
    let mut args = vec![
        "convert",
        "--source",
        src,
        "--target",
        dst,
        "--plain-http",
        "--work-dir",
    ];
    let w = s(work);
    args.push(&w);
    args.extend_from_slice(extra);
    nydusify_ok(&args);
}

/// A directory tree as a one-layer OCI image `reference` in the registry.
fn push_dir(dir: &Path, t: &Path, name: &str, reference: &str) {
    let tar = t.join(format!("{name}.tar"));
    let o = run(Command::new("tar")
        .args(["--xattrs", "--xattrs-include=*", "--numeric-owner", "-C"])
        .arg(dir)
        .arg("-cf")
        .arg(&tar)
        .arg("."));
    assert!(
        o.status.success(),
        "tar: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let layout = t.join(format!("{name}-layout"));
    umoci_image(&layout, "t", &[tar], "amd64");
    skopeo_push(&layout, "t", reference, false);
}

/// The counting proxy (`tests/count_proxy.py`) in front of `upstream`.
struct Proxy {
    addr: String,
    log: PathBuf,
    ctl: PathBuf,
    _child: KillOnDrop,
}

impl Proxy {
    fn start(upstream: &str, dir: &Path) -> Proxy {
        require_tool("python3", "python3");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("count_proxy.py");
        let (log, ctl) = (dir.join("proxy.log"), dir.join("proxy.ctl"));
        let mut child = Command::new("python3")
            .arg(script)
            .args([upstream, &s(&log), &s(&ctl)])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting the counting proxy");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port: u16 = line.trim().parse().expect("the proxy prints its port");
        Proxy {
            addr: format!("127.0.0.1:{port}"),
            log,
            ctl,
            _child: KillOnDrop(child),
        }
    }

    /// (requests, bytes) of ranged blob reads logged so far, and the log cleared.
    fn take_blob_reads(&self) -> (usize, u64) {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let _ = std::fs::write(&self.log, "");
        let mut n = (0, 0);
        for l in text.lines() {
            let f: Vec<&str> = l.split(' ').collect();
            if f[0] == "GET" && f[1].contains("/blobs/") && f[2] != "-" {
                n.0 += 1;
                n.1 += f[4].parse::<u64>().unwrap_or(0);
            }
        }
        n
    }

    fn set_down(&self, down: bool) {
        std::fs::write(&self.ctl, if down { "down" } else { "up" }).unwrap();
    }
}

/// The blob-cache chunk map header: (magic, version, magic2, all_ready) and the bits.
fn chunk_map(path: &Path) -> ([u32; 4], Vec<u8>) {
    let b = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(b.len() >= 4096, "{}: {} bytes", path.display(), b.len());
    let u = |i: usize| u32::from_le_bytes(b[i * 4..i * 4 + 4].try_into().unwrap());
    ([u(0), u(1), u(2), u(3)], b[4096..].to_vec())
}

fn chunk_maps(cache: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".chunk_map"))
        .collect();
    v.sort();
    v
}

/// Reads every regular file below `root` (its bytes discarded).
fn read_all(root: &Path) -> u64 {
    let mut n = 0;
    let mut todo = vec![root.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let t = e.file_type().unwrap();
            if t.is_dir() {
                todo.push(e.path());
            } else if t.is_file() {
                let mut f = std::fs::File::open(e.path()).unwrap();
                n += std::io::copy(&mut f, &mut std::io::sink())
                    .unwrap_or_else(|err| panic!("{}: {err}", e.path().display()));
            }
        }
    }
    n
}

fn drop_caches() {
    let _ = std::fs::write("/proc/sys/vm/drop_caches", "3");
}

/// The debootstrap rootfs, converted, mounted lazily through the counting proxy: equal to the
/// source; one small file fetches under 5% of the blob; the chunk map follows upstream's
/// format; `--prefetch` fills the cache so reading everything sends nothing; a remount on the
/// same work dir sends nothing; a registry gone mid-mount gives EIO, and reads work again
/// when it is back.
#[test]
fn debootstrap_image_mounts_lazily_and_equals_its_source() {
    require_root();
    let rootfs = debootstrap_rootfs();
    let reg = TestRegistry::start(None);
    let t = tempfile::tempdir().unwrap();
    let src = format!("{}/src/deb:t", reg.addr);
    push_dir(&rootfs, t.path(), "deb", &src);
    let dst = format!("{}/dst/deb:nydus", reg.addr);
    convert(&t.path().join("cw"), &src, &dst, &[]);
    let proxy = Proxy::start(&reg.addr, t.path());
    let via = format!("{}/dst/deb:nydus", proxy.addr);
    let blob_bytes: u64 = {
        let raw = skopeo_raw(&dst);
        let l = raw["layers"].as_array().unwrap();
        l[..l.len() - 1]
            .iter()
            .map(|x| x["size"].as_u64().unwrap())
            .sum()
    };

    // Lazy: one small file.
    let (mp, work) = (t.path().join("mnt"), t.path().join("w1"));
    let d = Served::start(
        mount_cmd(&via, &mp, &work, &[]),
        &mp,
        &t.path().join("d1.log"),
    );
    proxy.take_blob_reads();
    let small = std::fs::read(mp.join("etc/debian_version")).unwrap();
    assert_eq!(
        small,
        std::fs::read(rootfs.join("etc/debian_version")).unwrap()
    );
    let (reqs, bytes) = proxy.take_blob_reads();
    assert!(reqs >= 1, "no backend read for a file's bytes");
    assert!(
        bytes * 20 < blob_bytes,
        "one small file fetched {bytes} of {blob_bytes} blob bytes (5% allowed)"
    );
    // The cache files: upstream's chunk map header, some chunks present, not all.
    let maps = chunk_maps(&work.join("cache"));
    assert_eq!(maps.len(), 1, "{maps:?}");
    let (h, bits) = chunk_map(&maps[0]);
    assert_eq!(h, [0x424D_4150, 1, 0x434D_4150, 0], "chunk map header");
    let set: u32 = bits.iter().map(|b| b.count_ones()).sum();
    assert!(set >= 1, "no chunk marked present after a read");
    let data = maps[0]
        .to_string_lossy()
        .replace(".chunk_map", ".blob.data");
    assert!(Path::new(&data).is_file(), "{data} missing");
    // The whole tree equals the source (metadata from the bootstrap, data fetched now).
    assert_same_tree(
        &list_tree(&rootfs, ListOptions::default()),
        &list_tree(&mp, ListOptions::default()),
    );
    d.stop();

    // --prefetch: once every chunk map is all-ready, reading everything sends nothing.
    let work2 = t.path().join("w2");
    let d = Served::start(
        mount_cmd(&via, &mp, &work2, &["--prefetch"]),
        &mp,
        &t.path().join("d2.log"),
    );
    let t0 = Instant::now();
    loop {
        let maps = chunk_maps(&work2.join("cache"));
        if !maps.is_empty() && maps.iter().all(|m| chunk_map(m).0[3] == 0x4D4D_4150) {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "prefetch did not finish:\n{}",
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    proxy.take_blob_reads();
    drop_caches();
    assert!(read_all(&mp) > 100 << 20);
    assert_eq!(
        proxy.take_blob_reads(),
        (0, 0),
        "reads after the prefetch went to the backend"
    );
    d.stop();

    // A remount on the same work dir: nothing fetched either.
    let d = Served::start(
        mount_cmd(&via, &mp, &work2, &[]),
        &mp,
        &t.path().join("d3.log"),
    );
    proxy.take_blob_reads();
    read_all(&mp);
    assert_eq!(proxy.take_blob_reads(), (0, 0), "a remount fetched again");
    d.stop();

    // The registry gone: EIO, the daemon keeps serving; back: the same read works.
    let work4 = t.path().join("w4");
    let d = Served::start(
        mount_cmd(&via, &mp, &work4, &[]),
        &mp,
        &t.path().join("d4.log"),
    );
    proxy.set_down(true);
    let f = mp.join("usr/bin/bash");
    let e = std::fs::read(&f).expect_err("read with the registry down");
    assert_eq!(e.raw_os_error(), Some(libc::EIO), "{e}");
    assert!(
        std::fs::read_dir(mp.join("etc")).is_ok(),
        "metadata still served"
    );
    proxy.set_down(false);
    assert_eq!(
        std::fs::read(&f).unwrap(),
        std::fs::read(rootfs.join("usr/bin/bash")).unwrap()
    );
    let log = d.stop();
    let blob = skopeo_raw(&dst)["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let hex = blob.trim_start_matches("sha256:");
    assert!(
        log.contains(hex),
        "the failed read is not logged with its blob:\n{log}"
    );
}

/// A tree with every kind of entry, two-layer golden stack and a corrupted chunk: the mount
/// equals its source; the corrupt chunk is EIO with a log line naming blob and chunk while
/// other files read fine; a killed daemon's stale mount point is cleaned by the next mount.
#[test]
fn corrupt_chunks_are_eio_and_stale_mounts_are_cleaned() {
    require_root();
    let reg = TestRegistry::start(None);
    let t = tempfile::tempdir().unwrap();
    let tree = t.path().join("tree");
    make_tree(
        &tree,
        TreeSpec {
            big_dir_entries: 10_000,
            socket: false,
        },
    );
    let src = format!("{}/src/tree:t", reg.addr);
    push_dir(&tree, t.path(), "tree", &src);
    let dst = format!("{}/dst/tree:nydus", reg.addr);
    convert(&t.path().join("cw"), &src, &dst, &[]);
    let (mp, work) = (t.path().join("mnt"), t.path().join("w"));
    let d = Served::start(
        mount_cmd(&dst, &mp, &work, &[]),
        &mp,
        &t.path().join("d1.log"),
    );
    assert_same_tree(
        &list_tree(&tree, ListOptions::default()),
        &list_tree(&mp, ListOptions::default()),
    );
    // Killed: the next mount at the same place cleans the stale mount point.
    d.kill_leaving_the_mount();
    let work2 = t.path().join("w2");
    let d2 = Served::start(
        mount_cmd(&dst, &mp, &work2, &[]),
        &mp,
        &t.path().join("d2.log"),
    );
    assert!(d2.log_text().contains("stale mount"), "{}", d2.log_text());
    assert_eq!(std::fs::read(mp.join("tiny.txt")).unwrap(), b"hello\n");
    d2.stop();

    // One byte in the middle of the blob damaged in registry storage.
    let raw = skopeo_raw(&dst);
    let blob = raw["layers"][0]["digest"].as_str().unwrap().to_string();
    let path = reg.blob_data(&blob);
    let mut data = std::fs::read(&path).unwrap();
    let mid = data.len() / 2;
    data[mid] ^= 0xff;
    std::fs::write(&path, &data).unwrap();
    let d3 = Served::start(
        mount_cmd(&dst, &mp, &t.path().join("w3"), &[]),
        &mp,
        &t.path().join("d3.log"),
    );
    let (mut bad, mut good) = (Vec::new(), 0);
    let mut files = Vec::new();
    let mut todo = vec![tree.clone()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                todo.push(e.path());
            } else if ft.is_file() && e.metadata().unwrap().len() > 0 {
                files.push(e.path().strip_prefix(&tree).unwrap().to_path_buf());
            }
        }
    }
    for f in &files {
        match std::fs::read(mp.join(f)) {
            Ok(got) => {
                assert_eq!(
                    got,
                    std::fs::read(tree.join(f)).unwrap(),
                    "{f:?}: wrong bytes"
                );
                good += 1;
            }
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(libc::EIO), "{f:?}: {e}");
                bad.push(f.clone());
            }
        }
    }
    assert!(
        !bad.is_empty() && good > 0,
        "damaged files: {bad:?}, good: {good}"
    );
    let log = d3.stop();
    let hex = blob.trim_start_matches("sha256:");
    assert!(
        log.contains(hex) && log.contains("chunk"),
        "the log names no blob and chunk:\n{log}"
    );
}

fn api_get(sock: &Path, path: &str) -> Value {
    let mut c = UnixStream::connect(sock).unwrap();
    write!(c, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut s = String::new();
    c.read_to_string(&mut s).unwrap();
    assert!(s.starts_with("HTTP/1.1 200"), "{s}");
    serde_json::from_str(s.split("\r\n\r\n").nth(1).unwrap()).unwrap()
}

/// The `nydusd` entry with upstream's v1 and v2 configurations, RAFS v5 and v6 images with a
/// localfs backend: the mount equals the source; the API socket reports RUNNING; a full cache
/// filesystem (a 1 MiB tmpfs) does not hang reads.
#[test]
fn nydusd_entry_serves_upstream_configs_v5_and_v6() {
    require_root();
    let t = tempfile::tempdir().unwrap();
    let tree = t.path().join("tree");
    make_tree(
        &tree,
        TreeSpec {
            big_dir_entries: 100,
            socket: true,
        },
    );
    let want = list_tree(&tree, ListOptions::default());
    let tiny_cache = t.path().join("tiny");
    std::fs::create_dir(&tiny_cache).unwrap();
    let o = run(Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&tiny_cache));
    assert!(
        o.status.success(),
        "mount tmpfs: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    for (version, v2, cache) in [("6", false, "w6"), ("5", true, "w5"), ("6", true, "tiny")] {
        let blobs = t.path().join(format!("blobs{version}{v2}"));
        let boot = t.path().join(format!("boot{version}{v2}"));
        nydus_image_ok(&[
            "create",
            "--fs-version",
            version,
            "-B",
            &s(&boot),
            "-D",
            &s(&blobs),
            &s(&tree),
        ]);
        let work = if cache == "tiny" {
            tiny_cache.clone()
        } else {
            t.path().join(cache)
        };
        let cfg = if v2 {
            json!({"version": 2, "backend": {"type": "localfs", "localfs": {"dir": s(&blobs)}},
                   "cache": {"type": "filecache", "filecache": {"work_dir": s(&work)}},
                   "rafs": {"mode": "direct", "batch_size": 1048576,
                            "prefetch": {"enable": true, "threads": 2, "prefetch_all": true}}})
        } else {
            json!({"device": {"backend": {"type": "localfs", "config": {"dir": s(&blobs)}},
                              "cache": {"type": "blobcache", "config": {"work_dir": s(&work)}}},
                   "mode": "direct", "digest_validate": false, "iostats_files": false,
                   "enable_xattr": true, "fs_prefetch": {"enable": false}})
        };
        let cfg_path = t.path().join(format!("cfg{version}{v2}{cache}.json"));
        std::fs::write(&cfg_path, cfg.to_string()).unwrap();
        let (mp, sock) = (t.path().join("mnt"), t.path().join("api.sock"));
        let mut c = Command::new(bin("nydusd"));
        c.arg("--config")
            .arg(&cfg_path)
            .arg("--mountpoint")
            .arg(&mp);
        c.arg("--bootstrap").arg(&boot).arg("--apisock").arg(&sock);
        let d = Served::start(c, &mp, &t.path().join("nydusd.log"));
        let t0 = Instant::now();
        while !sock.exists() {
            assert!(t0.elapsed() < Duration::from_secs(10), "no API socket");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(api_get(&sock, "/api/v1/daemon")["state"], "RUNNING");
        let t0 = Instant::now();
        let got = list_tree(&mp, ListOptions::default());
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "reads took {:?}",
            t0.elapsed()
        );
        assert_same_tree(&want, &got);
        let m = api_get(&sock, "/api/v1/metrics/backend");
        assert_eq!(m["fs_read_errors"], 0, "{m}");
        d.stop();
    }
    let _ = Command::new("umount").arg(&tiny_cache).status();
}

/// Blobs in S3 (`s3s-fs`): `convert --backend-type s3`, then `mount` with the same backend
/// configuration reads them from the bucket.
/// A small tree with every file type, pushed as `<reg>/src/<name>:t` and converted to
/// `<reg>/dst/<name>:nydus` with `extra` convert flags; the tree and the target.
fn converted_tree(reg: &TestRegistry, t: &Path, name: &str, extra: &[&str]) -> (PathBuf, String) {
    let tree = t.join(format!("{name}-tree"));
    make_tree(
        &tree,
        TreeSpec {
            big_dir_entries: 10,
            socket: false,
        },
    );
    let src = format!("{}/src/{name}:t", reg.addr);
    push_dir(&tree, t, name, &src);
    let dst = format!("{}/dst/{name}:nydus", reg.addr);
    convert(&t.join(format!("{name}-cw")), &src, &dst, extra);
    (tree, dst)
}

/// Images whose blobs live in S3 (`s3s-fs`, SigV4) and in OSS (the test server, V4 and V1
/// signatures) mount from the bucket, equal to their source, and the secret is not logged.
#[test]
fn images_with_blobs_in_s3_or_oss_mount_from_the_bucket() {
    require_root();
    let reg = TestRegistry::start(None);
    let s3 = S3Server::start();
    let oss = OssServer::start("cn-test", 5 << 20);
    let t = tempfile::tempdir().unwrap();
    let stores = [
        (
            "s3",
            json!({"endpoint": format!("127.0.0.1:{}", s3.port), "scheme": "http",
                "region": "us-east-1", "access_key_id": TEST_AK, "access_key_secret": TEST_SK,
                "bucket_name": "nydus", "object_prefix": "blobs/"}),
        ),
        (
            "oss",
            json!({"endpoint": format!("localhost:{}", oss.port), "scheme": "http",
                "region": "cn-test", "access_key_id": TEST_AK, "access_key_secret": TEST_SK,
                "bucket_name": "nydus", "object_prefix": "blobs/"}),
        ),
        (
            "oss",
            json!({"endpoint": format!("localhost:{}", oss.port), "scheme": "http",
                "access_key_id": TEST_AK, "access_key_secret": TEST_SK,
                "bucket_name": "nydus", "object_prefix": "v1/", "signature_version": "v1"}),
        ),
    ];
    for (i, (kind, cfg)) in stores.iter().enumerate() {
        let cfg = cfg.to_string();
        let (tree, dst) = converted_tree(
            &reg,
            t.path(),
            &format!("{kind}{i}"),
            &["--backend-type", kind, "--backend-config", &cfg],
        );
        let raw = skopeo_raw(&dst);
        assert_eq!(
            raw["layers"].as_array().unwrap().len(),
            1,
            "{kind}: only the bootstrap layer in the registry: {raw}"
        );
        let log = mount_equals(
            &dst,
            t.path(),
            &i.to_string(),
            &["--backend-type", kind, "--backend-config", &cfg],
            &list_tree(&tree, ListOptions::default()),
        );
        assert!(
            !log.contains(TEST_SK),
            "{kind}: the secret is in the log:\n{log}"
        );
    }
}

/// The registry backend's `proxy`: reads go through the proxy (the counting proxy sees the
/// blob reads); with `fallback` they go straight to the registry when the proxy is down;
/// without it, a read then fails with EIO.
#[test]
fn reads_go_through_the_backend_proxy_or_around_it_when_it_is_down() {
    require_root();
    let reg = TestRegistry::start(None);
    let t = tempfile::tempdir().unwrap();
    let (tree, dst) = converted_tree(&reg, t.path(), "ptree", &[]);
    let want = list_tree(&tree, ListOptions::default());
    let proxy = Proxy::start(&reg.addr, t.path());
    let via = |url: String, fallback: bool| {
        json!({"scheme": "http", "host": reg.addr, "repo": "dst/ptree", "retry_limit": 0,
               "proxy": {"url": url, "fallback": fallback}})
        .to_string()
    };
    let dead = format!("http://127.0.0.1:{}", free_port());
    let cases = [
        (
            via(format!("http://{}", proxy.addr), false),
            "through the proxy",
        ),
        (via(dead.clone(), true), "around a dead proxy"),
        (via(dead, false), "a dead proxy, no fallback"),
    ];
    for (i, (cfg, what)) in cases.iter().enumerate() {
        let (mp, work) = (
            t.path().join(format!("mnt{i}")),
            t.path().join(format!("w{i}")),
        );
        let d = Served::start(
            mount_cmd(
                &dst,
                &mp,
                &work,
                &["--backend-type", "registry", "--backend-config", cfg],
            ),
            &mp,
            &t.path().join(format!("d{i}.log")),
        );
        if i < 2 {
            assert_same_tree(&want, &list_tree(&mp, ListOptions::default()));
        } else {
            let e = std::fs::read(mp.join("tiny.txt")).expect_err(what);
            assert_eq!(e.raw_os_error(), Some(libc::EIO), "{what}: {e}");
        }
        let reads = proxy.take_blob_reads().0;
        let log = d.stop();
        match i {
            0 => assert!(reads > 0, "{what}: the proxy saw no blob read:\n{log}"),
            _ => assert_eq!(reads, 0, "{what}"),
        }
        if i == 1 {
            assert!(log.contains("proxy cannot be reached"), "{what}:\n{log}");
        }
    }
}

/// Bad mount options fail before anything is mounted, naming the problem.
#[test]
fn bad_mount_options_are_clear_errors() {
    let t = tempfile::tempdir().unwrap();
    let mp = t.path().join("mnt");
    let o = nydusify(&[
        "mount",
        "--target",
        "127.0.0.1:1/x:y",
        "--backend-config",
        "{}",
        "--mount-path",
        &s(&mp),
    ]);
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("--backend-config needs --backend-type"), "{e}");
    let o = nydusify(&[
        "mount",
        "--target",
        "127.0.0.1:1/x:y",
        "--backend-type",
        "ftp",
        "--mount-path",
        &s(&mp),
    ]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("ftp"));
    let o = run(Command::new(bin("nydusd"))
        .args(["--config", "/nonexistent.json", "--mountpoint"])
        .arg(&mp)
        .args(["--bootstrap", "/nonexistent.boot"]));
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent.json"));
}

/// The golden layer stack (whiteouts, an opaque directory, a directory replaced by a file,
/// hard links; three gzip layers, so three blobs merged in one bootstrap) mounts equal to the
/// kernel's overlayfs view of its OCI layers; so does the same image converted with a chunk
/// dictionary (the image of its two lower layers), whose chunks then live in the dictionary's
/// blobs.
#[test]
fn a_merged_multi_layer_image_equals_overlayfs_also_with_a_chunk_dict() {
    require_root();
    let reg = TestRegistry::start(None);
    let t = tempfile::tempdir().unwrap();
    golden_layers(t.path());
    let tars: Vec<PathBuf> = (1..=3)
        .map(|i| t.path().join(format!("layer{i}.tar")))
        .collect();
    let want = overlay_view_of_oci_layers(&tars, &t.path().join("oracle"));
    let layout = t.path().join("layout");
    umoci_image(&layout, "t", &tars, "amd64");
    umoci_image(&layout, "two", &tars[..2], "amd64");
    let src = format!("{}/src/golden:t", reg.addr);
    skopeo_push(&layout, "t", &src, false);
    let lower = format!("{}/src/golden:two", reg.addr);
    skopeo_push(&layout, "two", &lower, false);
    let cw = t.path().join("cw");
    let dst = format!("{}/dst/golden:nydus", reg.addr);
    convert(&cw, &src, &dst, &[]);
    let raw = skopeo_raw(&dst);
    assert_eq!(
        raw["layers"].as_array().unwrap().len(),
        4,
        "three blobs and the bootstrap"
    );
    let dict = format!("{}/dst/golden:dict", reg.addr);
    convert(&cw, &lower, &dict, &[]);
    let with_dict = format!("{}/dst/golden:with-dict", reg.addr);
    convert(
        &cw,
        &src,
        &with_dict,
        &["--chunk-dict", &format!("bootstrap:registry:{dict}")],
    );
    let raw = skopeo_raw(&with_dict);
    assert_eq!(
        raw["layers"].as_array().unwrap().len(),
        6,
        "three layer blobs, the dictionary's two, the bootstrap: {raw}"
    );
    for (i, image) in [&dst, &with_dict].into_iter().enumerate() {
        mount_equals(image, t.path(), &i.to_string(), &[], &want);
    }
}
