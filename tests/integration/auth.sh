#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# auth.sh: inbound authentication, passthrough, --read-only and the non-loopback refusal, with
# the real `naftikod serve` in front of the Central test double (TLS).
#
# usage: auth.sh NAFTIKOD CENTRAL_DOUBLE SOURCE_DIR
set -euo pipefail
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"

nk_args "$@"
AGENT="agent-token-not-a-secret-1234"   # a caller token of naftikod's own
RO="central-readonly-token-not-a-secret" # a Central token with read access only
nk_init auth
nk_start_double --readonly-token "$RO"
printf '%s\n' "$AGENT" | "$NAFTIKOD" hash-token agent-1 >"$work/tokens" || fail "hash-token"
grep -q "$AGENT" "$work/tokens" && fail "hash-token printed the token"
grep -Eq '^sha256:[0-9a-f]{64}  agent-1$' "$work/tokens" || fail "hash-token line: $(cat "$work/tokens")"
echo "ok: hash-token prints the hash line, never the token"

# start NAME [flags...]: sets NK_PID REST MCP.
start() {
    local name=$1
    shift
    nk_serve "nk-$name" "$CAP" --ops-listen off --var "central-host=127.0.0.1:$CPORT" \
        --ca-file "$work/central.crt" "$@"
}
touch "$work/all-bodies"
call() { nk_fetch "$@"; } # STATUS, $work/body (and all-bodies), $work/headers
challenge() {
    tr -d '\r' <"$work/headers" | grep -qi '^www-authenticate: Bearer realm="naftikod"$' ||
        fail "$1: no WWW-Authenticate: Bearer challenge"
}
META='"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}'
MH=(-H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream'
    -H 'MCP-Protocol-Version: 2026-07-28')
mcp_list() { # mcp_list [curl args]
    call -X POST "$MCP" "${MH[@]}" -H 'Mcp-Method: tools/list' "$@" \
        -d "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\",\"params\":{$META}}"
}
mcp_call() { # mcp_call TOOL ARGS [curl args]
    local tool=$1 args=$2
    shift 2
    call -X POST "$MCP" "${MH[@]}" -H 'Mcp-Method: tools/call' -H "Mcp-Name: $tool" "$@" \
        -d "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":\"$tool\",\"arguments\":$args,$META}}"
}
recorded_auth() { # the Authorization values Central received with X-Request-Id $1
    nk_requests |
        jq -c --arg id "$1" '[.[] | select(any(.headers[]; (.[0]|ascii_downcase) == "x-request-id" and .[1] == $id)) | .authorization]'
}
LIST=getapitokens-returns-all-api-tokens
GEN=generatetoken-generates-api-token-given

# 1. token mode on both adapters
start token --rest-auth token --mcp-auth token --auth-tokens "$work/tokens"
call "$REST/v1/v1/apitokens"
[ "$STATUS" = 401 ] || fail "REST without a token: $STATUS"
challenge "REST without a token"
jq -e '.status == 401 and (.detail|test("Bearer"))' "$work/body" >/dev/null || fail "REST 401 body"
call -H "Authorization: Bearer wrong-token-wrong-token" "$REST/v1/v1/apitokens"
[ "$STATUS" = 401 ] || fail "REST with a wrong token: $STATUS"
challenge "REST with a wrong token"
call -H "Authorization: Bearer $AGENT" -H 'X-Request-Id: auth-rest-1' "$REST/v1/v1/apitokens"
[ "$STATUS" = 200 ] || fail "REST with the right token: $STATUS"
[ "$(recorded_auth auth-rest-1)" = "[[\"Bearer $KEY\"]]" ] ||
    fail "token mode: Central did not get exactly the bound credential: $(recorded_auth auth-rest-1)"
echo "ok: REST token mode: 401 + challenge without or with a wrong token, 200 with the right one; Central got the bound credential only"
mcp_list
[ "$STATUS" = 401 ] || fail "MCP without a token: $STATUS"
challenge "MCP without a token"
mcp_list -H "Authorization: Bearer wrong-token-wrong-token"
[ "$STATUS" = 401 ] || fail "MCP with a wrong token: $STATUS"
mcp_call "$LIST" '{}' -H "Authorization: Bearer $AGENT" -H 'X-Request-Id: auth-mcp-1'
[ "$STATUS" = 200 ] && jq -e '.result.isError != true' "$work/body" >/dev/null ||
    fail "MCP with the right token: $STATUS"
[ "$(recorded_auth auth-mcp-1)" = "[[\"Bearer $KEY\"]]" ] ||
    fail "MCP forwarded something else than the bound credential: $(recorded_auth auth-mcp-1)"
echo "ok: MCP token mode: 401 + challenge, 200 with the token, and the agent's token never reaches Central"
wait_until grep -q 'caller=agent-1' "$work/nk-token.log" || fail "the access log does not name the caller"
echo "ok: access lines name the caller (agent-1)"
kill "$NK_PID"

# 2. REST passthrough: the caller's credential, Central's RBAC
start pass --rest-auth passthrough
call "$REST/v1/v1/apitokens"
[ "$STATUS" = 401 ] || fail "passthrough without Authorization: $STATUS"
challenge "passthrough without Authorization"
call -H "Authorization: Bearer $RO" -H 'X-Request-Id: auth-pass-1' "$REST/v1/v1/apitokens"
[ "$STATUS" = 200 ] || fail "passthrough list with a read-only Central token: $STATUS"
[ "$(recorded_auth auth-pass-1)" = "[[\"Bearer $RO\"]]" ] ||
    fail "passthrough: Central got $(recorded_auth auth-pass-1)"
call -X POST -H "Authorization: Bearer $RO" -H 'Content-Type: application/json' \
    -d '{"name":"x","roles":["Analyst"]}' "$REST/v1/v1/apitokens/generate"
[ "$STATUS" = 403 ] || fail "passthrough generate with a read-only Central token: $STATUS (Central decides: 403)"
call -H "Authorization: Bearer not-a-central-token" "$REST/v1/v1/apitokens"
[ "$STATUS" = 401 ] || fail "passthrough with a token Central does not know: $STATUS"
echo "ok: passthrough: the caller's Authorization reaches Central instead of the bound one; Central's 401/403 decide"
kill "$NK_PID"

# 3. --read-only
start ro --read-only
call -X POST -H 'Content-Type: application/json' -d '{"name":"x"}' "$REST/v1/v1/apitokens/generate"
[ "$STATUS" = 403 ] || fail "read-only POST: $STATUS"
jq -e '(.detail|test("read-only"))' "$work/body" >/dev/null || fail "read-only POST body"
call "$REST/v1/v1/apitokens"
[ "$STATUS" = 200 ] || fail "read-only GET: $STATUS"
mcp_list
jq -e '[.result.tools[].annotations.readOnlyHint] | length == 2 and all' "$work/body" >/dev/null ||
    fail "read-only tools/list: $(jq -c '[.result.tools[].name]' "$work/body")"
mcp_call "$GEN" '{"name":"x"}'
jq -e '.error.code == -32602' "$work/body" >/dev/null || fail "read-only: calling generate was not refused"
echo "ok: --read-only: REST POST 403, GET 200; MCP lists 2 read-only tools and refuses generate"
kill "$NK_PID"

# 4. start-up refusals (nothing is bound: both stop before listening)
rc=0
STACKROX_API_KEY="Bearer $KEY" "$NAFTIKOD" serve "$CAP" --listen 0.0.0.0 --ops-listen off \
    --var "central-host=127.0.0.1:$CPORT" 2>"$work/nk-remote.log" || rc=$?
[ "$rc" = 1 ] || fail "non-loopback without authentication: exit $rc"
grep -q -- "--rest-auth token --auth-tokens FILE" "$work/nk-remote.log" ||
    fail "the refusal does not say how to fix it"
rc=0
STACKROX_API_KEY="Bearer $KEY" "$NAFTIKOD" serve "$CAP" --rest-port 0 --mcp-port 0 \
    --ops-listen off --mcp-auth token --var "central-host=127.0.0.1:$CPORT" \
    2>"$work/nk-notokens.log" || rc=$?
[ "$rc" = 1 ] && grep -q -- "--auth-tokens" "$work/nk-notokens.log" ||
    fail "token mode without --auth-tokens: exit $rc"
echo "ok: non-loopback without authentication and token mode without a tokens file refuse to start (exit 1) and say how to fix it"

# 5. limits: rate per client (429 + Retry-After), header size (431), connections per client,
# idle timeout
start limits --rate-limit 2 --rate-burst 2 --max-connections-per-client 2 \
    --max-header-bytes 4096 --idle-timeout 2 --request-timeout 3
codes=""
for _ in 1 2 3; do
    call "$REST/v1/v1/apitokens"
    codes="$codes$STATUS "
done
[ "$codes" = "200 200 429 " ] || fail "rate limit 2/s, burst 2: got $codes"
tr -d '\r' <"$work/headers" | grep -qi '^retry-after: [1-9]' || fail "429 without Retry-After"
jq -e '.status == 429' "$work/body" >/dev/null || fail "429 body"
sleep 1.2
call -H "X-Big: $(head -c 5000 /dev/zero | tr '\0' a)" "$REST/v1/v1/apitokens"
[ "$STATUS" = 431 ] || fail "a 5 KB header over --max-header-bytes 4096: $STATUS"
python3 - "${REST##*:}" <<'PY' || fail "connection limits"
import socket, sys, time
port = int(sys.argv[1])
# One at a time: with several loops (SO_REUSEPORT) a later connection may otherwise be accepted
# by another loop before an earlier one, and a different one of the three would be refused.
conns = []
for _ in range(3):
    conns.append(socket.create_connection(("127.0.0.1", port)))
    time.sleep(0.3)
conns[2].settimeout(3)
assert conns[2].recv(16) == b"", "a third connection from the same client was not refused"
conns[0].settimeout(6)
t = time.monotonic()
assert conns[0].recv(16) == b"", "an idle connection got data"
took = time.monotonic() - t
assert took < 5, "an idle connection was not closed by --idle-timeout 2 (took %.1f s)" % took
for c in conns:
    c.close()
time.sleep(0.5)
# slowloris: a header line every second never trips the idle timeout; the request deadline cuts it
s = socket.create_connection(("127.0.0.1", port))
s.sendall(b"GET /v1/v1/apitokens HTTP/1.1\r\nHost: x\r\n")
t = time.monotonic()
cut = None
for _ in range(12):
    try:
        s.sendall(b"X-Slow: a\r\n")
    except OSError:
        cut = time.monotonic() - t
        break
    s.settimeout(1)
    try:
        if s.recv(64) == b"":
            cut = time.monotonic() - t
            break
    except socket.timeout:
        pass
assert cut is not None and cut < 7, "a client trickling headers was not cut by --request-timeout 3"
PY
echo "ok: limits: 429 + Retry-After beyond 2 req/s, 431 beyond 4 KiB of headers, a 3rd connection from one client refused, an idle one closed after 2 s, a trickling one cut by the 3 s request deadline"
kill "$NK_PID"

for s in "$KEY" "$AGENT" "$RO"; do
    if grep -aq -- "$s" "$work/all-bodies" "$work"/nk-*.log; then
        fail "a credential appears in a response or a log line"
    fi
done
echo "ok: no credential or caller token in any response or log line"
