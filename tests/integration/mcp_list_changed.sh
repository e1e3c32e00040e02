#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# mcp_list_changed.sh: issue 19 item 4: a handshake-era session's GET /mcp stream
# (Accept: text/event-stream) carries one notifications/tools/list_changed per reload that puts
# other documents in force, none for a reload of the same documents; DELETE of the session and
# SIGTERM end the stream; GET stays 405 without a session or in the 2026-07-28 era, 404 for an
# unknown session; initialize declares tools.listChanged.
#
# usage: mcp_list_changed.sh NAFTIKOD CENTRAL_DOUBLE SOURCE_DIR
set -euo pipefail
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"

nk_args "$@"
nk_init mcp-list-changed
H=(-H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream')
V=(-H 'MCP-Protocol-Version: 2025-06-18')
INIT='{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}'
LIST='{"jsonrpc":"2.0","id":2,"method":"tools/list"}'
NOTE='"method":"notifications/tools/list_changed"'

cp "$CAP" "$work/cap.yaml"
# add_tool NAME: the capability with one more tool (a second name for getapitoken)
add_tool() {
    printf '\n' >>"$work/cap.yaml" # the shipped file ends without a newline
    # tests/data/mcp/extra-tool.yaml, a tool entry of the MCP adapter (the last one), named $1
    sed "s/NAME/$1/" "$SRC/tests/data/mcp/extra-tool.yaml" >>"$work/cap.yaml"
}

# init: initialize; SID set
init() {
    nk_call initialize -D "$work/headers" -X POST "$MCP" "${H[@]}" -d "$INIT"
    SID=$(tr -d '\r' <"$work/headers" | sed -n 's/^[Mm]cp-[Ss]ession-[Ii]d: //p')
    { [ "$STATUS" = 200 ] && [ -n "$SID" ]; } || fail "initialize: $STATUS"
    jq -e '.result.capabilities.tools.listChanged == true' "$work/body" >/dev/null ||
        fail "initialize does not declare tools.listChanged: $(cat "$work/body")"
}
# stream NAME SID: open the GET stream in the background; STREAM_PID set, output in NAME.sse
stream() {
    curl -sS -N --max-time 100 -D "$work/$1.head" -o "$work/$1.sse" -H 'Accept: text/event-stream' \
        "${V[@]}" -H "Mcp-Session-Id: $2" "$MCP" &
    STREAM_PID=$!
    pids+=("$STREAM_PID")
    wait_until grep -q '^HTTP/1.1 200' "$work/$1.head" || fail "GET stream $1: no 200 head"
    tr -d '\r' <"$work/$1.head" | grep -qi '^content-type: text/event-stream' ||
        fail "GET stream $1: not text/event-stream: $(cat "$work/$1.head")"
}
notes() { grep -c -F -- "$NOTE" "$work/$1.sse" || true; }
has_notes() { [ "$(notes "$1")" -ge "$2" ]; }
reloads() { grep -c 'reload: new table in force' "$work/nk.log" || true; }
n_hup=0
hup() {
    n_hup=$((n_hup + 1))
    kill -HUP "$NK_PID"
    wait_until eval '[ "$(reloads)" -ge '"$n_hup"' ]' || fail "reload $n_hup not in force"
}
tools() { # the tool names of tools/list in session $SID
    nk_call tools/list -X POST "$MCP" "${H[@]}" "${V[@]}" -H "Mcp-Session-Id: $SID" -d "$LIST"
    jq -r '.result.tools[].name' "$work/body" | sort | tr '\n' ' '
}

nk_start_double
nk_serve nk "$work/cap.yaml" --var "central-host=127.0.0.1:$CPORT" --ops-listen off --ca-file "$work/central.crt"

# ---- GET without a stream to give -------------------------------------------------------
nk_call "GET without a session" -H 'Accept: text/event-stream' "$MCP"
[ "$STATUS" = 405 ] || fail "GET without a session: $STATUS, want 405"
init
nk_call "GET without Accept: text/event-stream" -H 'Accept: application/json' "${V[@]}" \
    -H "Mcp-Session-Id: $SID" "$MCP"
[ "$STATUS" = 405 ] || fail "GET without text/event-stream: $STATUS, want 405"
nk_call "GET in the stateless era" -H 'Accept: text/event-stream' \
    -H 'MCP-Protocol-Version: 2026-07-28' -H "Mcp-Session-Id: $SID" "$MCP"
[ "$STATUS" = 405 ] || fail "GET in the 2026-07-28 era: $STATUS, want 405"
nk_call "GET for an unknown session" -H 'Accept: text/event-stream' "${V[@]}" \
    -H "Mcp-Session-Id: ${SID}x" "$MCP"
[ "$STATUS" = 404 ] || fail "GET for an unknown session: $STATUS, want 404"
pass "GET: 405 without a session, without text/event-stream and in 2026-07-28; 404 unknown"

# ---- the stream hears of a changed capability, once per change ---------------------------
stream a "$SID"
A_PID=$STREAM_PID
before=$(tools)
add_tool getapitoken-second-name
hup
wait_until has_notes a 1 || fail "no list_changed on the stream after a changed reload"
after=$(tools)
case "$after" in *getapitoken-second-name*) ;; *) fail "tools/list after the reload: $after" ;; esac
[ "$before" != "$after" ] || fail "tools/list did not change"
pass "a changed capability: list_changed on the stream, tools/list shows the new tool"

hup # the same documents again
add_tool getapitoken-third-name
hup
wait_until has_notes a 2 || fail "no list_changed after the second changed reload"

# ---- DELETE ends the session's stream ----------------------------------------------------
SID_A=$SID
init
stream b "$SID"
B_PID=$STREAM_PID
nk_call DELETE -X DELETE "${V[@]}" -H "Mcp-Session-Id: $SID" "$MCP"
[ "$STATUS" = 204 ] || fail "DELETE: $STATUS"
wait_until nk_gone "$B_PID" || fail "DELETE did not end the session's stream"
kill -0 "$A_PID" 2>/dev/null || fail "DELETE of another session ended stream a"
[ "$(notes b)" = 0 ] || fail "stream b got notifications of reloads before it opened"
pass "DELETE ends the session's stream, not the others"

# ---- a second GET for a session replaces the first --------------------------------------
init
stream c "$SID"
C_PID=$STREAM_PID
stream d "$SID"
wait_until nk_gone "$C_PID" || fail "a second GET for the session did not end the first stream"
pass "a second GET for a session ends the first stream"

# ---- at most 256 streams in the process; a closed one frees its place ----------------------
# One Python process holds the sockets (256 curl processes would be heavy): with streams a and d
# open, 254 more sessions with a stream each answer 200, the next 503; once one client closes, a
# new stream opens again.
python3 - "${MCP#http://}" "$INIT" 254 >"$work/limit.out" 2>&1 <<'PY' || fail "stream limit: $(cat "$work/limit.out")"
import json, socket, sys, time
hostport, init, more = sys.argv[1].split('/')[0], sys.argv[2], int(sys.argv[3])
host, port = hostport.split(':')[0], int(hostport.split(':')[1])

def session():
    s = socket.create_connection((host, port), timeout=10)
    s.sendall(('POST /mcp HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n'
               'Accept: application/json, text/event-stream\r\nConnection: close\r\n'
               'Content-Length: %d\r\n\r\n%s' % (hostport, len(init), init)).encode())
    data = b''
    while True:
        b = s.recv(65536)
        if not b:
            break
        data += b
    s.close()
    for line in data.decode().split('\r\n'):
        if line.lower().startswith('mcp-session-id:'):
            return line.split(':', 1)[1].strip()
    raise SystemExit('no session id: %r' % data[:200])

def stream(sid):
    s = socket.create_connection((host, port), timeout=10)
    s.sendall(('GET /mcp HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n'
               'MCP-Protocol-Version: 2025-06-18\r\nMcp-Session-Id: %s\r\n\r\n'
               % (hostport, sid)).encode())
    head = b''
    while b'\r\n\r\n' not in head:
        b = s.recv(4096)
        if not b:
            break
        head += b
    return s, head.split(b'\r\n')[0].decode()

held = []
for i in range(more):
    s, status = stream(session())
    if ' 200 ' not in status:
        raise SystemExit('stream %d: %s' % (i + 1, status))
    held.append(s)
s, status = stream(session())
if ' 503 ' not in status:
    raise SystemExit('stream %d: %s, want 503' % (more + 1, status))
s.close()
held.pop().close()
for _ in range(200):  # bounded: the daemon sees the close within a turn or a few
    s, status = stream(session())
    if ' 200 ' in status:
        break
    s.close()
    time.sleep(0.05)
else:
    raise SystemExit('no stream opened after one closed: %s' % status)
held.append(s)
for s in held:
    s.close()
print('256 streams open (2 + %d), the next one 503, a freed place reused' % more)
PY
pass "$(cat "$work/limit.out")"

# ---- SIGTERM ends the streams ------------------------------------------------------------
nk_stop
wait_until nk_gone "$A_PID" || fail "stream a outlived the daemon"
[ "$(notes a)" = 2 ] || fail "stream a: $(notes a) notifications for 2 changes and 1 unchanged reload"
pass "SIGTERM ended the streams; exactly one list_changed per change (2), none for the same documents (SID ${SID_A:0:8}...)"
