#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# family.sh: one daemon for a family of capabilities (issue 14). Documents of one generator
# (tests/gen_family.py) share the bind, the consumer authentication, the REST port and the MCP
# port: served from a directory, every adapter on one REST listener and one MCP endpoint.
#
# usage: family.sh NAFTIKOD CENTRAL_DOUBLE SOURCE_DIR CASE
# CASE: conflicts | serve40 | reload
set -euo pipefail
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"

nk_args "$@"
CASE=$4
nk_init "family-$CASE" "$CASE"
MULTI="$SRC/tests/data/spec/multi"

META='"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}'
MH=(-H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream'
    -H 'MCP-Protocol-Version: 2026-07-28')
mcp() { # mcp METHOD PARAMS_JSON_MEMBERS [Mcp-Name]: the JSON-RPC answer in $work/body
    local name=${3:-}
    curl -sS --max-time 20 -o "$work/body" -X POST "$MCP" "${MH[@]}" -H "Mcp-Method: $1" \
        ${name:+-H "Mcp-Name: $name"} \
        -d "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"$1\",\"params\":{$2${2:+,}$META}}" ||
        fail "MCP $1 failed"
}
# all_tools: every tool name over every tools/list page, one a line, into $work/tools
all_tools() {
    local cursor="" pages=0
    : >"$work/tools"
    while :; do
        mcp tools/list "${cursor:+\"cursor\":\"$cursor\"}"
        jq -e '.result.tools' "$work/body" >/dev/null || fail "tools/list: $(cat "$work/body")"
        jq -r '.result.tools[].name' "$work/body" >>"$work/tools"
        pages=$((pages + 1))
        cursor=$(jq -r '.result.nextCursor // empty' "$work/body")
        [ -n "$cursor" ] || break
        [ "$pages" -lt 1000 ] || fail "tools/list: more than 1000 pages"
    done
    PAGES=$pages
}

case $CASE in
conflicts)
    # every conflict names both places, FILE:LINE:COL
    for d in route-clash tool-clash bind-conflict consumer-conflict rest-mcp-port; do
        if "$NAFTIKOD" check "$MULTI/$d" >"$work/check.out" 2>&1; then
            fail "check $d: accepted"
        fi
        grep -Eq "$MULTI/$d/b\.yaml:[0-9]+:[0-9]+: error: .*$MULTI/$d/a\.yaml:[0-9]+:[0-9]+" \
            "$work/check.out" || fail "check $d: both places not named: $(cat "$work/check.out")"
        pass "check $d: $(cut -d: -f4- "$work/check.out" | head -n1 | cut -c1-80)..."
    done
    # identical binds and consumers merge; different ports do not clash
    for d in merge ports-after-options; do
        "$NAFTIKOD" check "$MULTI/$d" >"$work/check.out" 2>&1 ||
            fail "check $d: $(cat "$work/check.out")"
    done
    pass "identical binds and consumers merge"
    # the port options apply before conflicts are judged: one REST port for both -> a clash
    if nk_launch clash "API_KEY=x" -- --rest-port 0 --ops-listen off "$MULTI/ports-after-options"; then
        fail "--rest-port 0 put two GET /x/{id} routes on one listener and served them"
    fi
    grep -q "route GET /x/{id} of adapter 'b-rest' is also served by adapter 'a-rest'" \
        "$work/clash.log" || fail "no route clash after --rest-port 0: $(cat "$work/clash.log")"
    pass "--rest-port applies before the route conflicts are judged"
    # a tool name used twice: served with --mcp-tool-prefix namespace
    nk_launch prefix "API_KEY=x" -- --mcp-port 0 --ops-listen off --mcp-tool-prefix namespace \
        "$MULTI/tool-clash" || fail "tool-clash with --mcp-tool-prefix namespace did not start"
    all_tools
    [ "$(sort "$work/tools" | tr '\n' ' ')" = "a__get-thing b__get-thing " ] ||
        fail "prefixed tools: $(cat "$work/tools")"
    pass "--mcp-tool-prefix namespace: a__get-thing and b__get-thing on one endpoint"
    nk_stop
    ;;
serve40)
    python3 "$SRC/tests/gen_family.py" --count 40 --out "$work/caps"
    mapfile -t RES < <(for f in "$work"/caps/*.yaml; do
        sed -n 's|^      path: /v1/\([a-z0-9]*\)$|\1|p' "$f" | head -n1; done | grep .)
    cp "$CAP" "$work/caps/" # the bundled document is one of the family
    nk_start_double
    nk_serve naftikod "$work/caps" --ops-listen 127.0.0.1:0 --var "central-host=127.0.0.1:$CPORT" \
        --ca-file "$work/central.crt" --mcp-page-size 7
    [ "$(grep -c '^rest=' "$work/naftikod.ports")" = 1 ] || fail "not one REST listener"
    [ "$(grep -c '^mcp=' "$work/naftikod.ports")" = 1 ] || fail "not one MCP listener"
    all_tools
    [ "$(sort -u "$work/tools" | wc -l)" = 44 ] || fail "tools/list: $(wc -l <"$work/tools") tools"
    [ "$PAGES" = 7 ] || fail "44 tools in pages of 7: $PAGES pages"
    pass "one MCP endpoint: 44 tools of 41 documents over $PAGES pages"
    [ "${#RES[@]}" = 40 ] || fail "resources of the generated documents: ${#RES[@]}"
    for r in "${RES[@]}"; do
        mcp tools/call "\"name\":\"list-$r\",\"arguments\":{}" "list-$r"
        jq -e '.result.content' "$work/body" >/dev/null || fail "tools/call list-$r: $(cat "$work/body")"
        case $r in ping | alerts | deployments | images | policies)
            jq -e '.result.isError != true' "$work/body" >/dev/null ||
                fail "tools/call list-$r: $(cat "$work/body")" ;;
        esac
        st=$(curl -sS --max-time 20 -o "$work/rbody" -w '%{http_code}' "$REST/v1/v1/$r") ||
            fail "GET /v1/v1/$r"
        case $r in ping | alerts | deployments | images | policies)
            [ "$st" = 200 ] || fail "GET /v1/v1/$r: $st $(cat "$work/rbody")" ;;
        esac
    done
    jq -e '.result.structuredContent // .result.content' "$work/body" >/dev/null
    nk_requests >"$work/requests"
    for r in "${RES[@]}"; do
        n=$(jq --arg p "/v1/$r" '[.[] | select(.path == $p and .method == "GET")] | length' \
            "$work/requests")
        [ "$n" = 2 ] || fail "Central got $n GET /v1/$r (want 2: one MCP, one REST)"
    done
    pass "a tool of each of the 40 documents through MCP, a route of each through REST"
    curl -sS --max-time 20 "$REST/openapi.json" >"$work/openapi.json"
    [ "$(jq '.paths | length' "$work/openapi.json")" = 44 ] ||
        fail "/openapi.json: $(jq '.paths | length' "$work/openapi.json") paths"
    jq -e '[.paths[][].operationId] | length == (unique | length)' "$work/openapi.json" \
        >/dev/null || fail "/openapi.json: operationIds not unique"
    curl -sS --max-time 20 "$OPS/metrics" >"$work/metrics"
    for r in "${RES[@]}"; do # every adapter's operations, labelled with the adapter
        grep -q "operation=\"list-$r\",adapter_namespace=\"stackrox-[a-z0-9]*service-mcp\",code=\"" \
            "$work/metrics" || fail "/metrics: no MCP samples of list-$r"
    done
    n=$(sed -n 's/^naftikod_requests_total{adapter="rest",operation="list",adapter_namespace="\([^"]*\)".*/\1/p' \
        "$work/metrics" | sort -u | wc -l)
    [ "$n" = 40 ] || fail "/metrics: REST samples of $n adapters (want 40)"
    pass "/openapi.json and /metrics cover every adapter on the listener"
    nk_stop
    ;;
reload)
    python3 "$SRC/tests/gen_family.py" --count 5 --out "$work/gen"
    mkdir "$work/caps"
    cp "$work"/gen/stackrox-{ping,alert,deployment}service.yaml "$work/caps/"
    nk_start_double
    nk_serve naftikod "$work/caps" --ops-listen off --var "central-host=127.0.0.1:$CPORT" \
        --ca-file "$work/central.crt"
    all_tools
    [ "$(wc -l <"$work/tools")" = 3 ] || fail "3 documents: $(cat "$work/tools")"
    hups=0
    # count_is TEXT N: the log holds exactly N lines with TEXT (read anew on every call, so
    # wait_until can poll it).
    count_is() { [ "$(grep -c "$1" "$work/naftikod.log")" = "$2" ]; }
    hup() { # hup ok|failed
        hups=$((hups + 1))
        kill -HUP "$NK_PID"
        if [ "$1" = ok ]; then
            wait_until count_is 'reload: new table in force' "$ok_n" ||
                fail "reload $hups: not in force"
        else
            wait_until count_is 'reload failed' "$bad_n" || fail "reload $hups: did not fail"
        fi
    }
    ok_n=1 bad_n=0
    cp "$work/gen/stackrox-imageservice.yaml" "$work/caps/" # added
    hup ok
    all_tools
    [ "$(wc -l <"$work/tools")" = 4 ] || fail "a file added: $(cat "$work/tools")"
    pass "SIGHUP picks up an added file"
    # an error anywhere keeps the whole old table: a new valid file and a broken one together
    cp "$work/gen/stackrox-policyservice.yaml" "$work/caps/"
    printf 'naftiko: 1.0.0-alpha2\ncapability: [\n' >"$work/caps/zz-broken.yml"
    bad_n=1
    hup failed
    all_tools
    [ "$(wc -l <"$work/tools")" = 4 ] || fail "a failed reload changed the table: $(cat "$work/tools")"
    pass "a broken file keeps the whole old table"
    rm "$work/caps/zz-broken.yml" "$work/caps/stackrox-pingservice.yaml" # removed
    sed -i 's/policyservice policy/policyservice changed/' "$work/caps/stackrox-policyservice.yaml"
    ok_n=2
    hup ok
    all_tools
    sort "$work/tools" | tr '\n' ' ' >"$work/names"
    [ "$(cat "$work/names")" = "list-alerts list-deployments list-images list-policies " ] ||
        fail "removed and added files: $(cat "$work/names")"
    pass "SIGHUP picks up removed and changed files"
    nk_stop
    ;;
*)
    fail "unknown case $CASE"
    ;;
esac
