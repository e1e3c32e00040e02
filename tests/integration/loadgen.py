#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""loadgen.py: a bounded HTTP GET load generator for the serve integration tests.

usage: loadgen.py PORT SECONDS THREADS OUT.json PATH [PATH...]
(environment: LOADGEN_AUTHORIZATION, when set, is sent as the Authorization header)

Each thread sends GETs (one connection per request, so a closed listener is seen as a refused
connection, not as a broken keep-alive) round-robin over PATHs until SECONDS have passed, or until
the listener refuses connections after having answered some (the daemon is gone). It writes
{"ok": N, "status": {"200": N, ...}, "failed": N, "refused": N, "errors": [...]} to OUT.json:
  ok       complete responses with status 200
  failed   a response was cut short (status line without its whole body) or a status other
           than 200 arrived
  refused  the connection was refused or reset before any byte of a response (not accepted)
"""
import http.client
import json
import os
import sys
import threading
import time

port = int(sys.argv[1])
seconds = float(sys.argv[2])
threads = int(sys.argv[3])
out = sys.argv[4]
paths = sys.argv[5:]
headers = {"Connection": "close"}
if os.environ.get("LOADGEN_AUTHORIZATION"):
    headers["Authorization"] = os.environ["LOADGEN_AUTHORIZATION"]
lock = threading.Lock()
res = {"ok": 0, "status": {}, "failed": 0, "refused": 0, "errors": []}
deadline = time.monotonic() + seconds


def note(key, err=None):
    with lock:
        res[key] += 1
        if err is not None and len(res["errors"]) < 20:
            res["errors"].append(err)


def worker(k):
    i = k
    refused_in_row = 0
    while time.monotonic() < deadline and refused_in_row < 50:
        path = paths[i % len(paths)]
        i += 1
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
        try:
            try:
                conn.connect()
                conn.request("GET", path, headers=headers)
                resp = conn.getresponse()
            except (ConnectionRefusedError, ConnectionResetError, BrokenPipeError,
                    http.client.RemoteDisconnected):
                note("refused")
                refused_in_row += 1
                time.sleep(0.02)
                continue
            refused_in_row = 0
            try:
                body = resp.read()
            except Exception as e:  # IncompleteRead, reset after the status line
                note("failed", "%s %s: body cut short: %r" % (path, resp.status, e))
                continue
            with lock:
                key = str(resp.status)
                res["status"][key] = res["status"].get(key, 0) + 1
            if resp.status == 200:
                try:
                    json.loads(body)
                except ValueError:
                    note("failed", "%s: 200 with a body that is not JSON" % path)
                    continue
                note("ok")
            else:
                note("failed", "%s: status %d: %s" % (path, resp.status, body[:200]))
        except Exception as e:
            note("failed", "%s: %r" % (path, e))
        finally:
            conn.close()


ts = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
for t in ts:
    t.start()
for t in ts:
    t.join()
with open(out + ".tmp", "w") as f:
    json.dump(res, f)
os.replace(out + ".tmp", out)
