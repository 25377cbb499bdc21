# Shared by the benchmark scripts (sourced, not run): where things are, the ports, the
# temp dir, process bookkeeping, and starting the servers every benchmark needs (the fake
# Plane, Radicale, Xandikos) and calplanebot's settings for them.
#
# Source it first, right after `set -euo pipefail`; set LOG_TAG before to prefix the log
# lines with something else than "bench". It sets ROOT (and cds there), HOST, TARGET, VENV,
# FAKE_PLANE, API_KEY, SLUG, DAV_USER; a script with its own venv setting overrides VENV
# afterwards. `bench_tmp NAME` makes TMP and, from then on, every process started with
# `spawn` is stopped on exit, also on failure and Ctrl-C; BENCH_KEEP=1 keeps TMP.
# shellcheck shell=bash

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
HOST=127.0.0.1
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
VENV=$ROOT/.tests/venv # radicale and xandikos, from `tests/servers.sh install`
FAKE_PLANE=$TARGET/release/examples/fake-plane
API_KEY=bench-api-key # the fake Plane's token and workspace
SLUG=bench
DAV_USER=bench # Radicale's login (password: the same); Xandikos runs without one

# log MESSAGE... / die MESSAGE... — progress on stderr (stdout holds only the figures).
log() { printf '%s: %s\n' "${LOG_TAG:-bench}" "$*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}
# shellcheck source=../lib.sh
. "$ROOT/tests/lib.sh"

# need_commands CMD... — dies naming the first command that is not on PATH.
need_commands() {
    local c
    for c in "$@"; do command -v "$c" >/dev/null || die "$c not found"; done
}

# need_gnu_time — GNU time is what reports a child's peak RSS (`-f %M`).
need_gnu_time() {
    [[ -x /usr/bin/time ]] || die "GNU time (/usr/bin/time, package 'time') is needed for the peak RSS"
}

# free_port — a TCP port nobody listens on now (the kernel's pick).
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# port_busy PORT — whether something accepts connections on HOST:PORT.
port_busy() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

# pick_port VAR DEFAULT — $VAR if set (must be free), else DEFAULT, else any free port: fixed
# defaults make repeated runs comparable in logs, but a taken one must not stop the run.
pick_port() {
    local var=$1 def=$2 p
    p=${!var:-}
    if [[ -n $p ]]; then
        port_busy "$p" && die "$var=$p is already in use on $HOST; choose another port"
    else
        p=$def
        if port_busy "$p"; then
            p=$(free_port)
            log "port $def is taken; using $p (set $var to choose)"
        fi
    fi
    echo "$p"
}

# build_release — the release calplanebot and fake Plane, unless BENCH_NO_BUILD is set.
build_release() {
    [[ -z ${BENCH_NO_BUILD:-} ]] || return 0
    log "cargo build --release --bin calplanebot --example fake-plane"
    cargo build -q --release --bin calplanebot --example fake-plane || die "cargo build failed"
}

# install_servers NAME... — installs the CalDAV servers into VENV (tests/servers.sh) when
# one of them is missing there.
install_servers() {
    local s missing=
    for s in "$@"; do [[ -x $VENV/bin/$s ]] || missing=1; done
    [[ -n $missing ]] || return 0
    log "installing the servers: TEST_SERVERS='$*' tests/servers.sh install"
    TEST_SERVERS="$*" tests/servers.sh install || die "tests/servers.sh install failed"
    for s in "$@"; do [[ -x $VENV/bin/$s ]] || die "no $VENV/bin/$s after tests/servers.sh install"; done
}

PIDS=()     # everything we start, stopped by pid on exit
TMP_DIRS=() # removed on exit with TMP (unless kept)

# cleanup — the EXIT trap: stops what we started (TERM, KILL after 5 s), removes the temp
# dirs unless BENCH_KEEP is set or the run failed, and exits with the script's status.
cleanup() {
    local rc=$? pid i
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for ((i = 0; i < 50; i++)); do
        local left=0
        for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && left=1; done
        ((left)) || break
        sleep 0.1
    done
    for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [[ -n ${BENCH_KEEP:-} || $rc -ne 0 ]]; then
        log "logs and data kept in $TMP ${TMP_DIRS[*]}"
    else
        rm -rf "$TMP" "${TMP_DIRS[@]}"
    fi
    exit "$rc"
}

# bench_tmp NAME — TMP, a new dir under TMPDIR named after the benchmark, and the traps that
# clean up after the run.
bench_tmp() {
    TMP=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# spawn LOG CMD... — background process (stdout and stderr to LOG); pid in LAST_PID, PIDS.
spawn() {
    local logf=$1
    shift
    "$@" </dev/null >"$logf" 2>&1 &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}

# stop PID — TERM one process we started and wait for it.
stop() {
    kill -TERM "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

# wait_http NAME URL PID LOG — until the server answers HTTP at all (60 s at most).
wait_http() {
    local code deadline=$((SECONDS + 60))
    while :; do
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$2" || true)
        [[ $code == 000 || -z $code ]] || return 0
        kill -0 "$3" 2>/dev/null || { tail -n 20 "$4" >&2; die "$1 exited during startup (log: $4)"; }
        ((SECONDS < deadline)) || { tail -n 20 "$4" >&2; die "$1 did not answer at $2 (log: $4)"; }
        sleep 0.1
    done
}

# start_fake_plane LOG PORT PROJECTS ITEMS_PER_PROJECT [ARGS...] — the fake Plane on
# HOST:PORT with extra ARGS (--all-dated, --verbose); pid in LAST_PID. Its rate limit is
# out of the way: Plane's 60/min would measure the throttle, not calplanebot.
start_fake_plane() {
    local logf=$1 port=$2 projects=$3 items=$4
    shift 4
    spawn "$logf" "$FAKE_PLANE" --addr "$HOST:$port" --projects "$projects" --items "$items" \
        --api-key "$API_KEY" --slug "$SLUG" --rate-limit 1000000 "$@"
    wait_http "fake Plane" "http://$HOST:$port/api/v1/users/me/" "$LAST_PID" "$logf"
}

# start_radicale DIR PORT LOG [LEVEL [USER...]] — an empty Radicale with its data and
# config in DIR, users USER (password: the same; default DAV_USER), logging at LEVEL
# (info logs one line per request; empty: Radicale's default); pid in LAST_PID.
start_radicale() {
    local d=$1 port=$2 logf=$3 level=${4:-} u
    shift $(($# < 4 ? $# : 4))
    mkdir -p "$d"
    for u in "${@:-$DAV_USER}"; do printf '%s:%s\n' "$u" "$u"; done >"$d/users"
    write_radicale_conf "$d" "$HOST:$port"
    [[ -z $level ]] || printf '[logging]\nlevel = %s\n' "$level" >>"$d/radicale.conf"
    spawn "$logf" "$VENV/bin/radicale" --config "$d/radicale.conf"
    wait_http Radicale "http://$HOST:$port/" "$LAST_PID" "$logf"
}

# start_xandikos DIR PORT LOG — an empty Xandikos (no authentication) with its data under
# DIR; pid in LAST_PID.
start_xandikos() {
    mkdir -p "$1/data" "$1/state"
    spawn "$3" "$VENV/bin/xandikos" serve --defaults -d "$1/data" --state-dir "$1/state" \
        -l "$HOST" -p "$2"
    wait_http xandikos "http://$HOST:$2/" "$LAST_PID" "$3"
}

# bot_env PLANE_PORT DAV_URL DAV_LOGIN STATE_DIR LOG_LEVEL — calplanebot's settings (an
# --env-file) for the servers a benchmark started, on stdout: completed items kept (one
# object per item), no HTTP service. DAV_LOGIN empty: no CalDAV login (Xandikos).
bot_env() {
    echo "PLANE_BASE_URL=http://$HOST:$1"
    echo "PLANE_API_TOKEN=$API_KEY"
    echo "PLANE_WORKSPACE_SLUG=$SLUG"
    echo "CALDAV_URL=$2"
    if [[ -n $3 ]]; then
        echo "CALDAV_USERNAME=$3"
        echo "CALDAV_PASSWORD=$3"
    fi
    echo "STATE_DIR=$4"
    echo "COMPLETED_ITEMS=keep"
    echo "HTTP_BIND="
    echo "LOG_LEVEL=$5"
}

# machine — "N CPUs, CPU model, kernel" for the reports.
machine() {
    local cpu_model
    cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
    echo "$(nproc) CPUs, ${cpu_model:-unknown CPU}, $(uname -sr)"
}
