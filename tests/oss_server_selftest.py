#!/usr/bin/env python3
"""Checks tests/oss_server.py with oss2, Alibaba's official OSS client.

usage: oss_server_selftest.py        (needs `pip install oss2`; exit 0 when every check passes)

Starts the server on a free port with a temporary directory, then runs the same scenario with
the V1 signer (`oss2.Auth`) and the V4 signer (`oss2.AuthV4`, region cn-hangzhou), each both
path-style (an IP endpoint, which oss2 addresses as `/bucket/key`) and virtual-hosted
(`bucket.oss-cn-hangzhou.oss.test:PORT`, the `.oss.test` names resolved to 127.0.0.1 inside
this process, as curl's `--resolve` does): put (bytes and a chunked stream), get, ranged get,
head, multipart upload (three parts, CRC-64 of the whole checked by oss2), list and abort of
uploads, delete; then wrong secret, wrong access key, no signature and a skewed date, each
refused with 403 and the OSS error code.
"""

import os
import socket
import subprocess
import sys
import tempfile

import oss2
import oss2.utils
from oss2.models import PartInfo

AK = "LTAI5tSelfTestAccessKey"
SK = "SelfTestSecret0123456789abcdefABCD"
REGION = "cn-hangzhou"
BUCKET = "nydus-test"
HERE = os.path.dirname(os.path.abspath(__file__))

_getaddrinfo = socket.getaddrinfo


def _resolve_test_names(host, *args, **kwargs):
    if isinstance(host, str) and host.endswith(".oss.test"):
        host = "127.0.0.1"
    return _getaddrinfo(host, *args, **kwargs)


socket.getaddrinfo = _resolve_test_names

CHECKS = 0


def check(cond, what):
    global CHECKS
    if not cond:
        raise AssertionError(what)
    CHECKS += 1


def crc64(data):
    c = oss2.utils.Crc64()
    c.update(data)
    return c.crc


def pattern(n, seed):
    return bytes(((i * 2654435761) >> 13 ^ seed) & 0xFF for i in range(n))


def expect_error(fn, status, code, what):
    try:
        fn()
    except oss2.exceptions.OssError as e:
        check(e.status == status, "%s: status %s, wanted %s (%s)" % (what, e.status, status, e.code))
        if code is not None:
            check(e.code == code, "%s: code %r, wanted %r" % (what, e.code, code))
        return e
    raise AssertionError("%s: no error" % what)


def scenario(bucket, label):
    key = "blobs/%s/a b+\u00fc\u20ac.bin" % label
    data = pattern(300_000, 1)

    r = bucket.put_object(key, data)  # oss2 compares the answered CRC-64 with its own
    check(r.status == 200 and r.crc == crc64(data), "put crc")

    g = bucket.get_object(key)
    check(g.read() == data, "get body")
    check(int(g.headers["x-oss-hash-crc64ecma"]) == crc64(data), "get crc header")

    g = bucket.get_object(key, byte_range=(1000, 1999))
    check(g.status == 206 and g.read() == data[1000:2000], "range get")
    check(g.headers["Content-Range"] == "bytes 1000-1999/%d" % len(data), "content-range")
    g = bucket.get_object(key, byte_range=(None, 10))
    check(g.status == 206 and g.read() == data[-10:], "suffix range")
    g = bucket.get_object(key, byte_range=(len(data) - 5, None))
    check(g.status == 206 and g.read() == data[-5:], "open range")
    expect_error(lambda: bucket.get_object(key, byte_range=(len(data), len(data) + 5)),
                 416, "InvalidRange", "range past the end")

    h = bucket.head_object(key)
    check(h.content_length == len(data), "head length")
    check(int(h.headers["x-oss-hash-crc64ecma"]) == crc64(data), "head crc")
    check(h.etag and h.object_type == "Normal", "head etag/type")

    stream_key = "blobs/%s/streamed" % label
    pieces = [b"chunked ", b"transfer ", b"encoding"]
    r = bucket.put_object(stream_key, iter(pieces))
    check(r.crc == crc64(b"".join(pieces)), "chunked put crc")
    check(bucket.get_object(stream_key).read() == b"".join(pieces), "chunked put body")

    # Multipart: two 100 KiB parts and a short last one.
    mp_key = "blobs/%s/multipart" % label
    chunks = [pattern(100 * 1024, 2), pattern(100 * 1024, 3), pattern(777, 4)]
    upload_id = bucket.init_multipart_upload(mp_key).upload_id
    parts = []
    for n, chunk in enumerate(chunks, 1):
        r = bucket.upload_part(mp_key, upload_id, n, chunk)
        check(r.crc == crc64(chunk), "part crc")
        parts.append(PartInfo(n, r.etag, size=len(chunk), part_crc=r.crc))
    listed = bucket.list_multipart_uploads(prefix="blobs/%s/" % label)
    check([(u.key, u.upload_id) for u in listed.upload_list] == [(mp_key, upload_id)], "list in progress")
    r = bucket.complete_multipart_upload(mp_key, upload_id, parts)  # oss2 checks the combined CRC
    whole = b"".join(chunks)
    check(r.crc == crc64(whole), "complete crc")
    check(bucket.get_object(mp_key).read() == whole, "multipart body")
    h = bucket.head_object(mp_key)
    check(h.object_type == "Multipart" and h.etag.endswith("-3"), "multipart etag/type")
    check(int(h.headers["x-oss-hash-crc64ecma"]) == crc64(whole), "multipart head crc")

    # CopyObject within the bucket (how a streamed upload ends).
    copy_key = "blobs/%s/copied" % label
    r = bucket.copy_object(bucket.bucket_name, mp_key, copy_key)
    check(r.status == 200, "copy status")
    check(bucket.get_object(copy_key).read() == whole, "copy body")
    check(int(bucket.head_object(copy_key).headers["x-oss-hash-crc64ecma"]) == crc64(whole), "copy crc")

    # A too-small middle part is refused.
    small_id = bucket.init_multipart_upload(mp_key + ".small").upload_id
    p1 = bucket.upload_part(mp_key + ".small", small_id, 1, b"tiny")
    p2 = bucket.upload_part(mp_key + ".small", small_id, 2, b"tail")
    expect_error(lambda: bucket.complete_multipart_upload(
        mp_key + ".small", small_id, [PartInfo(1, p1.etag), PartInfo(2, p2.etag)]),
        400, "EntityTooSmall", "small part")
    bucket.abort_multipart_upload(mp_key + ".small", small_id)

    # List and abort.
    abort_key = "blobs/%s/aborted" % label
    abort_id = bucket.init_multipart_upload(abort_key).upload_id
    bucket.upload_part(abort_key, abort_id, 1, b"x" * 1000)
    listed = bucket.list_multipart_uploads(prefix="blobs/%s/" % label)
    check([u.upload_id for u in listed.upload_list] == [abort_id], "list before abort")
    r = bucket.abort_multipart_upload(abort_key, abort_id)
    check(r.status == 204, "abort status")
    listed = bucket.list_multipart_uploads(prefix="blobs/%s/" % label)
    check(listed.upload_list == [], "list after abort")
    expect_error(lambda: bucket.upload_part(abort_key, abort_id, 2, b"y"), 404, "NoSuchUpload",
                 "part after abort")
    expect_error(lambda: bucket.head_object(abort_key), 404, None, "aborted object")

    # Paging through uploads.
    ids = sorted(bucket.init_multipart_upload("blobs/%s/page-%d" % (label, i)).upload_id for i in range(3))
    first = bucket.list_multipart_uploads(prefix="blobs/%s/page-" % label, max_uploads=2)
    check(first.is_truncated and len(first.upload_list) == 2, "first page")
    rest = bucket.list_multipart_uploads(prefix="blobs/%s/page-" % label, key_marker=first.next_key_marker,
                                         upload_id_marker=first.next_upload_id_marker, max_uploads=2)
    check(not rest.is_truncated and len(rest.upload_list) == 1, "second page")
    for u in first.upload_list + rest.upload_list:
        bucket.abort_multipart_upload(u.key, u.upload_id)
    check(len(ids) == 3, "page ids")

    for k in (key, stream_key, mp_key, copy_key):
        check(bucket.delete_object(k).status == 204, "delete")
        expect_error(lambda: bucket.head_object(k), 404, None, "deleted object")
    expect_error(lambda: bucket.get_object(key), 404, "NoSuchKey", "get deleted")


def refusals(endpoint, label):
    v4 = label.startswith("v4")

    def make(ak, sk):
        auth = oss2.AuthV4(ak, sk) if v4 else oss2.Auth(ak, sk)
        return oss2.Bucket(auth, endpoint, BUCKET, region=REGION)

    e = expect_error(lambda: make(AK, "wrong-secret").put_object("k", b"data"), 403,
                     "SignatureDoesNotMatch", "wrong secret")
    check(b"StringToSign" in e.body, "error says what was signed")
    expect_error(lambda: make(AK, "wrong-secret").get_object("k"), 403, "SignatureDoesNotMatch",
                 "wrong secret get")
    expect_error(lambda: make("LTAI-unknown", SK).head_object("k"), 403, None, "wrong access key head")
    expect_error(lambda: make("LTAI-unknown", SK).get_object("k"), 403, "InvalidAccessKeyId",
                 "wrong access key")
    anon = oss2.Bucket(oss2.AnonymousAuth(), endpoint, BUCKET)
    expect_error(lambda: anon.get_object("k"), 403, "AccessDenied", "anonymous")
    if not v4:
        real = oss2.utils.http_date
        oss2.utils.http_date = lambda timeval=None: real(__import__("time").time() - 3600)
        try:
            expect_error(lambda: make(AK, SK).get_object("k"), 403, "RequestTimeTooSkewed", "skewed date")
        finally:
            oss2.utils.http_date = real


def main():
    with tempfile.TemporaryDirectory() as d:
        server = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "oss_server.py"), "--dir", d, "--access-key", AK,
             "--secret-key", SK, "--port", "0", "--region", REGION],
            stdout=subprocess.PIPE, text=True)
        try:
            port = int(server.stdout.readline())
            endpoints = {
                "path-style": "http://127.0.0.1:%d" % port,
                "virtual-hosted": "http://oss-cn-hangzhou.oss.test:%d" % port,
            }
            for version, make_auth in (("v1", lambda: oss2.Auth(AK, SK)),
                                       ("v4", lambda: oss2.AuthV4(AK, SK))):
                for style, endpoint in endpoints.items():
                    label = "%s-%s" % (version, style)
                    bucket = oss2.Bucket(make_auth(), endpoint, BUCKET, region=REGION)
                    scenario(bucket, label)
                    refusals(endpoint, label)
                    print("ok   %s" % label)
            # The objects are plain files under the bucket's directory.
            bucket = oss2.Bucket(oss2.Auth(AK, SK), endpoints["path-style"], BUCKET)
            bucket.put_object("blobs/on-disk", b"plain file")
            with open(os.path.join(d, BUCKET, "blobs%2Fon-disk"), "rb") as f:
                check(f.read() == b"plain file", "stored as a file")
            print("ok   storage layout")
        finally:
            server.terminate()
            server.wait(10)
    print("oss_server selftest: %d checks passed" % CHECKS)


if __name__ == "__main__":
    main()
