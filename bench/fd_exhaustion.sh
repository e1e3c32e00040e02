#!/usr/bin/env bash
# fd_exhaustion.sh: issue 17 item 3's figure. The daemon runs with `ulimit -n 1024` (soft and
# hard); 1,100 idle connections are opened and held for HOLD seconds, REST first (1,050) and then
# MCP (50), the order that made libmicrohttpd 0.9.75 busy-wait on accept() (EMFILE on a listener
# with no connection of its own). Measures over the last 5 s of the hold the daemon's CPU time
# (utime + stime from /proc) and the log lines it wrote during the whole hold, then checks a
# REST GET and an MCP tools/list succeed once the connections are closed. Prints `figure:` lines.
# Usage: bench/fd_exhaustion.sh [BUILD_DIR]    env: HOLD=8 (at least 6)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
B=${1:-$here/../build}
HOLD=${HOLD:-8}
. "$here/../tests/integration/common.sh"
nk_args "$B/naftikod" "$B/naftikod-demo-central" "$here/.."
nk_init fd-exhaustion
trap 'exit 130' INT TERM
HC="$here/../tests/integration/hold_conns.py"
nk_start_double
nk_serve_nofile fd 1024 "$CAP" --var "central-host=127.0.0.1:$CPORT" --ca-file "$work/central.crt"
rport=${REST##*:}
mport=${MCP##*:}
mport=${mport%/mcp}
ticks() { awk '{print $14 + $15}' "/proc/$NK_PID/stat"; }
hz=$(getconf CLK_TCK)
lines0=$(wc -l <"$work/fd.log")
python3 "$HC" --hold "$((HOLD + 5))" --ready "$work/a.ready" --stop "$work/stop" "127.0.0.1:$rport:1050" &
h1=$!
pids+=("$h1")
wait_file "$work/a.ready" "$h1" || fail "could not open the REST connections"
sleep 1
python3 "$HC" --hold "$((HOLD + 5))" --ready "$work/b.ready" --stop "$work/stop" "127.0.0.1:$mport:50" &
h2=$!
pids+=("$h2")
wait_file "$work/b.ready" "$h2" || fail "could not open the MCP connections"
sleep "$((HOLD - 5))"
fds=$(ls "/proc/$NK_PID/fd" | wc -l)
t0=$(ticks)
sleep 5
t1=$(ticks)
kill -0 "$NK_PID" 2>/dev/null || fail "naftikod died"
touch "$work/stop"
wait "$h1" "$h2" || true
lines=$(($(wc -l <"$work/fd.log") - lines0))
rest=$(curl -sS --max-time 10 -o /dev/null -w '%{http_code}' "$REST/v1/v1/apitokens" || echo 000)
mcp=$(curl -sS --max-time 10 -o "$work/body" -w '%{http_code}' -X POST "$MCP" \
    -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
    -H 'MCP-Protocol-Version: 2026-07-28' -H 'Mcp-Method: tools/list' \
    -d '{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}' || echo 000)
echo "$(grep -m1 'descriptor limit' "$work/fd.log" | sed 's/^[^ ]* //' || true)"
echo "figure: descriptors held by the daemon with 1,100 connections open: $fds (limit 1024)"
echo "figure: daemon CPU seconds over 5 s while held: $(awk -v a="$t0" -v b="$t1" -v hz="$hz" 'BEGIN{printf "%.2f", (b-a)/hz}')"
echo "figure: log lines written while held: $lines"
echo "figure: after close: REST GET $rest, MCP tools/list $mcp"
[ "$rest" = 200 ] && [ "$mcp" = 200 ] || fail "the daemon does not serve again after the connections closed"
nk_stop
