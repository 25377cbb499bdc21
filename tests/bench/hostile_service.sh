#!/usr/bin/env bash
# Hostile-peer benchmark, service side: tests/bench/hostile_service.sh
# (prints figures; not a test, not run by CI)
#
# Runs a release `calplanebot run` (syncing every 10 s against the fake Plane and its own
# Radicale) under `ulimit -n 1024`, systemd's default soft limit, and prints:
#   1. connections held: BENCH_FLOOD (2,000) idle TCP connections are opened at once; how
#      many the client got, how many sockets the daemon held meanwhile (/proc/PID/fd), and
#      whether it still lived and answered /health afterwards;
#   2. /health latency (p50/p99/max over fresh connections, for BENCH_SECS s) while
#      BENCH_IDLE (1,000) idle clients and 1 stalled request (headers with
#      Content-Length: 5000, no body) stay connected — both re-opened whenever the daemon
#      drops them — and how long the daemon kept the stalled request;
#   3. the daemon's RSS (VmRSS now, VmHWM peak) under that load, and its sync cycles
#      meanwhile (they must go on).
# BENCH_COMPARE_BIN=/path/to/older/calplanebot runs part 1 against that binary too (e.g. a
# build with the old tiny_http server, which aborted here).
#
# BENCH_HARD=524288 keeps the soft limit at BENCH_NOFILE but the hard one higher, as systemd
# does (the daemon then raises its soft limit itself); by default both are BENCH_NOFILE.
#
# Environment: BENCH_FLOOD=2000 BENCH_IDLE=1000 BENCH_SECS=20 BENCH_NOFILE=1024 BENCH_HARD
#   BENCH_NO_BUILD=1 (use the existing release binaries) BENCH_KEEP=1 (keep the temp dir)
set -euo pipefail

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
BOT=$TARGET/release/calplanebot
HELPER=$ROOT/tests/bench/hostile_service.py
FLOOD=${BENCH_FLOOD:-2000}
IDLE=${BENCH_IDLE:-1000}
SECS=${BENCH_SECS:-20}
NOFILE=${BENCH_NOFILE:-1024}
HARD=${BENCH_HARD:-$NOFILE}

need_commands cargo curl python3 awk
[[ -r /proc/self/status ]] || die "/proc is needed (Linux) for the socket and RSS figures"
# The clients need more descriptors than the daemon gets.
ulimit -Sn $((FLOOD + IDLE + 256)) 2>/dev/null || die "cannot raise this shell's open-file limit to $((FLOOD + IDLE + 256))"

for v in $(compgen -e); do
    case $v in
    PLANE_* | CALDAV_* | SYNC_* | CALPLANEBOT_* | STATE_DIR | STATE_DIRECTORY | LOG_LEVEL | \
        LOG_FILE | HTTP_BIND | ENABLE_SYNC | API_TOKEN) unset "$v" ;;
    esac
done

bench_tmp calplanebot-hostile

mem() { awk '/^VmRSS:/ { r = $2 } /^VmHWM:/ { h = $2 } END { printf "%.1f MiB now, %.1f MiB peak", r / 1024, h / 1024 }' "/proc/$1/status"; }
sockets() { { find "/proc/$1/fd" -lname 'socket:*' 2>/dev/null || true; } | wc -l; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
metrics() { curl -s --max-time 10 "http://$HOST:$1/api/v1/metrics"; }

build_release
[[ -x $BOT && -x $FAKE_PLANE ]] || die "no release binaries in $TARGET/release (unset BENCH_NO_BUILD)"
install_servers radicale

RADICALE_PORT=$(free_port)
PLANE_PORT=$(free_port)
start_radicale "$TMP/radicale" "$RADICALE_PORT" "$TMP/radicale.log" warning
start_fake_plane "$TMP/plane.log" "$PLANE_PORT" 2 20

export PLANE_BASE_URL="http://$HOST:$PLANE_PORT" PLANE_API_TOKEN=$API_KEY PLANE_WORKSPACE_SLUG=$SLUG \
    CALDAV_URL="http://$HOST:$RADICALE_PORT/" CALDAV_USERNAME=bench CALDAV_PASSWORD=bench \
    PLANE_WEBHOOK_SECRET=bench-secret SYNC_INTERVAL_SECONDS=10 LOG_LEVEL=warn

# flood NAME BIN — part 1 against one binary.
flood() {
    export STATE_DIR=$TMP/$1/state
    export HTTP_BIND=$HOST:$(free_port)
    DAEMON_PORT=${HTTP_BIND##*:}
    mkdir -p "$TMP/$1"
    spawn "$TMP/$1/daemon.log" sh -c "ulimit -Sn $NOFILE && ulimit -Hn $HARD && exec \"\$0\" --env-file /dev/null run" "$2"
    DAEMON_PID=$LAST_PID
    wait_http "$1" "http://$HOST:$DAEMON_PORT/health" "$DAEMON_PID" "$TMP/$1/daemon.log"
    log "$1: $FLOOD idle connections"
    python3 "$HELPER" flood "$HOST" "$DAEMON_PORT" "$FLOOD" 4 >"$TMP/$1/flood.txt" &
    local client=$! held=0 n
    while kill -0 "$client" 2>/dev/null; do
        sleep 0.3
        n=$(sockets "$DAEMON_PID")
        ((n > held)) && held=$n
    done
    wait "$client" || true
    local alive=no health=none
    if kill -0 "$DAEMON_PID" 2>/dev/null; then
        alive=yes
        health=$(curl -s -o /dev/null -w '%{http_code} in %{time_total} s' --max-time 15 "http://$HOST:$DAEMON_PORT/health" || true)
    fi
    printf '%-34s %s\n' "$1: client side" "$(cat "$TMP/$1/flood.txt")"
    printf '%-34s %s\n' "$1: sockets held by the daemon" "$held (peak while held; soft limit at start $NOFILE, hard $HARD)"
    printf '%-34s %s\n' "$1: alive afterwards" "$alive; /health: $health"
    if [[ $alive == no ]]; then
        wait "$DAEMON_PID" 2>/dev/null && rc=0 || rc=$?
        printf '%-34s %s\n' "$1: exit status" "$rc ($(grep -m1 -o 'panicked.*' "$TMP/$1/daemon.log" || echo 'no panic message'))"
    fi
}

echo "== hostile clients vs. calplanebot run (open files: soft $NOFILE, hard $HARD) =="
flood this "$BOT"
if [[ -n ${BENCH_COMPARE_BIN:-} ]]; then
    this_pid=$DAEMON_PID
    stop "$this_pid"
    flood compare "$BENCH_COMPARE_BIN"
    stop "$DAEMON_PID"
    flood this-again "$BOT"
fi

before=$(metrics "$DAEMON_PORT")
cycles0=$(json 'd["cycles"]' <<<"$before")
log "$IDLE idle + 1 stalled client for ${SECS}s while timing /health"
python3 "$HELPER" abuse "$HOST" "$DAEMON_PORT" "$IDLE" "$SECS" >"$TMP/abuse.txt" &
client=$!
sleep $((SECS / 2 + 2))
held=$(sockets "$DAEMON_PID")
rss=$(mem "$DAEMON_PID")
wait "$client" || die "abuse client failed"
after=$(metrics "$DAEMON_PORT")
printf '%-34s %s\n' "under load: sockets held" "$held"
printf '%-34s %s\n' "under load: /health" "$(cat "$TMP/abuse.txt")"
printf '%-34s %s\n' "under load: daemon RSS" "$rss"
printf '%-34s %s\n' "under load: sync cycles" \
    "$(($(json 'd["cycles"]' <<<"$after") - cycles0)) ran, $(json 'd["cycles_failed"]' <<<"$after") failed in all (SYNC_INTERVAL_SECONDS=10)"
printf '%-34s %s\n' "machine" "$(nproc) cores, $(uname -sr), $(rustc --version 2>/dev/null || echo rustc?), $(date -u +%F)"
