#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# ops_e2e.sh: the ops listener of the real `naftikod serve` against the Central test double:
# /healthz (always 200; its detail names the capability fingerprint and the upstream verdict,
# reachable with the double up, unreachable once it is gone and the cache expired), /readyz
# (200 either way: Central's health is not this replica's readiness), and
# /metrics parsed by a strict text-format parser (prom_check.py) before and after REST and MCP
# calls, asserting the counters moved and the credential never appears.
#
# usage: ops_e2e.sh NAFTIKOD CENTRAL_DOUBLE SOURCE_DIR
set -euo pipefail
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"

nk_args "$@"
CHECK="$SRC/tests/integration/prom_check.py"
TOOL="getapitokens-returns-all-api-tokens"
nk_init ops ops

# --- the parser must refuse what the format forbids (so its "ok" means something) ---
bad() {
    printf '%b' "$2" >"$work/bad.txt"
    if python3 "$CHECK" "$work/bad.txt" >/dev/null 2>&1; then
        fail "prom_check accepted $1"
    fi
}
bad "a sample without TYPE" 'x_total 1\n'
bad "a bad escape" '# TYPE x counter\nx{a="\\q"} 1\n'
bad "a negative counter" '# TYPE x counter\nx -1\n'
bad "non-cumulative buckets" '# TYPE h histogram\nh_bucket{le="1"} 3\nh_bucket{le="+Inf"} 2\nh_sum 1\nh_count 2\n'
bad "+Inf != _count" '# TYPE h histogram\nh_bucket{le="1"} 1\nh_bucket{le="+Inf"} 2\nh_sum 1\nh_count 3\n'
bad "no +Inf bucket" '# TYPE h histogram\nh_bucket{le="1"} 1\nh_sum 1\nh_count 1\n'
bad "interleaved families" '# TYPE a gauge\na 1\n# TYPE b gauge\nb 1\na{x="y"} 2\n'
bad "an invalid label name" '# TYPE a gauge\na{0x="y"} 1\n'
bad "a duplicate series" '# TYPE a gauge\na{x="y"} 1\na{x="y"} 2\n'
bad "TYPE after a sample" '# TYPE a gauge\na 1\n# TYPE a gauge\n'
printf '# HELP a x\n# TYPE a gauge\na{x="q\\"\\\\\\n"} +Inf\n' >"$work/good.txt"
python3 "$CHECK" "$work/good.txt" >/dev/null || fail "prom_check refused a valid exposition"
pass "prom_check refuses 10 kinds of invalid exposition and accepts a valid one"

# --- start the double (TLS) and naftikod with an ephemeral ops port and a short cache ---
nk_start_double
CACHE_MS=300
nk_serve naftikod "$CAP" --var "central-host=127.0.0.1:$CPORT" --ca-file "$work/central.crt" \
    --ops-listen 127.0.0.1:0 --ready-cache "$CACHE_MS"
NK1_PID=$NK_PID
[ -n "$OPS" ] || fail "no ops= line in the port file: $(cat "$work/naftikod.ports")"
[ "$(tail -n1 "$work/naftikod.ports")" = "ops=${OPS##*:}" ] ||
    fail "ops= is not after the adapters' lines"
pass "port file: $(tr '\n' ' ' <"$work/naftikod.ports")"

# ops METHOD PATH: sets STATUS, body in $work/body, headers in $work/headers.
ops() {
    STATUS=$(curl -sS --max-time 20 -o "$work/body" -D "$work/headers" -w '%{http_code}' \
        -X "$1" "$OPS$2" "${@:3}") || fail "curl $1 $2 failed"
}

# scrape FILE: /metrics into FILE.txt, parsed into FILE.json.
scrape() {
    ops GET /metrics
    [ "$STATUS" = 200 ] || fail "/metrics answered $STATUS"
    tr -d '\r' <"$work/headers" | grep -qi '^content-type: text/plain; version=0.0.4' ||
        fail "/metrics content type: $(tr -d '\r' <"$work/headers" | grep -i content-type)"
    cp "$work/body" "$work/$1.txt"
    python3 "$CHECK" "$work/$1.txt" >"$work/$1.json" ||
        fail "/metrics is not valid text format 0.0.4 (see above)"
    if grep -q -e "$KEY" -e Bearer "$work/$1.txt"; then
        fail "the credential appears in /metrics"
    fi
}

# val FILE SERIES: the value of a series (0 when absent).
val() {
    jq -r --arg k "$2" '.series[$k] // 0' "$work/$1.json"
}

# moved BEFORE AFTER SERIES DELTA: the series went up by exactly DELTA.
moved() {
    local a b
    a=$(val "$1" "$3")
    b=$(val "$2" "$3")
    python3 -c "import sys; sys.exit(0 if float('$b') - float('$a') == float('$4') else 1)" ||
        fail "$3: expected +$4, went from $a to $b"
}

# --- health and method handling ---
ops GET /healthz
[ "$STATUS" = 200 ] || fail "/healthz answered $STATUS"
jq -e '.status == "ok" and (.capability | test("^[0-9a-f]{16}$")) and .shutting_down == false' \
    "$work/body" >/dev/null || fail "/healthz body: $(cat "$work/body")"
ops HEAD /healthz -I
[ "$STATUS" = 200 ] || fail "HEAD /healthz answered $STATUS"
ops POST /metrics
[ "$STATUS" = 405 ] || fail "POST /metrics answered $STATUS"
tr -d '\r' <"$work/headers" | grep -qi '^allow: GET, HEAD' || fail "405 without Allow"
ops GET /nope
[ "$STATUS" = 404 ] || fail "/nope answered $STATUS"
pass "/healthz 200 $(cat "$work/body"); POST 405 with Allow; unknown path 404"

ops GET /readyz
[ "$STATUS" = 200 ] || fail "/readyz with Central up answered $STATUS: $(cat "$work/body")"
jq -e '.status == "ready"' "$work/body" >/dev/null || fail "/readyz body: $(cat "$work/body")"
pass "/readyz 200 with Central up"
# healthy BASE: /healthz says the upstream was reached (a stale verdict starts a probe).
healthy() {
    curl -sS --max-time 5 "$1/healthz" | jq -e '.upstream.reachable == true' >/dev/null
}
wait_until healthy "$OPS" || fail "/healthz never said the upstream is reachable: $(curl -sS "$OPS/healthz")"
scrape m_up
[ "$(val m_up naftikod_upstream_reachable)" = 1 ] || fail "naftikod_upstream_reachable is not 1"
jq -e '[.series | to_entries[] | select(.key | test("^naftikod_capability_info[{]fingerprint=\"[0-9a-f]{16}\"[}]$"))
    | .value] == [1]' "$work/m_up.json" >/dev/null || fail "naftikod_capability_info is not one series = 1"
pass "/healthz upstream.reachable true and naftikod_upstream_reachable 1 with Central up"

# The probe never carries the credential: the double recorded no Authorization on it.
nk_requests >"$work/recorded.json"
n=$(jq '[.[] | select(.method == "GET" and .uri == "/")] | length' "$work/recorded.json")
[ "$n" -ge 1 ] || fail "the upstream probe did not reach Central: $(cat "$work/recorded.json")"
jq -e '[.[] | select(.method == "GET" and .uri == "/") | .authorization | length] | max == 0' \
    "$work/recorded.json" >/dev/null || fail "the upstream probe sent an Authorization header"
pass "upstream probe: GET / reached Central without Authorization"

# --- REST and MCP calls move the counters ---
scrape m0
curl -sS --max-time 20 -o /dev/null -w '%{http_code}' "$REST/v1/v1/apitokens" \
    | grep -qx 200 || fail "REST list did not answer 200"
curl -sS --max-time 20 -o /dev/null -w '%{http_code}' "$REST/no/such/route" \
    | grep -qx 404 || fail "REST unknown route did not answer 404"
meta='"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}'
code=$(curl -sS --max-time 20 -o "$work/mcp.json" -w '%{http_code}' -X POST \
    "$MCP" -H 'Content-Type: application/json' \
    -H 'Accept: application/json, text/event-stream' -H 'MCP-Protocol-Version: 2026-07-28' \
    -H 'Mcp-Method: tools/call' -H "Mcp-Name: $TOOL" \
    -d "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"$TOOL\",\"arguments\":{},$meta}}")
[ "$code" = 200 ] || fail "MCP tools/call answered $code: $(cat "$work/mcp.json")"
jq -e '.result.isError != true' "$work/mcp.json" >/dev/null ||
    fail "MCP tools/call failed: $(cat "$work/mcp.json")"
scrape m1

moved m0 m1 'naftikod_requests_total{adapter="rest",adapter_namespace="stackrox-apitokenservice-rest",code="2xx",operation="getapitokens"}' 1
moved m0 m1 'naftikod_requests_total{adapter="rest",code="4xx",operation="unmatched"}' 1
moved m0 m1 "naftikod_requests_total{adapter=\"mcp\",adapter_namespace=\"stackrox-apitokenservice-mcp\",code=\"2xx\",operation=\"$TOOL\"}" 1
moved m0 m1 'naftikod_upstream_request_duration_seconds_count{adapter_namespace="stackrox-apitokenservice-rest",operation="getapitokens"}' 1
moved m0 m1 "naftikod_upstream_request_duration_seconds_count{adapter_namespace=\"stackrox-apitokenservice-mcp\",operation=\"$TOOL\"}" 1
moved m0 m1 'naftikod_upstream_errors_total{kind="connect"}' 0
[ "$(val m1 'naftikod_inflight_requests{adapter="rest"}')" = 0 ] || fail "rest inflight != 0"
[ "$(val m1 'naftikod_inflight_requests{adapter="mcp"}')" = 0 ] || fail "mcp inflight != 0"
jq -e '[.series | to_entries[] | select(.key | test("^naftikod_build_info[{]version=\"[0-9]"))
    | .value] == [1]' "$work/m1.json" >/dev/null || fail "naftikod_build_info is not one series = 1"
python3 - "$work/m1.json" <<'EOF' || fail "process metrics implausible"
import json, sys, time
s = json.load(open(sys.argv[1]))["series"]
start, rss = s["process_start_time_seconds"], s["process_resident_memory_bytes"]
assert time.time() - 3600 < start <= time.time() + 1, start
assert rss > 1024 * 1024, rss
EOF
for fam in naftikod_requests_total:counter naftikod_upstream_request_duration_seconds:histogram \
    naftikod_upstream_errors_total:counter naftikod_inflight_requests:gauge \
    naftikod_upstream_waiting_calls:gauge \
    naftikod_reloads_total:counter naftikod_build_info:gauge process_start_time_seconds:gauge \
    process_resident_memory_bytes:gauge; do
    [ "$(jq -r --arg f "${fam%%:*}" '.types[$f]' "$work/m1.json")" = "${fam##*:}" ] ||
        fail "family ${fam%%:*} is not a ${fam##*:}"
done
pass "REST 200/404 and an MCP tools/call moved requests_total and the latency histogram"

# --- the verdict is cached: a second instance with a long cache probes Central only once ---
probes() {
    nk_requests | jq '[.[] | select(.method == "GET" and .uri == "/")] | length'
}
nk_serve naftikod2 "$CAP" --var "central-host=127.0.0.1:$CPORT" --ca-file "$work/central.crt" \
    --ops-listen 127.0.0.1:0 --ready-cache 600000
NK2_PID=$NK_PID
OPS2=$OPS
[ -n "$OPS2" ] || fail "no ops= line in the second port file: $(cat "$work/naftikod2.ports")"
NK_PID=$NK1_PID
nk_ports naftikod
wait_until healthy "$OPS2" || fail "the second instance never probed Central"
before=$(probes)
cpids=()
: >"$work/par.codes"
for _ in 1 2 3 4 5; do
    curl -sS --max-time 20 -o /dev/null -w '%{http_code}\n' "$OPS2/healthz" \
        >>"$work/par.codes" &
    cpids+=($!)
done
for _ in 1 2 3 4 5; do
    curl -sS --max-time 20 -o /dev/null -w '%{http_code}\n' "$OPS2/metrics"
done >"$work/seq.codes"
for p in "${cpids[@]}"; do
    wait "$p" || fail "a concurrent /healthz curl failed"
done
[ "$(sort -u "$work/par.codes" "$work/seq.codes")" = 200 ] ||
    fail "cached /healthz codes: $(cat "$work/par.codes" "$work/seq.codes" | tr '\n' ' ')"
after=$(probes)
[ $((after - before)) = 0 ] || fail "10 /healthz and /metrics (5 concurrent) made $((after - before)) probes within the cache time"
pass "10 /healthz and /metrics (5 concurrent) with a long cache: all 200, no further probe reached Central"

# --- Central gone: /healthz and the gauge say unreachable after the cache time, /readyz stays
# 200 (every replica would otherwise leave the Service at once), a REST call counts a connect
# error ---
kill "$DOUBLE_PID"
wait "$DOUBLE_PID" 2>/dev/null || true
sleep 0.5 # > CACHE_MS
unhealthy() {
    curl -sS --max-time 5 -o "$work/body" "$OPS/healthz" &&
        jq -e '.upstream.reachable == false and (.upstream.reason | test("unreachable"))' \
            "$work/body" >/dev/null
}
wait_until unhealthy || fail "/healthz with Central gone: $(cat "$work/body")"
grep -q "$KEY" "$work/body" && fail "the credential appears in /healthz"
pass "/healthz detail once Central is gone: $(jq -c .upstream "$work/body")"
ops GET /readyz
[ "$STATUS" = 200 ] || fail "/readyz with Central gone answered $STATUS: $(cat "$work/body")"
scrape m_down
[ "$(val m_down naftikod_upstream_reachable)" = 0 ] || fail "naftikod_upstream_reachable is not 0"
pass "/readyz still 200 with Central gone; naftikod_upstream_reachable 0"
healthy "$OPS2" || fail "the long-cache instance re-probed: $(curl -sS "$OPS2/healthz")"
kill -TERM "$NK2_PID"
pass "the long-cache instance still reports its cached verdict"
curl -sS --max-time 20 -o /dev/null -w '%{http_code}' "$REST/v1/v1/apitokens" \
    | grep -qx 502 || fail "REST list with Central gone did not answer 502"
scrape m2
moved m1 m2 'naftikod_requests_total{adapter="rest",adapter_namespace="stackrox-apitokenservice-rest",code="5xx",operation="getapitokens"}' 1
moved m1 m2 'naftikod_upstream_errors_total{kind="connect"}' 1
pass "Central gone: REST 502 counted as 5xx and as a connect error"

# --- shutdown: clean exit ---
nk_stop
pass "SIGTERM: exit 0"

# --- --ops-listen off, and a malformed value ---
nk_serve off "$CAP" --var "central-host=127.0.0.1:1" --ops-listen off
grep -q '^ops=' "$work/off.ports" && fail "--ops-listen off still wrote ops="
kill -TERM "$NK_PID"
st=0
NAFTIKOD_OPS_LISTEN=bogus STACKROX_API_KEY="Bearer $KEY" "$NAFTIKOD" serve "$CAP" \
    --rest-port 0 --mcp-port 0 --var "central-host=127.0.0.1:1" 2>"$work/bogus.log" || st=$?
[ "$st" = 2 ] || fail "a malformed NAFTIKOD_OPS_LISTEN: exit $st, expected 2 (usage error)"
grep -q "bogus" "$work/bogus.log" || fail "the error does not name the bad value: $(cat "$work/bogus.log")"
pass "--ops-listen off writes no ops= line; a malformed value is a usage error (exit 2)"
