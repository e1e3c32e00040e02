#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# test.sh: first prove the run path (scripts/demo.sh --check on a build that sees no test package,
# then on a fresh Debian 12 root); then install what is missing, build with warnings as errors,
# run every test; then build again under AddressSanitizer + UndefinedBehaviorSanitizer and run
# every test again; then the unit and integration tests a third time under ThreadSanitizer.
# This is the README's test command and what CI runs (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc 2>/dev/null || echo 2)

# The run path first, as a newcomer meets it: the README's run command on a build that cannot
# see any test-only package (pkg-config is pointed at a copy of its search path without
# cmocka.pc), so a run-time dependency on a test package fails here even on a machine that has
# the test packages installed.
echo "== run path (scripts/demo.sh --check, no test packages visible)"
hidden=$(mktemp -d "${TMPDIR:-/tmp}/nk-pc.XXXXXX")
trap 'rm -rf "$hidden"' EXIT
scripts/deps.sh
for d in $(pkg-config --variable pc_path pkg-config | tr : ' '); do
    for pc in "$d"/*.pc; do
        [ -e "$pc" ] && [ "$(basename "$pc")" != cmocka.pc ] && ln -sf "$pc" "$hidden/"
    done
done
rm -rf build-run
PKG_CONFIG_LIBDIR=$hidden scripts/demo.sh --check --build-dir build-run
grep -qx 'NK_TESTS:BOOL=OFF' build-run/CMakeCache.txt || { echo "run path: NK_TESTS did not default to OFF without cmocka" >&2; exit 1; }
# Asking for the tests without cmocka is an error that names the package.
if PKG_CONFIG_LIBDIR=$hidden cmake -S . -B build-run/no-cmocka -DNK_TESTS=ON >build-run/no-cmocka.log 2>&1 ||
    ! grep -q 'libcmocka-dev' build-run/no-cmocka.log; then
    echo "run path: -DNK_TESTS=ON without cmocka did not fail naming libcmocka-dev" >&2
    exit 1
fi
echo "ok: run path: built without test packages, demo --check passed, NK_TESTS=ON without cmocka refused"
# And on a really fresh Debian 12: a minimal bookworm root (mmdebstrap) with a clean clone of
# this commit, where the run command must install everything itself.
echo "== run path on a fresh Debian 12 root (mmdebstrap + chroot)"
tests/integration/fresh_machine.sh

scripts/deps.sh --test
# The protocol tools were just installed: a test that cannot find them fails instead of skipping.
export NK_REQUIRE_SPECTRAL=1 NK_REQUIRE_MCP_TOOLS=1 NK_REQUIRE_SYSTEMD=1

echo "== build (gcc, -Werror)"
cmake -S . -B build -DNK_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$jobs"
echo "== tests (gcc, -Werror)"
rm -rf build/test-logs
(cd build && NK_LOG_ARCHIVE="$PWD/test-logs" ctest --output-on-failure -j"$jobs" --timeout 600)
tests/integration/no_secret_in_logs.sh build/test-logs

echo "== build (clang, AddressSanitizer + UndefinedBehaviorSanitizer)"
cmake -S . -B build-asan -DNK_WERROR=ON -DNK_SANITIZE=address,undefined \
      -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build-asan -j"$jobs"
echo "== tests (ASan + UBSan)"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
rm -rf build-asan/test-logs
(cd build-asan && NK_LOG_ARCHIVE="$PWD/test-logs" ctest --output-on-failure -j"$jobs" --timeout 900)
tests/integration/no_secret_in_logs.sh build-asan/test-logs

# The listeners, the upstream client and the ops listener share state across threads: run the
# unit and daemon tests once more under ThreadSanitizer (a data race fails the run: TSan's exit
# status 66). ASLR off for the run: TSan cannot map its shadow memory under some kernels'
# randomisation settings. The protocol-tool, packaging, style and fuzz-replay tests have no
# threads of naftikod's own and already ran twice.
echo "== build (clang, ThreadSanitizer)"
cmake -S . -B build-tsan -DNK_WERROR=ON -DNK_SANITIZE=thread \
      -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build-tsan -j"$jobs"
echo "== tests (ThreadSanitizer: unit and integration)"
export TSAN_OPTIONS=halt_on_error=0:second_deadlock_stack=1
(cd build-tsan && setarch "$(uname -m)" -R ctest --output-on-failure -j"$jobs" --timeout 900 \
    -R '^(unit|integration)\.')

# The container image, built from the Dockerfile without any registry: a bookworm root made by
# mmdebstrap as the base, `buildah bud --isolation chroot`, then the image's naftikod runs
# --version, check and a short serve as uid 10001 (tests/integration/image_build.sh).
echo "== container image (mmdebstrap + buildah, no registry)"
rc=0
tests/integration/image_build.sh "$PWD" build/naftikod-demo-central || rc=$?
# Here its tools were installable: a skip (77) is a failure too.
[ "$rc" = 0 ] || { echo "container image: failed (exit $rc)" >&2; exit 1; }
