#!/usr/bin/env python3
"""A loopback HTTP proxy in front of a registry that injects upload faults.

usage: fault_proxy.py <registry host:port> <mode>

Prints the port it listens on (127.0.0.1), then serves until killed. Modes:
  once    the first blob upload PUT gets HTTP 500, the second has its connection dropped
          without an answer, the first chunk PATCH has its connection dropped before it is
          forwarded, the third is forwarded but its answer is lost; the rest pass
  always  every blob upload PUT and PATCH gets HTTP 500
Every request is forwarded as is (the Host header too, so the registry's Location headers
point back here); faults are counted in the log on stderr.
"""

import http.client
import http.server
import sys
import threading

UPSTREAM = sys.argv[1]
MODE = sys.argv[2]
lock = threading.Lock()
seen = {"PUT": 0, "PATCH": 0}
HOP = {"connection", "transfer-encoding", "keep-alive", "content-length"}


def fault(method, path):
    """None, "500" or "drop" for this request."""
    if "/blobs/uploads/" not in path or method not in seen:
        return None
    with lock:
        seen[method] += 1
        n = seen[method]
    if MODE == "always":
        return "500"
    if method == "PUT" and n == 1:
        return "500"
    if method == "PUT" and n == 2:
        return "drop"
    if method == "PATCH" and n == 1:
        return "drop"
    if method == "PATCH" and n == 3:
        return "lose"
    return None


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", ""):
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def handle_any(self):
        data = self.body()
        f = fault(self.command, self.path)
        if f == "drop":
            sys.stderr.write(f"fault: dropped {self.command} {self.path}\n")
            self.close_connection = True
            self.connection.close()
            return
        if f == "500":
            sys.stderr.write(f"fault: 500 for {self.command} {self.path}\n")
            msg = b'{"errors":[{"code":"UNKNOWN","message":"injected fault"}]}'
            self.send_response(500)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(msg)))
            self.end_headers()
            self.wfile.write(msg)
            return
        conn = http.client.HTTPConnection(UPSTREAM, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
        if data or self.command in ("PUT", "POST", "PATCH"):
            headers["Content-Length"] = str(len(data))
        conn.request(self.command, self.path, body=data, headers=headers)
        r = conn.getresponse()
        payload = r.read()
        if f == "lose":
            sys.stderr.write(f"fault: lost the answer to {self.command} {self.path}\n")
            self.close_connection = True
            self.connection.close()
            return
        self.send_response(r.status)
        for k, v in r.getheaders():
            if k.lower() not in HOP:
                self.send_header(k, v)
        if self.command == "HEAD":
            self.send_header("Content-Length", r.getheader("Content-Length") or "0")
            self.end_headers()
        else:
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        conn.close()

    do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = handle_any


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
