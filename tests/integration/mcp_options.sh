#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# mcp_options.sh: issue 13: the MCP endpoint's settings come from the option table, read once at
# start-up: --mcp-session-key-file (flag, NAFTIKOD_MCP_SESSION_KEY_FILE, config key) is read whole
# through the shared secret reader (a key longer than 4096 bytes is not truncated), a bad key
# file is a start-up error naming the file and never the key, and --mcp-allowed-hosts (flag,
# NAFTIKOD_MCP_ALLOWED_HOSTS) admits the names it lists.
#
# usage: mcp_options.sh NAFTIKOD CENTRAL_DOUBLE SOURCE_DIR
set -euo pipefail
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"

nk_args "$@"
nk_init mcp-options
H=(-H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream')
INIT='{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-03-26","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}'
PING='{"jsonrpc":"2.0","id":2,"method":"ping"}'
ARGS=(--mcp-port 0 --rest-port 0 --ops-listen off "$CAP" --var "central-host=127.0.0.1:1")

# Two 5000-byte keys equal in their first 4096 bytes (a reader that truncates makes them one).
head -c 3072 /dev/urandom | base64 -w0 >"$work/prefix"
SECRET=$(cut -c 100-131 "$work/prefix") # 32 bytes of the keys: never in a log or a message
{ cat "$work/prefix"; head -c 904 /dev/zero | tr '\0' '1'; } >"$work/key-a"
{ cat "$work/prefix"; head -c 904 /dev/zero | tr '\0' '2'; } >"$work/key-b"

# init [HOST]: initialize; SID and STATUS set
init() {
    local host=()
    [ -z "${1:-}" ] || host=(-H "Host: $1")
    STATUS=$(curl -sS --max-time 10 -D "$work/headers" -o "$work/body" -w '%{http_code}' -X POST "$MCP" \
        "${H[@]}" "${host[@]}" -d "$INIT") || fail "curl initialize"
    SID=$(tr -d '\r' <"$work/headers" | sed -n 's/^[Mm]cp-[Ss]ession-[Ii]d: //p')
}
# ping SID [HOST]: STATUS of a ping in that session
ping_in() {
    local host=()
    [ -z "${2:-}" ] || host=(-H "Host: $2")
    STATUS=$(curl -sS --max-time 10 -o "$work/body" -w '%{http_code}' -X POST "$MCP" "${H[@]}" \
        "${host[@]}" -H "Mcp-Session-Id: $1" -H 'MCP-Protocol-Version: 2025-03-26' -d "$PING") ||
        fail "curl ping"
}

# ---- the session key: flag, environment variable, config file key -------------------------
nk_launch a "STACKROX_API_KEY=Bearer not-a-real-key" -- "${ARGS[@]}" \
    --mcp-session-key-file "$work/key-a" || fail "a: naftikod did not start"
init
{ [ "$STATUS" = 200 ] && [ -n "$SID" ]; } || fail "initialize with key a: $STATUS"
ping_in "$SID"
[ "$STATUS" = 200 ] || fail "ping with key a: $STATUS"
nk_stop
grep -q 'mcp: [0-9] session key(s) from .*: signing with [0-9a-f]\{16\}' "$work/a.log" ||
    fail "no key line in the log"
! grep -qF -- "$SECRET" "$work/a.log" || fail "the key is in the log"

nk_launch b "STACKROX_API_KEY=Bearer not-a-real-key" "NAFTIKOD_MCP_SESSION_KEY_FILE=$work/key-b" \
    -- "${ARGS[@]}" || fail "b: naftikod did not start"
ping_in "$SID"
[ "$STATUS" = 404 ] || fail "a session of key a accepted under key b (same first 4096 bytes): $STATUS, want 404"
nk_stop
pass "the session key file is read whole (5000 bytes; a key differing after byte 4096 is another key)"

printf 'mcp-session-key-file: %s\nmcp-allowed-hosts: mcp.example.com\n' "$work/key-a" >"$work/naftikod.yaml"
nk_launch c "STACKROX_API_KEY=Bearer not-a-real-key" -- "${ARGS[@]}" --config "$work/naftikod.yaml" ||
    fail "c: naftikod did not start"
ping_in "$SID"
[ "$STATUS" = 200 ] || fail "the session of key a under key a from the config file: $STATUS"
ping_in "$SID" mcp.example.com
[ "$STATUS" = 200 ] || fail "Host mcp.example.com (config key mcp-allowed-hosts): $STATUS"
ping_in "$SID" other.example.com
[ "$STATUS" = 403 ] || fail "Host other.example.com: $STATUS, want 403"
nk_stop
pass "config keys mcp-session-key-file and mcp-allowed-hosts"

# ---- allowed hosts: flag beats the environment variable (which still works) ----------------
nk_launch d "STACKROX_API_KEY=Bearer not-a-real-key" "NAFTIKOD_MCP_ALLOWED_HOSTS=naftikod.ns.svc,x.example" \
    -- "${ARGS[@]}" || fail "d: naftikod did not start"
init naftikod.ns.svc
[ "$STATUS" = 200 ] || fail "Host naftikod.ns.svc from NAFTIKOD_MCP_ALLOWED_HOSTS: $STATUS"
init mcp.example.com
[ "$STATUS" = 403 ] || fail "Host mcp.example.com not listed: $STATUS, want 403"
nk_stop
nk_launch e "STACKROX_API_KEY=Bearer not-a-real-key" "NAFTIKOD_MCP_ALLOWED_HOSTS=naftikod.ns.svc" \
    -- "${ARGS[@]}" --mcp-allowed-hosts mcp.example.com || fail "e: naftikod did not start"
init mcp.example.com
[ "$STATUS" = 200 ] || fail "Host mcp.example.com from --mcp-allowed-hosts: $STATUS"
init naftikod.ns.svc
[ "$STATUS" = 403 ] || fail "the flag did not replace the variable: $STATUS, want 403"
nk_stop
pass "--mcp-allowed-hosts and NAFTIKOD_MCP_ALLOWED_HOSTS (flag > variable)"

# ---- a bad key file stops start-up, naming the file, never the key --------------------------
bad() { # bad FILE WANT [env...]: serve must exit 1 before listening, saying WANT
    local file=$1 want=$2 st=0
    shift 2
    env -u NAFTIKOD_MCP_SESSION_KEY_FILE "$@" STACKROX_API_KEY="Bearer not-a-real-key" \
        timeout 20 "$NAFTIKOD" serve "${ARGS[@]}" --mcp-session-key-file "$file" \
        --port-file "$work/bad.ports" 2>"$work/bad.err" >/dev/null || st=$?
    [ "$st" = 1 ] || fail "key file $file: exit $st, want 1 ($(cat "$work/bad.err"))"
    grep -qF -- "$want" "$work/bad.err" || fail "key file $file: want '$want', got: $(cat "$work/bad.err")"
    [ ! -e "$work/bad.ports" ] || fail "key file $file: listeners started"
    ! grep -qF -- "$SECRET" "$work/bad.err" || fail "key file $file: the key is in the message"
}
bad /nonexistent/key "naftikod serve: the MCP session key: cannot read '/nonexistent/key' (--mcp-session-key-file): No such file or directory"
: >"$work/empty"
bad "$work/empty" "the MCP session key: '$work/empty' (--mcp-session-key-file) is empty"
head -c 70000 /dev/zero | tr '\0' 'k' >"$work/big"
bad "$work/big" "the MCP session key: '$work/big' (--mcp-session-key-file) is larger than 65536 bytes"
bad "$work" "the MCP session key: cannot read '$work' (--mcp-session-key-file)"
# Keys that are no keys (issue 19): short, a placeholder, one byte repeated, too many.
printf 'short-key\n' >"$work/short"
bad "$work/short" "the MCP session key: '$work/short': the key on line 1 is shorter than 32 bytes"
printf 'REPLACE-WITH-32-RANDOM-BYTES-AND-MORE-AND-MORE\n' >"$work/placeholder"
bad "$work/placeholder" "the key on line 1 is a placeholder text, not a key"
{ echo '# the ring'; head -c 48 /dev/zero | tr '\0' 'x'; echo; } >"$work/same"
bad "$work/same" "the key on line 2 has fewer than 8 distinct bytes (not a random key)"
for i in 1 2 3 4 5 6 7 8 9; do head -c 48 /dev/urandom | base64 -w0; echo; done >"$work/nine"
bad "$work/nine" "more than 8 keys (line 9)"
st=0
env -u NAFTIKOD_MCP_SESSION_KEY_FILE STACKROX_API_KEY="Bearer not-a-real-key" timeout 20 \
    "$NAFTIKOD" serve "${ARGS[@]}" --replicas 2>"$work/bad.err" >/dev/null || st=$?
{ [ "$st" = 1 ] && grep -q -- '--replicas needs --mcp-session-key-file' "$work/bad.err"; } ||
    fail "--replicas without a key file: exit $st: $(cat "$work/bad.err")"
# With --log-format json the error is a JSON log line.

env -u NAFTIKOD_MCP_SESSION_KEY_FILE STACKROX_API_KEY="Bearer not-a-real-key" timeout 20 \
    "$NAFTIKOD" serve "${ARGS[@]}" --mcp-session-key-file /nonexistent/key --log-format json \
    2>"$work/json.err" >/dev/null && fail "started with a missing key file"
python3 -c 'import json,sys; [json.loads(l) for l in open(sys.argv[1]) if l.strip()]' "$work/json.err" ||
    fail "a start-up error is not JSON under --log-format json: $(cat "$work/json.err")"
grep -q 'the MCP session key: cannot read' "$work/json.err" || fail "json: $(cat "$work/json.err")"
pass "a missing, empty, oversized, unreadable, short, placeholder, one-byte or 9-key file, and --replicas without one, are start-up errors (exit 1)"
