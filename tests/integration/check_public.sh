#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# check_public.sh NAFTIKOD SRCDIR: run `naftikod check` on every public capability document
# under tests/data/spec/public/ and compare exit status and diagnostics with check.expected
# (each verdict reviewed by hand: see EXPECTED.md and SOURCES.md there).
set -u
naftikod=$1
cd "$2/tests/data/spec/public" || exit 1
actual=$(for f in $(ls *.yaml *.yml 2>/dev/null | sort); do
    out=$("$naftikod" check "$f" 2>&1)
    echo "== $f exit=$?"
    printf '%s\n' "$out"
done)
if [ -n "${UPDATE:-}" ]; then
    printf '%s\n' "$actual" > check.expected
fi
if ! diff -u check.expected <(printf '%s\n' "$actual"); then
    echo "check_public: diagnostics differ from check.expected"
    exit 1
fi
echo "check_public: $(ls *.yaml *.yml 2>/dev/null | wc -l) public documents give the expected verdicts"
