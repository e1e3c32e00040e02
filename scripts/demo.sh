#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# demo.sh: install what is missing, build, and run naftikod with the bundled StackRox
# capability in the foreground. With CENTRAL_HOST and STACKROX_API_KEY set it talks to that
# Central; otherwise it starts the bundled demo Central (the test double) on loopback first.
# Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc 2>/dev/null || echo 2)

scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$jobs" >/dev/null

cap=capabilities/stackrox-apitokenservice.yaml
demo=build/demo
mkdir -p "$demo"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

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
    build/naftikod-demo-central --port 0 --port-file "$demo/central.port" \
        --token demo-key-not-a-secret --tls-cert "$demo/central.crt" --tls-key "$demo/central.key" \
        >"$demo/central.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do [ -s "$demo/central.port" ] && break; sleep 0.05; done
    [ -s "$demo/central.port" ] || { echo "demo: the demo Central did not start:" >&2; cat "$demo/central.log" >&2; exit 1; }
    export CENTRAL_HOST="127.0.0.1:$(cat "$demo/central.port")"
    extra+=(--ca-file "$demo/central.crt")
    echo "demo: demo Central (test double) on https://$CENTRAL_HOST" >&2
fi

rm -f "$demo/naftikod.ports"
build/naftikod serve "$cap" --port-file "$demo/naftikod.ports" "${extra[@]}" &
pids+=($!)
for _ in $(seq 100); do [ -s "$demo/naftikod.ports" ] && break; sleep 0.05; done
[ -s "$demo/naftikod.ports" ] || { echo "demo: naftikod did not start" >&2; exit 1; }
rest=$(sed -n 's/^rest=//p' "$demo/naftikod.ports" | head -n1)
mcp=$(sed -n 's/^mcp=//p' "$demo/naftikod.ports" | head -n1)
ops=$(sed -n 's/^ops=//p' "$demo/naftikod.ports" | head -n1)
cat <<EOT

naftikod is serving REST on 127.0.0.1:$rest and MCP on 127.0.0.1:$mcp/mcp. Try:

  curl -s -X POST http://127.0.0.1:$rest/v1/v1/apitokens/generate \\
       -H 'Content-Type: application/json' -d '{"name":"demo","roles":["Analyst"]}'
  curl -s http://127.0.0.1:$rest/v1/v1/apitokens
  curl -s http://127.0.0.1:$rest/v1/v1/apitokens/ID
  curl -s -X PATCH http://127.0.0.1:$rest/v1/v1/apitokens/revoke/ID
  curl -s 'http://127.0.0.1:$rest/v1/v1/apitokens?revoked=true'
  curl -s http://127.0.0.1:$rest/openapi.json
  curl -s http://127.0.0.1:$mcp/mcp -H 'Content-Type: application/json' \\
       -d '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"curl","version":"1"}}}'
  curl -s http://127.0.0.1:${ops:-8091}/readyz; curl -s http://127.0.0.1:${ops:-8091}/metrics

Ctrl-C stops naftikod and the demo Central.
EOT
wait -n
