#!/usr/bin/env bash
# Runs the binaries of cross/build.sh (target/dist/calplanebot-<triple>) for real: ARM ones
# under qemu-user, x86_64 natively. Per target:
#   1. `--version` must succeed;
#   2. `--once` against a local Radicale and the fake Plane must exit 0 with Created > 0;
#   3. a second `--once` must report `Created:   0` and send no PUT.
#
#   tests/cross_check.sh aarch64 armv7 x86_64     (or full triples, or `all`)
#
# It starts its own Radicale and fake Plane on free ports (so it does not collide with
# tests/servers.sh or tests/demo.sh), gives every target its own CalDAV user and state dir,
# and stops everything on exit. Data and logs: .tests/cross-check/ (wiped on every run).
# Installs when missing: qemu-user-static (Debian), Radicale (pinned by tests/requirements.txt)
# into the venv .tests/cross-venv that cross/build.sh also uses.
#
# Environment: CROSS_VENV=.tests/cross-venv  PYTHON3=python3  CROSS_READY_TIMEOUT=30
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
VENV=${CROSS_VENV:-$ROOT/.tests/cross-venv}
WORK=$ROOT/.tests/cross-check
DIST=$ROOT/target/dist
HOST=127.0.0.1
READY_TIMEOUT=${CROSS_READY_TIMEOUT:-30}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
FAKE_PLANE=$TARGET/debug/examples/fake-plane
PIDS=()

log() { printf 'cross_check: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
# shellcheck source=lib.sh
. "$ROOT/tests/lib.sh"

# The emulator a target's binary runs under (nothing for the host's own architecture).
runner_of() {
    case $1 in
    aarch64-*) [[ $(uname -m) == aarch64 ]] || echo qemu-aarch64-static ;;
    armv7-*) [[ $(uname -m) == armv7l ]] || echo qemu-arm-static ;;
    x86_64-*) [[ $(uname -m) == x86_64 ]] || echo qemu-x86_64-static ;;
    esac
}



install_radicale() {
    local spec
    spec=$(grep -m1 '^radicale==' tests/requirements.txt 2>/dev/null || echo radicale)
    [[ -x $VENV/bin/radicale && $(cat "$VENV/.radicale-spec" 2>/dev/null) == "$spec" ]] && return 0
    log "installing $spec into $VENV"
    [[ -x $VENV/bin/pip ]] || "${PYTHON3:-python3}" -m venv "$VENV" >>"$WORK/install.log" 2>&1 ||
        die "cannot create a venv (on Debian: apt-get install python3-venv)"
    "$VENV/bin/pip" install -q --disable-pip-version-check "$spec" >>"$WORK/install.log" 2>&1 ||
        die "pip install $spec failed (see $WORK/install.log)"
    echo "$spec" >"$VENV/.radicale-spec"
}

free_port() {
    "$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

alive() { kill -0 "$1" 2>/dev/null; }

wait_ready() { # name url pid log
    local code deadline=$((SECONDS + READY_TIMEOUT))
    while :; do
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$2" || true)
        [[ $code == 000 || -z $code ]] || return 0
        alive "$3" || { tail -n 20 "$4" >&2; die "$1 exited during startup (log: $4)"; }
        ((SECONDS < deadline)) || { tail -n 20 "$4" >&2; die "$1 did not answer at $2 (log: $4)"; }
        sleep 0.1
    done
}

cleanup() {
    local rc=$? pid i
    if ((${#PIDS[@]})); then
        kill -TERM "${PIDS[@]}" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do
            local left=0
            for pid in "${PIDS[@]}"; do alive "$pid" && left=1; done
            ((left)) || break
            sleep 0.1
        done
        for pid in "${PIDS[@]}"; do alive "$pid" && kill -KILL "$pid" 2>/dev/null; done
        wait "${PIDS[@]}" 2>/dev/null || true
    fi
    exit "$rc"
}

(($#)) || { sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }
TRIPLES=()
for a in "$@"; do
    case $a in
    all) TRIPLES+=(aarch64-unknown-linux-musl armv7-unknown-linux-musleabihf x86_64-unknown-linux-musl) ;;
    *)
        t=$(triple_of "$a") || die "unknown target '$a' (aarch64, armv7, x86_64, all)"
        TRIPLES+=("$t")
        ;;
    esac
done
for t in "${TRIPLES[@]}"; do
    [[ -x $DIST/calplanebot-$t ]] || die "$DIST/calplanebot-$t missing: run cross/build.sh first"
done

# A user's real settings must not leak into the check (variables beat the env file).
for v in $(compgen -e); do
    case $v in
    PLANE_* | CALDAV_* | SYNC_* | CALPLANEBOT_* | STATE_DIR | STATE_DIRECTORY | LOG_LEVEL | \
        ITEM_KIND | DATE_MODE | COMPLETED_ITEMS | MAX_DELETE_FRACTION | HTTP_TIMEOUT_SECONDS)
        unset "$v"
        ;;
    esac
done

rm -rf "$WORK"
mkdir -p "$WORK"
apt_need "$WORK/install.log" curl curl
for t in "${TRIPLES[@]}"; do
    r=$(runner_of "$t")
    [[ -z $r ]] || apt_need "$WORK/install.log" "$r" qemu-user-static
done
install_radicale
log "building the fake Plane (cargo build --example fake-plane)"
cargo build -q --example fake-plane || die "cargo build --example fake-plane failed"

trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Radicale: one user per target, so every target syncs into empty calendars.
RADICALE_PORT=$(free_port)
PLANE_PORT=$(free_port)
rd=$WORK/radicale
mkdir -p "$rd"
: >"$rd/users"
for t in "${TRIPLES[@]}"; do printf '%s:pw-%s\n' "${t%%-*}" "${t%%-*}" >>"$rd/users"; done
write_radicale_conf "$rd" "$HOST:$RADICALE_PORT"
"$VENV/bin/radicale" --config "$rd/radicale.conf" </dev/null >"$rd/radicale.log" 2>&1 &
RADICALE_PID=$!
PIDS+=("$RADICALE_PID")
"$FAKE_PLANE" --addr "$HOST:$PLANE_PORT" --projects 3 --items 40 --api-key cross-token --slug cross \
    </dev/null >"$WORK/fake-plane.log" 2>&1 &
PLANE_PID=$!
PIDS+=("$PLANE_PID")
wait_ready Radicale "http://$HOST:$RADICALE_PORT/" "$RADICALE_PID" "$rd/radicale.log"
wait_ready "fake Plane" "http://$HOST:$PLANE_PORT/api/v1/users/me/" "$PLANE_PID" "$WORK/fake-plane.log"
log "Radicale on :$RADICALE_PORT, fake Plane on :$PLANE_PORT"

# check TRIPLE — prints one result line; returns non-zero on failure.
check() {
    local t=$1 user=${1%%-*} bin=$DIST/calplanebot-$1 r d=$WORK/$1 out2 created ver t0=$SECONDS
    local -a run=()
    r=$(runner_of "$t")
    [[ -z $r ]] || run=("$r")
    mkdir -p "$d"
    cat >"$d/env" <<EOF
PLANE_BASE_URL=http://$HOST:$PLANE_PORT
PLANE_API_TOKEN=cross-token
PLANE_WORKSPACE_SLUG=cross
CALDAV_URL=http://$HOST:$RADICALE_PORT/
CALDAV_USERNAME=$user
CALDAV_PASSWORD=pw-$user
STATE_DIR=$d/state
EOF
    fail() { printf '%-32s FAIL: %s (logs: %s)\n' "$t" "$1" "${d#"$ROOT"/}"; return 1; }
    ver=$(cd "$d" && "${run[@]}" "$bin" --version 2>"$d/version.err") || fail "--version exited $?" || return 1
    (cd "$d" && "${run[@]}" "$bin" --env-file "$d/env" --once >"$d/once1.out" 2>"$d/once1.err") ||
        fail "first --once exited $?" || return 1
    created=$(sed -n 's/^ *Created: *\([0-9]*\).*/\1/p' "$d/once1.out")
    [[ -n $created && $created -gt 0 ]] || fail "first --once created '${created}' events" || return 1
    (cd "$d" && "${run[@]}" "$bin" --env-file "$d/env" --once >"$d/once2.out" 2>"$d/once2.err") ||
        fail "second --once exited $?" || return 1
    grep -q '^ *Created: *0$' "$d/once2.out" || fail "second --once created events" || return 1
    out2=$(grep '^ *Requests:' "$d/once2.out") || fail "second --once printed no Requests line" || return 1
    [[ $out2 != *PUT* ]] || fail "second --once sent PUTs: ${out2# *}" || return 1
    printf '%-32s ok: %s [%s]; --once created %s; again: created 0, %s (%ss)\n' \
        "$t" "$ver" "${run[*]:-native}" "$created" "$(echo "$out2" | sed 's/^ *//')" $((SECONDS - t0))
}

failed=0
for t in "${TRIPLES[@]}"; do check "$t" || failed=1; done
exit "$failed"
