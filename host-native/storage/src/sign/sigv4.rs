//! AWS Signature Version 4 (`AWS4-HMAC-SHA256`) for S3, header-based, path-style buckets.
//!
//! The canonical request follows AWS's documentation: the method; the path URI-encoded with
//! every byte but the unreserved characters escaped and `/` kept (S3 does not normalize `.`
//! or `//`); the query, keys and values encoded the same way with `/` escaped, sorted by key
//! then value, `k=v` joined by `&` (an empty value gives `k=`); the headers, names lower-cased,
//! values trimmed and inner runs of whitespace collapsed, sorted, duplicates joined with `,`;
//! the signed header names; the payload hash. Every header of the request is signed except the
//! hop-by-hop ones a proxy may rewrite (the list botocore uses), plus `host`, `x-amz-date` and
//! `x-amz-content-sha256`, which the signer sets.

use std::collections::BTreeMap;

use super::{
    hex, hmac_sha256, sha256_hex, trim, uri_encode, Credentials, Method, Request, Scheme, Secret,
    Signed, Timestamp,
};

pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
const SERVICE: &str = "s3";

/// Headers left out of the signature: hop-by-hop headers and others rewritten on the way
/// (botocore's `SIGNED_HEADERS_BLACKLIST`), and `authorization` itself.
const UNSIGNED_HEADERS: &[&str] = &[
    "authorization",
    "connection",
    "expect",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "x-amzn-trace-id",
];

/// A bucket addressed path-style: `{scheme}://{endpoint}/{bucket}/{key}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bucket {
    pub scheme: Scheme,
    /// `host[:port]`, no scheme (`s3.amazonaws.com`, `127.0.0.1:9000`).
    pub endpoint: String,
    pub region: String,
    pub name: String,
}

impl Bucket {
    pub fn new(
        scheme: Scheme,
        endpoint: impl Into<String>,
        region: impl Into<String>,
        name: impl Into<String>,
    ) -> Self {
        Bucket {
            scheme,
            endpoint: endpoint.into(),
            region: region.into(),
            name: name.into(),
        }
    }

    /// A request on object `key` (raw; it is encoded when signed and in [`Request::url`]).
    pub fn object(&self, method: Method, key: &str) -> Request {
        let key = key.strip_prefix('/').unwrap_or(key);
        Request::new(
            method,
            self.scheme,
            self.endpoint.clone(),
            &format!("/{}/{key}", self.name),
        )
    }

    /// A request on the bucket itself (`GET /{bucket}?uploads`, listings).
    pub fn bucket(&self, method: Method) -> Request {
        Request::new(
            method,
            self.scheme,
            self.endpoint.clone(),
            &format!("/{}", self.name),
        )
    }

    /// [`sign`] with this bucket's region.
    pub fn sign(&self, req: &Request, creds: &Credentials, at: Timestamp) -> Signed {
        sign(req, creds, &self.region, at)
    }
}

/// Signs `req` for S3 in `region` at time `at`. The headers to add are `authorization`,
/// `host` (the value signed: [`Request::host_header`]; clients send the same from the URL),
/// `x-amz-content-sha256` ([`Request::payload`]) and `x-amz-date`; any of these already in
/// `req.headers` are replaced.
pub fn sign(req: &Request, creds: &Credentials, region: &str, at: Timestamp) -> Signed {
    let amz_date = at.iso8601_basic();
    let scope = format!("{}/{region}/{SERVICE}/aws4_request", at.date_stamp());
    let set = [
        ("host", req.host_header()),
        ("x-amz-content-sha256", req.payload.as_header_value()),
        ("x-amz-date", amz_date.clone()),
    ];

    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in &req.headers {
        let name = name.trim().to_ascii_lowercase();
        if UNSIGNED_HEADERS.contains(&name.as_str()) || set.iter().any(|(n, _)| *n == name) {
            continue;
        }
        headers.entry(name).or_default().push(trim_all(value));
    }
    for (name, value) in &set {
        headers.insert(name.to_string(), vec![value.clone()]);
    }
    let mut canonical_headers = String::new();
    for (name, values) in &headers {
        canonical_headers.push_str(name);
        canonical_headers.push(':');
        canonical_headers.push_str(&values.join(","));
        canonical_headers.push('\n');
    }
    let signed_headers = headers.keys().cloned().collect::<Vec<_>>().join(";");

    let canonical_request = format!(
        "{}\n{}\n{}\n{canonical_headers}\n{signed_headers}\n{}",
        req.method.as_str(),
        uri_encode(&req.path, true),
        canonical_query(&req.query),
        req.payload.as_header_value(),
    );
    let string_to_sign = format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical_request.as_bytes())
    );
    let key = signing_key(&creds.secret, &at.date_stamp(), region);
    let signature = hex(&hmac_sha256(&key, string_to_sign.as_bytes()));
    let authorization = format!(
        "{ALGORITHM} Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
        creds.access_key_id
    );

    let mut out = vec![("authorization".to_string(), authorization)];
    out.extend(set.iter().map(|(n, v)| (n.to_string(), v.clone())));
    Signed {
        headers: out,
        canonical_request: Some(canonical_request),
        string_to_sign,
    }
}

/// The canonical query string: keys and values URI-encoded (`/` too), sorted by encoded key
/// then value, `k=v` (an empty value as `k=`) joined by `&`.
pub fn canonical_query(query: &[(String, String)]) -> String {
    let mut pairs: Vec<(String, String)> = query
        .iter()
        .map(|(k, v)| (uri_encode(k, false), uri_encode(v, false)))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// `HMAC("AWS4" + secret, date) → region → "s3" → "aws4_request"`.
fn signing_key(secret: &Secret, date: &str, region: &str) -> [u8; 32] {
    let k_date = hmac_sha256(
        format!("AWS4{}", secret.expose()).as_bytes(),
        date.as_bytes(),
    );
    let k_region = hmac_sha256(&k_date, region.as_bytes());
    let k_service = hmac_sha256(&k_region, SERVICE.as_bytes());
    hmac_sha256(&k_service, b"aws4_request")
}

/// Trims a header value and collapses each inner run of spaces and tabs to one space.
fn trim_all(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for word in trim(value).split([' ', '\t']).filter(|w| !w.is_empty()) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Serialize};

    use super::*;
    use crate::sign::vectors::{to_json, JsonRequest};
    use crate::sign::Payload;

    const VECTORS: &str = include_str!("vectors/sigv4.json");

    /// `vectors/sigv4.json`; fields in sorted order (see `JsonRequest`). No `Debug`: it holds
    /// the (published example) secret.
    #[derive(Deserialize, Serialize)]
    struct File {
        access_key_id: String,
        cases: Vec<Case>,
        generator: String,
        secret_access_key: String,
    }

    #[derive(Debug, Deserialize, Serialize)]
    struct Case {
        canonical_request: String,
        headers: BTreeMap<String, String>,
        name: String,
        region: String,
        request: JsonRequest,
        string_to_sign: String,
        unix_seconds: i64,
    }

    #[test]
    fn botocore_vectors_byte_for_byte() {
        let mut file: File = serde_json::from_str(VECTORS).unwrap();
        let creds = Credentials::new(&file.access_key_id, &file.secret_access_key);
        assert!(file.cases.len() >= 10);
        for case in &mut file.cases {
            let s = sign(
                &case.request.to_request(),
                &creds,
                &case.region,
                Timestamp::new(case.unix_seconds),
            );
            let canonical = s.canonical_request.clone().unwrap();
            assert_eq!(canonical, case.canonical_request, "{}", case.name);
            assert_eq!(s.string_to_sign, case.string_to_sign, "{}", case.name);
            let headers: BTreeMap<String, String> = s.headers.into_iter().collect();
            assert_eq!(headers, case.headers, "{}", case.name);
            case.canonical_request = canonical;
            case.string_to_sign = s.string_to_sign;
            case.headers = headers;
        }
        assert!(
            to_json(&file) == VECTORS,
            "re-serialized sigv4.json differs"
        );
    }

    fn aws_example(req: Request) -> String {
        let creds = Credentials::new(
            "AKIAIOSFODNN7EXAMPLE",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        );
        let s = sign(&req, &creds, "us-east-1", Timestamp::new(1369353600));
        let auth = s.header("authorization").unwrap();
        auth.rsplit_once("Signature=").unwrap().1.to_string()
    }

    /// The examples of AWS's "Signature Calculations for the Authorization Header" page.
    #[test]
    fn aws_published_examples() {
        let host = "examplebucket.s3.amazonaws.com";
        let get = Request::new(Method::Get, Scheme::Https, host, "/test.txt")
            .with_header("Range", "bytes=0-9");
        assert_eq!(
            aws_example(get),
            "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
        let put = Request::new(Method::Put, Scheme::Https, host, "/test$file.text")
            .with_header("Date", "Fri, 24 May 2013 00:00:00 GMT")
            .with_header("x-amz-storage-class", "REDUCED_REDUNDANCY")
            .with_payload(Payload::of(b"Welcome to Amazon S3."));
        assert_eq!(
            aws_example(put),
            "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"
        );
        let lifecycle =
            Request::new(Method::Get, Scheme::Https, host, "/").with_query("lifecycle", "");
        assert_eq!(
            aws_example(lifecycle),
            "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"
        );
        let list = Request::new(Method::Get, Scheme::Https, host, "/")
            .with_query("max-keys", "2")
            .with_query("prefix", "J");
        assert_eq!(
            aws_example(list),
            "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"
        );
    }

    #[test]
    fn canonical_request_shape() {
        let b = Bucket::new(Scheme::Http, "127.0.0.1:9000", "us-east-1", "nydus");
        let req = b
            .object(Method::Put, "a b/c")
            .with_query("uploadId", "u")
            .with_query("partNumber", "2")
            .with_header("User-Agent", "x")
            .with_header("X-Amz-Meta-A", " 1 ")
            .with_header("x-amz-meta-a", "2\t\t3")
            .with_header("x-amz-date", "stale")
            .with_payload(Payload::Unsigned);
        let s = b.sign(
            &req,
            &Credentials::new("ak", "sk"),
            Timestamp::new(1700000000),
        );
        assert_eq!(
            s.canonical_request.as_deref().unwrap(),
            "PUT\n/nydus/a%20b/c\npartNumber=2&uploadId=u\nhost:127.0.0.1:9000\n\
             x-amz-content-sha256:UNSIGNED-PAYLOAD\nx-amz-date:20231114T221320Z\n\
             x-amz-meta-a:1,2 3\n\nhost;x-amz-content-sha256;x-amz-date;x-amz-meta-a\n\
             UNSIGNED-PAYLOAD"
        );
        let names: Vec<&str> = s.headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "authorization",
                "host",
                "x-amz-content-sha256",
                "x-amz-date"
            ]
        );
        let sent = req.with_signed(&s);
        assert_eq!(sent.header("x-amz-date"), Some("20231114T221320Z"));
        assert_eq!(
            sent.url(),
            "http://127.0.0.1:9000/nydus/a%20b/c?uploadId=u&partNumber=2"
        );
        assert_eq!(b.bucket(Method::Get).path, "/nydus");
    }

    #[test]
    fn whitespace() {
        assert_eq!(trim_all("  a   b \t c  "), "a b c");
        assert_eq!(trim_all(""), "");
        assert_eq!(canonical_query(&[]), "");
        assert_eq!(
            canonical_query(&[("b".into(), "".into()), ("a".into(), "x y".into())]),
            "a=x%20y&b="
        );
    }
}
