#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# packaging.sh: the systemd unit (systemd-analyze verify and security), naftikod(8), and the
# .deb (built with CPack, extracted into a clean prefix, run).
#
# usage: packaging.sh CASE NAFTIKOD SOURCE_DIR BUILD_DIR
# CASE: systemd | man | deb. Exit 77 (skip) when a tool is missing, unless NK_REQUIRE_SYSTEMD=1
# (systemd) is set, which makes that a failure.
set -euo pipefail
CASE=$1
NAFTIKOD=$2
SRC=$3
BUILD=$4
work=$(mktemp -d "${TMPDIR:-/tmp}/nk-pkg-$CASE.XXXXXX")
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL [$CASE]: $*" >&2; exit 1; }

case_systemd() {
    local out score unit
    if ! command -v systemd-analyze >/dev/null 2>&1; then
        [ "${NK_REQUIRE_SYSTEMD:-}" = 1 ] && fail "systemd-analyze is not installed"
        echo "skip: systemd-analyze is not installed"
        exit 77
    fi
    # The unit as a user gets it: `cmake --install` into a fresh root (binary, unit, naftikod(8)),
    # plus the system's own units; verify reads the installed man page through MANPATH, so the
    # unit's Documentation=man:naftikod(8) is checked too (no --man=no).
    DESTDIR="$work/root" cmake --install "$BUILD" --prefix /usr >"$work/install.log" 2>&1 ||
        fail "cmake --install: $(cat "$work/install.log")"
    unit=/usr/lib/systemd/system/naftikod.service
    [ -f "$work/root$unit" ] || fail "cmake --install did not install $unit"
    [ -f "$work/root/usr/share/man/man8/naftikod.8" ] || fail "cmake --install did not install naftikod(8)"
    # ExecReload's /bin/kill only has to exist and be executable for verify.
    mkdir -p "$work/root/bin"
    printf '#!/bin/sh\n' >"$work/root/bin/kill"
    chmod 755 "$work/root/bin/kill"
    cp -rn /usr/lib/systemd/system/. "$work/root/usr/lib/systemd/system/"
    out=$(MANPATH="$work/root/usr/share/man" systemd-analyze verify --root="$work/root" "$unit" 2>&1) ||
        fail "systemd-analyze verify: $out"
    [ -z "$out" ] || fail "systemd-analyze verify printed: $out"
    echo "ok: systemd-analyze verify of the installed naftikod.service (and its man page): clean"
    out=$(systemd-analyze security --offline=yes "$work/root$unit" 2>&1) ||
        fail "systemd-analyze security: $out"
    score=$(sed -n 's/.*Overall exposure level for naftikod.service: \([0-9.]*\) .*/\1/p' <<<"$out")
    [ -n "$score" ] || fail "no exposure level in: $out"
    awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }' || fail "exposure level $score is above 2.0"
    echo "ok: systemd-analyze security: exposure level $score (<= 2.0)"
}

case_man() {
    local page="$BUILD/naftikod.8" flag warn
    [ -f "$page" ] || fail "$page was not generated"
    if ! command -v groff >/dev/null 2>&1; then
        echo "skip: groff is not installed"
        exit 77
    fi
    warn=$(groff -man -rHY=0 -rLL=200n -Tascii -P-cbou -ww "$page" 2>&1 >"$work/page.txt") || fail "groff failed: $warn"
    [ -z "$warn" ] || fail "groff warnings: $warn"
    for flag in $("$NAFTIKOD" serve --options-markdown | sed -n 's/^| `\(--[a-z-]*\).*/\1/p'); do
        grep -q -- "$flag" "$work/page.txt" || fail "naftikod(8) lacks $flag"
    done
    for s in SIGHUP SIGTERM CREDENTIALS_DIRECTORY "EXIT STATUS" hash-token; do
        grep -q -- "$s" "$work/page.txt" || fail "naftikod(8) lacks $s"
    done
    echo "ok: naftikod(8) renders without a warning and documents every serve option"
}

case_deb() {
    local deb info
    command -v cpack >/dev/null 2>&1 && command -v dpkg-deb >/dev/null 2>&1 ||
        { echo "skip: cpack or dpkg-deb missing"; exit 77; }
    (cd "$work" && cpack --config "$BUILD/CPackConfig.cmake" -G DEB -B "$work/out" >"$work/cpack.log" 2>&1) ||
        { cat "$work/cpack.log" >&2; fail "cpack failed"; }
    deb=$(ls "$work"/out/naftikod_*.deb) || fail "no .deb produced"
    info=$(dpkg-deb -I "$deb")
    grep -q '^ Depends:.*libmicrohttpd12.*' <<<"$info" || fail "Depends lacks libmicrohttpd12: $info"
    for d in libcurl4 libjansson4 libyaml-0-2 libssl3; do
        grep -q "^ Depends:.*$d" <<<"$info" || fail "Depends lacks $d"
    done
    dpkg-deb -e "$deb" "$work/control"
    grep -qx /etc/naftikod/naftikod.yaml "$work/control/conffiles" || fail "the config is not a conffile"
    grep -qx /etc/naftikod/capabilities.d/stackrox-apitokenservice.yaml "$work/control/conffiles" ||
        fail "the capabilities.d document is not a conffile"
    dpkg-deb -x "$deb" "$work/root"
    for f in usr/bin/naftikod usr/bin/naftikod-demo-central usr/lib/systemd/system/naftikod.service usr/share/man/man8/naftikod.8 \
        etc/naftikod/naftikod.yaml usr/share/naftikod/capabilities/stackrox-apitokenservice.yaml \
        etc/naftikod/capabilities.d/stackrox-apitokenservice.yaml; do
        [ -f "$work/root/$f" ] || fail "the package lacks /$f"
    done
    "$work/root/usr/bin/naftikod" --version | grep -q '^naftikod [0-9]' || fail "--version"
    "$work/root/usr/bin/naftikod" check \
        "$work/root/usr/share/naftikod/capabilities/stackrox-apitokenservice.yaml" \
        >"$work/check.log" 2>&1 || fail "check of the packaged capability: $(cat "$work/check.log")"
    "$work/root/usr/bin/naftikod" check "$work/root/etc/naftikod/capabilities.d" \
        >"$work/check.log" 2>&1 || fail "check of capabilities.d: $(cat "$work/check.log")"
    "$work/root/usr/bin/naftikod-demo-central" --help | grep -q '^usage: naftikod-demo-central' ||
        fail "naftikod-demo-central --help"
    echo "ok: $(basename "$deb"): Depends $(sed -n 's/^ Depends: //p' <<<"$info"); extracted into a clean prefix, --version and check work"
}

"case_$CASE"
