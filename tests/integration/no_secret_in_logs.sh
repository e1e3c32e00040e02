#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# no_secret_in_logs.sh ARCHIVE: after a ctest run with NK_LOG_ARCHIVE=ARCHIVE, no log line any
# test produced (daemon, double, conformance) may contain a test credential: the bound keys
# and the caller tokens the tests use. Fails too when the archive holds no daemon log, so it
# cannot pass by reading nothing.
set -euo pipefail
dir=$1
[ -d "$dir" ] || { echo "FAIL: no log archive at $dir" >&2; exit 1; }
n=$(find "$dir" -type f | wc -l)
[ "$n" -ge 20 ] || { echo "FAIL: only $n log files archived; the tests did not keep their logs" >&2; exit 1; }
bad=0
for secret in test-key-not-a-secret test-token-not-a-secret agent-token-not-a-secret-1234 \
    central-readonly-token-not-a-secret deploy-test-caller-token-not-a-secret \
    fuzz-key-not-a-secret; do
    if grep -rlaF -- "$secret" "$dir" >/dev/null; then
        echo "FAIL: '$secret' appears in: $(grep -rlaF -- "$secret" "$dir" | head -5 | tr '\n' ' ')" >&2
        bad=1
    fi
done
[ "$bad" = 0 ] || exit 1
echo "ok: $n log files from the suite ($(du -sh "$dir" | cut -f1)); no test credential in any line"
