#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# sdk_oauth_client.sh: the official TypeScript SDK (tests/oauth/sdk_oauth_client.mjs) discovers
# the authorization-server double from naftikod's 401, gets a client_credentials token for the
# resource and calls a tool; Central sees only the bound credential. Needs tests/mcp/install.sh's
# Node and SDK (exit 77 without them).
set -euo pipefail
source "$(dirname "$0")/../mcp/lib.sh"

[ -x "$node" ] || skip "no Node 22 under $prefix (run tests/mcp/install.sh)"
[ -d "$prefix/node_modules/@modelcontextprotocol/sdk" ] || skip "no MCP SDK under $prefix"
[ -x "${NK_NAFTIKOD:-}" ] || skip "no naftikod binary"
start_central
mkdir -p "$tmp/as"
python3 "$src/tests/oauth/as_double.py" --dir "$tmp/as" 2>"$tmp/as.log" &
pids+=($!)
wait_file "$tmp/as/as.port" $! || { cat "$tmp/as.log"; echo "the AS double did not start"; exit 1; }
issuer="https://127.0.0.1:$(cat "$tmp/as/as.port")"
cat "$central_ca" "$tmp/as/ca.crt" >"$tmp/bundle.crt"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
url="http://127.0.0.1:$port/mcp"
daemon_env
"$NK_NAFTIKOD" serve --mcp-port "$port" --rest-port 0 --ops-listen off \
    --port-file "$tmp/daemon.port" --var "central-host=127.0.0.1:$central_port" \
    --ca-file "$tmp/bundle.crt" --mcp-auth oauth --mcp-oauth-issuer "$issuer" \
    --mcp-oauth-resource "$url" --mcp-oauth-scopes mcp:tools "$capability" \
    >"$tmp/daemon.log" 2>&1 &
pids+=($!)
wait_file "$tmp/daemon.port" $! || { cat "$tmp/daemon.log"; echo "naftikod did not start"; exit 1; }
cp "$here/../oauth/sdk_oauth_client.mjs" "$prefix/sdk_oauth_client.mjs"
out=$(NODE_EXTRA_CA_CERTS="$tmp/as/ca.crt" "$node" "$prefix/sdk_oauth_client.mjs" "$url" \
    "$issuer" getapitokens-returns-all-api-tokens agent-cc agent-cc-secret-not-real) || {
    tail -n 30 "$tmp/daemon.log" "$tmp/as.log"
    echo "FAIL: the SDK client did not get through"
    exit 1
}
echo "$out"
echo "$out" | jq -e '.gotToken and (.isError | not) and (.tools | length) >= 1 and
    (.requests | any(test("^POST /mcp 401$"))) and
    (.requests | any(test("/.well-known/oauth-protected-resource/mcp 200$"))) and
    (.requests | any(test("^POST /token 200$")))' >/dev/null ||
    { echo "FAIL: the SDK did not go 401 -> metadata -> token -> call"; exit 1; }
grep -q 'caller=agent-cc' "$tmp/daemon.log" || { echo "FAIL: no access line names the client"; exit 1; }
# Central got the bound credential only, never the agent's access token
curl -sS --cacert "$central_ca" "https://127.0.0.1:$central_port/__double/requests" |
    jq -e --arg k "Bearer $token" 'length > 0 and all(.[]; .authorization == [$k])' >/dev/null ||
    { echo "FAIL: Central received another credential than the bound one"; exit 1; }
echo "PASS: the SDK discovered the AS from the 401, got a client_credentials token and called a tool"
