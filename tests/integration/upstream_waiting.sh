#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# upstream_waiting.sh: at most 256 upstream calls per origin and loop are with curl at once; the
# others wait in the daemon. With Central holding every call: 300 REST calls at once put 44 in
# the waiting room (naftikod_upstream_waiting_calls 44 on /metrics), and all 300 answer 200 once
# Central lets them go; with --timeout shorter than the hold, a call still waiting when its time
# runs out (a timeout counts from the call's arrival) is a 504 like the others, counted as a
# timeout.
#
# usage: upstream_waiting.sh NAFTIKOD CENTRAL_DOUBLE SOURCE_DIR
set -euo pipefail
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"

nk_args "$@"
nk_init upstream-waiting waiting
nk_start_double

# calls N OUT: N REST listings at once, one connection each; OUT gets "STATUS DETAIL" per call.
calls() {
    python3 - "${REST##*:}" "$1" >"$2" <<'PY' &
import asyncio, json, sys

async def one(port):
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(b"GET /v1/v1/apitokens HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    await w.drain()
    data = await r.read()
    w.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status = head.split(b" ", 2)[1].decode() if head.startswith(b"HTTP/1.") else "ERR"
    try:
        detail = json.loads(body).get("detail", "") if status != "200" else ""
    except ValueError:
        detail = "(not JSON)"
    return f"{status} {detail}"

async def main():
    port, n = int(sys.argv[1]), int(sys.argv[2])
    res = await asyncio.gather(*(asyncio.wait_for(one(port), 30) for _ in range(n)),
                               return_exceptions=True)
    for x in res:
        print(x if isinstance(x, str) else f"EXC {type(x).__name__}")

asyncio.run(main())
PY
    CALLS_PID=$!
}
gauge() {
    curl -sS --max-time 5 "$OPS/metrics" | awk -v n="$1" '$1 == n {print $2}'
}

# ---- 300 at once, 1.5 s each at Central: 256 run, 44 wait, all 300 answer ----
nk_serve hold "$CAP" --var "central-host=127.0.0.1:$CPORT" --ca-file "$work/central.crt" \
    --loops 1 --ops-listen 127.0.0.1:0 --timeout 20000
nk_fault '{"mode":"stall","ms":1500}'
calls 300 "$work/hold.out"
waiting44() { [ "$(gauge naftikod_upstream_waiting_calls)" = 44 ]; }
wait_until waiting44 || fail "naftikod_upstream_waiting_calls is $(gauge naftikod_upstream_waiting_calls), want 44 (300 calls, 256 at once)"
wait "$CALLS_PID" || fail "the 300 calls"
n200=$(grep -c '^200 ' "$work/hold.out" || true)
[ "$n200" = 300 ] || fail "$n200 of 300 calls answered 200: $(grep -v '^200 ' "$work/hold.out" | sort | uniq -c | head -5)"
[ "$(gauge naftikod_upstream_waiting_calls)" = 0 ] || fail "calls still waiting after all answered"
nk_fault '{"mode":"none"}'
nk_stop
pass "300 calls held 1.5 s by Central: 44 waited in the daemon (gauge 44), all 300 answered 200, gauge back to 0"

# ---- a call that waits past its --timeout: 504 naming the wait ----
nk_serve short "$CAP" --var "central-host=127.0.0.1:$CPORT" --ca-file "$work/central.crt" \
    --loops 1 --ops-listen 127.0.0.1:0 --timeout 1000
nk_fault '{"mode":"stall","ms":5000}'
calls 260 "$work/short.out"
wait "$CALLS_PID" || fail "the 260 calls"
nk_fault '{"mode":"none"}'
n504=$(grep -c '^504 upstream timed out: ' "$work/short.out" || true)
[ "$n504" = 260 ] || fail "$n504 of 260 calls answered 504 'upstream timed out': $(sort "$work/short.out" | uniq -c | head -5)"
t=$(gauge 'naftikod_upstream_errors_total{kind="timeout"}')
[ "${t%.*}" = 260 ] || fail "naftikod_upstream_errors_total{kind=\"timeout\"} is $t, want 260"
[ "$(gauge naftikod_upstream_waiting_calls)" = 0 ] || fail "calls still waiting after all answered"
nk_stop
pass "--timeout 1000 under a 5 s hold: all 260 answered 504 within their time (the 4 that waited too), counted as timeouts"
