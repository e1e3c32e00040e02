#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# serve_ops.sh: operational behaviour of the real `naftikod serve` against the Central test
# double: SIGHUP reload under load, SIGTERM under load, the sd_notify sequence, the configuration
# file and secrets from files.
#
# usage: serve_ops.sh NAFTIKOD CENTRAL_DOUBLE SOURCE_DIR CASE
# CASE: reload | sigterm | notify | config
set -euo pipefail
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"

nk_args "$@"
CASE=$4
HERE="$SRC/tests/integration"
nk_init "ops-$CASE" "$CASE"
NK_FAIL_SKIP=' access '

# Wait (bounded: 10 s) until the log matches the extended regex $1.
wait_log() {
    wait_until grep -sEq -- "$1" "$work/naftikod.log"
}

# start_naftikod [extra args...]: capability args included by the caller; sets REST, NK_PID.
# NK_SERVE_LOOPS (environment), when set: --loops that many (tests/cmake/loops.cmake).
start_naftikod() {
    nk_serve naftikod --ops-listen off --var "central-host=127.0.0.1:$CPORT" \
        --ca-file "$work/central.crt" ${NK_SERVE_LOOPS:+--loops "$NK_SERVE_LOOPS"} "$@"
    [ -z "${NK_SERVE_LOOPS:-}" ] || [ "$NK_SERVE_LOOPS" = 1 ] ||
        grep -q "on each of $NK_SERVE_LOOPS event loops" "$work/naftikod.log" ||
        fail "not started with $NK_SERVE_LOOPS loops"
    [ -n "$REST" ] || fail "no rest= line in the port file"
}

status_of() {
    curl -sS -o "$work/body" --max-time 20 -w '%{http_code}' "$REST$1" ||
        echo 000
}

# A copy of the capability with one more REST route to the list operation.
write_added_route() {
    awk '{ print } /^  - type: rest$/ { rest = 1 }
         rest && /^    resources:$/ {
           print "    - path: /v1/reload/apitokens"
           print "      name: reload-apitokens"
           print "      description: A second route to the list operation (reload test)."
           print "      operations:"
           print "      - method: GET"
           print "        name: reloadgetapitokens"
           print "        description: Same as getapitokens."
           print "        call: stackrox-apitokenservice.getapitokens"
           print "        with:"
           print "          revoked: rest.revoked"
           rest = 0 }' "$CAP" >"$1"
    grep -q '/v1/reload/apitokens' "$1" || fail "could not edit the capability copy"
}

case_reload() {
    local cap="$work/cap.yaml" r line
    cp "$CAP" "$cap"
    nk_start_double
    start_naftikod "$cap" --ops-listen 127.0.0.1:0
    [ "$(status_of /v1/reload/apitokens)" = 404 ] || fail "the new route exists before reload"

    python3 "$HERE/loadgen.py" "${REST##*:}" 5 4 "$work/load.json" /v1/v1/apitokens &
    r=$!
    pids+=("$r")
    sleep 1
    write_added_route "$work/cap.new"
    mv "$work/cap.new" "$cap"
    kill -HUP "$NK_PID"
    wait_log 'reload: new table in force' || fail "no successful reload logged"
    [ "$(status_of /v1/reload/apitokens)" = 200 ] || fail "the new route is not served after reload"
    jq -e '.tokens | type == "array"' "$work/body" >/dev/null || fail "new route: wrong body"
    pass "first reload: new route /v1/reload/apitokens served (200)"

    sleep 1
    # Broken: an operation calls something that does not exist.
    sed 's/call: stackrox-apitokenservice.getapitokens$/call: stackrox-apitokenservice.nosuchop/' \
        "$cap" >"$work/cap.new"
    line=$(grep -n 'nosuchop' "$work/cap.new" | head -n1 | cut -d: -f1)
    [ -n "$line" ] || fail "could not break the capability copy"
    mv "$work/cap.new" "$cap"
    kill -HUP "$NK_PID"
    wait_log 'reload failed' || fail "no failed reload logged"
    grep -Eq "$cap:[0-9]+:[0-9]+: error: " "$work/naftikod.log" ||
        fail "the broken file's FILE:LINE:COLUMN is not logged"
    grep -Eq "$cap:$line:[0-9]+: error: " "$work/naftikod.log" ||
        fail "the error does not point at line $line"
    pass "broken reload: $(grep -Eo "$cap:[0-9]+:[0-9]+: error: [^\"]{0,60}" "$work/naftikod.log" | head -n1 | sed "s|$work/||")"
    [ "$(status_of /v1/reload/apitokens)" = 200 ] || fail "old table no longer served"
    pass "previous table still served after the failed reload"

    curl -sS --max-time 10 "$OPS/metrics" >"$work/metrics" || fail "no /metrics"
    grep -qx 'naftikod_reloads_total{result="ok"} 1' "$work/metrics" &&
        grep -qx 'naftikod_reloads_total{result="error"} 1' "$work/metrics" ||
        fail "reloads not counted: $(grep reloads "$work/metrics")"
    pass "naftikod_reloads_total: ok 1, error 1"

    wait "$r" || fail "load generator failed"
    jq -e '.failed == 0 and .refused == 0 and .ok > 0' "$work/load.json" >/dev/null ||
        fail "requests failed under reload: $(cat "$work/load.json")"
    pass "load during both reloads: $(jq -c '{ok, failed, refused}' "$work/load.json")"
    kill -0 "$NK_PID" || fail "daemon died"
    nk_stop
}

case_sigterm() {
    local r n_log n_ok
    nk_start_double
    start_naftikod "$CAP"
    # Every upstream call takes 200 ms, so requests are in flight when SIGTERM arrives.
    nk_fault '{"mode":"stall","ms":200,"count":-1}'
    python3 "$HERE/loadgen.py" "${REST##*:}" 10 8 "$work/load.json" /v1/v1/apitokens &
    r=$!
    pids+=("$r")
    sleep 2
    nk_stop "naftikod under load"
    wait "$r" || fail "load generator failed"
    jq -e '.failed == 0 and .ok > 0' "$work/load.json" >/dev/null ||
        fail "a request was cut short: $(cat "$work/load.json")"
    n_ok=$(jq .ok "$work/load.json")
    n_log=$(grep -c ' access .* 200 ' "$work/naftikod.log" || true)
    [ "$n_ok" = "$n_log" ] || fail "$n_log answers logged, $n_ok complete at the client"
    pass "SIGTERM under load: exit 0, every accepted request answered: $(jq -c '{ok, failed, refused}' "$work/load.json")"
}

# Wait (bounded: 10 s) until the notify log has $1 lines.
notes_at_least() {
    [ "$(wc -l <"$work/notify.log" 2>/dev/null || echo 0)" -ge "$1" ]
}
wait_notes() {
    wait_until notes_at_least "$1"
}

case_notify() {
    local l seq
    nk_start_double
    : >"$work/notify.log"
    python3 "$HERE/notify_listen.py" "$work/notify.sock" "$work/notify.log" 30 &
    l=$!
    pids+=("$l")
    wait_until test -S "$work/notify.sock" || fail "notify listener did not start"
    NOTIFY_SOCKET="$work/notify.sock" start_naftikod "$CAP"
    wait_notes 1 || fail "no READY=1"
    [ "$(sed -n 1p "$work/notify.log")" = "READY=1" ] || fail "first note: $(sed -n 1p "$work/notify.log")"
    [ -s "$work/naftikod.ports" ] || fail "READY=1 before the port file"
    pass "READY=1 after the listeners and the port file"
    kill -HUP "$NK_PID"
    wait_notes 3 || fail "no RELOADING=1/READY=1 after SIGHUP: $(cat "$work/notify.log")"
    grep -Eq '^RELOADING=1\|MONOTONIC_USEC=[0-9]+$' <(sed -n 2p "$work/notify.log") ||
        fail "second note: $(sed -n 2p "$work/notify.log")"
    [ "$(sed -n 3p "$work/notify.log")" = "READY=1" ] || fail "third note: $(sed -n 3p "$work/notify.log")"
    pass "SIGHUP: RELOADING=1 (with MONOTONIC_USEC) then READY=1"
    nk_stop
    wait_notes 4 || fail "no STOPPING=1"
    [ "$(sed -n 4p "$work/notify.log")" = "STOPPING=1" ] || fail "fourth note: $(sed -n 4p "$work/notify.log")"
    seq=$(tr '\n' ' ' <"$work/notify.log" | sed 's/MONOTONIC_USEC=[0-9]*/MONOTONIC_USEC=N/')
    pass "STOPPING=1 on SIGTERM; sequence: $seq"

    # Watchdog: WATCHDOG_USEC=400000 -> WATCHDOG=1 every 200 ms.
    wait "$l" 2>/dev/null || true
    : >"$work/notify.log"
    python3 "$HERE/notify_listen.py" "$work/notify.sock" "$work/notify.log" 30 &
    l=$!
    pids+=("$l")
    wait_until test -S "$work/notify.sock" || fail "notify listener did not start again"
    NOTIFY_SOCKET="$work/notify.sock" WATCHDOG_USEC=400000 start_naftikod "$CAP"
    wait_notes 4 || fail "no watchdog pings: $(cat "$work/notify.log")"
    [ "$(grep -c '^WATCHDOG=1$' "$work/notify.log")" -ge 3 ] || fail "watchdog: $(cat "$work/notify.log")"
    pass "WATCHDOG_USEC=400000: WATCHDOG=1 pings sent"
    # A request stalled for 1 s is in flight at SIGTERM: pings go on during the drain.
    nk_fault '{"mode":"stall","ms":1000,"count":1}'
    curl -sS --max-time 10 -o /dev/null "$REST/v1/v1/apitokens" &
    pids+=("$!")
    sleep 0.2
    nk_stop "naftikod (watchdog run)"
    sed -n '/^STOPPING=1$/,$p' "$work/notify.log" | grep -qx 'WATCHDOG=1' ||
        fail "no WATCHDOG=1 during the drain: $(tr '\n' ' ' <"$work/notify.log")"
    pass "WATCHDOG=1 pings continue during the drain"
}

# launch ENV... -- ARGS...: naftikod serve ARGS with the environment assignments ENV (and no
# STACKROX_API_KEY unless given); sets NK_PID, REST (empty when it exited).
launch() {
    nk_launch naftikod "$@" || true
}

case_config() {
    local etc="$work/etc" st
    nk_start_double
    mkdir -p "$etc/caps" "$work/creds"
    cp "$CAP" "$etc/caps/apitokens.yaml"
    cat >"$etc/naftikod.yaml" <<YAML
# test configuration
rest-port: 0
mcp-port: 0
ops-listen: "off"
log-format: json
ca-file: $work/central.crt
var:
  central-host: "127.0.0.1:1"
capabilities:
  - caps/apitokens.yaml
YAML
    printf 'Bearer %s\n' "$KEY" >"$work/key"

    # File values apply (JSON logs, capabilities relative to the file); the environment beats the
    # file's var (CENTRAL_HOST), the key comes from STACKROX_API_KEY_FILE.
    launch "CENTRAL_HOST=127.0.0.1:$CPORT" "STACKROX_API_KEY_FILE=$work/key" -- --config "$etc/naftikod.yaml"
    [ -n "$REST" ] || fail "did not start with the config file"
    [ "$(status_of /v1/v1/apitokens)" = 200 ] || fail "env CENTRAL_HOST / key file: $(cat "$work/body")"
    wait_log '"msg":"access"' || fail "no JSON access line"
    python3 -c 'import json,sys; [json.loads(l) for l in open(sys.argv[1])]' "$work/naftikod.log" ||
        fail "log-format: json from the file not applied"
    ! grep -q "has no scheme" "$work/naftikod.log" ||
        fail "scheme warning although the resolved value is 'Bearer ...'"
    ! grep -q "$KEY" "$work/naftikod.log" || fail "the key was logged"
    nk_stop
    pass "config file: capabilities relative to the file, json logs; env beats file var; key from STACKROX_API_KEY_FILE"

    # Environment beats the file (NAFTIKOD_LOG_FORMAT), the flag beats the environment; the key
    # from \$CREDENTIALS_DIRECTORY; NAFTIKOD_CONFIG names the file.
    printf 'Bearer %s\n' "$KEY" >"$work/creds/STACKROX_API_KEY"
    launch "NAFTIKOD_CONFIG=$etc/naftikod.yaml" "NAFTIKOD_LOG_FORMAT=logfmt" \
        "CREDENTIALS_DIRECTORY=$work/creds" -- --var "central-host=127.0.0.1:$CPORT"
    [ -n "$REST" ] || fail "did not start with NAFTIKOD_CONFIG"
    [ "$(status_of /v1/v1/apitokens)" = 200 ] || fail "--var / credentials directory"
    wait_log '^time=.* level=info msg=access method=GET path=/v1/v1/apitokens status=200 ' || fail "NAFTIKOD_LOG_FORMAT=logfmt did not beat the file"
    nk_stop
    launch "NAFTIKOD_CONFIG=$etc/naftikod.yaml" "NAFTIKOD_LOG_FORMAT=logfmt" \
        "CREDENTIALS_DIRECTORY=$work/creds" -- --var "central-host=127.0.0.1:$CPORT" \
        --log-format text
    [ -n "$REST" ] || fail "did not start with --log-format text"
    [ "$(status_of /v1/v1/apitokens)" = 200 ] || fail "text run"
    wait_log '^[0-9T:.-]+Z access GET /v1/v1/apitokens 200 ' ||
        fail "--log-format text did not beat the environment"
    nk_stop
    pass "precedence: flag > env > file; key from \$CREDENTIALS_DIRECTORY; NAFTIKOD_CONFIG"

    # Capability arguments replace the file's list.
    launch "STACKROX_API_KEY=Bearer $KEY" -- --config "$etc/naftikod.yaml" \
        --var "central-host=127.0.0.1:$CPORT" "$work/nonexistent.yaml"
    st=0
    wait "$NK_PID" || st=$?
    [ "$st" = 1 ] && grep -q "nonexistent.yaml" "$work/naftikod.log" ||
        fail "argument did not replace the file's capabilities (status $st)"
    pass "CAPABILITY arguments replace capabilities:"

    # NAME and NAME_FILE both set: an error naming both, no value printed.
    launch "STACKROX_API_KEY=Bearer $KEY" "STACKROX_API_KEY_FILE=$work/key" -- \
        --config "$etc/naftikod.yaml"
    st=0
    wait "$NK_PID" || st=$?
    [ "$st" = 1 ] || fail "both set: exit status $st"
    grep -q "STACKROX_API_KEY and STACKROX_API_KEY_FILE" "$work/naftikod.log" ||
        fail "both set: message does not name both"
    ! grep -q "$KEY" "$work/naftikod.log" || fail "both set: the key was printed"
    # Unreadable key file: named, exit 1.
    launch "STACKROX_API_KEY_FILE=$work/missing-key" -- --config "$etc/naftikod.yaml"
    st=0
    wait "$NK_PID" || st=$?
    [ "$st" = 1 ] && grep -q "$work/missing-key" "$work/naftikod.log" ||
        fail "unreadable key file not named (status $st)"
    pass "NAME and NAME_FILE both set -> exit 1 naming both; unreadable file named"

    # A bare token (no "Bearer "): the resolved value is judged, the warning names no value.
    launch "STACKROX_API_KEY=$KEY" -- --config "$etc/naftikod.yaml" --log-format text
    [ -n "$REST" ] || fail "did not start with a bare key"
    nk_stop
    grep -q "warning: the Authorization value of consumer 'stackrox-apitokenservice' .* has no scheme" \
        "$work/naftikod.log" || fail "no scheme warning for a bare token"
    [ "$(grep -c 'has no scheme' "$work/naftikod.log")" = 1 ] || fail "scheme warning repeated"
    ! grep -q "$KEY" "$work/naftikod.log" || fail "the key was logged"
    pass "Authorization scheme judged on the resolved value (silent for 'Bearer ...', one warning for a bare token)"

    # A bad key and a bad value: FILE:LINE:COLUMN and the key, exit 1.
    printf 'rest-port: 0\ntimeout: soon\n' >"$etc/bad.yaml"
    launch -- --config "$etc/bad.yaml" "$CAP"
    st=0
    wait "$NK_PID" || st=$?
    [ "$st" = 1 ] || fail "bad value: exit status $st"
    grep -qF "$etc/bad.yaml:2:10: timeout: 'soon' is not a non-negative integer" \
        "$work/naftikod.log" || fail "bad value: $(cat "$work/naftikod.log")"
    printf 'rest-port: 0\nlisten-adress: 127.0.0.1\n' >"$etc/bad.yaml"
    launch -- --config "$etc/bad.yaml" "$CAP"
    st=0
    wait "$NK_PID" || st=$?
    [ "$st" = 1 ] && grep -qF "$etc/bad.yaml:2:1: listen-adress: unknown key" "$work/naftikod.log" ||
        fail "unknown key: status $st: $(cat "$work/naftikod.log")"
    pass "bad value and unknown key -> FILE:LINE:COLUMN: key, exit 1"

    # SIGHUP re-reads the file: a new var applies, a changed timeout needs a restart.
    launch "STACKROX_API_KEY=Bearer $KEY" -- --config "$etc/naftikod.yaml"
    [ -n "$REST" ] || fail "did not start (reload part)"
    [ "$(status_of /v1/v1/apitokens)" = 502 ] || fail "file var 127.0.0.1:1 should be unreachable"
    sed -i "s/127.0.0.1:1\"/127.0.0.1:$CPORT\"/; s/^log-format: json/log-format: json\ntimeout: 7000/" \
        "$etc/naftikod.yaml"
    kill -HUP "$NK_PID"
    wait_log 'reload: new table in force' || fail "reload with the new config not logged"
    grep -q 'reload: --timeout changed: it needs a restart' "$work/naftikod.log" ||
        fail "no restart warning for --timeout"
    [ "$(status_of /v1/v1/apitokens)" = 200 ] || fail "reloaded var not applied"
    nk_stop
    pass "SIGHUP re-reads the config file: var applied live, --timeout change needs a restart (warned)"
}

case "$CASE" in
reload) case_reload ;;
sigterm) case_sigterm ;;
notify) case_notify ;;
config) case_config ;;
*) fail "unknown case $CASE" ;;
esac
