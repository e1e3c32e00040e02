#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# fresh_machine.sh: the README's run command on a fresh Debian 12: a minimal bookworm root made
# by mmdebstrap (apt and ca-certificates only: no compiler, no library, no test package), a clean
# clone of this repository inside it, and `scripts/demo.sh --check` run there as root in a chroot.
# It proves the run command installs everything it needs and never reaches for a test package.
#
# usage: fresh_machine.sh [REPO]   (default: this checkout; its committed HEAD is what is cloned)
set -euo pipefail
repo=$(cd "${1:-$(dirname "$0")/../..}" && pwd)
root=$(mktemp -d "${TMPDIR:-/tmp}/nk-fresh.XXXXXX")
mounted=()
cleanup() {
    local m
    for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount "${mounted[$i]}" 2>/dev/null || true; done
    for m in "${mounted[@]}"; do mountpoint -q "$m" && { echo "fresh: $m is still mounted; leaving $root" >&2; return; }; done
    rm -rf "$root"
}
trap cleanup EXIT

if ! command -v mmdebstrap >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mmdebstrap >/dev/null
fi
mmdebstrap --quiet --variant=apt --include=ca-certificates bookworm "$root/sys-root" >"$root/mmdebstrap.log" 2>&1 ||
    { cat "$root/mmdebstrap.log" >&2; echo "fresh: mmdebstrap failed" >&2; exit 1; }
r=$root/sys-root
cp /etc/resolv.conf "$r/etc/resolv.conf"
git clone -q "$repo" "$r/root/naftikod"
for m in proc dev dev/pts; do
    case $m in proc) mount -t proc proc "$r/proc" ;; *) mount --bind "/$m" "$r/$m" ;; esac
    mounted+=("$r/$m")
done
for tool in cc gcc cmake pkg-config clang valgrind node; do
    if chroot "$r" /usr/bin/env PATH=/usr/sbin:/usr/bin:/sbin:/bin sh -c "command -v $tool" >/dev/null 2>&1; then
        echo "fresh: the fresh root already has $tool: not fresh" >&2
        exit 1
    fi
done
chroot "$r" /usr/bin/env -i HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin TERM=dumb \
    /bin/bash -c 'cd /root/naftikod && scripts/demo.sh --check'
for pkg in libcmocka-dev clang valgrind nodejs; do
    if chroot "$r" dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        echo "fresh: the run command installed the test package $pkg" >&2
        exit 1
    fi
done
echo "ok: fresh Debian 12 root: scripts/demo.sh --check passed with runtime packages only"
