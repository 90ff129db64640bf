#!/usr/bin/env python3
"""A loopback HTTP proxy in front of a registry that logs what passes and can play dead.

usage: count_proxy.py <registry host:port> <log file> <control file>

Prints the port it listens on (127.0.0.1), then serves until killed. Every request is
forwarded as is; one line per request is appended to the log: method, path, Range header
("-" without), status, body bytes sent back. While the control file holds "down", every
request has its connection dropped without an answer (a registry that went away).
"""

import http.client
import http.server
import sys
import threading

UPSTREAM, LOG, CTL = sys.argv[1], sys.argv[2], sys.argv[3]
lock = threading.Lock()
HOP = {"connection", "transfer-encoding", "keep-alive", "content-length"}


def down():
    try:
        with open(CTL) as f:
            return f.read().strip() == "down"
    except OSError:
        return False


def log(line):
    with lock, open(LOG, "a") as f:
        f.write(line + "\n")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def handle_any(self):
        n = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(n) if n else b""
        rng = self.headers.get("Range") or "-"
        if down():
            log(f"{self.command} {self.path} {rng} dropped 0")
            self.close_connection = True
            self.connection.close()
            return
        conn = http.client.HTTPConnection(UPSTREAM, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
        if data or self.command in ("PUT", "POST", "PATCH"):
            headers["Content-Length"] = str(len(data))
        conn.request(self.command, self.path, body=data, headers=headers)
        r = conn.getresponse()
        payload = r.read()
        sent = 0 if self.command == "HEAD" else len(payload)
        # Logged before the answer goes out: a client that has its bytes finds them counted.
        log(f"{self.command} {self.path} {rng} {r.status} {sent}")
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
