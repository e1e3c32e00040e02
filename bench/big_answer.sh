#!/usr/bin/env bash
# big_answer.sh: one big upstream JSON answer (default 12 MiB, a JSON array from the demo
# Central's `big` fault) through a REST route mapped with `$.`, while small REST GETs run on other
# connections. Prints `figure:` lines: the daemon's peak RSS added by the big call (VmHWM after
# minus VmRSS before) and its ratio to the answer size, the big call's time, and p50/p99/max of
# the small requests that ran meanwhile. Then the same through MCP. Loopback only; bounded.
# Usage: bench/big_answer.sh [BUILD_DIR]    env: BYTES=12582912 SMALL_CONNS=4 ROUNDS=3
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
B=${1:-$here/../build}
BYTES=${BYTES:-12582912}
SMALL_CONNS=${SMALL_CONNS:-4}
ROUNDS=${ROUNDS:-3}
# The integration tests' harness: work directory, cleanup, bounded waits, certificate, double.
. "$here/../tests/integration/common.sh"
nk_args "$B/naftikod" "$B/naftikod-demo-central" "$here/.."
nk_init big-answer
trap 'exit 130' INT TERM
nk_start_double
nk_serve nk "$CAP" --ops-listen off --var "central-host=127.0.0.1:$CPORT" \
    --ca-file "$work/central.crt" --max-response $((BYTES + BYTES / 4))
echo "double https://127.0.0.1:$CPORT  naftikod $REST (pid $NK_PID), answer $BYTES bytes"
curl -sf "$REST/v1/v1/apitokens" >/dev/null || fail "a normal GET failed"
kb() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$NK_PID/status"; }

# One round: the big call on one connection; SMALL_CONNS clients loop small GETs (through the
# same daemon and double) from the moment the double takes the big call until it has ended.
# Writes "STATUS BYTES SECONDS" of the big call to $work/big, the small latencies (ms) to
# $work/small.
round() { # round rest|mcp
    python3 - "$1" "$REST" "$MCP" "$SMALL_CONNS" "$work/small" "$work/big" "$CPORT" \
        "$work/central.crt" <<'EOF'
import http.client, json, ssl, sys, threading, time
from urllib.parse import urlsplit
mode, rest, mcp, conns, small_out, big_out, cport, cafile = sys.argv[1:9]
conns = int(conns)
stop = threading.Event()
lat = []
lock = threading.Lock()
res = {}
def conn(url):
    u = urlsplit(url)
    return http.client.HTTPConnection(u.hostname, u.port, timeout=60), u.path
def small():
    c, _ = conn(rest)
    while not stop.is_set():
        t = time.perf_counter()
        c.request("GET", "/v1/v1/apitokens")
        r = c.getresponse(); r.read()
        ms = (time.perf_counter() - t) * 1000
        if r.status != 200:
            raise SystemExit("small GET answered %d" % r.status)
        with lock:
            lat.append(ms)
def big():
    c, path = conn(rest if mode == "rest" else mcp)
    t0 = time.perf_counter()
    if mode == "rest":
        c.request("GET", "/v1/v1/apitokens")
    else:
        meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientCapabilities": {}}
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                           "params": {"name": "getapitokens-returns-all-api-tokens",
                                      "arguments": {}, "_meta": meta}})
        c.request("POST", path, body, {"Content-Type": "application/json",
                  "Accept": "application/json, text/event-stream",
                  "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call",
                  "Mcp-Name": "getapitokens-returns-all-api-tokens"})
    r = c.getresponse(); data = r.read()
    res["big"] = (r.status, len(data), time.perf_counter() - t0)
# The double's fault is armed for one API request: the big call must be that one, so the small
# clients start once the double has taken it (its fault mode is back to none).
ctx = ssl.create_default_context(cafile=cafile)
b = threading.Thread(target=big); b.start()
for _ in range(400):
    d = http.client.HTTPSConnection("127.0.0.1", int(cport), context=ctx, timeout=10)
    d.request("GET", "/__double/faults")
    if json.loads(d.getresponse().read())["mode"] == "none":
        break
    time.sleep(0.005)
ts = [threading.Thread(target=small) for _ in range(conns)]
for t in ts: t.start()
b.join()
time.sleep(0.1)
stop.set()
for t in ts: t.join()
st, n, secs = res["big"]
open(big_out, "w").write("%d %d %.3f\n" % (st, n, secs))
open(small_out, "w").write("\n".join("%.3f" % x for x in lat) + "\n")
EOF
}
pct() { sort -n "$work/small" | awk -v p="$1" '{v[NR]=$1} END {i=int(NR*p/100+0.999); if(i<1)i=1; printf "%.1f", v[i]}'; }

for mode in rest mcp; do
    for r in $(seq "$ROUNDS"); do
        # 5 resets the peak (VmHWM) to the current RSS: each round measures its own peak.
        echo 5 >"/proc/$NK_PID/clear_refs" 2>/dev/null || true
        rss0=$(kb VmRSS)
        hwm0=$(kb VmHWM)
        nk_fault "{\"mode\":\"big\",\"bytes\":$BYTES,\"count\":1}"
        round "$mode"
        read -r st len secs <"$work/big"
        hwm=$(kb VmHWM)
        [ "$st" = 200 ] || echo "note: round $r $mode: the big call answered $st ($len bytes)"
        n=$(wc -l <"$work/small")
        echo "figure: $mode round $r: big call ${secs}s, $len bytes; peak RSS +$(((hwm - rss0) / 1024)) MiB over $((rss0 / 1024)) MiB before (VmHWM $((hwm0 / 1024)) -> $((hwm / 1024)) MiB), $(awk -v h="$hwm" -v r0="$rss0" -v b="$BYTES" 'BEGIN{printf "%.2f", (h-r0)*1024/b}')x the answer; $n small GETs meanwhile: p50 $(pct 50) ms, p99 $(pct 99) ms, max $(pct 100) ms"
    done
done
echo "figure: resident after the rounds: $(($(kb VmRSS) / 1024)) MiB"
nk_stop
