# shellcheck shell=bash
# Helpers shared by scripts/start, scripts/test and scripts/s3s-e2e. Source it; do not run it.
#
# Environment (all optional):
#   CARGO_TARGET_DIR   cargo's build directory (default: ~/.cache/coffer/target, outside the clone, so a fresh
#                      clone of the repo reuses earlier builds)
#   COFFER_VENV        Python virtualenv for the test clients (default: ~/.cache/coffer/venv)
#   COFFER_LINT_VENV   Python virtualenv for the deploy/ checks of `scripts/test lint` (default:
#                      ~/.cache/coffer/lint-venv)
#   COFFER_CONSOLE_VENV Python virtualenv for the console's browser tests (default: ~/.cache/coffer/console-venv)
#   COFFER_KEYSTONE_VENV Python virtualenv with Keystone for the Swift tests (default: ~/.cache/coffer/keystone-venv)
#   COFFER_TOOLS       where `cargo install` puts test tools such as s3s-e2e (default: ~/.cache/coffer/tools)
#   COFFER_SKIP_APT=1  never call apt-get (just warn about missing packages)

COFFER_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
COFFER_CACHE="${COFFER_CACHE:-$HOME/.cache/coffer}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$COFFER_CACHE/target}"
COFFER_VENV="${COFFER_VENV:-$COFFER_CACHE/venv}"
COFFER_LINT_VENV="${COFFER_LINT_VENV:-$COFFER_CACHE/lint-venv}"
COFFER_CONSOLE_VENV="${COFFER_CONSOLE_VENV:-$COFFER_CACHE/console-venv}"
export COFFER_KEYSTONE_VENV="${COFFER_KEYSTONE_VENV:-$COFFER_CACHE/keystone-venv}"
COFFER_TOOLS="${COFFER_TOOLS:-$COFFER_CACHE/tools}"

# Rust toolchains installed by rustup live in ~/.cargo/bin, which non-login shells may not have on PATH.
if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi

log() {
    printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2
}

die() {
    log "ERROR: $*"
    exit 1
}

# --- sections with timings -------------------------------------------------------------------------------------
# `section TITLE CMD ARGS...` prints a header, runs the command (under the caller's `set -e`, so a failure exits
# the script), then a footer with the elapsed time. `print_summary` (run from an EXIT trap) prints every
# section's result, including the one that was running when the script failed.
_SECTIONS=()
_CUR_SECTION=""
_CUR_START=0

section() {
    local title=$1
    shift
    _CUR_SECTION=$title
    _CUR_START=$SECONDS
    printf '\n===== %s ===== (%s)\n' "$title" "$(date '+%Y-%m-%d %H:%M:%S')"
    printf '+ %s\n' "$*"
    "$@"
    local took=$((SECONDS - _CUR_START))
    _SECTIONS+=("$(printf '%-9s %6ss  %s' ok "$took" "$title")")
    printf -- '----- %s: ok in %ss (%s)\n' "$title" "$took" "$(disk_free_summary)"
    _CUR_SECTION=""
}

# `disk_free_summary`: free space where builds and test data go, for the section footers.
disk_free_summary() {
    local tmp="${TMPDIR:-/tmp}"
    printf 'free: %s in %s, %s in %s' "$(_free_gib "$CARGO_TARGET_DIR")" "$CARGO_TARGET_DIR" \
        "$(_free_gib "$tmp")" "$tmp"
}

_free_gib() {
    local dir=$1
    while [ ! -d "$dir" ]; do dir="$(dirname "$dir")"; done
    df -Pk "$dir" | awk 'NR == 2 { printf "%.1f GiB", $4 / 1048576 }'
}

_free_kib() {
    local dir=$1
    while [ ! -d "$dir" ]; do dir="$(dirname "$dir")"; done
    df -Pk "$dir" | awk 'NR == 2 { print $4 }'
}

# `reclaim_disk`: deletes what earlier runs left behind and no run needs: test folders in $TMPDIR older than two
# hours (a killed run cannot clean up after itself), and, when the build directory's disk has less than
# COFFER_MIN_FREE_GIB (default 12) free, cargo's incremental caches. A run that fills the disk fails in odd places
# (blobnodes go read-only below their reserve), so this runs before anything is built.
reclaim_disk() {
    local tmp="${TMPDIR:-/tmp}" min_gib="${COFFER_MIN_FREE_GIB:-12}"
    find "$tmp" -maxdepth 1 -mmin +120 \( -name 'coffer-*' -o -name "pytest-of-$(id -un)" \) \
        -exec rm -rf {} + 2>/dev/null || true
    if [ "$(_free_kib "$CARGO_TARGET_DIR")" -lt $((min_gib * 1048576)) ]; then
        log "less than $min_gib GiB free for $CARGO_TARGET_DIR: deleting cargo's incremental caches"
        rm -rf "$CARGO_TARGET_DIR"/debug/incremental "$CARGO_TARGET_DIR"/release/incremental
    fi
    log "$(disk_free_summary)"
}

print_summary() {
    local rc=$1
    if [ -n "$_CUR_SECTION" ]; then
        local took=$((SECONDS - _CUR_START))
        _SECTIONS+=("$(printf '%-9s %6ss  %s' FAILED "$took" "$_CUR_SECTION")")
        printf -- '----- %s: FAILED (exit %s) after %ss (%s)\n' "$_CUR_SECTION" "$rc" "$took" "$(disk_free_summary)"
    fi
    if [ "${#_SECTIONS[@]}" -gt 0 ]; then
        printf '\n===== summary (total %ss) =====\n' "$SECONDS"
        printf '%s\n' "${_SECTIONS[@]}"
    fi
}

# --- prerequisites ----------------------------------------------------------------------------------------------
_pkg_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

# `ensure_apt_packages PKG...` installs the Debian packages that are not installed yet (nothing when all are).
ensure_apt_packages() {
    if ! command -v dpkg-query >/dev/null 2>&1; then
        log "not a Debian system: make sure these are installed: $*"
        return 0
    fi
    local missing=() p
    for p in "$@"; do
        _pkg_installed "$p" || missing+=("$p")
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        log "apt packages present: $*"
        return 0
    fi
    if [ "${COFFER_SKIP_APT:-0}" = 1 ]; then
        log "COFFER_SKIP_APT=1: not installing missing packages: ${missing[*]}"
        return 0
    fi
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || die "need root or sudo to install: ${missing[*]}"
        sudo=(sudo)
    fi
    log "installing apt packages: ${missing[*]}"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# What `cargo build` of the workspace needs besides the Rust toolchain: a C/C++ compiler and linker (RocksDB, zstd,
# lz4 are built from source by their -sys crates) and libclang for RocksDB's bindgen.
ensure_build_prereqs() {
    command -v cargo >/dev/null 2>&1 || die "cargo not found: install the Rust toolchain (rustup) first"
    ensure_apt_packages ca-certificates gcc g++ libc6-dev libclang-dev
}

# Extra tools for the test suite: python3 with venv/ensurepip (Debian splits it out), curl for health checks.
ensure_test_prereqs() {
    local pkgs=(curl)
    if ! command -v python3 >/dev/null 2>&1; then
        pkgs+=(python3 python3-venv)
    elif ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
        pkgs+=(python3-venv)
    fi
    ensure_apt_packages "${pkgs[@]}"
}

# `ensure_venv [VENV REQUIREMENTS]`: create or update a virtualenv with a requirements file, skipped when the
# requirements are unchanged. Default: the test clients, $COFFER_VENV with tests/python/requirements.txt.
ensure_venv() {
    local venv="${1:-$COFFER_VENV}"
    local req="${2:-$COFFER_REPO/tests/python/requirements.txt}"
    local stamp="$venv/.coffer-requirements"
    if [ ! -x "$venv/bin/python" ]; then
        log "creating virtualenv $venv"
        mkdir -p "$(dirname "$venv")"
        python3 -m venv "$venv"
    fi
    if [ -f "$stamp" ] && cmp -s "$req" "$stamp"; then
        log "virtualenv $venv is up to date"
    else
        log "installing $req into $venv"
        "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$req"
        cp "$req" "$stamp"
    fi
    if [ "$venv" = "$COFFER_VENV" ]; then
        "$venv/bin/python" -m pip list --disable-pip-version-check 2>/dev/null |
            grep -iE '^(boto3|botocore|awscli|pytest) ' | tr -s ' ' | paste -sd' ' - >&2 || true
    fi
}

S3S_E2E_VERSION=0.14.1

s3s_e2e_bin() {
    printf '%s\n' "$COFFER_TOOLS/bin/s3s-e2e"
}

# Install the s3s-e2e conformance client once. It is a debug build: it is only a client, and a debug build of the
# AWS SDK compiles several minutes faster than a release one. --locked pins s3s-e2e's own dependency versions
# (its AWS SDK is older than the workspace's, so nothing is shared with the workspace build anyway).
ensure_s3s_e2e() {
    local bin
    bin="$(s3s_e2e_bin)"
    if [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -q "$S3S_E2E_VERSION"; then
        log "s3s-e2e $S3S_E2E_VERSION already installed at $bin"
        return 0
    fi
    log "installing s3s-e2e $S3S_E2E_VERSION into $COFFER_TOOLS (one-time, several minutes)"
    CARGO_PROFILE_DEV_DEBUG=0 cargo install s3s-e2e --version "$S3S_E2E_VERSION" --locked --debug \
        --root "$COFFER_TOOLS" --target-dir "$CARGO_TARGET_DIR"
}

# Print a free TCP port on 127.0.0.1 (the kernel picks it; another process could still take it before we bind).
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}
