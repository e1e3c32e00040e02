#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# unauth_bodies.sh: what unauthenticated bodies cost the daemon. With token authentication on
# both adapters (otherwise default options), CONNS connections at once (half REST, half MCP) each
# send a head with Content-Length: SIZE and then SIZE bytes of body with no Authorization, and
# hold their sockets open for HOLD seconds; the daemon's resident memory (VmRSS) is sampled
# every 10 ms meanwhile. Prints the answers the clients saw and
#   figure: unauth CONNSxSIZE rss_delta_kib=N   (peak during the load minus before it)
# Loopback only; bounded; cleans up.
# Usage: bench/unauth_bodies.sh [BUILD_DIR]      env: CONNS=300 SIZE=1048576 HOLD=3
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
B=${1:-$here/../build}
CONNS=${CONNS:-300}
SIZE=${SIZE:-1048576}
HOLD=${HOLD:-3}
# The integration tests' harness: work directory, cleanup, bounded waits, the Central double.
. "$here/../tests/integration/common.sh"
nk_args "$B/naftikod" "$B/naftikod-demo-central" "$here/.."
nk_init unauth-bench
trap 'exit 130' INT TERM
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
nk_start_double
AGENT="bench-caller-token-not-a-secret"
printf '%s\n' "$AGENT" | "$NAFTIKOD" hash-token bench >"$work/tokens" || fail "hash-token"
nk_serve nk "$CAP" --ops-listen off --var "central-host=127.0.0.1:$CPORT" \
    --ca-file "$work/central.crt" --rest-auth token --mcp-auth token --auth-tokens "$work/tokens"
# One authenticated call first, so the baseline includes what the first request allocates.
curl -sf --max-time 10 -o /dev/null -H "Authorization: Bearer $AGENT" "$REST/v1/v1/apitokens" ||
    fail "an authenticated call failed"
RPORT=${REST##*:}
MPORT=${MCP##*:}
MPORT=${MPORT%/mcp}

cat >"$work/load.py" <<'EOF'
import socket, sys, threading, time
pid, rport, mport, conns, size, hold = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), \
    int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])

def rss_kib():
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0

base = rss_kib()
peak = base
stop = False
def sample():
    global peak
    while not stop:
        peak = max(peak, rss_kib())
        time.sleep(0.01)
sampler = threading.Thread(target=sample)
sampler.start()

body = b"x" * 65536
results = []
socks = []
lock = threading.Lock()
go = threading.Barrier(conns)
def client(i):
    port, target = (rport, "/v1/v1/apitokens/generate") if i % 2 == 0 else (mport, "/mcp")
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    with lock:
        socks.append(s)
    go.wait()
    head = (f"POST {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {size}\r\n\r\n").encode()
    outcome = "sent"
    try:
        s.sendall(head)
        left = size
        while left > 0:
            n = min(left, len(body))
            s.sendall(body[:n])
            left -= n
    except OSError:
        outcome = "cut"  # the daemon answered and closed while the body was still coming
    try:
        answer = s.recv(200)
        outcome += " " + (answer.split(b" ", 2)[1].decode() if answer.startswith(b"HTTP/1.")
                          else "eof" if not answer else "?")
    except OSError:
        outcome += " reset"
    with lock:
        results.append(outcome)

threads = [threading.Thread(target=client, args=(i,)) for i in range(conns)]
for t in threads:
    t.start()
for t in threads:
    t.join()
time.sleep(hold)  # the sockets are still open
stop = True
sampler.join()
for s in socks:
    s.close()
counts = {}
for r in results:
    counts[r] = counts.get(r, 0) + 1
print("client outcomes:", ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))
print(f"rss before={base} KiB peak={peak} KiB")
print(f"figure: unauth {conns}x{size // 1048576 if size % 1048576 == 0 else size}"
      f"{'MiB' if size % 1048576 == 0 else 'B'} rss_delta_kib={peak - base}")
EOF
python3 "$work/load.py" "$NK_PID" "$RPORT" "$MPORT" "$CONNS" "$SIZE" "$HOLD"
kill -0 "$NK_PID" 2>/dev/null || fail "naftikod died under the load"
curl -sf --max-time 10 -o /dev/null -H "Authorization: Bearer $AGENT" "$REST/v1/v1/apitokens" ||
    fail "an authenticated call failed after the load"
nk_stop
