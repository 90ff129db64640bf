#!/usr/bin/env python3
"""A loopback HTTP proxy in front of an object store (s3s-fs, tests/oss_server.py) that can
inject faults, for the backend tests (Python 3 standard library).

usage: object_proxy.py UPSTREAM_HOST:PORT [RULE...]

Prints the port it listens on (127.0.0.1) on stdout, then serves until killed. Requests are
forwarded as they came (method, path, query, headers including Host, body), so signatures
stay valid; requests in absolute form (`GET http://host/path`, as sent to a forward proxy) are
forwarded to the host they name, which makes it usable as the `proxy.url` of a backend (the
registry's token service is then reached through it too). Each request is
logged on stderr as `METHOD PATH -> STATUS|drop`.

A RULE is `METHOD:SUBSTRING:WHICH:ACTION`: the requests of METHOD whose path (with query)
contains SUBSTRING, counted from 1; WHICH is a number (that one request) or `*` (all of them);
ACTION is an HTTP status such as `500` or `403` (answered after the body is read), `drop` (the connection is closed
after half the body, without an answer) or `cut` (forwarded, then the answer's body is cut
off halfway and the connection closed). Example: `PUT:partNumber=2:1:drop`.
"""

import http.client
import http.server
import sys
import threading
import urllib.parse

UPSTREAM = sys.argv[1]
RULES = []
for r in sys.argv[2:]:
    method, sub, which, action = r.split(":")
    RULES.append({"method": method, "sub": sub, "which": which, "action": action, "seen": 0})
lock = threading.Lock()
HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "content-length"}


def fault(method, path):
    with lock:
        for r in RULES:
            if r["method"] == method and r["sub"] in path:
                r["seen"] += 1
                if r["which"] == "*" or int(r["which"]) == r["seen"]:
                    return r["action"]
    return None


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def body(self, limit=None):
        if "chunked" in self.headers.get("Transfer-Encoding", ""):
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length", 0))
        return self.rfile.read(n if limit is None else min(n, limit))

    def handle_any(self):
        path = self.path
        upstream = UPSTREAM
        if path.startswith("http://") or path.startswith("https://"):
            u = urllib.parse.urlsplit(path)
            path = u.path + ("?" + u.query if u.query else "")
            upstream = u.netloc
        action = fault(self.command, path)
        if action == "drop":
            n = int(self.headers.get("Content-Length", 0))
            self.body(limit=n // 2)
            print(f"{self.command} {path} -> drop", file=sys.stderr, flush=True)
            self.close_connection = True
            self.connection.shutdown(2)
            return
        data = self.body()
        if action is not None and action.isdigit():
            print(f"{self.command} {path} -> {action} (injected)", file=sys.stderr, flush=True)
            msg = b"<Error><Code>Injected</Code><Message>injected</Message></Error>"
            self.send_response(int(action))
            self.send_header("Content-Length", str(len(msg)))
            self.end_headers()
            self.wfile.write(msg)
            return
        conn = http.client.HTTPConnection(upstream, timeout=120)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
        headers["Content-Length"] = str(len(data))
        conn.putrequest(self.command, path, skip_host=True, skip_accept_encoding=True)
        for k, v in headers.items():
            conn.putheader(k, v)
        conn.endheaders()
        if data:
            conn.send(data)
        resp = conn.getresponse()
        payload = resp.read()
        print(f"{self.command} {path} -> {resp.status}", file=sys.stderr, flush=True)
        self.send_response_only(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in HOP:
                self.send_header(k, v)
        if self.command == "HEAD":
            self.send_header("Content-Length", resp.getheader("Content-Length", "0"))
        else:
            self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            if action == "cut":
                self.wfile.write(payload[: len(payload) // 2])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(2)
                return
            self.wfile.write(payload)
        conn.close()

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = handle_any


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True


srv = Server(("127.0.0.1", 0), Handler)
print(srv.server_address[1], flush=True)
srv.serve_forever()
