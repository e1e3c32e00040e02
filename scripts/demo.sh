#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# demo.sh: install what is missing (runtime packages only), build, and run naftikod with the
# bundled StackRox capability and the orchestrated demo capabilities/demo/stackrox-token-roles.yaml
# (a token with its roles: one aggregate function of two calls and a lookup, referenced by a REST
# operation and an MCP tool). With CENTRAL_HOST and STACKROX_API_KEY set it
# talks to that Central; otherwise it first starts the demo Central (naftikod-demo-central) on loopback.
#
# usage: scripts/demo.sh [--check] [--build-dir DIR]
#   (no option)      serve in the foreground and print curl lines to try; Ctrl-C stops everything
#   --check          non-interactive: run every printed curl line and an MCP initialize ->
#                    tools/list -> tools/call round, assert each answer, stop every process this
#                    script started, exit 0 only when all passed (free ports, so it can run anywhere)
#   --build-dir DIR  build directory (default: build)
set -euo pipefail
cd "$(dirname "$0")/.."

check=0
B=build
while [ $# -gt 0 ]; do
    case $1 in
    --check) check=1 ;;
    --build-dir) B=${2:?--build-dir needs a directory}; shift ;;
    --build-dir=*) B=${1#--build-dir=} ;;
    -h | --help) sed -n '3,14s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) echo "demo: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
    shift
done
jobs=$(nproc 2>/dev/null || echo 2)

scripts/deps.sh
# NK_TESTS is left to CMake: on when cmocka is installed, off (and said so) when it is not.
cmake -S . -B "$B" -DCMAKE_BUILD_TYPE=RelWithDebInfo | grep -i 'cmocka' || true
cmake --build "$B" -j"$jobs" --target naftikod naftikod-demo-central >/dev/null

cap=capabilities/stackrox-apitokenservice.yaml
# the orchestrated demo (an aggregate function with steps + lookup, referenced by a REST operation
# and an MCP tool): a token with its roles, on the same ports
demo_caps=(capabilities/demo/stackrox-token-roles.yaml)
demo=$B/demo
mkdir -p "$demo"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_port FILE WHAT LOG: wait (bounded: 10 s) for a port file to be written.
wait_port() {
    for _ in $(seq 200); do [ -s "$1" ] && return 0; sleep 0.05; done
    echo "demo: $2 did not start:" >&2
    cat "$3" >&2
    exit 1
}

extra=()
if [ -n "${CENTRAL_HOST:-}" ] && [ -n "${STACKROX_API_KEY:-}" ]; then
    echo "demo: using Central at $CENTRAL_HOST" >&2
    if [ -n "${ROX_CA_CERT_FILE:-}" ]; then extra+=(--ca-file "$ROX_CA_CERT_FILE"); fi
else
    # The demo Central speaks HTTPS with its own CA, like the real one.
    if [ ! -f "$demo/central.crt" ]; then
        openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=localhost" \
            -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
            -keyout "$demo/central.key" -out "$demo/central.crt" 2>/dev/null
    fi
    export STACKROX_API_KEY="Bearer demo-key-not-a-secret"
    rm -f "$demo/central.port"
    "$B/naftikod-demo-central" --port 0 --port-file "$demo/central.port" \
        --token demo-key-not-a-secret --tls-cert "$demo/central.crt" --tls-key "$demo/central.key" \
        >"$demo/central.log" 2>&1 &
    pids+=($!)
    wait_port "$demo/central.port" "the demo Central" "$demo/central.log"
    export CENTRAL_HOST="127.0.0.1:$(cat "$demo/central.port")"
    extra+=(--ca-file "$demo/central.crt")
    echo "demo: demo Central (naftikod-demo-central) on https://$CENTRAL_HOST" >&2
fi

if [ "$check" = 1 ]; then
    # Free ports: the check must not collide with a daemon already running on 8080/9090/8091.
    extra+=(--rest-port 0 --mcp-port 0 --ops-listen 127.0.0.1:0)
fi
rm -f "$demo/naftikod.ports"
if [ "$check" = 1 ]; then
    "$B/naftikod" serve "$cap" "${demo_caps[@]}" --port-file "$demo/naftikod.ports" "${extra[@]}" 2>"$demo/naftikod.log" &
else
    "$B/naftikod" serve "$cap" "${demo_caps[@]}" --port-file "$demo/naftikod.ports" "${extra[@]}" &
fi
pids+=($!)
wait_port "$demo/naftikod.ports" "naftikod" "$demo/naftikod.log"
rest=$(sed -n 's/^rest=//p' "$demo/naftikod.ports" | head -n1)
mcp=$(sed -n 's/^mcp=//p' "$demo/naftikod.ports" | head -n1)
ops=$(sed -n 's/^ops=//p' "$demo/naftikod.ports" | head -n1)
R="http://127.0.0.1:$rest"
M="http://127.0.0.1:$mcp/mcp"
O="http://127.0.0.1:${ops:-8091}"

# The curl lines a user is shown; --check runs exactly these (ID is the generated token's id).
lines=(
    "curl -s -X POST $R/v1/v1/apitokens/generate -H 'Content-Type: application/json' -d '{\"name\":\"demo\",\"roles\":[\"Analyst\"]}'"
    "curl -s $R/v1/v1/apitokens"
    "curl -s $R/v1/v1/apitokens/ID"
    "curl -s $R/v1/token-roles/ID"
    "curl -s -X PATCH $R/v1/v1/apitokens/revoke/ID"
    "curl -s '$R/v1/v1/apitokens?revoked=true'"
    "curl -s $R/openapi.json"
    "curl -s $M -H 'Content-Type: application/json' -d '{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"2025-06-18\",\"capabilities\":{},\"clientInfo\":{\"name\":\"curl\",\"version\":\"1\"}}}'"
    "curl -s $O/readyz"
    "curl -s $O/metrics"
)
# What each line's answer must show (a python3 expression over `body` (text) and `j` (JSON or None)).
asserts=(
    "j['token'] and j['metadata']['id'] and j['metadata']['name'] == 'demo'"
    "any(t['id'] == ID for t in j['tokens'])"
    "j['id'] == ID and j['name'] == 'demo' and not j.get('revoked')"
    "j['id'] == ID and j['revoked'] is False and [r['name'] for r in j['roles']] == ['Analyst'] and j['roles'][0]['permissionSetId'].startswith('io.stackrox.authz.permissionset.') and j['roles'][0]['description']"
    "j == {}"
    "any(t['id'] == ID and t['revoked'] for t in j['tokens'])"
    "j['openapi'].startswith('3.') and '/v1/v1/apitokens/generate' in j['paths']"
    "j['result']['protocolVersion'] == '2025-06-18' and j['result']['serverInfo']['name']"
    "j == {'status': 'ready'}"
    "'naftikod_requests_total{adapter=\"rest\"' in body and 'naftikod_requests_total{adapter=\"mcp\"' in body"
)

if [ "$check" = 0 ]; then
    printf '\nnaftikod is serving REST on 127.0.0.1:%s and MCP on 127.0.0.1:%s/mcp. Try:\n\n' "$rest" "$mcp"
    for l in "${lines[@]}"; do echo "  $l"; done
    printf '\n(ID: the metadata.id that the generate call answered.)\n'
    printf '\nCtrl-C stops naftikod%s.\n' "$([ ${#pids[@]} -gt 1 ] && echo ' and the demo Central')"
    wait -n
    exit $?
fi

# --check: every printed line, then an MCP round as a client would make it.
passed=0
failed=0
# judge WHAT EXPR FILE: assert EXPR over the answer in FILE.
judge() {
    if python3 - "$2" "$3" "${ID:-}" <<'EOF'; then
import json, sys
expr, path, tid = sys.argv[1], sys.argv[2], sys.argv[3]
body = open(path, encoding="utf-8", errors="replace").read()
try:
    j = json.loads(body)
except ValueError:
    j = None
ok = False
try:
    ok = bool(eval(expr, {"body": body, "j": j, "ID": tid}))
except Exception as e:  # a missing field is a failed assertion, said plainly
    print(f"  ({type(e).__name__}: {e})", file=sys.stderr)
sys.exit(0 if ok else 1)
EOF
        passed=$((passed + 1))
        echo "ok: $1"
    else
        failed=$((failed + 1))
        echo "FAIL: $1" >&2
        head -c 600 "$3" >&2
        echo >&2
    fi
}
ID=""
for i in "${!lines[@]}"; do
    line=${lines[$i]//ID/$ID}
    if ! bash -c "$line" >"$demo/answer" 2>"$demo/curl.err"; then
        echo "  (curl: $(cat "$demo/curl.err"))" >&2
        : >"$demo/answer"
    fi
    judge "$line" "${asserts[$i]}" "$demo/answer"
    if [ "$i" = 0 ]; then
        ID=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["metadata"]["id"])' \
            "$demo/answer" 2>/dev/null || true)
        [ -n "$ID" ] || { echo "demo: no token id in the generate answer; stopping" >&2; exit 1; }
    fi
done

# MCP round (2025-06-18): initialize, initialized, tools/list, tools/call of the read-only list tool.
H=(-H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream')
curl -s -D "$demo/init.headers" -o "$demo/answer" "$M" "${H[@]}" -d '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"demo-check","version":"1"}}}' || true
judge "MCP initialize" "j['result']['protocolVersion'] == '2025-06-18'" "$demo/answer"
sid=$(tr -d '\r' <"$demo/init.headers" | sed -n 's/^[Mm]cp-[Ss]ession-[Ii]d: //p')
H+=(-H "Mcp-Session-Id: $sid" -H 'MCP-Protocol-Version: 2025-06-18')
status=$(curl -s -o /dev/null -w '%{http_code}' "$M" "${H[@]}" -d '{"jsonrpc":"2.0","method":"notifications/initialized"}' || true)
echo "$status" >"$demo/answer"
judge "MCP notifications/initialized" "body.strip() == '202'" "$demo/answer"
curl -s -o "$demo/answer" "$M" "${H[@]}" -d '{"jsonrpc":"2.0","id":2,"method":"tools/list"}' || true
judge "MCP tools/list" "len(j['result']['tools']) == 5 and all(t['description'] for t in j['result']['tools'])" "$demo/answer"
judge "MCP tools/list: get-token-with-roles from its aggregate function (hints from semantics)" "[(t['title'], t['annotations']['readOnlyHint'], t['annotations']['destructiveHint'], t['annotations']['idempotentHint'], t['inputSchema']['required']) for t in j['result']['tools'] if t['name'] == 'get-token-with-roles'] == [('Token with its roles', True, False, True, ['id'])]" "$demo/answer"
tool=$(python3 -c 'import json,sys; print(next(t["name"] for t in json.load(open(sys.argv[1]))["result"]["tools"] if t.get("annotations",{}).get("readOnlyHint") and not t["inputSchema"].get("required")))' "$demo/answer" 2>/dev/null || true)
curl -s -o "$demo/answer" "$M" "${H[@]}" -d "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":{\"name\":\"$tool\",\"arguments\":{}}}" || true
judge "MCP tools/call $tool" "not j['result'].get('isError') and any(t['id'] == ID for t in j['result']['structuredContent']['tokens'])" "$demo/answer"

# The orchestrated tool (a ref to the aggregate function: steps + lookup): the token with its roles.
curl -s -o "$demo/answer" "$M" "${H[@]}" -d "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"tools/call\",\"params\":{\"name\":\"get-token-with-roles\",\"arguments\":{\"id\":\"$ID\"}}}" || true
judge "MCP tools/call get-token-with-roles" "not j['result'].get('isError') and j['result']['structuredContent']['id'] == ID and j['result']['structuredContent']['roles'][0]['name'] == 'Analyst'" "$demo/answer"

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
