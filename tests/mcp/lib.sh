# SPDX-License-Identifier: Apache-2.0
# lib.sh: shared by tests/mcp/*.sh: find the pinned Node 22 and npm packages, start the Central
# double and naftikod (or the engine-only test server), and stop them again.
# Environment (set by tests/cmake/mcp.cmake): NK_MCP_NPM_PREFIX, NK_NAFTIKOD, NK_CENTRAL_DOUBLE,
# NK_MCP_ENGINE_SERVER, NK_SOURCE_DIR.

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=${NK_SOURCE_DIR:-$(cd "$here/../.." && pwd)}
# shellcheck source=../integration/keep_logs.sh
. "$src/tests/integration/keep_logs.sh"
prefix=${NK_MCP_NPM_PREFIX:-$src/build/mcp-npm}
node=$prefix/node_modules/.bin/node
conformance=$prefix/node_modules/@modelcontextprotocol/conformance/dist/index.js
token=test-token-not-a-secret
tmp=$(mktemp -d)
pids=()

skip() {
    if [ -n "${NK_REQUIRE_MCP_TOOLS:-}" ]; then
        echo "FAILED (NK_REQUIRE_MCP_TOOLS is set): $*"
        exit 1
    fi
    echo "SKIPPED: $*"
    exit 77
}

need_npm() {
    [ -x "$node" ] || skip "no Node 22 under $prefix (run tests/mcp/install.sh)"
    [ -f "$conformance" ] || skip "no conformance suite under $prefix (run tests/mcp/install.sh)"
    [ -d "$prefix/node_modules/@modelcontextprotocol/sdk" ] || skip "no MCP SDK under $prefix"
}

# Stop everything started; a server that does not exit 0 on SIGTERM (a crash, a sanitizer
# report at exit) fails the test and shows its log.
cleanup() {
    local rc=$? p st bad=0
    for p in "${pids[@]}"; do
        kill -TERM "$p" 2>/dev/null || true
    done
    for p in "${pids[@]}"; do
        st=0
        wait "$p" 2>/dev/null || st=$?
        if [ "$st" != 0 ]; then
            echo "a server (pid $p) exited with status $st:"
            cat "$tmp"/*.log 2>/dev/null | tail -n 40
            bad=1
        fi
    done
    nk_keep_logs "$tmp"
    rm -rf "$tmp"
    if [ $bad = 1 ] && [ $rc = 0 ]; then
        exit 1
    fi
}
trap cleanup EXIT

# wait_file FILE PID: until FILE has content (bounded), or the process died.
wait_file() {
    local i
    for i in $(seq 1 200); do
        [ -s "$1" ] && return 0
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

# The engine-only server (fake tools, no upstream): sets url.
start_engine() {
    [ -x "${NK_MCP_ENGINE_SERVER:-}" ] || skip "no engine test server"
    "$NK_MCP_ENGINE_SERVER" "$tmp/engine.port" 2>"$tmp/engine.log" &
    pids+=($!)
    wait_file "$tmp/engine.port" $! || { echo "engine server did not start"; exit 1; }
    url="http://127.0.0.1:$(cat "$tmp/engine.port")/mcp"
}

# The Central double over HTTPS (the capability's baseUri is https://{central-host}) with a
# throw-away self-signed certificate for 127.0.0.1: sets central_port and central_ca.
start_central() {
    [ -x "${NK_CENTRAL_DOUBLE:-}" ] || skip "no Central double (target naftikod-demo-central)"
    command -v openssl >/dev/null || skip "no openssl to make the double's certificate"
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=demo-central-test" \
        -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
        -keyout "$tmp/central.key" -out "$tmp/central.crt" >/dev/null 2>&1 ||
        { echo "openssl could not make a certificate"; exit 1; }
    central_ca=$tmp/central.crt
    "$NK_CENTRAL_DOUBLE" --port 0 --port-file "$tmp/central.port" --token "$token" \
        --tls-cert "$tmp/central.crt" --tls-key "$tmp/central.key" >"$tmp/central.log" 2>&1 &
    pids+=($!)
    wait_file "$tmp/central.port" $! || { cat "$tmp/central.log"; echo "central double did not start"; exit 1; }
    central_port=$(head -n1 "$tmp/central.port" | tr -dc '0-9')
}

# What naftikod needs to reach the double: environment and options shared by serve and stdio.
daemon_env() {
    export STACKROX_API_KEY="Bearer $token"
    export CENTRAL_HOST="127.0.0.1:$central_port"
    capability=$src/capabilities/stackrox-apitokenservice.yaml
    daemon_opts=(--var "central-host=127.0.0.1:$central_port" --ca-file "$central_ca")
}

# start_daemon [serve options...]: naftikod serve with ephemeral ports; sets url (the MCP
# endpoint).
start_daemon() {
    [ -x "${NK_NAFTIKOD:-}" ] || skip "no naftikod binary"
    daemon_env
    "$NK_NAFTIKOD" serve --mcp-port 0 --rest-port 0 --port-file "$tmp/daemon.port" \
        "${daemon_opts[@]}" "$@" "$capability" >"$tmp/daemon.log" 2>&1 &
    pids+=($!)
    if ! wait_file "$tmp/daemon.port" $!; then
        cat "$tmp/daemon.log"
        if grep -q "not implemented" "$tmp/daemon.log"; then
            skip "naftikod serve is not implemented in this build"
        fi
        echo "naftikod serve did not start"
        exit 1
    fi
    # "rest=PORT\nmcp=PORT\n"
    mcp_port=$(sed -n 's/^mcp=\([0-9]*\)$/\1/p' "$tmp/daemon.port" | head -n1)
    [ -n "$mcp_port" ] || { cat "$tmp/daemon.port"; echo "no mcp port in the port file"; exit 1; }
    url="http://127.0.0.1:$mcp_port/mcp"
}
