#!/usr/bin/env bash
# THE test command: tests/run.sh [extra args for cargo test / cargo nextest run]
#
# Starts the real CalDAV servers (tests/servers.sh), exports .tests/run/servers.env, checks
# formatting, runs every test target, and stops the servers again on any exit (also on
# failure and Ctrl-C). Exits with the failing status, 0 when everything passed.
# Every server is required (a server that cannot be set up fails the run), and a test whose
# server is missing fails; none is skipped.
#   SKIP_SERVERS=1   use servers already started with `tests/servers.sh start` (their
#                    .tests/run/servers.env is read; nothing is started or stopped)
#   SKIP_SMOKE=1     skip the verifier round trip against each server
#   NO_NEXTEST=1     use cargo test even when cargo-nextest is installed
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
t0=$SECONDS

started=0
cleanup() {
    local rc=$?
    if ((started)); then tests/servers.sh stop || true; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

servers="none"
if [[ -z ${SKIP_SERVERS:-} ]]; then
    started=1
    tests/servers.sh start
    set -a
    # shellcheck disable=SC1091
    . .tests/run/servers.env
    set +a
    servers=$TEST_SERVERS_UP
    [[ -n ${SKIP_SMOKE:-} ]] || tests/infra_smoke.sh
elif [[ -f .tests/run/servers.env ]]; then
    set -a
    # shellcheck disable=SC1091
    . .tests/run/servers.env
    set +a
    servers="${TEST_SERVERS_UP:-none} (started earlier)"
fi

fmt="ok"
if cargo fmt --version >/dev/null 2>&1; then
    cargo fmt --check || fmt="FAILED (run cargo fmt)"
else
    echo "run.sh: WARNING: rustfmt not installed, skipping cargo fmt --check" >&2
    fmt="skipped"
fi

test_rc=0
if [[ -z ${NO_NEXTEST:-} ]] && cargo nextest --version >/dev/null 2>&1; then
    runner="cargo nextest run"
    cargo nextest run --all-targets --no-tests=warn "$@" || test_rc=$?
else
    runner="cargo test"
    cargo test --all-targets "$@" || test_rc=$?
fi

# Packaging checks (shell tests that use the debug binary built above; the container test
# also builds the static x86_64 binary with cross/build.sh, a no-op when it is up to date).
pkg="none"
if ((test_rc == 0)); then
    pkg=""
    for t in tests/packaging_*.sh; do
        [[ -f $t ]] || continue
        name=$(basename "$t" .sh)
        if bash "$t"; then
            pkg+=" ${name#packaging_}:ok"
        else
            pkg+=" ${name#packaging_}:FAILED"
            test_rc=1
        fi
    done
    pkg=${pkg# }
fi

status="OK"
rc=0
if ((test_rc != 0)); then
    status="TESTS FAILED"
    rc=$test_rc
elif [[ $fmt == FAILED* ]]; then
    status="FORMAT CHECK FAILED"
    rc=1
fi
echo "run.sh: $status - $runner exit $test_rc, fmt $fmt, servers $servers, packaging ${pkg:-none}, $((SECONDS - t0))s"
exit "$rc"
