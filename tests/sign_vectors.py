#!/usr/bin/env python3
"""Reference vectors for the request signers in host-native/storage/src/sign/.

usage: sign_vectors.py [--check | --stdout]

Signs a fixed set of requests at fixed times with the official clients and writes what they
produce to host-native/storage/src/sign/vectors/:

- sigv4.json: botocore's `botocore.auth.S3SigV4Auth` (the signer boto3 and the AWS CLI use);
- oss.json: oss2's `oss2.Auth` (OSS V1) and `oss2.AuthV4` (OSS V4), oss2 being Alibaba's
  official Python SDK;
- crc64.json: oss2's `oss2.utils.Crc64` (crcmod, CRC-64/ECMA-182 as OSS reports it in
  `x-oss-hash-crc64ecma`), values and combinations.

The Rust tests `include_str!` these files, recompute every output field from the inputs and
require the re-serialized document to equal the file byte for byte. The JSON is therefore
written in the one shape both sides produce: keys sorted, two-space indent, UTF-8 unescaped
(serde_json's pretty printer with structs whose fields are declared in sorted order).

--check compares with the committed files instead of writing them (exit 1 on a difference);
--stdout prints the three documents instead of writing them.
Needs `pip install botocore oss2`; no network: nothing is sent, the clocks are fixed.
"""

import base64
import datetime
import email.utils
import hashlib
import json
import os
import sys
import urllib.parse

import botocore
import botocore.auth
import botocore.awsrequest
import botocore.config
import botocore.credentials
import oss2
import oss2.auth
import oss2.http
import oss2.utils

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "host-native", "storage",
                   "src", "sign", "vectors")

# AWS's documentation example account (https://docs.aws.amazon.com/AmazonS3/latest/API/
# sig-v4-header-based-auth.html): the secret is published, not a credential.
AWS_AK = "AKIAIOSFODNN7EXAMPLE"
AWS_SK = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
# A made-up OSS account in Alibaba's documentation style.
OSS_AK = "LTAI5tExampleAccessKeyId"
OSS_SK = "ExampleAccessKeySecret0123456789abcd"

T_AWS = 1369353600  # 2013-05-24T00:00:00Z, the time of AWS's examples
T_2023 = 1700000000  # 2023-11-14T22:13:20Z
T_2024 = 1709251199  # 2024-02-29T23:59:59Z (a leap day, the last second)

EMPTY = hashlib.sha256(b"").hexdigest()
UPLOAD_ID = "VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA"
OSS_UPLOAD_ID = "0004B9894A22E5B1888A1E29F823****"
BLOB = "blobs/5b2ed3a4c2e1e3f7ab0f0f8a2b1e9f1c0f1d2e3a4b5c6d7e8f9a0b1c2d3e4f5a"
BODY = b"hello nydus\n"
COMPLETE_XML = (b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber>"
                b"<ETag>\"d41d8cd98f00b204e9800998ecf8427e\"</ETag></Part></CompleteMultipartUpload>")
UNICODE_KEY = "dir/my file+1 \u00fcn\u00efc\u00f8d\u00e9 \u20ac~(x)*'!.txt"


def sha(body):
    return hashlib.sha256(body).hexdigest()


def md5_b64(body):
    return base64.b64encode(hashlib.md5(body).digest()).decode()


def request(method, scheme, host, path, query=(), headers=(), payload=EMPTY):
    """The request value as the Rust side takes it: the path is raw (not URI-encoded)."""
    return {
        "headers": [list(h) for h in headers],
        "host": host,
        "method": method,
        "path": path,
        "payload": payload,
        "query": [list(q) for q in query],
        "scheme": scheme,
    }


# --- SigV4 -------------------------------------------------------------------------------

def fixed_clock(module, unix_seconds):
    fixed = datetime.datetime.fromtimestamp(unix_seconds, datetime.timezone.utc).replace(tzinfo=None)
    module.get_current_datetime = lambda remove_tzinfo=True: fixed


class CapturingS3SigV4Auth(botocore.auth.S3SigV4Auth):
    """botocore's S3 signer, keeping the canonical request and string to sign it built."""

    def string_to_sign(self, request, canonical_request):
        self.captured_canonical_request = canonical_request
        sts = super().string_to_sign(request, canonical_request)
        self.captured_string_to_sign = sts
        return sts


def sigv4_case(name, unix_seconds, region, req, body=b""):
    fixed_clock(botocore.auth, unix_seconds)
    url = "%s://%s%s" % (req["scheme"], req["host"], urllib.parse.quote(req["path"], safe="/~"))
    aws = botocore.awsrequest.AWSRequest(method=req["method"], url=url,
                                         headers=dict(req["headers"]),
                                         data=body, params=[tuple(q) for q in req["query"]])
    if req["payload"] == "UNSIGNED-PAYLOAD":
        # How boto3 is told not to hash a body (S3 `payload_signing_enabled = false`).
        aws.context["client_config"] = botocore.config.Config(s3={"payload_signing_enabled": False})
    else:
        assert req["payload"] == sha(body), name
    before = {k.lower() for k in aws.headers.keys()}
    creds = botocore.credentials.Credentials(AWS_AK, AWS_SK)
    auth = CapturingS3SigV4Auth(creds, "s3", region)
    auth.add_auth(aws)
    added = {k.lower(): v for k, v in aws.headers.items() if k.lower() not in before}
    # botocore signs `host` without adding it (the HTTP client sends it): record the value.
    added["host"] = botocore.auth._host_from_url(url)
    return {
        "canonical_request": auth.captured_canonical_request,
        "headers": dict(sorted(added.items())),
        "name": name,
        "region": region,
        "request": req,
        "string_to_sign": auth.captured_string_to_sign,
        "unix_seconds": unix_seconds,
    }


def sigv4_doc():
    ep = "127.0.0.1:9000"
    cases = [
        # AWS's published "GET Object" example (signature f0e8bdb8...).
        sigv4_case("aws-example-get-object-range", T_AWS, "us-east-1",
                   request("GET", "https", "examplebucket.s3.amazonaws.com", "/test.txt",
                           headers=[("Range", "bytes=0-9")])),
        sigv4_case("put-object-body-hash", T_2023, "us-east-1",
                   request("PUT", "http", ep, "/nydus/" + BLOB,
                           headers=[("Content-Type", "application/octet-stream"),
                                    ("Content-Length", str(len(BODY)))],
                           payload=sha(BODY)), BODY),
        sigv4_case("put-object-unsigned-payload", T_2023, "us-east-1",
                   request("PUT", "https", "s3.amazonaws.com", "/nydus/" + BLOB,
                           payload="UNSIGNED-PAYLOAD"), BODY),
        sigv4_case("get-object-range-default-port", T_2023, "us-west-2",
                   request("GET", "https", "s3.us-west-2.amazonaws.com:443", "/nydus/" + BLOB,
                           headers=[("Range", "bytes=1048576-2097151")])),
        sigv4_case("head-object", T_2023, "us-east-1",
                   request("HEAD", "http", ep, "/nydus/" + BLOB)),
        sigv4_case("multipart-create", T_2023, "us-east-1",
                   request("POST", "http", ep, "/nydus/" + BLOB, query=[("uploads", "")])),
        sigv4_case("multipart-upload-part", T_2023, "us-east-1",
                   request("PUT", "http", ep, "/nydus/" + BLOB,
                           query=[("uploadId", UPLOAD_ID), ("partNumber", "1")],
                           payload=sha(BODY)), BODY),
        sigv4_case("multipart-complete", T_2023, "us-east-1",
                   request("POST", "http", ep, "/nydus/" + BLOB, query=[("uploadId", UPLOAD_ID)],
                           headers=[("Content-Type", "application/xml")],
                           payload=sha(COMPLETE_XML)), COMPLETE_XML),
        sigv4_case("multipart-abort", T_2023, "us-east-1",
                   request("DELETE", "http", ep, "/nydus/" + BLOB, query=[("uploadId", UPLOAD_ID)])),
        sigv4_case("key-spaces-unicode-plus", T_2024, "eu-central-1",
                   request("GET", "https", "s3.eu-central-1.amazonaws.com", "/nydus/" + UNICODE_KEY)),
        sigv4_case("list-objects-query-encoding", T_2024, "eu-central-1",
                   request("GET", "https", "s3.eu-central-1.amazonaws.com", "/nydus",
                           query=[("prefix", "meta/a b+c"), ("list-type", "2"), ("delimiter", "/"),
                                  ("continuation-token", "1/ab==")])),
        sigv4_case("header-trim-and-case", T_2024, "us-east-1",
                   request("PUT", "http", ep, "/nydus/meta/bootstrap",
                           headers=[("X-Amz-Meta-Note", "  two   inner  runs "),
                                    ("x-amz-storage-class", "STANDARD"),
                                    ("Content-MD5", md5_b64(BODY))],
                           payload=sha(BODY)), BODY),
    ]
    return {
        "access_key_id": AWS_AK,
        "cases": cases,
        "generator": "botocore %s botocore.auth.S3SigV4Auth (tests/sign_vectors.py)" % botocore.__version__,
        "secret_access_key": AWS_SK,
    }


# --- OSS ---------------------------------------------------------------------------------

class FixedUtcNow:
    unix_seconds = 0

    @classmethod
    def utcnow(cls):
        return datetime.datetime.fromtimestamp(cls.unix_seconds, datetime.timezone.utc).replace(tzinfo=None)


oss2.auth.datetime = FixedUtcNow  # oss2.auth uses `datetime.utcnow()` for V4 dates


def oss2_request(bucket, region, req, additional):
    key = req["path"][1:]
    headers = dict(req["headers"])
    if "host" in additional:
        # An additional header is signed only if the request carries it; the Rust signer takes
        # `host` from the request's host.
        headers["Host"] = req["host"]
    url = "%s://%s/%s" % (req["scheme"], req["host"], urllib.parse.quote(key, safe=""))
    r = oss2.http.Request(req["method"], url, params=dict(req["query"]), headers=headers,
                          region=region, product="oss")
    return r, key


def oss_v1_case(name, unix_seconds, bucket, req):
    oss2.utils.http_date = lambda timeval=None: email.utils.formatdate(unix_seconds, usegmt=True)
    auth = oss2.Auth(OSS_AK, OSS_SK)
    r, key = oss2_request(bucket, None, req, [])
    auth._sign_request(r, bucket, key)
    sts = auth._ProviderAuth__get_bytes_to_sign(r, bucket, key).decode("utf-8")
    return {
        "bucket": bucket,
        "headers": {"authorization": r.headers["authorization"], "date": r.headers["date"]},
        "name": name,
        "request": req,
        "string_to_sign": sts,
        "unix_seconds": unix_seconds,
    }


def oss_v4_case(name, unix_seconds, bucket, region, req, additional=()):
    FixedUtcNow.unix_seconds = unix_seconds
    auth = oss2.AuthV4(OSS_AK, OSS_SK)
    additional = list(additional)
    r, key = oss2_request(bucket, region, req, additional)
    auth._sign_request(r, bucket, key, in_additional_headers=additional or None)
    signed = auth._ProviderAuthV4__get_additional_signed_headers(additional or None)
    cr = auth._ProviderAuthV4__get_canonical_request_bytes(r, bucket, key, signed)
    sts = auth._ProviderAuthV4__get_string_to_sign_bytes(r, cr, r.headers["x-oss-date"])
    return {
        "additional_headers": additional,
        "bucket": bucket,
        "canonical_request": cr.decode("utf-8"),
        "headers": {
            "authorization": r.headers["authorization"],
            "x-oss-content-sha256": r.headers["x-oss-content-sha256"],
            "x-oss-date": r.headers["x-oss-date"],
        },
        "name": name,
        "region": region,
        "request": req,
        "string_to_sign": sts,
        "unix_seconds": unix_seconds,
    }


def oss_requests():
    """(name, request) pairs signed with both versions; bucket nydus-test."""
    host = "nydus-test.oss-cn-hangzhou.aliyuncs.com"
    unsigned = "UNSIGNED-PAYLOAD"
    return [
        ("put-object", request("PUT", "https", host, "/" + BLOB,
                               headers=[("Content-Type", "application/octet-stream"),
                                        ("Content-MD5", md5_b64(BODY)),
                                        ("x-oss-meta-zeta", "last"),
                                        ("X-Oss-Meta-Alpha", "first"),
                                        ("x-oss-storage-class", "Standard")],
                               payload=unsigned)),
        ("get-object-range", request("GET", "https", host, "/" + BLOB,
                                     headers=[("Range", "bytes=0-1048575")], payload=unsigned)),
        ("head-object", request("HEAD", "http", host, "/" + BLOB, payload=unsigned)),
        ("delete-object", request("DELETE", "http", host, "/" + BLOB, payload=unsigned)),
        ("multipart-initiate", request("POST", "https", host, "/" + BLOB, query=[("uploads", "")],
                                       headers=[("Content-Type", "application/octet-stream")],
                                       payload=unsigned)),
        ("multipart-upload-part", request("PUT", "https", host, "/" + BLOB,
                                          query=[("uploadId", OSS_UPLOAD_ID), ("partNumber", "3")],
                                          payload=unsigned)),
        ("multipart-complete", request("POST", "https", host, "/" + BLOB,
                                       query=[("uploadId", OSS_UPLOAD_ID)],
                                       headers=[("Content-Type", "application/xml"),
                                                ("Content-MD5", md5_b64(COMPLETE_XML))],
                                       payload=unsigned)),
        ("multipart-abort", request("DELETE", "https", host, "/" + BLOB,
                                    query=[("uploadId", OSS_UPLOAD_ID)], payload=unsigned)),
        ("list-multipart-uploads", request("GET", "https", host, "/",
                                           query=[("uploads", ""), ("prefix", "blobs/"),
                                                  ("max-uploads", "1000"), ("encoding-type", "url")],
                                           payload=unsigned)),
        ("get-object-acl", request("GET", "https", host, "/" + BLOB, query=[("acl", "")],
                                   payload=unsigned)),
        ("key-spaces-unicode-plus", request("GET", "https", host, "/" + UNICODE_KEY,
                                            payload=unsigned)),
    ]


def oss_doc():
    bucket = "nydus-test"
    v1 = [oss_v1_case(n, T_2023, bucket, r) for n, r in oss_requests()]
    v4 = [oss_v4_case(n, T_2023, bucket, "cn-hangzhou", r) for n, r in oss_requests()]
    host = "nydus-test.oss-cn-hangzhou.aliyuncs.com"
    v4.append(oss_v4_case("get-object-range-additional-headers", T_2024, bucket, "cn-hangzhou",
                          request("GET", "https", host, "/" + BLOB,
                                  headers=[("Range", "bytes=0-9")], payload="UNSIGNED-PAYLOAD"),
                          additional=["host", "range"]))
    v4.append(oss_v4_case("internal-endpoint-other-region", T_2024, "nydus-sg", "ap-southeast-1",
                          request("PUT", "http", "nydus-sg.oss-ap-southeast-1-internal.aliyuncs.com",
                                  "/" + BLOB, query=[("partNumber", "10000"), ("uploadId", "a/b+c=d")],
                                  payload="UNSIGNED-PAYLOAD")))
    return {
        "access_key_id": OSS_AK,
        "access_key_secret": OSS_SK,
        "generator": "oss2 %s oss2.Auth (V1), oss2.AuthV4 (V4) (tests/sign_vectors.py)" % oss2.__version__,
        "v1": v1,
        "v4": v4,
    }


# --- CRC-64 ------------------------------------------------------------------------------

def pattern(n):
    """The bytes of a `pattern` input: byte i is (i * 31 + 7) mod 251."""
    return bytes((i * 31 + 7) % 251 for i in range(n))


def crc_of(data):
    c = oss2.utils.Crc64()
    c.update(data)
    return c.crc


def crc64_doc():
    texts = ["", "a", "123456789", "The quick brown fox jumps over the lazy dog", "hello nydus\n"]
    values = [{"input": {"pattern_len": None, "text": t}, "crc64": str(crc_of(t.encode()))} for t in texts]
    for n in [1, 255, 256, 4096, 65537, 1 << 20]:
        values.append({"input": {"pattern_len": n, "text": None}, "crc64": str(crc_of(pattern(n)))})
    combines = []
    for n, split in [(9, 4), (4096, 0), (4096, 4096), (65537, 1000), (1 << 20, 1 << 19), (1 << 20, 3)]:
        data = pattern(n)
        a, b = data[:split], data[split:]
        ca, cb = crc_of(a), crc_of(b)
        combined = oss2.utils.Crc64().combine(ca, cb, len(b))
        assert combined == crc_of(data)
        combines.append({"combined": str(combined), "crc_a": str(ca), "crc_b": str(cb),
                         "len_b": len(b), "pattern_len": n, "split": split})
    return {
        "combine": combines,
        "generator": "oss2 %s oss2.utils.Crc64 (crcmod; poly 0x142F0E1EBA9EA3693, reflected, xorout all ones) (tests/sign_vectors.py)" % oss2.__version__,
        "pattern": "byte i is (i * 31 + 7) mod 251",
        "values": values,
    }


def dump(doc):
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main():
    docs = {"sigv4.json": sigv4_doc(), "oss.json": oss_doc(), "crc64.json": crc64_doc()}
    mode = sys.argv[1] if len(sys.argv) > 1 else ""
    bad = 0
    for name, doc in docs.items():
        text = dump(doc)
        path = os.path.join(OUT, name)
        if mode == "--stdout":
            sys.stdout.write(text)
        elif mode == "--check":
            with open(path, encoding="utf-8") as f:
                if f.read() != text:
                    print("differs: %s" % os.path.normpath(path))
                    bad = 1
        else:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
            print("wrote %s" % os.path.normpath(path))
    sys.exit(bad)


if __name__ == "__main__":
    main()
