#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# hostile_http.sh: hostile HTTP against the real `naftikod serve` (token auth on both adapters,
# JSON logs) in front of the Central test double, over raw sockets so every byte reaches the
# daemon as written: the inbound check answers before the body is sent; ambiguous framing is
# refused and what follows it never runs as a second request; hundreds of query arguments get a
# prompt 414; every answer says nosniff; libmicrohttpd's warnings are JSON lines; passthrough
# refuses an empty Authorization. Nothing here may reach Central.
#
# usage: hostile_http.sh NAFTIKOD CENTRAL_DOUBLE SOURCE_DIR
#   env NK_ONLY="auth framing query nosniff log passthrough": run only these parts
set -euo pipefail
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"

nk_args "$@"
AGENT="agent-token-not-a-secret-5678" # a caller token of naftikod's own
nk_init hostile
nk_start_double
printf '%s\n' "$AGENT" | "$NAFTIKOD" hash-token agent-1 >"$work/tokens" || fail "hash-token"
nk_serve nk "$CAP" --ops-listen off --var "central-host=127.0.0.1:$CPORT" \
    --ca-file "$work/central.crt" --rest-auth token --mcp-auth token \
    --auth-tokens "$work/tokens" --log-format json
RPORT=${REST##*:}
MPORT=${MCP##*:}
MPORT=${MPORT%/mcp}
part() { [ -z "${NK_ONLY:-}" ] || [[ " $NK_ONLY " == *" $1 "* ]]; }

# raw.py PORT: send standard input as it is, then read until the daemon closes the connection
# (never sending anything more); the answer on standard output. Exit 3 when the daemon kept the
# connection open for 10 s.
cat >"$work/raw.py" <<'EOF'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.settimeout(10)
s.sendall(sys.stdin.buffer.read())
out = b""
try:
    while True:
        d = s.recv(65536)
        if not d:
            break
        out += d
except socket.timeout:
    sys.stdout.buffer.write(out)
    sys.exit(3)
except ConnectionResetError:
    pass
sys.stdout.buffer.write(out)
EOF
# raw WHAT PORT: send $work/req; the answer in $work/resp (headers without CR), its body in
# $work/body, STATUS, ANSWERS (status lines in it); fails unless the daemon closed the
# connection.
raw() {
    local st=0
    python3 "$work/raw.py" "$2" <"$work/req" >"$work/resp.raw" || st=$?
    [ "$st" = 0 ] || fail "$1: the daemon did not close the connection within 10 s (exit $st)"
    tr -d '\r' <"$work/resp.raw" >"$work/resp"
    sed -n '/^$/,$p' "$work/resp" | sed 1d >"$work/body"
    STATUS=$(head -n1 "$work/resp" | cut -d' ' -f2)
    ANSWERS=$(grep -c '^HTTP/1\.' "$work/resp" || true)
}
header() { grep -i "^$1: " "$work/resp" | head -n1 | cut -d' ' -f2-; }
expect_problem() { # WHAT STATUS: one answer, a problem document with that status
    [ "$STATUS" = "$2" ] || fail "$1: expected $2, got '$STATUS'"
    [ "$ANSWERS" = 1 ] || fail "$1: $ANSWERS answers on one connection"
    [ "$(header Content-Type)" = application/problem+json ] || fail "$1: not a problem document"
    jq -e ".status == $2 and (.detail|type) == \"string\"" "$work/body" >/dev/null ||
        fail "$1: body is not a problem document"
    [ "$(header X-Content-Type-Options)" = nosniff ] || fail "$1: no nosniff"
}
seen_by_central() { # how many requests Central recorded
    nk_requests | jq length
}
AUTH="Authorization: Bearer $AGENT"

if part auth; then
    # Only the head, announcing a MiB: the 401 must come without the body ever being sent.
    before=$(seen_by_central)
    printf 'POST /v1/v1/apitokens/generate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1048576\r\n\r\n' >"$work/req"
    raw "REST head without a token" "$RPORT"
    expect_problem "REST head without a token" 401
    [ "$(header WWW-Authenticate)" = 'Bearer realm="naftikod"' ] || fail "REST 401: no challenge"
    [ "$(header Connection)" = close ] || fail "REST 401: the connection is kept"
    printf 'POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nAuthorization: Bearer wrong-token-wrong-token\r\nContent-Length: 1048576\r\n\r\n' >"$work/req"
    raw "MCP head with a wrong token" "$MPORT"
    [ "$STATUS" = 401 ] || fail "MCP head with a wrong token: $STATUS"
    jq -e '.error == "unauthorized"' "$work/body" >/dev/null || fail "MCP 401 body"
    [ "$(header WWW-Authenticate)" = 'Bearer realm="naftikod"' ] || fail "MCP 401: no challenge"
    [ "$(seen_by_central)" = "$before" ] || fail "a refused request reached Central"
    # With the token the same adapter reads the body and answers.
    s=$(curl -sS --max-time 10 -o /dev/null -w '%{http_code}' -H "$AUTH" "$REST/v1/v1/apitokens")
    [ "$s" = 200 ] || fail "REST with the token: $s"
    pass "a missing or wrong token is answered 401 from the head alone; the connection closes"
fi

if part framing; then
    # A second request hides behind each head; it carries the token, so it would be served
    # (and reach Central) if the daemon ran it.
    SMUGGLED="GET /v1/v1/apitokens HTTP/1.1\r\nHost: 127.0.0.1\r\n$AUTH\r\nX-Request-Id: smuggled-1\r\n\r\n"
    n=$(printf '%b' "$SMUGGLED" | wc -c)
    HEAD="GET /v1/v1/apitokens HTTP/1.1\r\nHost: 127.0.0.1\r\n$AUTH\r\n"
    cases=(
        "400|two Content-Length|${HEAD}Content-Length: 0\r\nContent-Length: $n\r\n\r\n$SMUGGLED"
        "400|Content-Length with a space before the colon|${HEAD}Content-Length : $n\r\n\r\n$SMUGGLED"
        "400|Content-Length and Transfer-Encoding|${HEAD}Transfer-Encoding: chunked\r\nContent-Length: $n\r\n\r\n0\r\n\r\n$SMUGGLED"
        "501|Transfer-Encoding: gzip, chunked|${HEAD}Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n$SMUGGLED"
    )
    for c in "${cases[@]}"; do
        IFS='|' read -r want what req <<<"$c"
        printf '%b' "$req" >"$work/req"
        raw "REST: $what" "$RPORT"
        expect_problem "REST: $what" "$want"
        [ "$(header Connection)" = close ] || fail "REST: $what: the connection is kept"
        printf '%b' "${req/\/v1\/v1\/apitokens/\/mcp}" >"$work/req"
        raw "MCP: $what" "$MPORT"
        expect_problem "MCP: $what" "$want"
    done
    nk_requests | jq -e 'all(.[]; all(.headers[]; .[1] != "smuggled-1"))' >/dev/null ||
        fail "a smuggled request reached Central"
    pass "ambiguous framing is refused before the body and nothing after it runs"
fi

if part query; then
    q=$(seq 600 | sed 's/.*/p&=v/' | paste -sd'&')
    printf 'GET /v1/v1/apitokens?%s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s\r\n\r\n' "$q" "$AUTH" >"$work/req"
    raw "600 query arguments" "$RPORT"
    expect_problem "600 query arguments" 414
    printf 'POST /mcp?%s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s\r\nContent-Length: 2\r\n\r\n{}' "$q" "$AUTH" >"$work/req"
    raw "600 query arguments (MCP)" "$MPORT"
    expect_problem "600 query arguments (MCP)" 414
    pass "600 query arguments: a prompt 414 problem"
fi

if part nosniff; then
    for u in "$REST/v1/v1/apitokens" "$REST/v1/nowhere" "$MCP"; do
        for a in "$AUTH" "X-No-Auth: 1"; do
            curl -sS --max-time 10 -o /dev/null -D "$work/h" -H "$a" "$u" || fail "curl $u"
            tr -d '\r' <"$work/h" | grep -qx 'X-Content-Type-Options: nosniff' ||
                fail "no nosniff on $u ($(head -n1 "$work/h"))"
        done
    done
    pass "every answer carries X-Content-Type-Options: nosniff"
fi

if part log; then
    # The default (16 KiB) still takes a head of 10 KB (say, a large token and tracing headers).
    { printf 'GET /v1/v1/apitokens HTTP/1.1\r\nHost: 127.0.0.1\r\n%s\r\nConnection: close\r\n' "$AUTH"
      printf 'X-Big: %010000d\r\n\r\n' 0; } >"$work/req"
    raw "a 10 KB head" "$RPORT"
    [ "$STATUS" = 200 ] || fail "a 10 KB head under the 16 KiB default: $STATUS"
    # Headers beyond --max-header-bytes: libmicrohttpd answers 431 and says so in the log.
    { printf 'GET /v1/v1/apitokens HTTP/1.1\r\nHost: 127.0.0.1\r\n'
      printf 'X-Big: %040000d\r\n\r\n' 0; } >"$work/req"
    raw "oversized headers" "$RPORT"
    [ "$STATUS" = 431 ] || fail "oversized headers: $STATUS"
    wait_until grep -q '"msg":"httpd: ' "$work/nk.log" || fail "no httpd warning in the log"
    while IFS= read -r line; do
        jq -e 'type == "object" and (.msg|type) == "string"' <<<"$line" >/dev/null 2>&1 ||
            fail "a log line is not JSON: $line"
    done <"$work/nk.log"
    pass "libmicrohttpd's warnings follow --log-format json"
fi

if part passthrough; then
    nk_stop
    nk_serve pt "$CAP" --ops-listen off --var "central-host=127.0.0.1:$CPORT" \
        --ca-file "$work/central.crt" --rest-auth passthrough
    RPORT=${REST##*:}
    for v in "" "   " "	"; do
        printf 'GET /v1/v1/apitokens HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization:%s\r\nX-Request-Id: empty-auth\r\nConnection: close\r\n\r\n' "$v" >"$work/req"
        raw "passthrough, Authorization '$v'" "$RPORT"
        expect_problem "passthrough, Authorization '$v'" 401
        [ "$(header WWW-Authenticate)" = 'Bearer realm="naftikod"' ] || fail "passthrough 401: no challenge"
    done
    nk_requests | jq -e 'all(.[]; all(.headers[]; .[1] != "empty-auth"))' >/dev/null ||
        fail "a request with an empty Authorization reached Central"
    s=$(curl -sS --max-time 10 -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $KEY" \
        "$REST/v1/v1/apitokens")
    [ "$s" = 200 ] || fail "passthrough with a credential: $s"
    pass "passthrough: an empty or blank Authorization is a 401 and never goes upstream"
fi

nk_stop
