//! The S3 backend against a real S3 server, `s3s-fs` (which verifies SigV4), on 127.0.0.1:
//! uploads (one PUT, multipart in parallel), ranged reads through `open_backend`, HEAD-skip,
//! a wrong secret, retries through a proxy that drops connections, aborted multipart uploads,
//! the read proxy with and without fallback.
//! `s3s-fs` comes from `cargo install s3s-fs --version 0.14.1 --features binary`
//! (scripts/install-deps.sh); without it these tests fail saying so.

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nydus_host_storage::config::{parse_value, BackendConfig};
use nydus_host_storage::local::Backend;
use nydus_host_storage::object::ObjectClient;
use nydus_host_storage::store::StoreErrorKind;
use nydus_host_storage::{object_client, open_backend};

const AK: &str = "nydus-test-ak";
const SK: &str = "nydus-test-secret-0123456789";
/// 5 MiB parts: the smallest S3 (and s3s-fs) takes but for the last.
const PART: &str = r#","part_size":5242880"#;

fn s3s_fs() -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(h) = std::env::var_os("CARGO_HOME") {
        dirs.push(PathBuf::from(h).join("bin"));
    }
    if let Some(h) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(h).join(".cargo/bin"));
    }
    dirs.into_iter()
        .map(|d| d.join("s3s-fs"))
        .find(|p| p.is_file())
        .expect(
            "prerequisite missing: `s3s-fs` (cargo install s3s-fs --version 0.14.1 --features binary); \
             run scripts/install-deps.sh",
        )
}

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An s3s-fs server with the bucket `nydus`, in a temp dir; killed when dropped.
struct S3 {
    port: u16,
    dir: tempfile::TempDir,
    _child: Kill,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for(port: u16) {
    let t = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "no server on port {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl S3 {
    fn start() -> S3 {
        let bin = s3s_fs();
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("nydus")).unwrap();
        let port = free_port();
        let child = Command::new(bin)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", AK, "--secret-key", SK])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting s3s-fs");
        let child = Kill(child);
        wait_for(port);
        S3 {
            port,
            dir,
            _child: child,
        }
    }

    fn config(&self, port: u16, extra: &str) -> BackendConfig {
        let text = format!(
            r#"{{"endpoint":"127.0.0.1:{port}","scheme":"http","region":"us-east-1",
                "bucket_name":"nydus","access_key_id":"{AK}","access_key_secret":"{SK}",
                "object_prefix":"blobs/"{extra}}}"#
        );
        parse_value("s3", &serde_json::from_str(&text).unwrap(), None).unwrap()
    }

    fn client(&self, extra: &str) -> Arc<ObjectClient> {
        object_client(&self.config(self.port, extra))
            .unwrap()
            .unwrap()
    }

    /// Multipart uploads in progress (s3s-fs keeps one `.upload-<id>.json` each).
    fn open_uploads(&self) -> Vec<String> {
        std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".upload-") && n.ends_with(".json"))
            .collect()
    }

    fn objects(&self) -> Vec<String> {
        let mut v = Vec::new();
        walk(&self.dir.path().join("nydus"), &mut v);
        v
    }
}

fn walk(d: &Path, out: &mut Vec<String>) {
    for e in std::fs::read_dir(d).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p.display().to_string());
        }
    }
}

/// A proxy (tests/object_proxy.py) in front of `port` with fault `rules`.
fn proxy(port: u16, rules: &[&str]) -> (u16, Kill) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/object_proxy.py");
    let mut child = Command::new("python3")
        .arg(script)
        .arg(format!("127.0.0.1:{port}"))
        .args(rules)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 runs tests/object_proxy.py");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (
        line.trim().parse().expect("the proxy prints its port"),
        Kill(child),
    )
}

fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| ((i as u32).wrapping_mul(2654435761) >> 13) as u8 ^ seed)
        .collect()
}

fn file_of(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, data).unwrap();
    p
}

/// Reads the whole blob `id` back through `open_backend` in uneven ranges.
fn read_back(b: &dyn Backend, id: &str, len: usize) -> Vec<u8> {
    let blob = b.open(id, 0, 1).unwrap();
    assert_eq!(blob.store.size().unwrap(), len as u64);
    let mut out = vec![0u8; len];
    let mut off = 0;
    let mut step = 1;
    while off < len {
        let n = step.min(len - off);
        blob.store
            .read_at(off as u64, &mut out[off..off + n])
            .unwrap();
        off += n;
        step = step * 3 + 7;
    }
    out
}

#[test]
fn single_put_and_ranged_reads() {
    let s3 = S3::start();
    let t = tempfile::tempdir().unwrap();
    let data = pattern(300_000, 1);
    let f = file_of(t.path(), "b1", &data);
    let c = s3.client("");
    let up = c.upload_file("blobs/b1", &f, false).unwrap();
    assert_eq!((up.parts, up.skipped, up.bytes), (1, false, 300_000));
    let b = open_backend(&s3.config(s3.port, "")).unwrap();
    assert_eq!(read_back(b.as_ref(), "b1", data.len()), data);
    // Present with the same size: skipped; forced: sent again.
    assert!(c.upload_file("blobs/b1", &f, false).unwrap().skipped);
    assert!(!c.upload_file("blobs/b1", &f, true).unwrap().skipped);
    // A range past the end, a missing blob, a bad id.
    let blob = b.open("b1", 0, 1).unwrap();
    let mut buf = [0u8; 10];
    assert_eq!(
        blob.store.read_at(299_995, &mut buf).unwrap_err().kind,
        StoreErrorKind::Short
    );
    let e = b.open("nope", 0, 1).unwrap_err();
    assert_eq!(e.kind, StoreErrorKind::NotFound, "{e}");
    assert!(e.blob.contains("/nydus/blobs/nope"), "{e}");
    assert!(b.open("../x", 0, 1).is_err());
}

#[test]
fn multipart_uploads_go_in_parallel_parts_and_read_back() {
    let s3 = S3::start();
    let t = tempfile::tempdir().unwrap();
    // 4 parts of 5 MiB (the least S3 takes) and a last one of 123 bytes.
    let data = pattern((20 << 20) + 123, 2);
    let f = file_of(t.path(), "big", &data);
    let c = s3.client(PART);
    let up = c.upload_file("blobs/big", &f, false).unwrap();
    assert_eq!(up.parts, 5);
    assert!(s3.open_uploads().is_empty(), "{:?}", s3.open_uploads());
    let b = open_backend(&s3.config(s3.port, "")).unwrap();
    assert_eq!(read_back(b.as_ref(), "big", data.len()), data);
}

#[test]
fn a_wrong_secret_fails_without_showing_it() {
    let s3 = S3::start();
    let t = tempfile::tempdir().unwrap();
    let f = file_of(t.path(), "b", b"hello");
    let text = format!(
        r#"{{"endpoint":"127.0.0.1:{}","scheme":"http","region":"us-east-1","bucket_name":"nydus",
            "access_key_id":"{AK}","access_key_secret":"WRONG-s3cr3t-value"}}"#,
        s3.port
    );
    let cfg = parse_value("s3", &serde_json::from_str(&text).unwrap(), None).unwrap();
    let c = object_client(&cfg).unwrap().unwrap();
    let e = c.upload_file("b", &f, false).unwrap_err();
    assert_eq!(e.kind, StoreErrorKind::Auth, "{e}");
    let shown = format!("{e} {e:?} {cfg:?} {c:?}");
    assert!(!shown.contains("WRONG-s3cr3t-value"), "{shown}");
    assert!(s3.objects().is_empty());
    let e = open_backend(&cfg).unwrap().open("b", 0, 1).unwrap_err();
    assert_eq!(e.kind, StoreErrorKind::Auth, "{e}");
}

#[test]
fn dropped_connections_are_retried() {
    let s3 = S3::start();
    let t = tempfile::tempdir().unwrap();
    let data = pattern((15 << 20) + 5, 3);
    let f = file_of(t.path(), "b", &data);
    // Part 2 dropped mid-body once, part 3 answered 500 once, the single PUT dropped once,
    // a GET's answer cut short once.
    let (p, _k) = proxy(
        s3.port,
        &[
            "PUT:partNumber=2:1:drop",
            "PUT:partNumber=3:1:500",
            "PUT:blobs/small:1:drop",
            "GET:blobs/big:2:cut",
        ],
    );
    let cfg = s3.config(p, PART);
    let c = object_client(&cfg).unwrap().unwrap();
    assert_eq!(c.upload_file("blobs/big", &f, false).unwrap().parts, 4);
    let small = file_of(t.path(), "s", b"small blob");
    assert_eq!(
        c.upload_file("blobs/small", &small, false).unwrap().parts,
        1
    );
    let b = open_backend(&cfg).unwrap();
    assert_eq!(read_back(b.as_ref(), "big", data.len()), data);
    assert!(s3.open_uploads().is_empty());
}

#[test]
fn a_failed_multipart_upload_is_aborted_and_leaves_nothing() {
    let s3 = S3::start();
    let t = tempfile::tempdir().unwrap();
    let data = pattern((15 << 20) + 5, 4);
    let f = file_of(t.path(), "b", &data);
    // Part 3 always dropped: retries run out; 4xx are never retried.
    let (p, _k) = proxy(s3.port, &["PUT:partNumber=3:*:drop"]);
    let cfg = s3.config(p, &format!("{PART},\"retry_limit\":2"));
    let c = object_client(&cfg).unwrap().unwrap();
    let e = c.upload_file("blobs/b", &f, false).unwrap_err();
    assert_eq!(e.kind, StoreErrorKind::Transient, "{e}");
    assert!(s3.open_uploads().is_empty(), "{:?}", s3.open_uploads());
    assert!(s3.objects().is_empty(), "{:?}", s3.objects());
    // A 4xx is never retried: only the first PUT is refused, and that fails the upload.
    let (p, _k) = proxy(s3.port, &["PUT:blobs/c:1:403"]);
    let c = object_client(&s3.config(p, "")).unwrap().unwrap();
    let small = file_of(t.path(), "c", b"c");
    let e = c.upload_file("blobs/c", &small, false).unwrap_err();
    assert_eq!(e.kind, StoreErrorKind::Auth, "{e}");
    assert!(s3.objects().is_empty(), "{:?}", s3.objects());
}

#[test]
fn reads_go_through_the_proxy_and_fall_back_when_it_is_down() {
    let s3 = S3::start();
    let t = tempfile::tempdir().unwrap();
    let data = pattern(100_000, 5);
    let f = file_of(t.path(), "b", &data);
    s3.client("").upload_file("blobs/b", &f, false).unwrap();
    // Through a proxy that answers every GET with 500: the reads fail (so they did go there).
    let (p, _k) = proxy(s3.port, &["GET:blobs/b:*:500"]);
    let via = |port: u16, fallback: bool| {
        s3.config(
            s3.port,
            &format!(r#","retry_limit":0,"proxy":{{"url":"http://127.0.0.1:{port}","fallback":{fallback}}}"#),
        )
    };
    let b = open_backend(&via(p, true)).unwrap();
    let blob = b.open("b", 0, 1).unwrap();
    let mut buf = vec![0u8; 1000];
    let e = blob.store.read_at(0, &mut buf).unwrap_err();
    assert!(e.message.contains("HTTP 500"), "{e}");
    // A working proxy serves them.
    let (p2, _k2) = proxy(s3.port, &[]);
    assert_eq!(
        read_back(
            open_backend(&via(p2, false)).unwrap().as_ref(),
            "b",
            data.len()
        ),
        data
    );
    // A proxy that is down: straight to the server with fallback, an error without.
    let down = free_port();
    assert_eq!(
        read_back(
            open_backend(&via(down, true)).unwrap().as_ref(),
            "b",
            data.len()
        ),
        data
    );
    let e = open_backend(&via(down, false))
        .unwrap()
        .open("b", 0, 1)
        .unwrap_err();
    assert_eq!(e.kind, StoreErrorKind::Transient, "{e}");
}
