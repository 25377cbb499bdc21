#!/usr/bin/env bash
# Try calplanebot without Plane and without a calendar server, in one command:
#
#   tests/demo.sh          set up, sync once, list the calendars, stop the servers again
#   tests/demo.sh --keep   the same, but leave both servers running to try more commands
#   tests/demo.sh --stop   stop the servers a --keep run left running
#
# What it does (everything lives under .tests/, nothing is installed system-wide):
#   1. a Python venv at .tests/demo-venv with only Radicale (pip from PyPI), reused later;
#   2. Radicale on 127.0.0.1:5232, user demo / password demo, data in .tests/demo/;
#   3. the fake Plane from tests/fake_plane (3 projects, 40 work items each) on :8090;
#   4. .tests/demo/demo.env with the PLANE_* and CALDAV_* variables for both;
#   5. calplanebot test-plane, test-caldav, --once and list against them.
# Every run starts from a clean .tests/demo/ (the venv is kept).
#
# Environment:
#   DEMO_RADICALE_PORT=5232   DEMO_PLANE_PORT=8090   change the ports when they are taken
#   DEMO_READY_TIMEOUT=30     seconds to wait for each server
#   PYTHON3=python3           the Python that makes the venv
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
DEMO=$ROOT/.tests/demo
VENV=$ROOT/.tests/demo-venv
PIDS=$ROOT/.tests/demo.pids # outside $DEMO, which every run wipes
HOST=127.0.0.1
RADICALE_PORT=${DEMO_RADICALE_PORT:-5232}
PLANE_PORT=${DEMO_PLANE_PORT:-8090}
READY_TIMEOUT=${DEMO_READY_TIMEOUT:-30}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BOT=$TARGET/debug/calplanebot
FAKE_PLANE=$TARGET/debug/examples/fake-plane
ENV_FILE=$DEMO/demo.env

log() { printf 'demo: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
# shellcheck source=lib.sh
. "$ROOT/tests/lib.sh"

usage() { sed -n '2,6p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

# alive PID — running and not a zombie (kill -0 also succeeds on a zombie).
alive() {
    kill -0 "$1" 2>/dev/null || return 1
    local st
    st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 0
    [[ $st != Z ]]
}

# ours PID PATTERN — only signal a pid whose command line still matches (pids get reused).
ours() {
    [[ -r /proc/$1/cmdline ]] || return 0 # no /proc (macOS): trust the pid file
    tr '\0' ' ' <"/proc/$1/cmdline" | grep -qF -- "$2"
}

# stop_servers [quiet] — TERM what the pid file names, wait up to 5 s, then KILL.
stop_servers() {
    local name pid pattern pids=() names="" i left
    if [[ -f $PIDS ]]; then
        while read -r name pid pattern; do
            if [[ -n $pid ]] && alive "$pid" && ours "$pid" "$pattern"; then
                pids+=("$pid")
                names+=" $name($pid)"
            fi
        done <"$PIDS"
    fi
    if ((${#pids[@]})); then
        kill -TERM "${pids[@]}" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do
            left=0
            for pid in "${pids[@]}"; do alive "$pid" && left=1; done
            ((left)) || break
            sleep 0.1
        done
        for pid in "${pids[@]}"; do
            alive "$pid" && kill -KILL "$pid" 2>/dev/null || true
        done
        # Reap our own children quietly (no "Terminated" job messages).
        wait "${pids[@]}" 2>/dev/null || true
    fi
    rm -f "$PIDS"
    [[ ${1:-} == quiet ]] || log "stopped:${names:- nothing was running}"
}

port_busy() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

check_port() { # what port
    if port_busy "$2"; then
        die "port $2 for $1 is already in use on $HOST (the test servers of tests/servers.sh? \
an earlier 'tests/demo.sh --keep'?). Stop that, or choose other ports:
    DEMO_RADICALE_PORT=15232 DEMO_PLANE_PORT=18091 tests/demo.sh"
    fi
}

# wait_ready NAME URL PID LOG — polls until the server answers HTTP at all.
wait_ready() {
    local name=$1 url=$2 pid=$3 logf=$4 code deadline=$((SECONDS + READY_TIMEOUT))
    while :; do
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url" || true)
        [[ $code == 000 || -z $code ]] || return 0
        if ! alive "$pid"; then
            tail -n 20 "$logf" >&2 || true
            die "$name exited during startup (log above: $logf)"
        fi
        if ((SECONDS >= deadline)); then
            tail -n 20 "$logf" >&2 || true
            die "$name did not answer at $url within ${READY_TIMEOUT}s (log: $logf)"
        fi
        sleep 0.1
    done
}

# spawn NAME PATTERN LOG CMD... — starts a server in the background, records its pid.
spawn() {
    local name=$1 pattern=$2 logf=$3
    shift 3
    "$@" </dev/null >"$logf" 2>&1 &
    echo "$name $! $pattern" >>"$PIDS"
    LAST_PID=$!
}

install_radicale() {
    # The same Radicale version the test suite is pinned to.
    local spec py=${PYTHON3:-python3}
    spec=$(grep -m1 '^radicale==' tests/requirements.txt 2>/dev/null || echo radicale)
    if [[ -x $VENV/bin/radicale && $(cat "$VENV/.spec" 2>/dev/null) == "$spec" ]]; then
        return 0
    fi
    command -v "$py" >/dev/null || die "$py not found: install Python 3 (or set PYTHON3)"
    log "installing $spec into $VENV (once; log: $DEMO/install.log)"
    rm -rf "$VENV"
    "$py" -m venv "$VENV" >>"$DEMO/install.log" 2>&1 ||
        die "cannot create a venv with $py (on Debian/Ubuntu: apt-get install python3-venv)"
    "$VENV/bin/pip" install -q --disable-pip-version-check "$spec" >>"$DEMO/install.log" 2>&1 ||
        die "pip install $spec failed (see $DEMO/install.log)"
    echo "$spec" >"$VENV/.spec"
}

start_radicale() {
    local d=$DEMO/radicale
    mkdir -p "$d"
    printf 'demo:demo\n' >"$d/users"
    write_radicale_conf "$d" "$HOST:$RADICALE_PORT"
    spawn radicale "$d/radicale.conf" "$d/radicale.log" "$VENV/bin/radicale" --config "$d/radicale.conf"
    RADICALE_PID=$LAST_PID
}

start_plane() {
    spawn fake-plane "fake-plane --addr $HOST:$PLANE_PORT" "$DEMO/fake-plane.log" \
        "$FAKE_PLANE" --addr "$HOST:$PLANE_PORT" --projects 3 --items 40 \
        --api-key demo-token --slug demo
    PLANE_PID=$LAST_PID
}

write_env() {
    cat >"$ENV_FILE" <<EOF
# Written by tests/demo.sh: the fake Plane and the demo Radicale.
PLANE_BASE_URL=http://$HOST:$PLANE_PORT
PLANE_API_TOKEN=demo-token
PLANE_WORKSPACE_SLUG=demo
CALDAV_URL=http://$HOST:$RADICALE_PORT/
CALDAV_USERNAME=demo
CALDAV_PASSWORD=demo
STATE_DIR=$DEMO/state
EOF
}

# bot ARGS... — runs calplanebot with the demo env file, echoing the command first.
bot() {
    printf '\n$ target/debug/calplanebot --env-file .tests/demo/demo.env %s\n' "$*"
    "$BOT" --env-file "$ENV_FILE" "$@"
}

KEEP=0
case ${1:-} in
"") ;;
--keep) KEEP=1 ;;
--stop)
    stop_servers
    exit 0
    ;;
-h | --help)
    usage
    exit 0
    ;;
*)
    usage >&2
    exit 2
    ;;
esac

t0=$SECONDS
command -v cargo >/dev/null || die "cargo not found: install Rust (https://rustup.rs)"
command -v curl >/dev/null || die "curl not found: install curl"

# Variables set in the environment win over the env file; a user's real PLANE_*/CALDAV_*
# settings must not leak into the demo.
for v in $(compgen -e); do
    case $v in
    PLANE_* | CALDAV_* | SYNC_* | CALPLANEBOT_* | STATE_DIR | STATE_DIRECTORY | LOG_LEVEL | \
        ITEM_KIND | DATE_MODE | COMPLETED_ITEMS | MAX_DELETE_FRACTION | HTTP_TIMEOUT_SECONDS)
        log "ignoring $v from your environment"
        unset "$v"
        ;;
    esac
done

if [[ -f $PIDS ]]; then
    log "stopping the servers of an earlier --keep run"
    stop_servers quiet
fi
check_port Radicale "$RADICALE_PORT"
check_port "the fake Plane" "$PLANE_PORT"

rm -rf "$DEMO"
mkdir -p "$DEMO"

cleanup() {
    local rc=$?
    if ((rc != 0)); then
        log "failed; logs are in $DEMO/"
        stop_servers quiet
    elif ((!KEEP)); then
        stop_servers quiet
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Radicale's install and the Rust build are independent: run them side by side.
install_radicale &
pip_pid=$!
log "building calplanebot and the fake Plane (cargo build)"
cargo build --example fake-plane --bin calplanebot ||
    { wait "$pip_pid" || true; die "cargo build failed"; }
wait "$pip_pid" || exit 1

: >"$PIDS"
start_radicale
start_plane
wait_ready Radicale "http://$HOST:$RADICALE_PORT/" "$RADICALE_PID" "$DEMO/radicale/radicale.log"
wait_ready "fake Plane" "http://$HOST:$PLANE_PORT/api/v1/users/me/" "$PLANE_PID" "$DEMO/fake-plane.log"
log "Radicale on http://$HOST:$RADICALE_PORT/ (pid $RADICALE_PID), fake Plane on http://$HOST:$PLANE_PORT/ (pid $PLANE_PID)"
write_env

bot test-plane
bot test-caldav
bot --once
bot list

cat <<EOF

Demo done in $((SECONDS - t0))s.
EOF
if ((KEEP)); then
    cat <<EOF
The servers keep running:
  Radicale    pid $RADICALE_PID   http://$HOST:$RADICALE_PORT/   log .tests/demo/radicale/radicale.log
  fake Plane  pid $PLANE_PID   http://$HOST:$PLANE_PORT/   log .tests/demo/fake-plane.log

Look at the calendars:
  - in a browser: http://$HOST:$RADICALE_PORT/ (Radicale's web UI), user demo, password demo
  - in any CalDAV client (Thunderbird, DAVx⁵, GNOME Calendar…): server
    http://$HOST:$RADICALE_PORT/, user demo, password demo

Try more commands with the same settings:
  target/debug/calplanebot --env-file .tests/demo/demo.env sync --dry-run
  target/debug/calplanebot --env-file .tests/demo/demo.env --once
  target/debug/calplanebot --env-file .tests/demo/demo.env sync-status
  target/debug/calplanebot --env-file .tests/demo/demo.env create-event "Dentist" --date $(date +%Y-%m-%d)
  target/debug/calplanebot --env-file .tests/demo/demo.env config
  target/debug/calplanebot --help

Stop both servers with:  tests/demo.sh --stop
EOF
else
    cat <<EOF
Both servers are stopped again. To look at the calendars in Radicale's web UI or a CalDAV
client and to try more commands, run:  tests/demo.sh --keep
EOF
fi
