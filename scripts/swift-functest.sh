# shellcheck shell=bash
# Helpers shared by scripts/s3api-suite and scripts/swift-suite, the two runners of OpenStack Swift's own functional
# tests (the `swift` source distribution on PyPI) against a fresh `coffer server`. Source it after lib.sh; do not
# run it. Both runners share one virtualenv and one unpacked source tree (downloaded once).
#
# Environment:
#   COFFER_S3API_VENV  Python virtualenv for swift, pytest, python-swiftclient, boto and boto3 (default:
#                      ~/.cache/coffer/s3api-venv; its own, because swift's dependencies do not belong in the
#                      test-client venv)

SWIFT_VERSION=2.38.3
SWIFT_FUNCTEST_VENV="${COFFER_S3API_VENV:-$COFFER_CACHE/s3api-venv}"
SWIFT_SRC_DIR="$COFFER_TOOLS/swift"
SWIFT_TREE="$SWIFT_SRC_DIR/swift-$SWIFT_VERSION"

# `ensure_swift_functest_env TMPDIR`: the virtualenv (swift for the test package's imports, pytest, python-swiftclient,
# boto 2 and boto3) and the unpacked sdist at $SWIFT_TREE (the wheel has no test/ directory).
ensure_swift_functest_env() {
    local tmp=$1 venv=$SWIFT_FUNCTEST_VENV py
    # boto 2 imports the `imp` module, gone in Python 3.12: with a newer Python the boto 2 based s3api tests (most of
    # them) skip with "boto 2.x library is not installed". Prefer python3.11 when present.
    if [ ! -x "$venv/bin/python" ]; then
        py=python3
        if command -v python3.11 >/dev/null 2>&1; then py=python3.11; fi
        log "creating virtualenv $venv with $py ($("$py" --version 2>&1))"
        mkdir -p "$(dirname "$venv")"
        "$py" -m venv "$venv"
    fi
    if ! "$venv/bin/python" -c 'import sys; sys.exit(sys.version_info >= (3, 12))'; then
        log "warning: $venv has Python $("$venv/bin/python" -V 2>&1 | cut -d' ' -f2); boto 2 needs <= 3.11," \
            "so the boto 2 based s3api tests will skip (install python3.11 and remove the venv)"
    fi
    cat >"$tmp/requirements.txt" <<EOF
# scripts/swift-functest.sh: Swift $SWIFT_VERSION's functional test package and the clients its tests use.
swift==$SWIFT_VERSION
eventlet==0.41.3
greenlet==3.5.6
PasteDeploy==3.1.0
lxml==6.1.3
requests==2.34.2
xattr==1.3.0
pyeclib==1.8.0
cryptography==50.0.2
dnspython==2.9.2
python-swiftclient==4.11.0
# For the Keystone run of the functional tests (auth_version 3).
python-keystoneclient==6.0.0
boto==2.49.0
boto3==1.44.8
botocore==1.44.8
s3transfer==0.19.3
awscrt==0.38.1
pytest==9.2.0
pytest-subtests==0.15.0
pytest-timeout==2.4.0
EOF
    ensure_venv "$venv" "$tmp/requirements.txt"

    if [ ! -f "$SWIFT_TREE/test/functional/s3api/__init__.py" ]; then
        log "downloading the swift $SWIFT_VERSION source distribution into $SWIFT_SRC_DIR"
        mkdir -p "$SWIFT_SRC_DIR"
        "$venv/bin/python" -m pip download -q --disable-pip-version-check --no-deps --no-binary :all: \
            -d "$SWIFT_SRC_DIR" "swift==$SWIFT_VERSION"
        rm -rf "$SWIFT_TREE.partial"
        mkdir -p "$SWIFT_TREE.partial"
        tar -xzf "$SWIFT_SRC_DIR/swift-$SWIFT_VERSION.tar.gz" -C "$SWIFT_TREE.partial" --strip-components=1
        mv "$SWIFT_TREE.partial" "$SWIFT_TREE"
    fi
}

# `stop_pid PID NAME`: SIGTERM, then SIGKILL after 20 s. Nothing when PID is empty or gone.
stop_pid() {
    local pid=$1 name=$2
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 200); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "$name did not exit within 20 s of SIGTERM; killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

# `wait_coffer_ready ENDPOINT PID`: poll ENDPOINT/health/ready for up to 60 s; die when the server exits first.
wait_coffer_ready() {
    local endpoint=$1 pid=$2 deadline=$((SECONDS + 60))
    until curl -fsS -o /dev/null --max-time 2 "$endpoint/health/ready" 2>/dev/null; do
        kill -0 "$pid" 2>/dev/null || die "server exited before becoming ready"
        [ "$SECONDS" -lt "$deadline" ] || die "server not ready after 60 s"
        sleep 0.2
    done
}

# The environment of a pytest run: no AWS, boto or Swift client settings of the caller's leak into the tests.
# shellcheck disable=SC2034  # used by the scripts that source this file
SWIFT_FUNCTEST_CLEAN_ENV=(
    env -u AWS_PROFILE -u AWS_DEFAULT_PROFILE -u AWS_SESSION_TOKEN -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY
    -u AWS_ENDPOINT_URL -u AWS_CONFIG_FILE -u AWS_SHARED_CREDENTIALS_FILE -u S3_USE_SIGV4 -u OS_AUTH_URL
    -u OS_USERNAME -u OS_PASSWORD -u ST_AUTH -u ST_USER -u ST_KEY
    AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true
    BOTO_CONFIG=/dev/null PYTHONDONTWRITEBYTECODE=1 SWIFT_TEST_IN_PROCESS=0
)
