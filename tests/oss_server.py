#!/usr/bin/env python3
"""A small Alibaba Cloud OSS-compatible HTTP server for tests (Python 3.11 standard library).

usage: oss_server.py --dir DIR --access-key AK --secret-key SK [--host 127.0.0.1] [--port 0]
                     [--region REGION] [--max-skew SECONDS] [--min-part-size BYTES] [--verbose]

Prints the port it listens on (one line on stdout) once it accepts connections; `--port 0`
picks a free one. Written from Alibaba's OSS API documentation, independently of the Rust
signers it tests.

Addressing: the bucket comes from the Host header.
  - If the Host's name (its port dropped) is an IP address or `localhost`, the request is
    path-style: `/{bucket}/{key}` (oss2 does this for an IP endpoint).
  - Otherwise it is virtual-hosted: the bucket is the Host's first label and the whole path is
    the key (`Host: nydus.127.0.0.1:PORT` or `Host: nydus.oss.test:PORT`, sent while connecting
    to this server, e.g. with curl `--resolve` or a client's DNS override).
Every bucket exists (names: 3-63 of `a-z 0-9 -`).

Authentication: every request must be signed for --access-key/--secret-key, with V1
(`Authorization: OSS ak:signature`) or V4 (`Authorization: OSS4-HMAC-SHA256 Credential=...`);
otherwise 403 with an OSS XML error (`SignatureDoesNotMatch`, whose body includes the
`StringToSign` and, for V4, the `CanonicalRequest` the server computed; `InvalidAccessKeyId`;
`AccessDenied` for an unsigned request; `RequestTimeTooSkewed` if the request's date is more
than --max-skew seconds (900, as OSS; 0 turns the check off) away from the server's clock).
V4 requests must carry `x-oss-date` and `x-oss-content-sha256` (`UNSIGNED-PAYLOAD`, or the
sha256 of the body, then checked); with --region the credential's region must equal it.

Operations: PutObject, CopyObject (`PUT` with `x-oss-copy-source: /bucket/key`, URL-encoded,
in the same bucket), GetObject (one `Range`, 206), HeadObject, DeleteObject,
InitiateMultipartUpload (`POST ?uploads`), UploadPart (`PUT ?partNumber&uploadId`),
CompleteMultipartUpload (`POST ?uploadId`, the XML part list, or `x-oss-complete-all: yes`),
AbortMultipartUpload (`DELETE ?uploadId`), ListMultipartUploads (`GET ?uploads`; prefix,
key-marker, upload-id-marker, max-uploads, encoding-type=url). Others get 501. Objects answer
`x-oss-hash-crc64ecma` (CRC-64/ECMA-182, decimal) on PUT, part upload, complete, HEAD and GET;
parts other than the last must be at least --min-part-size bytes (100 KiB, as OSS).

Storage: object `key` of `bucket` is the file `DIR/{bucket}/{quote(key, safe='')}` (a blob id
is its own name; `/` becomes `%2F`); its metadata (ETag, CRC, content type) is in
`DIR/.oss-meta/{bucket}/`, multipart uploads in progress in `DIR/.oss-uploads/{upload id}/`.
Request bodies may be sent with Content-Length or chunked.
"""

import argparse
import base64
import calendar
import email.utils
import hashlib
import hmac
import http.server
import ipaddress
import json
import os
import re
import shutil
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape

# --- CRC-64/ECMA-182 (reflected, init and final XOR all ones), as OSS's x-oss-hash-crc64ecma.

_POLY = 0xC96C5795D7870F42
_MASK = (1 << 64) - 1


def _crc_table():
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ _POLY if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _crc_table()


class Crc64:
    def __init__(self):
        self.reg = _MASK

    def update(self, data):
        reg, table = self.reg, _TABLE
        for b in data:
            reg = table[(reg ^ b) & 0xFF] ^ (reg >> 8)
        self.reg = reg

    @property
    def value(self):
        return self.reg ^ _MASK


def _gf2_times(mat, vec):
    total, i = 0, 0
    while vec:
        if vec & 1:
            total ^= mat[i]
        vec >>= 1
        i += 1
    return total


def crc64_combine(crc1, crc2, len2):
    """CRC of A+B from CRC(A), CRC(B) and len(B) (zlib's method: append len2 zero bytes to
    crc1 by repeated squaring of the one-zero-bit operator, then xor crc2)."""
    if len2 == 0:
        return crc1
    odd = [_POLY] + [1 << n for n in range(63)]
    even = [_gf2_times(odd, odd[n]) for n in range(64)]
    odd = [_gf2_times(even, even[n]) for n in range(64)]
    while True:
        even = [_gf2_times(odd, odd[n]) for n in range(64)]
        if len2 & 1:
            crc1 = _gf2_times(even, crc1)
        len2 >>= 1
        if not len2:
            break
        odd = [_gf2_times(even, even[n]) for n in range(64)]
        if len2 & 1:
            crc1 = _gf2_times(odd, crc1)
        len2 >>= 1
        if not len2:
            break
    return crc1 ^ crc2


# --- Signatures ----------------------------------------------------------------------------

# Query parameters V1 signs as sub-resources (OSS API reference, "Include signatures in the
# Authorization header", CanonicalizedResource).
SUB_RESOURCES = frozenset("""
    acl uploads location cors logging website referer lifecycle delete append tagging
    objectMeta uploadId partNumber security-token position img style styleName replication
    replicationProgress replicationLocation cname bucketInfo comp qos live status vod
    startTime endTime symlink x-oss-process response-content-type x-oss-traffic-limit
    response-content-language response-expires response-cache-control
    response-content-disposition response-content-encoding udf udfName udfImage udfId
    udfImageDesc udfApplication udfApplicationLog restore callback callback-var qosInfo
    policy stat encryption versions versioning versionId requestPayment x-oss-request-payer
    sequential inventory inventoryId continuation-token asyncFetch worm wormId wormExtend
    withHashContext x-oss-enable-md5 x-oss-enable-sha1 x-oss-enable-sha256 x-oss-hash-ctx
    x-oss-md5-ctx transferAcceleration regionList cloudboxes x-oss-ac-source-ip
    x-oss-ac-subnet-mask x-oss-ac-vpc-id x-oss-ac-forward-allow metaQuery resourceGroup rtc
    x-oss-async-process responseHeader objectInfo link group accessPoint accessPointPolicy
    publicAccessBlock x-oss-access-point-name x-oss-write-get-object-response
""".split())

UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"


def v4_encode(text, keep_slash):
    """RFC 3986 encoding of the UTF-8 bytes: unreserved characters kept, `/` kept in paths."""
    safe = "-_.~/" if keep_slash else "-_.~"
    return urllib.parse.quote(text, safe=safe)


class AuthError(Exception):
    def __init__(self, code, message, **extra):
        super().__init__(message)
        self.code = code
        self.message = message
        self.extra = extra


class Verifier:
    def __init__(self, access_key, secret_key, region, max_skew):
        self.access_key = access_key
        self.secret_key = secret_key
        self.region = region
        self.max_skew = max_skew

    def verify(self, req):
        auth = req.header("authorization")
        if not auth:
            raise AuthError("AccessDenied", "Anonymous access is forbidden for this operation.")
        if auth.startswith("OSS4-HMAC-SHA256 "):
            return self.verify_v4(req, auth[len("OSS4-HMAC-SHA256 "):])
        if auth.startswith("OSS "):
            return self.verify_v1(req, auth[len("OSS "):])
        raise AuthError("InvalidArgument", "Authorization header is invalid.")

    def check_ak(self, ak):
        if ak != self.access_key:
            raise AuthError("InvalidAccessKeyId", "The OSS Access Key Id you provided does not exist in our records.")

    def check_skew(self, when):
        if self.max_skew and when is not None and abs(time.time() - when) > self.max_skew:
            raise AuthError("RequestTimeTooSkewed", "The difference between the request time and the current time is too large.")

    # V1: base64(HMAC-SHA1(secret, VERB\nContent-MD5\nContent-Type\nDate\n
    #     CanonicalizedOSSHeaders + CanonicalizedResource)).
    def verify_v1(self, req, rest):
        ak, sep, signature = rest.strip().rpartition(":")
        if not sep:
            raise AuthError("InvalidArgument", "Authorization header is invalid.")
        self.check_ak(ak)
        date = req.header("x-oss-date") or req.header("date")
        if not date:
            raise AuthError("AccessDenied", "The request has no Date header.")
        try:
            when = email.utils.parsedate_to_datetime(date).timestamp()
        except (TypeError, ValueError):
            when = None
        self.check_skew(when)
        oss_headers = "".join("%s:%s\n" % (name, value) for name, value in req.canonical_headers(
            lambda name: name.startswith("x-oss-")))
        subs = sorted((k, v) for k, v in req.query if k in SUB_RESOURCES)
        resource = "/%s/%s" % (req.bucket, req.key)
        if subs:
            resource += "?" + "&".join(k + "=" + v if v else k for k, v in subs)
        sts = "\n".join([req.method, req.header("content-md5") or "", req.header("content-type") or "",
                         date.strip(), oss_headers + resource])
        mac = hmac.new(self.secret_key.encode(), sts.encode("utf-8"), hashlib.sha1).digest()
        expected = base64.b64encode(mac).decode()
        if not hmac.compare_digest(expected, signature.strip()):
            raise AuthError("SignatureDoesNotMatch",
                            "The request signature we calculated does not match the signature you provided.",
                            StringToSign=sts, OSSAccessKeyId=ak)
        return "v1"

    # V4: OSS4-HMAC-SHA256 over a canonical request, key HMAC("aliyun_v4"+secret, date)
    #     -> region -> "oss" -> "aliyun_v4_request".
    def verify_v4(self, req, rest):
        fields = {}
        for part in rest.split(","):
            name, sep, value = part.strip().partition("=")
            if not sep:
                raise AuthError("InvalidArgument", "Authorization header is invalid.")
            fields[name.strip()] = value.strip()
        if "Credential" not in fields or "Signature" not in fields:
            raise AuthError("InvalidArgument", "Authorization header must have Credential and Signature.")
        cred = fields["Credential"].split("/")
        if len(cred) != 5 or cred[3] != "oss" or cred[4] != "aliyun_v4_request":
            raise AuthError("InvalidArgument", "Invalid credential in Authorization header.")
        ak, date, region = cred[0], cred[1], cred[2]
        self.check_ak(ak)
        if self.region is not None and region != self.region:
            raise AuthError("SignatureDoesNotMatch", "Invalid signing region in Authorization header.")
        oss_date = req.header("x-oss-date")
        if not oss_date or not re.fullmatch(r"\d{8}T\d{6}Z", oss_date.strip()):
            raise AuthError("AccessDenied", "V4 requests need an x-oss-date header (yyyymmddThhmmssZ).")
        oss_date = oss_date.strip()
        if oss_date[:8] != date:
            raise AuthError("SignatureDoesNotMatch", "The date of the credential is not the date of x-oss-date.")
        self.check_skew(calendar.timegm(time.strptime(oss_date, "%Y%m%dT%H%M%SZ")))
        payload = req.header("x-oss-content-sha256")
        if not payload:
            raise AuthError("AccessDenied", "V4 requests need an x-oss-content-sha256 header.")
        payload = payload.strip()
        additional = []
        if "AdditionalHeaders" in fields:
            additional = fields["AdditionalHeaders"].split(";")
            if any(not h or h != h.lower() for h in additional) or additional != sorted(additional):
                raise AuthError("InvalidArgument", "AdditionalHeaders must be lower-case, sorted, non-empty names.")
        extra = set(additional)

        def signed(name):
            return name.startswith("x-oss-") or name in ("content-type", "content-md5") or name in extra

        headers = "".join("%s:%s\n" % (n, v) for n, v in req.canonical_headers(signed))
        query = sorted((v4_encode(k, False), v4_encode(v, False)) for k, v in req.query)
        canonical = "\n".join([
            req.method,
            v4_encode("/%s/%s" % (req.bucket, req.key), True),
            "&".join(k + "=" + v if v else k for k, v in query),
            headers,
            ";".join(additional),
            payload,
        ])
        scope = "%s/%s/oss/aliyun_v4_request" % (date, region)
        sts = "\n".join(["OSS4-HMAC-SHA256", oss_date, scope,
                         hashlib.sha256(canonical.encode("utf-8")).hexdigest()])
        key = ("aliyun_v4" + self.secret_key).encode()
        for step in (date, region, "oss", "aliyun_v4_request"):
            key = hmac.new(key, step.encode(), hashlib.sha256).digest()
        expected = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, fields["Signature"]):
            raise AuthError("SignatureDoesNotMatch",
                            "The request signature we calculated does not match the signature you provided.",
                            StringToSign=sts, CanonicalRequest=canonical, OSSAccessKeyId=ak)
        if payload != UNSIGNED_PAYLOAD and not re.fullmatch(r"[0-9a-f]{64}", payload):
            raise AuthError("InvalidArgument", "x-oss-content-sha256 must be UNSIGNED-PAYLOAD or a sha256.")
        return "v4"


# --- Requests ------------------------------------------------------------------------------

class OssError(Exception):
    def __init__(self, status, code, message, **extra):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra


BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")


class ParsedRequest:
    """Method, bucket, key, query pairs and headers of one HTTP request."""

    def __init__(self, handler):
        self.method = handler.command
        self.headers = handler.headers
        split = urllib.parse.urlsplit(handler.path)
        self.query = urllib.parse.parse_qsl(split.query, keep_blank_values=True)
        self.params = dict(self.query)
        host = (self.header("host") or "").strip().lower()
        hostname = host
        if host.startswith("["):
            hostname = host[1:host.find("]")] if "]" in host else host
        elif ":" in host:
            hostname = host.rsplit(":", 1)[0]
        raw = split.path or "/"
        if _is_ip_or_localhost(hostname):
            bucket, _, rest = raw.lstrip("/").partition("/")
        else:
            bucket, rest = hostname.split(".", 1)[0], raw[1:]
        self.bucket = bucket
        self.key = urllib.parse.unquote(rest)

    def header(self, name):
        return self.headers.get(name)

    def canonical_headers(self, select):
        """(lower-case name, trimmed value) of the selected headers, sorted; repeated headers
        joined with `,`."""
        merged = {}
        for name, value in self.headers.items():
            lname = name.strip().lower()
            if select(lname):
                merged.setdefault(lname, []).append(value.strip())
        return [(n, ",".join(merged[n])) for n in sorted(merged)]


def _is_ip_or_localhost(hostname):
    if hostname == "localhost":
        return True
    try:
        ipaddress.ip_address(hostname)
        return True
    except ValueError:
        return False


def http_date(ts):
    return email.utils.formatdate(ts, usegmt=True)


def iso8601(ts):
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(ts))


class Store:
    """Objects as files, metadata and multipart uploads beside them."""

    def __init__(self, root, min_part_size):
        self.root = os.path.abspath(root)
        self.min_part_size = min_part_size
        self.lock = threading.Lock()
        os.makedirs(self.root, exist_ok=True)

    def _name(self, key):
        return urllib.parse.quote(key, safe="")

    def data_path(self, bucket, key):
        return os.path.join(self.root, bucket, self._name(key))

    def meta_path(self, bucket, key):
        return os.path.join(self.root, ".oss-meta", bucket, self._name(key) + ".json")

    def upload_dir(self, upload_id):
        if not re.fullmatch(r"[0-9A-F]{32}", upload_id or ""):
            raise OssError(404, "NoSuchUpload", "The specified upload does not exist.", UploadId=upload_id)
        return os.path.join(self.root, ".oss-uploads", upload_id)

    def _tmp(self, directory):
        os.makedirs(directory, exist_ok=True)
        fd, path = tempfile.mkstemp(dir=directory, prefix=".tmp-")
        return os.fdopen(fd, "wb"), path

    def receive(self, body, directory):
        """Writes the body into a temporary file of `directory`: (path, size, md5, crc, sha256)."""
        f, path = self._tmp(directory)
        md5, sha, crc, size = hashlib.md5(), hashlib.sha256(), Crc64(), 0
        try:
            with f:
                for block in body:
                    f.write(block)
                    md5.update(block)
                    sha.update(block)
                    crc.update(block)
                    size += len(block)
        except BaseException:
            os.unlink(path)
            raise
        return path, size, md5.hexdigest(), crc.value, sha.hexdigest()

    def commit_object(self, bucket, key, tmp, meta):
        data = self.data_path(bucket, key)
        mpath = self.meta_path(bucket, key)
        os.makedirs(os.path.dirname(mpath), exist_ok=True)
        with self.lock:
            os.replace(tmp, data)
            with open(mpath + ".tmp", "w") as f:
                json.dump(meta, f)
            os.replace(mpath + ".tmp", mpath)

    def stat(self, bucket, key):
        data = self.data_path(bucket, key)
        with self.lock:
            try:
                with open(self.meta_path(bucket, key)) as f:
                    meta = json.load(f)
                st = os.stat(data)
            except FileNotFoundError:
                raise OssError(404, "NoSuchKey", "The specified key does not exist.", Key=key)
        meta["size"] = st.st_size
        meta["mtime"] = st.st_mtime
        return data, meta

    def delete(self, bucket, key):
        with self.lock:
            for p in (self.data_path(bucket, key), self.meta_path(bucket, key)):
                try:
                    os.unlink(p)
                except FileNotFoundError:
                    pass

    def bucket_dir(self, bucket):
        return os.path.join(self.root, bucket)

    # Multipart uploads.
    def initiate(self, bucket, key, content_type):
        upload_id = uuid.uuid4().hex.upper()
        d = self.upload_dir(upload_id)
        os.makedirs(d)
        info = {"bucket": bucket, "key": key, "initiated": time.time(), "content_type": content_type}
        with open(os.path.join(d, "info.json"), "w") as f:
            json.dump(info, f)
        return upload_id

    def upload_info(self, bucket, key, upload_id):
        d = self.upload_dir(upload_id)
        try:
            with open(os.path.join(d, "info.json")) as f:
                info = json.load(f)
        except FileNotFoundError:
            raise OssError(404, "NoSuchUpload", "The specified upload does not exist.", UploadId=upload_id)
        if info["bucket"] != bucket or (key is not None and info["key"] != key):
            raise OssError(404, "NoSuchUpload", "The specified upload does not exist.", UploadId=upload_id)
        return d, info

    def uploads(self, bucket):
        base = os.path.join(self.root, ".oss-uploads")
        out = []
        for upload_id in os.listdir(base) if os.path.isdir(base) else []:
            try:
                with open(os.path.join(base, upload_id, "info.json")) as f:
                    info = json.load(f)
            except (FileNotFoundError, NotADirectoryError):
                continue
            if info["bucket"] == bucket:
                out.append((info["key"], upload_id, info["initiated"]))
        return sorted(out)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "oss-test-server"

    # Set by main().
    verifier = None
    store = None
    verbose = False

    def handle(self):
        try:
            super().handle()
        except ConnectionError:
            pass  # the client went away between requests

    def log_message(self, fmt, *args):
        if self.verbose:
            sys.stderr.write("oss_server: %s %s\n" % (self.address_string(), fmt % args))

    def do_GET(self):
        self.handle_request()

    def do_HEAD(self):
        self.handle_request()

    def do_PUT(self):
        self.handle_request()

    def do_POST(self):
        self.handle_request()

    def do_DELETE(self):
        self.handle_request()

    # Bodies.
    def body_blocks(self, block=1 << 20):
        """The request body in blocks (Content-Length or chunked), read once."""
        if self.body_state is not None:
            return
        self.body_state = "started"
        if (self.headers.get("transfer-encoding") or "").lower() == "chunked":
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    self.body_state = "done"
                    return
                left = size
                while left:
                    data = self.rfile.read(min(block, left))
                    if not data:
                        raise ConnectionError("body cut short")
                    left -= len(data)
                    yield data
                self.rfile.readline(3)
        left = int(self.headers.get("content-length") or 0)
        while left > 0:
            data = self.rfile.read(min(block, left))
            if not data:
                raise ConnectionError("body cut short")
            left -= len(data)
            yield data
        self.body_state = "done"

    def body_bytes(self, limit=16 << 20):
        out = bytearray()
        for b in self.body_blocks():
            out += b
            if len(out) > limit:
                raise OssError(400, "InvalidArgument", "Request body too large.")
        return bytes(out)

    def drain(self):
        """Reads what is left of the body; a body read halfway cannot be, the connection closes."""
        if self.body_state == "started":
            self.close_connection = True
        for _ in self.body_blocks():
            pass

    # Responses.
    def send(self, status, headers=(), body=b""):
        self.send_response(status)
        self.send_header("x-oss-request-id", self.request_id)
        self.send_header("Date", http_date(time.time()))
        length_set = False
        for name, value in headers:
            self.send_header(name, value)
            length_set |= name.lower() == "content-length"
        if not length_set:
            self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def send_xml(self, status, root_name, children, headers=()):
        body = ['<?xml version="1.0" encoding="UTF-8"?>\n<%s>' % root_name] + children + ["</%s>" % root_name]
        self.send(status, [("Content-Type", "application/xml")] + list(headers), "\n".join(body).encode("utf-8"))

    def send_error_xml(self, status, code, message, extra):
        children = ["  <Code>%s</Code>" % escape(code), "  <Message>%s</Message>" % escape(message),
                    "  <RequestId>%s</RequestId>" % self.request_id,
                    "  <HostId>%s</HostId>" % escape(self.headers.get("host") or "")]
        for name, value in extra.items():
            children.append("  <%s>%s</%s>" % (name, escape(str(value)), name))
        self.send_xml(status, "Error", children)

    def handle_request(self):
        self.request_id = uuid.uuid4().hex[:24].upper()
        self.body_state = None  # None, "started", "done"
        try:
            try:
                req = ParsedRequest(self)
                if not BUCKET_RE.fullmatch(req.bucket):
                    raise OssError(400, "InvalidBucketName", "The specified bucket is not valid.", BucketName=req.bucket)
                try:
                    self.verifier.verify(req)
                except AuthError as e:
                    raise OssError(403, e.code, e.message, **e.extra)
                self.dispatch(req)
            except OssError as e:
                self.drain()
                self.send_error_xml(e.status, e.code, e.message, e.extra)
        except (ConnectionError, ValueError) as e:
            self.log_message("dropped: %s", e)
            self.close_connection = True

    def dispatch(self, req):
        p, m = req.params, req.method
        if not req.key:
            if m == "GET" and "uploads" in p:
                return self.list_uploads(req)
            raise OssError(501, "NotImplemented", "This bucket operation is not implemented here.")
        if m == "POST" and "uploads" in p:
            return self.initiate(req)
        if m == "PUT" and "uploadId" in p and "partNumber" in p:
            return self.upload_part(req)
        if m == "POST" and "uploadId" in p:
            return self.complete(req)
        if m == "DELETE" and "uploadId" in p:
            return self.abort(req)
        if m == "PUT" and req.header("x-oss-copy-source") and not p:
            return self.copy_object(req)
        if m == "PUT" and not p.keys() & {"uploadId", "partNumber", "acl", "tagging", "symlink"}:
            return self.put_object(req)
        if m in ("GET", "HEAD") and not p.keys() & {"uploadId", "acl", "tagging", "symlink", "objectMeta"}:
            return self.get_object(req)
        if m == "DELETE" and not p:
            return self.delete_object(req)
        raise OssError(501, "NotImplemented", "This object operation is not implemented here.")

    def receive_checked(self, req, directory):
        tmp, size, md5, crc, sha = self.store.receive(self.body_blocks(), directory)
        claimed = (req.header("x-oss-content-sha256") or "").strip()
        problem = None
        if claimed and claimed != UNSIGNED_PAYLOAD and claimed != sha:
            problem = OssError(400, "InvalidDigest", "The x-oss-content-sha256 you specified did not match what we received.")
        content_md5 = (req.header("content-md5") or "").strip()
        if content_md5 and content_md5 != base64.b64encode(bytes.fromhex(md5)).decode():
            problem = OssError(400, "InvalidDigest", "The Content-MD5 you specified was invalid.")
        if problem:
            os.unlink(tmp)
            raise problem
        return tmp, size, md5, crc

    def put_object(self, req):
        tmp, size, md5, crc = self.receive_checked(req, self.store.bucket_dir(req.bucket))
        etag = '"%s"' % md5.upper()
        meta = {"etag": etag, "crc64": crc, "content_type": req.header("content-type") or "application/octet-stream",
                "type": "Normal"}
        self.store.commit_object(req.bucket, req.key, tmp, meta)
        self.send(200, [("ETag", etag), ("x-oss-hash-crc64ecma", str(crc)),
                        ("Content-MD5", base64.b64encode(bytes.fromhex(md5)).decode())])

    def copy_object(self, req):
        self.drain()
        source = urllib.parse.unquote(req.header("x-oss-copy-source").strip())
        bucket, _, key = source.lstrip("/").partition("/")
        if bucket != req.bucket or not key:
            raise OssError(400, "InvalidArgument", "Copy Source must mention the source bucket and key: /sourcebucket/sourcekey.")
        src, meta = self.store.stat(bucket, key)
        f, tmp = self.store._tmp(self.store.bucket_dir(req.bucket))
        with f, open(src, "rb") as r:
            shutil.copyfileobj(r, f, 1 << 20)
        new = {"etag": meta["etag"], "crc64": meta["crc64"], "content_type": meta["content_type"],
               "type": meta["type"]}
        self.store.commit_object(req.bucket, req.key, tmp, new)
        self.send_xml(200, "CopyObjectResult", ["  <ETag>%s</ETag>" % escape(meta["etag"]),
                                                "  <LastModified>%s</LastModified>" % time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())],
                      [("x-oss-hash-crc64ecma", str(meta["crc64"]))])

    def object_headers(self, meta):
        return [("ETag", meta["etag"]), ("x-oss-hash-crc64ecma", str(meta["crc64"])),
                ("Last-Modified", http_date(meta["mtime"])), ("Content-Type", meta["content_type"]),
                ("x-oss-object-type", meta["type"]), ("Accept-Ranges", "bytes")]

    def get_object(self, req):
        path, meta = self.store.stat(req.bucket, req.key)
        size = meta["size"]
        start, end = 0, size - 1
        status = 200
        rng = parse_range(req.header("range"), size)
        if rng == "unsatisfiable":
            raise OssError(416, "InvalidRange", "The requested range cannot be satisfied.", ActualObjectSize=size)
        headers = self.object_headers(meta)
        if rng is not None:
            start, end = rng
            status = 206
            headers.append(("Content-Range", "bytes %d-%d/%d" % (start, end, size)))
        length = max(0, end - start + 1)
        headers.append(("Content-Length", str(length)))
        self.send(status, headers)
        if self.command == "HEAD":
            return
        with open(path, "rb") as f:
            f.seek(start)
            left = length
            while left:
                data = f.read(min(1 << 20, left))
                if not data:
                    raise ConnectionError("object shrank while read")
                self.wfile.write(data)
                left -= len(data)

    def delete_object(self, req):
        self.store.delete(req.bucket, req.key)
        self.send(204)

    def initiate(self, req):
        self.drain()
        upload_id = self.store.initiate(req.bucket, req.key, req.header("content-type") or "application/octet-stream")
        self.send_xml(200, "InitiateMultipartUploadResult", [
            "  <Bucket>%s</Bucket>" % escape(req.bucket), "  <Key>%s</Key>" % escape(req.key),
            "  <UploadId>%s</UploadId>" % upload_id])

    def upload_part(self, req):
        d, _ = self.store.upload_info(req.bucket, req.key, req.params["uploadId"])
        try:
            number = int(req.params["partNumber"])
        except ValueError:
            number = 0
        if not 1 <= number <= 10000:
            raise OssError(400, "InvalidArgument", "Part number must be an integer between 1 and 10000.")
        tmp, size, md5, crc = self.receive_checked(req, d)
        etag = '"%s"' % md5.upper()
        os.replace(tmp, os.path.join(d, "part-%05d" % number))
        with open(os.path.join(d, "part-%05d.json" % number), "w") as f:
            json.dump({"etag": etag, "crc64": crc, "size": size}, f)
        self.send(200, [("ETag", etag), ("x-oss-hash-crc64ecma", str(crc))])

    def parts(self, d):
        out = {}
        for name in os.listdir(d):
            m = re.fullmatch(r"part-(\d{5})\.json", name)
            if m:
                with open(os.path.join(d, name)) as f:
                    out[int(m.group(1))] = json.load(f)
        return out

    def complete(self, req):
        upload_id = req.params["uploadId"]
        d, info = self.store.upload_info(req.bucket, req.key, upload_id)
        body = self.body_bytes()
        have = self.parts(d)
        if (req.header("x-oss-complete-all") or "").strip().lower() == "yes":
            if body.strip():
                raise OssError(400, "InvalidArgument", "x-oss-complete-all takes no part list.")
            wanted = [(n, have[n]["etag"]) for n in sorted(have)]
        else:
            try:
                root = ET.fromstring(body)
                wanted = [(int(p.findtext("PartNumber")), (p.findtext("ETag") or "").strip())
                          for p in root.findall("Part")]
            except (ET.ParseError, TypeError, ValueError):
                raise OssError(400, "MalformedXML", "The XML you provided was not well-formed.")
        if not wanted:
            raise OssError(400, "InvalidPart", "The part list is empty.")
        numbers = [n for n, _ in wanted]
        if numbers != sorted(set(numbers)):
            raise OssError(400, "InvalidPartOrder", "The list of parts was not in ascending order.")
        for i, (n, etag) in enumerate(wanted):
            part = have.get(n)
            if part is None or part["etag"].strip('"').upper() != etag.strip('"').upper():
                raise OssError(400, "InvalidPart", "One or more of the specified parts could not be found.", PartNumber=n)
            if i + 1 < len(wanted) and part["size"] < self.store.min_part_size:
                raise OssError(400, "EntityTooSmall", "Your proposed upload is smaller than the minimum allowed size.", PartNumber=n)
        f, tmp = self.store._tmp(self.store.bucket_dir(req.bucket))
        crc, digests = 0, b""
        with f:
            for n, _ in wanted:
                with open(os.path.join(d, "part-%05d" % n), "rb") as src:
                    while True:
                        data = src.read(1 << 20)
                        if not data:
                            break
                        f.write(data)
                crc = crc64_combine(crc, have[n]["crc64"], have[n]["size"])
                digests += bytes.fromhex(have[n]["etag"].strip('"'))
        etag = '"%s-%d"' % (hashlib.md5(digests).hexdigest().upper(), len(wanted))
        meta = {"etag": etag, "crc64": crc, "content_type": info["content_type"], "type": "Multipart"}
        self.store.commit_object(req.bucket, req.key, tmp, meta)
        remove_tree(d)
        host = req.header("host") or ""
        self.send_xml(200, "CompleteMultipartUploadResult", [
            "  <Location>http://%s/%s</Location>" % (escape(host), escape(urllib.parse.quote(req.key))),
            "  <Bucket>%s</Bucket>" % escape(req.bucket), "  <Key>%s</Key>" % escape(req.key),
            "  <ETag>%s</ETag>" % escape(etag)], [("ETag", etag), ("x-oss-hash-crc64ecma", str(crc))])

    def abort(self, req):
        d, _ = self.store.upload_info(req.bucket, req.key, req.params["uploadId"])
        self.drain()
        remove_tree(d)
        self.send(204)

    def list_uploads(self, req):
        self.drain()
        p = req.params
        prefix = p.get("prefix", "")
        key_marker = p.get("key-marker", "")
        id_marker = p.get("upload-id-marker", "")
        try:
            max_uploads = int(p.get("max-uploads") or 1000)
        except ValueError:
            raise OssError(400, "InvalidArgument", "max-uploads is not a number.")
        max_uploads = max(1, min(max_uploads, 1000))
        url = p.get("encoding-type") == "url"
        enc = (lambda s: urllib.parse.quote(s, safe="")) if url else (lambda s: s)
        items = []
        for key, upload_id, initiated in self.store.uploads(req.bucket):
            if not key.startswith(prefix):
                continue
            if key_marker and (key < key_marker or (key == key_marker and (not id_marker or upload_id <= id_marker))):
                continue
            items.append((key, upload_id, initiated))
        truncated = len(items) > max_uploads
        items = items[:max_uploads]
        children = ["  <Bucket>%s</Bucket>" % escape(req.bucket),
                    "  <KeyMarker>%s</KeyMarker>" % escape(enc(key_marker)),
                    "  <UploadIdMarker>%s</UploadIdMarker>" % escape(id_marker),
                    "  <NextKeyMarker>%s</NextKeyMarker>" % escape(enc(items[-1][0]) if truncated else ""),
                    "  <NextUploadIdMarker>%s</NextUploadIdMarker>" % (items[-1][1] if truncated else ""),
                    "  <Delimiter></Delimiter>",
                    "  <Prefix>%s</Prefix>" % escape(enc(prefix)),
                    "  <MaxUploads>%d</MaxUploads>" % max_uploads,
                    "  <IsTruncated>%s</IsTruncated>" % ("true" if truncated else "false")]
        if url:
            children.append("  <EncodingType>url</EncodingType>")
        for key, upload_id, initiated in items:
            children.append("  <Upload><Key>%s</Key><UploadId>%s</UploadId><Initiated>%s</Initiated></Upload>"
                            % (escape(enc(key)), upload_id, iso8601(initiated)))
        self.send_xml(200, "ListMultipartUploadsResult", children)


def parse_range(value, size):
    """(start, end) of a single `bytes=` range, None to send the whole object (no header or one
    OSS ignores: malformed, several ranges), or "unsatisfiable"."""
    if not value:
        return None
    m = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", value)
    if not m or (not m.group(1) and not m.group(2)):
        return None
    if not m.group(1):
        n = int(m.group(2))
        if n == 0:
            return "unsatisfiable"
        return (max(0, size - n), size - 1) if size else "unsatisfiable"
    start = int(m.group(1))
    end = int(m.group(2)) if m.group(2) else size - 1
    if end < start:
        return None
    if start >= size:
        return "unsatisfiable"
    return start, min(end, size - 1)


def remove_tree(d):
    for name in os.listdir(d):
        os.unlink(os.path.join(d, name))
    os.rmdir(d)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", required=True, help="where objects are stored")
    ap.add_argument("--access-key", required=True)
    ap.add_argument("--secret-key", required=True)
    ap.add_argument("--host", default="127.0.0.1", help="address to listen on")
    ap.add_argument("--port", type=int, default=0, help="0 picks a free port")
    ap.add_argument("--region", default=None, help="V4 credentials must name this region")
    ap.add_argument("--max-skew", type=int, default=900, help="seconds; 0 turns the check off")
    ap.add_argument("--min-part-size", type=int, default=100 * 1024,
                    help="smallest part but the last (OSS: 100 KiB)")
    ap.add_argument("--verbose", action="store_true", help="log requests to stderr")
    args = ap.parse_args()

    Handler.verifier = Verifier(args.access_key, args.secret_key, args.region, args.max_skew)
    Handler.store = Store(args.dir, args.min_part_size)
    Handler.verbose = args.verbose
    server = http.server.ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
