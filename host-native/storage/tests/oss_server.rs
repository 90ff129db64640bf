//! The OSS signers against `tests/oss_server.py`, a server written from Alibaba's documentation
//! (Python standard library only): V1 and V4, virtual-hosted (`Host: nydus.127.0.0.1:PORT`) and
//! path-style requests, a whole multipart upload and the CRC-64 the server answers.
//! Requests go over a plain `TcpStream`: the signers hand out values, any client sends them.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::SystemTime;

use nydus_host_storage::sign::crc64::{combine, crc64};
use nydus_host_storage::sign::oss::{sign_v1, sign_v4, Bucket, V4Params};
use nydus_host_storage::sign::{Credentials, Method, Request, Scheme, Timestamp};

const AK: &str = "LTAI5tRustTestAccessKey";
const SK: &str = "RustTestSecret0123456789abcdefABCD";
const REGION: &str = "cn-hangzhou";

struct Server {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/oss_server.py");
    let mut child = Command::new("python3")
        .arg(script)
        .args(["--dir", dir.path().to_str().unwrap()])
        .args(["--access-key", AK, "--secret-key", SK, "--port", "0"])
        .args(["--region", REGION, "--min-part-size", "1000"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs tests/oss_server.py");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line.trim().parse().expect("the server prints its port");
    Server {
        child,
        port,
        _dir: dir,
    }
}

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends `req` (already signed) with `body` to the server, whatever its host says.
fn send(port: u16, req: &Request, body: &[u8]) -> Response {
    let url = req.url();
    let target = &url[url.find("://").unwrap() + 3..];
    let target = &target[target.find('/').unwrap()..];
    let mut head = format!(
        "{} {target} HTTP/1.1\r\nHost: {}\r\n",
        req.method.as_str(),
        req.host_header()
    );
    for (n, v) in &req.headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8(raw[..split].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap();
            (n.trim().to_string(), v.trim().to_string())
        })
        .collect();
    Response {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

#[derive(Clone, Copy, Debug)]
enum Version {
    V1,
    V4,
}

fn signed(version: Version, bucket: &str, req: Request, creds: &Credentials) -> Request {
    let at = Timestamp::from(SystemTime::now());
    let s = match version {
        Version::V1 => sign_v1(&req, bucket, creds, at),
        Version::V4 => sign_v4(
            &req,
            &V4Params::new(bucket, REGION).with_additional_headers(&["host", "range"]),
            creds,
            at,
        ),
    };
    req.with_signed(&s)
}

fn between<'a>(text: &'a str, open: &str, close: &str) -> &'a str {
    let start = text.find(open).unwrap() + open.len();
    &text[start..start + text[start..].find(close).unwrap()]
}

fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| ((i as u32).wrapping_mul(2654435761) >> 13) as u8 ^ seed)
        .collect()
}

/// Requests on `nydus` through `make(method, key)`: virtual-hosted or path-style.
fn scenario(port: u16, version: Version, make: &dyn Fn(Method, &str) -> Request, label: &str) {
    let creds = Credentials::new(AK, SK);
    let go = |req: Request, body: &[u8]| send(port, &signed(version, "nydus", req, &creds), body);
    let key = format!("blobs/{label}/a b+ü€~(1).bin");
    let data = pattern(5000, 1);

    let r = go(
        make(Method::Put, &key).with_header("Content-Type", "application/octet-stream"),
        &data,
    );
    assert_eq!(r.status, 200, "{label} put: {}", r.text());
    assert_eq!(
        r.header("x-oss-hash-crc64ecma"),
        Some(crc64(&data).to_string().as_str())
    );

    let r = go(
        make(Method::Get, &key).with_header("Range", "bytes=100-199"),
        &[],
    );
    assert_eq!(r.status, 206, "{label} range: {}", r.text());
    assert_eq!(r.body, &data[100..200]);
    let r = go(make(Method::Head, &key), &[]);
    assert_eq!(r.status, 200, "{label} head");
    assert_eq!(r.header("content-length"), Some("5000"));
    assert_eq!(
        r.header("x-oss-hash-crc64ecma"),
        Some(crc64(&data).to_string().as_str())
    );

    // Multipart: initiate, two parts, complete; the server's CRC is the parts' combined.
    let mp = format!("blobs/{label}/multipart");
    let r = go(make(Method::Post, &mp).with_query("uploads", ""), &[]);
    assert_eq!(r.status, 200, "{label} initiate: {}", r.text());
    let upload_id = between(&r.text(), "<UploadId>", "</UploadId>").to_string();
    let parts = [pattern(3000, 2), pattern(1234, 3)];
    let mut xml = String::from("<CompleteMultipartUpload>");
    for (i, part) in parts.iter().enumerate() {
        let n = (i + 1).to_string();
        let req = make(Method::Put, &mp)
            .with_query("partNumber", n.as_str())
            .with_query("uploadId", upload_id.as_str());
        let r = go(req, part);
        assert_eq!(r.status, 200, "{label} part: {}", r.text());
        assert_eq!(
            r.header("x-oss-hash-crc64ecma"),
            Some(crc64(part).to_string().as_str())
        );
        let etag = r.header("etag").unwrap();
        xml.push_str(&format!(
            "<Part><PartNumber>{n}</PartNumber><ETag>{etag}</ETag></Part>"
        ));
    }
    xml.push_str("</CompleteMultipartUpload>");
    let r = go(make(Method::Get, "").with_query("uploads", ""), &[]);
    assert_eq!(r.status, 200, "{label} list: {}", r.text());
    assert!(r.text().contains(&upload_id), "{label} list: {}", r.text());
    let r = go(
        make(Method::Post, &mp)
            .with_query("uploadId", upload_id.as_str())
            .with_header("Content-Type", "application/xml"),
        xml.as_bytes(),
    );
    assert_eq!(r.status, 200, "{label} complete: {}", r.text());
    let whole = [parts[0].as_slice(), parts[1].as_slice()].concat();
    let expected = combine(crc64(&parts[0]), crc64(&parts[1]), parts[1].len() as u64);
    assert_eq!(expected, crc64(&whole));
    assert_eq!(
        r.header("x-oss-hash-crc64ecma"),
        Some(expected.to_string().as_str())
    );
    assert_eq!(go(make(Method::Get, &mp), &[]).body, whole);

    // Abort.
    let r = go(make(Method::Post, &mp).with_query("uploads", ""), &[]);
    let upload_id = between(&r.text(), "<UploadId>", "</UploadId>").to_string();
    let abort = make(Method::Delete, &mp).with_query("uploadId", upload_id.as_str());
    assert_eq!(go(abort, &[]).status, 204, "{label} abort");
    let r = go(make(Method::Get, "").with_query("uploads", ""), &[]);
    assert!(
        !r.text().contains(&upload_id),
        "{label} aborted: {}",
        r.text()
    );

    for k in [&key, &mp] {
        assert_eq!(go(make(Method::Delete, k), &[]).status, 204);
        assert_eq!(go(make(Method::Head, k), &[]).status, 404);
    }

    // A wrong secret is refused.
    let bad = Credentials::new(AK, "not-the-secret");
    let r = send(
        port,
        &signed(version, "nydus", make(Method::Get, &key), &bad),
        &[],
    );
    assert_eq!(r.status, 403, "{label} wrong secret");
    assert!(r.text().contains("<Code>SignatureDoesNotMatch</Code>"));
    // So is a signed header changed on the way.
    let mut tampered = signed(
        version,
        "nydus",
        make(Method::Get, &key).with_header("x-oss-meta-note", "a"),
        &creds,
    );
    for (n, v) in &mut tampered.headers {
        if n == "x-oss-meta-note" {
            *v = "b".into();
        }
    }
    let r = send(port, &tampered, &[]);
    assert_eq!(r.status, 403, "{label} tampered: {}", r.text());
}

#[test]
fn oss_signers_against_the_test_server() {
    let server = start();
    let port = server.port;
    let bucket =
        Bucket::new(Scheme::Http, format!("127.0.0.1:{port}"), "nydus").with_region(REGION);
    assert_eq!(bucket.host(), format!("nydus.127.0.0.1:{port}"));
    for version in [Version::V1, Version::V4] {
        let virtual_hosted = |m: Method, key: &str| bucket.object(m, key);
        scenario(
            port,
            version,
            &virtual_hosted,
            &format!("{version:?}-vhost"),
        );
        path_style(port, version, &bucket, &format!("{version:?}-path"));
    }
}

/// Path-style requests (the server's rule for a bare IP host: `/{bucket}/{key}`) are signed
/// like virtual-hosted ones: both versions sign the resource `/{bucket}/{key}`.
fn path_style(port: u16, version: Version, bucket: &Bucket, label: &str) {
    let creds = Credentials::new(AK, SK);
    let key = format!("blobs/{label}/x y");
    let data = pattern(100, 9);
    let go = |m: Method, body: &[u8]| {
        let signed_as = bucket.object(m, &key);
        let mut sent = signed_as.clone();
        sent.host = bucket.endpoint.clone();
        sent.path = format!("/{}{}", bucket.name, signed_as.path);
        let at = Timestamp::from(SystemTime::now());
        let s = match version {
            Version::V1 => bucket.sign_v1(&signed_as, &creds, at),
            Version::V4 => bucket.sign_v4(&signed_as, &creds, at, &[]).unwrap(),
        };
        send(port, &sent.with_signed(&s), body)
    };
    let r = go(Method::Put, &data);
    assert_eq!(r.status, 200, "{label} put: {}", r.text());
    let r = go(Method::Get, &[]);
    assert_eq!(r.status, 200, "{label} get: {}", r.text());
    assert_eq!(r.body, data);
    assert_eq!(go(Method::Delete, &[]).status, 204);
}
