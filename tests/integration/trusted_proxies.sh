#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# trusted_proxies.sh: issue 19: --trusted-proxies. Without it X-Forwarded-For is ignored (the
# access log names the peer, the rate limit counts the peer); with the peer trusted the access
# line names the forwarded client and the proxy, the rate limit has one bucket per forwarded
# client, a spoofed left-most entry loses to the right-most untrusted one, garbage falls back to
# the proxy; a bad list stops start-up; MCP access lines name the method and the tool;
# --max-connections-per-client counts a forwarded client's requests in flight, not the proxy's
# connections.
#
# usage: trusted_proxies.sh NAFTIKOD CENTRAL_DOUBLE SOURCE_DIR
set -euo pipefail
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"

nk_args "$@"
nk_init proxies proxies
TOOL="getapitokens-returns-all-api-tokens"
ARGS=("$CAP" --var "central-host=127.0.0.1:1" --ops-listen off --rate-limit 1 --rate-burst 1 --loops 1)

# get XFF: the status of GET / with that X-Forwarded-For (none when empty)
get() {
    local h=()
    [ -z "$1" ] || h=(-H "X-Forwarded-For: $1")
    curl -sS --max-time 10 -o /dev/null -w '%{http_code}' "${h[@]}" "$REST/no/such/route"
}

# ---- not trusted: the header is ignored ----
nk_serve plain "${ARGS[@]}"
a=$(get 198.51.100.1)
b=$(get 198.51.100.2)
[ "$a $b" = "404 429" ] || fail "without --trusted-proxies two forwarded clients got '$a $b', want '404 429' (one bucket: the peer)"
nk_stop   # the log is complete once the daemon is gone
grep -q 'client=127.0.0.1' "$work/plain.log" || fail "no access line for the peer"
grep -q 'client=198.51.100' "$work/plain.log" && fail "an untrusted X-Forwarded-For reached the access log"
pass "without --trusted-proxies: X-Forwarded-For ignored (access log and rate limit see the peer: 404 429)"

# ---- trusted: one bucket per forwarded client ----
nk_serve trusted "${ARGS[@]}" --trusted-proxies "10.0.0.0/8,127.0.0.1"
codes="$(get 198.51.100.1) $(get 198.51.100.2) $(get '6.6.6.6, 198.51.100.3') $(get 198.51.100.1)"
[ "$codes" = "404 404 404 429" ] ||
    fail "with the peer trusted: '$codes', want '404 404 404 429' (a bucket per forwarded client)"
wait_until grep -q 'client=198.51.100.1 proxy=127.0.0.1' "$work/trusted.log" || fail "no forwarded client in the access log"
wait_until grep -q 'client=198.51.100.3 proxy=127.0.0.1' "$work/trusted.log" || fail "the right-most untrusted entry is not the client"
grep -q 'client=6.6.6.6' "$work/trusted.log" && fail "a spoofed left-most entry became the client"
sleep 1.1 # the peer's own bucket refills
[ "$(get 'garbage')" = 404 ] || fail "garbage X-Forwarded-For"
wait_until grep -q 'client=127.0.0.1$' "$work/trusted.log" || fail "garbage did not fall back to the proxy"
# Forwarded (RFC 7239) with a bracketed IPv6 and a port.
code=$(curl -sS --max-time 10 -o /dev/null -w '%{http_code}' -H 'Forwarded: for="[2001:db8::7]:4711";proto=http' "$REST/x")
[ "$code" = 404 ] || fail "Forwarded: $code"
wait_until grep -q 'client=2001:db8::7 proxy=127.0.0.1' "$work/trusted.log" || fail "Forwarded for= not used"
pass "--trusted-proxies: forwarded clients get their own buckets (404 404 404 429), the right-most untrusted entry wins, garbage falls back to the proxy, Forwarded [v6]:port read"

# ---- MCP: the access line names the method and the tool ----
meta='"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}'
sleep 1.1
curl -sS --max-time 10 -o "$work/body" -X POST "$MCP" -H 'Content-Type: application/json' \
    -H 'Accept: application/json, text/event-stream' -H 'MCP-Protocol-Version: 2026-07-28' \
    -H 'Mcp-Method: tools/call' -H "Mcp-Name: $TOOL" -H 'X-Forwarded-For: 198.51.100.9' \
    -d "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"$TOOL\",\"arguments\":{},$meta}}" ||
    fail "MCP tools/call"
wait_until grep -q "POST /mcp .*client=198.51.100.9 proxy=127.0.0.1 mcp_method=tools/call tool=$TOOL" "$work/trusted.log" ||
    fail "the MCP access line does not name the method and tool: $(grep 'POST /mcp' "$work/trusted.log")"
nk_stop
pass "MCP access line: $(grep 'POST /mcp' "$work/trusted.log" | sed 's/^.*POST/POST/')"

# ---- per-client limits: a forwarded client's requests in flight, not the proxy's connections ----
nk_start_double
# fwd XFF: the status of a listing through the "balancer" (this shell, 127.0.0.1) for client XFF
fwd() {
    curl -sS --max-time 20 -o "$work/fwd.body" -w '%{http_code}' -H "X-Forwarded-For: $1" "$REST/v1/v1/apitokens"
}
for loops in 1 2; do
    nk_serve "limit$loops" "$CAP" --var "central-host=127.0.0.1:$CPORT" --ca-file "$work/central.crt" \
        --ops-listen off --loops "$loops" --trusted-proxies 127.0.0.1 --max-connections-per-client 2
    # Two calls of one client held by Central: its third is refused, another client and the
    # proxy itself still get through though the proxy holds four connections (a count per
    # connection would have refused its third).
    nk_fault '{"mode":"stall","ms":4000,"count":2}'
    n0=$(nk_requests | jq "map(.seq) | max // 0")
    fwd 198.51.100.1 >"$work/held1" 2>&1 &
    h1=$!
    fwd 198.51.100.1 >"$work/held2" 2>&1 &
    h2=$!
    held() { [ "$(nk_requests | jq "map(.seq) | max // 0")" -ge $((n0 + 2)) ]; }
    wait_until held || fail "$loops loop(s): the two calls did not reach Central"
    third=$(fwd 198.51.100.1)
    jq -e '.detail | test("more than 2 requests at once from 198.51.100.1")' "$work/fwd.body" >/dev/null ||
        fail "$loops loop(s): the third call's answer: $(head -c 300 "$work/fwd.body")"
    other=$(fwd 198.51.100.2)
    direct=$(curl -sS --max-time 20 -o /dev/null -w '%{http_code}' "$REST/v1/v1/apitokens")
    wait "$h1" || fail "$loops loop(s): held call 1"
    wait "$h2" || fail "$loops loop(s): held call 2"
    again=$(fwd 198.51.100.1)
    codes="$(cat "$work/held1") $(cat "$work/held2") $third $other $direct $again"
    [ "$codes" = "200 200 429 200 200 200" ] ||
        fail "$loops loop(s): held held third other direct again: '$codes', want '200 200 429 200 200 200'"
    nk_stop
    pass "--max-connections-per-client 2 behind a trusted proxy, $loops loop(s): a client's 3rd call in flight 429, another client and the proxy not limited, released on completion ($codes)"
done
nk_fault '{"mode":"none"}'

# ---- a bad list is a start-up error ----
st=0
STACKROX_API_KEY="Bearer $KEY" "$NAFTIKOD" serve "${ARGS[@]}" --rest-port 0 --mcp-port 0 \
    --trusted-proxies "10.0.0.1/8" 2>"$work/bad.err" || st=$?
{ [ "$st" = 1 ] && grep -q "host bits set" "$work/bad.err"; } || fail "a bad --trusted-proxies: exit $st: $(cat "$work/bad.err")"
pass "--trusted-proxies 10.0.0.1/8: exit 1 ($(cat "$work/bad.err"))"
