#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""scale_mcp.py: the MCP client of scale_out.sh (every loop bounded).

  scale_mcp.py init URL                  initialize a session (2025-03-26); print its id
  scale_mcp.py calls URL N TOOL [SID...] N rounds; each round a tools/call of TOOL in every
                                         session SID, and one stateless (2026-07-28); print
                                         {"ok": N, "failed": N, "codes": {...}, "errors": [...]}
  scale_mcp.py list URL                  the stateless tools/list's tool names, sorted, one line
  scale_mcp.py ttl URL                   the stateless tools/list's ttlMs
  scale_mcp.py delete URL SID            DELETE the session; print the status
"""
import http.client
import json
import sys
import urllib.parse

META = {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {}}


def post(url, body, headers, method="POST"):
    u = urllib.parse.urlsplit(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=20)
    h = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    h.update(headers)
    try:
        c.request(method, u.path, body=json.dumps(body) if body is not None else None, headers=h)
        r = c.getresponse()
        data = r.read()
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), data
    finally:
        c.close()


def call_ok(status, data):
    if status != 200:
        return False
    try:
        j = json.loads(data)
    except ValueError:
        return False
    return "result" in j and not j["result"].get("isError", False)


def main():
    cmd, url = sys.argv[1], sys.argv[2]
    if cmd == "init":
        st, h, data = post(url, {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-03-26", "capabilities": {},
            "clientInfo": {"name": "scale_out", "version": "1"}}}, {})
        if st != 200 or "mcp-session-id" not in h:
            sys.exit("initialize: %d %r" % (st, data[:200]))
        print(h["mcp-session-id"])
    elif cmd == "calls":
        n, tool, sids = int(sys.argv[3]), sys.argv[4], sys.argv[5:]
        res = {"ok": 0, "failed": 0, "codes": {}, "errors": []}
        for i in range(n):
            for sid in sids + [None]:
                if sid is None:
                    hdr = {"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call",
                           "Mcp-Name": tool}
                    params = {"name": tool, "arguments": {}, "_meta": META}
                else:
                    hdr = {"MCP-Protocol-Version": "2025-03-26", "Mcp-Session-Id": sid}
                    params = {"name": tool, "arguments": {}}
                st, _, data = post(url, {"jsonrpc": "2.0", "id": i + 2, "method": "tools/call",
                                         "params": params}, hdr)
                res["codes"][str(st)] = res["codes"].get(str(st), 0) + 1
                if call_ok(st, data):
                    res["ok"] += 1
                else:
                    res["failed"] += 1
                    if len(res["errors"]) < 5:
                        res["errors"].append("%s %d %s" % (sid and "session" or "stateless", st,
                                                           data[:160].decode("utf-8", "replace")))
        print(json.dumps(res))
    elif cmd in ("list", "ttl"):
        st, _, data = post(url, {"jsonrpc": "2.0", "id": 1, "method": "tools/list",
                                 "params": {"_meta": META}},
                           {"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/list"})
        if st != 200:
            sys.exit("tools/list: %d %r" % (st, data[:200]))
        result = json.loads(data)["result"]
        if cmd == "ttl":
            print(result["ttlMs"])
        else:
            print(",".join(sorted(t["name"] for t in result["tools"])))
    elif cmd == "delete":
        st, _, _ = post(url, None, {"MCP-Protocol-Version": "2025-03-26",
                                    "Mcp-Session-Id": sys.argv[3]}, method="DELETE")
        print(st)
    else:
        sys.exit("unknown command " + cmd)


main()
