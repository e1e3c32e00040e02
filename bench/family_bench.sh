#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# family_bench.sh: issue 14's benchmark. Documents from tests/gen_family.py served from one
# directory by one daemon (one REST listener, one MCP endpoint), in two sizes:
#   40 documents x 50 operations (2,000 operations), 500 documents x 20 (10,000 operations).
# For each size prints `figure:` lines: the load time (start until the port file is written),
# the RSS once ready, and the latency of tools/list (a whole walk of every page, and the first
# page alone, median of RUNS runs each). Measures only; asserts nothing beyond "it served".
# Usage: bench/family_bench.sh [BUILD_DIR]   env: RUNS=5 PAGE=100 SIZES="40x50 500x20"
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
B=${1:-$here/../build}
RUNS=${RUNS:-5}
PAGE=${PAGE:-100}
SIZES=${SIZES:-"40x50 500x20"}
# The integration tests' harness: work directory, cleanup, bounded waits, the double.
. "$here/../tests/integration/common.sh"
DOUBLE="$B/naftikod-demo-central"
nk_init family-bench
trap 'exit 130' INT TERM
nk_start_double

META='"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}'
list_page() { # list_page CURSOR: one tools/list answer on stdout
    curl -sS --max-time 60 -X POST "$MCP" -H 'Content-Type: application/json' \
        -H 'Accept: application/json, text/event-stream' -H 'MCP-Protocol-Version: 2026-07-28' \
        -H 'Mcp-Method: tools/list' \
        -d "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\",\"params\":{${1:+\"cursor\":\"$1\",}$META}}"
}
walk() { # walk: every page; prints the number of tools
    local cursor="" n=0 body
    while :; do
        body=$(list_page "$cursor")
        n=$((n + $(jq '.result.tools | length' <<<"$body")))
        cursor=$(jq -r '.result.nextCursor // empty' <<<"$body")
        [ -n "$cursor" ] || break
    done
    echo "$n"
}
now_ms() { date +%s%3N; }
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

for size in $SIZES; do
    docs=${size%x*} ops=${size#*x}
    rm -rf "$work/caps"
    python3 "$here/../tests/gen_family.py" --count "$docs" --ops "$ops" --out "$work/caps"
    rm -f "$work/n.port"
    t0=$(now_ms)
    STACKROX_API_KEY="Bearer $KEY" "$B/naftikod" serve "$work/caps" --rest-port 0 --mcp-port 0 \
        --ops-listen off --var "central-host=127.0.0.1:$CPORT" --ca-file "$work/central.crt" \
        --mcp-page-size "$PAGE" --port-file "$work/n.port" --log-level warning \
        >"$work/n.log" 2>&1 &
    npid=$!
    pids+=("$npid")
    for _ in $(seq 6000); do [ -s "$work/n.port" ] || ! kill -0 "$npid" 2>/dev/null && break; sleep 0.01; done
    [ -s "$work/n.port" ] || fail "$docs documents: naftikod did not start"
    t1=$(now_ms)
    MCP="http://127.0.0.1:$(sed -n 's/^mcp=//p' "$work/n.port")/mcp"
    rss=$(awk '/^VmRSS/ { print $2 }' "/proc/$npid/status")
    n=$(walk)
    [ "$n" = $((docs * ops)) ] || fail "$docs documents: tools/list walked $n tools"
    for _ in $(seq "$RUNS"); do
        a=$(now_ms); walk >/dev/null; echo $(($(now_ms) - a))
    done | median >"$work/walk"
    for _ in $(seq "$RUNS"); do
        a=$(date +%s%N); list_page "" >/dev/null; echo $((($(date +%s%N) - a) / 1000))
    done | median >"$work/first"
    echo "figure: family ${docs} documents / $((docs * ops)) operations: load $((t1 - t0)) ms (start to listening)"
    echo "figure: family ${docs} documents / $((docs * ops)) operations: RSS ${rss} KiB once ready"
    echo "figure: family ${docs} documents / $((docs * ops)) operations: tools/list walk of $n tools in pages of $PAGE: $(cat "$work/walk") ms (median of $RUNS)"
    echo "figure: family ${docs} documents / $((docs * ops)) operations: tools/list first page: $(cat "$work/first") us (median of $RUNS, curl included)"
    kill -TERM "$npid"
    wait "$npid" 2>/dev/null || true
done
