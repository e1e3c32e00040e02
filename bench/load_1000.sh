#!/usr/bin/env bash
# load_1000.sh: issue #6's load test. From a second process (wrk) on loopback, 1,000 concurrent
# keep-alive connections for DUR seconds against the Central double through the REST adapter and
# through the MCP adapter (tools/call of the list tool), twice: with a healthy double, then with
# 10 % of upstream calls failing by injection (double's fail_ratio 0.1). Asserts: no socket error
# or timeout; without faults every answer 2xx; with faults exactly the injected failures reach
# their callers (REST: Central's 500; MCP: isError) and every other call succeeds. Samples the
# daemon's RSS every 2 s: after a warm-up of 10 s it must stay flat (growth under 10 %).
# Usage: bench/load_1000.sh [BUILD_DIR]    env: DUR=60 CONNS=1000 THREADS=2
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
B=${1:-$here/../build}
DUR=${DUR:-60}; CONNS=${CONNS:-1000}; THREADS=${THREADS:-2}
# The integration tests' harness: work directory, cleanup of every process, bounded waits,
# the test certificate and the Central double (KEY is its fake key).
. "$here/../tests/integration/common.sh"
DOUBLE="$B/naftikod-demo-central"
nk_init load-1000
trap 'exit 130' INT TERM
ulimit -n "$(ulimit -Hn)"
nk_start_double
STACKROX_API_KEY="Bearer $KEY" "$B/naftikod" serve "$here/../capabilities/stackrox-apitokenservice.yaml" \
    --rest-port 0 --mcp-port 0 --ops-listen off --max-connections 4096 \
    --var central-host=127.0.0.1:$CPORT --ca-file "$work/central.crt" --port-file "$work/n.port" \
    --log-level warning >"$work/n.log" 2>&1 &
NPID=$!; pids+=($NPID); wait_file "$work/n.port" "$NPID" || fail "naftikod did not start"
REST=$(sed -n 's/^rest=//p' "$work/n.port"); MCP=$(sed -n 's/^mcp=//p' "$work/n.port")
TOOL=getapitokens-returns-all-api-tokens
cat >"$work/mcp.lua" <<EOL
wrk.method = "POST"
wrk.body = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"$TOOL","arguments":{},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["MCP-Protocol-Version"] = "2026-07-28"
wrk.headers["Mcp-Method"] = "tools/call"
wrk.headers["Mcp-Name"] = "$TOOL"
ok, iserr, other = 0, 0, 0
function response(status, headers, body)
  if status ~= 200 then other = other + 1
  elseif string.find(body, '"isError":true', 1, true) then iserr = iserr + 1
  else ok = ok + 1 end
end
EOL
# wrk's response() counters live per thread; report them through done() via a shared file.
cat >>"$work/mcp.lua" <<'EOL'
threads = {}
function setup(thread) table.insert(threads, thread) end
function done(summary, latency, requests)
  local o, e, x = 0, 0, 0
  for _, t in ipairs(threads) do o = o + t:get("ok"); e = e + t:get("iserr"); x = x + t:get("other") end
  io.write(string.format("MCP ok=%d isError=%d other=%d\n", o, e, x))
end
EOL
rss() { awk '/VmRSS/{print $2}' "/proc/$NPID/status"; }
# run NAME URL [wrk args]: one DUR-second wrk run with RSS sampling; prints a summary line.
run() {
    local name=$1; shift
    : >"$work/rss"
    ( for _ in $(seq $((DUR / 2 + 5))); do rss >>"$work/rss"; sleep 2; done ) & local sp=$!
    timeout $((DUR + 60)) wrk -t"$THREADS" -c"$CONNS" -d"${DUR}s" --timeout 30s "$@" >"$work/$name.out"
    kill "$sp" 2>/dev/null || true; wait "$sp" 2>/dev/null || true
    local total errs non2xx warm peak
    total=$(awk '/requests in/{print $1}' "$work/$name.out")
    errs=$(awk '/Socket errors/{gsub(",","");print $4+$6+$8+$10}' "$work/$name.out"); errs=${errs:-0}
    non2xx=$(awk '/Non-2xx/{print $5}' "$work/$name.out"); non2xx=${non2xx:-0}
    warm=$(sed -n '6p' "$work/rss"); peak=$(tail -n +6 "$work/rss" | sort -n | tail -1)
    echo "$name: $total requests, $(awk '/Requests\/sec/{print $2}' "$work/$name.out") req/s, socket errors $errs, non-2xx $non2xx, RSS after warm-up ${warm} kB, peak after ${peak} kB, last $(tail -1 "$work/rss") kB"
    grep '^MCP ' "$work/$name.out" || true
    [ "$errs" = 0 ] || fail "$name: $errs socket errors or timeouts"
    awk -v w="$warm" -v p="$peak" 'BEGIN{exit !(p <= w * 1.10 + 2048)}' ||
        fail "$name: RSS grew from $warm to $peak kB after warm-up"
    TOTAL=$total NON2XX=$non2xx
}

echo "load: $CONNS connections, $DUR s each, wrk -t$THREADS; daemon pid $NPID; load average $(cut -d' ' -f1-3 /proc/loadavg)"
run rest "http://127.0.0.1:$REST/v1/v1/apitokens"
[ "$NON2XX" = 0 ] || fail "rest: $NON2XX non-2xx answers"
run mcp -s "$work/mcp.lua" "http://127.0.0.1:$MCP/mcp"
grep -q "^MCP ok=$TOTAL isError=0 other=0" "$work/mcp.out" || fail "mcp: not every call succeeded"

curl -sk -X POST "https://127.0.0.1:$CPORT/__double/faults" -d '{"fail_ratio":0.1}' >/dev/null
run rest-faults "http://127.0.0.1:$REST/v1/v1/apitokens"
want=$((TOTAL / 10))
# Requests in flight when wrk stops reached the double but are not counted by wrk: allow that.
awk -v n="$NON2XX" -v w="$want" -v c="$CONNS" 'BEGIN{exit !(n >= w - c / 10 - 2 && n <= w + c / 10 + 2)}' ||
    fail "rest-faults: $NON2XX failures reached callers, $want were injected"
curl -sk -X POST "https://127.0.0.1:$CPORT/__double/faults" -d '{"fail_ratio":0.1}' >/dev/null
run mcp-faults -s "$work/mcp.lua" "http://127.0.0.1:$MCP/mcp"
read -r ok iserr other < <(sed -n 's/^MCP ok=\([0-9]*\) isError=\([0-9]*\) other=\([0-9]*\)/\1 \2 \3/p' "$work/mcp-faults.out")
want=$((TOTAL / 10))
[ "$other" = 0 ] || fail "mcp-faults: $other answers were not HTTP 200"
awk -v n="$iserr" -v w="$want" -v c="$CONNS" 'BEGIN{exit !(n >= w - c / 10 - 2 && n <= w + c / 10 + 2)}' ||
    fail "mcp-faults: $iserr isError results, $want failures were injected"
echo "ok: zero socket errors; every call succeeded without faults; with 10 % injected, exactly the injected failures reached their callers; RSS flat after warm-up"
if grep -q "$KEY" "$work/n.log"; then fail "the key appears in the daemon log"; fi
