#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# loops.sh: `naftikod serve --loops 2`: both event loops serve one port (SO_REUSEPORT spreads
# new connections; naftikod_loop_requests_total counts per loop), and an MCP session opened on
# one loop is valid, then ended, on the other.
#
# usage: loops.sh NAFTIKOD CENTRAL_DOUBLE SOURCE_DIR
set -euo pipefail
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"

nk_args "$@"
nk_init loops loops
NK_FAIL_SKIP=' access '
H=(-H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream')
INIT='{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-03-26","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}'
PING='{"jsonrpc":"2.0","id":2,"method":"ping"}'

# loop_count I: naftikod_loop_requests_total{loop="I"} from /metrics (0 when absent).
loop_count() {
    curl -sS --max-time 10 "$OPS/metrics" |
        sed -n "s/^naftikod_loop_requests_total{loop=\"$1\"} //p" | grep . || echo 0
}

nk_start_double
nk_serve naftikod --loops 2 --ops-listen 127.0.0.1:0 --var "central-host=127.0.0.1:$CPORT" \
    --ca-file "$work/central.crt" "$CAP"
grep -q 'on each of 2 event loops' "$work/naftikod.log" || fail "not started with 2 loops"

# ---- both loops serve the one REST port ------------------------------------------------------
# Each request on a connection of its own: the kernel hashes each new connection's addresses
# to one of the two sockets, so 200 connections all on one loop would be a 2^-199 chance.
for i in $(seq 1 200); do
    st=$(curl -sS --max-time 10 -o /dev/null -w '%{http_code}' "$REST/v1/v1/apitokens") ||
        fail "request $i"
    [ "$st" = 200 ] || fail "request $i: $st"
    if [ $((i % 20)) = 0 ] && [ "$(loop_count 0)" -gt 0 ] && [ "$(loop_count 1)" -gt 0 ]; then
        break
    fi
done
a=$(loop_count 0)
b=$(loop_count 1)
{ [ "$a" -gt 0 ] && [ "$b" -gt 0 ]; } || fail "one loop served everything: loop 0 $a, loop 1 $b"
pass "one port, two loops: loop 0 answered $a, loop 1 answered $b"

# pings WANT WHAT: 40 pings in session $SID, each on a new connection, must all answer WANT
# and must reach both loops; sets PA and PB (pings seen by loop 0 and loop 1).
pings() {
    local a0 b0 i st
    a0=$(loop_count 0)
    b0=$(loop_count 1)
    for i in $(seq 1 40); do
        st=$(curl -sS --max-time 10 -o "$work/body" -w '%{http_code}' -X POST "$MCP" "${H[@]}" \
            -H "Mcp-Session-Id: $SID" -H 'MCP-Protocol-Version: 2025-03-26' -d "$PING") ||
            fail "curl ping $i $2"
        [ "$st" = "$1" ] || fail "ping $i $2: $st, not $1"
    done
    PA=$(($(loop_count 0) - a0))
    PB=$(($(loop_count 1) - b0))
    { [ "$PA" -gt 0 ] && [ "$PB" -gt 0 ]; } || fail "the pings $2 did not reach both loops: $PA, $PB"
}

# ---- an MCP session across the loops ----------------------------------------------------------
st=$(curl -sS --max-time 10 -D "$work/headers" -o "$work/body" -w '%{http_code}' -X POST "$MCP" \
    "${H[@]}" -d "$INIT") || fail "curl initialize"
SID=$(tr -d '\r' <"$work/headers" | sed -n 's/^[Mm]cp-[Ss]ession-[Ii]d: //p')
{ [ "$st" = 200 ] && [ -n "$SID" ]; } || fail "initialize: $st"
pings 200 "in the session"
pass "one MCP session, 40 pings on new connections, all 200: loop 0 $PA, loop 1 $PB"

st=$(curl -sS --max-time 10 -o /dev/null -w '%{http_code}' -X DELETE "$MCP" "${H[@]}" \
    -H "Mcp-Session-Id: $SID" -H 'MCP-Protocol-Version: 2025-03-26') || fail "curl DELETE"
[ "$st" = 200 ] || [ "$st" = 204 ] || fail "DELETE session: $st"
pings 404 "after DELETE"
pass "ended session: 404 on both loops (loop 0 $PA, loop 1 $PB)"

# ---- notifications/cancelled reaches a call running on the other loop ----------------------------
# Eight times: a tools/call stalls at Central, the cancellation comes on a new connection
# (either loop: each attempt has a one-in-two chance of crossing, so all eight staying on one
# loop is a 2^-8 chance); the call must be answered (202, no body) at once, not after the stall.
st=$(curl -sS --max-time 10 -D "$work/headers" -o "$work/body" -w '%{http_code}' -X POST "$MCP" \
    "${H[@]}" -d "$INIT") || fail "curl initialize"
SID=$(tr -d '\r' <"$work/headers" | sed -n 's/^[Mm]cp-[Ss]ession-[Ii]d: //p')
{ [ "$st" = 200 ] && [ -n "$SID" ]; } || fail "initialize: $st"
LIST=getapitokens-returns-all-api-tokens
for i in $(seq 1 8); do
    nk_fault '{"mode":"stall","ms":30000,"count":1}'
    n0=$(nk_requests | jq "map(.seq) | max // 0")
    curl -sS --max-time 20 -o "$work/cancelled.body" -w '%{http_code}' -X POST "$MCP" "${H[@]}" \
        -H "Mcp-Session-Id: $SID" -H 'MCP-Protocol-Version: 2025-03-26' \
        -d "{\"jsonrpc\":\"2.0\",\"id\":$((100 + i)),\"method\":\"tools/call\",\"params\":{\"name\":\"$LIST\"}}" \
        >"$work/cancelled.status" 2>&1 &
    bg=$!
    pids+=("$bg")
    stalled() { [ "$(nk_requests | jq "map(.seq) | max // 0")" -gt "$n0" ]; }
    wait_until stalled || fail "attempt $i: the call did not reach Central"
    st=$(curl -sS --max-time 10 -o /dev/null -w '%{http_code}' -X POST "$MCP" "${H[@]}" \
        -H "Mcp-Session-Id: $SID" -H 'MCP-Protocol-Version: 2025-03-26' \
        -d "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{\"requestId\":$((100 + i))}}") ||
        fail "curl cancel $i"
    [ "$st" = 202 ] || fail "attempt $i: notifications/cancelled: $st"
    wait "$bg" || fail "attempt $i: the cancelled call was not answered while Central stalled"
    [ "$(cat "$work/cancelled.status")" = 202 ] ||
        fail "attempt $i: the cancelled call: $(cat "$work/cancelled.status")"
    nk_fault '{"mode":"none"}'
done
pass "notifications/cancelled: 8 calls cancelled from new connections, whichever loop ran them"
nk_stop
pass "SIGTERM: exit 0"

# ---- a client's limits are one budget across the loops ---------------------------------------
nk_serve limits --loops 2 --ops-listen off --var "central-host=127.0.0.1:$CPORT" \
    --ca-file "$work/central.crt" --max-connections-per-client 2 --rate-limit 1 --rate-burst 3 \
    "$CAP"
# Six connections held open, taken one at a time: two are let in, whichever loop each reached;
# the other four are closed at once (each loop alone would let in two).
python3 - "${REST##*:}" <<'PY' || fail "connection limit across loops"
import socket, sys, time
port = int(sys.argv[1])
conns = []
for _ in range(6):
    conns.append(socket.create_connection(("127.0.0.1", port)))
    time.sleep(0.2)
closed = 0
for c in conns:
    c.settimeout(1)
    try:
        closed += c.recv(16) == b""
    except socket.timeout:
        pass
for c in conns:
    c.close()
assert closed == 4, "%d of 6 connections refused, not 4" % closed
PY
pass "--max-connections-per-client 2 with 2 loops: 2 of 6 connections let in"
sleep 1
codes=""
for i in $(seq 1 8); do
    codes="$codes$(curl -sS --max-time 10 -o /dev/null -w '%{http_code}' "$REST/v1/v1/apitokens") "
done
n200=$(grep -o 200 <<<"$codes" | wc -l)
# Burst 3 and 1 more a second: 3 or, should the 8 requests span a second, 4 (buckets of each
# loop's own would answer up to 6 of 8 when the connections spread).
{ [ "$n200" -ge 3 ] && [ "$n200" -le 4 ]; } || fail "rate limit across loops: $codes"
pass "--rate-limit 1 --rate-burst 3 with 2 loops: $codes"
nk_stop

# ---- the config key and the cap ---------------------------------------------------------------
cat >"$work/naftikod.yaml" <<YAML
loops: 3
ops-listen: "off"
var:
  central-host: "127.0.0.1:$CPORT"
YAML
nk_serve cfg --config "$work/naftikod.yaml" --ca-file "$work/central.crt" "$CAP"
grep -q 'on each of 3 event loops' "$work/cfg.log" || fail "loops: 3 in the config file not applied"
st=$(curl -sS --max-time 10 -o /dev/null -w '%{http_code}' "$REST/v1/v1/apitokens") || fail "curl"
[ "$st" = 200 ] || fail "3 loops: $st"
nk_stop
pass "config key loops: 3 -> 3 event loops"
st=0
env -u STACKROX_API_KEY "$NAFTIKOD" serve --loops 65 --ops-listen off --rest-port 0 \
    --mcp-port 0 "$CAP" --var central-host=127.0.0.1:1 2>"$work/cap.log" || st=$?
[ "$st" = 1 ] && grep -q -- '--loops at most 64' "$work/cap.log" || fail "--loops 65: exit $st"
pass "--loops 65: refused (exit 1)"
