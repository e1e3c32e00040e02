#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# oauth_bench.sh: what inbound authentication costs an MCP tools/call. Four naftikod daemons on
# one Central double (TLS), same capability and options, one loop each: no authentication
# (none), a static token from --auth-tokens (static), an OAuth JWT checked against the cached
# JWKS of the authorization-server double with the verdict cache on (jwt, the default) and off
# (jwt-nocache: a signature verification per call). Same load (bench/mcp_load.mjs: CONC
# keep-alive workers, one session each), daemons measured alternately for ROUNDS rounds;
# medians of req/s, latency and each daemon's CPU per call (/proc/PID/stat utime+stime over the
# calls it answered). Prints one `ratio:` line per comparison (goal: jwt >= 0.9 x static).
# Loopback only; every process stopped on exit; bounded.
# Needs: tests/mcp/install.sh (Node 22 under build/mcp-npm, or NK_MCP_NPM_PREFIX), python3, openssl.
# Usage: bench/oauth_bench.sh [BUILD_DIR]     env: DUR=10 CONC=16 ROUNDS=5 WARM=2 ALG=RS256
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
B=$(cd "${1:-$root/build}" && pwd)
DUR=${DUR:-10}; CONC=${CONC:-16}; ROUNDS=${ROUNDS:-5}; WARM=${WARM:-2}; ALG=${ALG:-RS256}
NODE="${NK_MCP_NPM_PREFIX:-$B/mcp-npm}/node_modules/.bin/node"
[ -x "$NODE" ] || { echo "no Node 22 at $NODE: run tests/mcp/install.sh first" >&2; exit 1; }
. "$here/../tests/integration/common.sh"
DOUBLE="$B/naftikod-demo-central"
SRC=$root
nk_init oauth-bench
trap 'exit 130' INT TERM
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
nk_start_double
for i in 1 2 3; do
    curl -sfk -H "Authorization: Bearer $KEY" -X POST "https://127.0.0.1:$CPORT/v1/apitokens/generate" \
        -d "{\"name\":\"bench-$i\",\"role\":\"Analyst\"}" >/dev/null
done
mkdir -p "$work/as"
python3 "$root/tests/oauth/as_double.py" --dir "$work/as" 2>"$work/as.log" &
pids+=($!); wait_file "$work/as/as.port" $! || fail "the AS double did not start"
ISS="https://127.0.0.1:$(cat "$work/as/as.port")"
cat "$work/central.crt" "$work/as/ca.crt" >"$work/bundle.crt"
STATIC="bench-static-token-not-a-secret-0123456789"
printf '%s\n' "$STATIC" | "$B/naftikod" hash-token bench >"$work/tokens"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

names=(none static jwt jwt-nocache); declare -a spids urls auths
export STACKROX_API_KEY="Bearer $KEY"
for i in "${!names[@]}"; do
    n=${names[$i]}; port=$(free_port); res="http://127.0.0.1:$port/mcp"
    case $n in
    none) extra=(); auths[i]="" ;;
    static) extra=(--mcp-auth token --auth-tokens "$work/tokens"); auths[i]="Bearer $STATIC" ;;
    jwt*) extra=(--mcp-auth oauth --mcp-oauth-issuer "$ISS" --mcp-oauth-resource "$res"
                 --mcp-oauth-scopes mcp:tools)
          [ "$n" = jwt-nocache ] && extra+=(--oauth-cache-entries 0) ;;
    esac
    "$B/naftikod" serve "$root/capabilities/stackrox-apitokenservice.yaml" --rest-port 0 \
        --mcp-port "$port" --loops 1 --ops-listen off --port-file "$work/$n.port" \
        --ca-file "$work/bundle.crt" --var central-host="127.0.0.1:$CPORT" "${extra[@]}" \
        >"$work/$n.log" 2>&1 &
    spids[i]=$!; pids+=($!); wait_file "$work/$n.port" $! || fail "naftikod $n did not start"
    urls[i]=$res
    if [ "${n#jwt}" != "$n" ]; then
        now=$(date +%s)
        claims=$(jq -cn --arg iss "$ISS" --arg aud "$res" --argjson now "$now" \
            '{iss:$iss, sub:"bench", client_id:"bench", aud:$aud, scope:"mcp:tools",
              iat:$now, exp:($now+7200)}')
        kid=r1; [ "$ALG" = ES256 ] && kid=e1
        tok=$(curl -fsS --cacert "$work/as/ca.crt" -X POST "$ISS/__double/sign" \
            -d "{\"alg\":\"$ALG\",\"kid\":\"$kid\",\"claims\":$claims}")
        auths[i]="Bearer $tok"
    fi
done
unset STACKROX_API_KEY
tck=$(getconf CLK_TCK)
cpu() { awk '{print $14+$15}' "/proc/$1/stat"; }
load() { MCP_LOAD_AUTHORIZATION=$2 timeout $((${3:-$DUR} + 60)) "$NODE" "$here/mcp_load.mjs" "$1" \
             --conc "$CONC" --dur "${3:-$DUR}" 2>>"$work/load.err"; }
field() { sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p"; }
median() { sort -n | awk '{a[NR]=$1} END{print (NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2}'; }
echo "$(nproc) CPUs; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "DUR=$DUR CONC=$CONC ROUNDS=$ROUNDS ALG=$ALG; one event loop per daemon; node $("$NODE" --version)"
for i in "${!names[@]}"; do
    out=$(load "${urls[$i]}" "${auths[$i]}" "$WARM") || fail "warm-up of ${names[$i]} failed"
    [ "$(field ok <<<"$out")" -gt 0 ] && [ "$(field err <<<"$out")" = 0 ] ||
        fail "warm-up of ${names[$i]}: $out"
done
declare -A RPS CPUC P50
for r in $(seq "$ROUNDS"); do
    for i in "${!names[@]}"; do
        t0=$(cpu "${spids[$i]}")
        out=$(load "${urls[$i]}" "${auths[$i]}") || fail "load against ${names[$i]} failed"
        t1=$(cpu "${spids[$i]}")
        ok=$(field ok <<<"$out"); err=$(field err <<<"$out")
        [ "$err" = 0 ] || fail "${names[$i]}: $err errors in round $r"
        us=$(awk "BEGIN{printf \"%.1f\", ($t1-$t0)*1e6/$tck/($ok>0?$ok:1)}")
        RPS[${names[$i]}]+="$(field rps <<<"$out") "
        CPUC[${names[$i]}]+="$us "
        P50[${names[$i]}]+="$(field p50_ms <<<"$out") "
        echo "round $r ${names[$i]}: $(field rps <<<"$out") req/s, p50 $(field p50_ms <<<"$out") ms, $us us CPU/call"
    done
done
med() { tr ' ' '\n' <<<"$1" | sed '/^$/d' | median; }
printf '%-12s %10s %10s %14s\n' daemon req/s p50_ms cpu_us/call
for n in "${names[@]}"; do
    printf '%-12s %10s %10s %14s\n' "$n" "$(med "${RPS[$n]}")" "$(med "${P50[$n]}")" "$(med "${CPUC[$n]}")"
done
ratio() { awk "BEGIN{printf \"%.3f\", $1/($2>0?$2:1)}"; }
s=$(med "${RPS[static]}"); j=$(med "${RPS[jwt]}"); jn=$(med "${RPS[jwt-nocache]}"); z=$(med "${RPS[none]}")
echo "ratio: jwt/static req/s $(ratio "$j" "$s") (goal >= 0.9)"
echo "ratio: jwt-nocache/static req/s $(ratio "$jn" "$s")"
echo "ratio: static/none req/s $(ratio "$s" "$z")"
echo "ratio: jwt/static cpu per call $(ratio "$(med "${CPUC[jwt]}")" "$(med "${CPUC[static]}")")"
echo "ratio: jwt-nocache/static cpu per call $(ratio "$(med "${CPUC[jwt-nocache]}")" "$(med "${CPUC[static]}")")"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
