#!/usr/bin/env python3
"""A loopback bearer-token service for docker-registry's `auth: token` mode.

usage: token_server.py <key.pem> <cert.pem> <issuer> <service> <user> <password>

Prints its port, then answers GET /token?service=..&scope=.. for the one account (HTTP basic
auth) with a JWT (RS256, signed by `openssl dgst`, the certificate in the x5c header) granting
the asked actions; wrong or missing credentials get 401.

Environment: TOKEN_TTL, the seconds a token is valid (default 300; docker-registry allows 60 s
of clock skew, so -57 makes tokens that it refuses 3 s after they are issued); TOKEN_LOG, a
file that gets one line per token issued: its scope.
"""

import os

import base64
import http.server
import json
import subprocess
import sys
import time
import urllib.parse

KEY, CERT, ISSUER, SERVICE, USER, PASSWORD = sys.argv[1:7]


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def cert_der():
    pem = open(CERT).read()
    body = "".join(l for l in pem.splitlines() if "-----" not in l)
    return body  # already standard base64 of the DER


def sign(payload):
    header = {"typ": "JWT", "alg": "RS256", "x5c": [cert_der()]}
    signing_input = (b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(payload).encode())).encode()
    sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", KEY], input=signing_input,
                         capture_output=True, check=True).stdout
    return signing_input.decode() + "." + b64url(sig)


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, fmt, *args):
        pass

    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        q = urllib.parse.parse_qs(url.query)
        auth = self.headers.get("Authorization", "")
        want = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        if url.path != "/token" or auth != want:
            self.send_response(401)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        access = []
        for scope in q.get("scope", []):
            for one in scope.split(" "):
                kind, name, actions = one.split(":")
                access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        ttl = int(os.environ.get("TOKEN_TTL", "300"))
        if os.environ.get("TOKEN_LOG"):
            with open(os.environ["TOKEN_LOG"], "a") as log:
                log.write(" ".join(q.get("scope", [])) + "\n")
        token = sign({"iss": ISSUER, "sub": USER, "aud": q.get("service", [SERVICE])[0],
                      "exp": now + ttl, "nbf": now - 10, "iat": now, "jti": str(time.time_ns()),
                      "access": access})
        body = json.dumps({"token": token, "access_token": token, "expires_in": max(ttl, 1)}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
