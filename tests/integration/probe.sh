#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# probe.sh: `naftikod probe [URL]`, the image's HEALTHCHECK: 0 on a 2xx answer of the ops
# listener, 1 on another status, on a refused connection or on an answer that is not HTTP,
# 2 on a usage error; the default URL is the ops listener's default address.
# usage: probe.sh NAFTIKOD NAFTIKOD_DEMO_CENTRAL SOURCE_DIR
set -euo pipefail
. "$(dirname "$0")/common.sh"
nk_args "$1" "$2" "$3"
nk_init probe probe

expect() { # STATUS ARGS...: naftikod probe ARGS exits STATUS
    local want=$1 st=0
    shift
    timeout 30 "$NAFTIKOD" probe "$@" >"$work/probe.out" 2>"$work/probe.err" || st=$?
    [ "$st" = "$want" ] || fail "naftikod probe $* exited $st, not $want: $(cat "$work/probe.err")"
}
nk_start_double
nk_serve probe "$CAP" --ops-listen 127.0.0.1:0 --var "central-host=127.0.0.1:$CPORT" \
    --ca-file "$work/central.crt"
port=${OPS##*:}
expect 0 "$OPS/healthz"
expect 0 "$OPS/readyz"
expect 0 "http://localhost:$port/healthz"
expect 1 "$OPS/no-such-path"
grep -q 'answered 404' "$work/probe.err" || fail "probe did not name the 404"
nk_stop
expect 1 "$OPS/healthz" # nothing listens any more
grep -q 'cannot connect' "$work/probe.err" || fail "probe did not say it could not connect"
# Something that answers but not HTTP: the Central double speaks TLS only.
expect 1 "http://127.0.0.1:$CPORT/"
expect 2 "https://127.0.0.1:$CPORT/"
expect 2 "http://127.0.0.1:$port/a b"
expect 2 "http://127.0.0.1:99999999/"
expect 2 "$OPS/healthz" extra
expect 2 --bogus
expect 0 --help
"$NAFTIKOD" probe --help | grep -q '127.0.0.1:8091/healthz' || fail "--help does not name the default URL"
"$NAFTIKOD" --help | grep -q '^  probe' || fail "naftikod --help does not list probe"
pass "probe: 2xx 0; 404, refused, not HTTP 1; usage 2"
