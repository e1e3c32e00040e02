# SPDX-License-Identifier: Apache-2.0
# keep_logs.sh (sourced): nk_keep_logs DIR copies every log file a test wrote under DIR to
# $NK_LOG_ARCHIVE (when set), so tests/integration/no_secret_in_logs.sh can read every log the
# suite produced after the tests have removed their own directories.
nk_keep_logs() {
    [ -n "${NK_LOG_ARCHIVE:-}" ] && [ -d "$1" ] || return 0
    mkdir -p "$NK_LOG_ARCHIVE"
    local f
    while IFS= read -r -d '' f; do
        cp "$f" "$NK_LOG_ARCHIVE/$(basename "$1")-$(basename "$f")" 2>/dev/null || true
    done < <(find "$1" -maxdepth 3 -type f \( -name '*.log' -o -name log -o -name '*.err' \) -print0)
}
