#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# audit_journal.sh: --audit-log journal sends each record to the journal's native socket as one
# datagram (SYSLOG_IDENTIFIER=naftikod, NAFTIKOD_AUDIT=1, MESSAGE=<the JSON line>). Runs in a
# user and mount namespace with a tmpfs on /run and a stand-in for journald listening on
# /run/systemd/journal/socket; `naftikod mcp-stdio` makes a call the permissions deny (so no
# upstream is needed). Skipped (77) where unprivileged namespaces are not allowed.
#
# usage: audit_journal.sh NAFTIKOD SOURCE_DIR
set -euo pipefail
NAFTIKOD=$1
SRC=$2
unshare -rm true 2>/dev/null || { echo "skip: no unprivileged user namespaces"; exit 77; }
work=$(mktemp -d "${TMPDIR:-/tmp}/nk-journal.XXXXXX")
trap 'rm -rf "$work"' EXIT
printf 'callers:\n  - name: nobody\n    match: {token: nobody}\n    grants: []\n' >"$work/deny.yaml"
printf '%s\n' \
    '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}' \
    '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"getapitokens-returns-all-api-tokens","arguments":{}}}' \
    >"$work/in"
cat >"$work/recv.py" <<'PY'
import os, socket, sys
path, out = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
open(out + ".ready", "w").close()
s.settimeout(20)
data = s.recv(65536)
open(out, "wb").write(data)
PY
export NAFTIKOD work SRC
unshare -rm bash -c '
set -euo pipefail
mount -t tmpfs none /run
mkdir -p /run/systemd/journal
python3 "$work/recv.py" /run/systemd/journal/socket "$work/got" &
for _ in $(seq 200); do [ -e "$work/got.ready" ] && break; sleep 0.05; done
STACKROX_API_KEY="Bearer not-a-real-key" CENTRAL_HOST=127.0.0.1:1 timeout 20 "$NAFTIKOD" \
    mcp-stdio "$SRC/capabilities/stackrox-apitokenservice.yaml" --permissions "$work/deny.yaml" \
    --audit-log journal <"$work/in" >"$work/out" 2>"$work/err"
wait
' || { echo "FAIL: the namespace run failed: $(cat "$work/err" 2>/dev/null)" >&2; exit 1; }
grep -q '"code":-32001' "$work/out" || { echo "FAIL: the call was not denied: $(cat "$work/out")" >&2; exit 1; }
grep -qx 'SYSLOG_IDENTIFIER=naftikod' "$work/got" && grep -qx 'NAFTIKOD_AUDIT=1' "$work/got" ||
    { echo "FAIL: journal fields: $(cat "$work/got")" >&2; exit 1; }
sed -n 's/^MESSAGE=//p' "$work/got" | jq -e '.decision == "deny" and .rule == "default deny" and
    .caller.kind == "anonymous" and .operation == "getapitokens-returns-all-api-tokens"' >/dev/null ||
    { echo "FAIL: the record: $(cat "$work/got")" >&2; exit 1; }
echo "ok: --audit-log journal: one datagram with SYSLOG_IDENTIFIER=naftikod, NAFTIKOD_AUDIT=1 and the record as MESSAGE"
