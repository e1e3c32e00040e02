#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# rest_e2e.sh: drive the real `naftikod serve` REST adapter against the StackRox Central test
# double over TLS (a CA made here, passed with --ca-file), and assert with curl + jq.
#
# usage: rest_e2e.sh NAFTIKOD CENTRAL_DOUBLE SOURCE_DIR CASE
# CASE: crud | encoding | validation | routing | passthrough | unreachable | timeout | openapi |
#       signals | async | spectral
set -euo pipefail
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"

nk_args "$@"
CASE=$4
nk_init "rest-$CASE" "$CASE"

# start_naftikod HOST:PORT [extra flags]: sets REST, NK_PID (no ops listener).
start_naftikod() {
    local host=$1
    shift
    nk_serve naftikod "$CAP" --ops-listen off --var "central-host=$host" \
        --ca-file "$work/central.crt" "$@"
    [ -n "$REST" ] || fail "no rest= line in the port file: $(cat "$work/naftikod.ports")"
}

# req METHOD PATH [curl args...]: sets STATUS; body in $work/body, headers in $work/headers.
req() {
    local method=$1 path=$2
    shift 2
    STATUS=$(curl -sS --path-as-is --max-time 20 -o "$work/body" -D "$work/headers" \
        -w '%{http_code}' -X "$method" "$REST$path" "$@") ||
        fail "curl $method $path failed"
}

# direct METHOD PATH [curl args...]: the same request straight to the double; body in
# $work/direct.
direct() {
    local method=$1 path=$2
    shift 2
    DSTATUS=$(curl -sS --path-as-is --max-time 20 --cacert "$work/central.crt" \
        -o "$work/direct" -w '%{http_code}' -X "$method" \
        -H "Authorization: Bearer $KEY" "https://127.0.0.1:$CPORT$path" "$@") ||
        fail "direct $method $path failed"
}

header() {
    tr -d '\r' <"$work/headers" | sed -n "s/^$1: //Ip" | head -n1
}

expect_status() {
    [ "$STATUS" = "$1" ] || fail "$2: expected status $1, got $STATUS"
}

# The recorded upstream requests that carried X-Request-Id $1.
recorded() {
    nk_requests |
        jq -c --arg id "$1" '[.[] | select(any(.headers[]; (.[0]|ascii_downcase) == "x-request-id" and .[1] == $id))]'
}

expect_problem() {
    local status=$1 what=$2
    expect_status "$status" "$what"
    header Content-Type | grep -qi '^application/problem+json' ||
        fail "$what: content type is $(header Content-Type), not application/problem+json"
    jq -e --argjson s "$status" '.status == $s and (.type|type) == "string" and
        (.title|type) == "string" and (.detail|type) == "string"' "$work/body" >/dev/null ||
        fail "$what: not an RFC 9457 problem body"
    [ -n "$(header X-Request-Id)" ] || fail "$what: no X-Request-Id"
}

nothing_sent() {
    local n
    n=$(recorded "$1" | jq length)
    [ "$n" = 0 ] || fail "$2: $n request(s) reached Central"
}

case_crud() {
    local id json
    nk_start_double
    start_naftikod "127.0.0.1:$CPORT"

    req POST /v1/v1/apitokens/generate -H 'Content-Type: application/json' \
        -H 'X-Request-Id: it-gen-1' -d '{"name":"it-token","roles":["Analyst"]}'
    expect_status 200 "generate"
    [ "$(header X-Request-Id)" = "it-gen-1" ] || fail "generate: X-Request-Id not echoed"
    header Content-Type | grep -qi '^application/json' || fail "generate: content type"
    jq -e '(.token|type) == "string" and .metadata.name == "it-token" and
        .metadata.revoked == false and .metadata.role == "Analyst"' "$work/body" >/dev/null ||
        fail "generate: unexpected answer"
    id=$(jq -r .metadata.id "$work/body")
    pass "generate -> 200, token id $id"

    json=$(recorded it-gen-1)
    [ "$(jq length <<<"$json")" = 1 ] || fail "generate: expected one upstream request"
    jq -e --arg k "Bearer $KEY" '.[0].authorization == [$k] and .[0].method == "POST" and
        .[0].uri == "/v1/apitokens/generate"' <<<"$json" >/dev/null ||
        fail "generate: upstream request wrong: $json"
    jq -e '.[0].body | fromjson | .name == "it-token" and .roles == ["Analyst"]' \
        <<<"$json" >/dev/null || fail "generate: upstream body wrong: $json"
    pass "upstream got exactly one Authorization header with the bound value"

    req GET /v1/v1/apitokens -H 'X-Request-Id: it-list-1'
    expect_status 200 "list"
    direct GET /v1/apitokens
    jq -e --slurpfile d "$work/direct" '. == $d[0]' "$work/body" >/dev/null ||
        fail "list differs from Central's answer"
    jq -e --arg id "$id" 'any(.tokens[]; .id == $id)' "$work/body" >/dev/null ||
        fail "list lacks the new token"
    pass "list == Central's answer"

    req GET "/v1/v1/apitokens/$id"
    expect_status 200 "get"
    direct GET "/v1/apitokens/$id"
    jq -e --slurpfile d "$work/direct" '. == $d[0]' "$work/body" >/dev/null ||
        fail "get differs from Central's answer"
    jq -e --arg id "$id" '.id == $id and .revoked == false' "$work/body" >/dev/null ||
        fail "get: wrong token"
    pass "get by id == Central's answer"

    req PATCH "/v1/v1/apitokens/revoke/$id" -H 'X-Request-Id: it-revoke-1'
    expect_status 200 "revoke"
    jq -e '. == {}' "$work/body" >/dev/null || fail "revoke: expected {}"
    jq -e '.[0].method == "PATCH"' <<<"$(recorded it-revoke-1)" >/dev/null ||
        fail "revoke: not a PATCH upstream"
    pass "revoke -> 200 {}"

    req GET '/v1/v1/apitokens?revoked=true' -H 'X-Request-Id: it-list-2'
    expect_status 200 "list revoked"
    direct GET '/v1/apitokens?revoked=true'
    jq -e --slurpfile d "$work/direct" '. == $d[0]' "$work/body" >/dev/null ||
        fail "list ?revoked=true differs from Central's answer"
    jq -e --arg id "$id" 'any(.tokens[]; .id == $id and .revoked == true)' "$work/body" \
        >/dev/null || fail "list ?revoked=true lacks the revoked token"
    jq -e '.[0].uri == "/v1/apitokens?revoked=true"' <<<"$(recorded it-list-2)" >/dev/null ||
        fail "list revoked: upstream uri $(recorded it-list-2)"
    req GET '/v1/v1/apitokens?revoked=false'
    expect_status 200 "list unrevoked"
    jq -e --arg id "$id" 'all(.tokens[]; .id != $id)' "$work/body" >/dev/null ||
        fail "?revoked=false still lists the revoked token"
    pass "list ?revoked=true/false == Central's answer"

    wait_until grep -q "access GET /v1/v1/apitokens 200" "$work/naftikod.log" || fail "no access log line"
    if grep -q "$KEY" "$work/naftikod.log"; then
        fail "the credential appears in the log"
    fi
    pass "access log lines present, credential never logged"
}

case_encoding() {
    local raw enc want json
    nk_start_double
    start_naftikod "127.0.0.1:$CPORT"
    # The id: a/b/../c?d#e%f g-é  (slash, dot-dot, ?, #, %, space, non-ASCII)
    enc='a%2Fb%2F..%2Fc%3Fd%23e%25f%20g-%C3%A9'
    want="/v1/apitokens/$enc"
    req GET "/v1/v1/apitokens/$enc" -H 'X-Request-Id: it-enc-1'
    json=$(recorded it-enc-1)
    [ "$(jq length <<<"$json")" = 1 ] || fail "encoded id: expected one upstream request: $json"
    raw=$(jq -r '.[0].uri' <<<"$json")
    [ "$raw" = "$want" ] || fail "encoded id reached Central as $raw, expected $want"
    # Central answers 400 for an unknown id; its message names the decoded id.
    expect_status 400 "unknown encoded id"
    jq -e '.message | contains("a/b/../c?d#e%f g-é")' "$work/body" >/dev/null ||
        fail "Central's message does not carry the decoded id"
    pass "id with / .. ? # % space é reached Central as ONE encoded segment: $raw"

    req PATCH "/v1/v1/apitokens/revoke/$enc" -H 'X-Request-Id: it-enc-2'
    raw=$(recorded it-enc-2 | jq -r '.[0].uri')
    [ "$raw" = "/v1/apitokens/revoke/$enc" ] || fail "revoke: encoded id reached Central as $raw"
    pass "revoke with the same id: one segment"

    # A literal (unencoded) dot-dot segment is just a different path: no traversal upstream.
    req GET "/v1/v1/apitokens/x/../y" -H 'X-Request-Id: it-enc-3'
    expect_problem 404 "dot-dot path"
    nothing_sent it-enc-3 "dot-dot path"
    pass "raw /x/../y is 404, nothing sent upstream"
}

case_validation() {
    nk_start_double
    start_naftikod "127.0.0.1:$CPORT"

    req GET '/v1/v1/apitokens?revoked=maybe' -H 'X-Request-Id: it-val-1'
    expect_problem 400 "revoked=maybe"
    jq -e '.detail | contains("revoked")' "$work/body" >/dev/null ||
        fail "revoked=maybe: detail does not name revoked"
    nothing_sent it-val-1 "revoked=maybe"
    pass "revoked=maybe -> 400 naming revoked, nothing sent upstream"

    req GET '/v1/v1/apitokens?revoked=true&revoked=false' -H 'X-Request-Id: it-val-2'
    expect_problem 400 "duplicate revoked"
    jq -e '.detail | contains("revoked")' "$work/body" >/dev/null ||
        fail "duplicate revoked: detail does not name revoked"
    nothing_sent it-val-2 "duplicate revoked"
    pass "?revoked=true&revoked=false -> 400 naming revoked"

    req GET '/v1/v1/apitokens?unknown=1' -H 'X-Request-Id: it-val-3'
    expect_status 200 "unknown query parameter"
    jq -e '.[0].uri == "/v1/apitokens"' <<<"$(recorded it-val-3)" >/dev/null ||
        fail "unknown query parameter was forwarded"
    pass "unknown query parameters are ignored (not forwarded)"

    req POST /v1/v1/apitokens/generate -H 'Content-Type: text/plain' \
        -H 'X-Request-Id: it-val-4' -d '{"name":"x"}'
    expect_problem 415 "text/plain body"
    nothing_sent it-val-4 "text/plain body"
    pass "text/plain body -> 415"

    req POST /v1/v1/apitokens/generate -H 'Content-Type: application/json' \
        -H 'X-Request-Id: it-val-5' --data-binary $'{\n  "name": '
    expect_problem 400 "malformed JSON"
    jq -e '.detail | test("line 2, column [0-9]+")' "$work/body" >/dev/null ||
        fail "malformed JSON: no line/column in $(cat "$work/body")"
    nothing_sent it-val-5 "malformed JSON"
    pass "malformed JSON -> 400 with line/column"

    req POST /v1/v1/apitokens/generate -H 'Content-Type: application/json' \
        -H 'X-Request-Id: it-val-6' -d '["not","an","object"]'
    expect_problem 400 "array body"
    jq -e '.detail | contains("object")' "$work/body" >/dev/null || fail "array body: detail"
    nothing_sent it-val-6 "array body"
    pass "JSON array body -> 400 (must be an object)"

    req POST /v1/v1/apitokens/generate -H 'X-Request-Id: it-val-7'
    expect_problem 400 "missing body"
    nothing_sent it-val-7 "missing body"
    pass "missing required body -> 400"
}

case_routing() {
    local big
    nk_start_double
    start_naftikod "127.0.0.1:$CPORT" --max-body 1024

    req GET /v1/v1/nope
    expect_problem 404 "unknown path"
    req GET /v1/v1/apitokens/
    expect_problem 404 "trailing slash"
    pass "unknown path -> 404 problem JSON"

    req DELETE /v1/v1/apitokens
    expect_problem 405 "DELETE list"
    [ "$(header Allow)" = "GET" ] || fail "405: Allow is '$(header Allow)', expected GET"
    req PUT /v1/v1/apitokens/generate
    expect_problem 405 "PUT generate"
    # /generate is POST; GET also matches /{id}; PUT matches neither.
    header Allow | grep -q POST || fail "405 generate: Allow '$(header Allow)' lacks POST"
    header Allow | grep -q GET || fail "405 generate: Allow '$(header Allow)' lacks GET"
    pass "wrong method -> 405 with Allow ($(header Allow))"

    # GET on the literal /generate path is the {id} route with id "generate" (POST is generate).
    req GET /v1/v1/apitokens/generate -H 'X-Request-Id: it-prec'
    jq -e '.[0].method == "GET" and .[0].uri == "/v1/apitokens/generate"' \
        <<<"$(recorded it-prec)" >/dev/null || fail "GET /generate: $(recorded it-prec)"
    pass "GET /generate falls back to the {id} route"

    req GET /v1/v1/apitokens/a%00b -H 'X-Request-Id: it-nul'
    expect_problem 400 "encoded NUL in an id"
    nothing_sent it-nul "encoded NUL"
    req GET /v1/v1/apitokens/a%zzb -H 'X-Request-Id: it-badpct'
    expect_problem 400 "malformed escape in an id"
    nothing_sent it-badpct "malformed escape"
    req GET /v1/v1/apitokens/%FF%FE -H 'X-Request-Id: it-utf8'
    expect_problem 400 "id not UTF-8"
    nothing_sent it-utf8 "id not UTF-8"
    pass "%00, %zz and non-UTF-8 ids -> 400, nothing sent upstream"

    big=$(head -c 2000 /dev/zero | tr '\0' 'x')
    req POST /v1/v1/apitokens/generate -H 'Content-Type: application/json' \
        -H 'X-Request-Id: it-413' -d "{\"name\":\"$big\"}"
    expect_problem 413 "body over --max-body"
    [ "$(header X-Request-Id)" = "it-413" ] || fail "413: request id not echoed"
    nothing_sent it-413 "413"
    pass "body over --max-body -> 413 problem JSON"

    req GET /v1/v1/apitokens -H 'X-Request-Id: bad id!'
    expect_status 200 "unsafe request id"
    [ "$(header X-Request-Id)" != "bad id!" ] && [ -n "$(header X-Request-Id)" ] ||
        fail "unsafe incoming request id was not replaced"
    pass "unsafe incoming X-Request-Id replaced by a generated one"
}

case_passthrough() {
    nk_start_double --split-encoded-slash
    start_naftikod "127.0.0.1:$CPORT"

    req GET /v1/v1/apitokens/no-such-id
    direct GET /v1/apitokens/no-such-id
    [ "$STATUS" = "$DSTATUS" ] && [ "$STATUS" = 400 ] ||
        fail "unknown id: status $STATUS, Central said $DSTATUS"
    jq -e --slurpfile d "$work/direct" '. == $d[0]' "$work/body" >/dev/null ||
        fail "Central's 400 body was not passed through"
    jq -e '.message == "token with id '"'no-such-id'"' does not exist: invalid arguments"' \
        "$work/body" >/dev/null || fail "Central's 400 message changed"
    header Content-Type | grep -qi '^application/json' || fail "400: content type not kept"
    pass "Central's 400 passed through with its message"

    req PATCH /v1/v1/apitokens/revoke/no-such-id
    expect_status 500 "revoke unknown id"
    jq -e '.message == "token with id '"'no-such-id'"' does not exist"' "$work/body" \
        >/dev/null || fail "Central's 500 message changed"
    pass "Central's 500 passed through with its message"

    # This double decodes the whole path like Central, so an encoded slash makes it 404.
    req GET /v1/v1/apitokens/a%2Fb
    direct GET /v1/apitokens/a%2Fb
    [ "$STATUS" = 404 ] && [ "$DSTATUS" = 404 ] ||
        fail "split slash: status $STATUS, Central said $DSTATUS"
    cmp -s "$work/body" "$work/direct" || fail "Central's 404 body was not passed through"
    pass "Central's 404 passed through"
}

case_unreachable() {
    local port
    nk_start_double
    port=$CPORT
    kill "$DOUBLE_PID"
    wait "$DOUBLE_PID" 2>/dev/null || true
    start_naftikod "127.0.0.1:$port"
    req GET /v1/v1/apitokens
    expect_problem 502 "Central down"
    pass "Central down -> 502 problem ($(jq -r .detail "$work/body"))"
}

case_timeout() {
    nk_start_double
    start_naftikod "127.0.0.1:$CPORT" --timeout 1000
    nk_fault '{"mode":"stall","seconds":30,"count":1}'
    req GET /v1/v1/apitokens
    expect_problem 504 "stalled Central"
    pass "stalled Central -> 504 problem ($(jq -r .detail "$work/body"))"
    req GET /v1/v1/apitokens
    expect_status 200 "after the stall"
    pass "next call after the stall -> 200"
}

case_openapi() {
    nk_start_double
    start_naftikod "127.0.0.1:$CPORT"
    req GET /openapi.json
    expect_status 200 "openapi"
    jq -e '.openapi == "3.1.0" and (.info.title|length) > 0 and
        .paths["/v1/v1/apitokens"].get.operationId == "getapitokens" and
        .paths["/v1/v1/apitokens/generate"].post.requestBody.content["application/json"] and
        .paths["/v1/v1/apitokens/{id}"].get.parameters[0].in == "path" and
        .paths["/v1/v1/apitokens/revoke/{id}"].patch and
        (.paths["/v1/v1/apitokens"].get.parameters[] | select(.name == "revoked") |
         .schema.type == "boolean")' "$work/body" >/dev/null ||
        fail "openapi document lacks what the table has"
    pass "GET /openapi.json parses: $(jq '.paths|length' "$work/body") paths"
}

case_spectral() {
    local spectral="$SRC/build/npm/node_modules/.bin/spectral"
    [ -x "$spectral" ] || spectral=$(command -v spectral || true)
    if [ -z "$spectral" ] || [ ! -x "$spectral" ]; then
        if [ -n "${NK_REQUIRE_SPECTRAL:-}" ]; then
            fail "spectral is not installed (scripts/deps.sh --test installs it)"
        fi
        echo "spectral not installed: skipped"
        exit 77
    fi
    nk_start_double
    start_naftikod "127.0.0.1:$CPORT"
    req GET /openapi.json
    expect_status 200 "openapi"
    cp "$work/body" "$work/openapi.json"
    (cd "$work" && "$spectral" lint --ruleset "$SRC/tests/integration/spectral.yaml" \
        --fail-severity hint --format text openapi.json) >"$work/spectral.out" 2>&1 || {
        cat "$work/spectral.out" >&2
        fail "spectral found problems"
    }
    cat "$work/spectral.out"
    pass "spectral lint (spectral:oas): clean"
}

case_async() {
    local i bg=() n
    nk_start_double
    start_naftikod "127.0.0.1:$CPORT"
    # Stall the next 6 upstream calls (a thread per request would run out) ...
    nk_fault '{"mode":"stall","seconds":20,"count":6}'
    for i in 1 2 3 4 5 6; do
        curl -sS --max-time 30 -o /dev/null -w '%{http_code}' -H "X-Request-Id: it-stall-$i" \
            "$REST/v1/v1/apitokens" >"$work/stall.$i" 2>/dev/null &
        bg+=($!)
    done
    for _ in $(seq 200); do
        n=$(nk_requests | jq '[.[] | select(.uri == "/v1/apitokens")] | length')
        [ "$n" = 6 ] && break
        sleep 0.05
    done
    [ "$n" = 6 ] || fail "only $n of 6 stalled calls reached Central"
    # ... and while all six wait upstream, naftikod still answers, upstream calls included.
    req GET /v1/v1/apitokens -H 'X-Request-Id: it-after-stall'
    expect_status 200 "call while 6 calls are stalled upstream"
    req GET /openapi.json
    expect_status 200 "openapi while 6 calls are stalled upstream"
    for i in 1 2 3 4 5 6; do
        [ ! -s "$work/stall.$i" ] || fail "stalled call $i finished early: $(cat "$work/stall.$i")"
    done
    pass "6 calls stalled upstream hold no server thread: other requests answered meanwhile"
    # Central's SIGTERM wakes the stalled calls; they then complete.
    kill -TERM "$DOUBLE_PID"
    for i in "${bg[@]}"; do wait "$i" || true; done
    pass "stalled calls completed after Central released them"
}

drain_reached() {
    [ "$(recorded it-drain | jq length)" = 1 ]
}

case_signals() {
    local out
    nk_start_double
    start_naftikod "127.0.0.1:$CPORT"
    kill -HUP "$NK_PID"
    wait_until grep -q "reload: new table in force" "$work/naftikod.log" ||
        fail "SIGHUP reload not logged"
    req GET /v1/v1/apitokens
    expect_status 200 "after SIGHUP"
    pass "SIGHUP reloaded the (unchanged) capability; still serving"

    # A request in flight when SIGTERM arrives is drained, then naftikod exits 0.
    nk_fault '{"mode":"stall","seconds":1,"count":1}'
    curl -sS --max-time 20 -o "$work/inflight" -w '%{http_code}' \
        -H 'X-Request-Id: it-drain' "$REST/v1/v1/apitokens" >"$work/inflight.code" &
    out=$!
    wait_until drain_reached || fail "in-flight request never reached Central"
    nk_stop
    wait "$out" || true
    [ "$(cat "$work/inflight.code")" = 200 ] ||
        fail "in-flight request got $(cat "$work/inflight.code") during the drain"
    grep -q "drained" "$work/naftikod.log" || fail "no drain log line"
    pass "SIGTERM drained the in-flight request (200) and exited 0"
}

case "$CASE" in
crud | encoding | validation | routing | passthrough | unreachable | timeout | openapi | \
    signals | async | spectral)
    "case_$CASE"
    # Every case ends with a clean shutdown: exit 0 (under ASan this also means no leak).
    if [ -n "$NK_PID" ] && kill -0 "$NK_PID" 2>/dev/null; then
        nk_stop
    fi
    ;;
*)
    echo "unknown case $CASE" >&2
    exit 2
    ;;
esac
echo "PASS [$CASE]"
