#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# conformance.sh: run the official MCP conformance suite (@modelcontextprotocol/conformance,
# pinned in tests/mcp/package.json) against naftikod for one protocol version, with the
# expected failures of tests/mcp/expected-failures.yml, and print each scenario's summary.
#
# Install the tools first (Node 22 + packages under build/mcp-npm):
#     tests/mcp/install.sh
# Usage:
#     tests/mcp/conformance.sh VERSION            naftikod serve + the Central double
#     tests/mcp/conformance.sh --engine VERSION   the engine test server (fake tools)
# Exit: 0 all scenarios pass, 1 a failure, 77 tools or binaries missing (ctest: skipped).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

engine=0
if [ "${1:-}" = "--engine" ]; then
    engine=1
    shift
fi
version=${1:?usage: conformance.sh [--engine] VERSION}
case $version in
2025-06-18) scenarios=(server-initialize server-session-lifecycle ping tools-list) ;;
2025-11-25) scenarios=(server-initialize server-session-lifecycle ping tools-list
                       dns-rebinding-protection server-sse-multiple-streams) ;;
2026-07-28) scenarios=(server-stateless tools-list dns-rebinding-protection
                       server-sse-multiple-streams http-header-validation caching) ;;
*) echo "unknown version $version"; exit 2 ;;
esac

need_npm
if [ $engine = 1 ]; then
    start_engine
else
    start_central
    start_daemon
fi

fail=0
summary=()
for s in "${scenarios[@]}"; do
    out=$tmp/$s.out
    set +e
    NO_COLOR=1 FORCE_COLOR=0 "$node" "$conformance" server --url "$url" --spec-version "$version" \
        --scenario "$s" --expected-failures "$here/expected-failures.yml" >"$out" 2>&1
    rc=$?
    set -e
    sed 's/\x1b\[[0-9;]*m//g' "$out" | grep -E '^\S+Z \[' | grep -v ' SUCCESS ' | cut -c 26-200 || true
    line=$(sed 's/\x1b\[[0-9;]*m//g' "$out" | grep -E '^Passed: ' | tail -n1)
    if [ $rc -eq 0 ]; then
        case $line in *" 0 failed"*) ;; *) line="$line (all expected)" ;; esac
        summary+=("PASS $version $s: $line")
    else
        fail=1
        summary+=("FAIL $version $s: $line")
        sed 's/\x1b\[[0-9;]*m//g' "$out" | grep -A20 -E 'Unexpected failures|Stale baseline' || true
    fi
done
echo "== conformance $version ($([ $engine = 1 ] && echo engine || echo naftikod serve))"
printf '%s\n' "${summary[@]}"
n_fail=$(printf '%s\n' "${summary[@]}" | grep -c '^FAIL' || true)
echo "conformance: $(( ${#summary[@]} - n_fail )) passed, $n_fail failed"
exit $fail
