#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""as_double.py: an OAuth 2.1 authorization server double for the resource-server tests.

Python 3 standard library and the `openssl` command only. At start it makes, in DIR, a CA and a
TLS certificate for 127.0.0.1 (ca.crt is what the daemon trusts), an RSA key (kid r1) and an EC
P-256 key (kid e1), then serves over TLS on 127.0.0.1 (port written to DIR/as.port):

  GET  /.well-known/oauth-authorization-server  RFC 8414 metadata (404 with --oidc-only)
  GET  /.well-known/openid-configuration        OpenID discovery
  GET  /jwks                                    the published keys
  POST /token        client_credentials (client_secret_basic or _post), RFC 8707 `resource`:
                     a JWT with aud = resource and the granted scope
  POST /introspect   RFC 7662, client_secret_basic with the resource server's credentials
  POST /__double/sign     {alg, kid, claims, header?}: a token signed as asked (RS256, PS256,
                          ES256; alg none; HS256 keyed with the PEM public key of r1)
  POST /__double/rotate   publish a new RSA key (kid r2, r3, ...) and sign with it on request
  GET  /__double/stats    {"jwks": N, "metadata": N, "introspect": N, "token": N}

No secret here is real: client secrets are fixed test strings, keys are made at each start.
"""
import argparse
import base64
import hashlib
import hmac
import http.server
import json
import os
import signal
import socketserver
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse

CLIENTS = {
    # client_id: (secret, scopes it may get)
    "agent-cc": ("agent-cc-secret-not-real", "mcp:tools tokens:read"),
    "narrow-cc": ("narrow-cc-secret-not-real", "tokens:read"),
}
RS_CLIENT = ("naftikod-rs", "rs-secret-not-real")  # introspection credentials


def b64u(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def run(*args, data=None):
    return subprocess.run(args, input=data, capture_output=True, check=True).stdout


class Keys:
    def __init__(self, d):
        self.dir = d
        self.keys = {}  # kid -> (kind, pem path)
        self.lock = threading.Lock()
        self.next_rsa = 2
        self.add("r1", "rsa")
        self.add("e1", "ec")

    def add(self, kid, kind):
        path = os.path.join(self.dir, "key-%s.pem" % kid)
        if kind == "rsa":
            run("openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                "-out", path)
        else:
            run("openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
                "ec_paramgen_curve:P-256", "-out", path)
        with self.lock:
            self.keys[kid] = (kind, path)

    def rotate(self):
        with self.lock:
            kid = "r%d" % self.next_rsa
            self.next_rsa += 1
        self.add(kid, "rsa")
        return kid

    def jwk(self, kid):
        kind, path = self.keys[kid]
        if kind == "rsa":
            mod = run("openssl", "rsa", "-in", path, "-noout", "-modulus").decode()
            n = bytes.fromhex(mod.strip().split("=", 1)[1])
            return {"kty": "RSA", "kid": kid, "use": "sig", "n": b64u(n), "e": "AQAB"}
        der = run("openssl", "pkey", "-in", path, "-pubout", "-outform", "DER")
        pt = der[-65:]
        return {"kty": "EC", "kid": kid, "use": "sig", "crv": "P-256", "alg": "ES256",
                "x": b64u(pt[1:33]), "y": b64u(pt[33:])}

    def jwks(self):
        with self.lock:
            kids = list(self.keys)
        return {"keys": [self.jwk(k) for k in kids]}

    def public_pem(self, kid):
        return run("openssl", "pkey", "-in", self.keys[kid][1], "-pubout")


def der_to_raw(der):
    """ECDSA DER SEQUENCE{INTEGER r, INTEGER s} -> r||s, 32 bytes each."""
    i = 2 if der[1] < 0x80 else 3
    out = b""
    for _ in range(2):
        assert der[i] == 2
        n = der[i + 1]
        v = der[i + 2:i + 2 + n].lstrip(b"\0")
        out += v.rjust(32, b"\0")
        i += 2 + n
    return out


def sign(keys, alg, kid, claims, header=None):
    h = {"alg": alg, "typ": "at+jwt"}
    if kid is not None:
        h["kid"] = kid
    if header:
        h.update(header)
    data = (b64u(json.dumps(h, separators=(",", ":")).encode()) + "." +
            b64u(json.dumps(claims, separators=(",", ":")).encode()))
    if alg == "none":
        return data + "."
    if alg == "HS256":  # the classic confusion: the public key as an HMAC secret
        secret = keys.public_pem(kid if kid in keys.keys else "r1")
        return data + "." + b64u(hmac.new(secret, data.encode(), hashlib.sha256).digest())
    # a kid the double does not publish (a forged or stale one) still gets a real signature
    kind, path = keys.keys.get(kid) or keys.keys["e1" if alg == "ES256" else "r1"]
    args = ["openssl", "dgst", "-sha256", "-sign", path]
    if alg == "PS256":
        args += ["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:-1"]
    sig = run(*args, data=data.encode())
    if alg == "ES256":
        sig = der_to_raw(sig)
    return data + "." + b64u(sig)


class State:
    def __init__(self, args, keys):
        self.args = args
        self.keys = keys
        self.issuer = None
        self.stats = {"jwks": 0, "metadata": 0, "introspect": 0, "token": 0}
        self.issued = {}  # token -> claims (for introspection)
        self.lock = threading.Lock()

    def count(self, what):
        with self.lock:
            self.stats[what] += 1


def client_auth(handler, form):
    """(client_id, secret) from client_secret_basic or client_secret_post."""
    h = handler.headers.get("Authorization", "")
    if h.startswith("Basic "):
        cid, _, sec = base64.b64decode(h[6:]).decode().partition(":")
        return urllib.parse.unquote(cid), urllib.parse.unquote(sec)
    return form.get("client_id", [""])[0], form.get("client_secret", [""])[0]


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *a):
        sys.stderr.write("as-double: %s %s\n" % (self.address_string(), fmt % a))

    def reply(self, status, obj, ctype="application/json"):
        body = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def metadata(self):
        st = self.server.state
        return {
            "issuer": st.issuer,
            "jwks_uri": st.issuer + "/jwks",
            # the SDK's schema requires it; the double serves no interactive grant
            "authorization_endpoint": st.issuer + "/authorize",
            "token_endpoint": st.issuer + "/token",
            "introspection_endpoint": st.issuer + "/introspect",
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic",
                                                      "client_secret_post"],
            "response_types_supported": ["code"],
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": ["mcp:tools", "tokens:read"],
        }

    def do_GET(self):
        st = self.server.state
        if self.path == "/.well-known/oauth-authorization-server":
            if st.args.oidc_only:
                return self.reply(404, {"error": "not_found"})
            st.count("metadata")
            return self.reply(200, self.metadata())
        if self.path == "/.well-known/openid-configuration":
            st.count("metadata")
            m = self.metadata()
            m["subject_types_supported"] = ["public"]
            m["id_token_signing_alg_values_supported"] = ["RS256"]
            return self.reply(200, m)
        if self.path == "/jwks":
            st.count("jwks")
            return self.reply(200, st.keys.jwks())
        if self.path == "/__double/stats":
            with st.lock:
                return self.reply(200, dict(st.stats))
        self.reply(404, {"error": "not_found"})

    def do_POST(self):
        st = self.server.state
        raw = self.body()
        if self.path == "/__double/sign":
            req = json.loads(raw)
            tok = sign(st.keys, req["alg"], req.get("kid"), req["claims"], req.get("header"))
            return self.reply(200, tok.encode(), "text/plain")
        if self.path == "/__double/rotate":
            return self.reply(200, {"kid": st.keys.rotate()})
        form = urllib.parse.parse_qs(raw.decode(), keep_blank_values=True)
        if self.path == "/token":
            st.count("token")
            cid, sec = client_auth(self, form)
            if cid not in CLIENTS or not hmac.compare_digest(CLIENTS[cid][0], sec):
                return self.reply(401, {"error": "invalid_client"})
            if form.get("grant_type", [""])[0] != "client_credentials":
                return self.reply(400, {"error": "unsupported_grant_type"})
            allowed = CLIENTS[cid][1].split()
            asked = form.get("scope", [" ".join(allowed)])[0].split()
            scope = " ".join(s for s in asked if s in allowed)
            resource = form.get("resource", [None])[0]
            now = int(time.time())
            claims = {"iss": st.issuer, "sub": cid, "client_id": cid, "scope": scope,
                      "iat": now, "exp": now + 600, "jti": b64u(os.urandom(9))}
            if resource:
                claims["aud"] = resource
            tok = sign(st.keys, "RS256", "r1", claims)
            with st.lock:
                st.issued[tok] = claims
            return self.reply(200, {"access_token": tok, "token_type": "Bearer",
                                    "expires_in": 600, "scope": scope})
        if self.path == "/introspect":
            st.count("introspect")
            cid, sec = client_auth(self, form)
            if (cid, sec) != RS_CLIENT:
                return self.reply(401, {"error": "invalid_client"})
            tok = form.get("token", [""])[0]
            with st.lock:
                claims = st.issued.get(tok)
            if claims is None or claims["exp"] < time.time():
                return self.reply(200, {"active": False})
            ans = dict(claims)
            ans["active"] = True
            ans["token_type"] = "Bearer"
            return self.reply(200, ans)
        if self.path == "/__double/issue":
            # an opaque token for introspection tests: {claims}
            claims = json.loads(raw)
            tok = b64u(os.urandom(24))
            with st.lock:
                st.issued[tok] = claims
            return self.reply(200, tok.encode(), "text/plain")
        self.reply(404, {"error": "not_found"})


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


def make_tls(d):
    ca_key, ca_crt = os.path.join(d, "ca.key"), os.path.join(d, "ca.crt")
    key, csr, crt = (os.path.join(d, n) for n in ("as.key", "as.csr", "as.crt"))
    ext = os.path.join(d, "as.ext")
    run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes", "-days", "2", "-subj", "/CN=naftikod test AS CA", "-keyout", ca_key,
        "-out", ca_crt)
    run("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-subj", "/CN=127.0.0.1", "-keyout", key, "-out", csr)
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run("openssl", "x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key,
        "-CAcreateserial", "-days", "2", "-extfile", ext, "-out", crt)
    return crt, key


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--oidc-only", action="store_true",
                    help="answer 404 to RFC 8414 metadata (OpenID discovery only)")
    args = ap.parse_args()
    crt, key = make_tls(args.dir)
    keys = Keys(args.dir)
    srv = Server(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(crt, key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    srv.state = State(args, keys)
    port = srv.server_address[1]
    srv.state.issuer = "https://127.0.0.1:%d" % port
    tmp = os.path.join(args.dir, "as.port.tmp")
    with open(tmp, "w") as f:
        f.write("%d\n" % port)
    os.rename(tmp, os.path.join(args.dir, "as.port"))
    # SIGTERM is how the tests stop it: a clean exit, as they expect of every server
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    srv.serve_forever()


if __name__ == "__main__":
    main()
